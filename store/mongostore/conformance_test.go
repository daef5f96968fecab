package mongostore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/mongostore"
	"github.com/renewkit/renewkit/store/storetest"
)

// TestConformance runs the store contract suite on FerretDB. A subtest that needs an empty
// store gets a database an earlier subtest has emptied (its indexes kept), or a new one;
// every database is dropped when the suite ends.
func TestConformance(t *testing.T) { conformance(t, testConfig) }

// TestConformanceFerretDBIDIndex runs the suite with Config.FerretDBIDIndex where it
// changes what the store sends (FerretDB v1 on PostgreSQL): the statements by one _id
// keep every promise of the contract.
func TestConformanceFerretDBIDIndex(t *testing.T) { conformance(t, byIDConfig(t)) }

// byIDConfig returns testConfig with Config.FerretDBIDIndex, and skips the test on a server
// where the option does nothing (it pushes no field filter down: MongoDB, FerretDB on
// SQLite).
func byIDConfig(t *testing.T) mongostore.Config {
	t.Helper()
	db := freshDB(t, client(t))
	ctx := context.Background()
	if err := db.CreateCollection(ctx, "probe"); err != nil {
		t.Fatal(err)
	}
	if !pushesFieldFilters(ctx, t, db.Collection("probe")) {
		t.Skip("this server pushes no field filter down (MongoDB, FerretDB on SQLite): FerretDBIDIndex is ignored there")
	}
	cfg := testConfig
	cfg.FerretDBIDIndex = true
	return cfg
}

func conformance(t *testing.T, cfg mongostore.Config) {
	c := client(t)
	var dbs testkit.Pool[*mongo.Database]
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, db := range dbs.All() {
			_ = db.Drop(ctx)
		}
	})
	storetest.RunWithOptions(t, func(t *testing.T) billing.Store {
		db := dbs.Take(t, func() *mongo.Database {
			db := c.Database(testkit.DBName("rk"))
			newStore(t, db, cfg) // creates the collections and their indexes
			return db
		}, emptyDB)
		st, err := mongostore.New(db, cfg) // the indexes are there already
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return st
	}, storetest.Options{ClaimRecords: 200, StaleRecords: 100, Goroutines: 4, CorruptWebhookEvent: corruptWebhookEvent, CorruptPayment: corruptPayment})
}

// corruptWebhookEvent sets an event's history to a string with the driver, bypassing
// renewkit: a field of the wrong BSON type the store cannot decode.
func corruptWebhookEvent(ctx context.Context, st billing.Store, gateway, eventID string) error {
	ms, ok := st.(*mongostore.Store)
	if !ok {
		return fmt.Errorf("corruptWebhookEvent needs a *mongostore.Store, got %T", st)
	}
	res, err := ms.Database().Collection("webhook_events").UpdateOne(ctx, bson.D{{Key: "_id", Value: billing.WebhookEventKey(gateway, eventID)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "history", Value: "not a list"}}}})
	if err != nil {
		return err
	}
	if res.MatchedCount != 1 {
		return fmt.Errorf("corruptWebhookEvent: no webhook event %s/%s", gateway, eventID)
	}
	return nil
}

// corruptPayment sets a payment's pending effects to a number with the driver, bypassing
// renewkit: a field of the wrong BSON type the store cannot decode.
func corruptPayment(ctx context.Context, st billing.Store, id string) error {
	ms, ok := st.(*mongostore.Store)
	if !ok {
		return fmt.Errorf("corruptPayment needs a *mongostore.Store, got %T", st)
	}
	res, err := ms.Database().Collection("payments").UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "pending_effects", Value: 7}}}})
	if err != nil {
		return err
	}
	if res.MatchedCount != 1 {
		return fmt.Errorf("corruptPayment: no payment %s", id)
	}
	return nil
}

// emptyDB deletes every document of db, keeping its collections and indexes.
func emptyDB(ctx context.Context, db *mongo.Database) error {
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return err
	}
	for _, name := range names {
		if _, err := db.Collection(name).DeleteMany(ctx, bson.D{}); err != nil {
			return err
		}
	}
	return nil
}
