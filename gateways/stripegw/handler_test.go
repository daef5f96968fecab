package stripegw_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
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
	"github.com/renewkit/renewkit/internal/testkit"
)

// lifecycle is a realistic subscription life: Checkout, the first invoice, a renewal, a
// failed renewal charge, its successful retry, then the customer cancels. Created times
// are Stripe's clock.
func lifecycle() []*stripegwtest.Event {
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	return []*stripegwtest.Event{
		stripegwtest.NewEvent("evt_checkout", stripegw.EventCheckoutSessionCompleted, checkoutSession("cs_1", "sub_1", "in_1", meta)).CreatedAt(at(time.Second)),
		stripegwtest.NewEvent("evt_paid_1", stripegw.EventInvoicePaid, invoice("in_1", "sub_1", "paid", 2990, p1s, p1e, 1)).CreatedAt(at(time.Second)),
		stripegwtest.NewEvent("evt_paid_2", stripegw.EventInvoicePaid, invoice("in_2", "sub_1", "paid", 2990, p2s, p2e, 1)).CreatedAt(p2s.Add(time.Hour)),
		stripegwtest.NewEvent("evt_failed_3", stripegw.EventInvoicePaymentFailed, invoice("in_3", "sub_1", "open", 2990, p3s, p3e, 1)).CreatedAt(p3s.Add(time.Hour)),
		stripegwtest.NewEvent("evt_paid_3", stripegw.EventInvoicePaid, invoice("in_3", "sub_1", "paid", 2990, p3s, p3e, 2)).CreatedAt(p3s.Add(72 * time.Hour)),
		stripegwtest.NewEvent("evt_deleted", stripegw.EventSubscriptionDeleted, subscription("sub_1", "canceled", false, p3s, p3e, meta)).CreatedAt(p3s.Add(100 * time.Hour)),
	}
}

// Proves: a delivery signed with the endpoint secret within the tolerance is processed.
func TestValidSignatureAccepted(t *testing.T) {
	e := newEnv(t, stripegw.Config{})
	ev := lifecycle()[0]
	if code := e.post(ev); code != http.StatusOK {
		t.Fatalf("status %d, want 200", code)
	}
	if !e.eventRecorded("evt_checkout") {
		t.Fatal("event not recorded")
	}
	if s := e.sub("sub_1"); s.Status != billing.SubscriptionStatusPending || s.UserID != "u1" || s.PlanID != "pro" {
		t.Fatalf("subscription %+v", s)
	}
}

// Each case proves the named property of signature verification: the delivery is answered
// 400, no webhook event is recorded and the subscription it would cancel is unchanged.
func TestSignatureRejected(t *testing.T) {
	cancel := stripegwtest.NewEvent("evt_cancel", stripegw.EventSubscriptionDeleted,
		subscription("sub_1", "canceled", false, p1s, p1e, meta)).CreatedAt(t0.Add(time.Hour))
	body := cancel.Payload()
	cases := []struct {
		name, property string
		body           []byte
		header         func(now time.Time) string
	}{
		{"tampered body", "the HMAC covers every byte of the body",
			bytes.Replace(body, []byte(`"canceled"`), []byte(`"active"  `), 1),
			func(now time.Time) string { return stripegw.SignPayload(secret, body, now) }},
		{"wrong secret", "only the endpoint's secret signs", body,
			func(now time.Time) string { return stripegw.SignPayload("whsec_other", body, now) }},
		{"missing header", "an unsigned delivery is never processed", body,
			func(time.Time) string { return "" }},
		{"stale timestamp", "a replay older than the tolerance is refused, by the injected clock", body,
			func(now time.Time) string { return stripegw.SignPayload(secret, body, now.Add(-6*time.Minute)) }},
		{"future timestamp", "a timestamp beyond the tolerance ahead is refused", body,
			func(now time.Time) string { return stripegw.SignPayload(secret, body, now.Add(6*time.Minute)) }},
		{"malformed header", "a header without t= and v1= is refused", body,
			func(time.Time) string { return "v1=deadbeef" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Log("proves:", c.property)
			e := newEnv(t, stripegw.Config{})
			if code := e.post(lifecycle()[0]); code != 200 {
				t.Fatalf("setup: %d", code)
			}
			if code := e.post(lifecycle()[1]); code != 200 {
				t.Fatalf("setup: %d", code)
			}
			before := e.sub("sub_1")
			rec := e.postRaw(c.body, c.header(e.clock.Now()))
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400 (%s)", rec.Code, rec.Body)
			}
			var msg map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &msg); err != nil || !strings.HasPrefix(msg["error"], "stripegw: ") {
				t.Fatalf("error body %q", rec.Body)
			}
			if e.eventRecorded("evt_cancel") {
				t.Fatal("rejected delivery was recorded in the webhook inbox")
			}
			if after := e.sub("sub_1"); after.Version != before.Version || after.Status != billing.SubscriptionStatusActive {
				t.Fatalf("subscription changed: %+v", after)
			}
		})
	}
}

