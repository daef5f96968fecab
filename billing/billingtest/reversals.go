package billingtest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

// reversalEnv is user "u" whose payment "pay1" (2990 BRL, gateway payment "in_1") was
// approved and bought subscription "s" on plan "basic" through a month from now.
func (s *suite) reversalEnv(ctx context.Context, t *testing.T, cfg billing.Config) (*env, billing.Subscription) {
	t.Helper()
	e := s.env(ctx, t, cfg, testkit.Plan("basic", billing.CycleMonthly, 2990), testkit.User("u"), payment("pay1", "u", "basic"))
	res, err := e.svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay1", GatewayPaymentID: "in_1"})
	must(t, err, "ProcessApproved")
	e.notif.Reset()
	return e, e.sub(res.SubscriptionID)
}

func refund(amount int64) billing.ReversalParams {
	return billing.ReversalParams{Gateway: billing.GatewayStripe, GatewayPaymentIDs: []string{"ch_1", "in_1"},
		Kind: billing.ReversalKindRefund, Refunded: billing.Money{Amount: amount, Currency: "BRL"}, Reason: "requested_by_customer",
		Actor: billing.GatewayStripe}
}

func chargeback(kind billing.ReversalKind) billing.ReversalParams {
	return billing.ReversalParams{Gateway: billing.GatewayStripe, GatewayPaymentIDs: []string{"in_1"}, Kind: kind,
		Reason: "fraudulent", Actor: billing.GatewayStripe}
}

// refundEndsAccessAtOnce proves a full refund of the payment that bought the current period
// marks it refunded, cancels the subscription and revokes the user's access at once (the
// default), sends one payment_reversed email with the amount and audits it, leaving no
// effects pending.
func (s *suite) refundEndsAccessAtOnce(ctx context.Context, t *testing.T) {
	e, sub := s.reversalEnv(ctx, t, billing.Config{})
	res, err := e.svc.Processor().ProcessReversal(ctx, refund(2990))
	must(t, err, "ProcessReversal")
	if !res.Success || res.Duplicate || res.PaymentID != "pay1" {
		t.Fatalf("result %+v", res)
	}
	p := e.payment("pay1")
	if p.Status != billing.PaymentStatusRefunded || p.RefundedAmount != 2990 || p.ReversalReason != "requested_by_customer" || !p.ReversedAt.Equal(e.clock.Now()) {
		t.Fatalf("payment %+v, want refunded 2990", p)
	}
	if got := e.sub(sub.ID); got.Status != billing.SubscriptionStatusCancelled || !got.CurrentPeriodEnd.Equal(sub.CurrentPeriodEnd) {
		t.Fatalf("subscription %s ending %v, want cancelled", got.Status, got.CurrentPeriodEnd)
	}
	if u := e.user("u"); u.HasAccess(e.clock.Now()) || u.PlanID != "" {
		t.Fatalf("user %+v still has access after a full refund", u)
	}
	e.wantKinds("pay1", billing.NotificationKindPaymentReversed)
	n := e.notif.For("pay1")[0]
	if n.Data.Amount != (billing.Money{Amount: 2990, Currency: "BRL"}) || n.Data.Reason != string(billing.PaymentStatusRefunded) || !n.Data.PeriodEnd.Equal(e.clock.Now()) {
		t.Fatalf("payment_reversed data %+v, want 2990 BRL refunded, access ending now", n.Data)
	}
	e.wantAudits(billing.AuditPaymentRefunded, "pay1", 1)
	e.wantAudits(billing.AuditSubscriptionEnded, sub.ID, 1)
	e.wantAudits(billing.AuditAccessRevoked, "u", 1)
	e.noPending()
}

// refundAtPeriodEndKeepsAccessUntilThen proves Config.ReversalAccess ReversalAccessAtPeriodEnd sets
// the subscription to cancel at its period end and keeps access until then; the email says
// when access ends.
func (s *suite) refundAtPeriodEndKeepsAccessUntilThen(ctx context.Context, t *testing.T) {
	e, sub := s.reversalEnv(ctx, t, billing.Config{ReversalAccess: billing.ReversalAccessAtPeriodEnd})
	_, err := e.svc.Processor().ProcessReversal(ctx, refund(2990))
	must(t, err, "ProcessReversal")
	got := e.sub(sub.ID)
	if got.Status != billing.SubscriptionStatusActive || !got.CancelAtPeriodEnd || got.AutoRenews() {
		t.Fatalf("subscription %+v, want active and cancelling at period end", got)
	}
	if u := e.user("u"); !u.HasAccess(e.clock.Now()) || !u.AccessUntil.Equal(sub.CurrentPeriodEnd) {
		t.Fatalf("user %+v lost access before the period end", u)
	}
	if n := e.notif.For("pay1"); len(n) != 1 || !n[0].Data.PeriodEnd.Equal(sub.CurrentPeriodEnd) {
		t.Fatalf("notifications %+v, want one payment_reversed saying access ends %v", n, sub.CurrentPeriodEnd)
	}
	// At the period end the expiry job ends it like any non-renewing subscription.
	e.clock.Set(sub.CurrentPeriodEnd.Add(time.Minute))
	_, err = e.svc.ProcessExpiredSubscriptions(ctx)
	must(t, err, "ProcessExpiredSubscriptions")
	if u := e.user("u"); u.HasAccess(e.clock.Now()) {
		t.Fatalf("user %+v kept access past the period end", u)
	}
}

