package storetest_test

import (
	"context"
	"os"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/store/memstore"
	"github.com/renewkit/renewkit/store/mongostore"
	"github.com/renewkit/renewkit/store/storetest"
)

// ExampleRun is the whole conformance test of an in-memory store: the subtests that need an
// empty store get a fresh one from the constructor, the others share one. A store adapter writes it as a Test function.
func ExampleRun() {
	testConformance := func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) billing.Store {
			return memstore.New()
		})
	}
	_ = testConformance
}

// A store backed by a server creates a fresh database per call and drops it with
// t.Cleanup; Options makes the data sizes fit a slow server.
func ExampleRunWithOptions() {
	testConformance := func(t *testing.T) {
		client, err := mongo.Connect(options.Client().ApplyURI(os.Getenv("MONGODB_TEST_URI")))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
		storetest.RunWithOptions(t, func(t *testing.T) billing.Store {
			db := client.Database("storetest_" + billing.NewID())
			t.Cleanup(func() { _ = db.Drop(context.Background()) })
			st, err := mongostore.New(db, mongostore.Config{})
			if err != nil {
				t.Fatal(err)
			}
			return st
		}, storetest.Options{ClaimRecords: 200, Goroutines: 4})
	}
	_ = testConformance
}
