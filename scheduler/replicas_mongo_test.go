package scheduler_test

import (
	"testing"

	"github.com/renewkit/renewkit/internal/mongotest"
	"github.com/renewkit/renewkit/scheduler"
	"github.com/renewkit/renewkit/store/mongostore"
)

// TestReplicasRunEachTickOnceMongo is TestReplicasRunEachTickOnce with three replicas on three
// MongoDB clients sharing one database (FerretDB in CI): the lease lock and the run history
// live in mongostore, so one run per tick holds across processes, not just in memory.
func TestReplicasRunEachTickOnceMongo(t *testing.T) {
	ms, _, _ := mongotest.Stores(t, "rk_sched", 3, mongostore.Config{BatchSize: 20})
	var stores [3]scheduler.Store
	for i, st := range ms {
		stores[i] = st
	}
	replicasRunEachTickOnce(t, stores, ms[0])
}
