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

// Option configures a Scheduler built by New. Options validate their arguments; New
// reports every problem at once.
//
// Deprecated: set the fields of Config and call NewScheduler.
type Option func(*options) error

// options is what the deprecated options fill: a Config, and the alert channels apart so
// that WithAlertChannel may come before WithAlerts.
type options struct {
	cfg       Config
	alertsSet bool
	channels  []AlertChannel
}

// New validates the jobs and options and builds a Scheduler. Nothing runs until Start.
// Every problem is reported at once, wrapped in ErrInvalidConfig.
//
// Deprecated: use NewScheduler(jobs, store, Config{...}).
func New(jobs []billing.Job, store Store, opts ...Option) (*Scheduler, error) {
	var o options
	var errs []error
	for _, opt := range opts {
		if opt == nil {
			errs = append(errs, errors.New("nil Option"))
			continue
		}
		if err := opt(&o); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case len(o.channels) > 0 && !o.alertsSet:
		errs = append(errs, errors.New("WithAlertChannel needs WithAlerts: it sets the recipient and the alert policy"))
	case o.cfg.Alerts != nil:
		o.cfg.Alerts.Channels = o.channels
	}
	return newScheduler(jobs, store, o.cfg, errs)
}

// WithLocation sets Config.Location, the time zone cron specs are read in.
//
// Deprecated: set Config.Location.
func WithLocation(loc *time.Location) Option {
	return func(o *options) error {
		if loc == nil {
			return errors.New("WithLocation: nil location: pass time.UTC or time.LoadLocation(\"America/Sao_Paulo\")")
		}
		o.cfg.Location = loc
		return nil
	}
}

// WithSchedule replaces the cron spec of the job with that id (Config.Schedules).
//
// Deprecated: set Config.Schedules.
func WithSchedule(jobID, cronSpec string) Option {
	return func(o *options) error {
		if jobID == "" {
			return errors.New("WithSchedule: empty job id")
		}
		if o.cfg.Schedules == nil {
			o.cfg.Schedules = map[string]string{}
		}
		o.cfg.Schedules[jobID] = cronSpec
		return nil
	}
}

// WithDisabled keeps the job with that id off the schedule (Config.Disabled).
//
// Deprecated: set Config.Disabled.
func WithDisabled(jobID string) Option {
	return func(o *options) error {
		if jobID == "" {
			return errors.New("WithDisabled: empty job id")
		}
		o.cfg.Disabled = append(o.cfg.Disabled, jobID)
		return nil
	}
}

// WithClock sets Config.Clock, the clock that arms timers and stamps runs.
//
// Deprecated: set Config.Clock.
func WithClock(clock clockwork.Clock) Option {
	return func(o *options) error {
		if clock == nil {
			return errors.New("WithClock: nil clock: omit the option for the wall clock or pass clockwork.NewFakeClock()")
		}
		o.cfg.Clock = clock
		return nil
	}
}

// WithLogger sets Config.Logger.
//
// Deprecated: set Config.Logger.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("WithLogger: nil logger: omit the option for slog.Default()")
		}
		o.cfg.Logger = l
		return nil
	}
}

// WithSubscriptionStats sets Config.SubscriptionStats, where Stats takes its subscription
// counts from.
//
// Deprecated: set Config.SubscriptionStats.
func WithSubscriptionStats(stats func(context.Context) (billing.SubscriptionStats, error)) Option {
	return func(o *options) error {
		if stats == nil {
			return errors.New("WithSubscriptionStats: nil func: pass svc.SubscriptionStats, or omit the option")
		}
		o.cfg.SubscriptionStats = stats
		return nil
	}
}

// WithLocker sets Config.Locker, the lease lock replicas share.
//
// Deprecated: set Config.Locker.
func WithLocker(l billing.Locker) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("WithLocker: nil locker: omit the option to use the store's lock")
		}
		o.cfg.Locker = l
		return nil
	}
}

// WithLockTTL sets Config.LockTTL, how long a run's lease lasts between renewals.
//
// Deprecated: set Config.LockTTL.
func WithLockTTL(ttl time.Duration) Option {
	return func(o *options) error {
		if err := checkLockTTL(ttl); err != nil {
			return fmt.Errorf("WithLockTTL: %w", err)
		}
		o.cfg.LockTTL = ttl
		return nil
	}
}

// WithReplicaID sets Config.ReplicaID, this process's name in run records and leases.
//
// Deprecated: set Config.ReplicaID.
func WithReplicaID(id string) Option {
	return func(o *options) error {
		if id == "" {
			return errors.New("WithReplicaID: empty id: omit the option for hostname-random")
		}
		o.cfg.ReplicaID = id
		return nil
	}
}

// WithHistoryRetention sets Config.HistoryRetentionDays.
//
// Deprecated: set Config.HistoryRetentionDays.
func WithHistoryRetention(days int) Option {
	return func(o *options) error {
		if err := checkRetention(days); err != nil {
			return fmt.Errorf("WithHistoryRetention: %w", err)
		}
		o.cfg.HistoryRetentionDays = days
		return nil
	}
}

// WithRunTimeout sets Config.RunTimeout, after which a run's context is cancelled.
//
// Deprecated: set Config.RunTimeout.
func WithRunTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("WithRunTimeout: %v is not positive: omit the option for no timeout", d)
		}
		o.cfg.RunTimeout = d
		return nil
	}
}

// WithAlerts sets Config.Alerts: operator alerts go to the recipient through n, with
// policy p, and through every WithAlertChannel.
//
// Deprecated: set Config.Alerts to &Alerts{Notifier: n, To: to, Policy: p}.
func WithAlerts(n billing.Notifier, to billing.Recipient, p AlertPolicy) Option {
	return func(o *options) error {
		o.alertsSet = true
		if errs := checkAlerts(n, to, p, func(string) string { return "WithAlerts" }); len(errs) > 0 {
			return errors.Join(errs...)
		}
		o.cfg.Alerts = &Alerts{Notifier: n, To: to, Policy: p}
		return nil
	}
}

// WithAlertChannel adds a destination for the operator alerts of WithAlerts
// (Alerts.Channels). It needs WithAlerts.
//
// Deprecated: add an AlertChannel to Config.Alerts.Channels.
func WithAlertChannel(name string, n billing.Notifier) Option {
	return func(o *options) error {
		ch := AlertChannel{Name: name, Notifier: n}
		if errs := checkChannel(fmt.Sprintf("WithAlertChannel(%q)", name), ch, o.channels); len(errs) > 0 {
			return errors.Join(errs...)
		}
		o.channels = append(o.channels, ch)
		return nil
	}
}
