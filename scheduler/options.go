package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/renewkit/renewkit/billing"
)

// Option configures a Scheduler. Options validate their arguments; New reports every
// problem at once.
type Option func(*config) error

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

// alertChannel is one destination of operator alerts.
type alertChannel struct {
	name string
	n    billing.Notifier
}

type config struct {
	loc        *time.Location
	schedules  map[string]string
	disabled   map[string]bool
	clock      clockwork.Clock
	log        *slog.Logger
	locker     billing.Locker
	lockTTL    time.Duration
	replica    string
	retention  int // days
	runTimeout time.Duration
	notifier   billing.Notifier // WithAlerts' notifier, the one the jobs send through
	alertsSet  bool             // WithAlerts was given
	channels   []alertChannel   // WithAlertChannel, in order
	subStats   func(context.Context) (billing.SubscriptionStats, error)
	alertTo    billing.Recipient
	alerts     AlertPolicy
}

// WithLocation sets the time zone cron specs are read in. Default UTC. For example
// time.LoadLocation("America/Sao_Paulo").
func WithLocation(loc *time.Location) Option {
	return func(c *config) error {
		if loc == nil {
			return errors.New("WithLocation: nil location: pass time.UTC or time.LoadLocation(\"America/Sao_Paulo\")")
		}
		c.loc = loc
		return nil
	}
}

// WithSchedule replaces the cron spec of the job with that id.
func WithSchedule(jobID, cronSpec string) Option {
	return func(c *config) error {
		if jobID == "" {
			return errors.New("WithSchedule: empty job id")
		}
		c.schedules[jobID] = cronSpec
		return nil
	}
}

// WithDisabled keeps the job with that id off the schedule. It is still listed and can be
// triggered by hand.
func WithDisabled(jobID string) Option {
	return func(c *config) error {
		if jobID == "" {
			return errors.New("WithDisabled: empty job id")
		}
		c.disabled[jobID] = true
		return nil
	}
}

// WithClock sets the clock that arms timers and stamps runs. Default the wall clock; tests
// pass clockwork.NewFakeClockAt(...) (the same clock should drive billing.Config.Clock).
func WithClock(clock clockwork.Clock) Option {
	return func(c *config) error {
		if clock == nil {
			return errors.New("WithClock: nil clock: omit the option for the wall clock or pass clockwork.NewFakeClock()")
		}
		c.clock = clock
		return nil
	}
}

// WithLogger sets the logger. Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("WithLogger: nil logger: omit the option for slog.Default()")
		}
		c.log = l
		return nil
	}
}

// WithSubscriptionStats sets where Stats takes its subscription counts from: pass
// svc.SubscriptionStats so the due counts follow the billing Config (warning ladder, renew
// window). Without it, Stats counts on the store (when it is a billing.SubscriptionCounter)
// over the windows of billing's default Config.
func WithSubscriptionStats(stats func(context.Context) (billing.SubscriptionStats, error)) Option {
	return func(c *config) error {
		if stats == nil {
			return errors.New("WithSubscriptionStats: nil func: pass svc.SubscriptionStats, or omit the option")
		}
		c.subStats = stats
		return nil
	}
}

// WithLocker sets the lease lock replicas share. Default: the store's own AcquireLock,
// RenewLock and ReleaseLock. A host that wraps its store (for metrics, tracing) should pass
// the unwrapped store here: optional capabilities such as billing.LockInspector are found by type
// assertion, which a wrapper hides.
func WithLocker(l billing.Locker) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("WithLocker: nil locker: omit the option to use the store's lock")
		}
		c.locker = l
		return nil
	}
}

// WithLockTTL sets how long a run's lease lasts between renewals (every third of it).
// A replica that dies mid-run blocks the job for at most this long. Default 1 minute.
func WithLockTTL(ttl time.Duration) Option {
	return func(c *config) error {
		if ttl < time.Second {
			return fmt.Errorf("WithLockTTL: %v is too short: use a second or more (default 1m)", ttl)
		}
		c.lockTTL = ttl
		return nil
	}
}

// WithReplicaID names this process in run records and lock leases. Default hostname plus
// a random suffix.
func WithReplicaID(id string) Option {
	return func(c *config) error {
		if id == "" {
			return errors.New("WithReplicaID: empty id: omit the option for hostname-random")
		}
		c.replica = id
		return nil
	}
}

