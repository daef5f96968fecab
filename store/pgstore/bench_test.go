package pgstore_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/store/pgstore"
)

// Benchmarks: warn + expire over N subscriptions of N users (half ending in two days, half
// ended yesterday) three ways on the same server, in the same run:
//
//   - pgstore: billing.Service's CheckExpiringSubscriptions and ProcessExpiredSubscriptions
//     on pgstore (claims, conditional batch updates with pending effects, send-once
//     reservations, audit, user access);
//   - raw: the minimal SQL for the same changes: one UPDATE warning the due subscriptions,
//     one UPDATE expiring the lapsed ones and one revoking their users' access;
//   - loop: the seed's way, select the due rows and update them (and, for an expiry, the
//     user) one at a time.
//
// Each reports ms per subscription and the peak HeapInuse sampled every 5 ms while it ran.
// pgstore also runs at 10N to show memory does not grow with N.
//
//	eval "$(scripts/postgres start)"; BENCH_N=10000 go test -run '^$' -bench WarnExpire -benchtime 1x -count 3 ./store/pgstore
//
// BENCH_N defaults to 10,000; BENCH_10N=0 skips the 10N run.
func BenchmarkWarnExpire(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("BENCH_N")); err == nil && v > 0 {
		n = v
	}
	p := pool(b)
	b.Run(fmt.Sprintf("pgstore/N=%d", n), func(b *testing.B) { benchVariant(b, p, n, runService) })
	b.Run(fmt.Sprintf("raw/N=%d", n), func(b *testing.B) { benchVariant(b, p, n, runRaw) })
	b.Run(fmt.Sprintf("loop/N=%d", n), func(b *testing.B) { benchVariant(b, p, n, runLoop) })
	if os.Getenv("BENCH_10N") != "0" {
		b.Run(fmt.Sprintf("pgstore/N=%d", 10*n), func(b *testing.B) { benchVariant(b, p, 10*n, runService) })
	}
}

type variant func(ctx context.Context, b testing.TB, st *pgstore.Store, n int)

func benchVariant(b *testing.B, p *pgxpool.Pool, n int, run variant) {
	ctx := context.Background()
	var peak atomic.Uint64
	var elapsed time.Duration
	for range b.N {
		b.StopTimer()
		st := newStore(b, p)
		seedBench(ctx, b, st, n)
		runtime.GC()
		stop := sampleHeap(&peak)
		start := time.Now()
		b.StartTimer()
		run(ctx, b, st, n)
		b.StopTimer()
		elapsed += time.Since(start)
		stop()
		left, err := st.CountSubscriptions(ctx, billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}, PeriodEndBefore: benchNow})
		if err != nil || left != 0 {
			b.Fatalf("%d expired subscriptions left active (%v)", left, err)
		}
		var warned, withPlan int
		if err := p.QueryRow(ctx, `SELECT count(*) FROM `+st.Table("subscriptions")+` WHERE expiration_warning_sent`).Scan(&warned); err != nil || warned != n/2 {
			b.Fatalf("%d warned, want %d (%v)", warned, n/2, err)
		}
		if err := p.QueryRow(ctx, `SELECT count(*) FROM `+st.Table("users")+` WHERE plan_id = 'p1'`).Scan(&withPlan); err != nil || withPlan != n/2 {
			b.Fatalf("%d users keep the plan, want %d: the expired ones lose it (%v)", withPlan, n/2, err)
		}
	}
	b.ReportMetric(float64(elapsed.Microseconds())/1000/float64(b.N*n), "ms/sub")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
}

