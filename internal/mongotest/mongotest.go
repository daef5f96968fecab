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
		c, err := mongo.Connect(options.Client().ApplyURI(uri).SetTimeout(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		db := c.Database(dbName)
		if i == 0 {
			// Runs after every later cleanup (host processes, other clients) is done.
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_ = db.Drop(ctx)
				_ = c.Disconnect(ctx)
			})
		} else {
			t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
		}
		st, err := mongostore.New(db, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err := st.EnsureIndexes(ctx)
			cancel()
			if err != nil {
				t.Fatalf("EnsureIndexes: %v", err)
			}
		}
		stores = append(stores, st)
	}
	return stores, uri, dbName
}
