package mongostore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/store/mongostore"
)

// seedSubs writes n subscriptions the way the seed's app does (ObjectId _ids, a user_id
// ObjectId reference, a string plan_id, a host field) and returns their billing ids.
func seedSubs(ctx context.Context, t *testing.T, db *mongo.Database, n int) []string {
	t.Helper()
	user := bson.NewObjectID()
	docs := make([]any, n)
	ids := make([]string, n)
	for i := range docs {
		id := bson.NewObjectID()
		ids[i] = id.Hex()
		docs[i] = bson.M{
			"_id": id, "user_id": user, "plan_id": "p1", "status": "active", "billing_cycle": "monthly",
			"current_period_start": seedNow.AddDate(0, -1, 0), "current_period_end": seedNow.Add(time.Duration(i+1) * time.Minute),
			"gateway": "manual", "expiration_warning_sent": false, "created_at": seedNow.AddDate(0, -2, 0),
			"updated_at": seedNow.AddDate(0, -1, 0), "flag_del": false, "host_note": fmt.Sprint("kept ", i),
		}
	}
	if _, err := db.Collection("subscriptions").InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	return ids
}

func oidOf(t *testing.T, hex string) bson.ObjectID {
	t.Helper()
	oid, err := bson.ObjectIDFromHex(hex)
	if err != nil {
		t.Fatal(err)
	}
	return oid
}

func readSubs(ctx context.Context, t *testing.T, st *mongostore.Store, ids []string) []billing.Subscription {
	t.Helper()
	out := make([]billing.Subscription, len(ids))
	for i, id := range ids {
		x, err := st.GetSubscription(ctx, id)
		if err != nil {
			t.Fatalf("GetSubscription(%s): %v", id, err)
		}
		out[i] = x
	}
	return out
}

