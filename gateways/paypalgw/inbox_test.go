package paypalgw

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
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
	want := inOrder(t, events, now)

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
		rng := rand.New(rand.NewPCG(uint64(round), 17))
		deliveries := testkit.Shuffled(rng, events, 5)
		var storm []testkit.Delivery
		for _, d := range deliveries {
			storm = append(storm, testkit.Delivery{Handler: handlers[rng.IntN(3)],
				Request: e.signer.Request("/api/payments/paypal/webhook", d, e.clock.Now())})
		}
		testkit.DeliverAll(t, fmt.Sprintf("round %d", round), storm)
		// Wait for the workers. The clock stays: a sale whose period PayPal does not state
		// gets a cycle from now, as in the in-order run. Only when an event stays claimed
		// (its finish write failed, a store slow under load) and nothing changes for 10 s,
		// the clock moves past its lease, as time would; the snapshot still has to match.
		testkit.DrainInbox(t, first, fmt.Sprintf("round %d", round), len(events), testkit.PastStuckLeases(t, e.clock, 5*time.Second, 10*time.Second, nil))
		if got := snapshotOf(t, first, e.sortedEmails()); !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d:\n got %+v\nwant %+v", round, got, want)
		}
	}
}

// Proves: the acknowledgement reads the envelope only, and still rejects what it cannot
// store. A verified body without a usable envelope (no resource, a subscription or sale id
// that cannot go into an API path) is 400 and stores nothing. A completed subscription sale
// whose amount renewkit cannot read is accepted (200) under its subscription; the worker,
// which decodes the whole resource, records it failed as malformed and changes nothing.
func TestInboxAcceptReadsOnlyTheEnvelope(t *testing.T) {
	e := newEnv(t, t0, nil)
	cfg := e.signer.Config()
	cfg.Plans, cfg.Logger = map[string]string{testPayPalPlan: testPlan}, quiet
	h, err := NewWebhookHandler(e.svc.Processor(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.(*handler).trustBodyForTests = true
	e.h = h
	for _, body := range []string{`{"id":"WH-X","event_type":"PAYMENT.SALE.COMPLETED","resource":null}`,
		`{"id":"WH-X","event_type":"BILLING.SUBSCRIPTION.UPDATED","resource":{"id":"../x"}}`,
		`{"id":"WH-X","event_type":"PAYMENT.SALE.COMPLETED","resource":{"id":"S1","state":"completed","billing_agreement_id":"I-1/x"}}`,
		`{"id":"WH-X","event_type":"PAYMENT.SALE.REFUNDED","resource":{"id":"R1"}}`} {
		if rec := e.deliver([]byte(body)); rec.Code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", body, rec.Code)
		}
	}
	e.assertUntouched("WH-X")
	if rec := e.deliver(saleEvent(t, "WH-ODD", "SALE-1", t0, "19,90")); rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), []byte(`"status":"accepted"`)) {
		t.Fatalf("sale with an odd amount: %d %s, want 200 accepted", rec.Code, rec.Body)
	}
	ctx := context.Background()
	ev, err := e.store.GetWebhookEvent(ctx, billing.GatewayPayPal, "WH-ODD")
	if err != nil || ev.ObjectKey != testSubID || ev.Type != EventSaleCompleted {
		t.Fatalf("stored %+v (%v), want the sale under subscription %s", ev, err, testSubID)
	}
	w, err := billing.NewInboxWorker(e.svc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if ev, _ := e.store.GetWebhookEvent(ctx, billing.GatewayPayPal, "WH-ODD"); ev.State != billing.WebhookEventStateFailed || !strings.Contains(ev.Error, "malformed") {
		t.Fatalf("after the worker: %+v, want failed as malformed", ev)
	}
	if _, ok := e.sub(); ok {
		t.Fatal("a subscription was created")
	}
	if _, err := e.store.FindPaymentByGateway(ctx, billing.GatewayPayPal, "SALE-1"); err == nil {
		t.Fatal("a payment was recorded")
	}
	if n := len(e.sortedEmails()); n != 0 {
		t.Fatalf("%d emails sent", n)
	}
}