// WithHistoryRetention keeps run records for that many days. Default 30.
func WithHistoryRetention(days int) Option {
	return func(c *config) error {
		if days < 1 {
			return fmt.Errorf("WithHistoryRetention: %d days: keep at least 1 day (default 30)", days)
		}
		c.retention = days
		return nil
	}
}

// WithRunTimeout cancels a run's context after d. Default none: jobs run to completion.
func WithRunTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("WithRunTimeout: %v is not positive: omit the option for no timeout", d)
		}
		c.runTimeout = d
		return nil
	}
}

// WithAlerts sends operator alerts (billing.NotificationKindOperatorAlert) to the recipient through n,
// and through every WithAlertChannel, when a job
//
//   - has failed p.ConsecutiveFailures times in a row (consecutive_failures);
//   - reports p.PartialFailures or more failed records in a run (partial_failures);
//   - is stopped by billing's circuit breaker: its error wraps
//     billing.ErrNotifierUnavailable (notifier_unavailable, at the first such run);
//   - is billing.JobRenew and reports p.RenewalFailures or more subscriptions it could not
//     reconcile (renewal_failures).
//
// Each condition alerts once per episode and clears when a run no longer meets it. n
// should be the notifier the jobs send through (the email channel): alerts raised by a run
// the breaker stopped skip it when a WithAlertChannel is configured, since it is the
// channel that is down.
func WithAlerts(n billing.Notifier, to billing.Recipient, p AlertPolicy) Option {
	return func(c *config) error {
		c.alertsSet = true
		var errs []error
		if n == nil {
			errs = append(errs, errors.New("WithAlerts: nil notifier: pass lognotify.NewNotifier(lognotify.Config{}) or an smtpnotify.Notifier"))
		}
		if to.Email == "" {
			errs = append(errs, errors.New("WithAlerts: recipient has no email: set billing.Recipient{Email: \"ops@example.com\"}"))
		}
		if p.ConsecutiveFailures < 0 {
			errs = append(errs, fmt.Errorf("WithAlerts: ConsecutiveFailures %d is negative: use 0 for the default 3", p.ConsecutiveFailures))
		}
		if p.PartialFailures < -1 {
			errs = append(errs, fmt.Errorf("WithAlerts: PartialFailures %d: use 0 for the default 1, -1 to turn it off", p.PartialFailures))
		}
		if p.RenewalFailures < -1 {
			errs = append(errs, fmt.Errorf("WithAlerts: RenewalFailures %d: use 0 for the default 5, -1 to turn it off", p.RenewalFailures))
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		if p.ConsecutiveFailures == 0 {
			p.ConsecutiveFailures = 3
		}
		if p.PartialFailures == 0 {
			p.PartialFailures = 1
		}
		if p.RenewalFailures == 0 {
			p.RenewalFailures = 5
		}
		c.notifier, c.alertTo, c.alerts = n, to, p
		return nil
	}
}

// WithAlertChannel adds a destination for the operator alerts of WithAlerts, such as the
// signed webhook of notify.NewWebhook, so an alert that the email channel is down still
// reaches someone. Every alert goes to WithAlerts' notifier and to each channel
// concurrently; it counts as sent (and is not repeated in its episode) when at least one
// destination took it, and each failure is logged with the channel's name. Repeat the
// option for several channels; names must be unique. It needs WithAlerts.
func WithAlertChannel(name string, n billing.Notifier) Option {
	return func(c *config) error {
		var errs []error
		if name == "" {
			errs = append(errs, errors.New("WithAlertChannel: empty name: name the channel (\"webhook\")"))
		}
		if n == nil {
			errs = append(errs, fmt.Errorf("WithAlertChannel(%q): nil notifier: pass a notifier such as notify.NewWebhook(cfg)", name))
		}
		for _, ch := range c.channels {
			if name != "" && ch.name == name {
				errs = append(errs, fmt.Errorf("WithAlertChannel(%q): name used twice: give each channel its own name", name))
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		c.channels = append(c.channels, alertChannel{name: name, n: n})
		return nil
	}
}
