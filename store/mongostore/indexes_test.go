package mongostore_test

import (
	"context"
	"testing"
	"time"
)

// EnsureIndexes runs at every replica's start, so it must be idempotent (FerretDB v1.24
// drops the connection when asked to create an index that exists).
func TestEnsureIndexesIdempotent(t *testing.T) {
	db := freshDB(t, client(t))
	for range 3 {
		st := newStore(t, newClient(t).Database(db.Name()), testConfig)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := st.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		cancel()
	}
	specs, err := db.Collection("payments").Indexes().ListSpecifications(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range specs {
		if sp.Name == "gateway_payment_key_unique" {
			if sp.Unique == nil || !*sp.Unique {
				t.Fatalf("gateway_payment_key_unique is not unique: %+v", sp)
			}
			return
		}
	}
	t.Fatalf("no gateway_payment_key_unique index in %+v", specs)
}
