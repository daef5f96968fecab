package mongostore_test

import (
	"context"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/billing/billingtest"
	"github.com/renewkit/renewkit/store/mongostore"
)

// TestEngine runs billing's jobs and processor on mongostore (FerretDB in CI) with the
// host application's writes made as raw driver updates, the way the host app writes.
func TestEngine(t *testing.T) { engine(t, testConfig) }

// TestEngineFerretDBIDIndex runs the engine suite with Config.FerretDBIDIndex where it
// changes what the store sends (FerretDB v1 on PostgreSQL).
func TestEngineFerretDBIDIndex(t *testing.T) { engine(t, byIDConfig(t)) }

func engine(t *testing.T, cfg mongostore.Config) {
	c := client(t)
	// replica opens st's database through a new client, as another replica's process would.
	replica := func(t *testing.T, st billing.Store) billing.Store {
		ms, ok := st.(*mongostore.Store)
		if !ok {
			t.Fatalf("replica needs a *mongostore.Store, got %T", st)
		}
		return newStore(t, newClient(t).Database(ms.Database().Name()), cfg)
	}
	billingtest.RunWithOptions(t, func(t *testing.T) billing.Store {
		return newStore(t, freshDB(t, c), cfg)
	}, billingtest.Options{Records: 24, HostWrite: rawHostWrite, Replica: replica})
}

// rawHostWrite sets one field of a subscriptions document with the driver, bypassing
// renewkit, as the host application would.
func rawHostWrite(ctx context.Context, st billing.Store, id, field, value string) error {
	ms, ok := st.(*mongostore.Store)
	if !ok {
		return fmt.Errorf("rawHostWrite needs a *mongostore.Store, got %T", st)
	}
	var key any = id
	if oid, err := bson.ObjectIDFromHex(id); err == nil {
		key = oid
	}
	res, err := ms.Database().Collection("subscriptions").UpdateOne(ctx, bson.D{{Key: "_id", Value: key}},
		bson.D{{Key: "$set", Value: bson.D{{Key: field, Value: value}}}})
	if err != nil {
		return err
	}
	if res.MatchedCount != 1 {
		return fmt.Errorf("rawHostWrite: no subscription %s", id)
	}
	return nil
}
