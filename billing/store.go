package billing

import (
	"context"
	"fmt"
	"slices"
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
	// ListUsers returns the non-deleted users among ids, in any order, in one read. Ids
	// with no user are left out. A user the store cannot decode is reported as a
	// *RecordError (several joined with errors.Join) next to the users it could read.
	ListUsers(ctx context.Context, ids []string) ([]User, error)
	// UpdateUsersAccess applies each change conditionally and returns one error per
	// change, aligned with changes (nil: applied). A change writes only the access fields
	// (PlanID, SubscriptionID, Status, AccessUntil, UpdatedAt) where Changed differs from
	// Read, and only while the stored user still has Read's PlanID, SubscriptionID and
	// Status; otherwise that change fails with ErrConflict (ErrNotFound for a missing
	// user) and writes nothing. The host's other fields are never written. The second
	// result reports a failure of the whole call (nothing can be said about any change).
	UpdateUsersAccess(ctx context.Context, changes []UserAccessChange) ([]error, error)
}

// UserAccessChange is one conditional write of a user's access fields: Read is the user
// as the writer read it, Changed as it should be.
type UserAccessChange struct {
	Read    User
	Changed User
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
	// UserIDs, when not empty, selects the subscriptions of these users.
	UserIDs []string
	// OmitPending makes ListSubscriptions return the records without their pending
	// effects (Pending nil), for a caller that reads only their state, so the store
	// neither copies nor decodes them. It selects nothing: Match ignores it.
	OmitPending bool
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
	if len(f.UserIDs) > 0 && !slices.Contains(f.UserIDs, s.UserID) {
		return false
	}
	return true
}

// ClaimParams asks for up to Limit records matching Filter that no other run holds: each
// returned record is leased to Token until LeaseUntil. A record is claimable when it has no
// claim, its lease ended at or before Now, and it is not already held by Token. Concurrent
// callers with different tokens never receive the same record while a lease is live.
// Records are claimed in claim order: oldest period end first, then by ID.
type ClaimParams struct {
	Filter     SubscriptionFilter
	Token      string
	Now        time.Time
	LeaseUntil time.Time
	Limit      int
	// Pending selects records that carry pending effects (Subscription.Pending != nil);
	// without it only records with none are claimed. Jobs finish a record's pending
	// effects before they change it again.
	Pending bool
	// After, when its ID is not empty, claims only records past it in claim order: a later
	// period end, or the same period end and a greater ID (in the order the store sorts
	// IDs by). A sweep passes the last record of its previous batch, so the store never
	// reads again the records the sweep went through, however many share one period end.
	After ClaimPosition
}

// ClaimPosition is a place in claim order: a period end, then an ID.
type ClaimPosition struct {
	PeriodEnd time.Time
	ID        string
}

// SubscriptionChange is one conditional write of a subscription. Read is the record as the
// writer read it, Changed as it should be. The store writes only the fields where Changed
// differs from Read (see ChangedSubscriptionFields; Pending, Version and the claim are not
// among them), and only while the stored record still has Read's Status, Read's
// CurrentPeriodEnd and Read's value of every field it writes. When ClaimToken is set, the
// record must also still be claimed by that token. When Effects is set, the record must
// carry no pending effects, and Effects is stored as its Pending in the same write. A change
// whose condition fails writes nothing and reports ErrConflict; a missing (or soft-deleted)
// record reports ErrNotFound. A change with nothing to write and no Effects succeeds when
// its condition holds. Every applied change increments Version. The store keeps nothing a
// change points at once the call returns (it copies or encodes Effects): the engine reuses
// that memory for later batches.
type SubscriptionChange struct {
	Read       Subscription
	Changed    Subscription
	ClaimToken string
	Effects    *Effects
}

// EffectsDone says that the pending effects recorded by Token on a subscription are done.
// ClaimToken, when set, is the claim the caller holds the record by (a run's token): the
// records of one CompleteEffects call that share it may be found together, by it, instead
// of one by one (mongostore does so where every query scans the collection). It is a
// hint, not a condition: effects still recorded by Token are completed whether or not
// the record is still held by ClaimToken.
type EffectsDone struct {
	SubscriptionID string
	Token          string
	ClaimToken     string
}

