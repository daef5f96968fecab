package mongostore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

// kinds lists the kinds of ns in order.
func kinds(ns []billing.Notification) []billing.NotificationKind {
	out := make([]billing.NotificationKind, len(ns))
	for i, n := range ns {
		out[i] = n.Kind
	}
	return out
}

var seedNow = time.Date(2031, 5, 10, 9, 0, 0, 0, time.UTC)

// seedDocs writes a user, a plan and subscriptions the way the seed's Python app stores
// them: ObjectId _ids, references as strings, flag_del and expiration_warning_sent false, no
// version or renewkit fields, plus a host field renewkit does not know.
func seedDocs(ctx context.Context, t *testing.T, db *mongo.Database, subs ...bson.M) (user, plan bson.ObjectID) {
	t.Helper()
	user, plan = bson.NewObjectID(), bson.NewObjectID()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.Collection("plans").InsertOne(ctx, bson.M{
		"_id": plan, "name": "Pro", "billing_cycle": "monthly", "price": int64(4990), "currency": "BRL",
		"active": true, "created_at": seedNow.AddDate(-1, 0, 0), "flag_del": false,
	}))
	must(db.Collection("users").InsertOne(ctx, bson.M{
		"_id": user, "email": "ana@example.com", "name": "Ana", "password_hash": "x", "plan_id": plan.Hex(),
		"created_at": seedNow.AddDate(-1, 0, 0), "flag_del": false,
	}))
	docs := make([]any, len(subs))
	for i, s := range subs {
		d := bson.M{
			"_id": bson.NewObjectID(), "user_id": user.Hex(), "plan_id": plan.Hex(), "status": "active",
			"billing_cycle": "monthly", "gateway": "mercadopago", "gateway_subscription_id": nil,
			"expiration_warning_sent": false, "created_at": seedNow.AddDate(0, -2, 0), "updated_at": seedNow.AddDate(0, -1, 0),
			"flag_del": false, "host_note": "kept",
		}
		for k, v := range s {
			d[k] = v
		}
		docs[i] = d
	}
	must(db.Collection("subscriptions").InsertMany(ctx, docs))
	return user, plan
}

func rawSub(ctx context.Context, t *testing.T, db *mongo.Database, id any) bson.M {
	t.Helper()
	var m bson.M
	if err := db.Collection("subscriptions").FindOne(ctx, bson.M{"_id": id}).Decode(&m); err != nil {
		t.Fatalf("reading subscription %v: %v", id, err)
	}
	return m
}

