// Package dashboard is the web dashboard for a scheduler.Scheduler: server-rendered pages
// (html/template, embedded) listing the jobs with their schedule, next run, paused state,
// last result and duration, with buttons to pause, resume and trigger, the run history of
// each job, and subscription counts by status. Every page is usable on a 375px screen and
// follows the browser's light or dark theme.
//
// With Config.Console (the *billing.Service) it is also the operations console: a
// subscription search with status filters, a subscriber page with the subscription's
// timeline (audit entries, job actions, emails and payments in one time order; each email
// links to its rendering with the data that was sent, through Config.EmailView), an email
// log, and two safe actions, each behind a confirmation page, refused cross-site and
// audited with the operator's name: resend an email that failed for good, and re-run one
// subscription through a job after its dry run. With Config.Inbox it adds the webhook
// inbox pages: events by state and gateway, an event's attempts and errors (never its
// payload), and a third action, the replay of a failed, dead or ignored event. With
// Config.Insights the overview draws inline SVG charts: subscriptions by status and MRR
// per currency over 90 days of daily snapshots, expected renewals for the next 30 days per
// currency and gateway, and cancellations by cause per month. Each job page charts its last 30 runs (duration, found
// versus processed) and shows the progress of the current or last run, which one small
// script (static/console.js, no build step) polls from /jobs/{job_id}/progress without a
// reload.
//
// It sits behind the same admin check as the jobs API. Hosts with their own operator login
// pass their authorizer (and Config.Identify to name the operator); the standalone server
// uses TokenAuthorizer with a token login form that sets an HttpOnly, SameSite=Strict
// cookie derived from the token, valid for 12 hours, and a second one signing the name the
// operator gave, which TokenOperator reads for the audit log.
//
// # Mounting
//
// ExampleNew mounts the dashboard under /admin/ with the console, the charts and a token
// login.
package dashboard
