package billing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config tunes the Service. The zero value of each field is the documented default.
type Config struct {
	// WarningDays is the warning ladder: days before the period end at which a warning goes
	// out, each once per period. Default [3]. Example: []int{7, 3, 1}.
	WarningDays []int
	// Grace is how long an auto-renewing subscription stays active past its period end
	// while the gateway retries the charge. Default 3 days. Manual subscriptions get none.
	Grace time.Duration
	// RenewWindow: the renew job asks the gateway about subscriptions ending within it.
	// Default 24h.
	RenewWindow time.Duration
	// SessionRetention: sessions expired longer ago than this are soft-deleted. Default 30 days.
	SessionRetention time.Duration
	// PendingPaymentTTL: pending payments older than this are cancelled. Default 7 days.
	PendingPaymentTTL time.Duration
	// Retention: how long notification records, webhook events and audit entries are
	// kept (see Retention for the defaults).
	Retention Retention
	// BatchSize is how many records a job claims at a time. Default 500.
	BatchSize int
	// ClaimLease is how long a claimed record (and a reserved notification key) stays
	// reserved to a run; a run renews its claims while it works, and a crashed run's
	// records are taken again after it. It is also the time-to-live of the payment
	// processor's locks (a payment, a gateway subscription, a user), which are not renewed:
	// a process killed while applying a payment holds them this long, and one call that
	// takes longer than this may lose them (its writes stay conditional). Default 2 minutes.
	ClaimLease time.Duration
	// SendConcurrency bounds how many notifications (and gateway lookups) a job run has in
	// flight at once. Default 8; give smtpnotify a pool of the same size.
	SendConcurrency int
	// BreakerThreshold is how many consecutive transient notifier failures make a run stop
	// sending: its emails stay pending for the next run and the run reports
	// ErrNotifierUnavailable. The warning job, which only sends, stops there; the expire and
	// renew jobs go on ending and renewing subscriptions (access follows what was paid
	// whether or not email works). Default 5.
	BreakerThreshold int
	// ReconcileWindow: the renew job keeps asking the gateway about auto-renewing
	// subscriptions that expired (after their grace period) within it, so a renewal whose
	// webhook was lost restores access. Default 7 days.
	ReconcileWindow time.Duration
	// LockWait is how long the payment processor waits for a payment or gateway
	// subscription that another request is processing before it gives up with ErrConflict
	// (a webhook then answers 503 and the gateway retries). Default 2s; the wait is in real
	// time, not on Clock.
	LockWait time.Duration
	// ReferenceSecret signs and verifies the references that bind a checkout or gateway
	// subscription to a user and plan (SignReference, VerifyReference): the one place the
	// secret is configured, shared by every gateway. At least MinReferenceSecret (16) random
	// bytes. Empty: no reference verifies, so webhooks never create subscriptions from
	// gateway data (payments the host created and named by id still work). It never
	// appears in logs or errors.
	ReferenceSecret []byte
	// ReversalAccess says when a full refund or a chargeback ends the access the payment
	// bought: ReversalAccessAtOnce (the default) or ReversalAccessAtPeriodEnd.
	ReversalAccess ReversalAccess
	// Inbox tunes the webhook inbox: the retries, parking and worker (see InboxConfig).
	Inbox InboxConfig
	// Renewals maps a gateway name (GatewayStripe, ...) to its lookup for the renew job.
	Renewals map[string]RenewalLookup
	// Clock defaults to SystemClock().
	Clock Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// LogValue keeps ReferenceSecret out of logs: it reports only whether one is set.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("warning_days", c.WarningDays),
		slog.Duration("grace", c.Grace),
		slog.Int("batch_size", c.BatchSize),
		slog.Bool("reference_secret", len(c.ReferenceSecret) > 0),
	)
}

