package pgstore_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/pgtest"
	"github.com/renewkit/renewkit/internal/testkit"
)

// sqlTally counts the statements run on a pool by their text (schema names left out).
type sqlTally struct {
	mu sync.Mutex
	n  map[string]int
}

var schemaName = regexp.MustCompile(`"rk_[0-9a-z_]+"\.`)

func (c *sqlTally) add(sql string) {
	sql = strings.Join(strings.Fields(schemaName.ReplaceAllString(sql, "")), " ")
	c.mu.Lock()
	c.n[sql]++
	c.mu.Unlock()
}

func (c *sqlTally) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.add(d.SQL)
	return ctx
}

func (c *sqlTally) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *sqlTally) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (c *sqlTally) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	c.add(d.SQL)
}

func (c *sqlTally) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// TestJobStatementsFollowBatches proves the warn and expire jobs on pgstore run a bounded
// number of statements per batch, not per record: over 2,000 subscriptions in batches of
// 100 (10 warning batches, 10 expiry batches), every statement other than the send
// outcomes (which the engine writes in groups while sends are in flight) runs at most
// once per batch and job plus a fixed overhead, and no single statement text runs more
// often than twice per batch (the expiry reads its users when it decides and again when it
// changes their access). A per-record claim, transition, read or insert would run
// 1,000 times and fail both checks.
func TestJobStatementsFollowBatches(t *testing.T) {
	tally := &sqlTally{n: map[string]int{}}
	p := pgtest.Connect(t, 0, tally)
	t.Cleanup(p.Close)
	ctx := context.Background()
	st := newStore(t, p)
	const n, batch = 2000, 100
	seedBench(ctx, t, st, n)

	tally.mu.Lock()
	clear(tally.n)
	tally.mu.Unlock()
	testkit.RunSweep(ctx, t, st, n, billing.Config{Clock: testkit.NewClock(benchNow), BatchSize: batch})

	const batches = n / batch // n/2 records per job, n/batch batches over both
	var other, outcomes, most int
	var mostSQL string
	for sql, k := range tally.n {
		if strings.HasPrefix(sql, "UPDATE notifications AS n SET status = v.status") {
			outcomes += k
			continue
		}
		other += k
		if k > most {
			most, mostSQL = k, sql
		}
	}
	t.Logf("%d statements besides %d outcome writes for %d records in %d batches; most frequent (%d): %.120s",
		other, outcomes, n, batches, most, mostSQL)
	// Per batch: claim, users, transition, the users' subscriptions, reservations, audit,
	// completion, and for an expiry the access write and its read: at most 10.
	if limit := 10*batches + 40; other > limit {
		t.Errorf("%d statements besides the outcome writes, want at most %d (10 per batch + 40)", other, limit)
		for sql, k := range tally.n {
			t.Logf("%5d %.160s", k, sql)
		}
	}
	// Each job's claims end with one short or empty claim: a text may run twice per batch
	// and twice more.
	if limit := 2*batches + 2; most > limit {
		t.Errorf("one statement ran %d times, more than twice per batch (%d) allows: %.200s", most, limit, mostSQL)
	}
}

// TestUpdateSubscriptionsMixedColumns proves the per-record conditions hold in a batch whose
// changes write different columns: a change is conditional on the fields it writes only,
// so a stale read of a field the change leaves alone does not stop it, while a stale read
// of a field it writes does, and the other records of the batch still apply.
func TestUpdateSubscriptionsMixedColumns(t *testing.T) {
	ctx := context.Background()
	st := newStore(t, pool(t))
	subs := make([]billing.Subscription, 3)
	for i, id := range []string{"sa", "sb", "sc"} {
		subs[i] = billing.Subscription{ID: id, UserID: "u" + id, PlanID: "p1", Status: billing.SubscriptionStatusActive,
			BillingCycle: billing.CycleMonthly, CurrentPeriodStart: billing.AddMonths(benchNow, -1), CurrentPeriodEnd: benchNow,
			Gateway: billing.GatewayManual, CreatedAt: benchNow, UpdatedAt: benchNow}
	}
	if err := st.InsertSubscriptions(ctx, subs); err != nil {
		t.Fatal(err)
	}
	// Someone moves sa and sb to plan p9 after the batch read them.
	if _, err := st.Pool().Exec(ctx, `UPDATE `+st.Table("subscriptions")+` SET plan_id = 'p9' WHERE id IN ('sa', 'sb')`); err != nil {
		t.Fatal(err)
	}
	planChange := func(read billing.Subscription) billing.SubscriptionChange {
		changed := read
		changed.PlanID, changed.UpdatedAt = "p2", benchNow.Add(1)
		return billing.SubscriptionChange{Read: read, Changed: changed}
	}
	warned := subs[1]
	warned.ExpirationWarningSent, warned.ExpirationWarningDays = true, 3
	errs, err := st.UpdateSubscriptions(ctx, []billing.SubscriptionChange{
		planChange(subs[0]), // writes plan_id, read as p1: conflict
		{Read: subs[1], Changed: warned},
		planChange(subs[2]), // writes plan_id, still p1: applies
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(errs[0], billing.ErrConflict) || errs[1] != nil || errs[2] != nil {
		t.Fatalf("results %v, want [conflict <nil> <nil>]", errs)
	}
	for id, want := range map[string]struct {
		plan   string
		warned bool
	}{"sa": {"p9", false}, "sb": {"p9", true}, "sc": {"p2", false}} {
		got, err := st.GetSubscription(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.PlanID != want.plan || got.ExpirationWarningSent != want.warned {
			t.Errorf("%s: plan %q warned %v, want plan %q warned %v", id, got.PlanID, got.ExpirationWarningSent, want.plan, want.warned)
		}
	}
}
