package stripegw_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/stripegw"
	"github.com/renewkit/renewkit/gateways/stripegw/stripegwtest"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/memstore"
)

const secret = "whsec_test_secret"

// t0 is the test clock's start: the moment the customer completes Checkout.
var t0 = time.Date(2030, 1, 10, 12, 0, 0, 0, time.UTC)

// Periods of the test subscription: P1 starts at checkout.
var (
	p1s, p1e = t0, billing.AddMonths(t0, 1)
	p2s, p2e = p1e, billing.AddMonths(t0, 2)
	p3s, p3e = p2e, billing.AddMonths(t0, 3)
)

type env struct {
	t     testing.TB
	st    billing.Store
	clock *testkit.Clock
	notes *testkit.Notifier
	svc   *billing.Service
	h     http.Handler
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t testing.TB, cfg stripegw.Config) *env {
	t.Helper()
	e := &env{t: t, st: memstore.New(), clock: testkit.NewClock(t0), notes: testkit.NewNotifier()}
	svc, err := billing.NewService(e.st, e.notes, billing.Config{Clock: e.clock, Logger: quietLogger(), ReferenceSecret: refSecret})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	if cfg.WebhookSecret == "" {
		cfg.WebhookSecret = secret
	}
	if cfg.Prices == nil {
		cfg.Prices = testPrices
	}
	cfg.ProcessInline = true
	if e.h, err = stripegw.NewWebhookHandler(svc.Processor(), cfg); err != nil {
		t.Fatal(err)
	}
	testkit.Seed(t, e.st, testkit.Plan("pro", billing.CycleMonthly, 2990), testkit.User("u1"))
	return e
}

// post delivers ev signed now and returns the status.
func (e *env) post(ev *stripegwtest.Event) int {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, ev.Request("/webhook", secret, e.clock.Now()))
	return rec.Code
}

