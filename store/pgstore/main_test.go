package pgstore_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/renewkit/renewkit/internal/pgtest"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/pgstore"
)

var (
	sharedMu   sync.Mutex
	sharedPool *pgxpool.Pool
)

// newPool connects a pool of its own to POSTGRES_TEST_URI (skipped locally without it,
// failing under CI=true); it is closed when the test ends.
func newPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	p := pgtest.Connect(t, 8, nil)
	t.Cleanup(p.Close)
	return p
}

// pool returns a pool shared by the package's tests.
func pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	testkit.PostgresURI(t) // skips or fails before the lock without the server
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedPool == nil {
		sharedPool = pgtest.Connect(t, 16, nil)
	}
	return sharedPool
}

// freshSchema returns a new schema name, dropped when the test ends.
func freshSchema(t testing.TB, p *pgxpool.Pool) string {
	t.Helper()
	name := testkit.DBName("rk")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		pgtest.DropSchemas(ctx, p, name)
	})
	return name
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newStore returns a migrated store on a fresh schema of p.
func newStore(t testing.TB, p *pgxpool.Pool) *pgstore.Store {
	t.Helper()
	return storeOn(t, p, freshSchema(t, p))
}

// storeOn returns a migrated store on schema (which several stores may share).
func storeOn(t testing.TB, p *pgxpool.Pool, schema string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.New(p, pgstore.Config{Schema: schema, Logger: quiet})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}