// partialRefundChangesNoAccess proves a partial refund records the amount refunded and an
// audit entry, and changes neither the subscription nor the access, and sends no email.
func (s *suite) partialRefundChangesNoAccess(ctx context.Context, t *testing.T) {
	e, sub := s.reversalEnv(ctx, t, billing.Config{})
	before := e.snapshot([]string{"u"}, nil)
	_, err := e.svc.Processor().ProcessReversal(ctx, refund(1000))
	must(t, err, "ProcessReversal")
	if p := e.payment("pay1"); p.Status != billing.PaymentStatusApproved || p.RefundedAmount != 1000 {
		t.Fatalf("payment %s refunded %d, want approved with 1000 refunded", p.Status, p.RefundedAmount)
	}
	after := e.snapshot([]string{"u"}, nil)
	if !reflect.DeepEqual(before.Users, after.Users) || !reflect.DeepEqual(before.Subs, after.Subs) || after.Sent != 0 {
		t.Fatalf("a partial refund changed access: before %+v after %+v", before, after)
	}
	e.wantAudits(billing.AuditPaymentPartiallyRefunded, "pay1", 1)
	// The rest refunded later is a full refund.
	_, err = e.svc.Processor().ProcessReversal(ctx, refund(2990))
	must(t, err, "second refund")
	if got := e.sub(sub.ID); got.Status != billing.SubscriptionStatusCancelled {
		t.Fatalf("subscription %s after the rest was refunded, want cancelled", got.Status)
	}
}

// reversalOfOlderPaymentKeepsCurrentPeriod proves a refund of a payment that did not buy the
// current period (it was renewed by a later payment) is recorded and audited but leaves the
// subscription and the access alone.
func (s *suite) reversalOfOlderPaymentKeepsCurrentPeriod(ctx context.Context, t *testing.T) {
	e, sub := s.reversalEnv(ctx, t, billing.Config{})
	testkit.Seed(t, e.st, payment("pay2", "u", "basic", forSub(sub.ID)))
	_, err := e.svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay2", GatewayPaymentID: "in_2"})
	must(t, err, "approving the renewal")
	renewed := e.sub(sub.ID)
	access := e.user("u")
	_, err = e.svc.Processor().ProcessReversal(ctx, refund(2990))
	must(t, err, "ProcessReversal")
	if p := e.payment("pay1"); p.Status != billing.PaymentStatusRefunded {
		t.Fatalf("older payment %s, want refunded", p.Status)
	}
	if got := e.sub(sub.ID); got.Status != billing.SubscriptionStatusActive || !got.CurrentPeriodEnd.Equal(renewed.CurrentPeriodEnd) || got.CancelAtPeriodEnd {
		t.Fatalf("subscription %+v changed by the refund of an older payment", got)
	}
	if u := e.user("u"); !reflect.DeepEqual(u, access) {
		t.Fatalf("access changed: %+v, want %+v", u, access)
	}
	e.wantAudits(billing.AuditPaymentRefunded, "pay1", 1)
	e.wantAudits(billing.AuditSubscriptionEnded, sub.ID, 0)
}

// replayedReversalChangesNothing proves a second delivery of a reversal already applied (a
// new event id for the same refund) changes nothing, audits nothing and sends nothing.
func (s *suite) replayedReversalChangesNothing(ctx context.Context, t *testing.T) {
	e, _ := s.reversalEnv(ctx, t, billing.Config{})
	pp := e.svc.Processor()
	_, err := pp.ProcessReversal(ctx, refund(2990))
	must(t, err, "ProcessReversal")
	before := e.snapshot([]string{"u"}, []string{"pay1"})
	e.clock.Advance(time.Hour)
	for _, p := range []billing.ReversalParams{refund(2990), refund(1000), chargeback(billing.ReversalKindChargeback)} {
		res, err := pp.ProcessReversal(ctx, p)
		must(t, err, "replay")
		if !res.Duplicate {
			t.Fatalf("replay of %s: %+v, want a duplicate", p.Kind, res)
		}
	}
	if after := e.snapshot([]string{"u"}, []string{"pay1"}); !reflect.DeepEqual(before, after) {
		t.Fatalf("a replay changed something:\nbefore %+v\nafter  %+v", before, after)
	}
	// A refunded payment is never approved again.
	if _, err := pp.ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay1"}); err == nil {
		t.Fatal("a refunded payment was approved again")
	}
}

