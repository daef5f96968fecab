package mongostore_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/mongostore"
)

// On FerretDB v1 on PostgreSQL, with mongostore.IndexFerretDBPostgreSQL applied, the
// statements a warn and expire sweep sends for one document (an _id equality: transitions,
// notification records, users) are found by an index, not by a sequential scan of the
// table: their cost does not grow with the collection. Without it every one of them is a
// sequential scan (checked first, so the test can tell the two apart). Proven by
// PostgreSQL's own plan of each statement's filter, as FerretDB hands it over (explain).
func TestPerDocumentWritesUseTheIDIndex(t *testing.T) {
	log, db := monitoredDB(t)
	st := newStore(t, db, mongostore.Config{BatchSize: 50})
	ctx := context.Background()
	const due, idle = 100, 2000
	seedBench(ctx, t, st, due)
	// Subscriptions and users no job touches: the tables have the size of a real one, at
	// which PostgreSQL's planner prefers an index it can use to a scan.
	pad := testkit.SweepSubscriptions(idle, 6)
	users := make([]any, idle)
	for i := range pad {
		pad[i].ID, pad[i].UserID = "idle-"+pad[i].ID, "idle-"+pad[i].UserID
		pad[i].CurrentPeriodEnd = benchNow.AddDate(0, 2, 0)
		users[i] = bson.D{{Key: "_id", Value: pad[i].UserID}, {Key: "email", Value: pad[i].UserID + "@example.com"}, {Key: "plan_id", Value: "p1"}}
	}
	if err := st.InsertSubscriptions(ctx, pad); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("users").InsertMany(ctx, users); err != nil {
		t.Fatal(err)
	}
	pg := ferretPostgres(t, db)
	if pg == nil {
		if pushesFieldFilters(ctx, t, db.Collection("subscriptions")) && os.Getenv("CI") == "true" {
			t.Fatal("the server pushes filters down (FerretDB on PostgreSQL) but its PostgreSQL database was not found on POSTGRES_TEST_URI's server")
		}
		t.Skip("not FerretDB on the PostgreSQL of POSTGRES_TEST_URI: no PostgreSQL plan to read")
	}
	qs := log.during(func() {
		testkit.RunSweep(ctx, t, st, due, billing.Config{BatchSize: 50})
	})
	var perDoc []query
	for _, q := range qs {
		v, err := q.filter.LookupErr("_id")
		// Released locks are removed: that table keeps a few rows, scanned at no cost.
		if err == nil && v.Type != bson.TypeEmbeddedDocument && q.coll != "locks" {
			perDoc = append(perDoc, q)
		}
	}
	if len(perDoc) < due {
		t.Fatalf("the sweep sent %d statements for one document, want at least one per subscription (%d)", len(perDoc), due)
	}
	plans := func() (scans []string) {
		for _, q := range perDoc {
			var res struct {
				QueryPlanner bson.Raw `bson:"queryPlanner"`
			}
			cmd := bson.D{{Key: "explain", Value: bson.D{{Key: "find", Value: q.coll}, {Key: "filter", Value: q.filter}}},
				{Key: "verbosity", Value: "queryPlanner"}}
			if err := db.RunCommand(ctx, cmd).Decode(&res); err != nil {
				t.Fatal(err)
			}
			if plan := res.QueryPlanner.String(); strings.Contains(plan, `"Seq Scan"`) {
				scans = append(scans, fmt.Sprintf("%s %s %v", q.cmd, q.coll, q.filter))
			}
		}
		return scans
	}
	if scans := plans(); len(scans) != len(perDoc) {
		t.Fatalf("without the _id index %d of %d statements for one document scan their table, want all: this test cannot tell the index's effect", len(scans), len(perDoc))
	}
	if err := mongostore.IndexFerretDBPostgreSQL(ctx, pg, db.Name()); err != nil {
		t.Fatal(err)
	}
	if err := mongostore.IndexFerretDBPostgreSQL(ctx, pg, db.Name()); err != nil {
		t.Fatalf("a second run (idempotent): %v", err)
	}
	if scans := plans(); len(scans) > 0 {
		t.Errorf("%d of %d statements for one document scan their table, e.g. %s", len(scans), len(perDoc), scans[0])
	}
}
