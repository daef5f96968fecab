package stripegw_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
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

// replica is one process: a Service, its accepting (not inline) handler and its inbox
// worker, on a store it may share with other replicas.
type replica struct {
	svc *billing.Service
	h   http.Handler
	w   *billing.InboxWorker
}

func newReplica(t testing.TB, st billing.Store, clock billing.Clock, notes billing.Notifier, inbox billing.InboxConfig) *replica {
	t.Helper()
	svc, err := billing.NewService(st, notes, billing.Config{Clock: clock, Logger: quietLogger(), ReferenceSecret: refSecret, Inbox: inbox})
	if err != nil {
		t.Fatal(err)
	}
	h, err := stripegw.NewWebhookHandler(svc.Processor(), stripegw.Config{WebhookSecret: secret, Prices: testPrices})
	if err != nil {
		t.Fatal(err)
	}
	w, err := billing.NewInboxWorker(svc)
	if err != nil {
		t.Fatal(err)
	}
	return &replica{svc: svc, h: h, w: w}
}

// inboxEnv is env with the default, accepting handler and a worker driven by the test.
func newInboxEnv(t *testing.T) (*env, *billing.InboxWorker) {
	t.Helper()
	e := &env{t: t, st: memstore.New(), clock: testkit.NewClock(t0), notes: testkit.NewNotifier()}
	r := newReplica(t, e.st, e.clock, e.notes, billing.InboxConfig{})
	e.svc, e.h = r.svc, r.h
	testkit.Seed(t, e.st, testkit.Plan("pro", billing.CycleMonthly, 2990), testkit.User("u1"))
	return e, r.w
}

func (e *env) accept(ev *stripegwtest.Event) {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, ev.Request("/webhook", secret, e.clock.Now()))
	var body struct{ Status string }
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != http.StatusOK || (body.Status != "accepted" && body.Status != "duplicate") {
		e.t.Fatalf("%s %s: %d %s, want 200 accepted", ev.Type, ev.ID, rec.Code, rec.Body)
	}
}

func (e *env) event(id string) billing.WebhookEvent {
	e.t.Helper()
	ev, err := e.st.GetWebhookEvent(context.Background(), billing.GatewayStripe, id)
	if err != nil {
		e.t.Fatalf("webhook event %s: %v", id, err)
	}
	return ev
}

func drain(t *testing.T, w *billing.InboxWorker) int {
	t.Helper()
	n, err := w.Drain(context.Background())
	if err != nil {
		t.Fatalf("drain: %v", err)
	}
	return n
}

// earlyInvoice is an invoice.paid Stripe created before the checkout.session.completed of
// the same subscription, as it often does.
func earlyInvoice() (paid, checkout *stripegwtest.Event) {
	paid = stripegwtest.NewEvent("evt_paid_1", stripegw.EventInvoicePaid, invoice("in_1", "sub_1", "paid", 2990, p1s, p1e, 1)).CreatedAt(t0)
	checkout = stripegwtest.NewEvent("evt_checkout", stripegw.EventCheckoutSessionCompleted, checkoutSession("cs_1", "sub_1", "in_1", meta)).CreatedAt(t0.Add(time.Second))
	return paid, checkout
}

