package testkit

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
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

// PastStuckLeases returns a DrainInbox tick that moves clock past lease when the inbox has
// not changed for quiet (real time) while events are received (claimed): as time passing
// would, it ends the lease of an event a worker failed to finish, so a worker takes it
// again. Each move is logged. then, when not nil, is called on every tick as well.
func PastStuckLeases(t testing.TB, clock *Clock, lease, quiet time.Duration, then func(billing.WebhookInboxStats)) func(billing.WebhookInboxStats) {
	var last string
	since := time.Now()
	return func(st billing.WebhookInboxStats) {
		if then != nil {
			then(st)
		}
		if now := fmt.Sprint(st.ByState); now != last {
			last, since = now, time.Now()
			return
		}
		if st.ByState[billing.WebhookEventStateReceived] > 0 && time.Since(since) >= quiet {
			t.Logf("inbox unchanged for %v with received events %+v: moving the clock past the lease (%v)", quiet, st.ByState, lease)
			clock.Advance(lease + time.Millisecond)
			since = time.Now()
		}
	}
}

// Delivery is one webhook request and the handler (a replica's) that receives it.
type Delivery struct {
	Handler http.Handler
	Request *http.Request
}

// DeliverAll serves every delivery at once, each in its own goroutine, and fails t unless
// every one was answered 200: in a storm of deliveries each one must be acknowledged. what
// names the round in the failure.
func DeliverAll(t testing.TB, what string, deliveries []Delivery) {
	t.Helper()
	var wg sync.WaitGroup
	codes := make(chan int, len(deliveries))
	for _, d := range deliveries {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			d.Handler.ServeHTTP(rec, d.Request)
			codes <- rec.Code
		})
	}
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != http.StatusOK {
			t.Fatalf("%s: a delivery got %d; every delivery must get 200", what, code)
		}
	}
}
