package pgstore_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/pgstore"
)

// Benchmarks: warn + expire over N subscriptions of N users (half ending in two days, half
// ended yesterday), four ways on the same server, in the same run:
//
//   - pgstore: billing.Service's CheckExpiringSubscriptions and ProcessExpiredSubscriptions
//     on pgstore (claims, conditional batch updates with pending effects, send-once
//     reservations, each send's outcome recorded before its sender sends again, audit, user
//     access); pgstore-send32 the same with SendConcurrency 32 (fewer, larger outcome
//     writes);
//   - raw: the minimal SQL for the same record changes: one UPDATE warning the due
//     subscriptions, and one statement expiring the lapsed ones and revoking their users'
//     access. It records nothing else, so it is the floor;
//   - raw+records: raw plus what renewkit leaves behind, still set-based: the send-once
//     record of each email (as sent) and the audit entries (warning sent; subscription
//     expired and access revoked), written by the same two statements. Nothing is sent and
//     nothing survives a crash half-way, so it is a lower bound of any implementation that
//     records its emails;
//   - loop: the seed's way, select the due rows and update them (and, for an expiry, the
//     user) one at a time.
//
// Each reports ms per subscription, SQL statements per subscription (counted by a pgx
// tracer on the benchmark's pool), the peak HeapInuse sampled every 5 ms while it ran and
// the share of the subscriptions table's updates that were HOT (pg_stat_user_tables).
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
	p, stmts := countingPool(b)
	b.Run(fmt.Sprintf("pgstore/N=%d", n), func(b *testing.B) { benchVariant(b, p, stmts, n, runService) })
	b.Run(fmt.Sprintf("pgstore-send32/N=%d", n), func(b *testing.B) { benchVariant(b, p, stmts, n, runServiceSend32) })
	b.Run(fmt.Sprintf("raw/N=%d", n), func(b *testing.B) { benchVariant(b, p, stmts, n, runRaw) })
	b.Run(fmt.Sprintf("raw+records/N=%d", n), func(b *testing.B) { benchVariant(b, p, stmts, n, runRawRecords) })
	b.Run(fmt.Sprintf("loop/N=%d", n), func(b *testing.B) { benchVariant(b, p, stmts, n, runLoop) })
	if os.Getenv("BENCH_10N") != "0" {
		b.Run(fmt.Sprintf("pgstore/N=%d", 10*n), func(b *testing.B) { benchVariant(b, p, stmts, 10*n, runService) })
	}
}

// statementCounter counts the statements run on a pool (Query, QueryRow, Exec; a batch's
// statements each count).
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *statementCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (c *statementCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	c.n.Add(1)
}

func (c *statementCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// countingPool connects a pool like the tests' with a statement counter on it.
func countingPool(b *testing.B) (*pgxpool.Pool, *statementCounter) {
	b.Helper()
	cfg, err := pgxpool.ParseConfig(testkit.PostgresURI(b))
	if err != nil {
		b.Fatalf("POSTGRES_TEST_URI: %v", err)
	}
	c := &statementCounter{}
	cfg.MaxConns = 16
	cfg.ConnConfig.Tracer = c
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatalf("connect: %v", err)
	}
	b.Cleanup(p.Close)
	return p, c
}

type variant func(ctx context.Context, b testing.TB, st *pgstore.Store, n int)

