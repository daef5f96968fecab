package mercadopagogw

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/mongotest"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/mongostore"
)

// replica is one process: a Service on a store it may share, its accepting (not inline)
// handler and its inbox worker.
type replica struct {
	h http.Handler
	w *billing.InboxWorker
}

func newReplica(t *testing.T, st billing.Store, clock billing.Clock, notifier billing.Notifier, baseURL string, inbox billing.InboxConfig) *replica {
	t.Helper()
	svc, err := billing.NewService(st, notifier, billing.Config{Clock: clock, Logger: slog.New(slog.DiscardHandler), ReferenceSecret: refSecret, Inbox: inbox})
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewWebhookHandler(svc.Processor(), Config{AccessToken: testToken, WebhookSecret: testSecret, BaseURL: baseURL})
	if err != nil {
		t.Fatal(err)
	}
	w, err := billing.NewInboxWorker(svc)
	if err != nil {
		t.Fatal(err)
	}
	return &replica{h: h, w: w}
}

// Proves: the Mercado Pago lifecycle, every notification delivered five times, shuffled and
// concurrently to three replicas that share one FerretDB store (each with its own client and
// inbox worker), ends in the same subscription, payments, access and emails as one in-order
// delivery, and every delivery, first ones included, is answered 200.
func TestInboxShuffledReplicasOnFerretDB(t *testing.T) {
	testkit.MongoURI(t) // before the in-order run: skip (or fail under CI) without a server
	phases := lifecycle(t)
	inOrder := newEnv(t)
	for _, ph := range phases {
		inOrder.deliverPhase(ph)
	}
	want := inOrder.snapshot()

	for round := range 2 {
		clock := testkit.NewClock(t0)
		mp := newFakeMP(t)
		e := &env{t: t, clock: clock, mp: mp}
		notifier := billing.NotifierFunc(func(_ context.Context, n billing.Notification) error {
			e.mu.Lock()
			e.sent = append(e.sent, n)
			e.mu.Unlock()
			return nil
		})
		var replicas []*replica
		stores, _, _ := mongotest.Stores(t, "rkmpinbox", 3, mongostore.Config{})
		first := stores[0]
		seedMP(t, first)
		for _, st := range stores {
			r := newReplica(t, st, clock, notifier, mp.srv.URL, billing.InboxConfig{Poll: 10 * time.Millisecond, Lease: 5 * time.Second})
			if err := r.w.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.w.Shutdown(context.Background()) })
			replicas = append(replicas, r)
		}
		rnd := rand.New(rand.NewPCG(uint64(round), 13))
		var reqN atomic.Int64
		for _, ph := range phases {
			clock.Set(ph.now)
			ph.api(mp)
			batch := testkit.Shuffled(rnd, ph.notes, 5)
			var storm []testkit.Delivery
			for _, d := range batch {
				reqID := "req-" + strconv.FormatInt(reqN.Add(1), 10)
				storm = append(storm, testkit.Delivery{Handler: replicas[rnd.IntN(3)].h,
					Request: NewSignedRequest("http://127.0.0.1/api/payments/mercadopago/webhook", testSecret, d.typ, d.dataID, reqID, clock.Now(), d.body)})
			}
			testkit.DeliverAll(t, fmt.Sprintf("round %d %s", round, ph.name), storm)
			// While only failed or parked events remain, the clock moves a second per poll, as
			// time passes for the workers: an event retried on a backoff becomes due. It stands
			// still while events are received, so a slow worker does not lose the lease of the
			// event it is applying; an event whose finish write failed is taken again when the
			// inbox stays unchanged for 10 s (the clock moves past its lease).
			testkit.DrainInbox(t, first, fmt.Sprintf("round %d %s", round, ph.name), 0, testkit.PastStuckLeases(t, clock, 5*time.Second, 10*time.Second, func(st billing.WebhookInboxStats) {
				if st.ByState[billing.WebhookEventStateReceived] == 0 {
					clock.Set(clock.Now().Add(time.Second))
				}
			}))
		}
		got := snapshotOf(t, first, e.mails())
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("round %d: three replicas, shuffled, five times each:\n%+v\nin order, once:\n%+v", round, got, want)
		}
	}
}

// statusRecorder is a concurrency-safe minimal http.ResponseWriter keeping the status.
type statusRecorder struct {
	header http.Header
	code   int
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return len(b), nil
}
func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

// seedMP stores what newEnv stores: the plan and the user.
func seedMP(t *testing.T, st billing.Store) {
	t.Helper()
	ctx := context.Background()
	if err := st.InsertPlan(ctx, &billing.Plan{ID: "premium", Name: "Premium", BillingCycle: billing.CycleMonthly,
		Price: billing.Money{Amount: 4990, Currency: "BRL"}, Active: true, CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := st.InsertUser(ctx, &billing.User{ID: "u1", Email: "joao.silva@example.com", Name: "João Silva",
		Locale: "pt-BR", TimeZone: "America/Sao_Paulo", CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
}

// Proves: a payment the API does not know yet (404 right after its notification) is
// accepted (200), parked with the inbox's backoff instead of failed, applied when it becomes
// visible, and otherwise ignored ("unknown object") once InboxConfig.ParkWait has passed:
// never a 4xx/5xx to Mercado Pago, never a retry loop.
func TestInboxPaymentNotVisibleYetParkedThenIgnored(t *testing.T) {
	for _, visible := range []bool{true, false} {
		e := newEnv(t)
		r := newReplica(t, e.st, e.clock, billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }),
			e.mp.srv.URL, billing.InboxConfig{ParkWait: time.Hour})
		p := e.pendingPayment()
		req := NewSignedRequest("http://127.0.0.1/webhook", testSecret, TypePayment, "1312345678", "req-404", e.clock.Now(),
			notif(t, 9001, TypePayment, "payment.created", "1312345678"))
		rec := &statusRecorder{header: http.Header{}}
		r.h.ServeHTTP(rec, req)
		if rec.code != http.StatusOK {
			t.Fatalf("delivery: %d, want 200 accepted", rec.code)
		}
		if _, err := r.w.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		evs, err := e.st.ListWebhookEvents(context.Background(), billing.WebhookEventQuery{Gateway: billing.GatewayMercadoPago, Limit: 5})
		if err != nil || len(evs) != 1 || evs[0].State != billing.WebhookEventStateParked || evs[0].NextAttemptAt.Sub(e.clock.Now()) != time.Minute {
			t.Fatalf("after a 404: %+v %v; want one event parked for the first backoff (1m)", evs, err)
		}
		if visible {
			e.mp.putPayment(checkoutID, checkoutPayment(t, "approved", "accredited", p.ID))
		}
		e.clock.Set(e.clock.Now().Add(time.Hour))
		if _, err := r.w.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		ev, err := e.event(evs[0].EventID)
		switch {
		case err != nil:
			t.Fatal(err)
		case visible && (ev.State != billing.WebhookEventStateProcessed || e.payment(p.ID).Status != billing.PaymentStatusApproved):
			t.Fatalf("payment visible later: event %s, payment %s; want processed and approved", ev.State, e.payment(p.ID).Status)
		case !visible && (ev.State != billing.WebhookEventStateIgnored || !strings.Contains(ev.Error, "unknown object")):
			t.Fatalf("never visible: event %s %q; want ignored as an unknown object after ParkWait", ev.State, ev.Error)
		}
	}
}
