package stripegw_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/stripegw"
	"github.com/renewkit/renewkit/gateways/stripegw/stripegwtest"
	"github.com/renewkit/renewkit/internal/testkit"
)

// The attacker suite: each case is what a buyer controls (client_reference_id on a Payment
// Link, a price chosen in the browser, a checkout in another currency) or a captured
// delivery, and each asserts that nothing is granted.

func (e *env) deliverRec(ev *stripegwtest.Event, signedAt time.Time) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, ev.Request("/webhook", secret, signedAt))
	return rec
}

func (e *env) wantRejected(ev *stripegwtest.Event) {
	e.t.Helper()
	rec := e.deliverRec(ev, e.clock.Now())
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"rejected"`) {
		e.t.Fatalf("%s: got %d %s, want 200 rejected", ev.ID, rec.Code, rec.Body)
	}
}

// noGrant asserts that user u has no access and no live subscription.
func (e *env) noGrant(users ...string) {
	e.t.Helper()
	for _, id := range users {
		u, _ := e.st.GetUser(context.Background(), id)
		if u.HasAccess(e.clock.Now()) || u.PlanID != "" {
			e.t.Errorf("user %s has access: %+v", id, u)
		}
		subs, _ := e.st.ListUserSubscriptions(context.Background(), id)
		for _, s := range subs {
			if s.Status.Live() {
				e.t.Errorf("live subscription of %s: %+v", id, s)
			}
		}
	}
}

func newAttackEnv(t *testing.T) *env {
	e := newEnv(t, stripegw.Config{Prices: map[string]string{"price_pro": "pro", "price_cheap": "cheap"}})
	testkit.Seed(t, e.st, testkit.Plan("cheap", billing.CycleMonthly, 1), testkit.User("eve"))
	return e
}

// Proves: client_reference_id "u1" or metadata user_id/plan_id written by the buyer (the
// old convention) create no subscription; the delivery is answered 200 "rejected".
func TestAttackForgedReference(t *testing.T) {
	e := newAttackEnv(t)
	for i, m := range []map[string]string{{"user_id": "u1", "plan_id": "pro"}, {stripegw.MetadataReference: "u1:pro"}} {
		s := checkoutSession("cs_1", "sub_1", "in_1", m)
		if i == 0 {
			s["client_reference_id"] = "u1"
		}
		e.wantRejected(stripegwtest.NewEvent("evt_f"+string(rune('0'+i)), stripegw.EventCheckoutSessionCompleted, s))
	}
	e.noSub("sub_1")
	e.noGrant("u1")
}

// Proves: a reference signed for the attacker, edited to name another user, is refused.
func TestAttackSomeoneElsesUserID(t *testing.T) {
	e := newAttackEnv(t)
	own, victim := signedRef("eve", "pro"), signedRef("u1", "pro")
	s := checkoutSession("cs_1", "sub_1", "in_1", nil)
	s["client_reference_id"] = victim[:len(victim)-22] + own[len(own)-22:]
	e.wantRejected(stripegwtest.NewEvent("evt_1", stripegw.EventCheckoutSessionCompleted, s))
	e.noSub("sub_1")
	e.noGrant("u1", "eve")
}

// Proves: a genuine reference for plan pro on a subscription to the cheap price (or to a
// price Config.Prices does not map) creates nothing.
func TestAttackCheaperPlan(t *testing.T) {
	for _, price := range []string{"price_cheap", "price_unmapped"} {
		t.Run(price, func(t *testing.T) {
			e := newAttackEnv(t)
			sub := subscription("sub_1", "active", false, p1s, p1e, meta)
			sub["items"] = map[string]any{"object": "list", "data": []any{map[string]any{"price": map[string]any{"id": price}}}}
			e.wantRejected(stripegwtest.NewEvent("evt_1", stripegw.EventSubscriptionCreated, sub))
			e.noSub("sub_1")
			e.noGrant("u1")
		})
	}
}

// Proves: a paid invoice of less than the plan's price, or in another currency, grants
// nothing: the payment is failed with the reason, the subscription stays pending.
func TestAttackCheapOrForeignInvoice(t *testing.T) {
	for name, mutate := range map[string]func(map[string]any){
		"cheaper":        func(inv map[string]any) { inv["amount_paid"] = 1 },
		"wrong currency": func(inv map[string]any) { inv["currency"] = "usd" },
	} {
		t.Run(name, func(t *testing.T) {
			e := newAttackEnv(t)
			if code := e.post(lifecycle()[0]); code != http.StatusOK {
				t.Fatalf("checkout: %d", code)
			}
			inv := invoice("in_1", "sub_1", "paid", 2990, p1s, p1e, 1)
			mutate(inv)
			e.wantRejected(stripegwtest.NewEvent("evt_paid", stripegw.EventInvoicePaid, inv))
			if p := e.payment("in_1"); p.Status != billing.PaymentStatusFailed || !strings.Contains(p.Reason, "charge mismatch") {
				t.Fatalf("payment %+v, want failed with a charge mismatch reason", p)
			}
			if s := e.sub("sub_1"); s.Status != billing.SubscriptionStatusPending || !s.CurrentPeriodEnd.IsZero() {
				t.Fatalf("subscription %+v, want pending without a period", s)
			}
			e.noGrant("u1")
		})
	}
}

// Proves: a one-off Checkout that charged 0.01 BRL does not approve the host's pending
// 999.00 USD payment it names: the payment fails with the reason, nothing is created.
func TestAttackCheapCheckoutPayment(t *testing.T) {
	e := newAttackEnv(t)
	pay := testkit.Payment("pay_1", "u1", "pro", 99900, t0)
	pay.Amount.Currency = "USD"
	testkit.Seed(t, e.st, pay)
	s := checkoutSession("cs_p", "", "", map[string]string{"payment_id": "pay_1"})
	s["mode"], s["amount_total"], s["currency"] = "payment", 1, "brl"
	e.wantRejected(stripegwtest.NewEvent("evt_pay", stripegw.EventCheckoutSessionCompleted, s))
	got, _ := e.st.GetPayment(context.Background(), "pay_1")
	if got.Status != billing.PaymentStatusFailed || !strings.Contains(got.Reason, "charge mismatch") {
		t.Fatalf("payment %+v, want failed with a charge mismatch reason", got)
	}
	e.noGrant("u1")
}

// Proves: a genuine delivery replayed an hour later (old Stripe-Signature timestamp) is
// answered 400 and records nothing.
func TestAttackReplayedOldSignature(t *testing.T) {
	e := newAttackEnv(t)
	if rec := e.deliverRec(lifecycle()[0], e.clock.Now().Add(-time.Hour)); rec.Code != http.StatusBadRequest {
		t.Fatalf("replay: %d %s, want 400", rec.Code, rec.Body)
	}
	if e.eventRecorded("evt_checkout") {
		t.Fatal("replayed event recorded")
	}
	e.noSub("sub_1")
}

// Proves: the same paid invoice re-sent under a new event id extends the subscription once.
func TestAttackReplayedBodyNewID(t *testing.T) {
	e := newAttackEnv(t)
	ev := lifecycle()
	for _, x := range ev[:2] {
		if code := e.post(x); code != http.StatusOK {
			t.Fatalf("%s: %d", x.ID, code)
		}
	}
	first := e.sub("sub_1")
	again := stripegwtest.NewEvent("evt_paid_1_replayed", stripegw.EventInvoicePaid, invoice("in_1", "sub_1", "paid", 2990, p1s, p1e, 1))
	if code := e.post(again); code != http.StatusOK {
		t.Fatalf("replay: %d", code)
	}
	if s := e.sub("sub_1"); !s.CurrentPeriodEnd.Equal(first.CurrentPeriodEnd) || len(s.AppliedPayments) != 1 {
		t.Fatalf("replayed invoice extended again: %v -> %v", first.CurrentPeriodEnd, s.CurrentPeriodEnd)
	}
}