func (c *Config) setDefaults() {
	if len(c.WarningDays) == 0 {
		c.WarningDays = []int{3}
	}
	if c.Grace == 0 {
		c.Grace = 72 * time.Hour
	}
	if c.RenewWindow == 0 {
		c.RenewWindow = 24 * time.Hour
	}
	if c.SessionRetention == 0 {
		c.SessionRetention = 30 * 24 * time.Hour
	}
	if c.PendingPaymentTTL == 0 {
		c.PendingPaymentTTL = 7 * 24 * time.Hour
	}
	c.Retention.setDefaults()
	c.Inbox.setDefaults()
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	if c.ClaimLease == 0 {
		c.ClaimLease = 2 * time.Minute
	}
	if c.SendConcurrency == 0 {
		c.SendConcurrency = 8
	}
	if c.BreakerThreshold == 0 {
		c.BreakerThreshold = 5
	}
	if c.ReconcileWindow == 0 {
		c.ReconcileWindow = 7 * 24 * time.Hour
	}
	if c.LockWait == 0 {
		c.LockWait = 2 * time.Second
	}
	if c.Clock == nil {
		c.Clock = SystemClock()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem with the configuration at once.
func (c Config) Validate() error {
	var errs []error
	for _, d := range c.WarningDays {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("WarningDays: %d is not a positive number of days", d))
		}
	}
	for name, d := range map[string]time.Duration{
		"Grace": c.Grace, "RenewWindow": c.RenewWindow, "SessionRetention": c.SessionRetention,
		"PendingPaymentTTL": c.PendingPaymentTTL, "ClaimLease": c.ClaimLease, "LockWait": c.LockWait,
		"ReconcileWindow": c.ReconcileWindow,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s: %v is negative; use 0 for the default", name, d))
		}
	}
	for name, n := range map[string]int{"BatchSize": c.BatchSize, "SendConcurrency": c.SendConcurrency, "BreakerThreshold": c.BreakerThreshold} {
		if n < 0 {
			errs = append(errs, fmt.Errorf("%s: %d is negative; use 0 for the default", name, n))
		}
	}
	if n := len(c.ReferenceSecret); n > 0 && n < MinReferenceSecret {
		errs = append(errs, fmt.Errorf("ReferenceSecret: %d bytes is too short; use at least %d random bytes", n, MinReferenceSecret))
	}
	if err := c.ReversalAccess.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Inbox.Validate(); err != nil {
		errs = append(errs, err)
	}
	for gw, l := range c.Renewals {
		if l == nil {
			errs = append(errs, fmt.Errorf("renewal lookup for %q (Config.Renewals) is nil: remove it or pass the gateway's lookup", gw))
		}
	}
	return errors.Join(errs...)
}

// Service runs the lifecycle jobs and owns the PaymentProcessor. It is safe for concurrent
// use, and several Services (processes, replicas) may share one Store.
type Service struct {
	store    Store
	notifier Notifier
	cfg      Config
	clock    Clock
	log      *slog.Logger
	inbox    *inbox
}

