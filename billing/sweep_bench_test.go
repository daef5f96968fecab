package billing_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/memstore"
)

const day = testkit.Day

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
// allocations. The "seed-loop" baseline does the same changes the way the seed's Python did,
// on the same store in the same run: one query per job, then get user, get plan, send,
// update and audit one document at a time, with no claims and no send-once records, so it
// is neither safe on replicas nor after a crash. The ratio is the price of that safety.
// cpu-ms/op is the process's CPU time per sweep (every core, the garbage collector
// included).
//
// Each iteration ends its setup with a garbage collection, timer stopped, in both arms
// alike: the setup builds a new store of about 140 MB while the previous iteration's store
// becomes garbage, and without it the collection that setup makes due lands inside
// whichever sweep runs next, at a point that depends on the arm before. After it, a sweep
// pays for the collections its own allocations cause (B/op and allocs/op say how much it
// allocates), as a long-running process does.
func BenchmarkSweep(b *testing.B) {
	b.Run("jobs", func(b *testing.B) {
		benchSweep(b, func(ctx context.Context, svc *billing.Service, _ *memstore.Store) (int, int, error) {
			warned, err := svc.CheckExpiringSubscriptions(ctx)
			if err != nil {
				return 0, 0, err
			}
			expired, err := svc.ProcessExpiredSubscriptions(ctx)
			if warned.Failed+expired.Failed != 0 {
				return 0, 0, fmt.Errorf("failures: %+v %+v", warned, expired)
			}
			return warned.NotificationsSent, expired.Processed, err
		})
	})
	b.Run("seed-loop", func(b *testing.B) {
		benchSweep(b, seedLoop)
	})
}

func benchSweep(b *testing.B, sweep func(context.Context, *billing.Service, *memstore.Store) (warned, expired int, err error)) {
	const total = 100_000
	ctx := context.Background()
	users, subs, wantWarn, wantExpire := sweepFixture(total)
	plan := testkit.Plan("basic", billing.CycleMonthly, 2990)
	quiet := billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil })
	b.ReportAllocs()
	var cpu time.Duration // the process's CPU time inside the timed sweeps
	cpuOK := true
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
		// The gateway says the lapsed auto-renewing ones ended (the jobs ask before expiring
		// them; the seed's loop does not).
		ended := lookupFunc(func(string) (billing.GatewaySubscription, error) {
			return billing.GatewaySubscription{Status: billing.SubscriptionStatusCancelled}, nil
		})
		svc, err := billing.NewService(st, quiet, billing.Config{Clock: testkit.NewClock(testkit.Epoch), Logger: slog.New(slog.DiscardHandler),
			Renewals: map[string]billing.RenewalLookup{billing.GatewayStripe: ended}})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC() // the setup's garbage is collected here, not inside the timed sweep
		b.StartTimer()
		c0, ok0 := processCPU()

		warned, expired, err := sweep(ctx, svc, st)

		c1, ok1 := processCPU()
		b.StopTimer()
		cpu += c1 - c0
		cpuOK = cpuOK && ok0 && ok1
		if err != nil || warned != wantWarn || expired != wantExpire {
			b.Fatalf("warned %d, expired %d, err %v; want %d warnings and %d expiries", warned, expired, err, wantWarn, wantExpire)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "subs/s")
	if cpuOK {
		// CPU per sweep counts the work of every core (the garbage collector's too): on a
		// busy machine it varies less than the elapsed time.
		b.ReportMetric(cpu.Seconds()*1000/float64(b.N), "cpu-ms/op")
	}
}

// seedLoop is the baseline: the seed's find-then-update-one-by-one loop over the same store.
func seedLoop(ctx context.Context, svc *billing.Service, st *memstore.Store) (warned, expired int, err error) {
	now := svc.Clock().Now()
	notifier := billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil })
	no, yes := false, true
	step := func(f billing.SubscriptionFilter, apply func(*billing.Subscription), kind billing.NotificationKind) (int, error) {
		subs, err := st.ListSubscriptions(ctx, f, 0)
		if err != nil {
			return 0, err
		}
		for _, sub := range subs {
			u, err := st.GetUser(ctx, sub.UserID)
			if err != nil {
				return 0, err
			}
			p, err := st.GetPlan(ctx, sub.PlanID)
			if err != nil {
				return 0, err
			}
			if err := notifier.Notify(ctx, billing.Notification{Kind: kind, To: billing.Recipient{Email: u.Email},
				Data: billing.NotificationData{PlanName: p.Name, PeriodEnd: sub.CurrentPeriodEnd}}); err != nil {
				return 0, err
			}
			if kind == billing.NotificationKindExpired { // the seed removes the user's access
				read := u
				u.PlanID, u.Status, u.UpdatedAt = "", billing.SubscriptionStatusInactive, now
				if err := billing.UpdateUserAccess(ctx, st, read, u); err != nil {
					return 0, err
				}
			}
			read := sub
			apply(&sub)
			if _, err := billing.UpdateSubscription(ctx, st, read, sub); err != nil {
				return 0, err
			}
			if err := st.InsertAudit(ctx, &billing.AuditEntry{Action: string(kind), EntityID: sub.ID, CreatedAt: now}); err != nil {
				return 0, err
			}
		}
		return len(subs), nil
	}
	active := []billing.SubscriptionStatus{billing.SubscriptionStatusActive, billing.SubscriptionStatusPastDue}
	if warned, err = step(billing.SubscriptionFilter{Statuses: active[:1], PeriodEndAfter: now, PeriodEndBefore: now.Add(3 * day), WarningDueDays: 3},
		func(s *billing.Subscription) { s.ExpirationWarningSent, s.ExpirationWarningDays = true, 3 }, billing.NotificationKindExpiring); err != nil {
		return 0, 0, err
	}
	n1, err := step(billing.SubscriptionFilter{Statuses: active, PeriodEndBefore: now, AutoRenews: &no},
		func(s *billing.Subscription) { s.Status = billing.SubscriptionStatusInactive }, billing.NotificationKindExpired)
	if err != nil {
		return 0, 0, err
	}
	n2, err := step(billing.SubscriptionFilter{Statuses: active, PeriodEndBefore: now.Add(-72 * time.Hour), AutoRenews: &yes},
		func(s *billing.Subscription) { s.Status = billing.SubscriptionStatusInactive }, billing.NotificationKindExpired)
	return warned, n1 + n2, err
}

// lookupFunc adapts a function to billing.RenewalLookup.
type lookupFunc func(id string) (billing.GatewaySubscription, error)

func (f lookupFunc) LookupSubscription(_ context.Context, id string) (billing.GatewaySubscription, error) {
	return f(id)
}
