package memstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// BenchmarkInboxEvent is the store's side of one webhook event through the inbox worker,
// with `processed` final events already stored (what retention keeps for 90 days): accept,
// claim, the ordering check, finish, and the wake that follows a processed event. Its cost
// should not grow with the processed events.
//
//	go test -run '^$' -bench InboxEvent -benchmem ./store/memstore
func BenchmarkInboxEvent(b *testing.B) {
	for _, processed := range []int{0, 10_000, 100_000} {
		b.Run(fmt.Sprintf("processed=%d", processed), func(b *testing.B) {
			ctx := context.Background()
			st := New()
			now := base
			ev := func(id string, i int) billing.WebhookEvent {
				return billing.WebhookEvent{Gateway: billing.GatewayStripe, EventID: id, Type: "invoice.paid",
					ObjectKey: fmt.Sprintf("sub_%d", i%256), OccurredAt: base.Add(time.Duration(i) * time.Millisecond), Payload: []byte(`{}`)}
			}
			// cycle runs one event through; old ones are claimed by id (as an inline delivery
			// does), so filling the store costs the same with or without an index.
			cycle := func(id string, i int, old bool) error {
				if _, _, err := st.PutWebhookEvent(ctx, ev(id, i), now); err != nil {
					b.Fatal(err)
				}
				p := billing.WebhookClaimParams{Token: "w", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 64}
				if old {
					p.Gateway, p.EventID = billing.GatewayStripe, id
				}
				got, err := st.ClaimWebhookEvents(ctx, p)
				if err != nil || len(got) != 1 {
					b.Fatalf("claimed %d, %v; want 1", len(got), err)
				}
				if old {
					return st.FinishWebhookEvent(ctx, billing.WebhookFinish{Gateway: got[0].Gateway, EventID: got[0].EventID, Token: "w",
						State: billing.WebhookEventStateProcessed, Attempts: got[0].Attempts, Now: now})
				}
				if blocked, err := st.WebhookEventBlocked(ctx, got[0]); err != nil || blocked {
					b.Fatalf("blocked %v, %v", blocked, err)
				}
				if err := st.FinishWebhookEvent(ctx, billing.WebhookFinish{Gateway: got[0].Gateway, EventID: got[0].EventID, Token: "w",
					State: billing.WebhookEventStateProcessed, Attempts: got[0].Attempts, Now: now}); err != nil {
					b.Fatal(err)
				}
				_, err = st.WakeWebhookEvents(ctx, got[0].Gateway, got[0].ObjectKey, now)
				return err
			}
			for i := range processed {
				if err := cycle(fmt.Sprintf("old_%d", i), i, true); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := cycle(fmt.Sprintf("evt_%d", i), processed+i, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkInboxBacklog is one event through the store's side of the inbox (accept, claim,
// finish) while `pending` events wait before it, as when a burst is accepted faster than
// the worker applies it. Accepting and finishing hold the inbox's lock, which every
// acknowledgement needs: their cost should not grow with the backlog.
//
//	go test -run '^$' -bench InboxBacklog -count 5 ./store/memstore
func BenchmarkInboxBacklog(b *testing.B) {
	for _, pending := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("pending=%d", pending), func(b *testing.B) {
			ctx := context.Background()
			st := New()
			now := base
			put := func(i int) {
				ev := billing.WebhookEvent{Gateway: billing.GatewayStripe, EventID: fmt.Sprintf("evt_%09d", i), Type: "invoice.paid",
					ObjectKey: fmt.Sprintf("sub_%d", i%256), OccurredAt: base.Add(time.Duration(i) * time.Millisecond), Payload: []byte(`{}`)}
				if _, _, err := st.PutWebhookEvent(ctx, ev, now); err != nil {
					b.Fatal(err)
				}
			}
			for i := range pending {
				put(i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				put(pending + i) // behind the backlog
				got, err := st.ClaimWebhookEvents(ctx, billing.WebhookClaimParams{Token: "w", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 1})
				if err != nil || len(got) != 1 {
					b.Fatalf("claimed %d, %v; want 1", len(got), err)
				}
				if err := st.FinishWebhookEvent(ctx, billing.WebhookFinish{Gateway: got[0].Gateway, EventID: got[0].EventID, Token: "w",
					State: billing.WebhookEventStateProcessed, Attempts: got[0].Attempts, Now: now}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
