package paypalgw

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/mongotest"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/mongostore"
)

// Proves: the PayPal lifecycle, every event delivered five times, shuffled and concurrently
// to three replicas that share one FerretDB store (each with its own client, accepting
// handler and inbox worker), ends in the same subscription, payments, access and emails as
// one in-order delivery, and every delivery, first ones included, is answered 200.
func TestInboxShuffledReplicasOnFerretDB(t *testing.T) {
	testkit.MongoURI(t) // before the in-order run: skip (or fail under CI) without a server
	events, now := lifecycle(t)
	want := func() snapshot {
		e := newEnv(t, now, nil)
		for _, ev := range events {
			e.mustDeliver(ev)
		}
		return e.snapshot()
	}()

	for round := range 2 {
		// e provides the clock, the signer and the email recorder; its own memstore
		// handler is not used.
		e := newEnv(t, now, nil)
		notifier := billing.NotifierFunc(func(_ context.Context, n billing.Notification) error {
			e.mu.Lock()
			e.emails = append(e.emails, sent{Kind: n.Kind, UserID: n.To.UserID, Amount: n.Data.Amount, Key: n.Key})
			e.mu.Unlock()
			return nil
		})
		var handlers []http.Handler
		stores, _, _ := mongotest.Stores(t, "rkppinbox", 3, mongostore.Config{})
		first := stores[0]
		ctx := context.Background()
		if err := first.InsertPlan(ctx, &billing.Plan{ID: testPlan, Name: "Pro", BillingCycle: billing.CycleMonthly,
			Price: billing.Money{Amount: 1990, Currency: "USD"}, Active: true}); err != nil {
			t.Fatal(err)
		}
		if err := first.InsertUser(ctx, &billing.User{ID: testUser, Email: "john@example.com", Name: "John", Locale: "en"}); err != nil {
			t.Fatal(err)
		}
		for _, st := range stores {
			svc, err := billing.NewService(st, notifier, billing.Config{Clock: e.clock, Logger: slog.New(slog.DiscardHandler), ReferenceSecret: testRefSecret,
				Inbox: billing.InboxConfig{Poll: 10 * time.Millisecond, Lease: 5 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			cfg := e.signer.Config()
			cfg.Plans, cfg.Logger = map[string]string{testPayPalPlan: testPlan}, quiet
			h, err := NewWebhookHandler(svc.Processor(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			h.(*handler).trustBodyForTests = true // as newEnv: the lifecycle runs without an API
			w, err := billing.NewInboxWorker(svc)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
			handlers = append(handlers, h)
		}
		var deliveries [][]byte
		for _, ev := range events {
			for range 5 {
				deliveries = append(deliveries, ev)
			}
		}
		rng := rand.New(rand.NewPCG(uint64(round), 17))
		rng.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })
		var wg sync.WaitGroup
		codes := make(chan int, len(deliveries))
		for _, d := range deliveries {
			h := handlers[rng.IntN(3)]
			hdr := e.signer.Sign(d, e.clock.Now())
			wg.Go(func() {
				req := httptest.NewRequest(http.MethodPost, "/api/payments/paypal/webhook", bytes.NewReader(d))
				req.Header.Set("Content-Type", "application/json")
				for k, v := range hdr {
					req.Header[k] = v
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				codes <- rec.Code
			})
		}
		wg.Wait()
		close(codes)
		for code := range codes {
			if code != http.StatusOK {
				t.Fatalf("round %d: a delivery got %d; every delivery must get 200", round, code)
			}
		}
		// Wait for the workers. The clock stays: a sale whose period PayPal does not state
		// gets a cycle from now, as in the in-order run.
		testkit.DrainInbox(t, first, fmt.Sprintf("round %d", round), len(events), nil)
		if got := snapshotOf(t, first, e.sortedEmails()); !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d:\n got %+v\nwant %+v", round, got, want)
		}
	}
}
