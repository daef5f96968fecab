package pgstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/pgtest"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/pgstore"
	"github.com/renewkit/renewkit/store/storetest"
)

// TestConformance runs the store contract suite on PostgreSQL, with storetest's default
// (full) data sizes. A subtest that needs an empty store gets a migrated schema an earlier
// subtest has emptied, or a new one; every schema is dropped when the suite ends.
func TestConformance(t *testing.T) {
	p := pool(t)
	var schemas testkit.Pool[string]
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		pgtest.DropSchemas(ctx, p, schemas.All()...)
	})
	storetest.RunWithOptions(t, func(t *testing.T) billing.Store {
		schema := schemas.Take(t, func() string {
			name := testkit.DBName("rk")
			storeOn(t, p, name) // migrates it
			return name
		}, func(ctx context.Context, schema string) error { return emptySchema(ctx, p, schema) })
		st, err := pgstore.New(p, pgstore.Config{Schema: schema, Logger: quiet}) // migrated already
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return st
	}, storetest.Options{CorruptWebhookEvent: corruptWebhookEvent, CorruptPayment: corruptPayment})
}

// corruptWebhookEvent makes an event's history a JSON object instead of an array of
// attempts with plain SQL, bypassing renewkit: valid jsonb the store cannot decode.
func corruptWebhookEvent(ctx context.Context, st billing.Store, gateway, eventID string) error {
	ps, ok := st.(*pgstore.Store)
	if !ok {
		return fmt.Errorf("corruptWebhookEvent needs a *pgstore.Store, got %T", st)
	}
	tag, err := ps.Pool().Exec(ctx, "UPDATE "+ps.Table("webhook_events")+` SET history = '{"at": "not a list"}'::jsonb WHERE gateway = $1 AND event_id = $2`, gateway, eventID)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("corruptWebhookEvent: no webhook event %s/%s", gateway, eventID)
	}
	return nil
}

// corruptPayment makes a payment's pending effects a JSON array instead of an object with
// plain SQL, bypassing renewkit: valid jsonb the store cannot decode.
func corruptPayment(ctx context.Context, st billing.Store, id string) error {
	ps, ok := st.(*pgstore.Store)
	if !ok {
		return fmt.Errorf("corruptPayment needs a *pgstore.Store, got %T", st)
	}
	tag, err := ps.Pool().Exec(ctx, "UPDATE "+ps.Table("payments")+` SET pending = '["not", "effects"]'::jsonb WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("corruptPayment: no payment %s", id)
	}
	return nil
}

// emptySchema truncates every table of schema but its migration record, restarting its
// sequences, so the schema is as a fresh migration left it.
func emptySchema(ctx context.Context, p *pgxpool.Pool, schema string) error {
	rows, err := p.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename <> 'schema_migrations'`, schema)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var name string
		err := r.Scan(&name)
		return pgx.Identifier{schema, name}.Sanitize(), err
	})
	if err != nil || len(tables) == 0 {
		return err
	}
	_, err = p.Exec(ctx, "TRUNCATE "+strings.Join(tables, ", ")+" RESTART IDENTITY")
	return err
}
