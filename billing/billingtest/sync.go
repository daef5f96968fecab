package billingtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

// gatewayEnv is one auto-renewing Stripe subscription "s" of user "u" on plan "basic",
// paid through end.
func (s *suite) gatewayEnv(ctx context.Context, t *testing.T, end time.Time) *env {
	t.Helper()
	sub := testkit.AutoRenewing(testkit.Subscription("s", "u", "basic", end), billing.GatewayStripe)
	return s.env(ctx, t, billing.Config{}, testkit.Plan("basic", billing.CycleMonthly, 2990),
		testkit.UserWithAccess("u", "basic", "s", end), sub)
}

func charge(id string, periodEnd time.Time) billing.GatewayPaymentParams {
	return billing.GatewayPaymentParams{Gateway: billing.GatewayStripe, GatewayPaymentID: id, GatewaySubscriptionID: "gw-s",
		Amount: billing.Money{Amount: 2990, Currency: "BRL"}, PeriodStart: billing.AddMonths(periodEnd, -1), PeriodEnd: periodEnd}
}

// gatewayChargeForCoveredPeriodDoesNotExtend proves a charge whose stated period the
// subscription already covers (the renew job got there first) is recorded once and extends
// nothing: no cycle is added on top of the gateway's period.
func (s *suite) gatewayChargeForCoveredPeriodDoesNotExtend(ctx context.Context, t *testing.T) {
	end := testkit.Epoch.Add(20 * day)
	e := s.gatewayEnv(ctx, t, end)
	pp := e.svc.Processor()
	res, err := pp.ApplyGatewayPayment(ctx, charge("in_1", end))
	must(t, err, "ApplyGatewayPayment")
	if got := e.sub("s"); !got.CurrentPeriodEnd.Equal(end) || got.Status != billing.SubscriptionStatusActive {
		t.Fatalf("after a charge for the current period: end %v status %s, want %v active", got.CurrentPeriodEnd, got.Status, end)
	}
	if p := e.payment(res.PaymentID); p.Status != billing.PaymentStatusApproved {
		t.Fatalf("payment %s, want approved", p.Status)
	}
	// The next period's charge extends to the stated end, not to end + 1 cycle + 1 cycle.
	next := billing.AddMonths(end, 1)
	_, err = pp.ApplyGatewayPayment(ctx, charge("in_2", next))
	must(t, err, "second charge")
	if got := e.sub("s").CurrentPeriodEnd; !got.Equal(next) {
		t.Fatalf("period end %v, want the stated %v", got, next)
	}
	// A redelivery of either changes nothing.
	_, err = pp.ApplyGatewayPayment(ctx, charge("in_1", end))
	must(t, err, "redelivery")
	if got := e.sub("s").CurrentPeriodEnd; !got.Equal(next) {
		t.Fatalf("redelivery moved the period to %v", got)
	}
	if n := e.notif.Count(billing.NotificationKindPaymentSuccessful); n != 2 {
		t.Fatalf("%d payment emails, want 2", n)
	}
}

// lateChargeDoesNotReviveEndedSubscription proves a charge made before the gateway
// ended the subscription is recorded but leaves it cancelled and the user without access.
func (s *suite) lateChargeDoesNotReviveEndedSubscription(ctx context.Context, t *testing.T) {
	end := testkit.Epoch.Add(10 * day)
	e := s.gatewayEnv(ctx, t, end)
	pp := e.svc.Processor()
	cancelledAt := testkit.Epoch.Add(time.Hour)
	_, err := pp.SyncSubscription(ctx, billing.SyncParams{Gateway: billing.GatewayStripe, GatewaySubscriptionID: "gw-s",
		Status: billing.SubscriptionStatusCancelled, EventTime: cancelledAt})
	must(t, err, "SyncSubscription cancelled")
	late := charge("in_late", billing.AddMonths(end, 1))
	late.PaidAt = cancelledAt.Add(-time.Minute)
	_, err = pp.ApplyGatewayPayment(ctx, late)
	must(t, err, "late charge")
	if got := e.sub("s"); got.Status != billing.SubscriptionStatusCancelled {
		t.Fatalf("status %s after a charge from before the cancellation, want cancelled", got.Status)
	}
	if u := e.user("u"); u.HasAccess(e.clock.Now()) || u.PlanID != "" {
		t.Fatalf("user %+v has access again, want none", u)
	}
	if n := e.notif.Count(billing.NotificationKindExpired); n != 1 {
		t.Fatalf("%d expired emails, want 1", n)
	}
}

