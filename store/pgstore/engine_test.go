package pgstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/billing/billingtest"
	"github.com/renewkit/renewkit/internal/pgtest"
	"github.com/renewkit/renewkit/store/pgstore"
)

// TestEngine runs billing's jobs and processor on pgstore with the host application's
// writes made as raw SQL, the way the host app writes.
func TestEngine(t *testing.T) {
	p := pool(t)
	billingtest.RunWithOptions(t, func(t *testing.T) billing.Store {
		return newStore(t, p)
	}, billingtest.Options{HostWrite: rawHostWrite, Replica: replica})
}

// replica opens st's schema through a new connection pool, as another replica's process
// would.
func replica(t *testing.T, st billing.Store) billing.Store {
	ps, ok := st.(*pgstore.Store)
	if !ok {
		t.Fatalf("replica needs a *pgstore.Store, got %T", st)
	}
	p := pgtest.Connect(t, 0, nil)
	t.Cleanup(p.Close)
	return storeOn(t, p, ps.Schema())
}

// rawHostWrite sets one column of a subscriptions row with plain SQL, bypassing renewkit.
func rawHostWrite(ctx context.Context, st billing.Store, id, field, value string) error {
	ps, ok := st.(*pgstore.Store)
	if !ok {
		return fmt.Errorf("rawHostWrite needs a *pgstore.Store, got %T", st)
	}
	tag, err := ps.Pool().Exec(ctx, "UPDATE "+ps.Table("subscriptions")+" SET "+pgx.Identifier{field}.Sanitize()+" = $2 WHERE id = $1", id, value)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("rawHostWrite: no subscription %s", id)
	}
	return nil
}
