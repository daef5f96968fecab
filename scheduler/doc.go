// Package scheduler runs named jobs on cron schedules, over gocron v2, for one process or
// many replicas sharing a store. billing.Service.Jobs supplies the five lifecycle jobs;
// any []billing.Job works. gocron stays an implementation detail: no gocron type appears
// in this package's API.
//
// # What it does
//
//   - Schedules: five-field cron specs read in one time zone (Config.Location, default
//     UTC), per-job overrides (Config.Schedules) and Config.Disabled. A daily job runs
//     exactly once on the days clocks change: a time inside the spring-forward gap runs
//     just after it, a time repeated at fall-back runs at its first occurrence.
//   - No overlap: a job never runs twice at once in a process; across replicas a lease
//     lock ("job:"+id, renewed while the job runs) keeps it single. A tick that finds the
//     job busy, or finds that another replica already ran that tick (replicas' clocks
//     may fire moments apart), is recorded as skipped. Each tick runs at most once.
//   - Pause and Resume are stored (billing.JobState) and checked at every tick, so they
//     hold across restarts and on every replica. Trigger runs a job now (TriggerAsync in
//     the background); a trigger while the job runs returns ErrJobRunning. Every change
//     of the shared state (pause, failure streak, alerts) is a version-checked
//     read-modify-write, retried on billing.ErrConflict, so a pause on one replica is
//     never lost to a run finishing on another.
//   - Crashed replicas: the replica that next takes a job's lock marks the job's records
//     still "running" failed ("abandoned: replica <id> stopped before the run finished"),
//     and List/Get stop reporting them as running once the lock is free (billing.LockInspector).
//   - History: every run (and skipped tick) is a billing.JobRun in the store, with its
//     trigger, times, duration, result (the job's JSON keys), error and replica, pruned
//     after Config.HistoryRetentionDays days (default 30).
//   - Alerts: Config.Alerts sends a billing.NotificationKindOperatorAlert after N consecutive failures
//     (default 3), when a run reports failed records (billing.Result.Failures), at the
//     first run billing's circuit breaker stops (its error wraps
//     billing.ErrNotifierUnavailable) and when a renew_subscriptions run fails to
//     reconcile AlertPolicy.RenewalFailures subscriptions (default 5); each once per
//     episode, cleared by a run that no longer meets it. See "Alert channels".
//   - Progress: every run gets a billing.WithProgress context; subscription jobs report
//     claimed, done, failed and an estimate after each batch. Progress (and JobInfo.Progress
//     in the admin API's job view) holds the current or last run's, in this process.
//   - Catch-up: on Start, a job whose last successful scheduled run is older than its
//     previous tick runs once (trigger catch_up), however many ticks were missed. A job
//     seen for the first time is not caught up (an install at 10:00 runs no 09:00 job).
//
// # Implementing
//
// Stores implement Store (billing.JobRunStore, billing.JobStateStore and
// billing.Locker: every billing.Store does); Stats serves the subscription counts
// Config.SubscriptionStats gives it (svc.SubscriptionStats, over the billing Config's windows),
// else billing's counts on a store that is a billing.SubscriptionCounter, and a Locker that also implements
// billing.LockInspector lets List and Get tell abandoned runs from live ones. Authorizers
// for AdminHandler are a func: return nil for an admin, ErrForbidden for a caller without
// the role, ErrUnauthenticated otherwise.
//
// # Running
//
// NewScheduler takes the jobs, the store and a Config whose zero value is the default, as
// every renewkit package takes a Config: Logger *slog.Logger (nil means slog.Default()).
// ExampleNewScheduler runs billing's jobs in a time zone with email alerts; Example lists
// their next runs and triggers one. Only the scheduler takes a clockwork.Clock
// (Config.Clock), because it arms timers; everything that only reads the time takes a
// billing.Clock. New and the With* options are deprecated wrappers that fill a Config.
//
// # Alert channels
//
// An alert that email is down cannot go by email alone. Alerts.Channels adds
// destinations (any billing.Notifier: the signed webhook of notify.NewWebhook, a chat
// hook) that receive every alert alongside Alerts.Notifier, concurrently. A run stopped
// by the breaker raises notifier_unavailable at once, and its alerts skip
// Alerts.Notifier, which should be the one the jobs send through; without another
// channel they are still tried there. An alert counts as sent when one destination took
// it; the others' failures are logged. ExampleConfig_alerts wires the signed webhook.
//
// # Mounting the admin API
//
// The handler's routes are relative; mount it under any prefix (the original
// application used /api/admin/jobs) behind the host's own admin check or a bearer token:
//
// ExampleAdminHandler_authorize shows such a check; ExampleAdminHandler a bearer token.
// For a standalone server: AdminOptions{Authorize: scheduler.BearerToken(os.Getenv("ADMIN_TOKEN"))}.
//
// ConsoleHandler serves the operations console's reads and actions (subscriptions,
// timeline, payments, the email log, resend, rerun) from a *billing.Service, under the
// same authorizer; ConsoleOptions.Identify names the operator its actions are audited
// under. Mount it beside the jobs API, as ExampleConsoleHandler does (the more specific
// pattern wins).
package scheduler