// Proves: an invoice.paid for a subscription renewkit does not know is answered 200 and
// parked; when its checkout.session.completed arrives (hours later, a later event of the
// same object that the parked one must not hold back), the parked invoice is applied at
// once, without waiting for its backoff.
func TestInboxInvoicePaidParkedUntilCheckout(t *testing.T) {
	e, w := newInboxEnv(t)
	paid, checkout := earlyInvoice()
	e.accept(paid)
	e.accept(paid) // a duplicate stores nothing new
	drain(t, w)
	ev := e.event("evt_paid_1")
	if ev.State != billing.WebhookEventStateParked || ev.Attempts != 1 || !ev.ParkedAt.Equal(t0) || !ev.NextAttemptAt.Equal(t0.Add(time.Minute)) ||
		!strings.Contains(ev.Error, "not found") {
		t.Fatalf("invoice.paid before its subscription: %+v; want parked at t0, retry in 1m", ev)
	}
	e.noSub("sub_1")
	e.clock.Advance(3 * time.Hour) // past several backoff steps, still within the wait
	drain(t, w)
	if ev := e.event("evt_paid_1"); ev.State != billing.WebhookEventStateParked || !ev.ParkedAt.Equal(t0) {
		t.Fatalf("after 3h: %+v, want still parked since t0", ev)
	}
	next := e.event("evt_paid_1").NextAttemptAt
	e.accept(checkout)
	drain(t, w)
	if c := e.event("evt_checkout"); c.State != billing.WebhookEventStateProcessed {
		t.Fatalf("checkout: %+v", c)
	}
	ev = e.event("evt_paid_1")
	if ev.State != billing.WebhookEventStateProcessed || !e.clock.Now().Before(next) || len(ev.History) != 3 ||
		ev.History[0].State != billing.WebhookEventStateParked || ev.History[2].State != billing.WebhookEventStateProcessed {
		t.Fatalf("invoice.paid after checkout: %+v; want processed now (before its next retry %v), history parked…processed", ev, next)
	}
	s := e.sub("sub_1")
	if s.Status != billing.SubscriptionStatusActive || !s.CurrentPeriodEnd.Equal(p1e) {
		t.Fatalf("subscription %+v, want active until %v", s, p1e)
	}
	if p := e.payment("in_1"); p.Status != billing.PaymentStatusApproved {
		t.Fatalf("payment %+v", p)
	}
}

// Proves: a parked event whose object never appears is retried on the backoff and ends
// ignored "unknown object" at the configured wait (72h by default), changing nothing.
func TestInboxParkedEventIgnoredAfterWait(t *testing.T) {
	e, w := newInboxEnv(t)
	paid, _ := earlyInvoice()
	e.accept(paid)
	drain(t, w)
	for e.clock.Now().Before(t0.Add(72*time.Hour - time.Minute)) {
		e.clock.Advance(30 * time.Minute)
		drain(t, w)
		if ev := e.event("evt_paid_1"); ev.State != billing.WebhookEventStateParked && e.clock.Now().Before(t0.Add(72*time.Hour)) {
			t.Fatalf("at %v: %+v, want parked until the wait ends", e.clock.Now().Sub(t0), ev)
		}
	}
	e.clock.Set(t0.Add(72 * time.Hour))
	drain(t, w)
	ev := e.event("evt_paid_1")
	if ev.State != billing.WebhookEventStateIgnored || !strings.HasPrefix(ev.Error, "unknown object") || !ev.FinishedAt.Equal(t0.Add(72*time.Hour)) {
		t.Fatalf("after 72h: %+v; want ignored: unknown object", ev)
	}
	if ev.Attempts < 5 {
		t.Fatalf("%d attempts in 72h; want the backoff's retries", ev.Attempts)
	}
	e.noSub("sub_1")
	if _, err := e.st.FindPaymentByGateway(context.Background(), billing.GatewayStripe, "in_1"); err == nil {
		t.Fatal("a payment was recorded for an ignored event")
	}
	// An operator who fixed the cause replays it.
	if _, err := e.svc.ReplayWebhookEvent(context.Background(), billing.GatewayStripe, "evt_paid_1"); err != nil {
		t.Fatal(err)
	}
	_, checkout := earlyInvoice()
	e.accept(checkout)
	drain(t, w)
	if ev := e.event("evt_paid_1"); ev.State != billing.WebhookEventStateProcessed {
		t.Fatalf("replayed: %+v", ev)
	}
	if s := e.sub("sub_1"); s.Status != billing.SubscriptionStatusActive {
		t.Fatalf("after replay: %+v", s)
	}
}

