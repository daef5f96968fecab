package stripegw_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/stripegw"
	"github.com/renewkit/renewkit/gateways/stripegw/stripegwtest"
	"github.com/renewkit/renewkit/internal/testkit"
)

func charge(id, invoiceID string, amount, refunded int64) map[string]any {
	return map[string]any{"id": id, "object": "charge", "amount": amount, "amount_refunded": refunded,
		"currency": "brl", "refunded": refunded >= amount, "invoice": invoiceID, "payment_intent": "pi_" + id,
		"paid": true, "status": "succeeded", "created": t0.Unix()}
}

func dispute(id, chargeID, status string) map[string]any {
	return map[string]any{"id": id, "object": "dispute", "charge": chargeID, "payment_intent": "pi_" + chargeID,
		"amount": 2990, "currency": "brl", "status": status, "reason": "fraudulent", "created": t0.Unix()}
}

// paidEnv is user u1 with subscription sub_1 bought by invoice in_1 (charge ch_1), the API
// answering with objects (plus the subscription, invoice and session the checkout needs).
func paidEnv(t *testing.T, objects map[string]any) *env {
	t.Helper()
	objects["/v1/invoices/in_1"] = invoice("in_1", "sub_1", "paid", 2990, p1s, p1e, 1)
	objects["/v1/subscriptions/sub_1"] = subscription("sub_1", "active", false, p1s, p1e, meta)
	objects["/v1/checkout/sessions/cs_1"] = checkoutSession("cs_1", "sub_1", "in_1", meta)
	srv := fakeAPI(t, objects)
	e := newEnv(t, stripegw.Config{SecretKey: "sk_test_1", BaseURL: srv.URL, MaxNetworkRetries: -1})
	for _, ev := range lifecycle()[:2] {
		if code := e.post(ev); code != http.StatusOK {
			t.Fatalf("%s: %d", ev.Type, code)
		}
	}
	if p := e.payment("in_1"); p.Status != billing.PaymentStatusApproved {
		t.Fatalf("in_1 %s, want approved", p.Status)
	}
	e.notes.Reset()
	return e
}

func (e *env) hasAccess() bool {
	e.t.Helper()
	return testkit.HasAccess(e.t, e.st, e.clock, "u1")
}

// Proves: charge.refunded for the charge that paid the current period refunds the payment
// and ends access at once, with the amount refunded read from the API, not the body (which
// claims nothing was refunded); a second delivery under a new event id sends nothing more.
func TestChargeRefundedEndsAccess(t *testing.T) {
	e := paidEnv(t, map[string]any{"/v1/charges/ch_1": charge("ch_1", "in_1", 2990, 2990)})
	body := charge("ch_1", "in_1", 2990, 0)
	if code := e.post(stripegwtest.NewEvent("evt_refund", stripegw.EventChargeRefunded, body)); code != http.StatusOK {
		t.Fatalf("charge.refunded: %d", code)
	}
	if p := e.payment("in_1"); p.Status != billing.PaymentStatusRefunded || p.RefundedAmount != 2990 {
		t.Fatalf("payment %s refunded %d, want refunded 2990", p.Status, p.RefundedAmount)
	}
	if s := e.sub("sub_1"); s.Status != billing.SubscriptionStatusCancelled || e.hasAccess() {
		t.Fatalf("subscription %s, access %v after a full refund", s.Status, e.hasAccess())
	}
	if got := e.notes.Count(billing.NotificationKindPaymentReversed); got != 1 {
		t.Fatalf("%d payment_reversed emails, want 1", got)
	}
	if code := e.post(stripegwtest.NewEvent("evt_refund_again", stripegw.EventChargeRefunded, body)); code != http.StatusOK {
		t.Fatalf("replay: %d", code)
	}
	if got := e.notes.Count(""); got != 1 {
		t.Fatalf("%d emails after a replay, want 1", got)
	}
}

