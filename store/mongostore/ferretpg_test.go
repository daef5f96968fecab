package mongostore_test

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// ferretPostgres returns a connection to the PostgreSQL database in which the FerretDB
// server of MONGODB_TEST_URI keeps db (which must exist: written once), found on the
// server of POSTGRES_TEST_URI among FerretDB's databases (ferretdb_<n>, see
// scripts/ferretdb) by a schema named db. It returns nil when there is none: the server is
// not FerretDB on that PostgreSQL (FerretDB on SQLite, MongoDB, or POSTGRES_TEST_URI unset).
func ferretPostgres(t testing.TB, db *mongo.Database) *sql.DB {
	t.Helper()
	base := os.Getenv("POSTGRES_TEST_URI")
	if base == "" {
		return nil
	}
	at := func(name string) *sql.DB {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatalf("POSTGRES_TEST_URI: %v", err)
		}
		u.Path = "/" + name
		pg, err := sql.Open("pgx", u.String())
		if err != nil {
			t.Fatal(err)
		}
		return pg
	}
	ctx := context.Background()
	server := at("postgres")
	defer server.Close()
	rows, err := server.QueryContext(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'ferretdb\_%'`)
	if err != nil {
		t.Fatalf("listing FerretDB's databases on POSTGRES_TEST_URI's server: %v", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		pg := at(n)
		var found bool
		err := pg.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)`, db.Name()).Scan(&found)
		if err == nil && found {
			t.Cleanup(func() { _ = pg.Close() })
			return pg
		}
		_ = pg.Close()
		if err != nil && !strings.Contains(err.Error(), "does not exist") {
			t.Logf("database %s: %v", n, err)
		}
	}
	return nil
}
