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