// SubscriptionStore keeps subscriptions.
type SubscriptionStore interface {
	// InsertSubscription stores a new subscription, assigning s.ID when empty (ErrConflict
	// on a duplicate id or a live duplicate of its gateway subscription id). s.Pending, when
	// set, is stored in the same write: a record created together with the effects its
	// creation leaves to do.
	InsertSubscription(ctx context.Context, s *Subscription) error
	GetSubscription(ctx context.Context, id string) (Subscription, error)
	// UpdateSubscriptions applies each change conditionally (see SubscriptionChange) and
	// returns one error per change, aligned with changes (nil: applied). Stores apply a
	// batch with as few round trips as they can; changes are independent, so one failing
	// never stops the others. The second result reports a failure of the whole call.
	UpdateSubscriptions(ctx context.Context, changes []SubscriptionChange) ([]error, error)
	// CompleteEffects removes the pending effects of each subscription, only where they
	// are still the ones recorded by the given token, and releases the record's claim in
	// the same write. Done effects of a record whose effects were replaced, or of a
	// missing record, are skipped without error.
	CompleteEffects(ctx context.Context, done []EffectsDone) error
	FindSubscriptionByGateway(ctx context.Context, gateway, gatewaySubscriptionID string) (Subscription, error)
	// ListUserSubscriptions returns the user's non-deleted subscriptions, newest first.
	ListUserSubscriptions(ctx context.Context, userID string) ([]Subscription, error)
	// ListSubscriptions returns up to limit (every one when limit <= 0) non-deleted
	// subscriptions matching f, oldest period end first, without claiming them. An
	// unreadable document is reported as a *RecordError next to the records read.
	ListSubscriptions(ctx context.Context, f SubscriptionFilter, limit int) ([]Subscription, error)
	ClaimSubscriptions(ctx context.Context, p ClaimParams) ([]Subscription, error)
	// ExtendClaims moves the lease of every record token holds to until, so a run that is
	// still working keeps its records.
	ExtendClaims(ctx context.Context, token string, until time.Time) error
	// ReleaseClaims drops every claim held by token, so records a run left unchanged are
	// claimable again at once.
	ReleaseClaims(ctx context.Context, token string) error
	SubscriptionCounter
}

// SubscriptionCounter counts subscriptions. Every SubscriptionStore is one; the scheduler,
// which needs only the job tables, finds it on its store by type assertion.
type SubscriptionCounter interface {
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
	// UpdatePayment writes only the fields where changed differs from read (see
	// ChangedPaymentFields), only while the stored payment still has read's Status and
	// read's value of every field it writes; otherwise it writes nothing and returns
	// ErrConflict (ErrNotFound for a missing payment, ErrConflict for a gateway payment id
	// another payment holds). It increments the stored Version. When changed.Pending is set
	// and is not read.Pending (another Token), the stored payment must also carry no pending
	// effects, and changed.Pending is stored in the same write; otherwise the pending
	// effects are neither written nor checked (a nil changed.Pending keeps the stored ones).
	UpdatePayment(ctx context.Context, read, changed Payment) error
	// CompletePaymentEffects removes the pending effects of payment id, only where they are
	// still the ones recorded by token. Effects replaced since, or a missing payment, are
	// skipped without error. It does not change Version.
	CompletePaymentEffects(ctx context.Context, id, token string) error
	// ListPaymentsWithEffects returns up to limit (1 or more) non-deleted payments that carry
	// pending effects, in id order: the ones a crashed process left. A payment the store
	// cannot decode is reported as a *RecordError (joined with errors.Join) next to the
	// payments it did read.
	ListPaymentsWithEffects(ctx context.Context, limit int) ([]Payment, error)
	// CancelStalePayments moves up to limit pending payments created at or before
	// createdBefore that carry no pending effects to cancelled with reason, stamping now,
	// and returns them. When effects is not nil, each cancelled payment records a copy of
	// it as its pending effects (Payment.Pending) in the same write, so that what follows
	// the cancellation survives a crash (see Effects.Audit for entries about the payment
	// that carries them). Each payment is returned by exactly one of several concurrent
	// callers. A payment the store cannot decode is not changed: it is reported as a
	// *RecordError (joined with errors.Join) next to the payments it did cancel.
	CancelStalePayments(ctx context.Context, createdBefore, now time.Time, reason string, limit int, effects *Effects) ([]Payment, error)
}

