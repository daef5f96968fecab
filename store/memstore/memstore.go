package memstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/renewkit/renewkit/billing"
)

var _ billing.Store = (*Store)(nil)

// Optional capabilities memstore implements (declared in billing/store.go).
var (
	_ billing.CleanupCounter = (*Store)(nil)
	_ billing.AuditCounter   = (*Store)(nil)
	_ billing.Console        = (*Store)(nil)
	_ billing.SnapshotStore  = (*Store)(nil)
	_ billing.Pruner         = (*Store)(nil)
	_ billing.LockInspector  = (*Store)(nil)
	_ billing.Pinger         = (*Store)(nil)
)

// Store keeps everything in process memory behind one RWMutex, the webhook inbox behind its
// own (webhooks.go). The zero value is not usable;
// call New. Values cross the API as deep copies: nothing a caller passes in or gets back
// aliases stored state. Times are stored in UTC at millisecond precision.
type Store struct {
	mu    sync.RWMutex
	plans table[billing.Plan]
	users table[billing.User]

	subs     map[string]*subRecord
	subsByGW map[string]string // gateway + "\x00" + gateway subscription id -> a live subscription holding it
	// byUser holds, per user id, the user's live (not soft-deleted) subscriptions, so
	// per-user reads never scan every subscription.
	byUser map[string][]*subRecord
	// byEnd holds every subscription, ordered by (period end, ID) unless byEndDirty, so
	// claims and lists read only the period-end window they select and stop at their limit.
	// Inserts and period changes mark it dirty (period changes mark the entries' copies of
	// the period end stale too); the next reader sorts it again.
	byEnd      []endEntry
	byEndDirty bool
	byEndStale bool
	// pending holds, by id, the records that carry pending effects, so claims for them
	// never scan every subscription. It is small, so the writes that finish a batch's
	// effects find their records in it (see sub) rather than in subs.
	pending map[string]*subRecord
	// claims holds, per claim token, the records it claimed, so extending and releasing a
	// run's claims never scans every subscription.
	claims map[string]*claimSet
	// scratch is ClaimSubscriptions' reusable list of picked records (under the write lock).
	scratch []*subRecord
	// spareBoxes are emptied boxes of cleared pending effects, for the next bulk writes,
	// which fill them before they take mu; boxMu guards them (taken after mu, never
	// before).
	boxMu      sync.Mutex
	spareBoxes []*effectsBox

	payments     table[billing.Payment]
	paymentsByGW map[string]string // gateway + "\x00" + gateway payment id -> payment id
	sessions     table[billing.Session]
	// audit is ordered by CreatedAt, insertion order breaking ties; auditIDs holds every id
	// in it; auditSeq numbers the entries inserted.
	audit         []*auditRec
	auditIDs      map[string]struct{}
	auditSeq      uint64
	notifications table[billing.NotificationRecord]
	runs          table[billing.JobRun]
	jobStates     map[string]billing.JobState
	locks         map[string]billing.Lease
	lockState     map[string]lockState
	hooks         sync.RWMutex                    // guards events, inbox and woken instead of mu
	events        map[string]billing.WebhookEvent // written through setEvent
	inbox         inboxIndex                      // the pending ones of events
	woken         map[string]bool                 // events woken while claimed (WakeWebhookEvents)
	// con holds the console's orderings (console.go).
	con consoleIndex
}

// New returns an empty store.
func New() *Store {
	return &Store{
		plans:         newPlans(),
		users:         newUsers(),
		subs:          map[string]*subRecord{},
		subsByGW:      map[string]string{},
		byUser:        map[string][]*subRecord{},
		claims:        map[string]*claimSet{},
		pending:       map[string]*subRecord{},
		payments:      newPayments(),
		paymentsByGW:  map[string]string{},
		sessions:      newSessions(),
		auditIDs:      map[string]struct{}{},
		notifications: newNotifications(),
		runs:          newRuns(),
		jobStates:     map[string]billing.JobState{},
		locks:         map[string]billing.Lease{},
		lockState:     map[string]lockState{},
		events:        map[string]billing.WebhookEvent{},
		inbox:         newInboxIndex(),
		woken:         map[string]bool{},
	}
}

// Ping always succeeds; it lets readiness checks treat every store alike.
func (s *Store) Ping(ctx context.Context) error { return ctx.Err() }

var t0 = billing.TruncateTime

func notFound(kind, id string) error {
	return fmt.Errorf("memstore: %s %q: %w", kind, id, billing.ErrNotFound)
}

func conflict(kind, id string) error {
	return fmt.Errorf("memstore: %s %q: %w", kind, id, billing.ErrConflict)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("memstore: "+format+": %w", append(args, billing.ErrInvalidInput)...)
}

func gwKey(gateway, id string) string { return gateway + "\x00" + id }
