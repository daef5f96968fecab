package testkit_test

import (
	"context"
	"testing"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/memstore"
)

// TestSweepWorldIsHalfDueHalfLapsed proves the benchmarks' world is what RunSweep checks:
// zero-padded ids, even subscriptions ending after SweepNow and odd ones before it, so the
// warning job finds half of them and the expire job ends the other half.
func TestSweepWorldIsHalfDueHalfLapsed(t *testing.T) {
	const n = 6
	subs := testkit.SweepSubscriptions(n, 4)
	if subs[3].ID != "s0003" || subs[3].UserID != "u0003" {
		t.Fatalf("subscription 3 is %s of %s, want s0003 of u0003", subs[3].ID, subs[3].UserID)
	}
	st := memstore.New()
	records := []any{testkit.SweepPlan()}
	for i, s := range subs {
		if lapsed := s.CurrentPeriodEnd.Before(testkit.SweepNow); lapsed != (i%2 == 1) {
			t.Fatalf("subscription %d ends %v: lapsed %v, want %v", i, s.CurrentPeriodEnd, lapsed, i%2 == 1)
		}
		records = append(records, testkit.UserWithAccess(s.UserID, s.PlanID, s.ID, s.CurrentPeriodEnd), s)
	}
	testkit.Seed(t, st, records...)
	testkit.RunSweep(context.Background(), t, st, n, billing.Config{})
	left, err := st.CountSubscriptions(context.Background(), billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}, PeriodEndBefore: testkit.SweepNow})
	if err != nil || left != 0 {
		t.Fatalf("%d lapsed subscriptions left active (%v)", left, err)
	}
}

func TestEnvInt(t *testing.T) {
	t.Setenv("RENEWKIT_TESTKIT_N", "12")
	if got := testkit.EnvInt("RENEWKIT_TESTKIT_N", 3); got != 12 {
		t.Fatalf("EnvInt = %d, want 12", got)
	}
	for _, v := range []string{"", "0", "-4", "many"} {
		t.Setenv("RENEWKIT_TESTKIT_N", v)
		if got := testkit.EnvInt("RENEWKIT_TESTKIT_N", 3); got != 3 {
			t.Fatalf("EnvInt with %q = %d, want the default 3", v, got)
		}
	}
}