func TestSeedDocumentsProcessedByJobs(t *testing.T) {
	ctx, db, st := freshStore(t, testConfig, 2*time.Minute)
	expiring, expired := bson.NewObjectID(), bson.NewObjectID()
	user, _ := seedDocs(ctx, t, db,
		bson.M{"_id": expiring, "current_period_start": seedNow.AddDate(0, -1, 2), "current_period_end": seedNow.Add(2 * 24 * time.Hour)},
		bson.M{"_id": expired, "current_period_start": seedNow.AddDate(0, -1, -1), "current_period_end": seedNow.Add(-24 * time.Hour)},
	)
	notes := testkit.NewNotifier()
	svc, err := billing.NewService(st, notes, billing.Config{Clock: testkit.NewClock(seedNow), BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}

	got, err := st.GetSubscription(ctx, expiring.Hex())
	if err != nil {
		t.Fatalf("GetSubscription(seed document): %v", err)
	}
	if got.Version != 0 || got.ExpirationWarningDays != 0 || got.UserID != user.Hex() || got.GatewaySubscriptionID != "" ||
		!got.CurrentPeriodEnd.Equal(seedNow.Add(48*time.Hour)) {
		t.Fatalf("seed document read as %+v", got)
	}

	warn, err := svc.CheckExpiringSubscriptions(ctx)
	if err != nil || !warn.Success || warn.TotalFound != 1 || warn.NotificationsSent != 1 {
		t.Fatalf("CheckExpiringSubscriptions = %+v, %v; want one warning", warn, err)
	}
	doc := rawSub(ctx, t, db, expiring)
	if doc["expiration_warning_sent"] != true || doc["version"] != int64(1) || doc["host_note"] != "kept" {
		t.Fatalf("warned document: %v", doc)
	}
	if _, ok := doc["user_id"].(string); !ok {
		t.Fatalf("user_id changed type: %T", doc["user_id"])
	}
	again, err := svc.CheckExpiringSubscriptions(ctx)
	if err != nil || again.TotalFound != 0 {
		t.Fatalf("second CheckExpiringSubscriptions = %+v, %v; want nothing found", again, err)
	}

	exp, err := svc.ProcessExpiredSubscriptions(ctx)
	if err != nil || !exp.Success || exp.TotalFound != 1 || exp.Processed != 1 {
		t.Fatalf("ProcessExpiredSubscriptions = %+v, %v; want one expired", exp, err)
	}
	doc = rawSub(ctx, t, db, expired)
	if doc["status"] != "inactive" || doc["host_note"] != "kept" {
		t.Fatalf("expired document: %v", doc)
	}
	var u bson.M
	if err := db.Collection("users").FindOne(ctx, bson.M{"_id": user}).Decode(&u); err != nil {
		t.Fatal(err)
	}
	if u["password_hash"] != "x" {
		t.Fatalf("user's own fields changed: %v", u)
	}
	if k := kinds(notes.Sent()); len(k) != 2 || k[0] != billing.NotificationKindExpiring || k[1] != billing.NotificationKindExpired {
		t.Fatalf("notifications %v, want expiring then expired", k)
	}
}

// A malformed document fails alone: the job result names it and the others are processed.
func TestMalformedDocumentFailsAlone(t *testing.T) {
	ctx, db, st := freshStore(t, testConfig, 2*time.Minute)
	bad, endAsString := bson.NewObjectID(), bson.NewObjectID()
	past := func(days int) bson.M {
		return bson.M{"current_period_start": seedNow.AddDate(0, -1, -days), "current_period_end": seedNow.AddDate(0, 0, -days)}
	}
	with := func(m bson.M, k string, v any) bson.M { m[k] = v; return m }
	seedDocs(ctx, t, db,
		past(1), past(2),
		with(with(past(3), "_id", bad), "created_at", "2031-03-10"), // wrong type
		past(4),
		// A period end stored as a string is never selected by the date range (BSON compares
		// within one type), so it is not a failure of the sweep: it is left alone.
		with(with(past(5), "_id", endAsString), "current_period_end", "2031-05-05"),
	)
	svc, err := billing.NewService(st, testkit.NewNotifier(), billing.Config{Clock: testkit.NewClock(seedNow), BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.ProcessExpiredSubscriptions(ctx)
	if err != nil {
		t.Fatalf("ProcessExpiredSubscriptions: %v (result %+v)", err, res)
	}
	if res.TotalFound != 4 || res.Processed != 3 || res.Failed != 1 {
		t.Fatalf("result %+v, want 4 found, 3 processed, 1 failed", res)
	}
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0], bad.Hex()) || !strings.Contains(res.Errors[0], "malformed") ||
		!strings.Contains(res.Errors[0], "created_at") {
		t.Fatalf("result errors %q, want one naming %s, malformed and the field", res.Errors, bad.Hex())
	}
	if doc := rawSub(ctx, t, db, bad); doc["status"] != "active" || doc["claim_token"] != nil {
		t.Fatalf("malformed document changed or left claimed: %v", doc)
	}
	if doc := rawSub(ctx, t, db, endAsString); doc["status"] != "active" {
		t.Fatalf("document with a string period end changed: %v", doc)
	}
	// The next run meets the malformed document again (it is not silently dropped).
	res, err = svc.ProcessExpiredSubscriptions(ctx)
	if err != nil || res.TotalFound != 1 || res.Failed != 1 {
		t.Fatalf("second run %+v, %v; want the malformed document reported again", res, err)
	}
}