// syncNeverMovesBackwards proves an older event delivered late is ignored.
func (s *suite) syncNeverMovesBackwards(ctx context.Context, t *testing.T) {
	end := testkit.Epoch.Add(10 * day)
	e := s.gatewayEnv(ctx, t, end)
	pp := e.svc.Processor()
	newer, older := testkit.Epoch.Add(2*time.Hour), testkit.Epoch.Add(time.Hour)
	_, err := pp.SyncSubscription(ctx, billing.SyncParams{Gateway: billing.GatewayStripe, GatewaySubscriptionID: "gw-s",
		Status: billing.SubscriptionStatusPastDue, EventTime: newer, PeriodEnd: end})
	must(t, err, "newer")
	res, err := pp.SyncSubscription(ctx, billing.SyncParams{Gateway: billing.GatewayStripe, GatewaySubscriptionID: "gw-s",
		Status: billing.SubscriptionStatusActive, EventTime: older, PeriodEnd: end.Add(-5 * day)})
	must(t, err, "older")
	if !res.Stale || res.Changed {
		t.Fatalf("older event result %+v, want stale and unchanged", res)
	}
	if got := e.sub("s"); got.Status != billing.SubscriptionStatusPastDue || !got.CurrentPeriodEnd.Equal(end) {
		t.Fatalf("subscription %s until %v, want past_due until %v", got.Status, got.CurrentPeriodEnd, end)
	}
}

// failGatewayPayment proves a failed gateway charge is recorded once (a failed payment,
// one payment-failed email), that bad input changes nothing, and that an unknown
// subscription is a retryable not-found.
func (s *suite) failGatewayPayment(ctx context.Context, t *testing.T) {
	e := s.gatewayEnv(ctx, t, testkit.Epoch.Add(day))
	pp := e.svc.Processor()
	params := charge("in_9", time.Time{})
	for range 2 {
		res, err := pp.FailGatewayPayment(ctx, params, "card_declined")
		must(t, err, "FailGatewayPayment")
		if p := e.payment(res.PaymentID); p.Status != billing.PaymentStatusFailed || p.Reason != "card_declined" || p.SubscriptionID != "s" {
			t.Fatalf("payment %+v, want failed for s with the reason", p)
		}
	}
	if n := e.notif.Count(billing.NotificationKindPaymentFailed); n != 1 {
		t.Fatalf("%d payment-failed emails, want 1", n)
	}
	bad := params
	bad.GatewayPaymentID, bad.Amount.Amount = "in_10", -1
	if _, err := pp.FailGatewayPayment(ctx, bad, "x"); !errors.Is(err, billing.ErrInvalidAmount) {
		t.Fatalf("negative amount: %v, want ErrInvalidAmount", err)
	}
	if _, err := e.st.FindPaymentByGateway(ctx, billing.GatewayStripe, "in_10"); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("bad input stored a payment: %v", err)
	}
	unknown := params
	unknown.GatewayPaymentID, unknown.GatewaySubscriptionID = "in_11", "gw-nope"
	if _, err := pp.FailGatewayPayment(ctx, unknown, "x"); !errors.Is(err, billing.ErrNotFound) || billing.Permanent(err) {
		t.Fatalf("unknown subscription: %v, want a retryable ErrNotFound", err)
	}
}