// A batch larger than one bulkWrite (48 operations) with records changed,
// deleted and soft-deleted by the host between read and write: one result per change, only
// the changed fields written, the host's fields and reference types kept.
func TestUpdateSubscriptionsLargeBatch(t *testing.T) {
	ctx, db, st := freshStore(t, mongostore.Config{}, 5*time.Minute) // default BatchSize 200: chunks of 99
	const n = 250
	ids := seedSubs(ctx, t, db, n)
	read := readSubs(ctx, t, st, ids)
	c := db.Collection("subscriptions")
	want := make([]error, n)
	for i := 0; i < n; i++ {
		oid, _ := bson.ObjectIDFromHex(ids[i])
		var err error
		switch {
		case i%50 == 7: // the host cancels it
			_, err = c.UpdateOne(ctx, bson.M{"_id": oid}, bson.M{"$set": bson.M{"status": "cancelled"}})
			want[i] = billing.ErrConflict
		case i%50 == 13: // the host soft-deletes it
			_, err = c.UpdateOne(ctx, bson.M{"_id": oid}, bson.M{"$set": bson.M{"flag_del": true}})
			want[i] = billing.ErrNotFound
		case i%50 == 21: // the host deletes it
			_, err = c.DeleteOne(ctx, bson.M{"_id": oid})
			want[i] = billing.ErrNotFound
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	changes := make([]billing.SubscriptionChange, n)
	for i, r := range read {
		ch := r
		ch.ExpirationWarningSent, ch.ExpirationWarningDays, ch.UpdatedAt = true, 3, seedNow
		changes[i] = billing.SubscriptionChange{Read: r, Changed: ch}
		if i%2 == 0 {
			changes[i].Effects = &billing.Effects{Token: "run-1", CreatedAt: seedNow,
				Audit: []billing.AuditEntry{{ID: "a-" + r.ID, Action: "warned", Details: map[string]any{"days": 3, "ratio": 0.5}}}}
		}
	}
	start := time.Now()
	errs, err := st.UpdateSubscriptions(ctx, changes)
	t.Logf("UpdateSubscriptions(%d changes) took %v", n, time.Since(start))
	if err != nil || len(errs) != n {
		t.Fatalf("UpdateSubscriptions: %d results, %v", len(errs), err)
	}
	for i := range errs {
		if want[i] == nil && errs[i] != nil || want[i] != nil && !errors.Is(errs[i], want[i]) {
			t.Fatalf("change %d: got %v, want %v", i, errs[i], want[i])
		}
	}
	for i, id := range ids {
		if want[i] != nil {
			continue
		}
		doc := rawSub(ctx, t, db, oidOf(t, id))
		if _, ok := doc["user_id"].(bson.ObjectID); !ok || doc["host_note"] != fmt.Sprint("kept ", i) || doc["expiration_warning_sent"] != true {
			t.Fatalf("document %s after the warning: %v", id, doc)
		}
		x, err := st.GetSubscription(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if x.Version != 1 || !x.ExpirationWarningSent || x.ExpirationWarningDays != 3 {
			t.Fatalf("subscription %s: %+v", id, x)
		}
		if i%2 == 0 {
			if _, ok := doc["pending_effects"].(string); !ok || doc["pending_token"] != "run-1" {
				t.Fatalf("document %s: pending fields %v, %v", id, doc["pending_token"], doc["pending_effects"])
			}
			if x.Pending == nil || x.Pending.Audit[0].Details["days"] != 3 || x.Pending.Audit[0].Details["ratio"] != 0.5 {
				t.Fatalf("subscription %s pending effects %+v", id, x.Pending)
			}
		} else if x.Pending != nil {
			t.Fatalf("subscription %s has pending effects %+v", id, x.Pending)
		}
	}
	done := make([]billing.EffectsDone, 0, n)
	for i, id := range ids {
		if i%2 == 0 {
			done = append(done, billing.EffectsDone{SubscriptionID: id, Token: "run-1"})
		}
	}
	if err := st.CompleteEffects(ctx, done); err != nil {
		t.Fatal(err)
	}
	left, err := c.CountDocuments(ctx, bson.M{"pending_token": bson.M{"$exists": true}})
	if err != nil || left != 0 {
		t.Fatalf("%d documents with pending effects after CompleteEffects (%v)", left, err)
	}
}

// Concurrent writers of one document through separate Stores (replicas): a warning batch,
// a batch changing the plan, claims and lease extensions. Each change writes its own fields,
// so all apply, and none undoes another (FerretDB v1 rewrites whole documents without
// re-checking filters; in ClaimSerialized mode the writes share one mutex).
func TestConcurrentWritersKeepEachOthersFields(t *testing.T) {
	ctx, db, seed := freshStore(t, testConfig, 5*time.Minute)
	const n = 60
	ids := seedSubs(ctx, t, db, n)
	read := readSubs(ctx, t, seed, ids)
	warn := make([]billing.SubscriptionChange, n)
	plan := make([]billing.SubscriptionChange, n)
	for i, r := range read {
		w := r
		w.ExpirationWarningSent = true
		warn[i] = billing.SubscriptionChange{Read: r, Changed: w}
		p := r
		p.PlanID = "p2"
		plan[i] = billing.SubscriptionChange{Read: r, Changed: p}
	}
	var wg sync.WaitGroup
	fail := make(chan error, 8)
	run := func(f func(st *mongostore.Store) error) {
		st := newStore(t, newClient(t).Database(db.Name()), testConfig)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(st); err != nil {
				fail <- err
			}
		}()
	}
	batch := func(changes []billing.SubscriptionChange) func(*mongostore.Store) error {
		return func(st *mongostore.Store) error {
			for start := 0; start < len(changes); start += 10 {
				errs, err := st.UpdateSubscriptions(ctx, changes[start:min(start+10, len(changes))])
				if err == nil {
					err = errors.Join(errs...)
				}
				if err != nil {
					return err
				}
			}
			return nil
		}
	}
	run(batch(warn))
	run(batch(plan))
	run(func(st *mongostore.Store) error {
		for range 5 {
			if _, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Token: "C", Now: seedNow, LeaseUntil: seedNow.Add(time.Hour), Limit: n}); err != nil {
				return err
			}
			if err := st.ExtendClaims(ctx, "C", seedNow.Add(2*time.Hour)); err != nil {
				return err
			}
		}
		return nil
	})
	wg.Wait()
	close(fail)
	for err := range fail {
		t.Fatal(err)
	}
	for _, x := range readSubs(ctx, t, seed, ids) {
		doc := rawSub(ctx, t, db, oidOf(t, x.ID))
		if !x.ExpirationWarningSent || x.PlanID != "p2" || x.Version != 2 || doc["claim_token"] != "C" {
			t.Fatalf("subscription %s lost a concurrent write: warned %v, plan %s, version %d, claim %v",
				x.ID, x.ExpirationWarningSent, x.PlanID, x.Version, doc["claim_token"])
		}
	}
}