// Proves: a correctly signed delivery that is not declared application/json (text/plain, a
// form, or no Content-Type) is answered 415 with a JSON error before anything is read or
// recorded, and the subscription it would create does not exist; charset is allowed.
func TestNonJSONContentTypeRejected(t *testing.T) {
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", ""} {
		t.Run(ct, func(t *testing.T) {
			e := newEnv(t, stripegw.Config{})
			req := lifecycle()[0].Request("/webhook", secret, e.clock.Now())
			req.Header.Set("Content-Type", ct)
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnsupportedMediaType || !strings.Contains(rec.Body.String(), `"error"`) {
				t.Fatalf("%d %s, want 415 with a JSON error", rec.Code, rec.Body)
			}
			if e.eventRecorded("evt_checkout") {
				t.Fatal("event recorded")
			}
			e.noSub("sub_1")
		})
	}
	e := newEnv(t, stripegw.Config{})
	req := lifecycle()[0].Request("/webhook", secret, e.clock.Now())
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("application/json; charset=utf-8: %d %s, want 200", rec.Code, rec.Body)
	}
}

// Proves: the tolerance follows the injected clock, not the wall clock (the test clock is
// years away from time.Now()).
func TestToleranceUsesInjectedClock(t *testing.T) {
	e := newEnv(t, stripegw.Config{Tolerance: time.Minute})
	ev := lifecycle()[0]
	e.clock.Advance(30 * time.Second)
	body, _ := ev.Sign(secret, t0)
	if rec := e.postRaw(body, stripegw.SignPayload(secret, body, t0)); rec.Code != 200 {
		t.Fatalf("30 s old with 1 min tolerance: %d", rec.Code)
	}
	e.clock.Advance(time.Minute)
	if rec := e.postRaw(body, stripegw.SignPayload(secret, body, t0)); rec.Code != 400 {
		t.Fatalf("90 s old with 1 min tolerance: %d", rec.Code)
	}
}

func TestBodyLimitAndMethod(t *testing.T) {
	e := newEnv(t, stripegw.Config{})
	big := bytes.Repeat([]byte(" "), 1<<20+1)
	if rec := e.postRaw(big, stripegw.SignPayload(secret, big, t0)); rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("body over 1 MiB: %d, want 413", rec.Code)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/webhook", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != http.MethodPost {
		t.Fatalf("GET: %d Allow=%q, want 405 POST", rec.Code, rec.Header().Get("Allow"))
	}
}

// Proves: a correctly signed body that is not an event is 400 and records nothing.
func TestMalformedEventRejected(t *testing.T) {
	e := newEnv(t, stripegw.Config{})
	for _, body := range []string{`{`, `[]`, `{"id":"evt_x"}`, `{"id":"evt_x","type":"invoice.paid","data":{"object":"x"}}`,
		`{"id":"evt_x","type":"invoice.paid","data":{"object":{"id":"in_1","amount_paid":"lots"}}}`} {
		rec := e.postRaw([]byte(body), stripegw.SignPayload(secret, []byte(body), t0))
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", body, rec.Code)
		}
	}
	if e.eventRecorded("evt_x") {
		t.Fatal("malformed event recorded")
	}
}

