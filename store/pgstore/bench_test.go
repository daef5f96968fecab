package pgstore_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/pgtest"
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
// The loop records nothing (no send-once record, no audit entry, no pending effects), so
// no implementation that records its emails can be as many times faster than it as raw is:
// raw+records, the floor of such an implementation, was 5.7x faster than the loop where
// raw was 20x (3 rounds, quiet machine, after migration 0013).
//
//	eval "$(scripts/postgres start)"; BENCH_N=10000 go test -run '^$' -bench WarnExpire -benchtime 1x -count 3 ./store/pgstore
//
// BENCH_N defaults to 10,000; BENCH_10N=0 skips the 10N run.
func BenchmarkWarnExpire(b *testing.B) {
	n := testkit.EnvInt("BENCH_N", 10000)
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
	c := &statementCounter{}
	p := pgtest.Connect(b, 16, c)
	b.Cleanup(p.Close)
	return p, c
}

type variant func(ctx context.Context, b testing.TB, st *pgstore.Store, n int)

func benchVariant(b *testing.B, p *pgxpool.Pool, stmts *statementCounter, n int, run variant) {
	ctx := context.Background()
	var statements, updates, hot int64
	elapsed, peak := testkit.Sweeps(b, n, func() testkit.SweepRound {
		st := newStore(b, p)
		seedBench(ctx, b, st, n)
		upd0, hot0 := subscriptionUpdates(ctx, b, p, st)
		return testkit.SweepRound{Store: st,
			Sweep: func() {
				before := stmts.n.Load()
				run(ctx, b, st, n)
				statements += stmts.n.Load() - before
			},
			Counts: func() (warned, withPlan int, err error) {
				upd1, hot1 := subscriptionUpdates(ctx, b, p, st)
				updates, hot = updates+upd1-upd0, hot+hot1-hot0
				if err := p.QueryRow(ctx, `SELECT count(*) FROM `+st.Table("subscriptions")+` WHERE expiration_warning_sent`).Scan(&warned); err != nil {
					return warned, 0, err
				}
				err = p.QueryRow(ctx, `SELECT count(*) FROM `+st.Table("users")+` WHERE plan_id = 'p1'`).Scan(&withPlan)
				return warned, withPlan, err
			}}
	})
	b.ReportMetric(float64(elapsed.Microseconds())/1000/float64(b.N*n), "ms/sub")
	b.ReportMetric(float64(statements)/float64(b.N*n), "stmts/sub")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(100*float64(hot)/float64(max(updates, 1)), "hot-upd-%")
}

// subscriptionUpdates returns the server's count of updates of st's subscriptions table
// and of the HOT ones among them (pg_stat_user_tables), once p's connections reported theirs.
func subscriptionUpdates(ctx context.Context, b testing.TB, p *pgxpool.Pool, st *pgstore.Store) (updates, hot int64) {
	b.Helper()
	return tableUpdates(ctx, b, p, st, "subscriptions")
}

// tableUpdates returns the server's count of updates of st's table and of the HOT ones
// among them (pg_stat_user_tables), once p's connections reported theirs.
func tableUpdates(ctx context.Context, b testing.TB, p *pgxpool.Pool, st *pgstore.Store, table string) (updates, hot int64) {
	b.Helper()
	for _, c := range p.AcquireAllIdle(ctx) {
		_, err := c.Exec(ctx, `SELECT pg_stat_force_next_flush()`)
		c.Release()
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := p.QueryRow(ctx, `SELECT coalesce(n_tup_upd, 0), coalesce(n_tup_hot_upd, 0) FROM pg_stat_user_tables
		WHERE schemaname = $1 AND relname = $2`, st.Schema(), table).Scan(&updates, &hot); err != nil {
		b.Fatal(err)
	}
	return updates, hot
}

var benchNow = testkit.SweepNow

// seedBench inserts one plan and n users, each with one active subscription: half end in
// two days (warned), half ended yesterday (expired, with the user's access).
func seedBench(ctx context.Context, b testing.TB, st *pgstore.Store, n int) {
	b.Helper()
	pl := testkit.SweepPlan()
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
	if err := st.InsertSubscriptions(ctx, testkit.SweepSubscriptions(n, 7)); err != nil {
		b.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `ANALYZE `+st.Table("subscriptions")+`, `+st.Table("users")); err != nil {
		b.Fatal(err)
	}
}

func runService(ctx context.Context, b testing.TB, st *pgstore.Store, n int) {
	testkit.RunSweep(ctx, b, st, n, billing.Config{})
}

// runServiceSend32 is runService with 32 senders instead of the default 8: each send's
// outcome is still written before its sender sends again, so the outcomes of up to 32
// sends share a write.
func runServiceSend32(ctx context.Context, b testing.TB, st *pgstore.Store, n int) {
	testkit.RunSweep(ctx, b, st, n, billing.Config{SendConcurrency: 32})
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
