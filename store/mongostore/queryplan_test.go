package mongostore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/mongostore"
)

// query is one read or write a command made: its collection, filter and sort.
type query struct {
	cmd, coll    string
	filter, sort bson.Raw
	body         bson.Raw // the whole command, for explain
}

// queryLog records the queries of every command a client sends.
type queryLog struct {
	mu sync.Mutex
	qs []query
	on bool
}

func (l *queryLog) started(_ context.Context, e *event.CommandStartedEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.on {
		return
	}
	cmd := bson.Raw(slices.Clone(e.Command))
	coll, _ := cmd.Lookup(e.CommandName).StringValueOK()
	add := func(filter, sort bson.Raw) {
		l.qs = append(l.qs, query{cmd: e.CommandName, coll: coll, filter: filter, sort: sort, body: cmd})
	}
	doc := func(v bson.RawValue) bson.Raw { d, _ := v.DocumentOK(); return d }
	switch e.CommandName {
	case "find":
		add(doc(cmd.Lookup("filter")), doc(cmd.Lookup("sort")))
	case "count":
		add(doc(cmd.Lookup("query")), nil)
	case "findAndModify":
		add(doc(cmd.Lookup("query")), doc(cmd.Lookup("sort")))
	case "update", "delete":
		arr := "updates"
		if e.CommandName == "delete" {
			arr = "deletes"
		}
		ops, _ := cmd.Lookup(arr).Array().Values()
		for _, op := range ops {
			add(doc(op.Document().Lookup("q")), nil)
		}
	case "aggregate":
		stages, _ := cmd.Lookup("pipeline").Array().Values()
		if len(stages) > 0 {
			if m, ok := stages[0].Document().Lookup("$match").DocumentOK(); ok {
				add(m, nil)
			}
		}
	}
}

