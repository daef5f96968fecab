package pgstore_test

import (
	"context"
	"testing"
)

// TestNoRedundantIndexes proves no index of the schema is made redundant by another: no
// non-unique index's key columns are the leading key columns of another index of its
// table (same access method, collations and predicate; the same directions, or a single
// column, which a B-tree scans either way). Such an index serves no query the longer one
// cannot, yet every insert, and every update that is not HOT, writes an entry into it.
func TestNoRedundantIndexes(t *testing.T) {
	p := pool(t)
	s := newStore(t, p)
	rows, err := p.Query(context.Background(), `SELECT t.relname, a.relname, b.relname FROM pg_index x
		JOIN pg_index y ON y.indrelid = x.indrelid AND y.indexrelid <> x.indexrelid
		JOIN pg_class a ON a.oid = x.indexrelid
		JOIN pg_class b ON b.oid = y.indexrelid
		JOIN pg_class t ON t.oid = x.indrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace
		WHERE n.nspname = $1 AND NOT x.indisunique AND a.relam = b.relam
			AND x.indexprs IS NULL AND x.indnkeyatts <= y.indnkeyatts
			AND (x.indkey::int2[])[0:x.indnkeyatts-1] = (y.indkey::int2[])[0:x.indnkeyatts-1]
			AND (x.indcollation::oid[])[0:x.indnkeyatts-1] = (y.indcollation::oid[])[0:x.indnkeyatts-1]
			AND (x.indnkeyatts = 1 OR (x.indoption::int2[])[0:x.indnkeyatts-1] = (y.indoption::int2[])[0:x.indnkeyatts-1])
			AND pg_get_expr(x.indpred, x.indrelid) IS NOT DISTINCT FROM pg_get_expr(y.indpred, y.indrelid)
		ORDER BY 1, 2, 3`, s.Schema())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var table, shorter, longer string
		if err := rows.Scan(&table, &shorter, &longer); err != nil {
			t.Fatal(err)
		}
		t.Errorf("index %s of %s is redundant: its key leads %s's", shorter, table, longer)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}