func (e *env) postRaw(body []byte, header string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/webhook", bytesReader(body))
	req.Header.Set("Content-Type", "application/json")
	if header != "" {
		req.Header.Set(stripegw.SignatureHeader, header)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

// deliverUntilOK redelivers like Stripe does until the answer is 2xx.
func (e *env) deliverUntilOK(ev *stripegwtest.Event) error {
	for i := 0; i < 200; i++ {
		code := e.post(ev)
		if code >= 200 && code < 300 {
			return nil
		}
		if code != http.StatusServiceUnavailable && code != http.StatusConflict && code != http.StatusInternalServerError {
			return fmt.Errorf("%s %s: status %d", ev.Type, ev.ID, code)
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("%s %s: never accepted", ev.Type, ev.ID)
}

func (e *env) sub(gid string) billing.Subscription {
	e.t.Helper()
	s, err := e.st.FindSubscriptionByGateway(context.Background(), billing.GatewayStripe, gid)
	if err != nil {
		e.t.Fatalf("subscription %s: %v", gid, err)
	}
	return s
}

func (e *env) noSub(gid string) {
	e.t.Helper()
	if _, err := e.st.FindSubscriptionByGateway(context.Background(), billing.GatewayStripe, gid); !errors.Is(err, billing.ErrNotFound) {
		e.t.Fatalf("subscription %s exists (err %v)", gid, err)
	}
}

func (e *env) payment(gid string) billing.Payment {
	e.t.Helper()
	p, err := e.st.FindPaymentByGateway(context.Background(), billing.GatewayStripe, gid)
	if err != nil {
		e.t.Fatalf("payment %s: %v", gid, err)
	}
	return p
}

func (e *env) eventRecorded(id string) bool {
	_, err := e.st.GetWebhookEvent(context.Background(), billing.GatewayStripe, id)
	return err == nil
}

// emails lists what was sent as "kind:<gateway payment id or period end>", sorted, so runs
// with different random ids compare.
func (e *env) emails() []string {
	var out []string
	for _, n := range e.notes.Sent() {
		k := string(n.Kind)
		switch {
		case n.Data.PaymentID != "":
			p, err := e.st.GetPayment(context.Background(), n.Data.PaymentID)
			if err != nil {
				e.t.Fatalf("payment of %s email: %v", n.Kind, err)
			}
			if n.Kind == billing.NotificationKindWelcome {
				break // the payment that triggers it depends on which invoice lands first
			}
			k += ":" + p.GatewayPaymentID
		case n.Kind == billing.NotificationKindExpired:
			k += ":" + n.Data.PeriodEnd.Format(time.RFC3339)
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// state is what must be the same however events were delivered.
type state struct {
	Status            billing.SubscriptionStatus
	PeriodStart       time.Time
	PeriodEnd         time.Time
	CancelAtPeriodEnd bool
	GatewayUpdatedAt  time.Time
	Payments          []string // gateway payment id = status
	HasAccess         bool
}

func (e *env) state(gid string) state {
	e.t.Helper()
	s := e.sub(gid)
	u, err := e.st.GetUser(context.Background(), s.UserID)
	if err != nil {
		e.t.Fatal(err)
	}
	st := state{Status: s.Status, PeriodStart: s.CurrentPeriodStart, PeriodEnd: s.CurrentPeriodEnd,
		CancelAtPeriodEnd: s.CancelAtPeriodEnd, GatewayUpdatedAt: s.GatewayUpdatedAt, HasAccess: u.HasAccess(e.clock.Now())}
	for _, id := range []string{"in_1", "in_2", "in_3", "in_3/attempt-1"} {
		if p, err := e.st.FindPaymentByGateway(context.Background(), billing.GatewayStripe, id); err == nil {
			st.Payments = append(st.Payments, id+"="+string(p.Status))
		}
	}
	slices.Sort(st.Payments)
	return st
}

// Stripe objects, shaped as API version 2023-10-16 renders them.

func checkoutSession(id, subID, invoiceID string, meta map[string]string) map[string]any {
	return map[string]any{
		"id": id, "object": "checkout.session", "mode": "subscription", "status": "complete", "payment_status": "paid",
		"subscription": subID, "invoice": invoiceID, "customer": "cus_1", "client_reference_id": nil,
		"metadata": meta, "amount_total": 2990, "currency": "brl",
	}
}

func invoice(id, subID, status string, amount int64, ps, pe time.Time, attempt int) map[string]any {
	paid := status == "paid"
	amountPaid := int64(0)
	if paid {
		amountPaid = amount
	}
	return map[string]any{
		"id": id, "object": "invoice", "status": status, "paid": paid, "subscription": subID, "customer": "cus_1",
		"currency": "brl", "amount_due": amount, "amount_paid": amountPaid, "attempt_count": attempt,
		"billing_reason": "subscription_cycle",
		// period_start/period_end of a renewal invoice cover the period that just ended;
		// the handler must not use them.
		"period_start": ps.AddDate(0, -1, 0).Unix(), "period_end": ps.Unix(),
		"lines": map[string]any{"object": "list", "has_more": false, "data": []any{
			map[string]any{"id": "il_" + id, "object": "line_item", "type": "subscription", "proration": false,
				"subscription": subID, "amount": amount, "currency": "brl",
				"period": map[string]any{"start": ps.Unix(), "end": pe.Unix()}},
		}},
	}
}

func subscription(id, status string, cancelAtEnd bool, ps, pe time.Time, meta map[string]string) map[string]any {
	return map[string]any{
		"id": id, "object": "subscription", "status": status, "cancel_at_period_end": cancelAtEnd,
		"current_period_start": ps.Unix(), "current_period_end": pe.Unix(), "customer": "cus_1",
		"metadata": meta, "latest_invoice": "in_x",
		"items": map[string]any{"object": "list", "data": []any{
			map[string]any{"id": "si_1", "object": "subscription_item", "price": map[string]any{"id": "price_pro", "object": "price"}},
		}},
	}
}

// refSecret is billing.Config.ReferenceSecret in these tests.
var refSecret = []byte("stripe-test-reference-secret-32b")

// signedRef is the reference a host puts in client_reference_id or metadata.
func signedRef(userID, planID string) string {
	s, err := billing.SignReference(refSecret, billing.Reference{UserID: userID, PlanID: planID})
	if err != nil {
		panic(err)
	}
	return s
}

var meta = map[string]string{stripegw.MetadataReference: signedRef("u1", "pro")}

// testPrices maps the test subscription's price to plan pro.
var testPrices = map[string]string{"price_pro": "pro"}
