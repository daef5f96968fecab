package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/renewkit/renewkit/internal/testkit"
)

// Schema returns POSTGRES_TEST_URI (as testkit.PostgresURI) and a fresh schema name with
// prefix for one test. The schema is dropped when the test and its other cleanups are done
// (it registers its cleanup first, so it runs last, after the servers and pools the test
// started have stopped).
func Schema(t testing.TB, prefix string) (uri, schema string) {
	t.Helper()
	uri, schema = testkit.PostgresURI(t), testkit.DBName(prefix)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if p, err := pgxpool.New(ctx, uri); err == nil {
			DropSchemas(ctx, p, schema)
			p.Close()
		}
	})
	return uri, schema
}

// DropSchemas drops each named schema with everything in it, as a test's cleanup does
// (errors are ignored: the schema may never have been created).
func DropSchemas(ctx context.Context, p *pgxpool.Pool, names ...string) {
	for _, name := range names {
		_, _ = p.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE")
	}
}

// Connect opens a pool of at most maxConns connections (0: pgxpool's default) to
// POSTGRES_TEST_URI (as testkit.PostgresURI: skipped locally without it, failing under
// CI=true), with tracer on its connections when not nil. The caller closes it: a test with t.Cleanup(p.Close), a
// package's shared pool never.
func Connect(t testing.TB, maxConns int32, tracer pgx.QueryTracer) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testkit.PostgresURI(t))
	if err != nil {
		t.Fatalf("POSTGRES_TEST_URI: %v", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	if tracer != nil {
		cfg.ConnConfig.Tracer = tracer
	}
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return p
}
