package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/renewkit/renewkit/billing"
)

// Config configures a Scheduler built by NewScheduler. The zero value is the default: each
// job's own schedule read in UTC, the wall clock, slog.Default(), the store's own lock and
// no operator alerts.
type Config struct {
	// Location is the time zone cron specs are read in. Nil means UTC. For example
	// time.LoadLocation("America/Sao_Paulo").
	Location *time.Location
	// Schedules replaces the cron spec of the job with each id, as in
	// {billing.JobRenew: "0 3 * * *"}. Every key must be a job's id.
	Schedules map[string]string
	// Disabled keeps the jobs with these ids off the schedule. They are still listed and
	// can be triggered by hand.
	Disabled []string
	// Clock arms timers and stamps runs. Nil means the wall clock; tests pass
	// clockwork.NewFakeClockAt(...), the same clock that drives billing.Config.Clock. The
	// scheduler is the one component that takes a clockwork.Clock, because it arms timers;
	// everything that only reads the time takes a billing.Clock.
	Clock clockwork.Clock
	// Logger receives the scheduler's logs. Nil means slog.Default().
	Logger *slog.Logger
	// SubscriptionStats is where Stats takes its subscription counts from: pass
	// svc.SubscriptionStats so the due counts follow the billing Config (warning ladder,
	// renew window). Nil: Stats counts on the store (when it is a
	// billing.SubscriptionCounter) over the windows of billing's default Config.
	SubscriptionStats func(context.Context) (billing.SubscriptionStats, error)
	// Locker is the lease lock replicas share. Nil means the store's own AcquireLock,
	// RenewLock and ReleaseLock. A host that wraps its store (for metrics, tracing) should
	// set the unwrapped store here: optional capabilities such as billing.LockInspector are
	// found by type assertion, which a wrapper hides.
	Locker billing.Locker
	// LockTTL is how long a run's lease lasts between renewals (every third of it). A
	// replica that dies mid-run blocks the job for at most this long. Zero means 1 minute;
	// otherwise at least a second.
	LockTTL time.Duration
	// ReplicaID names this process in run records and lock leases. Empty means the
	// hostname plus a random suffix.
	ReplicaID string
	// HistoryRetentionDays is how many days run records are kept. Zero means 30.
	HistoryRetentionDays int
	// RunTimeout cancels a run's context after that long. Zero means none: jobs run to
	// completion.
	RunTimeout time.Duration
	// Alerts turns on operator alerts. Nil means none.
	Alerts *Alerts
}

// Alerts sends operator alerts (billing.NotificationKindOperatorAlert) to To through
// Notifier, and through every one of Channels, when a job
//
//   - has failed Policy.ConsecutiveFailures times in a row (consecutive_failures);
//   - reports Policy.PartialFailures or more failed records in a run (partial_failures);
//   - is stopped by billing's circuit breaker: its error wraps
//     billing.ErrNotifierUnavailable (notifier_unavailable, at the first such run);
//   - is billing.JobRenew and reports Policy.RenewalFailures or more subscriptions it could
//     not reconcile (renewal_failures).
//
// Each condition alerts once per episode and clears when a run no longer meets it.
type Alerts struct {
	// Notifier should be the notifier the jobs send through (the email channel): alerts
	// raised by a run the breaker stopped skip it when Channels is not empty, since it is
	// the channel that is down. Required.
	Notifier billing.Notifier
	// To receives the alerts; its Email is required.
	To billing.Recipient
	// Policy says when a job raises an alert; the zero value is the default.
	Policy AlertPolicy
	// Channels are further destinations, such as the signed webhook of notify.NewWebhook,
	// so an alert that the email channel is down still reaches someone. Every alert goes
	// to Notifier and to each channel concurrently; it counts as sent (and is not repeated
	// in its episode) when at least one destination took it, and each failure is logged
	// with the channel's name.
	Channels []AlertChannel
}

// AlertChannel is one further destination of operator alerts.
type AlertChannel struct {
	// Name identifies the channel in logs ("webhook"); unique among Alerts.Channels.
	Name string
	// Notifier delivers the alerts, for example notify.NewWebhook(cfg).
	Notifier billing.Notifier
}

// AlertPolicy says when a job raises an operator alert. The zero value is the default.
type AlertPolicy struct {
	// ConsecutiveFailures: alert when this many runs in a row failed. Default 3.
	ConsecutiveFailures int
	// PartialFailures: alert when a run reports at least this many records it could not
	// finish (billing.Result.Failures: renewals or emails that failed). Default 1; -1 turns
	// partial-failure alerts off.
	PartialFailures int
	// RenewalFailures: alert when a run of billing.JobRenew (renew_subscriptions) reports
	// at least this many auto-renewing subscriptions it could not reconcile with their
	// gateway. Default 5; -1 turns renewal-failure alerts off.
	RenewalFailures int
}

