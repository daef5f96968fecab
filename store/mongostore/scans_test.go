package mongostore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/store/mongostore"
)

// pushesFieldFilters asks the server, as the store does, whether it hands an equality
// filter on a field other than _id to its backend: FerretDB v1 on PostgreSQL does, on
// SQLite it does not (MongoDB's explain has no such field; it checks conditions itself).
func pushesFieldFilters(ctx context.Context, t *testing.T, c *mongo.Collection) bool {
	t.Helper()
	var res struct {
		FilterPushdown bool `bson:"filterPushdown"`
	}
	cmd := bson.D{{Key: "explain", Value: bson.D{{Key: "find", Value: c.Name()},
		{Key: "filter", Value: bson.D{{Key: "status", Value: "active"}}}}}, {Key: "verbosity", Value: "queryPlanner"}}
	if err := c.Database().RunCommand(ctx, cmd).Decode(&res); err != nil {
		t.Fatalf("explain: %v", err)
	}
	return res.FilterPushdown
}

// monitoredStore returns a store on a fresh database whose commands log records (see
// monitoredDB), with its claim mode.
func monitoredStore(t *testing.T, cfg mongostore.Config) (*queryLog, *mongo.Database, *mongostore.Store, mongostore.ClaimMode) {
	t.Helper()
	log, db := monitoredDB(t)
	st := newStore(t, db, cfg)
	mode, err := st.ClaimMode(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return log, db, st, mode
}

// during returns the queries fn sends.
func (l *queryLog) during(fn func()) []query {
	l.mu.Lock()
	l.on, l.qs = true, nil
	l.mu.Unlock()
	fn()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.on = false
	return l.qs
}

// endedSubs returns n manual subscriptions sub-00, sub-01... of users u00, u01... in
// status, their period ended an hour before now.
func endedSubs(n int, status billing.SubscriptionStatus, now time.Time) []billing.Subscription {
	subs := make([]billing.Subscription, n)
	for i := range subs {
		subs[i] = billing.Subscription{ID: fmt.Sprintf("sub-%02d", i), UserID: fmt.Sprintf("u%02d", i), PlanID: "p1",
			Status: status, BillingCycle: billing.CycleMonthly, Gateway: billing.GatewayManual,
			CurrentPeriodStart: now.AddDate(0, -1, 0), CurrentPeriodEnd: now.Add(-time.Hour),
			CreatedAt: now.AddDate(0, -1, 0), UpdatedAt: now.AddDate(0, -1, 0)}
	}
	return subs
}

// On a server that checks write conditions itself (MongoDB, and FerretDB v1 on PostgreSQL,
// which pushes field equalities down), a batch of k changes to claimed subscriptions, their
// completed effects and k notification outcomes cost no read of the documents first, and
// the k identical outcomes go as one statement: the work per record does not include a
// scan of the collection per read (each find by _id is a full table scan on FerretDB v1 on
// PostgreSQL). On FerretDB v1 on SQLite the store still reads each document by its _id (the
// only filter that backend does not scan for) and checks the condition. Either way every
// change applies exactly as asked.
func TestBatchWritesReadNothingFirst(t *testing.T) {
	log, db, st, mode := monitoredStore(t, mongostore.Config{BatchSize: 100})
	ctx := context.Background()
	const k = 30
	now := time.Date(2031, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := st.InsertSubscriptions(ctx, endedSubs(k, billing.SubscriptionStatusActive, now)); err != nil {
		t.Fatal(err)
	}
	checked := mode == mongostore.ClaimSerialized && !pushesFieldFilters(ctx, t, db.Collection("subscriptions"))

	claimed, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Token: "run-1", Now: now, LeaseUntil: now.Add(time.Minute), Limit: k,
		Filter: billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}, PeriodEndBefore: now}})
	if err != nil || len(claimed) != k {
		t.Fatalf("claimed %d of %d: %v", len(claimed), k, err)
	}
	changes := make([]billing.SubscriptionChange, k)
	done := make([]billing.EffectsDone, k)
	recs := make([]billing.NotificationRecord, k)
	for i, x := range claimed {
		ch := x
		ch.Status, ch.UpdatedAt = billing.SubscriptionStatusInactive, now
		eff := &billing.Effects{Token: "eff-" + x.ID}
		changes[i] = billing.SubscriptionChange{Read: x, Changed: ch, ClaimToken: "run-1", Effects: eff}
		done[i] = billing.EffectsDone{SubscriptionID: x.ID, Token: eff.Token}
		recs[i] = billing.NotificationRecord{Key: "expired:" + x.ID, Kind: billing.NotificationKindExpired, SubscriptionID: x.ID, UserID: x.UserID}
	}
	reserved, err := st.ReserveNotifications(ctx, recs, "send-1", now, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range reserved {
		if !ok {
			t.Fatalf("notification %d not reserved", i)
		}
		recs[i].Status, recs[i].UpdatedAt = billing.NotificationSent, now
	}

	qs := log.during(func() {
		errs, err := st.UpdateSubscriptions(ctx, changes)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range errs {
			if e != nil {
				t.Fatalf("change %d: %v", i, e)
			}
		}
		if err := st.CompleteEffects(ctx, done); err != nil {
			t.Fatal(err)
		}
		if err := st.FinishNotifications(ctx, recs, "send-1"); err != nil {
			t.Fatal(err)
		}
	})

	count := func(cmd, coll string) int {
		n := 0
		for _, q := range qs {
			if q.cmd == cmd && q.coll == coll {
				n++
			}
		}
		return n
	}
	subFinds, noteWrites := count("find", "subscriptions"), count("update", "notifications")
	t.Logf("checked=%v: %d finds on subscriptions, %d update statements on notifications", checked, subFinds, noteWrites)
	if checked {
		// Read by _id before each change and each completion, then written one by one.
		if subFinds != 2*k || noteWrites != k {
			t.Errorf("SQLite path: %d finds on subscriptions (want %d), %d notification statements (want %d)", subFinds, 2*k, noteWrites, k)
		}
	} else if subFinds != 0 || noteWrites != 1 {
		t.Errorf("%d finds on subscriptions before writing (want 0), %d notification statements for %d identical outcomes (want 1)", subFinds, noteWrites, k)
	}

	for _, x := range claimed {
		got, err := st.GetSubscription(ctx, x.ID)
		if err != nil || got.Status != billing.SubscriptionStatusInactive {
			t.Fatalf("%s: %v %v", x.ID, got.Status, err)
		}
		raw, err := db.Collection("subscriptions").FindOne(ctx, bson.D{{Key: "_id", Value: x.ID}}).Raw()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"pending_token", "pending_effects", "claim_token", "claim_until"} {
			if _, err := raw.LookupErr(f); err == nil {
				t.Errorf("%s keeps %s after CompleteEffects", x.ID, f)
			}
		}
		n, err := st.GetNotification(ctx, "expired:"+x.ID)
		if err != nil || n.Status != billing.NotificationSent {
			t.Errorf("notification of %s: %+v %v", x.ID, n, err)
		}
	}
}

