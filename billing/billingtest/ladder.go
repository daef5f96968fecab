package billingtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

// concurrentLadderRunsAgreeOnNearestOffset proves that concurrent runs with the ladder
// 7,3,1 send each subscription exactly one warning, for the nearest offset, even when one
// run's wider pass reaches a subscription before another run's narrower pass.
func (s *suite) concurrentLadderRunsAgreeOnNearestOffset(ctx context.Context, t *testing.T) {
	subs, runs := s.opts.Records*9/4, 4 // 90 at the default Records
	now := testkit.Epoch
	records := []any{testkit.Plan("basic", billing.CycleMonthly, 2990)}
	wantDays := map[string]int{}
	for i := range subs {
		uid, id := fmt.Sprintf("u%03d", i), fmt.Sprintf("s%03d", i)
		var end time.Time
		switch i % 3 {
		case 0:
			end, wantDays[id] = now.Add(12*time.Hour+millis(i)), 1
		case 1:
			end, wantDays[id] = now.Add(2*day+millis(i)), 3
		default:
			end, wantDays[id] = now.Add(5*day+millis(i)), 7
		}
		records = append(records, testkit.UserWithAccess(uid, "basic", id, end), testkit.Subscription(id, uid, "basic", end))
	}
	cfg := billing.Config{WarningDays: []int{7, 3, 1}, BatchSize: 4}
	e := s.env(ctx, t, cfg, records...)
	svcs := e.replicas(runs, cfg)
	errs := make([]error, runs)
	concurrently(runs, func(i int) { _, errs[i] = svcs[i].CheckExpiringSubscriptions(ctx) })
	for i, err := range errs {
		must(t, err, fmt.Sprintf("run %d", i))
	}
	for id, days := range wantDays {
		got := e.notif.For(id)
		if len(got) != 1 {
			t.Fatalf("%s got %d warnings, want exactly 1", id, len(got))
		}
		if !strings.HasSuffix(got[0].Key, fmt.Sprintf(":%d", days)) {
			t.Errorf("%s warned with key %q, want the %d-day offset", id, got[0].Key, days)
		}
		if sub := e.sub(id); !sub.ExpirationWarningSent || sub.ExpirationWarningDays != days {
			t.Errorf("%s marked sent=%v days=%d, want days=%d", id, sub.ExpirationWarningSent, sub.ExpirationWarningDays, days)
		}
	}
}

// noWelcomeWhenRenewingSeedSubscription proves a user whose subscription was written by
// the original application (no applied payments, no renewkit creation audit) gets the
// payment-confirmed email but no welcome email when renewing through renewkit.
func (s *suite) noWelcomeWhenRenewingSeedSubscription(ctx context.Context, t *testing.T) {
	end := testkit.Epoch.Add(5 * day)
	pay := payment("pay1", "u", "basic", func(p *billing.Payment) { p.SubscriptionID = "seed_sub" })
	e := s.env(ctx, t, billing.Config{}, testkit.Plan("basic", billing.CycleMonthly, 2990),
		testkit.UserWithAccess("u", "basic", "seed_sub", end), testkit.Subscription("seed_sub", "u", "basic", end), pay)
	_, err := e.svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay1"})
	must(t, err, "ProcessApproved")
	if n := e.notif.Count(billing.NotificationKindWelcome); n != 0 {
		t.Fatalf("%d welcome emails on a renewal of an existing subscription, want 0", n)
	}
	if n := e.notif.Count(billing.NotificationKindPaymentSuccessful); n != 1 {
		t.Fatalf("%d payment emails, want 1", n)
	}
	if got, want := e.sub("seed_sub").CurrentPeriodEnd, billing.AddMonths(end, 1); !got.Equal(want) {
		t.Fatalf("period end %v, want %v (renewed from the current end)", got, want)
	}
}

// ladderRetryKeepsNearestOffset proves a failure mid-work is retried with the right
// warning: when the 1-day warning fails, the run counts one failure (one ladder pass, not
// one per offset) and leaves the 1-day warning pending; the next run sends exactly that one.
func (s *suite) ladderRetryKeepsNearestOffset(ctx context.Context, t *testing.T) {
	end := testkit.Epoch.Add(12 * time.Hour)
	e := s.env(ctx, t, billing.Config{WarningDays: []int{7, 3, 1}}, testkit.Plan("basic", billing.CycleMonthly, 2990),
		testkit.UserWithAccess("u", "basic", "s", end), testkit.Subscription("s", "u", "basic", end))
	e.notif.FailNext(1)
	res, err := e.svc.CheckExpiringSubscriptions(ctx)
	must(t, err, "first run")
	if res.TotalFound != 1 || res.NotificationsSent != 0 || res.Failed != 1 {
		t.Fatalf("first run: %+v, want one record found and failed once", res)
	}
	e.clock.Advance(time.Hour)
	res, err = e.svc.CheckExpiringSubscriptions(ctx)
	must(t, err, "second run")
	if res.NotificationsSent != 1 || res.Resumed != 1 {
		t.Fatalf("second run %+v, want the pending warning sent", res)
	}
	res, err = e.svc.CheckExpiringSubscriptions(ctx)
	must(t, err, "third run")
	if res.NotificationsSent != 0 || res.TotalFound != 0 {
		t.Fatalf("third run %+v, want nothing", res)
	}
	got := e.notif.For("s")
	if len(got) != 1 || !strings.HasSuffix(got[0].Key, ":1") {
		t.Fatalf("warnings %+v, want exactly one, for the 1-day offset", got)
	}
}
