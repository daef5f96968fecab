package billing_test

import (
	"context"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/memstore"
)

// TestDueCountsFollowConfig: the due counts of SubscriptionStats and Analytics are taken
// over the windows of the service's Config, not fixed ones. A subscription ending in five
// days is due for a warning only with a 7-day rung; an auto-renewing one ending in 36 hours
// is due for renewal only with a 48-hour renew window.
func TestDueCountsFollowConfig(t *testing.T) {
	ctx := context.Background()
	now := testkit.Epoch
	st := memstore.New()
	testkit.Seed(t, st, testkit.Plan("p", billing.CycleMonthly, 1000),
		testkit.User("ana"), testkit.Subscription("in2d", "ana", "p", now.Add(2*day)),
		testkit.User("bob"), testkit.Subscription("in5d", "bob", "p", now.Add(5*day)),
		testkit.User("cai"), testkit.AutoRenewing(testkit.Subscription("auto12h", "cai", "p", now.Add(12*time.Hour)), billing.GatewayStripe),
		testkit.User("dan"), testkit.AutoRenewing(testkit.Subscription("auto36h", "dan", "p", now.Add(36*time.Hour)), billing.GatewayStripe),
		testkit.User("eve"), testkit.Subscription("lapsed", "eve", "p", now.Add(-time.Hour)),
	)
	for _, tc := range []struct {
		name string
		cfg  billing.Config
		want billing.DueCounts
	}{
		{"defaults", billing.Config{},
			// in2d, auto12h and auto36h end within 3 days; auto12h within 24 hours.
			billing.DueCounts{Expiring: 3, PastPeriodEnd: 1, Renewing: 1, WarningWindowDays: 3, RenewWindowHours: 24}},
		{"ladder 7,3,1 and 48h", billing.Config{WarningDays: []int{7, 3, 1}, RenewWindow: 48 * time.Hour},
			billing.DueCounts{Expiring: 4, PastPeriodEnd: 1, Renewing: 2, WarningWindowDays: 7, RenewWindowHours: 48}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Clock = testkit.NewClock(now)
			svc, err := billing.NewService(st, testkit.NewNotifier(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			want.ExpiringWithin3Days, want.RenewalWithin24h = want.Expiring, want.Renewing
			stats, err := svc.SubscriptionStats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if stats.Due != want {
				t.Errorf("SubscriptionStats().Due = %+v, want %+v", stats.Due, want)
			}
			if stats.Total != 5 || stats.ByStatus[billing.SubscriptionStatusActive] != 5 {
				t.Errorf("SubscriptionStats() = %+v, want 5 active", stats)
			}
			a, err := svc.Analytics(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if a.Due != want {
				t.Errorf("Analytics().Due = %+v, want %+v", a.Due, want)
			}
			// A zero Config counts over the defaults, as NewService does.
			if tc.name == "defaults" {
				got, err := billing.CountDue(ctx, st, billing.Config{}, now)
				if err != nil || got != want {
					t.Errorf("CountDue(zero Config) = %+v, %v; want %+v", got, err, want)
				}
			}
		})
	}
}
