package billingtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

// processorWaitsForABusyPayment proves a delivery that finds the payment being processed
// by another request waits for it (up to LockWait) instead of failing at once, and that a
// lock still held after LockWait fails with a retryable ErrConflict that changes nothing.
func (s *suite) processorWaitsForABusyPayment(ctx context.Context, t *testing.T) {
	for _, tc := range []struct {
		name     string
		wait     time.Duration
		holdFor  time.Duration // 0: never released
		wantErr  error
		approved bool
	}{
		{"released within the wait", time.Second, 30 * time.Millisecond, nil, true},
		{"held past the wait", 30 * time.Millisecond, 0, billing.ErrConflict, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := s.env(ctx, t, billing.Config{LockWait: tc.wait}, testkit.Plan("basic", billing.CycleMonthly, 2990),
				testkit.User("u"), payment("pay1", "u", "basic"))
			lease, err := e.st.AcquireLock(ctx, "payment:pay1", "other-request", e.clock.Now(), time.Hour)
			must(t, err, "AcquireLock")
			if tc.holdFor > 0 {
				go func() {
					time.Sleep(tc.holdFor)
					_ = e.st.ReleaseLock(ctx, lease)
				}()
			}
			_, err = e.svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay1"})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("ProcessApproved: %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil && billing.Permanent(err) {
				t.Fatalf("%v must be retryable", err)
			}
			if got := e.payment("pay1").Status == billing.PaymentStatusApproved; got != tc.approved {
				t.Fatalf("approved = %v, want %v", got, tc.approved)
			}
			if !tc.approved && len(e.userSubs("u")) != 0 {
				t.Fatal("a conflicted approval created a subscription")
			}
		})
	}
}
