package scheduler_test

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/scheduler"
	"github.com/renewkit/renewkit/store/mongostore"
)

// TestReplicasRunEachTickOnceMongo is TestReplicasRunEachTickOnce with three replicas on three
// MongoDB clients sharing one database (FerretDB in CI): the lease lock and the run history
// live in mongostore, so one run per tick holds across processes, not just in memory.
func TestReplicasRunEachTickOnceMongo(t *testing.T) {
	uri := testkit.MongoURI(t)
	dbName := testkit.DBName("rk_sched")
	var stores [3]scheduler.SchedulerStore
	var first *mongostore.Store
	for i := range stores {
		c, err := mongo.Connect(options.Client().ApplyURI(uri).SetTimeout(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		db := c.Database(dbName)
		if i == 0 {
			t.Cleanup(func() { _ = db.Drop(context.Background()) })
		}
		t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
		st, err := mongostore.New(db, mongostore.Config{BatchSize: 20})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := st.EnsureIndexes(t.Context()); err != nil {
				t.Fatal(err)
			}
			first = st
		}
		stores[i] = st
	}
	replicasRunEachTickOnce(t, stores, first)
}
