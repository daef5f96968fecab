package billing_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/memstore"
)

// unreadableInbox is memstore with one webhook event its claims cannot decode, as
// mongostore and pgstore report a stored event of the wrong shape: the event is claimed
// with the others but left out of the result, and a *billing.RecordError names it.
type unreadableInbox struct {
	*memstore.Store
	bad string // the event id of the unreadable event
}

func (s unreadableInbox) ClaimWebhookEvents(ctx context.Context, p billing.WebhookClaimParams) ([]billing.WebhookEvent, error) {
	evs, err := s.Store.ClaimWebhookEvents(ctx, p)
	var bad []error
	evs = slices.DeleteFunc(evs, func(ev billing.WebhookEvent) bool {
		if ev.EventID != s.bad {
			return false
		}
		bad = append(bad, &billing.RecordError{Collection: "webhook_events", ID: billing.WebhookEventKey(ev.Gateway, ev.EventID),
			Err: fmt.Errorf("%w: history is not a list", billing.ErrMalformedRecord)})
		return true
	})
	return evs, errors.Join(append(bad, err)...)
}

// TestInboxWorkerAppliesTheReadableEventsOfAClaimWithAnUnreadableOne proves a failure
// mid-work loses nothing and is retried: when a claim returns events together with a
// *billing.RecordError for one it could not read, the worker applies the readable ones,
// reports the error, and the unreadable event stays in the inbox, pending, to be met again
// once the claim's lease ends.
func TestInboxWorkerAppliesTheReadableEventsOfAClaimWithAnUnreadableOne(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2030, time.March, 10, 9, 0, 0, 0, time.UTC)
	clock := testkit.NewClock(now)
	st := unreadableInbox{Store: memstore.New(), bad: "evt_bad"}
	svc, err := billing.NewService(st, billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }),
		billing.Config{Clock: clock, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var applied []string
	if err := svc.RegisterWebhookProcessor("acme", func(_ context.Context, ev billing.WebhookEvent) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		applied = append(applied, ev.EventID)
		return false, nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"evt_1", "evt_bad", "evt_2"} {
		ev := billing.WebhookEvent{Gateway: "acme", EventID: id, Type: "invoice.paid", OccurredAt: now.Add(time.Duration(i-10) * time.Second),
			Payload: []byte(`{}`)}
		if _, err := svc.AcceptWebhookEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	w, err := billing.NewInboxWorker(svc)
	if err != nil {
		t.Fatal(err)
	}
	n, err := w.RunOnce(ctx)
	var re *billing.RecordError
	if !errors.As(err, &re) || re.ID != billing.WebhookEventKey("acme", "evt_bad") {
		t.Fatalf("RunOnce error %v; want the claim's *billing.RecordError for acme:evt_bad", err)
	}
	slices.Sort(applied)
	if n != 2 || fmt.Sprint(applied) != "[evt_1 evt_2]" {
		t.Fatalf("RunOnce finished %d, applied %v; want 2: evt_1 and evt_2", n, applied)
	}
	for _, id := range []string{"evt_1", "evt_2"} {
		if ev, err := svc.WebhookEvent(ctx, "acme", id); err != nil || ev.State != billing.WebhookEventStateProcessed {
			t.Fatalf("%s: %+v, %v; want processed", id, ev, err)
		}
	}
	if ev, err := svc.WebhookEvent(ctx, "acme", "evt_bad"); err != nil || !ev.State.Pending() {
		t.Fatalf("the unreadable event: %+v, %v; want it still stored and pending", ev, err)
	}
	// Within the lease nothing is claimed; after it the unreadable event is met again.
	if n, err := w.RunOnce(ctx); n != 0 || err != nil {
		t.Fatalf("RunOnce within the lease: %d, %v; want nothing to do", n, err)
	}
	clock.Advance(2 * time.Minute) // past the default one-minute lease
	if n, err := w.RunOnce(ctx); n != 0 || !errors.As(err, &re) {
		t.Fatalf("RunOnce after the lease: %d, %v; want the unreadable event reported again", n, err)
	}
}

// TestInboxWorkerYieldsToAcceptsAndABacklogStillDrains holds the worker's busy test true, as
// while handlers accept events on a saturated CPU, and accepts events without pause while
// a backlog of 24 events of distinct objects waits: the worker applies one event at a time
// (never two at once although Concurrency allows 8), the backlog drains while the accepts
// continue, and once they stop (the busy test turns false) every accepted event is
// processed. With the busy test false
// the same backlog is applied concurrently, so the one-at-a-time check can fail.
func TestInboxWorkerYieldsToAcceptsAndABacklogStillDrains(t *testing.T) {
	for _, busy := range []bool{true, false} {
		t.Run(fmt.Sprintf("busy=%v", busy), func(t *testing.T) {
			ctx := context.Background()
			now := time.Date(2030, time.March, 10, 9, 0, 0, 0, time.UTC)
			svc, err := billing.NewService(memstore.New(), billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }),
				billing.Config{Clock: testkit.NewClock(now), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			var busyNow atomic.Bool
			busyNow.Store(busy)
			var mu sync.Mutex
			inFlight, most := 0, 0 // most: the most applied at once while busy, or ever if never busy
			applied := map[string]bool{}
			if err := svc.RegisterWebhookProcessor("acme", func(_ context.Context, ev billing.WebhookEvent) (bool, error) {
				mu.Lock()
				inFlight++
				if busyNow.Load() == busy {
					most = max(most, inFlight)
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond) // long enough for the others to start meanwhile
				mu.Lock()
				inFlight--
				applied[ev.EventID] = true
				mu.Unlock()
				return false, nil
			}); err != nil {
				t.Fatal(err)
			}
			accept := func(i int) {
				t.Helper()
				// In the gateway's order: the backlog is due before what is accepted meanwhile.
				id := fmt.Sprintf("evt_%d", i)
				out, err := svc.AcceptWebhookEvent(ctx, billing.WebhookEvent{Gateway: "acme", EventID: id, Type: "invoice.paid",
					ObjectKey: "sub_" + id, OccurredAt: now.Add(time.Duration(i-10000) * time.Second), Payload: []byte(`{}`)})
				if err != nil || out != billing.OutcomeAccepted {
					t.Fatalf("accepting %s: %v, %v; want accepted", id, out, err)
				}
			}
			const backlog = 24
			for i := range backlog {
				accept(i)
			}
			w, err := billing.NewInboxWorker(svc)
			if err != nil {
				t.Fatal(err)
			}
			billing.SetInboxWorkerBusy(w, busyNow.Load)
			if err := w.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = w.Shutdown(ctx) }()
			drained := func(n int) bool {
				mu.Lock()
				defer mu.Unlock()
				for i := range n {
					if !applied[fmt.Sprintf("evt_%d", i)] {
						return false
					}
				}
				return true
			}
			deadline := time.Now().Add(30 * time.Second)
			total := backlog
			for ; !drained(backlog); total++ {
				if time.Now().After(deadline) {
					t.Fatalf("backlog not drained within 30s while accepts continued (%d accepted)", total)
				}
				accept(total)
				time.Sleep(time.Millisecond)
			}
			if total == backlog {
				t.Fatal("the backlog drained before any event was accepted meanwhile; the test shows nothing")
			}
			busyNow.Store(false)
			for !drained(total) {
				if time.Now().After(deadline) {
					t.Fatalf("accepted events not all processed within 30s after the accepts stopped")
				}
				time.Sleep(time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			if busy && most != 1 {
				t.Fatalf("%d events applied at once while busy; want one at a time", most)
			}
			if !busy && most < 2 {
				t.Fatalf("%d event applied at once with the CPU free; want the backlog applied concurrently", most)
			}
		})
	}
}

// TestInboxBusyShareOutOfRangeIsRefused: a BusyShare outside 0..1 is a configuration error
// naming the field.
func TestInboxBusyShareOutOfRangeIsRefused(t *testing.T) {
	for _, share := range []float64{-0.1, 1.5} {
		_, err := billing.NewService(memstore.New(), billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }),
			billing.Config{Inbox: billing.InboxConfig{BusyShare: share}})
		if err == nil || !strings.Contains(err.Error(), "Inbox.BusyShare") {
			t.Fatalf("BusyShare %v: %v; want an error naming Inbox.BusyShare", share, err)
		}
	}
}
