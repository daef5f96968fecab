package billing

import (
	"context"
	"time"
)

// Store is everything renewkit keeps. Adapters (store/memstore, store/mongostore) implement
// all parts; store/storetest is the conformance suite they must pass. Every method takes ctx
// first and returns an error wrapping ErrNotFound or ErrConflict where those apply. Times are
// returned in UTC at millisecond precision.
type Store interface {
	PlanStore
	UserStore
	SubscriptionStore
	PaymentStore
	SessionStore
	AuditStore
	NotificationStore
	JobRunStore
	JobStateStore
	Locker
	WebhookEventStore
}

// PlanStore keeps plans.
type PlanStore interface {
	InsertPlan(ctx context.Context, p *Plan) error // assigns p.ID when empty; ErrConflict on a duplicate id
	GetPlan(ctx context.Context, id string) (Plan, error)
	ListPlans(ctx context.Context) ([]Plan, error)
}

// UserStore keeps the subscription-related fields of users.
type UserStore interface {
	InsertUser(ctx context.Context, u *User) error
	GetUser(ctx context.Context, id string) (User, error)
	// UpdateUserAccess writes the access fields (PlanID, SubscriptionID, Status,
	// AccessUntil, UpdatedAt) of the user and leaves the host's other fields alone.
	UpdateUserAccess(ctx context.Context, u User) error
}

// SubscriptionFilter selects live records for the jobs. Zero fields do not filter.
type SubscriptionFilter struct {
	Statuses []SubscriptionStatus
	// PeriodEndAfter is exclusive, PeriodEndBefore inclusive.
	PeriodEndAfter  time.Time
	PeriodEndBefore time.Time
	// AutoRenews selects on Subscription.AutoRenews() when not nil.
	AutoRenews *bool
	// WarningDueDays, when > 0, selects subscriptions for which Subscription.WarningDue
	// holds for that ladder offset.
	WarningDueDays int
	// PlanID selects one plan's subscriptions when not empty.
	PlanID string
}

