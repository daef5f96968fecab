package mongostore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/renewkit/renewkit/internal/mongotest"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/mongostore"
)

// testURI returns MONGODB_TEST_URI. Without it the test is skipped locally and fails under
// CI=true: an integration test never silently skips in CI.
func testURI(t testing.TB) string {
	t.Helper()
	return testkit.MongoURI(t)
}

var (
	sharedMu     sync.Mutex
	sharedClient *mongo.Client
)

// newClient connects a new client; it is disconnected when the test ends.
func newClient(t testing.TB) *mongo.Client {
	t.Helper()
	c := mongotest.Connect(t, 2*time.Minute)
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// client returns a client shared by the package's tests.
func client(t testing.TB) *mongo.Client {
	t.Helper()
	testURI(t) // skips or fails before the lock without the server
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedClient == nil {
		sharedClient = mongotest.Connect(t, 2*time.Minute)
	}
	return sharedClient
}

// freshDB returns a new database on c, dropped when the test ends.
func freshDB(t testing.TB, c *mongo.Client) *mongo.Database {
	t.Helper()
	db := c.Database(testkit.DBName("rk"))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = db.Drop(ctx)
	})
	return db
}

// testConfig keeps bulk batches small: FerretDB v1 deadlocks on large multi-statement
// writes and rescans the collection on every update.
var testConfig = mongostore.Config{BatchSize: 50}

func newStore(t testing.TB, db *mongo.Database, cfg mongostore.Config) *mongostore.Store {
	t.Helper()
	return mongotest.Store(t, db, cfg)
}

// freshStore returns a store with cfg on a new database, the database (to write documents
// the way a host does) and a context that times out after timeout. The context is cancelled
// and the database dropped when the test ends.
func freshStore(t *testing.T, cfg mongostore.Config, timeout time.Duration) (context.Context, *mongo.Database, *mongostore.Store) {
	t.Helper()
	db := freshDB(t, client(t))
	st := newStore(t, db, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx, db, st
}