// A claim of one status hands that status to the backend (FerretDB v1 on PostgreSQL pushes
// equalities down, not $in): the subscriptions that lapsed long ago, which pile up for
// ever, are not read by every claim. Proven by PostgreSQL's own plan of the claim's query.
func TestClaimPushesItsStatusDown(t *testing.T) {
	log, db := monitoredDB(t)
	st := newStore(t, db, mongostore.Config{BatchSize: 10})
	ctx := context.Background()
	now := time.Date(2031, 3, 1, 12, 0, 0, 0, time.UTC)
	sub := billing.Subscription{ID: "sub-1", UserID: "u1", PlanID: "p1", Status: billing.SubscriptionStatusActive,
		BillingCycle: billing.CycleMonthly, Gateway: billing.GatewayManual,
		CurrentPeriodStart: now.AddDate(0, -1, 0), CurrentPeriodEnd: now.Add(-time.Hour), CreatedAt: now, UpdatedAt: now}
	if err := st.InsertSubscription(ctx, &sub); err != nil {
		t.Fatal(err)
	}
	if !pushesFieldFilters(ctx, t, db.Collection("subscriptions")) {
		t.Skip("this server pushes no field filter down to its backend (FerretDB on SQLite, or MongoDB): nothing to hand over")
	}
	log.mu.Lock()
	log.on = true
	log.mu.Unlock()
	got, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Token: "run-1", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 10,
		Filter: billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}, PeriodEndBefore: now}})
	if err != nil || len(got) != 1 {
		t.Fatalf("claimed %d: %v", len(got), err)
	}
	log.mu.Lock()
	log.on = false
	qs := log.qs
	log.mu.Unlock()
	var claim *query
	for i, q := range qs {
		if q.cmd == "find" && q.coll == "subscriptions" && len(q.sort) > 0 {
			claim = &qs[i]
			break
		}
	}
	if claim == nil {
		t.Fatal("no claim query recorded")
	}
	var res struct {
		QueryPlanner bson.Raw `bson:"queryPlanner"`
	}
	cmd := bson.D{{Key: "explain", Value: bson.D{{Key: "find", Value: "subscriptions"}, {Key: "filter", Value: claim.filter},
		{Key: "sort", Value: claim.sort}}}, {Key: "verbosity", Value: "queryPlanner"}}
	if err := db.RunCommand(ctx, cmd).Decode(&res); err != nil {
		t.Fatal(err)
	}
	if plan := res.QueryPlanner.String(); !strings.Contains(plan, "'status'") {
		t.Errorf("the claim's filter %v reaches PostgreSQL without its status: %s", claim.filter, plan)
	}
}

