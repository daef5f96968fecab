package mongostore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/renewkit/renewkit/billing"
)

// IndexFerretDBPostgreSQL creates, in the PostgreSQL database under a FerretDB v1 server,
// an index that finds each document of database by its _id for the queries FerretDB sends:
// a GIN (jsonb_path_ops) index on the _id of every collection database has. pg is a
// connection to that PostgreSQL database (any database/sql driver for PostgreSQL), database
// the MongoDB database name the Store uses. It is idempotent; call it after EnsureIndexes
// (which creates the collections) and again after adding collections. It changes no
// document and no index FerretDB knows of. With the index in place, set
// Config.FerretDBIDIndex so the store sends statements by one _id where it would otherwise
// send one for many. See FerretDB v1 in the package documentation.
func IndexFerretDBPostgreSQL(ctx context.Context, pg *sql.DB, database string) error {
	// Implementation:
	// FerretDB v1 (checked on v1.24.2) keeps each collection as a table of one jsonb column,
	// _jsonb, in a schema named after the database, listed with its table name in the
	// schema's _ferretdb_database_metadata table. It pushes an _id equality down as
	// _jsonb->'_id' @> $1, which its own btree index on (_jsonb->'_id') cannot serve: every
	// update, findAndModify and find by _id is a sequential scan of the table. A GIN index
	// on the same expression with jsonb_path_ops serves @>.
	if pg == nil || database == "" {
		return fmt.Errorf("mongostore: index FerretDB on PostgreSQL: pass the PostgreSQL connection and the database name: %w", billing.ErrInvalidInput)
	}
	rows, err := pg.QueryContext(ctx,
		`SELECT _jsonb->>'_id', _jsonb->>'table' FROM `+quoteIdent(database)+`."_ferretdb_database_metadata"`)
	if err != nil {
		return fmt.Errorf("mongostore: index FerretDB on PostgreSQL: reading the collections of %q (is pg FerretDB's PostgreSQL database?): %w", database, err)
	}
	var tables []string
	for rows.Next() {
		var coll, table string
		if err := rows.Scan(&coll, &table); err != nil {
			rows.Close()
			return fmt.Errorf("mongostore: index FerretDB on PostgreSQL: %w", err)
		}
		tables = append(tables, table)
	}
	err = errors.Join(rows.Err(), rows.Close())
	if err != nil {
		return fmt.Errorf("mongostore: index FerretDB on PostgreSQL: %w", err)
	}
	for _, table := range tables {
		q := `CREATE INDEX IF NOT EXISTS ` + quoteIdent(idIndexName(table)) + ` ON ` + quoteIdent(database) + `.` + quoteIdent(table) +
			` USING gin ((_jsonb->'_id') jsonb_path_ops)`
		if _, err := pg.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("mongostore: index FerretDB on PostgreSQL: table %s: %w", table, err)
		}
	}
	return nil
}

// idIndexName names the _id GIN index of table, unique in the schema as table is, within
// PostgreSQL's 63 bytes (a long name keeps a prefix and a hash of the whole).
func idIndexName(table string) string {
	const suffix = "_rk_id_gin"
	if len(table)+len(suffix) > 63 {
		h := fnv.New32a()
		_, _ = h.Write([]byte(table))
		table = fmt.Sprintf("%s_%08x", table[:63-len(suffix)-9], h.Sum32())
	}
	return table + suffix
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