// Proves: events of one subscription accepted in reverse order are applied in Stripe's
// created order.
func TestInboxAppliesInGatewayOrder(t *testing.T) {
	e, w := newInboxEnv(t)
	var mu sync.Mutex
	var applied []string
	w.Observe = func(ev billing.WebhookEvent, a billing.WebhookAttempt) {
		mu.Lock()
		applied = append(applied, ev.EventID)
		mu.Unlock()
	}
	evs := lifecycle()
	for i := len(evs) - 1; i >= 0; i-- {
		e.accept(evs[i])
	}
	drain(t, w)
	// evt_checkout and evt_paid_1 share a created second: either order is the gateway's.
	got := strings.Join(applied, ",")
	if got != "evt_checkout,evt_paid_1,evt_paid_2,evt_failed_3,evt_paid_3,evt_deleted" &&
		got != "evt_paid_1,evt_checkout,evt_paid_1,evt_paid_2,evt_failed_3,evt_paid_3,evt_deleted" {
		t.Fatalf("applied %s", got)
	}
	if s := e.sub("sub_1"); s.Status != billing.SubscriptionStatusCancelled || !s.CurrentPeriodEnd.Equal(p3e) {
		t.Fatalf("final %+v", s)
	}
}

// Proves: the lifecycle, every event delivered five times, shuffled and concurrently to
// three replicas that share one FerretDB store (each with its own client and inbox worker),
// ends in the same subscription state, payments and emails as one in-order delivery, and
// every delivery, first ones included, is answered 200.
func TestInboxShuffledReplicasOnFerretDB(t *testing.T) {
	testkit.MongoURI(t) // before the in-order run: skip (or fail under CI) without a server
	inOrder := newEnv(t, stripegw.Config{})
	for _, ev := range lifecycle() {
		if code := inOrder.post(ev); code != 200 {
			t.Fatalf("in order %s: %d", ev.ID, code)
		}
	}
	want, wantMails := inOrder.state("sub_1"), inOrder.emails()

	for round := range 3 {
		clock := testkit.NewClock(t0)
		notes := testkit.NewNotifier()
		var replicas []*replica
		stores, _, _ := mongotest.Stores(t, "rkinbox", 3, mongostore.Config{})
		first := billing.Store(stores[0])
		testkit.Seed(t, first, testkit.Plan("pro", billing.CycleMonthly, 2990), testkit.User("u1"))
		for _, st := range stores {
			r := newReplica(t, st, clock, notes, billing.InboxConfig{Poll: 10 * time.Millisecond, Lease: 5 * time.Second})
			if err := r.w.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.w.Shutdown(context.Background()) })
			replicas = append(replicas, r)
		}
		rnd := rand.New(rand.NewPCG(uint64(round), 11))
		deliveries := testkit.Shuffled(rnd, lifecycle(), 5)
		var storm []testkit.Delivery
		for _, ev := range deliveries {
			storm = append(storm, testkit.Delivery{Handler: replicas[rnd.IntN(3)].h,
				Request: ev.Request("/webhook", secret, clock.Now())})
		}
		testkit.DeliverAll(t, fmt.Sprintf("round %d", round), storm)
		// Wait for the workers. A failed or parked event waits on a backoff: every second the
		// fake clock jumps a minute while such events remain. An event whose finish write
		// failed (a store slow under load) stays claimed until its lease ends: when nothing
		// changes for 10 s the clock moves past the lease, as time would.
		polls := 0
		testkit.DrainInbox(t, first, fmt.Sprintf("round %d", round), len(lifecycle()), testkit.PastStuckLeases(t, clock, 5*time.Second, 10*time.Second, func(st billing.WebhookInboxStats) {
			if polls++; polls%20 == 0 && st.ByState[billing.WebhookEventStateFailed]+st.ByState[billing.WebhookEventStateParked] > 0 {
				clock.Advance(time.Minute)
			}
		}))
		e := &env{t: t, st: first, clock: clock, notes: notes}
		if got := e.state("sub_1"); !equalState(got, want) {
			t.Fatalf("round %d: state\n got %+v\nwant %+v", round, got, want)
		}
		if got := e.emails(); strings.Join(got, ",") != strings.Join(wantMails, ",") {
			t.Fatalf("round %d: emails\n got %v\nwant %v", round, got, wantMails)
		}
	}
}

