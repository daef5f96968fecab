package stripegw_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/stripegw"
	"github.com/renewkit/renewkit/gateways/stripegw/stripegwtest"
	"github.com/renewkit/renewkit/internal/mongotest"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/memstore"
	"github.com/renewkit/renewkit/store/mongostore"
)

// faultyInbox is a store whose inbox writes fail or are held on demand, per event id.
type faultyInbox struct {
	billing.Store
	mu         sync.Mutex
	failFinish map[string]int // finishes of the event left to fail
	failClaim  int            // claims left to return what they claimed with an error
	// holdEvent's ordering check (made by the worker with the event's batch in hand, before
	// it is applied) waits until a lease renewal has succeeded since holdUntilRenewed.
	holdEvent string
	renewed   chan struct{} // closed by that renewal
	renewals  int           // renewals that succeeded since holdUntilRenewed
}

func newFaultyInbox(st billing.Store) *faultyInbox {
	return &faultyInbox{Store: st, failFinish: map[string]int{}}
}

// holdUntilRenewed makes the worker hold id, claimed, until its batch's leases are renewed.
func (s *faultyInbox) holdUntilRenewed(id string) {
	s.set(func(s *faultyInbox) { s.holdEvent, s.renewed, s.renewals = id, make(chan struct{}), 0 })
}

func (s *faultyInbox) WebhookEventBlocked(ctx context.Context, ev billing.WebhookEvent) (bool, error) {
	s.mu.Lock()
	hold, renewed := ev.EventID == s.holdEvent, s.renewed
	s.mu.Unlock()
	if hold {
		select {
		case <-renewed:
		case <-time.After(10 * time.Second):
			return false, fmt.Errorf("injected hold of %s: no lease renewal within 10s", ev.EventID)
		}
	}
	return s.Store.WebhookEventBlocked(ctx, ev)
}

func (s *faultyInbox) RenewWebhookLeases(ctx context.Context, token string, until time.Time) (int, error) {
	n, err := s.Store.RenewWebhookLeases(ctx, token, until)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && s.renewed != nil {
		if s.renewals++; s.renewals == 1 {
			close(s.renewed)
		}
	}
	return n, err
}

func (s *faultyInbox) set(f func(s *faultyInbox)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *faultyInbox) FinishWebhookEvent(ctx context.Context, f billing.WebhookFinish) error {
	s.mu.Lock()
	fail := s.failFinish[f.EventID]
	if fail > 0 {
		s.failFinish[f.EventID]--
	}
	s.mu.Unlock()
	if fail > 0 {
		return fmt.Errorf("injected: finishing %s: %w", f.EventID, context.DeadlineExceeded)
	}
	return s.Store.FinishWebhookEvent(ctx, f)
}

