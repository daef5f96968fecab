package mongostore_test

import (
	"context"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/mongostore"
)

// With Config.FerretDBIDIndex, on FerretDB v1 on PostgreSQL (the server pushes field
// filters down), every statement a warn and expire sweep sends for the subscriptions, users
// and notifications of a batch names one _id by equality (an index lookup once
// IndexFerretDBPostgreSQL ran) or one claim's token: PostgreSQL returns only the documents
// the statement reads or writes, not every document the pushed-down part of an
// {_id: {$in: ...}} or shared-token filter matches (every live user, all of a plan's users,
// all of a run's reservations). The exceptions are sorted finds on subscriptions: the
// claims' candidate finds (on the period end, which FerretDB filters in Go), at most one
// per batch and two more per sweep, and the read of a batch's users' other subscriptions
// ({user_id: {$in: ...}}; by one user_id each it cost PostgreSQL a scan of the table per
// user), one per batch; and one count per sweep. The same sweep without the option sends
// such wide statements (checked first, so the test can tell the two apart). Both sweeps end
// with every due subscription warned or expired and the expired users' access taken
// (RunSweep checks it).
func TestFerretDBIDIndexSendsOneIDPerStatement(t *testing.T) {
	const due, batch = 100, 25
	sweep := func(byID bool) []query {
		log, db := monitoredDB(t)
		st := newStore(t, db, mongostore.Config{BatchSize: batch, FerretDBIDIndex: byID})
		ctx := context.Background()
		seedBench(ctx, t, st, due)
		if !pushesFieldFilters(ctx, t, db.Collection("subscriptions")) {
			t.Skip("this server pushes no field filter down (MongoDB, FerretDB on SQLite): FerretDBIDIndex is ignored there")
		}
		return log.during(func() {
			testkit.RunSweep(ctx, t, st, due, billing.Config{BatchSize: batch})
		})
	}
	// wide lists the statements on the batch's collections that name neither one _id nor
	// one claim token; candidates counts the claims' candidate finds.
	wide := func(qs []query) (wide []string, candidates, counts int) {
		for _, q := range qs {
			if q.coll != "subscriptions" && q.coll != "users" && q.coll != "notifications" {
				continue
			}
			one := func(field string) bool {
				v, err := q.filter.LookupErr(field)
				return err == nil && v.Type != bson.TypeEmbeddedDocument && v.Type != bson.TypeArray
			}
			switch {
			case one("_id"), one("claim_token"):
			case q.cmd == "find" && q.coll == "subscriptions" && len(q.sort) > 0:
				candidates++
			case q.cmd == "count" && q.coll == "subscriptions":
				counts++
			default:
				wide = append(wide, fmt.Sprintf("%s %s %v", q.cmd, q.coll, q.filter))
			}
		}
		return wide, candidates, counts
	}
	if w, _, _ := wide(sweep(false)); len(w) == 0 {
		t.Fatal("without FerretDBIDIndex the sweep sent no statement for several documents: this test cannot tell the option's effect")
	}
	w, candidates, counts := wide(sweep(true))
	if len(w) > 0 {
		t.Errorf("with FerretDBIDIndex %d statements name neither one _id nor one claim, e.g. %s", len(w), w[0])
	}
	// Per sweep (warn, expire): one claim and one read of the users' subscriptions per batch
	// of its due half, one claim that finds the sweep done, one for pending effects; and the
	// expire job's lookup of lapsed auto-renewing subscriptions.
	batches := (due/2 + batch - 1) / batch
	if most := 2*(2*batches+2) + 1; candidates > most || counts > 2 {
		t.Errorf("%d candidate finds (want at most %d) and %d counts (want at most 2)", candidates, most, counts)
	}
}