// CancelStalePayments decodes each candidate before it changes it: an unreadable payment is
// reported and left pending.
func TestCancelStalePaymentsLeavesUnreadable(t *testing.T) {
	ctx, db, st := freshStore(t, testConfig, time.Minute)
	old := seedNow.AddDate(0, 0, -10)
	for i := range 3 {
		p := billing.Payment{ID: fmt.Sprint("pay", i), UserID: "u1", PlanID: "p1", Amount: billing.Money{Amount: 4990, Currency: "BRL"},
			Status: billing.PaymentStatusPending, Gateway: billing.GatewayManual, CreatedAt: old, UpdatedAt: old}
		if err := st.InsertPayment(ctx, &p); err != nil {
			t.Fatal(err)
		}
	}
	bad := bson.NewObjectID()
	if _, err := db.Collection("payments").InsertOne(ctx, bson.M{
		"_id": bad, "user_id": "u1", "status": "pending", "amount": "49,90", "created_at": old,
	}); err != nil {
		t.Fatal(err)
	}
	got, err := st.CancelStalePayments(ctx, seedNow.AddDate(0, 0, -7), seedNow, "stale", 0, nil)
	var re *billing.RecordError
	if len(got) != 3 || !errors.As(err, &re) || re.ID != bad.Hex() || !errors.Is(err, billing.ErrMalformedRecord) {
		t.Fatalf("CancelStalePayments = %d payments, %v; want 3 and a RecordError naming %s", len(got), err, bad.Hex())
	}
	var doc bson.M
	if err := db.Collection("payments").FindOne(ctx, bson.M{"_id": bad}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc["status"] != "pending" || doc["sweep_token"] != nil {
		t.Fatalf("unreadable payment changed: %v", doc)
	}
}

// Reservations of more keys than one bulkWrite carries, some stored already.
func TestReserveNotificationsLargeBatch(t *testing.T) {
	ctx, _, st := freshStore(t, mongostore.Config{}, time.Minute)
	const n = 230
	recs := make([]billing.NotificationRecord, n)
	for i := range recs {
		recs[i] = billing.NotificationRecord{Key: fmt.Sprint("k", i), Kind: billing.NotificationKindExpiring, SubscriptionID: fmt.Sprint("s", i)}
	}
	// A holds every third key; B holds every fifth other one with a lease that will have run out.
	var mine, lapsed []billing.NotificationRecord
	for i, r := range recs {
		if i%3 == 0 {
			mine = append(mine, r)
		} else if i%5 == 0 {
			lapsed = append(lapsed, r)
		}
	}
	if ok, err := st.ReserveNotifications(ctx, mine, "A", seedNow, seedNow.Add(time.Hour)); err != nil || len(ok) != len(mine) {
		t.Fatal(ok, err)
	}
	if _, err := st.ReserveNotifications(ctx, lapsed, "B", seedNow, seedNow.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ok, err := st.ReserveNotifications(ctx, recs, "B", seedNow.Add(time.Minute), seedNow.Add(2*time.Hour))
	t.Logf("ReserveNotifications(%d) took %v", n, time.Since(start))
	if err != nil || len(ok) != n {
		t.Fatalf("ReserveNotifications: %d results, %v", len(ok), err)
	}
	for i, got := range ok {
		if want := i%3 != 0; got != want {
			t.Fatalf("key k%d reserved by B: %v, want %v", i, got, want)
		}
	}
	finish := make([]billing.NotificationRecord, 0, n)
	for i, r := range recs {
		r.Status, r.UpdatedAt = billing.NotificationSent, seedNow
		if i%2 == 0 {
			r.Status = "" // release
		}
		finish = append(finish, r)
	}
	if err := st.FinishNotifications(ctx, finish, "B"); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		got, err := st.GetNotification(ctx, r.Key)
		switch {
		case i%3 == 0:
			if err != nil || got.Status != billing.NotificationSending || got.Token != "A" {
				t.Fatalf("A's reservation of %s: %+v, %v", r.Key, got, err)
			}
		case i%2 == 0:
			if !errors.Is(err, billing.ErrNotFound) {
				t.Fatalf("released %s: %+v, %v", r.Key, got, err)
			}
		default:
			if err != nil || got.Status != billing.NotificationSent || got.Token != "" || !got.UpdatedAt.Equal(seedNow) {
				t.Fatalf("sent %s: %+v, %v", r.Key, got, err)
			}
		}
	}
}

// One write of a batch fails on the server (a host's unique index) while the others of
// the same bulkWrite apply: only that change is reported failed, the others are reported
// applied and are stored, and the failing user is unchanged. On FerretDB v1 on PostgreSQL
// and on MongoDB the changes with the same update go as one updateMany, whose write error
// names the whole group.
func TestUpdateUsersAccessWriteErrorFailsOnlyItsChange(t *testing.T) {
	ctx := context.Background()
	db := freshDB(t, client(t))
	st := newStore(t, db, testConfig)
	users := db.Collection("users")
	// The host's index: one user per (email, subscription_status). A user "x" already holds
	// ("u2@example.com", "inactive"), so revoking u2's access collides with it.
	if _, err := users.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "email", Value: 1}, {Key: "subscription_status", Value: 1}},
		Options: options.Index().SetUnique(true).SetName("host_email_status"),
	}); err != nil {
		t.Fatal(err)
	}
	ids := []string{"u1", "u2", "u3", "u4"}
	docs := []any{bson.D{{Key: "_id", Value: "x"}, {Key: "email", Value: "u2@example.com"}, {Key: "subscription_status", Value: "inactive"}, {Key: "flag_del", Value: false}}}
	for _, id := range ids {
		docs = append(docs, bson.D{{Key: "_id", Value: id}, {Key: "email", Value: id + "@example.com"}, {Key: "name", Value: "U"},
			{Key: "plan_id", Value: "p1"}, {Key: "subscription_id", Value: "s-" + id}, {Key: "subscription_status", Value: "active"},
			{Key: "access_until", Value: seedNow}, {Key: "created_at", Value: seedNow}, {Key: "flag_del", Value: false}})
	}
	if _, err := users.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	changes := make([]billing.UserAccessChange, len(ids))
	for i, id := range ids {
		u, err := st.GetUser(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		to := u
		to.PlanID, to.SubscriptionID, to.Status = "", "", billing.SubscriptionStatusInactive
		changes[i] = billing.UserAccessChange{Read: u, Changed: to}
	}
	errs, err := st.UpdateUsersAccess(ctx, changes)
	if err != nil {
		t.Fatalf("UpdateUsersAccess: %v", err)
	}
	for i, id := range ids {
		u, gerr := st.GetUser(ctx, id)
		if gerr != nil {
			t.Fatal(gerr)
		}
		if id == "u2" {
			if errs[i] == nil {
				t.Errorf("u2 (duplicate key) reported applied")
			}
			if u.PlanID != "p1" || u.Status != billing.SubscriptionStatusActive {
				t.Errorf("u2 changed though its write failed: %+v", u)
			}
			continue
		}
		if errs[i] != nil {
			t.Errorf("%s reported %v, want applied: only u2's write failed", id, errs[i])
		}
		if u.PlanID != "" || u.Status != billing.SubscriptionStatusInactive {
			t.Errorf("%s not revoked in the database: %+v", id, u)
		}
	}
}
