// Package dashboard is the web dashboard for a scheduler.Scheduler: a server-rendered page
// (html/template, embedded, no JavaScript) listing the jobs with their schedule, next run,
// paused state, last result and duration, with buttons to pause, resume and trigger, the run
// history of each job, and subscription counts by status. It is usable on a phone-width
// screen.
//
// It sits behind the same admin check as the jobs API. Hosts with their own operator login
// pass their authorizer; the standalone server uses TokenAuthorizer with a token login form
// that sets an HttpOnly, SameSite=Strict cookie derived from the token, valid for 12 hours.
//
// # Mounting
//
//	dash, err := dashboard.New(sched, dashboard.Options{
//		Authorize:  dashboard.TokenAuthorizer(token),
//		LoginToken: token,
//	})
//	mux.Handle("/admin/", http.StripPrefix("/admin", dash))
package dashboard
