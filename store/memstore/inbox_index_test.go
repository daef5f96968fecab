package memstore

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// scanDue is the reference for a claim: every stored event checked, sorted in claim order
// (the full scan memstore did before it indexed pending events).
func scanDue(st *Store, now time.Time, limit int) []string {
	st.hooks.RLock()
	defer st.hooks.RUnlock()
	var due []billing.WebhookEvent
	for _, ev := range st.events {
		if ev.State.Pending() && !ev.LeaseUntil.After(now) && !ev.NextAttemptAt.After(now) {
			due = append(due, ev)
		}
	}
	slices.SortFunc(due, func(a, b billing.WebhookEvent) int {
		return cmp.Or(a.OccurredAt.Compare(b.OccurredAt), a.ReceivedAt.Compare(b.ReceivedAt),
			cmp.Compare(gwKey(a.Gateway, a.EventID), gwKey(b.Gateway, b.EventID)))
	})
	var out []string
	for _, ev := range due[:min(len(due), limit)] {
		out = append(out, ev.EventID)
	}
	return out
}

// checkInboxIndex fails unless the index holds exactly the pending events, in claim order,
// each under its object.
func checkInboxIndex(t *testing.T, st *Store, step int) {
	t.Helper()
	st.hooks.RLock()
	defer st.hooks.RUnlock()
	var want []inboxEntry
	objects := map[string]int{}
	for k, ev := range st.events {
		if ev.State.Pending() {
			want = append(want, inboxEntryOf(k, ev))
			if o := objectOf(ev); o != "" {
				objects[o]++
				if _, ok := st.inbox.byObject[o][k]; !ok {
					t.Fatalf("step %d: pending event %s missing from its object %q", step, ev.EventID, ev.ObjectKey)
				}
			}
		}
	}
	slices.SortFunc(want, compareEntries)
	if !slices.Equal(want, st.inbox.order) {
		t.Fatalf("step %d: the claim order holds %d entries, want the %d pending events in order", step, len(st.inbox.order), len(want))
	}
	for o, set := range st.inbox.byObject {
		if len(set) != objects[o] {
			t.Fatalf("step %d: object %q indexes %d events, %d are pending", step, o, len(set), objects[o])
		}
	}
}

// TestInboxIndexAgreesWithScan puts, claims, finishes (every state), wakes, replays and
// prunes webhook events at random, and checks after every step that the pending index
// matches the events and that each claim takes what a scan of every event would take.
func TestInboxIndexAgreesWithScan(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 13))
	st := New()
	now := base
	objects := []string{"", "sub_a", "sub_b", "sub_c", "in_d"}
	states := []billing.WebhookEventState{billing.WebhookEventStateProcessed, billing.WebhookEventStateIgnored, billing.WebhookEventStateDead,
		billing.WebhookEventStateFailed, billing.WebhookEventStateParked}
	var claimed []billing.WebhookEvent // held, with the token that holds them
	tokens := map[string]string{}
	next := 0
	for step := range 2000 {
		now = now.Add(time.Duration(rng.IntN(2000)) * time.Millisecond)
		switch op := rng.IntN(10); {
		case op < 3: // a new event, or a redelivery of an old one
			id := fmt.Sprintf("evt_%04d", next)
			if next > 0 && rng.IntN(4) == 0 {
				id = fmt.Sprintf("evt_%04d", rng.IntN(next))
			} else {
				next++
			}
			ev := billing.WebhookEvent{Gateway: billing.GatewayStripe, EventID: id, Type: "invoice.paid",
				ObjectKey: objects[rng.IntN(len(objects))], Payload: []byte(`{}`),
				OccurredAt: base.Add(time.Duration(rng.IntN(50)) * time.Second)}
			if _, _, err := st.PutWebhookEvent(ctx, ev, now); err != nil {
				t.Fatal(err)
			}
		case op < 5: // a claim, compared with the scan
			limit := 1 + rng.IntN(5)
			want := scanDue(st, now, limit)
			token := fmt.Sprintf("w%d", step)
			got, err := st.ClaimWebhookEvents(ctx, billing.WebhookClaimParams{Token: token, Now: now, LeaseUntil: now.Add(time.Minute), Limit: limit})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, ev := range got {
				ids = append(ids, ev.EventID)
				tokens[ev.EventID] = token
			}
			if !slices.Equal(ids, want) {
				t.Fatalf("step %d: claimed %v, a scan of every event claims %v", step, ids, want)
			}
			claimed = append(claimed, got...)
		case op < 8 && len(claimed) > 0: // finish one held event
			i := rng.IntN(len(claimed))
			ev := claimed[i]
			claimed = slices.Delete(claimed, i, i+1)
			state := states[rng.IntN(len(states))]
			f := billing.WebhookFinish{Gateway: ev.Gateway, EventID: ev.EventID, Token: tokens[ev.EventID], State: state,
				Attempts: ev.Attempts, Now: now, Attempt: billing.WebhookAttempt{At: now, State: state}}
			if state.Pending() {
				f.NextAttemptAt = now.Add(time.Duration(rng.IntN(5)) * time.Second)
			}
			if state == billing.WebhookEventStateParked {
				f.ParkedAt = now
			}
			_ = st.FinishWebhookEvent(ctx, f) // a lost lease (taken again meanwhile) is a conflict, and fine
		case op == 8:
			if _, err := st.WakeWebhookEvents(ctx, billing.GatewayStripe, objects[1+rng.IntN(len(objects)-1)], now); err != nil {
				t.Fatal(err)
			}
		default:
			if next > 0 && rng.IntN(2) == 0 {
				_, _ = st.ReplayWebhookEvent(ctx, billing.GatewayStripe, fmt.Sprintf("evt_%04d", rng.IntN(next)), now)
			} else if _, err := st.Prune(ctx, billing.PruneParams{WebhookEventsBefore: now.Add(-20 * time.Minute), Limit: 3}); err != nil {
				t.Fatal(err)
			}
		}
		checkInboxIndex(t, st, step)
	}
	st.hooks.RLock()
	pending, total := len(st.inbox.order), len(st.events)
	st.hooks.RUnlock()
	t.Logf("%d events stored at the end, %d of them pending", total, pending)
	if pending == 0 || pending == total {
		t.Fatalf("the walk ended with %d of %d events pending: it did not exercise both kinds", pending, total)
	}
}

// TestDeleteAtKeepsOrder removes every position of a claim order, from either side of the
// middle, and checks the rest keeps its order.
func TestDeleteAtKeepsOrder(t *testing.T) {
	for n := 1; n <= 9; n++ {
		for i := range n {
			var order, want []inboxEntry
			for j := range n {
				e := inboxEntry{occurred: base.Add(time.Duration(j) * time.Second), key: fmt.Sprintf("k%d", j)}
				order = append(order, e)
				if j != i {
					want = append(want, e)
				}
			}
			if got := deleteAt(order, i); !slices.Equal(got, want) {
				t.Fatalf("deleting %d of %d left %v, want %v", i, n, got, want)
			}
		}
	}
}
