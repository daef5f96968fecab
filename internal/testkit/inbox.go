package testkit

import (
	"context"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// DrainInbox waits (up to 90 s) until st's webhook inbox holds no pending event, calling
// tick (when not nil) between polls, e.g. to move a fake clock past a backoff. It fails the
// test when an event died, when want > 0 and the processed and ignored events are not want,
// or when the inbox does not drain.
func DrainInbox(t testing.TB, st billing.WebhookEventStore, what string, want int, tick func(billing.WebhookInboxStats)) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		stats, err := st.WebhookInboxStats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		by := stats.ByState
		if by[billing.WebhookEventStateReceived]+by[billing.WebhookEventStateFailed]+by[billing.WebhookEventStateParked] == 0 {
			if by[billing.WebhookEventStateDead] != 0 || want > 0 && by[billing.WebhookEventStateProcessed]+by[billing.WebhookEventStateIgnored] != want {
				t.Fatalf("%s: inbox %+v; want %d events processed or ignored and none dead", what, by, want)
			}
			return
		}
		if time.Now().After(deadline) {
			evs, _ := st.ListWebhookEvents(context.Background(), billing.WebhookEventQuery{State: billing.WebhookEventStateReceived, Limit: 10})
			t.Fatalf("%s: inbox not drained: %+v; received: %+v", what, by, evs)
		}
		time.Sleep(50 * time.Millisecond)
		if tick != nil {
			tick(stats)
		}
	}
}