// Validate reports every problem with the fields of c at once, joined with errors.Join.
// NewScheduler also checks Schedules and Disabled against the jobs.
func (c Config) Validate() error {
	var errs []error
	if c.LockTTL != 0 {
		if err := checkLockTTL(c.LockTTL); err != nil {
			errs = append(errs, fmt.Errorf("Config.LockTTL: %w", err))
		}
	}
	if c.HistoryRetentionDays != 0 {
		if err := checkRetention(c.HistoryRetentionDays); err != nil {
			errs = append(errs, fmt.Errorf("Config.HistoryRetentionDays: %w", err))
		}
	}
	if c.RunTimeout < 0 {
		errs = append(errs, fmt.Errorf("Config.RunTimeout: %v is negative: use 0 for no timeout", c.RunTimeout))
	}
	if a := c.Alerts; a != nil {
		errs = append(errs, checkAlerts(a.Notifier, a.To, a.Policy, func(field string) string { return "Config.Alerts." + field })...)
		for i, ch := range a.Channels {
			errs = append(errs, checkChannel(fmt.Sprintf("Config.Alerts.Channels[%d]", i), ch, a.Channels[:i])...)
		}
	}
	return errors.Join(errs...)
}

// checkLockTTL is the rule for a lease TTL, shared by Config.LockTTL and WithLockTTL.
func checkLockTTL(ttl time.Duration) error {
	if ttl < time.Second {
		return fmt.Errorf("%v is too short: use a second or more (default 1m)", ttl)
	}
	return nil
}

// checkRetention is the rule for the history retention, shared by
// Config.HistoryRetentionDays and WithHistoryRetention.
func checkRetention(days int) error {
	if days < 1 {
		return fmt.Errorf("%d days: keep at least 1 day (default 30)", days)
	}
	return nil
}

// checkAlerts reports the problems of an alert notifier, recipient and policy; at names
// the field (or option) each came from.
func checkAlerts(n billing.Notifier, to billing.Recipient, p AlertPolicy, at func(field string) string) []error {
	var errs []error
	if n == nil {
		errs = append(errs, fmt.Errorf("%s: nil notifier: pass lognotify.NewNotifier(lognotify.Config{}) or an smtpnotify.Notifier", at("Notifier")))
	}
	if to.Email == "" {
		errs = append(errs, fmt.Errorf("%s: recipient has no email: set billing.Recipient{Email: \"ops@example.com\"}", at("To")))
	}
	if p.ConsecutiveFailures < 0 {
		errs = append(errs, fmt.Errorf("%s: ConsecutiveFailures %d is negative: use 0 for the default 3", at("Policy"), p.ConsecutiveFailures))
	}
	if p.PartialFailures < -1 {
		errs = append(errs, fmt.Errorf("%s: PartialFailures %d: use 0 for the default 1, -1 to turn it off", at("Policy"), p.PartialFailures))
	}
	if p.RenewalFailures < -1 {
		errs = append(errs, fmt.Errorf("%s: RenewalFailures %d: use 0 for the default 5, -1 to turn it off", at("Policy"), p.RenewalFailures))
	}
	return errs
}

// checkChannel reports the problems of one alert channel given after those in before; at
// names where it was given.
func checkChannel(at string, ch AlertChannel, before []AlertChannel) []error {
	var errs []error
	if ch.Name == "" {
		errs = append(errs, fmt.Errorf("%s: empty name: name the channel (\"webhook\")", at))
	}
	if ch.Notifier == nil {
		errs = append(errs, fmt.Errorf("%s: nil notifier: pass a notifier such as notify.NewWebhook(cfg)", at))
	}
	for _, b := range before {
		if ch.Name != "" && b.Name == ch.Name {
			errs = append(errs, fmt.Errorf("%s: name used twice: give each channel its own name", at))
			break
		}
	}
	return errs
}

// withDefaults returns c with every zero field set to its default and its maps and
// slices copied, so a host changing its Config later changes nothing here.
func (c Config) withDefaults(store Store) Config {
	if c.Location == nil {
		c.Location = time.UTC
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Locker == nil && store != nil {
		c.Locker = store
	}
	if c.LockTTL == 0 {
		c.LockTTL = time.Minute
	}
	if c.ReplicaID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "replica"
		}
		c.ReplicaID = host + "-" + billing.NewID()[:6]
	}
	if c.HistoryRetentionDays == 0 {
		c.HistoryRetentionDays = 30
	}
	schedules := make(map[string]string, len(c.Schedules))
	for id, spec := range c.Schedules {
		schedules[id] = spec
	}
	c.Schedules = schedules
	c.Disabled = append([]string(nil), c.Disabled...)
	if c.Alerts != nil {
		a := *c.Alerts
		a.Channels = append([]AlertChannel(nil), a.Channels...)
		if a.Policy.ConsecutiveFailures == 0 {
			a.Policy.ConsecutiveFailures = 3
		}
		if a.Policy.PartialFailures == 0 {
			a.Policy.PartialFailures = 1
		}
		if a.Policy.RenewalFailures == 0 {
			a.Policy.RenewalFailures = 5
		}
		c.Alerts = &a
	}
	return c
}
