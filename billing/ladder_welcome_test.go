package billing_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

// TestConcurrentLadderRunsAgreeOnNearestOffset proves that concurrent runs with the ladder
// 7,3,1 send each subscription exactly one warning, for the nearest offset, even when one
// run's wider pass reaches a subscription before another run's narrower pass.
func TestConcurrentLadderRunsAgreeOnNearestOffset(t *testing.T) {
	const subs, runs = 90, 4
	now := testkit.Epoch
	records := []any{testkit.Plan("basic", billing.CycleMonthly, 2990)}
	wantDays := map[string]int{}
	for i := range subs {
		u, s := fmt.Sprintf("u%03d", i), fmt.Sprintf("s%03d", i)
		var end time.Time
		switch i % 3 {
		case 0:
			end, wantDays[s] = now.Add(12*time.Hour+testkitMillis(i)), 1
		case 1:
			end, wantDays[s] = now.Add(2*day+testkitMillis(i)), 3
		default:
			end, wantDays[s] = now.Add(5*day+testkitMillis(i)), 7
		}
		records = append(records, testkit.UserWithAccess(u, "basic", s, end), testkit.Subscription(s, u, "basic", end))
	}
	cfg := billing.Config{WarningDays: []int{7, 3, 1}, BatchSize: 4}
	e := newEnv(t, cfg, records...)
	svcs := e.replicas(t, runs, cfg)
	errs := make([]error, runs)
	concurrently(runs, func(i int) { _, errs[i] = svcs[i].CheckExpiringSubscriptions(e.ctx) })
	for i, err := range errs {
		mustNoErr(t, err, fmt.Sprintf("run %d", i))
	}
	for s, days := range wantDays {
		got := e.notif.For(s)
		if len(got) != 1 {
			t.Fatalf("%s got %d warnings, want exactly 1", s, len(got))
		}
		if !strings.HasSuffix(got[0].Key, fmt.Sprintf(":%d", days)) {
			t.Errorf("%s warned with key %q, want the %d-day offset", s, got[0].Key, days)
		}
		if sub := e.sub(s); !sub.ExpirationWarningSent || sub.ExpirationWarningDays != days {
			t.Errorf("%s marked sent=%v days=%d, want days=%d", s, sub.ExpirationWarningSent, sub.ExpirationWarningDays, days)
		}
	}
}

// TestNoWelcomeWhenRenewingSeedSubscription proves a user whose subscription was written by
// the seed's application (no applied payments, no renewkit creation audit) gets the
// payment-confirmed email but no welcome email when renewing through renewkit.
func TestNoWelcomeWhenRenewingSeedSubscription(t *testing.T) {
	end := testkit.Epoch.Add(5 * day)
	pay := payment("pay1", "u", "basic", func(p *billing.Payment) { p.SubscriptionID = "seed_sub" })
	e := newEnv(t, billing.Config{}, testkit.Plan("basic", billing.CycleMonthly, 2990),
		testkit.UserWithAccess("u", "basic", "seed_sub", end), testkit.Subscription("seed_sub", "u", "basic", end), pay)
	_, err := e.svc.Processor().ProcessApproved(e.ctx, billing.ApproveParams{PaymentID: "pay1"})
	mustNoErr(t, err, "ProcessApproved")
	if n := e.notif.Count(billing.KindWelcome); n != 0 {
		t.Fatalf("%d welcome emails on a renewal of an existing subscription, want 0", n)
	}
	if n := e.notif.Count(billing.KindPaymentSuccessful); n != 1 {
		t.Fatalf("%d payment emails, want 1", n)
	}
	if got, want := e.sub("seed_sub").CurrentPeriodEnd, billing.AddMonths(end, 1); !got.Equal(want) {
		t.Fatalf("period end %v, want %v (renewed from the current end)", got, want)
	}
}

// TestLadderRetryKeepsNearestOffset proves a failure mid-work is retried with the right
// warning: when the 1-day warning fails, the run counts one failure (one ladder pass, not
// one per offset) and leaves the 1-day warning pending; the next run sends exactly that one.
func TestLadderRetryKeepsNearestOffset(t *testing.T) {
	end := testkit.Epoch.Add(12 * time.Hour)
	e := newEnv(t, billing.Config{WarningDays: []int{7, 3, 1}}, testkit.Plan("basic", billing.CycleMonthly, 2990),
		testkit.UserWithAccess("u", "basic", "s", end), testkit.Subscription("s", "u", "basic", end))
	e.notif.FailNext(1)
	res, err := e.svc.CheckExpiringSubscriptions(e.ctx)
	mustNoErr(t, err, "first run")
	if res.TotalFound != 1 || res.NotificationsSent != 0 || res.Failed != 1 {
		t.Fatalf("first run: %+v, want one record found and failed once", res)
	}
	e.clock.Advance(time.Hour)
	res, err = e.svc.CheckExpiringSubscriptions(e.ctx)
	mustNoErr(t, err, "second run")
	if res.NotificationsSent != 1 || res.Resumed != 1 {
		t.Fatalf("second run %+v, want the pending warning sent", res)
	}
	res, err = e.svc.CheckExpiringSubscriptions(e.ctx)
	mustNoErr(t, err, "third run")
	if res.NotificationsSent != 0 || res.TotalFound != 0 {
		t.Fatalf("third run %+v, want nothing", res)
	}
	got := e.notif.For("s")
	if len(got) != 1 || !strings.HasSuffix(got[0].Key, ":1") {
		t.Fatalf("warnings %+v, want exactly one, for the 1-day offset", got)
	}
}
