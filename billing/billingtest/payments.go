package billingtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

// A payment stays pending past the cleanup's 7 days, is cancelled, and then the gateway
// confirms it was paid. Proves: the approval is applied (cancelled becomes approved) and
// the user gets the period they paid for.
func (s *suite) approvalAfterCleanup(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	pay := testkit.Payment("pay1", "u1", "basic", 2990, now.Add(-8*day))
	e := s.env(ctx, t, billing.Config{}, basic, testkit.User("u1"), pay)
	res, err := e.svc.CleanupPendingPayments(ctx)
	must(t, err, "CleanupPendingPayments")
	if res.Cleaned != 1 {
		t.Fatalf("cleanup %+v, want the payment cancelled", res)
	}
	got, err := e.svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay1", GatewayPaymentID: "ch_1"})
	must(t, err, "ProcessApproved of the cancelled payment")
	p, err := e.st.GetPayment(ctx, "pay1")
	must(t, err, "GetPayment")
	if p.Status != billing.PaymentStatusApproved || got.SubscriptionID == "" {
		t.Fatalf("payment %s (result %+v), want approved with a subscription", p.Status, got)
	}
	if u := e.user("u1"); !u.HasAccess(now) {
		t.Fatalf("user who paid has no access: %+v", u)
	}
}

// updatePaymentHook runs before once, right before the first UpdatePayment reaches the
// store: the moment the cleanup job cancels a payment an approval has just read.
type updatePaymentHook struct {
	billing.Store
	once   sync.Once
	before func()
}

func (h *updatePaymentHook) UpdatePayment(ctx context.Context, read, changed billing.Payment) error {
	h.once.Do(h.before)
	return h.Store.UpdatePayment(ctx, read, changed)
}

// The cleanup job cancels a stale payment between the approval's read of it and its write.
// Proves: the approval still lands (the payment ends approved, not cancelled), and the
// subscription is extended exactly once.
func (s *suite) cleanupRacingApproval(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	pay := testkit.Payment("pay1", "u1", "basic", 2990, now.Add(-8*day))
	e := s.env(ctx, t, billing.Config{}, basic, testkit.User("u1"), pay)
	hook := &updatePaymentHook{Store: e.st}
	hook.before = func() {
		if res, err := e.svc.CleanupPendingPayments(ctx); err != nil || res.Cleaned != 1 {
			t.Errorf("cleanup during the approval: %+v, %v", res, err)
		}
	}
	res, err := e.service(hook, billing.Config{}).Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay1"})
	must(t, err, "ProcessApproved")
	p, err := e.st.GetPayment(ctx, "pay1")
	must(t, err, "GetPayment")
	if p.Status != billing.PaymentStatusApproved {
		t.Fatalf("payment %s after racing the cleanup, want approved", p.Status)
	}
	sub := e.sub(res.SubscriptionID)
	if want := billing.AddMonths(now, 1); !sub.CurrentPeriodEnd.Equal(want) || sub.Status != billing.SubscriptionStatusActive {
		t.Fatalf("subscription %s until %v, want active until %v (one cycle)", sub.Status, sub.CurrentPeriodEnd, want)
	}
}

// Two first payments of one user are approved at the same moment. Proves: they are applied
// one after the other to one subscription (two cycles), not to two subscriptions.
func (s *suite) concurrentFirstPayments(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	e := s.env(ctx, t, billing.Config{}, basic, testkit.User("u1"),
		testkit.Payment("pay1", "u1", "basic", 2990, now), testkit.Payment("pay2", "u1", "basic", 2990, now))
	svcs := e.replicas(2, billing.Config{LockWait: 30 * time.Second})
	var wg sync.WaitGroup
	for i, id := range []string{"pay1", "pay2"} {
		svc := svcs[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: id}); err != nil {
				t.Errorf("ProcessApproved(%s): %v", id, err)
			}
		}()
	}
	wg.Wait()
	subs, err := e.st.ListUserSubscriptions(ctx, "u1")
	must(t, err, "ListUserSubscriptions")
	if len(subs) != 1 {
		t.Fatalf("%d subscriptions for two first payments of one user, want 1", len(subs))
	}
	if want := billing.AddMonths(now, 2); !subs[0].CurrentPeriodEnd.Equal(want) {
		t.Fatalf("period ends %v, want %v (two cycles)", subs[0].CurrentPeriodEnd, want)
	}
}

// A monthly subscription that started on Jan 31 is renewed month after month. Proves: the
// billing day is kept (Jan 31 -> Feb 28 -> Mar 31 -> Apr 30 -> May 31), not worn down to the
// 28th by February.
func (s *suite) monthlyAnchorDay(ctx context.Context, t *testing.T) {
	start := time.Date(2030, time.January, 31, 12, 0, 0, 0, time.UTC)
	sub := testkit.Subscription("s1", "u1", "basic", billing.AddMonths(start, 1))
	sub.CurrentPeriodStart = start
	e := s.env(ctx, t, billing.Config{}, basic, testkit.UserWithAccess("u1", "basic", "s1", sub.CurrentPeriodEnd), sub)
	e.clock.Set(start.Add(day))
	want := []time.Time{
		time.Date(2030, time.March, 31, 12, 0, 0, 0, time.UTC),
		time.Date(2030, time.April, 30, 12, 0, 0, 0, time.UTC),
		time.Date(2030, time.May, 31, 12, 0, 0, 0, time.UTC),
	}
	for i, w := range want {
		id := "pay" + string(rune('1'+i))
		p := testkit.Payment(id, "u1", "basic", 2990, e.clock.Now())
		p.SubscriptionID = "s1"
		testkit.Seed(t, e.st, p)
		if _, err := e.svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: id}); err != nil {
			t.Fatalf("ProcessApproved(%s): %v", id, err)
		}
		if got := e.sub("s1").CurrentPeriodEnd; !got.Equal(w) {
			t.Fatalf("after renewal %d the period ends %v, want %v", i+1, got, w)
		}
	}
}