// Proves: in inbox mode an invoice.paid whose invoice the Stripe API does not know (404)
// is accepted, then ignored at its first attempt with a log line: not failed, not parked,
// never retried.
func TestInboxObjectUnknownToAPIIgnored(t *testing.T) {
	srv := fakeAPI(t, map[string]any{})
	st, clock := memstore.New(), testkit.NewClock(t0)
	svc, err := billing.NewService(st, testkit.NewNotifier(), billing.Config{Clock: clock, Logger: quietLogger(), ReferenceSecret: refSecret})
	if err != nil {
		t.Fatal(err)
	}
	h, err := stripegw.NewWebhookHandler(svc.Processor(), stripegw.Config{WebhookSecret: secret, Prices: testPrices,
		SecretKey: "sk_test_1", BaseURL: srv.URL, MaxNetworkRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	w, err := billing.NewInboxWorker(svc)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Seed(t, st, testkit.Plan("pro", billing.CycleMonthly, 2990), testkit.User("u1"))
	e := &env{t: t, st: st, clock: clock, svc: svc, h: h}
	e.accept(stripegwtest.NewEvent("evt_404", stripegw.EventInvoicePaid, invoice("in_404", "sub_1", "paid", 2990, p1s, p1e, 1)))
	if n := drain(t, w); n != 1 {
		t.Fatalf("drained %d events, want 1", n)
	}
	if ev := e.event("evt_404"); ev.State != billing.WebhookEventStateIgnored || ev.Attempts != 1 || !ev.NextAttemptAt.IsZero() && ev.NextAttemptAt.After(clock.Now()) {
		t.Fatalf("event %+v; want ignored after one attempt", ev)
	}
	clock.Advance(3 * time.Hour)
	if n := drain(t, w); n != 0 {
		t.Fatalf("an ignored event was attempted again (%d)", n)
	}
}

// Proves: the acknowledgement reads the envelope only, and still rejects what it cannot
// store. A signed body without a valid envelope (no id or type, not an event, data.object
// missing or without an id) is 400 and stores nothing. One whose envelope is fine but whose
// object has a field of the wrong type is accepted (200) under the object key the envelope
// names; the worker, which decodes the whole object, records it failed with the reason and
// changes nothing else.
func TestInboxAcceptReadsOnlyTheEnvelope(t *testing.T) {
	e, w := newInboxEnv(t)
	for _, body := range []string{`{`, `[]`, `{"id":"evt_x"}`, `{"id":"evt_x","type":"invoice.paid","object":"invoice"}`,
		`{"id":"evt_x","type":"invoice.paid","data":{"object":"x"}}`, `{"id":"evt_x","type":"invoice.paid","data":{"object":{"amount_paid":1}}}`,
		`{"id":"evt_x","type":"invoice.paid","data":{"object":{"id":"in_1","subscription":7}}}`} {
		rec := e.postRaw([]byte(body), stripegw.SignPayload(secret, []byte(body), t0))
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", body, rec.Code)
		}
	}
	if e.eventRecorded("evt_x") {
		t.Fatal("malformed envelope stored")
	}
	body := []byte(`{"id":"evt_lots","type":"invoice.paid","created":1893499200,"data":{"object":{"id":"in_1","parent":{"subscription_details":{"subscription":"sub_9"}},"amount_paid":"lots"}}}`)
	if rec := e.postRaw(body, stripegw.SignPayload(secret, body, t0)); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"status":"accepted"`) {
		t.Fatalf("envelope fine, object odd: %d %s, want 200 accepted", rec.Code, rec.Body)
	}
	if ev := e.event("evt_lots"); ev.ObjectKey != "sub_9" || ev.Type != stripegw.EventInvoicePaid || !ev.OccurredAt.Equal(time.Unix(1893499200, 0)) {
		t.Fatalf("stored %+v, want object sub_9 (API 2025-03-31 layout), invoice.paid at 1893499200", ev)
	}
	drain(t, w)
	if ev := e.event("evt_lots"); ev.State != billing.WebhookEventStateFailed || !strings.Contains(ev.Error, "malformed") {
		t.Fatalf("after the worker: %+v, want failed as malformed", ev)
	}
	if _, err := e.st.FindPaymentByGateway(context.Background(), billing.GatewayStripe, "in_1"); err == nil {
		t.Fatal("payment recorded for an undecodable invoice")
	}
	e.noSub("sub_9")
	if n := len(e.notes.Sent()); n != 0 {
		t.Fatalf("%d emails sent", n)
	}
}
