package memstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// TestInboxLockUnderConcurrency runs every kind of inbox call at once with the writes the
// rest of the store takes its own lock for, and with Prune, which takes the inbox's lock
// inside the store's: duplicated puts racing claims, finishes, wakes, lease renewals,
// reads, audit inserts and prunes. It proves the inbox's own lock keeps the guarantees
// the one mutex gave: each event stored once however many deliveries race (dedup atomic
// with the insert), each claimed by one claimer only and finished once, retention pruning
// the old final events and nothing pending, and the pending index in step. Run with -race,
// it also fails if any inbox state is reached under the wrong lock; a deadlock between the
// two locks hangs it.
func TestInboxLockUnderConcurrency(t *testing.T) {
	const (
		events   = 300 // new events, each delivered dups times
		dups     = 3
		old      = 120 // final events received before the retention cutoff
		claimers = 4
	)
	ctx := context.Background()
	st := New()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	event := func(id string, i int) billing.WebhookEvent {
		return billing.WebhookEvent{Gateway: billing.GatewayStripe, EventID: id, Type: "invoice.paid",
			ObjectKey: fmt.Sprintf("sub_%d", i%17), OccurredAt: now.Add(time.Duration(i%29) * time.Second),
			Payload: []byte(`{"id":"` + id + `"}`)}
	}
	// The old events, processed two days ago: retention's to prune.
	for i := range old {
		id := fmt.Sprintf("evt_old%d", i)
		at := now.Add(-48 * time.Hour)
		if _, _, err := st.PutWebhookEvent(ctx, event(id, i), at); err != nil {
			t.Fatal(err)
		}
		tok := "seed" + id
		got, err := st.ClaimWebhookEvents(ctx, billing.WebhookClaimParams{Token: tok, Now: at, LeaseUntil: at.Add(time.Minute), Limit: 1,
			Gateway: billing.GatewayStripe, EventID: id})
		if err != nil || len(got) != 1 {
			t.Fatalf("claiming seed %s: %v, %d events", id, err, len(got))
		}
		if err := st.FinishWebhookEvent(ctx, billing.WebhookFinish{Gateway: billing.GatewayStripe, EventID: id, Token: tok,
			State: billing.WebhookEventStateProcessed, Attempts: 1, Now: at}); err != nil {
			t.Fatal(err)
		}
	}

	var (
		created  [events]atomic.Int32
		claimed  [events]atomic.Int32
		finished atomic.Int64
		pruned   atomic.Int64
		failures = make(chan error, 64)
		wg       sync.WaitGroup
		stop     = make(chan struct{})
	)
	fail := func(err error) {
		select {
		case failures <- err:
		default:
		}
	}
	// Deliveries: each event dups times, from different goroutines.
	var puts sync.WaitGroup
	for d := range dups {
		puts.Go(func() {
			for j := range events {
				i := (j*7 + d*101) % events // each delivery goroutine in its own order
				_, ok, err := st.PutWebhookEvent(ctx, event(fmt.Sprintf("evt_%d", i), i), now)
				if err != nil {
					fail(err)
				}
				if ok {
					created[i].Add(1)
				}
			}
		})
	}
	// Claimers: claim a batch, finish each event processed with its own token.
	for c := range claimers {
		wg.Go(func() {
			for n := 0; finished.Load() < events; n++ {
				select {
				case <-stop:
					return
				default:
				}
				tok := fmt.Sprintf("w%d-%d", c, n)
				got, err := st.ClaimWebhookEvents(ctx, billing.WebhookClaimParams{Token: tok, Now: now,
					LeaseUntil: now.Add(time.Hour), Limit: 5})
				if err != nil {
					fail(err)
					return
				}
				for _, ev := range got {
					var i int
					if _, err := fmt.Sscanf(ev.EventID, "evt_%d", &i); err != nil {
						fail(fmt.Errorf("claimed %s, not a new event", ev.EventID))
						return
					}
					claimed[i].Add(1)
					if _, err := st.RenewWebhookLeases(ctx, tok, now.Add(2*time.Hour)); err != nil {
						fail(err)
					}
					if err := st.FinishWebhookEvent(ctx, billing.WebhookFinish{Gateway: ev.Gateway, EventID: ev.EventID, Token: tok,
						State: billing.WebhookEventStateProcessed, Attempts: ev.Attempts, Now: now}); err != nil {
						fail(fmt.Errorf("finishing %s with its claim's token: %w", ev.EventID, err))
					}
					finished.Add(1)
				}
			}
		})
	}
	// Retention, audit writes, wakes and reads alongside, each loop until stop or its first error.
	untilStop := func(step func(k int) error) {
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := step(k); err != nil {
					fail(err)
					return
				}
			}
		})
	}
	untilStop(func(k int) error {
		res, err := st.Prune(ctx, billing.PruneParams{WebhookEventsBefore: now.Add(-time.Hour), AuditBefore: now.Add(-time.Hour), Limit: 7})
		if err != nil {
			return err
		}
		pruned.Add(int64(res.WebhookEvents))
		return st.InsertAudit(ctx, &billing.AuditEntry{ID: fmt.Sprintf("a%d", k), Action: "test", EntityID: "x", CreatedAt: now})
	})
	untilStop(func(k int) error {
		if _, err := st.WakeWebhookEvents(ctx, billing.GatewayStripe, fmt.Sprintf("sub_%d", k%17), now); err != nil {
			return err
		}
		if _, err := st.WebhookInboxStats(ctx); err != nil {
			return err
		}
		_, err := st.ListWebhookEvents(ctx, billing.WebhookEventQuery{State: billing.WebhookEventStateReceived, Limit: 10})
		return err
	})

	puts.Wait()
	deadline := time.After(time.Minute)
	for finished.Load() < events || pruned.Load() < old {
		select {
		case err := <-failures:
			close(stop)
			wg.Wait()
			t.Fatal(err)
		case <-deadline:
			close(stop)
			wg.Wait()
			t.Fatalf("after a minute %d of %d events finished, %d of %d old ones pruned", finished.Load(), events, pruned.Load(), old)
		case <-time.After(5 * time.Millisecond):
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-failures:
		t.Fatal(err)
	default:
	}

	for i := range events {
		if c := created[i].Load(); c != 1 {
			t.Errorf("evt_%d: %d of %d racing deliveries stored it, want 1", i, c, dups)
		}
		if c := claimed[i].Load(); c != 1 {
			t.Errorf("evt_%d claimed %d times, want once", i, c)
		}
	}
	if p := pruned.Load(); p != old {
		t.Errorf("prune removed %d events, want the %d old ones", p, old)
	}
	stats, err := st.WebhookInboxStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := stats.ByState[billing.WebhookEventStateProcessed]; got != events || len(st.events) != events {
		t.Errorf("%d processed events of %d stored, want the %d new ones", got, len(st.events), events)
	}
	checkInboxIndex(t, st, 0)
}
