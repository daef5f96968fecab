package mongotest

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/mongostore"
)

// Stores returns n stores on one fresh database named after prefix, each through its own
// client, as n replicas' processes would open it. Indexes are created once; the database
// is dropped and the clients disconnected when the test ends. It also returns the URI and
// the database name, for a child process pointed at the same database.
func Stores(t testing.TB, prefix string, n int, cfg mongostore.Config) (stores []*mongostore.Store, uri, dbName string) {
	t.Helper()
	uri = testkit.MongoURI(t)
	dbName = testkit.DBName(prefix)
	for i := range n {
		c := Connect(t, time.Minute)
		db := c.Database(dbName)
		if i == 0 {
			// Runs after every later cleanup (host processes, other clients) is done.
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_ = db.Drop(ctx)
				_ = c.Disconnect(ctx)
			})
			stores = append(stores, Store(t, db, cfg))
			continue
		}
		t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
		st, err := mongostore.New(db, cfg)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		stores = append(stores, st)
	}
	return stores, uri, dbName
}

// Connect connects a client to MONGODB_TEST_URI (as testkit.MongoURI: skipped locally
// without it, failing under CI=true) whose operations time out after timeout. The caller
// disconnects it.
func Connect(t testing.TB, timeout time.Duration) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(testkit.MongoURI(t)).SetTimeout(timeout))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return c
}

// Store returns a mongostore.Store on db with cfg, its indexes created (a minute at most).
func Store(t testing.TB, db *mongo.Database, cfg mongostore.Config) *mongostore.Store {
	t.Helper()
	st, err := mongostore.New(db, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := st.EnsureIndexes(ctx); err != nil {
		t.Fatalf("EnsureIndexes: %v", err)
	}
	return st
}