// The completions of one batch of records held by one claim cost one statement on a server
// that checks write conditions itself (MongoDB, FerretDB v1 on PostgreSQL), and that
// statement hands the claim_token equality to PostgreSQL: the batch costs one scan of the
// table, not one per record (each UpdateOne by _id is a full table scan on FerretDB v1 on
// PostgreSQL), so a sweep's cost per record does not grow with the collection through
// CompleteEffects. A record of the batch taken over by another claim, and one whose effects
// were replaced, do not change what is completed: the first is completed all the same, the
// second keeps its effects. On FerretDB v1 on SQLite each completion is still one write by
// _id.
func TestCompleteEffectsOneStatementPerClaim(t *testing.T) {
	log, db, st, mode := monitoredStore(t, mongostore.Config{BatchSize: 100})
	ctx := context.Background()
	const k = 30
	now := time.Date(2031, 3, 1, 12, 0, 0, 0, time.UTC)
	subs := endedSubs(k+2, billing.SubscriptionStatusInactive, now)
	for i := range subs {
		subs[i].Pending = &billing.Effects{Token: fmt.Sprintf("eff-%02d", i)}
	}
	if err := st.InsertSubscriptions(ctx, subs); err != nil {
		t.Fatal(err)
	}
	claim := func(token string, at time.Time, limit int) []billing.Subscription {
		t.Helper()
		got, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Token: token, Now: at, LeaseUntil: at.Add(time.Minute), Limit: limit, Pending: true})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := claim("run-1", now, k); len(got) != k {
		t.Fatalf("claimed %d of %d", len(got), k)
	}
	grouped := mode != mongostore.ClaimSerialized || pushesFieldFilters(ctx, t, db.Collection("subscriptions"))
	done := make([]billing.EffectsDone, k)
	for i := range done {
		done[i] = billing.EffectsDone{SubscriptionID: subs[i].ID, Token: subs[i].Pending.Token, ClaimToken: "run-1"}
	}

	qs := log.during(func() {
		if err := st.CompleteEffects(ctx, done); err != nil {
			t.Fatal(err)
		}
	})
	var writes []query
	for _, q := range qs {
		if q.cmd == "update" && q.coll == "subscriptions" {
			writes = append(writes, q)
		}
	}
	t.Logf("grouped=%v: %d update statements on subscriptions for %d completions", grouped, len(writes), k)
	switch {
	case !grouped && len(writes) != k:
		t.Errorf("SQLite path: %d update statements, want one per completion (%d)", len(writes), k)
	case grouped && len(writes) != 1:
		t.Errorf("%d update statements for %d completions held by one claim, want 1", len(writes), k)
	case grouped && mode == mongostore.ClaimSerialized:
		var res struct {
			QueryPlanner bson.Raw `bson:"queryPlanner"`
		}
		cmd := bson.D{{Key: "explain", Value: bson.D{{Key: "find", Value: "subscriptions"}, {Key: "filter", Value: writes[0].filter}}},
			{Key: "verbosity", Value: "queryPlanner"}}
		if err := db.RunCommand(ctx, cmd).Decode(&res); err != nil {
			t.Fatal(err)
		}
		if plan := res.QueryPlanner.String(); !strings.Contains(plan, "'claim_token'") {
			t.Errorf("the completion's filter %v reaches PostgreSQL without its claim_token: %s", writes[0].filter, plan)
		}
	}
	for i := range k {
		x, err := st.GetSubscription(ctx, subs[i].ID)
		if err != nil || x.Pending != nil {
			t.Fatalf("%s after CompleteEffects: pending %+v, %v", subs[i].ID, x.Pending, err)
		}
	}

	// The last two: one taken over by run-2 once run-1's lease ended, one completed with a
	// token it no longer carries.
	if got := claim("run-1", now, 2); len(got) != 2 {
		t.Fatalf("claimed %d of 2", len(got))
	}
	later := now.Add(2 * time.Minute)
	if got := claim("run-2", later, 1); len(got) != 1 || got[0].ID != subs[k].ID {
		t.Fatalf("run-2 took over %v, want %s", got, subs[k].ID)
	}
	err := st.CompleteEffects(ctx, []billing.EffectsDone{
		{SubscriptionID: subs[k].ID, Token: subs[k].Pending.Token, ClaimToken: "run-1"},
		{SubscriptionID: subs[k+1].ID, Token: "replaced", ClaimToken: "run-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if x, err := st.GetSubscription(ctx, subs[k].ID); err != nil || x.Pending != nil {
		t.Errorf("%s, held by another claim: pending %+v after CompleteEffects (%v), want completed", subs[k].ID, x.Pending, err)
	}
	if x, err := st.GetSubscription(ctx, subs[k+1].ID); err != nil || x.Pending == nil || x.Pending.Token != subs[k+1].Pending.Token {
		t.Errorf("%s, completed with a token it does not carry: pending %+v (%v), want its own effects kept", subs[k+1].ID, x.Pending, err)
	}
}

// Taking access away (the plan reference cleared) reads no user first on a server that
// checks write conditions itself (MongoDB, FerretDB v1 on PostgreSQL, where each find by
// _id is a full table scan): the condition already holds the plan as read, in whichever
// type the host stored it, and a cleared reference is stored as null whatever its type.
// Identical access writes to users read in different states go as one statement.
// The plan becomes null for an ObjectID and a string reference alike, the host's other
// fields are kept, and a user the host changed since the read is a conflict left as the
// host wrote it. On FerretDB v1 on SQLite each user is still read by _id first.
func TestRevokeAccessReadsNoUserFirst(t *testing.T) {
	log, db, st, mode := monitoredStore(t, mongostore.Config{})
	ctx := context.Background()
	now := time.Date(2031, 3, 1, 12, 0, 0, 0, time.UTC)
	planOID := bson.NewObjectID()
	users := db.Collection("users")
	var docs []any
	for i, plan := range []any{planOID, planOID.Hex(), "p1", "p1"} {
		docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("u%d", i)}, {Key: "email", Value: "x@example.com"},
			{Key: "plan_id", Value: plan}, {Key: "subscription_id", Value: fmt.Sprintf("s%d", i)},
			{Key: "subscription_status", Value: "active"}, {Key: "host_note", Value: "kept"}})
	}
	if _, err := users.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	read, err := st.ListUsers(ctx, []string{"u0", "u1", "u2", "u3"})
	if err != nil || len(read) != 4 {
		t.Fatalf("ListUsers: %d %v", len(read), err)
	}
	slices.SortFunc(read, func(a, b billing.User) int { return strings.Compare(a.ID, b.ID) })
	// The host moves u3 to another plan after the read.
	if _, err := users.UpdateOne(ctx, bson.D{{Key: "_id", Value: "u3"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "plan_id", Value: "p2"}}}}); err != nil {
		t.Fatal(err)
	}
	changes := make([]billing.UserAccessChange, len(read))
	for i, u := range read {
		next := u
		next.PlanID, next.Status, next.UpdatedAt = "", billing.SubscriptionStatusInactive, now
		changes[i] = billing.UserAccessChange{Read: u, Changed: next}
	}
	checked := mode == mongostore.ClaimSerialized && !pushesFieldFilters(ctx, t, users)

	var errs []error
	qs := log.during(func() {
		if errs, err = st.UpdateUsersAccess(ctx, changes[:3]); err != nil {
			t.Fatal(err)
		}
	})
	for i, e := range errs {
		if e != nil {
			t.Errorf("change of %s: %v", read[i].ID, e)
		}
	}
	finds, writes := 0, 0
	for _, q := range qs {
		switch {
		case q.cmd == "find" && q.coll == "users":
			finds++
		case q.cmd == "update" && q.coll == "users":
			writes++
		}
	}
	t.Logf("checked=%v: %d finds, %d update statements on users", checked, finds, writes)
	switch {
	case !checked && finds != 0:
		t.Errorf("%d finds on users for 3 access changes clearing the plan, want none", finds)
	case !checked && writes != 1:
		t.Errorf("%d update statements on users for 3 identical access changes, want 1", writes)
	case checked && writes != 3:
		t.Errorf("SQLite path: %d update statements on users, want one per change (3)", writes)
	}
	if errs, err := st.UpdateUsersAccess(ctx, changes[3:]); err != nil || !errors.Is(errs[0], billing.ErrConflict) {
		t.Errorf("change of u3, whose plan the host changed: %v %v, want a conflict", errs, err)
	}
	for i := range read {
		var doc bson.M
		if err := users.FindOne(ctx, bson.D{{Key: "_id", Value: read[i].ID}}).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		plan, hasPlan := doc["plan_id"]
		switch {
		case doc["host_note"] != "kept":
			t.Errorf("%s lost the host's field: %v", read[i].ID, doc)
		case i < 3 && (!hasPlan || plan != nil || doc["subscription_status"] != "inactive"):
			t.Errorf("%s after the revoke: %v, want plan_id null and status inactive", read[i].ID, doc)
		case i == 3 && (plan != "p2" || doc["subscription_status"] != "active"):
			t.Errorf("%s, changed by the host, was written: %v", read[i].ID, doc)
		}
	}
}
