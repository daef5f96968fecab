package billing_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/memstore"
)

// sweepFixture builds the benchmark's 100k subscriptions around testkit.Epoch: 10% due for
// the 3-day warning, 10% manual ones past their end, 5% auto-renewing past the grace period
// (all three are worked on), 5% auto-renewing inside the grace period and 70% with periods
// ending weeks away (selected by neither job).
func sweepFixture(n int) (users []billing.User, subs []billing.Subscription, wantWarn, wantExpire int) {
	now := testkit.Epoch
	users = make([]billing.User, n)
	subs = make([]billing.Subscription, n)
	for i := range n {
		uid, sid := fmt.Sprintf("u%06d", i), fmt.Sprintf("s%06d", i)
		jitter := time.Duration(i%1000) * time.Minute
		var s billing.Subscription
		switch {
		case i%10 == 0: // due for the warning
			s = testkit.Subscription(sid, uid, "basic", now.Add(day+jitter))
			wantWarn++
		case i%10 == 1: // manual, lapsed
			s = testkit.Subscription(sid, uid, "basic", now.Add(-day-jitter))
			wantExpire++
		case i%20 == 2: // auto-renewing, past the grace period
			s = testkit.AutoRenewing(testkit.Subscription(sid, uid, "basic", now.Add(-4*day-jitter)), billing.GatewayStripe)
			wantExpire++
		case i%20 == 12: // auto-renewing, inside the grace period
			s = testkit.AutoRenewing(testkit.Subscription(sid, uid, "basic", now.Add(-day-jitter)), billing.GatewayStripe)
		default: // weeks away
			s = testkit.Subscription(sid, uid, "basic", now.Add(10*day+time.Duration(i%30)*day+jitter))
		}
		subs[i] = s
		users[i] = testkit.UserWithAccess(uid, "basic", sid, s.CurrentPeriodEnd)
	}
	return users, subs, wantWarn, wantExpire
}

// BenchmarkSweep runs the warning and expiry jobs over 100k subscriptions in memstore (the
// store is built outside the timer for each iteration) and reports subscriptions/s and
// allocations.
func BenchmarkSweep(b *testing.B) {
	const total = 100_000
	ctx := context.Background()
	users, subs, wantWarn, wantExpire := sweepFixture(total)
	plan := testkit.Plan("basic", billing.CycleMonthly, 2990)
	quiet := billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil })
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st := memstore.New()
		testkit.Seed(b, st, plan)
		for j := range subs {
			u, s := users[j], subs[j]
			if err := st.InsertUser(ctx, &u); err != nil {
				b.Fatal(err)
			}
			if err := st.InsertSubscription(ctx, &s); err != nil {
				b.Fatal(err)
			}
		}
		svc, err := billing.NewService(st, quiet, billing.Config{Clock: testkit.NewClock(testkit.Epoch), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()

		warned, err := svc.CheckExpiringSubscriptions(ctx)
		if err != nil {
			b.Fatal(err)
		}
		expired, err := svc.ProcessExpiredSubscriptions(ctx)
		if err != nil {
			b.Fatal(err)
		}

		b.StopTimer()
		if warned.NotificationsSent != wantWarn || expired.Processed != wantExpire || warned.Failed+expired.Failed != 0 {
			b.Fatalf("warned %+v, expired %+v; want %d warnings and %d expiries", warned, expired, wantWarn, wantExpire)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "subs/s")
}
