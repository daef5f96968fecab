package mongostore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

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
	c, err := mongo.Connect(options.Client().ApplyURI(testURI(t)).SetTimeout(2 * time.Minute))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// client returns a client shared by the package's tests.
func client(t testing.TB) *mongo.Client {
	t.Helper()
	uri := testURI(t)
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedClient == nil {
		c, err := mongo.Connect(options.Client().ApplyURI(uri).SetTimeout(2 * time.Minute))
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		sharedClient = c
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
	s, err := mongostore.New(db, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.EnsureIndexes(ctx); err != nil {
		t.Fatalf("EnsureIndexes: %v", err)
	}
	return s
}
