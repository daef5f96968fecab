package scheduler_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/renewkit/renewkit/internal/pgtest"
	"github.com/renewkit/renewkit/scheduler"
	"github.com/renewkit/renewkit/store/pgstore"
)

// TestReplicasRunEachTickOncePostgres is TestReplicasRunEachTickOnce with three replicas on
// three PostgreSQL connection pools sharing one schema: the lease lock and the run history
// live in pgstore, so one run per tick holds across processes, not just in memory.
func TestReplicasRunEachTickOncePostgres(t *testing.T) {
	uri, schema := pgtest.Schema(t, "rk_sched")
	var stores [3]scheduler.Store
	var first *pgstore.Store
	for i := range stores {
		p, err := pgxpool.New(context.Background(), uri)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		st, err := pgstore.New(p, pgstore.Config{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = st
		}
		stores[i] = st
	}
	replicasRunEachTickOnce(t, stores, first)
}