func sampleHeap(peak *atomic.Uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			for {
				p := peak.Load()
				if ms.HeapInuse <= p || peak.CompareAndSwap(p, ms.HeapInuse) {
					break
				}
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

var benchNow = time.Date(2031, 7, 1, 9, 0, 0, 0, time.UTC)

// seedBench inserts one plan and n users, each with one active subscription: half end in
// two days (warned), half ended yesterday (expired, with the user's access).
func seedBench(ctx context.Context, b testing.TB, st *pgstore.Store, n int) {
	b.Helper()
	pl := billing.Plan{ID: "p1", Name: "Pro", BillingCycle: billing.CycleMonthly, Price: billing.Money{Amount: 4990, Currency: "BRL"}, Active: true}
	if err := st.InsertPlan(ctx, &pl); err != nil {
		b.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO `+st.Table("users")+` (id, email, name, plan_id, subscription_id,
			subscription_status, access_until, created_at, updated_at)
		SELECT 'u' || lpad(i::text, 7, '0'), 'u' || i || '@example.com', 'U', 'p1', 's' || lpad(i::text, 7, '0'), 'active',
			CASE WHEN i % 2 = 1 THEN $1::timestamptz - interval '1 day' ELSE $1::timestamptz + interval '2 days' END, $1, $1
		FROM generate_series(0, $2 - 1) AS i`, benchNow, n); err != nil {
		b.Fatal(err)
	}
	subs := make([]billing.Subscription, n)
	for i := range subs {
		end := benchNow.Add(48 * time.Hour)
		if i%2 == 1 {
			end = benchNow.Add(-24 * time.Hour)
		}
		subs[i] = billing.Subscription{ID: fmt.Sprintf("s%07d", i), UserID: fmt.Sprintf("u%07d", i), PlanID: "p1",
			Status: billing.SubscriptionStatusActive, BillingCycle: billing.CycleMonthly,
			CurrentPeriodStart: billing.AddMonths(end, -1), CurrentPeriodEnd: end, Gateway: billing.GatewayManual,
			CreatedAt: benchNow.AddDate(0, -2, 0), UpdatedAt: benchNow.AddDate(0, -1, 0)}
	}
	if err := st.InsertSubscriptions(ctx, subs); err != nil {
		b.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `ANALYZE `+st.Table("subscriptions")+`, `+st.Table("users")); err != nil {
		b.Fatal(err)
	}
}

type discard struct{}

func (discard) Notify(context.Context, billing.Notification) error { return nil }

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

func runService(ctx context.Context, b testing.TB, st *pgstore.Store, n int) {
	svc, err := billing.NewService(st, discard{}, billing.Config{Clock: fixedClock(benchNow)})
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

const (
	warnWhere   = `status = 'active' AND NOT flag_del AND NOT expiration_warning_sent AND current_period_end > $1 AND current_period_end <= $1::timestamptz + interval '3 days'`
	expireWhere = `status = 'active' AND NOT flag_del AND current_period_end <= $1`
)

func runRaw(ctx context.Context, b testing.TB, st *pgstore.Store, _ int) {
	subs, users := st.Table("subscriptions"), st.Table("users")
	for _, q := range []string{
		`UPDATE ` + subs + ` SET expiration_warning_sent = true, updated_at = $1 WHERE ` + warnWhere,
		`WITH expired AS (UPDATE ` + subs + ` SET status = 'inactive', updated_at = $1 WHERE ` + expireWhere + ` RETURNING user_id)
		UPDATE ` + users + ` SET plan_id = '', subscription_status = 'inactive', updated_at = $1 WHERE id IN (SELECT user_id FROM expired)`,
	} {
		if _, err := st.Pool().Exec(ctx, q, benchNow); err != nil {
			b.Fatal(err)
		}
	}
}

func runLoop(ctx context.Context, b testing.TB, st *pgstore.Store, _ int) {
	p := st.Pool()
	subs, users := st.Table("subscriptions"), st.Table("users")
	each := func(where, set string, revoke bool) {
		rows, err := p.Query(ctx, `SELECT id, user_id FROM `+subs+` WHERE `+where, benchNow)
		if err != nil {
			b.Fatal(err)
		}
		type due struct{ id, user string }
		// The seed's to_list(): every due row in memory.
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (due, error) {
			var d due
			return d, r.Scan(&d.id, &d.user)
		})
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range list {
			if revoke {
				if _, err := p.Exec(ctx, `UPDATE `+users+` SET plan_id = '', subscription_status = 'inactive', updated_at = $2 WHERE id = $1`, d.user, benchNow); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := p.Exec(ctx, `UPDATE `+subs+` SET `+set+` WHERE id = $1`, d.id, benchNow); err != nil {
				b.Fatal(err)
			}
		}
	}
	each(warnWhere, `expiration_warning_sent = true, updated_at = $2`, false)
	each(expireWhere, `status = 'inactive', updated_at = $2`, true)
}
