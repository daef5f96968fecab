package mercadopagogw

import (
	"net/http"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/internal/hookhttp"
	"github.com/renewkit/renewkit/internal/testkit"
)

// approvedCheckout approves a renewkit checkout payment through the webhook and returns it.
func approvedCheckout(t *testing.T, e *env) billing.Payment {
	t.Helper()
	p := e.pendingCheckout("approved", "accredited")
	if w := e.deliverPayment(9001, "payment.created"); w.Code != http.StatusOK {
		t.Fatalf("approval: %d", w.Code)
	}
	if got := e.payment(p.ID); got.Status != billing.PaymentStatusApproved {
		t.Fatalf("payment %s, want approved", got.Status)
	}
	return p
}

func (e *env) hasAccess() bool {
	e.t.Helper()
	return testkit.HasAccess(e.t, e.st, e.clock, "u1")
}

func countKind(ns []billing.Notification, k billing.NotificationKind) int {
	n := 0
	for _, x := range ns {
		if x.Kind == k {
			n++
		}
	}
	return n
}

// TestRefundedEndsAccessOnce proves a payment the API reports refunded is marked refunded
// with the amount refunded, ends the access it bought and sends one payment_reversed email;
// a second notification of the same refund (new id, new request) changes nothing.
func TestRefundedEndsAccessOnce(t *testing.T) {
	e := newEnv(t)
	p := approvedCheckout(t, e)
	refunded := checkoutPayment(t, "refunded", "refunded", p.ID)
	refunded["transaction_amount_refunded"] = 49.9
	e.mp.putPayment(checkoutID, refunded)
	if w := e.deliverPayment(9002, "payment.updated"); w.Code != http.StatusOK ||
		w.Header().Get(hookhttp.OutcomeHeader) != string(billing.EventOutcomeProcessed) {
		t.Fatalf("refund: %d %s", w.Code, w.Header().Get(hookhttp.OutcomeHeader))
	}
	if got := e.payment(p.ID); got.Status != billing.PaymentStatusRefunded || got.RefundedAmount != 4990 {
		t.Fatalf("payment %s refunded %d, want refunded 4990", got.Status, got.RefundedAmount)
	}
	if e.hasAccess() {
		t.Fatal("access kept after a full refund")
	}
	e.clock.Set(t0.Add(time.Minute))
	if w := e.deliverPayment(9003, "payment.updated"); w.Code != http.StatusOK {
		t.Fatalf("replay: %d", w.Code)
	}
	if n := countKind(e.mails(), billing.NotificationKindPaymentReversed); n != 1 {
		t.Fatalf("%d payment_reversed emails, want 1", n)
	}
}

// TestPartialRefundAndChargebackWon proves an approved payment with part of it refunded
// keeps access and records the amount, a chargeback ends access and a chargeback the API
// reports reimbursed (decided for the seller) gives it back.
func TestPartialRefundAndChargebackWon(t *testing.T) {
	e := newEnv(t)
	p := approvedCheckout(t, e)
	partial := checkoutPayment(t, "approved", "partially_refunded", p.ID)
	partial["transaction_amount_refunded"] = 10.0
	e.mp.putPayment(checkoutID, partial)
	if w := e.deliverPayment(9002, "payment.updated"); w.Code != http.StatusOK {
		t.Fatalf("partial refund: %d", w.Code)
	}
	if got := e.payment(p.ID); got.Status != billing.PaymentStatusApproved || got.RefundedAmount != 1000 || !e.hasAccess() {
		t.Fatalf("payment %+v access %v, want approved with 1000 refunded and access kept", got, e.hasAccess())
	}
	e.mp.putPayment(checkoutID, checkoutPayment(t, "charged_back", "in_process", p.ID))
	if w := e.deliverPayment(9003, "payment.updated"); w.Code != http.StatusOK {
		t.Fatalf("chargeback: %d", w.Code)
	}
	if got := e.payment(p.ID); got.Status != billing.PaymentStatusChargedBack || e.hasAccess() {
		t.Fatalf("payment %s access %v, want charged back without access", got.Status, e.hasAccess())
	}
	e.clock.Set(t0.Add(24 * time.Hour))
	e.mp.putPayment(checkoutID, checkoutPayment(t, "charged_back", "reimbursed", p.ID))
	if w := e.deliverPayment(9004, "payment.updated"); w.Code != http.StatusOK {
		t.Fatalf("reimbursed: %d", w.Code)
	}
	if got := e.payment(p.ID); got.Status != billing.PaymentStatusApproved || !e.hasAccess() {
		t.Fatalf("payment %s access %v, want approved with access after the chargeback was reimbursed", got.Status, e.hasAccess())
	}
}

// TestRefundOfForeignPaymentIgnored proves a refunded Mercado Pago payment renewkit never
// approved is ignored even when its external_reference names a renewkit payment: the
// pending payment it names stays pending (and can still be approved).
func TestRefundOfForeignPaymentIgnored(t *testing.T) {
	e := newEnv(t)
	p := e.pendingCheckout("refunded", "refunded")
	w := e.deliverPayment(9002, "payment.updated")
	if w.Code != http.StatusOK || w.Header().Get(hookhttp.OutcomeHeader) != string(billing.EventOutcomeIgnored) {
		t.Fatalf("foreign refund: %d %s", w.Code, w.Header().Get(hookhttp.OutcomeHeader))
	}
	if got := e.payment(p.ID); got.Status != billing.PaymentStatusPending || got.RefundedAmount != 0 || len(e.mails()) != 0 {
		t.Fatalf("payment %+v changed by a refund renewkit never approved", got)
	}
}