// NewService builds a Service. store and notifier are required.
func NewService(store Store, notifier Notifier, cfg Config) (*Service, error) {
	var errs []error
	if store == nil {
		errs = append(errs, errors.New("missing store: pass memstore.New() or mongostore.New(db, cfg)"))
	}
	if notifier == nil {
		errs = append(errs, errors.New("missing notifier: pass lognotify.NewNotifier(lognotify.Config{}) or an smtpnotify.Notifier"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("billing: invalid service configuration: %w", err)
	}
	cfg.setDefaults()
	days := slices.Clone(cfg.WarningDays)
	slices.Sort(days)
	cfg.WarningDays = slices.Compact(days)
	return &Service{store: store, notifier: notifier, cfg: cfg, clock: cfg.Clock, log: cfg.Logger, inbox: newInbox()}, nil
}

// Clock returns the service's clock.
func (s *Service) Clock() Clock { return s.clock }

// Config returns the effective configuration (defaults filled in).
func (s *Service) Config() Config { return s.cfg }

// Jobs returns the five default jobs with their default schedules, for a scheduler to run.
func (s *Service) Jobs() []Job {
	job := func(id, schedule, desc string, run func(context.Context) (Result, error)) Job {
		return Job{ID: id, Name: id, Schedule: schedule, Description: desc, Run: run,
			Preview: func(ctx context.Context) (any, error) { return s.Preview(ctx, id) }}
	}
	return []Job{
		job(JobCheckExpiring, "0 9 * * *", "Warn subscribers whose period ends soon",
			func(ctx context.Context) (Result, error) { return s.CheckExpiringSubscriptions(ctx) }),
		job(JobProcessExpired, "30 0 * * *", "Expire lapsed subscriptions and revoke access",
			func(ctx context.Context) (Result, error) { return s.ProcessExpiredSubscriptions(ctx) }),
		job(JobRenew, "0 2 * * *", "Reconcile auto-renewing subscriptions with their gateway",
			func(ctx context.Context) (Result, error) { return s.RenewSubscriptions(ctx) }),
		job(JobCleanupSessions, "0 3 * * 0", "Soft-delete sessions expired long ago",
			func(ctx context.Context) (Result, error) { return s.CleanupOldSessions(ctx) }),
		job(JobCleanupPayments, "0 4 1 * *", "Cancel payments left pending too long",
			func(ctx context.Context) (Result, error) { return s.CleanupPendingPayments(ctx) }),
	}
}

// newToken returns a random identifier for claims and records.
func newToken() string {
	token, _ := newTokenWith("")
	return token
}

// tokenLen is the length of newToken's identifiers.
const tokenLen = 24

// newTokenWith returns a new token and the token followed by suffix, both from one
// allocation.
func newTokenWith(suffix string) (token, withSuffix string) {
	var raw [tokenLen / 2]byte
	_, _ = rand.Read(raw[:])
	var buf [64]byte // append grows past it for a long suffix
	b := buf[:tokenLen]
	hex.Encode(b, raw[:])
	withSuffix = string(append(b, suffix...))
	return withSuffix[:tokenLen], withSuffix
}

// NewID returns a random 24-hex-digit identifier (the length of a MongoDB ObjectID).
func NewID() string { return newToken() }

func (s *Service) now() time.Time { return TruncateTime(s.clock.Now()) }

// audit writes an audit entry; a failure is logged and returned.
func (s *Service) audit(ctx context.Context, e AuditEntry) error {
	if e.Actor == "" {
		e.Actor = "renewkit"
	}
	e.CreatedAt = s.now()
	if err := s.store.InsertAudit(ctx, &e); err != nil {
		s.log.ErrorContext(ctx, "audit entry not written", "action", e.Action, "entity_id", e.EntityID, "error", err)
		return fmt.Errorf("writing audit %s: %w", e.Action, err)
	}
	return nil
}

// notifyOnce sends n unless its key is sent, failed for good or being sent by someone
// else. The key is reserved before the notifier is called and marked after, so concurrent
// callers never send it twice. It reports whether a message went out. A permanent failure is
// recorded (so it is not retried) and reported as not sent, no error; a transient one
// releases the reservation and is returned.
func (s *Service) notifyOnce(ctx context.Context, n Notification, subscriptionID string) (bool, error) {
	now := s.now()
	token := newToken()
	rec := NotificationRecord{Key: n.Key, Kind: n.Kind, SubscriptionID: subscriptionID, UserID: n.To.UserID, Data: &n.Data}
	ok, err := s.store.ReserveNotifications(ctx, []NotificationRecord{rec}, token, now, now.Add(s.cfg.ClaimLease))
	if err = aligned(ok, err, 1); err != nil {
		return false, fmt.Errorf("reserving notification %s: %w", n.Key, err)
	}
	if !ok[0] {
		return false, s.notDone(ctx, n.Key)
	}
	rec, why := s.outcome(ctx, rec, s.notifier.Notify(ctx, n))
	// A send that happened must be recorded: the write outlives ctx and gets as long as the
	// jobs give theirs (a store may first wait out a crashed replica's short write lease).
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(s.cfg.ClaimLease, time.Minute))
	defer cancel()
	if err := retry(fctx, 3, func() error { return s.store.FinishNotifications(fctx, []NotificationRecord{rec}, token) }); err != nil {
		return rec.Status == NotificationSent, errors.Join(why, fmt.Errorf("recording notification %s: %w", n.Key, err))
	}
	return rec.Status == NotificationSent, why
}

func recipient(u User) Recipient {
	return Recipient{UserID: u.ID, Email: u.Email, Name: u.Name, Locale: u.Locale, TimeZone: u.TimeZone}
}

// subjectOf loads the user and plan a subscription notification needs.
func (s *Service) subjectOf(ctx context.Context, sub Subscription) (User, Plan, error) {
	u, err := s.store.GetUser(ctx, sub.UserID)
	if err != nil {
		return User{}, Plan{}, fmt.Errorf("loading user %s: %w", sub.UserID, err)
	}
	p, err := s.store.GetPlan(ctx, sub.PlanID)
	if err != nil {
		return User{}, Plan{}, fmt.Errorf("loading plan %s: %w", sub.PlanID, err)
	}
	return u, p, nil
}

func notificationKey(kind NotificationKind, id string, at time.Time, extra ...int) string {
	// Built in one buffer sized for the usual key: one allocation.
	var b strings.Builder
	b.Grow(len(kind) + len(id) + 16 + 4*len(extra))
	b.WriteString(string(kind))
	b.WriteByte(':')
	b.WriteString(id)
	var num [20]byte
	if !at.IsZero() {
		b.WriteByte(':')
		b.Write(strconv.AppendInt(num[:0], at.UnixMilli(), 10))
	}
	for _, e := range extra {
		b.WriteByte(':')
		b.Write(strconv.AppendInt(num[:0], int64(e), 10))
	}
	return b.String()
}

func daysUntil(now, end time.Time) int {
	d := end.Sub(now)
	days := int(d / (24 * time.Hour))
	if d%(24*time.Hour) > 0 {
		days++
	}
	return days
}