// chargebackThenDisputeWon proves a chargeback ends access at once and a dispute won gives it
// back (payment approved again, subscription active, access restored), while a dispute lost
// (a second chargeback notice) keeps it ended.
func (s *suite) chargebackThenDisputeWon(ctx context.Context, t *testing.T) {
	e, sub := s.reversalEnv(ctx, t, billing.Config{})
	pp := e.svc.Processor()
	_, err := pp.ProcessReversal(ctx, chargeback(billing.ReversalKindChargeback))
	must(t, err, "chargeback")
	if p := e.payment("pay1"); p.Status != billing.PaymentStatusChargedBack || p.ReversalReason != "fraudulent" {
		t.Fatalf("payment %+v, want charged back", p)
	}
	if u := e.user("u"); u.HasAccess(e.clock.Now()) {
		t.Fatalf("user %+v kept access after a chargeback", u)
	}
	e.wantKinds("pay1", billing.NotificationKindPaymentReversed)
	if res, err := pp.ProcessReversal(ctx, chargeback(billing.ReversalKindChargeback)); err != nil || !res.Duplicate {
		t.Fatalf("dispute lost after the chargeback: %+v, %v; want a duplicate", res, err)
	}
	e.clock.Advance(24 * time.Hour)
	_, err = pp.ProcessReversal(ctx, chargeback(billing.ReversalKindDisputeWon))
	must(t, err, "dispute won")
	if p := e.payment("pay1"); p.Status != billing.PaymentStatusApproved || !p.ReversedAt.IsZero() {
		t.Fatalf("payment %+v, want approved again", p)
	}
	got := e.sub(sub.ID)
	if got.Status != billing.SubscriptionStatusActive || !got.CurrentPeriodEnd.Equal(sub.CurrentPeriodEnd) {
		t.Fatalf("subscription %+v, want active again through %v", got, sub.CurrentPeriodEnd)
	}
	if u := e.user("u"); !u.HasAccess(e.clock.Now()) || u.SubscriptionID != sub.ID {
		t.Fatalf("user %+v, want access restored", u)
	}
	e.wantAudits(billing.AuditPaymentDisputeWon, "pay1", 1)
	e.wantKinds("pay1", billing.NotificationKindPaymentReversed) // nothing more sent
	e.noPending()
}

// unknownPaymentReversalIsUnknown proves a reversal of a charge renewkit never recorded is
// ErrUnknownPayment and changes nothing.
func (s *suite) unknownPaymentReversal(ctx context.Context, t *testing.T) {
	e, _ := s.reversalEnv(ctx, t, billing.Config{})
	before := e.snapshot([]string{"u"}, []string{"pay1"})
	p := refund(2990)
	p.GatewayPaymentIDs = []string{"ch_other"}
	if _, err := e.svc.Processor().ProcessReversal(ctx, p); !billing.Permanent(err) {
		t.Fatalf("reversal of an unknown charge: %v, want ErrUnknownPayment", err)
	}
	wrong := refund(2990)
	wrong.Refunded.Currency = "USD"
	if _, err := e.svc.Processor().ProcessReversal(ctx, wrong); !billing.Permanent(err) {
		t.Fatalf("refund in another currency: %v, want ErrInvalidAmount", err)
	}
	if after := e.snapshot([]string{"u"}, []string{"pay1"}); !reflect.DeepEqual(before, after) {
		t.Fatalf("a rejected reversal changed something")
	}
}

// renewalFromTwoSourcesOnce proves a period the renew job renewed and the gateway's charge
// (Stripe invoice.paid) then paid is audited as one renewal and announced by one email, not
// by both a renewed and a payment-successful email.
func (s *suite) renewalFromTwoSourcesOnce(ctx context.Context, t *testing.T) {
	end := testkit.Epoch.Add(12 * time.Hour)
	next := billing.AddMonths(end, 1)
	sub := testkit.AutoRenewing(testkit.Subscription("s", "u", "basic", end), billing.GatewayStripe)
	e := s.env(ctx, t, billing.Config{Renewals: map[string]billing.RenewalLookup{billing.GatewayStripe: lookup{
		"gw-s": answer(billing.GatewaySubscription{ID: "gw-s", Status: billing.SubscriptionStatusActive, PeriodStart: end, PeriodEnd: next}),
	}}}, testkit.Plan("basic", billing.CycleMonthly, 2990), testkit.UserWithAccess("u", "basic", "s", end), sub)
	res, err := e.svc.RenewSubscriptions(ctx)
	must(t, err, "RenewSubscriptions")
	if res.Renewed != 1 {
		t.Fatalf("renew job %+v, want one renewed", res)
	}
	_, err = e.svc.Processor().ApplyGatewayPayment(ctx, charge("in_next", next))
	must(t, err, "ApplyGatewayPayment")
	if got := e.sub("s"); !got.CurrentPeriodEnd.Equal(next) {
		t.Fatalf("period end %v, want %v", got.CurrentPeriodEnd, next)
	}
	e.wantAudits(billing.AuditSubscriptionRenewed, "s", 1)
	if n := e.notif.Count(billing.NotificationKindRenewed) + e.notif.Count(billing.NotificationKindPaymentSuccessful); n != 1 {
		t.Fatalf("%d renewed/payment emails for one renewal (%v), want 1", n, e.sentKinds("s"))
	}
	e.sentOncePerKey()
}