func benchVariant(b *testing.B, p *pgxpool.Pool, stmts *statementCounter, n int, run variant) {
	ctx := context.Background()
	var peak atomic.Uint64
	var elapsed time.Duration
	var statements, updates, hot int64
	for range b.N {
		b.StopTimer()
		st := newStore(b, p)
		seedBench(ctx, b, st, n)
		upd0, hot0 := subscriptionUpdates(ctx, b, p, st)
		runtime.GC()
		stop := testkit.SampleHeap(&peak)
		start := time.Now()
		before := stmts.n.Load()
		b.StartTimer()
		run(ctx, b, st, n)
		b.StopTimer()
		elapsed += time.Since(start)
		statements += stmts.n.Load() - before
		stop()
		upd1, hot1 := subscriptionUpdates(ctx, b, p, st)
		updates, hot = updates+upd1-upd0, hot+hot1-hot0
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
	b.ReportMetric(float64(statements)/float64(b.N*n), "stmts/sub")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
	b.ReportMetric(100*float64(hot)/float64(max(updates, 1)), "hot-upd-%")
}

// subscriptionUpdates returns the server's count of updates of st's subscriptions table
// and of the HOT ones among them (pg_stat_user_tables), once p's connections reported theirs.
func subscriptionUpdates(ctx context.Context, b testing.TB, p *pgxpool.Pool, st *pgstore.Store) (updates, hot int64) {
	b.Helper()
	for _, c := range p.AcquireAllIdle(ctx) {
		_, err := c.Exec(ctx, `SELECT pg_stat_force_next_flush()`)
		c.Release()
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := p.QueryRow(ctx, `SELECT coalesce(n_tup_upd, 0), coalesce(n_tup_hot_upd, 0) FROM pg_stat_user_tables
		WHERE schemaname = $1 AND relname = 'subscriptions'`, st.Schema()).Scan(&updates, &hot); err != nil {
		b.Fatal(err)
	}
	return updates, hot
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

func runService(ctx context.Context, b testing.TB, st *pgstore.Store, n int) {
	runServiceWith(ctx, b, st, n, billing.Config{Clock: testkit.NewClock(benchNow)})
}

// runServiceSend32 is runService with 32 senders instead of the default 8: each send's
// outcome is still written before its sender sends again, so the outcomes of up to 32
// sends share a write.
func runServiceSend32(ctx context.Context, b testing.TB, st *pgstore.Store, n int) {
	runServiceWith(ctx, b, st, n, billing.Config{Clock: testkit.NewClock(benchNow), SendConcurrency: 32})
}

func runServiceWith(ctx context.Context, b testing.TB, st *pgstore.Store, n int, cfg billing.Config) {
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

// runRawRecords is runRaw plus the records renewkit leaves: one send-once record per
// email and the audit entries, each job still one statement.
func runRawRecords(ctx context.Context, b testing.TB, st *pgstore.Store, _ int) {
	subs, users, notes, audit := st.Table("subscriptions"), st.Table("users"), st.Table("notifications"), st.Table("audit_logs")
	note := func(kind string) string {
		return `INSERT INTO ` + notes + ` (key, kind, subscription_id, user_id, status, created_at, updated_at)
			SELECT '` + kind + `:' || id || ':' || extract(epoch FROM current_period_end)::bigint, '` + kind + `', id, user_id, 'sent', $1, $1 FROM changed`
	}
	// auditRows records action on each changed row's entity (its id column is col).
	auditRows := func(action, entity, col string) string {
		return `INSERT INTO ` + audit + ` (id, action, entity_type, entity_id, user_id, actor, created_at)
			SELECT '` + action + `:' || ` + col + `, '` + action + `', '` + entity + `', ` + col + `, user_id, 'renewkit', $1 FROM changed`
	}
	for _, q := range []string{
		`WITH changed AS (UPDATE ` + subs + ` SET expiration_warning_sent = true, updated_at = $1 WHERE ` + warnWhere + `
			RETURNING id, user_id, current_period_end),
		n AS (` + note("expiring") + `)
		` + auditRows("warning_sent", "subscription", "id"),
		`WITH changed AS (UPDATE ` + subs + ` SET status = 'inactive', updated_at = $1 WHERE ` + expireWhere + `
			RETURNING id, user_id, current_period_end),
		u AS (UPDATE ` + users + ` SET plan_id = '', subscription_status = 'inactive', updated_at = $1 WHERE id IN (SELECT user_id FROM changed)),
		n AS (` + note("expired") + `),
		a AS (` + auditRows("subscription_expired", "subscription", "id") + `)
		` + auditRows("access_revoked", "user", "user_id"),
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