// monitoredDB returns a fresh database on a client of its own whose commands log records
// (while log.on).
func monitoredDB(t *testing.T) (*queryLog, *mongo.Database) {
	t.Helper()
	log := &queryLog{}
	c, err := mongo.Connect(options.Client().ApplyURI(testURI(t)).SetTimeout(2 * time.Minute).
		SetMonitor(&event.CommandMonitor{Started: log.started}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return log, freshDB(t, c)
}

// indexed reports whether an index of idx can serve q: q names _id, or an index's first
// key is a top-level field q's filter constrains by equality, $in or a range (not only $ne
// or $exists: false, which scan), or, with no usable filter, q's first sort key. It is the
// condition under which MongoDB's planner can choose an index scan over a collection scan.
func indexed(q query, idx [][]string) bool {
	selective := map[string]bool{}
	elems, _ := q.filter.Elements()
	for _, e := range elems {
		k := e.Key()
		if strings.HasPrefix(k, "$") {
			continue // $or/$and beside the fields: the planner filters it after an index scan
		}
		ops, isOps := e.Value().DocumentOK()
		if !isOps {
			selective[k] = true
			continue
		}
		opElems, _ := ops.Elements()
		for _, op := range opElems {
			switch op.Key() {
			case "$in", "$lt", "$lte", "$gt", "$gte", "$eq":
				selective[k] = true
			case "$exists":
				if b, _ := op.Value().BooleanOK(); b {
					selective[k] = true
				}
			}
		}
	}
	if selective["_id"] {
		return true
	}
	for _, keys := range idx {
		if selective[keys[0]] {
			return true
		}
	}
	if len(selective) == 0 && len(q.sort) > 0 {
		first, _ := q.sort.IndexErr(0)
		for _, keys := range idx {
			if keys[0] == first.Key() {
				return true
			}
		}
	}
	return false
}

// bounded reports whether filter selects a set of documents bounded by the work at hand,
// whatever the collection's size: by _id, a batch's users, one claim or sweep token, or
// the pending effects of the runs in flight (all of them, or one session batch's token).
func bounded(filter bson.Raw) bool {
	for _, f := range []string{"_id", "user_id", "claim_token", "sweep_token"} {
		if constrains(filter, f) {
			return true
		}
	}
	v, err := filter.LookupErr("pending_token")
	if err != nil {
		return false
	}
	ops, isOps := v.DocumentOK()
	if !isOps {
		return true // one token's records (a session batch's)
	}
	exists, _ := ops.Lookup("$exists").BooleanOK()
	return exists
}

// constrains reports whether filter selects field by a value, $in or a range.
func constrains(filter bson.Raw, field string) bool {
	v, err := filter.LookupErr(field)
	if err != nil {
		return false
	}
	ops, isOps := v.DocumentOK()
	if !isOps {
		return true
	}
	elems, _ := ops.Elements()
	return slices.ContainsFunc(elems, func(e bson.RawElement) bool {
		return slices.Contains([]string{"$in", "$lt", "$lte", "$gt", "$gte", "$eq"}, e.Key())
	})
}

// sortCovered reports whether an index returns q's documents in q's sort order: some of its
// leading keys are fields the filter selects, and the keys that follow are the sort keys.
// (With $in on the leading keys MongoDB merges the ranges in order.)
func sortCovered(q query, idx [][]string) bool {
	sortElems, _ := q.sort.Elements()
	var sortKeys []string
	for _, e := range sortElems {
		sortKeys = append(sortKeys, e.Key())
	}
	for _, keys := range idx {
		for p := 0; p <= len(keys)-len(sortKeys); p++ {
			if !slices.Equal(keys[p:p+len(sortKeys)], sortKeys) {
				continue
			}
			if !slices.ContainsFunc(keys[:p], func(k string) bool { return !constrains(q.filter, k) }) {
				return true
			}
		}
	}
	return false
}

// indexKeys lists the key fields of every index of c.
func indexKeys(ctx context.Context, t *testing.T, c *mongo.Collection) [][]string {
	t.Helper()
	specs, err := c.Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, sp := range specs {
		var keys []string
		elems, _ := sp.KeysDocument.Elements()
		for _, e := range elems {
			keys = append(keys, e.Key())
		}
		out = append(out, keys)
	}
	return out
}

// TestJobQueriesUseIndexes runs all five jobs, the processor, a webhook event and the
// analytics on a database of a few hundred records, records every query they send, and
// proves that each query on subscriptions, sessions, payments, notifications, webhook
// events and locks can be served by an index EnsureIndexes created: on a server that can
// explain (MongoDB) its winning plan has no COLLSCAN; on FerretDB v1, whose planner answers
// every query but _id lookups with a sequential scan whatever the indexes, by the query's
// shape (see indexed).
func TestJobQueriesUseIndexes(t *testing.T) {
	log, db := monitoredDB(t)
	st := newStore(t, db, mongostore.Config{BatchSize: 50, Money: mongostore.MoneyMajorUnits, DefaultCurrency: "BRL"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h := writeHostDB(ctx, t, db)
	// Bulk that makes a scan visible to a planner: subscriptions far from any window,
	// sessions soft-deleted long ago.
	var subs, sessions []any
	for i := range 300 {
		subs = append(subs, bson.D{{Key: "user_id", Value: h.ana}, {Key: "plan_id", Value: h.planWhole}, {Key: "status", Value: "active"},
			{Key: "billing_cycle", Value: "yearly"}, {Key: "current_period_end", Value: hostNow.AddDate(0, 6, i%30)}, {Key: "flag_del", Value: false}})
		sessions = append(sessions, bson.D{{Key: "user_id", Value: h.ana}, {Key: "expires_at", Value: hostNow.AddDate(0, -6, -i)},
			{Key: "flag_del", Value: true}, {Key: "deleted_at", Value: hostNow.AddDate(0, -5, 0)}})
	}
	if _, err := db.Collection("subscriptions").InsertMany(ctx, subs); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("sessions").InsertMany(ctx, sessions); err != nil {
		t.Fatal(err)
	}

	svc, err := billing.NewService(st, testkit.NewNotifier(), billing.Config{Clock: testkit.NewClock(hostNow), BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	log.on = true
	log.mu.Unlock()
	steps := []struct {
		name string
		run  func() error
	}{
		{"warn", func() error { _, err := svc.CheckExpiringSubscriptions(ctx); return err }},
		{"expire", func() error { _, err := svc.ProcessExpiredSubscriptions(ctx); return err }},
		{"renew", func() error { _, err := svc.RenewSubscriptions(ctx); return err }},
		{"sessions", func() error { _, err := svc.CleanupOldSessions(ctx); return err }},
		{"payments", func() error { _, err := svc.CleanupPendingPayments(ctx); return err }},
		{"approve", func() error {
			_, err := svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: h.pendingPayment.Hex(), GatewayPaymentID: "mp-1"})
			return err
		}},
		{"webhook", func() error {
			_, err := svc.HandleWebhookEvent(ctx, billing.WebhookEvent{Gateway: "mercadopago", EventID: "payment:mp-1", Type: "payment"},
				func(context.Context) (bool, error) { return true, nil })
			return err
		}},
		{"analytics", func() error { _, err := svc.Analytics(ctx); return err }},
		{"console", func() error { return consoleQueries(ctx, st) }},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	log.mu.Lock()
	log.on = false
	qs := slices.Clone(log.qs)
	log.mu.Unlock()

	covered := map[string]bool{"subscriptions": true, "sessions": true, "payments": true, "notifications": true,
		"webhook_events": true, "locks": true, "audit_logs": true, "daily_snapshots": true}
	var info bson.M
	if err := db.Client().Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		t.Fatal(err)
	}
	_, ferret := info["ferretdbVersion"]
	explains := !ferret
	idx := map[string][][]string{}
	seen := map[string]bool{}
	checked := 0
	for _, q := range qs {
		if !covered[q.coll] {
			continue
		}
		shape := fmt.Sprintf("%s %s %s sort %s", q.cmd, q.coll, shapeOf(q.filter), shapeOf(q.sort))
		if seen[shape] {
			continue
		}
		seen[shape] = true
		checked++
		if idx[q.coll] == nil {
			idx[q.coll] = indexKeys(ctx, t, db.Collection(q.coll))
		}
		if !indexed(q, idx[q.coll]) {
			t.Errorf("no index serves %s (indexes %v)", shape, idx[q.coll])
		}
		if len(q.sort) > 0 && !bounded(q.filter) && !sortCovered(q, idx[q.coll]) {
			t.Errorf("no index gives %s in its sort order: it is sorted in memory (indexes %v)", shape, idx[q.coll])
		}
		if q.coll == "sessions" && !bounded(q.filter) && !constrains(q.filter, "flag_del") {
			t.Errorf("%s also scans the soft-deleted sessions, which pile up for ever: it must select flag_del", shape)
		}
		if explains && (q.cmd == "find" || q.cmd == "count" || q.cmd == "aggregate") {
			var plan bson.Raw
			body := slices.DeleteFunc(bsonD(q.body), func(e bson.E) bool { return strings.HasPrefix(e.Key, "$") || e.Key == "lsid" })
			if err := db.RunCommand(ctx, bson.D{{Key: "explain", Value: body}}).Decode(&plan); err != nil {
				t.Fatalf("explain %s: %v", shape, err)
			}
			if strings.Contains(plan.String(), `"COLLSCAN"`) {
				t.Errorf("%s is a collection scan: %s", shape, plan)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d distinct queries recorded; the monitor missed the jobs' commands", checked)
	}
	t.Logf("%d distinct query shapes checked (explain: %v)", checked, explains)
}

func bsonD(raw bson.Raw) bson.D {
	var d bson.D
	_ = bson.Unmarshal(raw, &d)
	return d
}

// shapeOf renders a filter or sort with its values replaced by their BSON types.
func shapeOf(doc bson.Raw) string {
	if len(doc) == 0 {
		return "{}"
	}
	elems, _ := doc.Elements()
	var parts []string
	for _, e := range elems {
		v := e.Value()
		if sub, ok := v.DocumentOK(); ok && len(sub) > 5 {
			parts = append(parts, e.Key()+":"+shapeOf(sub))
			continue
		}
		parts = append(parts, e.Key()+":"+v.Type.String())
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// consoleQueries sends every query shape of billing.Console and billing.SnapshotStore:
// each list unfiltered, by each filter and on a second page.
func consoleQueries(ctx context.Context, st *mongostore.Store) error {
	after := billing.Cursor{CreatedAt: hostNow, ID: "0123456789abcdef01234567"}
	for _, q := range []billing.SubscriptionQuery{{}, {Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}}, {Gateway: "stripe"},
		{PlanID: "p1"}, {Q: "ana@"}, {Q: "sub_x", Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}}, {After: after}} {
		if _, _, err := st.SearchSubscriptions(ctx, q); err != nil {
			return err
		}
	}
	for _, q := range []billing.PaymentQuery{{}, {Status: billing.PaymentStatusPending}, {SubscriptionID: "s1"}, {After: after}} {
		if _, _, err := st.ListPayments(ctx, q); err != nil {
			return err
		}
	}
	for _, q := range []billing.NotificationQuery{{}, {Kind: billing.NotificationKindExpiring}, {Status: billing.NotificationFailed},
		{SubscriptionID: "s1", Kind: billing.NotificationKindExpiring}, {After: after}} {
		if _, _, err := st.ListNotifications(ctx, q); err != nil {
			return err
		}
	}
	if _, err := st.ListEntityAudit(ctx, []string{"s1", "pay1"}, 50); err != nil {
		return err
	}
	if _, err := st.ListObjectWebhookEvents(ctx, billing.GatewayStripe, []string{"sub_1", "in_1"}, 50); err != nil {
		return err
	}
	if _, err := st.RetryNotification(ctx, "none", "tok", hostNow, hostNow.Add(time.Minute)); err != nil && !errors.Is(err, billing.ErrNotFound) {
		return err
	}
	if err := st.PutDailySnapshot(ctx, billing.DailySnapshot{Day: hostNow}); err != nil {
		return err
	}
	_, err := st.ListDailySnapshots(ctx, hostNow.AddDate(0, 0, -90))
	return err
}
