package paypalgw

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/mongostore"
)

// Proves: the PayPal lifecycle, every event delivered five times, shuffled and concurrently
// to three replicas that share one FerretDB store (each with its own client, accepting
// handler and inbox worker), ends in the same subscription, payments, access and emails as
// one in-order delivery, and every delivery, first ones included, is answered 200.
func TestInboxShuffledReplicasOnFerretDB(t *testing.T) {
	uri := testkit.MongoURI(t)
	events, now := lifecycle(t)
	want := func() snapshot {
		e := newEnv(t, now, nil)
		for _, ev := range events {
			e.mustDeliver(ev)
		}
		return e.snapshot()
	}()

	for round := range 2 {
		dbName := testkit.DBName("rkppinbox")
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
		var first *mongostore.Store
		for i := range 3 {
			c, err := mongo.Connect(options.Client().ApplyURI(uri).SetTimeout(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
			st, err := mongostore.New(c.Database(dbName), mongostore.Config{})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if i == 0 {
				first = st
				t.Cleanup(func() { _ = c.Database(dbName).Drop(context.Background()) })
				if err := st.EnsureIndexes(ctx); err != nil {
					t.Fatal(err)
				}
				if err := st.InsertPlan(ctx, &billing.Plan{ID: testPlan, Name: "Pro", BillingCycle: billing.CycleMonthly,
					Price: billing.Money{Amount: 1990, Currency: "USD"}, Active: true}); err != nil {
					t.Fatal(err)
				}
				if err := st.InsertUser(ctx, &billing.User{ID: testUser, Email: "john@example.com", Name: "John", Locale: "en"}); err != nil {
					t.Fatal(err)
				}
			}
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
		deadline := time.Now().Add(90 * time.Second)
		for {
			stats, err := first.WebhookInboxStats(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if stats.ByState[billing.EventReceived]+stats.ByState[billing.EventFailed]+stats.ByState[billing.EventParked] == 0 {
				if stats.ByState[billing.EventDead] != 0 || stats.ByState[billing.EventProcessed]+stats.ByState[billing.EventIgnored] != len(events) {
					t.Fatalf("round %d: inbox %+v; want %d events processed or ignored", round, stats.ByState, len(events))
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: inbox not drained: %+v", round, stats.ByState)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got := snapshotOf(t, first, e.sortedEmails()); !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d:\n got %+v\nwant %+v", round, got, want)
		}
	}
}