// olderChargeKeepsPastDue proves a charge delivered late, made before a newer failed
// renewal put the subscription past_due, is recorded without clearing past_due.
func (s *suite) olderChargeKeepsPastDue(ctx context.Context, t *testing.T) {
	end := testkit.Epoch.Add(10 * day)
	e := s.gatewayEnv(ctx, t, end)
	pp := e.svc.Processor()
	failedAt := testkit.Epoch.Add(2 * time.Hour)
	_, err := pp.SyncSubscription(ctx, billing.SyncParams{Gateway: billing.GatewayStripe, GatewaySubscriptionID: "gw-s",
		Status: billing.SubscriptionStatusPastDue, EventTime: failedAt})
	must(t, err, "past_due sync")
	old := charge("in_old", end)
	old.PaidAt = failedAt.Add(-24 * time.Hour)
	res, err := pp.ApplyGatewayPayment(ctx, old)
	must(t, err, "older charge")
	if got := e.sub("s"); got.Status != billing.SubscriptionStatusPastDue || !got.CurrentPeriodEnd.Equal(end) {
		t.Fatalf("subscription %s until %v, want past_due until %v", got.Status, got.CurrentPeriodEnd, end)
	}
	if p := e.payment(res.PaymentID); p.Status != billing.PaymentStatusApproved {
		t.Fatalf("older charge %s, want recorded as approved", p.Status)
	}
	// A newer charge (the retry that succeeded) clears past_due.
	retry := charge("in_retry", billing.AddMonths(end, 1))
	retry.PaidAt = failedAt.Add(time.Hour)
	_, err = pp.ApplyGatewayPayment(ctx, retry)
	must(t, err, "retry charge")
	if got := e.sub("s"); got.Status != billing.SubscriptionStatusActive || !got.CurrentPeriodEnd.Equal(billing.AddMonths(end, 1)) {
		t.Fatalf("after the newer charge: %s until %v, want active one month further", got.Status, got.CurrentPeriodEnd)
	}
}

// lateChargesOnEndedSubscriptionAddUp proves charges without a stated period applied to
// an ended subscription follow each other from its period end instead of each starting now.
func (s *suite) lateChargesOnEndedSubscriptionAddUp(ctx context.Context, t *testing.T) {
	end := testkit.Epoch.Add(-20 * day)
	e := s.gatewayEnv(ctx, t, end)
	pp := e.svc.Processor()
	endedAt := testkit.Epoch.Add(-time.Hour)
	_, err := pp.SyncSubscription(ctx, billing.SyncParams{Gateway: billing.GatewayStripe, GatewaySubscriptionID: "gw-s",
		Status: billing.SubscriptionStatusCancelled, EventTime: endedAt})
	must(t, err, "cancel")
	for i, id := range []string{"sale_1", "sale_2"} {
		c := charge(id, time.Time{})
		c.PeriodStart, c.PaidAt = time.Time{}, endedAt.Add(-time.Duration(2-i)*time.Hour)
		_, err := pp.ApplyGatewayPayment(ctx, c)
		must(t, err, id)
	}
	if got := e.sub("s"); got.Status != billing.SubscriptionStatusCancelled || !got.CurrentPeriodEnd.Equal(billing.AddMonths(end, 2)) {
		t.Fatalf("subscription %s until %v, want cancelled until %v", got.Status, got.CurrentPeriodEnd, billing.AddMonths(end, 2))
	}
}

// A gateway cancellation whose expired email fails to send is finished by the redelivery:
// the transition, the access revocation, one audit entry and one email, however the first
// attempt ended. Proves: a failure in the middle of work loses nothing and is retried.
func (s *suite) cancellationEmailSurvivesAFailedSend(ctx context.Context, t *testing.T) {
	e := s.gatewayEnv(ctx, t, testkit.Epoch.Add(10*day))
	pp := e.svc.Processor()
	cancel := billing.SyncParams{Gateway: billing.GatewayStripe, GatewaySubscriptionID: "gw-s",
		Status: billing.SubscriptionStatusCancelled, EventTime: testkit.Epoch.Add(time.Hour)}
	e.notif.FailNext(1)
	if _, err := pp.SyncSubscription(ctx, cancel); err == nil {
		t.Log("the first delivery reported success though its email failed (the email must still go out)")
	}
	if got := e.sub("s"); got.Status != billing.SubscriptionStatusCancelled {
		t.Fatalf("subscription %s after the first delivery, want cancelled", got.Status)
	}
	if _, err := pp.SyncSubscription(ctx, cancel); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	e.wantKinds("s", billing.NotificationKindExpired)
	e.wantAudits(billing.AuditSubscriptionEnded, "s", 1)
	if u := e.user("u"); u.PlanID != "" {
		t.Fatalf("user keeps plan %q after the cancellation", u.PlanID)
	}
	e.noPending()
}