func (s *faultyInbox) ClaimWebhookEvents(ctx context.Context, p billing.WebhookClaimParams) ([]billing.WebhookEvent, error) {
	evs, err := s.Store.ClaimWebhookEvents(ctx, p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && len(evs) > 0 && s.failClaim > 0 {
		s.failClaim--
		return evs, errors.New("injected: the claim wrote its events, then a later write of the batch failed")
	}
	return evs, err
}

// inboxStores runs f on memstore and on FerretDB (skipped, or failed under CI, without a
// server).
func inboxStores(t *testing.T, f func(t *testing.T, st billing.Store)) {
	t.Run("memstore", func(t *testing.T) { f(t, memstore.New()) })
	t.Run("ferretdb", func(t *testing.T) {
		stores, _, _ := mongotest.Stores(t, "rkfinish", 1, mongostore.Config{})
		f(t, stores[0])
	})
}

// faultEnv is an inbox env on st behind a faultyInbox, with the given inbox config.
func faultEnv(t *testing.T, st billing.Store, inbox billing.InboxConfig) (*env, *faultyInbox, *billing.InboxWorker) {
	t.Helper()
	fs := newFaultyInbox(st)
	e := &env{t: t, st: st, clock: testkit.NewClock(t0), notes: testkit.NewNotifier()}
	r := newReplica(t, fs, e.clock, e.notes, inbox)
	e.svc, e.h = r.svc, r.h
	testkit.Seed(t, st, testkit.Plan("pro", billing.CycleMonthly, 2990), testkit.User("u1"))
	return e, fs, r.w
}

func checkoutEvent() *stripegwtest.Event {
	return stripegwtest.NewEvent("evt_checkout", stripegw.EventCheckoutSessionCompleted, checkoutSession("cs_1", "sub_1", "in_1", meta)).CreatedAt(t0)
}

// applyOnce is the state and emails of the checkout applied once, without faults.
func applyOnce(t *testing.T) (state, []string) {
	e, w := newInboxEnv(t)
	e.accept(checkoutEvent())
	drain(t, w)
	return e.state("sub_1"), e.emails()
}

func (e *env) sameAsOnce(want state, wantMails []string) {
	e.t.Helper()
	if got := e.state("sub_1"); !equalState(got, want) {
		e.t.Fatalf("state\n got %+v\nwant %+v", got, want)
	}
	if got := e.emails(); strings.Join(got, ",") != strings.Join(wantMails, ",") {
		e.t.Fatalf("emails %v, want %v (applied once)", got, wantMails)
	}
}

// Proves: a finish write that fails for good (every retry) loses nothing: the event stays
// claimed until its lease ends, then a claim retries it, and it is applied exactly once
// (the same state and emails as one clean attempt).
func TestInboxFinishFailureRetriedAfterLease(t *testing.T) {
	want, wantMails := applyOnce(t)
	inboxStores(t, func(t *testing.T, st billing.Store) {
		e, fs, w := faultEnv(t, st, billing.InboxConfig{Lease: 5 * time.Second})
		fs.set(func(s *faultyInbox) { s.failFinish["evt_checkout"] = 1000 })
		e.accept(checkoutEvent())
		if _, err := w.Drain(context.Background()); err == nil || !strings.Contains(err.Error(), "injected") {
			t.Fatalf("drain: %v, want the finish write's error", err)
		}
		if ev := e.event("evt_checkout"); ev.State != billing.WebhookEventStateReceived || ev.Attempts != 1 {
			t.Fatalf("after the failed finish: %s, want received (claimed) after 1 attempt", brief(ev))
		}
		fs.set(func(s *faultyInbox) { s.failFinish["evt_checkout"] = 0 })
		if n := drain(t, w); n != 0 {
			t.Fatalf("the event was taken again under its lease (%d)", n)
		}
		e.clock.Advance(5*time.Second + time.Millisecond)
		if n := drain(t, w); n != 1 {
			t.Fatalf("after the lease: %d events attempted, want 1", n)
		}
		e.wantProcessed("evt_checkout", 2, "after the lease")
		e.sameAsOnce(want, wantMails)
	})
}

// Proves: a finish write that fails once is retried at once: the event ends processed at
// its first attempt, without waiting for its lease.
func TestInboxFinishFailureRetriedAtOnce(t *testing.T) {
	want, wantMails := applyOnce(t)
	inboxStores(t, func(t *testing.T, st billing.Store) {
		e, fs, w := faultEnv(t, st, billing.InboxConfig{})
		fs.set(func(s *faultyInbox) { s.failFinish["evt_checkout"] = 1 })
		e.accept(checkoutEvent())
		if n := drain(t, w); n != 1 {
			t.Fatalf("drained %d, want 1", n)
		}
		e.wantProcessed("evt_checkout", 1, "after one drain")
		e.sameAsOnce(want, wantMails)
	})
}

// Proves: an event whose finish failed is not kept leased by its worker's later batches:
// once its lease ends, the next claim takes it, even while the worker keeps renewing the
// leases of the batches it is working on.
//
// The later batch is held in hand until the worker has renewed its leases (not for a real
// time that the renewal ticker races with under load, and not inside a finish write, whose
// budget is the lease), and the test checks that it was.
func TestInboxStuckEventLeaseNotRenewedByLaterBatches(t *testing.T) {
	inboxStores(t, func(t *testing.T, st billing.Store) {
		// Renewed every second (real time); a finish write's budget is the lease (real time),
		// room enough for a loaded FerretDB.
		lease := 3 * time.Second
		e, fs, w := faultEnv(t, st, billing.InboxConfig{Lease: lease})
		fs.set(func(s *faultyInbox) { s.failFinish["evt_checkout"] = 1000 })
		e.accept(checkoutEvent())
		if _, err := w.Drain(context.Background()); err == nil {
			t.Fatal("drain: no error, want the finish write's")
		}
		fs.set(func(s *faultyInbox) { s.failFinish["evt_checkout"] = 0 })
		// A later batch, under the stuck event's lease, works until its leases are renewed.
		e.clock.Advance(lease / 2)
		fs.holdUntilRenewed("evt_other")
		e.accept(stripegwtest.NewEvent("evt_other", stripegw.EventInvoicePaid, invoice("in_9", "sub_9", "paid", 2990, p1s, p1e, 1)).CreatedAt(t0))
		if n := drain(t, w); n != 1 {
			t.Fatalf("later batch: %d events attempted, want 1 (the stuck one is leased)", n)
		}
		fs.mu.Lock()
		renewals := fs.renewals
		fs.mu.Unlock()
		if renewals == 0 {
			t.Fatal("the later batch's leases were not renewed while it was in hand")
		}
		e.clock.Advance(lease/2 + time.Millisecond) // past the stuck event's lease
		drain(t, w)
		e.wantProcessed("evt_checkout", 2, "after its lease")
	})
}

// Proves: events a claim wrote before it failed are applied, not left claimed until their
// lease ends.
func TestInboxPartialClaimApplied(t *testing.T) {
	inboxStores(t, func(t *testing.T, st billing.Store) {
		e, fs, w := faultEnv(t, st, billing.InboxConfig{})
		fs.set(func(s *faultyInbox) { s.failClaim = 1 })
		e.accept(checkoutEvent())
		_, _ = w.Drain(context.Background())
		e.wantProcessed("evt_checkout", 1, "after one drain")
	})
}

func brief(ev billing.WebhookEvent) string {
	return fmt.Sprintf("%s attempts %d lease until %s", ev.State, ev.Attempts, ev.LeaseUntil.Format(time.RFC3339Nano))
}

// wantProcessed fails the test unless event id ended processed at attempt attempts.
func (e *env) wantProcessed(id string, attempts int, when string) {
	e.t.Helper()
	if ev := e.event(id); ev.State != billing.WebhookEventStateProcessed || ev.Attempts != attempts {
		e.t.Fatalf("%s: %s, want processed at attempt %d", when, brief(ev), attempts)
	}
}
