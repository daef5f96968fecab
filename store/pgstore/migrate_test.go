package pgstore_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/store/pgstore"
)

func migrated(t *testing.T, s *pgstore.Store) int {
	t.Helper()
	v, err := s.MigratedVersion(context.Background())
	if err != nil {
		t.Fatalf("MigratedVersion: %v", err)
	}
	return v
}

// indexes returns the names of the indexes on the schema's tables.
func indexes(t *testing.T, s *pgstore.Store) map[string]bool {
	t.Helper()
	rows, err := s.Pool().Query(context.Background(), `SELECT indexname FROM pg_indexes WHERE schemaname = $1`, s.Schema())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[n] = true
	}
	return out
}

// TestMigrateFromEmpty proves Migrate builds the whole schema on an empty database,
// records every version, logs what it applied, and is a no-op the second time.
func TestMigrateFromEmpty(t *testing.T) {
	p := pool(t)
	var log bytes.Buffer
	s, err := pgstore.New(p, pgstore.Config{Schema: freshSchema(t, p), Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if v := migrated(t, s); v != 0 {
		t.Fatalf("version before Migrate = %d, want 0", v)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if v := migrated(t, s); v != pgstore.SchemaVersion() || v < 2 {
		t.Fatalf("version after Migrate = %d, want %d", v, pgstore.SchemaVersion())
	}
	if !strings.Contains(log.String(), "applied migration") || !strings.Contains(log.String(), "query_indexes") {
		t.Fatalf("Migrate did not log the migrations it applied:\n%s", log.String())
	}
	if !indexes(t, s)["subscriptions_due"] {
		t.Fatal("the job indexes are missing after Migrate")
	}
	log.Reset()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if !strings.Contains(log.String(), "up to date") || strings.Contains(log.String(), "applied migration") {
		t.Fatalf("second Migrate should apply nothing and say so:\n%s", log.String())
	}
	var n int
	if err := p.QueryRow(ctx, `SELECT count(*) FROM `+s.Table("schema_migrations")).Scan(&n); err != nil || n != pgstore.SchemaVersion() {
		t.Fatalf("schema_migrations holds %d rows (%v), want one per version (%d)", n, err, pgstore.SchemaVersion())
	}
}

// TestMigrateFromPreviousVersion proves each migration applies on a database left at the
// version before it, keeping the data stored there.
func TestMigrateFromPreviousVersion(t *testing.T) {
	p := pool(t)
	ctx := context.Background()
	for v := 1; v < pgstore.SchemaVersion(); v++ {
		s, err := pgstore.New(p, pgstore.Config{Schema: freshSchema(t, p), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.MigrateTo(ctx, v); err != nil {
			t.Fatalf("MigrateTo(%d): %v", v, err)
		}
		if got := migrated(t, s); got != v {
			t.Fatalf("version after MigrateTo(%d) = %d", v, got)
		}
		sub := billing.Subscription{ID: "s1", UserID: "u1", PlanID: "p1", Status: billing.SubscriptionStatusActive,
			CurrentPeriodEnd: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), CreatedAt: time.Now(), UpdatedAt: time.Now()}
		if err := s.InsertSubscription(ctx, &sub); err != nil {
			t.Fatalf("InsertSubscription at version %d: %v", v, err)
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate from version %d: %v", v, err)
		}
		if got := migrated(t, s); got != pgstore.SchemaVersion() {
			t.Fatalf("version after Migrate from %d = %d", v, got)
		}
		if _, err := s.GetSubscription(ctx, "s1"); err != nil {
			t.Fatalf("the subscription stored at version %d is gone after migrating: %v", v, err)
		}
	}
}

// TestMigrateConcurrently proves replicas migrating at once apply each migration once
// (the advisory lock) and all succeed.
func TestMigrateConcurrently(t *testing.T) {
	p := pool(t)
	schema := freshSchema(t, p)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := pgstore.New(newPool(t), pgstore.Config{Schema: schema, Logger: quiet})
			if err == nil {
				err = s.Migrate(context.Background())
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Migrate: %v", err)
	}
	s := storeOn(t, p, schema)
	var n int
	if err := p.QueryRow(context.Background(), `SELECT count(*) FROM `+s.Table("schema_migrations")).Scan(&n); err != nil || n != pgstore.SchemaVersion() {
		t.Fatalf("schema_migrations holds %d rows (%v) after 3 concurrent Migrates, want %d", n, err, pgstore.SchemaVersion())
	}
}

// TestMigrateRefusesNewerSchema proves the runner is forward-only: a schema migrated by a
// newer renewkit is reported, not touched.
func TestMigrateRefusesNewerSchema(t *testing.T) {
	p := pool(t)
	s := newStore(t, p)
	ctx := context.Background()
	if _, err := p.Exec(ctx, `INSERT INTO `+s.Table("schema_migrations")+` (version, name) VALUES ($1, 'from_the_future')`, pgstore.SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	err := s.Migrate(ctx)
	if err == nil || !strings.Contains(err.Error(), "newer than this renewkit") {
		t.Fatalf("Migrate on a newer schema = %v, want an error saying the schema is newer", err)
	}
}

// TestConfigValidate proves bad configuration is reported with how to fix it, joined.
func TestConfigValidate(t *testing.T) {
	_, err := pgstore.New(nil, pgstore.Config{Schema: `bad"name`, MaxRetries: -1})
	if err == nil {
		t.Fatal("New(nil, bad config) succeeded")
	}
	for _, want := range []string{"missing pool", "not a plain identifier", "MaxRetries -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if err := (pgstore.Config{}).Validate(); err != nil {
		t.Fatalf("the zero Config is invalid: %v", err)
	}
}

// TestErrorMapping proves a unique violation is ErrConflict without the key's value in the
// text, a value the column cannot hold ErrInvalidInput, a missing row ErrNotFound.
func TestErrorMapping(t *testing.T) {
	s := newStore(t, pool(t))
	ctx := context.Background()
	p1 := billing.Payment{ID: "p1", Gateway: "stripe", GatewayPaymentID: "pi_secretish", Status: billing.PaymentStatusPending,
		Amount: billing.Money{Amount: 1, Currency: "BRL"}}
	if err := s.InsertPayment(ctx, &p1); err != nil {
		t.Fatal(err)
	}
	p2 := p1
	p2.ID = "p2"
	err := s.InsertPayment(ctx, &p2)
	if !errors.Is(err, billing.ErrConflict) || strings.Contains(err.Error(), "pi_secretish") {
		t.Fatalf("duplicate gateway payment id: %v, want ErrConflict without the id's value", err)
	}
	p3 := billing.Payment{ID: "p3", Status: billing.PaymentStatusPending, Amount: billing.Money{Amount: 1, Currency: "EURO"}}
	if err := s.InsertPayment(ctx, &p3); !errors.Is(err, billing.ErrInvalidInput) {
		t.Fatalf("a four-letter currency: %v, want ErrInvalidInput", err)
	}
	if _, err := s.GetPayment(ctx, "p3"); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("GetPayment of the rejected payment: %v, want ErrNotFound", err)
	}
}