func TestUnknownEventIgnored(t *testing.T) {
	e := newEnv(t, stripegw.Config{})
	ev := stripegwtest.NewEvent("evt_ch", "charge.refunded", map[string]any{"id": "ch_1", "object": "charge"})
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, ev.Request("/webhook", secret, t0))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"ignored"`) {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

// Proves: a redelivered event is answered 200 and changes nothing (state, payments, emails).
func TestDuplicateDelivery(t *testing.T) {
	e := newEnv(t, stripegw.Config{})
	for _, ev := range lifecycle()[:3] {
		if code := e.post(ev); code != 200 {
			t.Fatalf("%s: %d", ev.ID, code)
		}
	}
	before, mails := e.sub("sub_1"), e.emails()
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, lifecycle()[2].Request("/webhook", secret, e.clock.Now()))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"duplicate"`) {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if after := e.sub("sub_1"); after.Version != before.Version || !after.CurrentPeriodEnd.Equal(p2e) {
		t.Fatalf("duplicate changed the subscription: %+v", after)
	}
	if got := e.emails(); strings.Join(got, ",") != strings.Join(mails, ",") {
		t.Fatalf("emails %v, want %v", got, mails)
	}
}

// Proves: an older customer.subscription.updated delivered after a newer one does not move
// the subscription back.
func TestOutOfOrderSubscriptionUpdated(t *testing.T) {
	e := newEnv(t, stripegw.Config{})
	for _, ev := range lifecycle()[:2] {
		if code := e.post(ev); code != 200 {
			t.Fatalf("%s: %d", ev.ID, code)
		}
	}
	newer := stripegwtest.NewEvent("evt_upd_2", stripegw.EventSubscriptionUpdated,
		subscription("sub_1", "active", true, p1s, p1e, meta)).CreatedAt(t0.Add(2 * time.Hour))
	older := stripegwtest.NewEvent("evt_upd_1", stripegw.EventSubscriptionUpdated,
		subscription("sub_1", "past_due", false, p1s, p1e, meta)).CreatedAt(t0.Add(time.Hour))
	if code := e.post(newer); code != 200 {
		t.Fatal(code)
	}
	if code := e.post(older); code != 200 {
		t.Fatal(code)
	}
	s := e.sub("sub_1")
	if !s.CancelAtPeriodEnd || s.Status != billing.SubscriptionStatusActive || !s.GatewayUpdatedAt.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("older event moved the subscription back: %+v", s)
	}
}

// Proves: a subscription event only moves status and flags; it never grants the period
// Stripe has opened but not collected yet.
func TestSubscriptionUpdatedDoesNotGrantUnpaidPeriod(t *testing.T) {
	e := newEnv(t, stripegw.Config{})
	for _, ev := range lifecycle()[:2] {
		e.post(ev)
	}
	upd := stripegwtest.NewEvent("evt_upd", stripegw.EventSubscriptionUpdated,
		subscription("sub_1", "active", false, p2s, p2e, meta)).CreatedAt(p2s)
	if code := e.post(upd); code != 200 {
		t.Fatal(code)
	}
	if s := e.sub("sub_1"); !s.CurrentPeriodEnd.Equal(p1e) {
		t.Fatalf("period end %v, want %v (unpaid period granted)", s.CurrentPeriodEnd, p1e)
	}
}

// Proves: invoice.paid for a subscription renewkit does not know yet is answered 503 (Stripe
// retries) and applied once the creating event arrived; the paid period is the invoice
// line's, not invoice.period_start/end.
func TestInvoicePaidBeforeSubscriptionExists(t *testing.T) {
	e := newEnv(t, stripegw.Config{})
	ev := lifecycle()
	if code := e.post(ev[1]); code != http.StatusServiceUnavailable {
		t.Fatalf("invoice.paid first: %d, want 503", code)
	}
	e.noSub("sub_1")
	if code := e.post(ev[0]); code != 200 {
		t.Fatalf("checkout: %d", code)
	}
	if code := e.post(ev[1]); code != 200 {
		t.Fatalf("redelivered invoice.paid: %d", code)
	}
	s := e.sub("sub_1")
	if s.Status != billing.SubscriptionStatusActive || !s.CurrentPeriodStart.Equal(p1s) || !s.CurrentPeriodEnd.Equal(p1e) {
		t.Fatalf("subscription %+v, want active %v..%v", s, p1s, p1e)
	}
	if p := e.payment("in_1"); p.Status != billing.PaymentStatusApproved || p.Amount != (billing.Money{Amount: 2990, Currency: "BRL"}) {
		t.Fatalf("payment %+v", p)
	}
}