// SessionStore keeps sessions.
type SessionStore interface {
	InsertSession(ctx context.Context, s *Session) error
	GetSession(ctx context.Context, id string) (Session, error) // soft-deleted sessions are returned too
	// DeleteExpiredSessions soft-deletes up to limit live sessions whose ExpiresAt is at or
	// before expiredBefore and that carry no pending effects, stamping now, and returns
	// them; each session is returned by exactly one of several concurrent callers. When
	// effects is not nil, each deleted session records a copy of it as its pending effects
	// (Session.Pending) in the same write, so that what follows the delete survives a crash
	// (see Effects.Audit for entries about the sessions that carry them).
	DeleteExpiredSessions(ctx context.Context, expiredBefore, now time.Time, limit int, effects *Effects) ([]Session, error)
	// ListSessionsWithEffects returns the sessions, soft-deleted or not, that carry the
	// pending effects of up to limit (1 or more) tokens: every session carrying one of the
	// smallest limit tokens, in (Pending.Token, ID) order, however many share a token. These
	// are the ones a crashed process left. A session the store cannot decode is reported as
	// a *RecordError (joined with errors.Join) next to the sessions it did read.
	ListSessionsWithEffects(ctx context.Context, limit int) ([]Session, error)
	// CompleteSessionEffects removes the pending effects recorded by token from every
	// session that carries them; a token no session carries is no error.
	CompleteSessionEffects(ctx context.Context, token string) error
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
	// InsertAudits inserts entries that carry their ID, in one write where the store can.
	// An entry whose ID is stored already is skipped without error, so a retried batch
	// never doubles an entry.
	InsertAudits(ctx context.Context, entries []AuditEntry) error
	// ListAudit returns matching entries oldest first.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
}

// Notification record statuses.
const (
	// NotificationSending: reserved by Token until LeaseUntil; the notifier may have been
	// called. A reservation whose lease ended is taken over by the next reserver.
	NotificationSending = "sending"
	// NotificationSent: delivered.
	NotificationSent = "sent"
	// NotificationFailed: failed for good (the notifier said ErrUndeliverable).
	NotificationFailed = "failed"
)