// Proves: a body claiming a full refund of a charge the API reports unrefunded changes
// nothing; a partial refund the API reports is recorded and keeps access.
func TestChargeRefundedTrustsTheAPI(t *testing.T) {
	e := paidEnv(t, map[string]any{"/v1/charges/ch_1": charge("ch_1", "in_1", 2990, 0),
		"/v1/charges/ch_part": charge("ch_part", "in_1", 2990, 990)})
	forged := charge("ch_1", "in_1", 2990, 2990)
	if code := e.post(stripegwtest.NewEvent("evt_forged", stripegw.EventChargeRefunded, forged)); code != http.StatusOK {
		t.Fatalf("forged refund: %d", code)
	}
	if p := e.payment("in_1"); p.Status != billing.PaymentStatusApproved || p.RefundedAmount != 0 || !e.hasAccess() {
		t.Fatalf("payment %+v, access %v: a refund the API does not report changed something", p, e.hasAccess())
	}
	if code := e.post(stripegwtest.NewEvent("evt_part", stripegw.EventChargeRefunded, charge("ch_part", "in_1", 2990, 990))); code != http.StatusOK {
		t.Fatalf("partial refund: %d", code)
	}
	if p := e.payment("in_1"); p.Status != billing.PaymentStatusApproved || p.RefundedAmount != 990 || !e.hasAccess() {
		t.Fatalf("payment %+v, access %v, want approved with 990 refunded and access kept", p, e.hasAccess())
	}
	if n := e.notes.Count(""); n != 0 {
		t.Fatalf("%d emails, want none", n)
	}
}

// Proves: charge.dispute.created (funds withdrawn, per the API) charges the payment back and
// ends access; charge.dispute.closed with the API reporting it won gives access back; an
// inquiry (warning_needs_response) and a refund of a charge renewkit never recorded change
// nothing.
func TestDisputeCreatedThenWon(t *testing.T) {
	e := paidEnv(t, map[string]any{
		"/v1/charges/ch_1": charge("ch_1", "in_1", 2990, 0), "/v1/charges/ch_other": charge("ch_other", "in_other", 500, 500),
		"/v1/disputes/dp_open": dispute("dp_open", "ch_1", "needs_response"), "/v1/disputes/dp_won": dispute("dp_won", "ch_1", "won"),
		"/v1/disputes/dp_inquiry": dispute("dp_inquiry", "ch_1", "warning_needs_response"),
	})
	for _, ev := range []*stripegwtest.Event{
		stripegwtest.NewEvent("evt_inquiry", stripegw.EventDisputeCreated, dispute("dp_inquiry", "ch_1", "needs_response")),
		stripegwtest.NewEvent("evt_other", stripegw.EventChargeRefunded, charge("ch_other", "in_other", 500, 500)),
	} {
		if code := e.post(ev); code != http.StatusOK {
			t.Fatalf("%s: %d", ev.ID, code)
		}
	}
	if p := e.payment("in_1"); p.Status != billing.PaymentStatusApproved || !e.hasAccess() {
		t.Fatalf("payment %s, access %v after an inquiry and a foreign refund", p.Status, e.hasAccess())
	}
	if code := e.post(stripegwtest.NewEvent("evt_dispute", stripegw.EventDisputeCreated, dispute("dp_open", "ch_1", "won"))); code != http.StatusOK {
		t.Fatalf("dispute created: %d", code)
	}
	if p := e.payment("in_1"); p.Status != billing.PaymentStatusChargedBack || p.ReversalReason != "fraudulent" || e.hasAccess() {
		t.Fatalf("payment %+v, access %v, want charged back without access", p, e.hasAccess())
	}
	e.clock.Advance(48 * time.Hour)
	if code := e.post(stripegwtest.NewEvent("evt_won", stripegw.EventDisputeClosed, dispute("dp_won", "ch_1", "lost"))); code != http.StatusOK {
		t.Fatalf("dispute closed: %d", code)
	}
	if p := e.payment("in_1"); p.Status != billing.PaymentStatusApproved || !e.hasAccess() || e.sub("sub_1").Status != billing.SubscriptionStatusActive {
		t.Fatalf("payment %s, access %v after the dispute was won, want approved with access", p.Status, e.hasAccess())
	}
}