// Match reports whether s passes the filter (soft-deleted records never do). Adapters that
// filter in memory use it; query-based adapters must agree with it (storetest checks).
func (f SubscriptionFilter) Match(s Subscription) bool {
	if s.Deleted {
		return false
	}
	if len(f.Statuses) > 0 {
		ok := false
		for _, st := range f.Statuses {
			if s.Status == st {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if !f.PeriodEndAfter.IsZero() && !s.CurrentPeriodEnd.After(f.PeriodEndAfter) {
		return false
	}
	if !f.PeriodEndBefore.IsZero() && s.CurrentPeriodEnd.After(f.PeriodEndBefore) {
		return false
	}
	if f.AutoRenews != nil && s.AutoRenews() != *f.AutoRenews {
		return false
	}
	if f.WarningDueDays > 0 && !s.WarningDue(f.WarningDueDays) {
		return false
	}
	if f.PlanID != "" && s.PlanID != f.PlanID {
		return false
	}
	return true
}

// ClaimParams asks for up to Limit records matching Filter that no other run holds: each
// returned record is leased to Token until LeaseUntil. A record is claimable when it has no
// claim, its lease ended at or before Now, and it is not already held by Token. Concurrent
// callers with different tokens never receive the same record while a lease is live.
type ClaimParams struct {
	Filter     SubscriptionFilter
	Token      string
	Now        time.Time
	LeaseUntil time.Time
	Limit      int
}

// SubscriptionStore keeps subscriptions.
type SubscriptionStore interface {
	InsertSubscription(ctx context.Context, s *Subscription) error
	GetSubscription(ctx context.Context, id string) (Subscription, error)
	// UpdateSubscription replaces the stored record when its Version equals s.Version and
	// stores s.Version+1 (reflected in the returned value); otherwise ErrConflict.
	UpdateSubscription(ctx context.Context, s Subscription) (Subscription, error)
	FindSubscriptionByGateway(ctx context.Context, gateway, gatewaySubscriptionID string) (Subscription, error)
	// ListUserSubscriptions returns the user's non-deleted subscriptions, newest first.
	ListUserSubscriptions(ctx context.Context, userID string) ([]Subscription, error)
	ClaimSubscriptions(ctx context.Context, p ClaimParams) ([]Subscription, error)
	// ReleaseClaims drops every claim held by token, so records a run left unchanged are
	// claimable again at once.
	ReleaseClaims(ctx context.Context, token string) error
	// CountSubscriptions counts non-deleted subscriptions matching f.
	CountSubscriptions(ctx context.Context, f SubscriptionFilter) (int, error)
	// CountSubscriptionsByStatus counts non-deleted subscriptions per status.
	CountSubscriptionsByStatus(ctx context.Context) (map[SubscriptionStatus]int, error)
}

// PaymentStore keeps payments.
type PaymentStore interface {
	InsertPayment(ctx context.Context, p *Payment) error // ErrConflict on a duplicate id or (gateway, gateway_payment_id)
	GetPayment(ctx context.Context, id string) (Payment, error)
	FindPaymentByGateway(ctx context.Context, gateway, gatewayPaymentID string) (Payment, error)
	// UpdatePayment is UpdateSubscription's counterpart for payments.
	UpdatePayment(ctx context.Context, p Payment) (Payment, error)
	// CancelStalePayments moves up to limit pending payments created at or before
	// createdBefore to cancelled with reason, stamping now, and returns them. Each payment
	// is returned by exactly one of several concurrent callers.
	CancelStalePayments(ctx context.Context, createdBefore, now time.Time, reason string, limit int) ([]Payment, error)
}

// SessionStore keeps sessions.
type SessionStore interface {
	InsertSession(ctx context.Context, s *Session) error
	GetSession(ctx context.Context, id string) (Session, error) // soft-deleted sessions are returned too
	// DeleteExpiredSessions soft-deletes up to limit live sessions whose ExpiresAt is at or
	// before expiredBefore, stamping now, and returns them; each session is returned by
	// exactly one of several concurrent callers.
	DeleteExpiredSessions(ctx context.Context, expiredBefore, now time.Time, limit int) ([]Session, error)
}

// AuditFilter selects audit entries; zero fields do not filter.
type AuditFilter struct {
	Action   string
	EntityID string
	Since    time.Time
	Limit    int
}

// AuditStore keeps the audit log.
type AuditStore interface {
	InsertAudit(ctx context.Context, e *AuditEntry) error
	// ListAudit returns matching entries oldest first.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
}

// NotificationRecord says a notification with Key was handled: sent, or failed for good.
type NotificationRecord struct {
	Key            string           `json:"key"`
	Kind           NotificationKind `json:"kind"`
	SubscriptionID string           `json:"subscription_id,omitempty"`
	UserID         string           `json:"user_id,omitempty"`
	Status         string           `json:"status"` // "sent" or "failed"
	Error          string           `json:"error,omitempty"`
	CreatedAt      time.Time        `json:"created_at"`
}

// NotificationStore records sends so each happens once per key.
type NotificationStore interface {
	// RecordNotification stores r; ErrConflict if its key is recorded already.
	RecordNotification(ctx context.Context, r NotificationRecord) error
	// GetNotification returns the record for key or ErrNotFound.
	GetNotification(ctx context.Context, key string) (NotificationRecord, error)
}

// JobRunFilter selects job runs; zero fields do not filter.
type JobRunFilter struct {
	JobID string
	Since time.Time
	Limit int
}

// JobRunStore keeps the run history.
type JobRunStore interface {
	InsertJobRun(ctx context.Context, r *JobRun) error
	UpdateJobRun(ctx context.Context, r JobRun) error
	// ListJobRuns returns matching runs newest first.
	ListJobRuns(ctx context.Context, f JobRunFilter) ([]JobRun, error)
	// DeleteJobRunsBefore removes runs started before t and says how many.
	DeleteJobRunsBefore(ctx context.Context, t time.Time) (int, error)
}

// JobStateStore keeps per-job state shared by every replica (pause, failure streaks).
type JobStateStore interface {
	// GetJobState returns the job's state, or a zero JobState{JobID: id} (Version 0) when
	// none is stored.
	GetJobState(ctx context.Context, jobID string) (JobState, error)
	// PutJobState stores s, replacing the whole state, only when the stored version equals
	// s.Version (a job without a stored state is at version 0), and stores s.Version+1.
	// Otherwise it changes nothing and returns an error wrapping ErrConflict: another writer
	// stored the state since s was read; read it again and re-apply the change. Of several
	// concurrent writers holding the same version, exactly one succeeds.
	PutJobState(ctx context.Context, s JobState) error
}

// Lease is a held lock. Token is a fencing counter that grows with every acquisition of the
// key, so a stale holder can be told from the current one.
type Lease struct {
	Key       string    `json:"key"`
	Owner     string    `json:"owner"`
	Token     int64     `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Locker is a lease lock shared by replicas.
type Locker interface {
	// AcquireLock takes key for owner until now+ttl when it is free or its lease ended;
	// ErrLockHeld otherwise.
	AcquireLock(ctx context.Context, key, owner string, now time.Time, ttl time.Duration) (Lease, error)
	// RenewLock extends a held lease to now+ttl; ErrLockLost when l is no longer current.
	RenewLock(ctx context.Context, l Lease, now time.Time, ttl time.Duration) (Lease, error)
	// ReleaseLock frees a held lease; ErrLockLost when l is no longer current.
	ReleaseLock(ctx context.Context, l Lease) error
}

// Optional capabilities. Stores may implement these; callers find them by type assertion
// and fall back (or report ErrPreviewUnsupported) without them.

// SubscriptionLister is an optional store capability, found by type assertion, that lets
// Service.Preview list the subscriptions a job would select without claiming them.
type SubscriptionLister interface {
	// ListSubscriptions returns up to limit non-deleted subscriptions matching f, oldest
	// period end first.
	ListSubscriptions(ctx context.Context, f SubscriptionFilter, limit int) ([]Subscription, error)
}

// CleanupCounter is an optional store capability that lets Service.Preview count what the
// cleanup jobs would change.
type CleanupCounter interface {
	// CountExpiredSessions counts live sessions expired at or before t.
	CountExpiredSessions(ctx context.Context, t time.Time) (int, error)
	// CountStalePayments counts pending payments created at or before t.
	CountStalePayments(ctx context.Context, t time.Time) (int, error)
}

// AuditCounter is an optional store capability that lets Service.Analytics count audit
// entries on the server instead of reading them.
type AuditCounter interface {
	// CountAudit counts entries matching f (f.Limit is ignored).
	CountAudit(ctx context.Context, f AuditFilter) (int, error)
}