// NotificationRecord is the send-once record of the notification with Key.
type NotificationRecord struct {
	Key            string           `json:"key"`
	Kind           NotificationKind `json:"kind"`
	SubscriptionID string           `json:"subscription_id,omitempty"`
	UserID         string           `json:"user_id,omitempty"`
	Status         string           `json:"status"` // NotificationSending, NotificationSent or NotificationFailed
	Error          string           `json:"error,omitempty"`
	// Token and LeaseUntil hold a reservation (status sending).
	Token      string    `json:"token,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	CreatedAt  time.Time `json:"created_at"`
	// UpdatedAt is when the status last changed.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// Data is what the message rendered, stored with the first reservation so the console
	// can show the email that was sent and resend one that failed; nil for records written
	// before it was kept.
	Data *NotificationData `json:"data,omitempty"`
}

// NotificationStore keeps send-once records: a key is reserved before the notifier is
// called and marked sent or failed after, so concurrent runs never send one key twice.
type NotificationStore interface {
	// ReserveNotifications reserves the key of each record for token until leaseUntil,
	// in one write where the store can, and reports per record (aligned) whether it is
	// now reserved by token. A key with no record is inserted with status sending (the
	// record's Kind, SubscriptionID, UserID, Data, CreatedAt = now). A sending record whose lease
	// ended at or before now is taken over. A sent or failed record, or a live
	// reservation of another token, is not reserved. A key already reserved by token is
	// reported reserved (its lease moves to leaseUntil).
	ReserveNotifications(ctx context.Context, recs []NotificationRecord, token string, now, leaseUntil time.Time) ([]bool, error)
	// FinishNotifications sets the Status (sent or failed), Error and UpdatedAt of each
	// record, only where its key is still reserved by token; the others are left alone. A
	// record with an empty Status releases the reservation instead (the send failed
	// transiently): the key is at once reservable again, as if never reserved.
	FinishNotifications(ctx context.Context, recs []NotificationRecord, token string) error
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
//
// Every optional capability is declared here, once; each store in renewkit asserts the ones
// it implements at compile time (var _ billing.Pruner = (*Store)(nil)).

// Pruner is an optional store capability: deleting what renewkit no longer needs. The
// cleanup_old_sessions job calls it after the sessions; a store without it keeps
// everything.
type Pruner interface {
	// Prune deletes, of each kind, at most p.Limit records older than its horizon (a zero
	// horizon keeps that kind) and reports how many went. Calling it again continues.
	Prune(ctx context.Context, p PruneParams) (PruneResult, error)
}

// LockInspector is an optional capability of a Locker (the store, or the scheduler's
// Config.Locker): it reports the live lease of key at now, if any, without taking it. With it,
// the scheduler's List and Get tell a run in progress from a record left "running" by a
// replica that stopped; without it they trust the record until the next run of the job
// marks it failed.
type LockInspector interface {
	CurrentLease(ctx context.Context, key string, now time.Time) (Lease, bool, error)
}

// Pinger is an optional store capability: a cheap round trip to the store's server, for a
// host's readiness check.
type Pinger interface {
	Ping(ctx context.Context) error
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

// Console is an optional store capability behind the operations console: the admin API's
// lists and subscriber timeline and the resend action. Lists run newest first by
// (CreatedAt, ID) and are paged by Cursor: each returns at most the query's limit (see
// PageLimit) of records strictly after its After cursor, and the cursor of the next page,
// zero when there is none. Every list is served by an index, so a page costs the same on a
// large store as on a small one.
type Console interface {
	SearchSubscriptions(ctx context.Context, q SubscriptionQuery) ([]Subscription, Cursor, error)
	ListPayments(ctx context.Context, q PaymentQuery) ([]Payment, Cursor, error)
	// ListNotifications lists notification records; the cursor's ID is the record's Key.
	ListNotifications(ctx context.Context, q NotificationQuery) ([]NotificationRecord, Cursor, error)
	// ListEntityAudit returns the newest limit (1 to MaxPageSize) audit entries whose
	// EntityID is one of ids, newest first.
	ListEntityAudit(ctx context.Context, ids []string, limit int) ([]AuditEntry, error)
	// RetryNotification reserves the failed record with key for token until leaseUntil
	// (status sending, Error cleared), so an operator can send it again; it reports false,
	// changing nothing, when the record is not failed, and ErrNotFound without a record.
	RetryNotification(ctx context.Context, key, token string, now, leaseUntil time.Time) (bool, error)
}

// SnapshotStore is an optional store capability that keeps one DailySnapshot per day for
// the console's charts.
type SnapshotStore interface {
	// PutDailySnapshot stores s for s.Day (normalised with SnapshotDay), replacing that
	// day's snapshot.
	PutDailySnapshot(ctx context.Context, s DailySnapshot) error
	// ListDailySnapshots returns the snapshots of the days at or after since, oldest first.
	ListDailySnapshots(ctx context.Context, since time.Time) ([]DailySnapshot, error)
}

// CheckNotificationOutcomes reports, wrapping ErrInvalidInput, the first record of a
// FinishNotifications call whose Status is not NotificationSent, NotificationFailed or
// empty (a release). Stores call it before they write anything.
func CheckNotificationOutcomes(recs []NotificationRecord) error {
	for i := range recs {
		switch recs[i].Status {
		case "", NotificationSent, NotificationFailed:
		default:
			return fmt.Errorf("notification %q: status %q is not %q, %q or empty (release): %w",
				recs[i].Key, recs[i].Status, NotificationSent, NotificationFailed, ErrInvalidInput)
		}
	}
	return nil
}