// Proves: a failed renewal charge sets past_due and sends the payment-failed email once with
// the reason; the successful retry of the same invoice recovers the subscription.
func TestPaymentFailedThenRecovered(t *testing.T) {
	e := newEnv(t, stripegw.Config{})
	ev := lifecycle()
	for _, x := range ev[:4] {
		if code := e.post(x); code != 200 {
			t.Fatalf("%s: %d", x.ID, code)
		}
	}
	if s := e.sub("sub_1"); s.Status != billing.SubscriptionStatusPastDue || !s.CurrentPeriodEnd.Equal(p2e) {
		t.Fatalf("after failure: %+v", s)
	}
	if n := e.notes.Count(billing.NotificationKindPaymentFailed); n != 1 {
		t.Fatalf("payment-failed emails: %d", n)
	}
	if p := e.payment("in_3/attempt-1"); p.Status != billing.PaymentStatusFailed || p.Reason == "" {
		t.Fatalf("failed payment %+v", p)
	}
	if code := e.post(ev[4]); code != 200 {
		t.Fatal(code)
	}
	if s := e.sub("sub_1"); s.Status != billing.SubscriptionStatusActive || !s.CurrentPeriodEnd.Equal(p3e) {
		t.Fatalf("after recovery: %+v", s)
	}
	if code := e.post(ev[5]); code != 200 {
		t.Fatal(code)
	}
	s := e.sub("sub_1")
	u, _ := e.st.GetUser(context.Background(), "u1")
	if s.Status != billing.SubscriptionStatusCancelled || u.HasAccess(e.clock.Now()) || e.notes.Count(billing.NotificationKindExpired) != 1 {
		t.Fatalf("after deletion: %+v, user %+v", s, u)
	}
}

// Proves: delivering every lifecycle event five times, shuffled and concurrently (each
// retried like Stripe until 2xx), ends in the same subscription state, payments and
// emails as delivering each once in order.
func TestLifecycleShuffledConcurrent(t *testing.T) {
	inOrder := newEnv(t, stripegw.Config{})
	for _, ev := range lifecycle() {
		if code := inOrder.post(ev); code != 200 {
			t.Fatalf("in order %s: %d", ev.ID, code)
		}
	}
	want, wantMails := inOrder.state("sub_1"), inOrder.emails()
	if want.Status != billing.SubscriptionStatusCancelled || !want.PeriodEnd.Equal(p3e) || len(want.Payments) != 4 {
		t.Fatalf("in-order state %+v", want)
	}
	for round := 0; round < 10; round++ {
		e := newEnv(t, stripegw.Config{})
		deliveries := testkit.Shuffled(rand.New(rand.NewPCG(uint64(round), 7)), lifecycle(), 5)
		var wg sync.WaitGroup
		errs := make(chan error, len(deliveries))
		for _, ev := range deliveries {
			wg.Go(func() { errs <- e.deliverUntilOK(ev) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if got := e.state("sub_1"); !equalState(got, want) {
			t.Fatalf("round %d: state\n got %+v\nwant %+v", round, got, want)
		}
		if got := e.emails(); strings.Join(got, ",") != strings.Join(wantMails, ",") {
			t.Fatalf("round %d: emails\n got %v\nwant %v", round, got, wantMails)
		}
	}
}

func equalState(a, b state) bool {
	return a.Status == b.Status && a.PeriodStart.Equal(b.PeriodStart) && a.PeriodEnd.Equal(b.PeriodEnd) &&
		a.CancelAtPeriodEnd == b.CancelAtPeriodEnd && a.GatewayUpdatedAt.Equal(b.GatewayUpdatedAt) &&
		strings.Join(a.Payments, ",") == strings.Join(b.Payments, ",") && a.HasAccess == b.HasAccess
}

func TestConfigLogValueHidesSecrets(t *testing.T) {
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("cfg", "cfg", stripegw.Config{SecretKey: "sk_test_SECRET", WebhookSecret: "whsec_SECRET"})
	if strings.Contains(b.String(), "SECRET") || !strings.Contains(b.String(), "secret_key=true") {
		t.Fatalf("logged %s", b.String())
	}
}
