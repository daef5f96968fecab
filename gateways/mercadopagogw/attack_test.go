package mercadopagogw

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// The attacker suite: external_reference, the preapproval's plan and amounts are chosen by
// whoever creates the preapproval or checkout; each case asserts nothing is granted.

func (e *env) wantRejected(w *httptest.ResponseRecorder) {
	e.t.Helper()
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"rejected"`) {
		e.t.Fatalf("got %d %s, want 200 rejected", w.Code, w.Body)
	}
}

func (e *env) noGrant() {
	e.t.Helper()
	ctx := context.Background()
	if u, _ := e.st.GetUser(ctx, "u1"); u.HasAccess(e.clock.Now()) || u.PlanID != "" {
		e.t.Errorf("user has access: %+v", u)
	}
	if _, err := e.st.FindSubscriptionByGateway(ctx, billing.GatewayMercadoPago, preID); err == nil {
		e.t.Error("a subscription was created")
	}
}

// deliverPreapproval puts the preapproval m at the API and notifies it.
func (e *env) deliverPreapproval(m map[string]any) *httptest.ResponseRecorder {
	e.mp.putPreapproval(m)
	return e.deliver(TypePreapproval, preID, notif(e.t, 9001, TypePreapproval, "created", preID))
}

func authorized(t *testing.T) map[string]any {
	return preapprovalState(t, "authorized", 0, t0.AddDate(0, 1, 0), t0)
}

// Proves: an external_reference written by hand ("u1:premium", the old convention) creates
// no subscription.
func TestAttackForgedReference(t *testing.T) {
	e := newEnv(t)
	m := authorized(t)
	m["external_reference"] = "u1:premium"
	e.wantRejected(e.deliverPreapproval(m))
	e.noGrant()
}

// Proves: a reference signed for another user, with the ids edited to the victim's, is
// refused.
func TestAttackSomeoneElsesUserID(t *testing.T) {
	e := newEnv(t)
	own, victim := signedRef(t, "eve", "premium"), signedRef(t, "u1", "premium")
	m := authorized(t)
	m["external_reference"] = victim[:len(victim)-22] + own[len(own)-22:]
	e.wantRejected(e.deliverPreapproval(m))
	e.noGrant()
}

// Proves: a genuine reference to premium on a preapproval charging 0.01, on one charging
// in another currency, or on an unmapped preapproval plan, creates nothing.
func TestAttackCheaperPlanOrCurrency(t *testing.T) {
	for name, mutate := range map[string]func(map[string]any){
		"cheaper amount": func(m map[string]any) { setPath(m, "auto_recurring.transaction_amount", 0.01) },
		"wrong currency": func(m map[string]any) { setPath(m, "auto_recurring.currency_id", "USD") },
		"unmapped plan":  func(m map[string]any) { m["preapproval_plan_id"] = "2c938084cheap" },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			m := authorized(t)
			mutate(m)
			e.wantRejected(e.deliverPreapproval(m))
			e.noGrant()
		})
	}
}

// Proves: a checkout payment in another currency than the renewkit payment it names
// grants nothing: the payment is failed with the reason.
func TestAttackWrongCurrencyCheckout(t *testing.T) {
	e := newEnv(t)
	p := e.pendingPayment()
	m := checkoutPayment(t, "approved", "accredited", p.ID)
	m["currency_id"] = "USD"
	e.mp.putPayment(checkoutID, m)
	e.wantRejected(e.deliverPayment(8001, "payment.created"))
	if got := e.payment(p.ID); got.Status != billing.PaymentStatusFailed || !strings.Contains(got.Reason, "charge mismatch") {
		t.Fatalf("payment %+v, want failed with a charge mismatch reason", got)
	}
	e.noGrant()
}

// Proves: a genuine notification replayed an hour later (old signed ts) is refused with
// 400 and records nothing.
func TestAttackReplayedOldSignature(t *testing.T) {
	e := newEnv(t)
	p := e.pendingCheckout("approved", "accredited")
	body := notif(t, 8001, TypePayment, "payment.created", "1312345678")
	r := NewSignedRequest("http://127.0.0.1/api/payments/mercadopago/webhook", testSecret, TypePayment, "1312345678", "req-old",
		e.clock.Now().Add(-time.Hour), body)
	if w := e.serve(r); w.Code != http.StatusBadRequest {
		t.Fatalf("replay: %d %s, want 400", w.Code, w.Body)
	}
	if got := e.payment(p.ID); got.Status != billing.PaymentStatusPending {
		t.Fatalf("payment %+v, want pending", got)
	}
}

// Proves: the same signed notification with a new (unsigned) body id is a duplicate: the
// payment is approved once and its email sent once.
func TestAttackReplayedBodyNewID(t *testing.T) {
	e := newEnv(t)
	p := e.pendingCheckout("approved", "accredited")
	for _, id := range []int64{8001, 8002} {
		if w := e.deliver(TypePayment, "1312345678", notif(t, id, TypePayment, "payment.created", "1312345678")); w.Code != http.StatusOK {
			t.Fatalf("%d: %d %s", id, w.Code, w.Body)
		}
	}
	n := 0
	for _, m := range e.mails() {
		if m.Kind == billing.NotificationKindPaymentSuccessful {
			n++
		}
	}
	if got := e.payment(p.ID); got.Status != billing.PaymentStatusApproved || n != 1 {
		t.Fatalf("payment %s, %d payment emails; want approved once", got.Status, n)
	}
}
