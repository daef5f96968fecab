package testkit

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// The warn-and-expire benchmarks of the store adapters share their world: at SweepNow, one
// plan (SweepPlan) and n users, each with one active subscription (SweepSubscriptions): the
// even ones end in two days (the warning job warns them), the odd ones ended yesterday (the
// expire job ends them and revokes their users' access). Each adapter writes its users its
// own way, and its raw variants the statements of its own database.

// SweepNow is the time the warn-and-expire benchmarks run at.
var SweepNow = time.Date(2031, 7, 1, 9, 0, 0, 0, time.UTC)

// EnvInt returns the positive integer in the environment variable name (BENCH_N,
// BENCH_BATCH), or def when it is unset or not a positive integer.
func EnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// SweepPlan is the one plan of a warn-and-expire benchmark: p1, monthly, 49.90 BRL.
func SweepPlan() billing.Plan {
	return billing.Plan{ID: "p1", Name: "Pro", BillingCycle: billing.CycleMonthly, Price: billing.Money{Amount: 4990, Currency: "BRL"}, Active: true}
}

// SweepSubscriptions returns the n subscriptions of a warn-and-expire benchmark on plan p1,
// the i-th with id s<i> of user u<i>, i zero-padded to digits: even ones end two days after
// SweepNow, odd ones a day before it.
func SweepSubscriptions(n, digits int) []billing.Subscription {
	subs := make([]billing.Subscription, n)
	for i := range subs {
		end := SweepNow.Add(48 * time.Hour)
		if i%2 == 1 {
			end = SweepNow.Add(-24 * time.Hour)
		}
		subs[i] = billing.Subscription{ID: fmt.Sprintf("s%0*d", digits, i), UserID: fmt.Sprintf("u%0*d", digits, i), PlanID: "p1",
			Status: billing.SubscriptionStatusActive, BillingCycle: billing.CycleMonthly,
			CurrentPeriodStart: billing.AddMonths(end, -1), CurrentPeriodEnd: end, Gateway: billing.GatewayManual,
			CreatedAt: SweepNow.AddDate(0, -2, 0), UpdatedAt: SweepNow.AddDate(0, -1, 0)}
	}
	return subs
}

// RunSweep runs billing's warning and expire jobs once on st, as a Service with cfg (its
// clock SweepNow when cfg has none) whose emails go nowhere, and fails unless the warning
// job found n/2 subscriptions and the expire job processed n/2.
func RunSweep(ctx context.Context, b testing.TB, st billing.Store, n int, cfg billing.Config) {
	b.Helper()
	if cfg.Clock == nil {
		cfg.Clock = NewClock(SweepNow)
	}
	svc, err := billing.NewService(st, discard{}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	w, err := svc.CheckExpiringSubscriptions(ctx)
	if err != nil || w.TotalFound != n/2 {
		b.Fatalf("warn: %+v %v", w, err)
	}
	e, err := svc.ProcessExpiredSubscriptions(ctx)
	if err != nil || e.Processed != n/2 {
		b.Fatalf("expire: %+v %v", e, err)
	}
}

// discard is a Notifier that drops every notification.
type discard struct{}

func (discard) Notify(context.Context, billing.Notification) error { return nil }

// SweepRound is one round of a warn-and-expire benchmark, made by Sweeps' prepare.
type SweepRound struct {
	// Store holds the freshly seeded world of n subscriptions.
	Store billing.Store
	// Sweep is what the round measures.
	Sweep func()
	// Counts returns, after the sweep, how many subscriptions are marked warned and how
	// many users still have plan p1, read straight from the database.
	Counts func() (warned, withPlan int, err error)
}

// Sweeps is the measuring loop of a warn-and-expire benchmark over n subscriptions: b.N
// times, with the timer stopped, prepare seeds a fresh world and returns the round; its
// Sweep runs with the timer on and the heap in use sampled. After each sweep Sweeps fails
// unless no lapsed subscription is left active, n/2 are marked warned and n/2 users keep
// the plan (the expired ones lose it). It returns the time the sweeps took and the peak
// heap in use.
func Sweeps(b *testing.B, n int, prepare func() SweepRound) (elapsed time.Duration, peak uint64) {
	b.Helper()
	ctx := context.Background()
	var peakHeap atomic.Uint64
	for range b.N {
		b.StopTimer()
		r := prepare()
		runtime.GC()
		stop := SampleHeap(&peakHeap)
		start := time.Now()
		b.StartTimer()
		r.Sweep()
		b.StopTimer()
		elapsed += time.Since(start)
		stop()
		left, err := r.Store.CountSubscriptions(ctx, billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}, PeriodEndBefore: SweepNow})
		if err != nil || left != 0 {
			b.Fatalf("%d expired subscriptions left active (%v)", left, err)
		}
		warned, withPlan, err := r.Counts()
		if err != nil || warned != n/2 {
			b.Fatalf("%d warned, want %d (%v)", warned, n/2, err)
		}
		if withPlan != n/2 {
			b.Fatalf("%d users keep the plan, want %d: the expired ones lose it (%v)", withPlan, n/2, err)
		}
	}
	return elapsed, peakHeap.Load()
}
