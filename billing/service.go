package billing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Config tunes the Service. The zero value of each field is the documented default.
type Config struct {
	// WarningDays is the warning ladder: days before the period end at which a warning goes
	// out, each once per period. Default [3] (the seed). Example: []int{7, 3, 1}.
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
	// BatchSize is how many records a job claims at a time. Default 500.
	BatchSize int
	// ClaimLease is how long a claimed record stays reserved to a run; a crashed run's
	// records are taken again after it. Default 10 minutes.
	ClaimLease time.Duration
	// LockWait is how long the payment processor waits for a payment or gateway
	// subscription that another request is processing before it gives up with ErrConflict
	// (a webhook then answers 503 and the gateway retries). Default 2s; the wait is in real
	// time, not on Clock.
	LockWait time.Duration
	// Renewals maps a gateway name (GatewayStripe, ...) to its lookup for the renew job.
	Renewals map[string]RenewalLookup
	// Clock defaults to SystemClock().
	Clock Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
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
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	if c.ClaimLease == 0 {
		c.ClaimLease = 10 * time.Minute
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
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s: %v is negative; use 0 for the default", name, d))
		}
	}
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("BatchSize: %d is negative; use 0 for the default", c.BatchSize))
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
}

// NewService builds a Service. store and notifier are required.
func NewService(store Store, notifier Notifier, cfg Config) (*Service, error) {
	var errs []error
	if store == nil {
		errs = append(errs, errors.New("missing store: pass memstore.New() or mongostore.New(db, cfg)"))
	}
	if notifier == nil {
		errs = append(errs, errors.New("missing notifier: pass lognotify.New(logger) or an smtpnotify.Notifier"))
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
	return &Service{store: store, notifier: notifier, cfg: cfg, clock: cfg.Clock, log: cfg.Logger}, nil
}

// Store returns the service's store.
func (s *Service) Store() Store { return s.store }

// Clock returns the service's clock.
func (s *Service) Clock() Clock { return s.clock }

// Config returns the effective configuration (defaults filled in).
func (s *Service) Config() Config { return s.cfg }

// Jobs returns the five default jobs with the seed's schedules, for a scheduler to run.
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
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NewID returns a random 24-hex-digit identifier (the length of a MongoDB ObjectID).
func NewID() string { return newToken() }

func (s *Service) now() time.Time { return TruncateTime(s.clock.Now()) }

// maxResultErrors bounds the per-record error texts a job result carries.
const maxResultErrors = 20

// sweepStats counts what a sweep did, for the job results.
type sweepStats struct {
	found, failed int
	errors        []string
}

func (st *sweepStats) fail(id string, err error) {
	st.failed++
	if len(st.errors) < maxResultErrors {
		st.errors = append(st.errors, id+": "+err.Error())
	}
}

// sweep claims batches matching f until none are left and calls work for each record. The
// run's claims are released at the end so records it left unchanged are at once claimable by
// the next run; a crashed run's claims expire after ClaimLease. A record the store cannot
// read counts as a failure of that record; the sweep goes on.
func (s *Service) sweep(ctx context.Context, f SubscriptionFilter, st *sweepStats, work func(Subscription) error) error {
	token := newToken()
	defer func() {
		// Releasing touches every record the run claimed: on a slow store that takes a
		// while, and the run's own context may be over. Bounded by the lease: after it the
		// claims lapse anyway.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(s.cfg.ClaimLease, 2*time.Minute))
		defer cancel()
		if rerr := s.store.ReleaseClaims(rctx, token); rerr != nil {
			s.log.WarnContext(ctx, "releasing claims failed; they expire after the lease", "error", rerr)
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := s.now()
		batch, err := s.store.ClaimSubscriptions(ctx, ClaimParams{
			Filter: f, Token: token, Now: now, LeaseUntil: now.Add(s.cfg.ClaimLease), Limit: s.cfg.BatchSize,
		})
		bad, partial := recordErrors(err)
		if err != nil && !partial {
			return fmt.Errorf("claiming subscriptions: %w", err)
		}
		for _, re := range bad {
			st.found++
			st.fail(re.ID, re)
			s.log.ErrorContext(ctx, "subscription record unreadable; fix the document", "subscription_id", re.ID, "error", re.Err)
		}
		for _, sub := range batch {
			st.found++
			if werr := work(sub); werr != nil {
				st.fail(sub.ID, werr)
				s.log.WarnContext(ctx, "subscription not processed; a later run retries it",
					"subscription_id", sub.ID, "error", werr)
			}
		}
		if len(batch)+len(bad) < s.cfg.BatchSize {
			return nil
		}
	}
}

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

// notifyOnce sends n unless its key is recorded. It reports whether a message went out. A
// permanent failure is recorded (so it is not retried) and reported as not sent, no error.
func (s *Service) notifyOnce(ctx context.Context, n Notification, subscriptionID string) (bool, error) {
	if _, err := s.store.GetNotification(ctx, n.Key); err == nil {
		return false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return false, fmt.Errorf("checking notification %s: %w", n.Key, err)
	}
	rec := NotificationRecord{Key: n.Key, Kind: n.Kind, SubscriptionID: subscriptionID, UserID: n.To.UserID, Status: "sent"}
	sendErr := s.notifier.Notify(ctx, n)
	if sendErr != nil && !errors.Is(sendErr, ErrUndeliverable) {
		return false, fmt.Errorf("sending %s: %w", n.Kind, sendErr)
	}
	if sendErr != nil {
		rec.Status, rec.Error = "failed", sendErr.Error()
		s.log.WarnContext(ctx, "notification undeliverable; not retried", "kind", n.Kind, "key", n.Key, "error", sendErr)
	}
	rec.CreatedAt = s.now()
	if err := s.store.RecordNotification(ctx, rec); err != nil && !errors.Is(err, ErrConflict) {
		return sendErr == nil, fmt.Errorf("recording notification %s: %w", n.Key, err)
	}
	return sendErr == nil, nil
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

func notificationKey(kind NotificationKind, id string, at time.Time, extra ...any) string {
	k := string(kind) + ":" + id
	if !at.IsZero() {
		k += fmt.Sprintf(":%d", at.UnixMilli())
	}
	for _, e := range extra {
		k += fmt.Sprintf(":%v", e)
	}
	return k
}

func daysUntil(now, end time.Time) int {
	d := end.Sub(now)
	days := int(d / (24 * time.Hour))
	if d%(24*time.Hour) > 0 {
		days++
	}
	return days
}
