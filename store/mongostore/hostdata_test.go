package mongostore_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/notify"
	"github.com/renewkit/renewkit/store/mongostore"
)

// hostNow is the clock of the host-data test: whole seconds, as the original app's dates
// read back from BSON (no milliseconds).
var hostNow = time.Date(2031, 7, 15, 12, 0, 0, 0, time.UTC)

// hostDB is a database as the original app (Python, Motor) leaves it: ObjectId _ids and
// mostly ObjectId references, some string references (its subscriptions are inserted with
// str(user_id)), prices and amounts as floats of reais with no currency, null optional
// references, fields of the app's own that renewkit does not know, and missing optional
// fields.
type hostDB struct {
	planFloat, planWhole                  bson.ObjectID
	ana, bia, caio, duda                  bson.ObjectID // users
	warnSub, expireSub, keepSub, otherSub bson.ObjectID
	dudaSub, eva, evaOld, evaNew          bson.ObjectID
	session, stalePayment, pendingPayment bson.ObjectID
}

func writeHostDB(ctx context.Context, t *testing.T, db *mongo.Database) hostDB {
	t.Helper()
	h := hostDB{}
	for _, p := range []*bson.ObjectID{&h.planFloat, &h.planWhole, &h.ana, &h.bia, &h.caio, &h.duda,
		&h.warnSub, &h.expireSub, &h.keepSub, &h.otherSub, &h.dudaSub, &h.eva, &h.evaOld, &h.evaNew, &h.session, &h.stalePayment, &h.pendingPayment} {
		*p = bson.NewObjectID()
	}
	day := 24 * time.Hour
	insert := func(coll string, docs ...bson.D) {
		t.Helper()
		for _, d := range docs {
			if _, err := db.Collection(coll).InsertOne(ctx, d); err != nil {
				t.Fatalf("insert into %s: %v", coll, err)
			}
		}
	}
	insert("plans",
		bson.D{{Key: "_id", Value: h.planFloat}, {Key: "name", Value: "Pro"}, {Key: "price", Value: 49.9},
			{Key: "billing_cycle", Value: "monthly"}, {Key: "features", Value: bson.A{"api", "export"}},
			{Key: "active", Value: true}, {Key: "created_at", Value: hostNow.AddDate(-2, 0, 0)}, {Key: "flag_del", Value: false}},
		bson.D{{Key: "_id", Value: h.planWhole}, {Key: "name", Value: "Basic"}, {Key: "price", Value: 29.0},
			{Key: "billing_cycle", Value: "monthly"}, {Key: "active", Value: true}, {Key: "flag_del", Value: false}},
	)
	insert("users",
		// Ana: ObjectId references, a live subscription besides the one being warned.
		bson.D{{Key: "_id", Value: h.ana}, {Key: "email", Value: "ana@example.com"}, {Key: "name", Value: "Ana"},
			{Key: "password_hash", Value: "pbkdf2$x"}, {Key: "roles", Value: bson.A{"owner"}},
			{Key: "plan_id", Value: h.planFloat}, {Key: "subscription_id", Value: h.keepSub},
			{Key: "profile", Value: bson.D{{Key: "company", Value: "Ana Ltda"}, {Key: "seats", Value: int32(3)}}},
			{Key: "created_at", Value: hostNow.AddDate(-1, 0, 0)}, {Key: "flag_del", Value: false}},
		// Bia: a string plan reference (the seed's schema: plan_id, no subscription_id).
		bson.D{{Key: "_id", Value: h.bia}, {Key: "email", Value: "bia@example.com"}, {Key: "name", Value: "Bia"},
			{Key: "password_hash", Value: "pbkdf2$y"}, {Key: "plan_id", Value: h.planFloat.Hex()},
			{Key: "created_at", Value: hostNow.AddDate(-1, 0, 0)}, {Key: "flag_del", Value: false}},
		// Duda: ObjectId references to her only subscription, which has lapsed.
		bson.D{{Key: "_id", Value: h.duda}, {Key: "email", Value: "duda@example.com"}, {Key: "name", Value: "Duda"},
			{Key: "password_hash", Value: "pbkdf2$w"}, {Key: "plan_id", Value: h.planWhole}, {Key: "subscription_id", Value: h.dudaSub},
			{Key: "created_at", Value: hostNow.AddDate(-1, 0, 0)}, {Key: "flag_del", Value: false}},
		// Eva: ObjectId references to a lapsed subscription, and a live one on another plan.
		bson.D{{Key: "_id", Value: h.eva}, {Key: "email", Value: "eva@example.com"}, {Key: "name", Value: "Eva"},
			{Key: "password_hash", Value: "pbkdf2$v"}, {Key: "plan_id", Value: h.planFloat}, {Key: "subscription_id", Value: h.evaOld},
			{Key: "created_at", Value: hostNow.AddDate(-1, 0, 0)}, {Key: "flag_del", Value: false}},
		// Caio: no plan yet (null), about to pay.
		bson.D{{Key: "_id", Value: h.caio}, {Key: "email", Value: "caio@example.com"}, {Key: "name", Value: "Caio"},
			{Key: "password_hash", Value: "pbkdf2$z"}, {Key: "plan_id", Value: nil}, {Key: "subscription_id", Value: nil},
			{Key: "created_at", Value: hostNow.AddDate(0, -1, 0)}, {Key: "flag_del", Value: false}},
	)
	sub := func(id, user bson.ObjectID, userRef, planRef any, end time.Time) bson.D {
		return bson.D{{Key: "_id", Value: id}, {Key: "user_id", Value: userRef}, {Key: "plan_id", Value: planRef},
			{Key: "status", Value: "active"}, {Key: "billing_cycle", Value: "monthly"},
			{Key: "current_period_start", Value: end.AddDate(0, -1, 0)}, {Key: "current_period_end", Value: end},
			{Key: "gateway", Value: "mercadopago"}, {Key: "gateway_subscription_id", Value: nil},
			{Key: "expiration_warning_sent", Value: false}, {Key: "coupon", Value: bson.D{{Key: "code", Value: "WELCOME"}}},
			{Key: "created_at", Value: hostNow.AddDate(0, -3, 0)}, {Key: "flag_del", Value: false}}
	}
	insert("subscriptions",
		sub(h.warnSub, h.ana, h.ana, h.planFloat, hostNow.Add(2*day)),
		sub(h.keepSub, h.ana, h.ana, h.planFloat, hostNow.Add(20*day)),
		sub(h.expireSub, h.bia, h.bia.Hex(), h.planFloat.Hex(), hostNow.Add(-2*day)),
		sub(h.otherSub, h.bia, h.bia, h.planWhole, hostNow.Add(40*day)),
		sub(h.dudaSub, h.duda, h.duda, h.planWhole, hostNow.Add(-3*day)),
		sub(h.evaOld, h.eva, h.eva, h.planFloat, hostNow.Add(-3*day)),
		sub(h.evaNew, h.eva, h.eva, h.planWhole, hostNow.Add(25*day)),
	)
	insert("sessions",
		bson.D{{Key: "_id", Value: h.session}, {Key: "user_id", Value: h.ana}, {Key: "token", Value: "t0k"},
			{Key: "expires_at", Value: hostNow.Add(-40 * day)}, {Key: "created_at", Value: hostNow.Add(-41 * day)},
			{Key: "flag_del", Value: false}, {Key: "user_agent", Value: "Mozilla/5.0"}},
	)
	payment := func(id, user bson.ObjectID, created time.Time) bson.D {
		return bson.D{{Key: "_id", Value: id}, {Key: "user_id", Value: user}, {Key: "plan_id", Value: h.planFloat},
			{Key: "subscription_id", Value: nil}, {Key: "amount", Value: 49.9}, {Key: "status", Value: "pending"},
			{Key: "gateway", Value: "mercadopago"}, {Key: "payment_method", Value: "pix"},
			{Key: "created_at", Value: created}, {Key: "flag_del", Value: false}}
	}
	insert("payments", payment(h.stalePayment, h.bia, hostNow.Add(-9*day)), payment(h.pendingPayment, h.caio, hostNow.Add(-time.Hour)))
	return h
}

// snapshot reads every document of the collections, by collection and _id.
func snapshot(ctx context.Context, t *testing.T, db *mongo.Database, colls ...string) map[string]map[string]bson.Raw {
	t.Helper()
	out := map[string]map[string]bson.Raw{}
	for _, c := range colls {
		cur, err := db.Collection(c).Find(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		out[c] = map[string]bson.Raw{}
		for cur.Next(ctx) {
			out[c][cur.Current.Lookup("_id").String()] = slices.Clone(cur.Current)
		}
		if err := cur.Err(); err != nil {
			t.Fatal(err)
		}
		cur.Close(ctx)
	}
	return out
}

// key is the snapshot key of the document with that _id.
func key(id bson.ObjectID) string {
	t, b, _ := bson.MarshalValue(id)
	return bson.RawValue{Type: t, Value: b}.String()
}

// hostIDs runs one of the host application's queries and returns the _ids it finds.
func hostIDs(ctx context.Context, t *testing.T, db *mongo.Database, coll string, filter bson.D) []string {
	t.Helper()
	cur, err := db.Collection(coll).Find(ctx, filter)
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close(ctx)
	var ids []string
	for cur.Next(ctx) {
		ids = append(ids, cur.Current.Lookup("_id").ObjectID().Hex())
	}
	slices.Sort(ids)
	return ids
}

// TestHostDatabaseKeepsItsShape proves, on the original app's own documents, that all five
// jobs and the processor work on them through mongostore (a float-priced plan is warned and
// expired with its price shown as R$ 49,90), and that afterwards every field the app wrote
// is still there with its BSON type and, unless it is one of the intended changes, its
// value; the app's ObjectId queries find the same documents as before. It runs with the
// server checking conditions (ClaimAtomic, MongoDB's path; single-threaded here, so FerretDB
// answers it correctly) and with the store checking them (ClaimSerialized).
func TestHostDatabaseKeepsItsShape(t *testing.T) {
	for _, mode := range []mongostore.ClaimMode{mongostore.ClaimAtomic, mongostore.ClaimSerialized} {
		t.Run(mode.String(), func(t *testing.T) { testHostDatabase(t, mode) })
	}
}

func testHostDatabase(t *testing.T, mode mongostore.ClaimMode) {
	ctx, db, st := freshStore(t, mongostore.Config{BatchSize: 50, ClaimMode: mode, Money: mongostore.MoneyMajorUnits, DefaultCurrency: "BRL"}, 3*time.Minute)
	h := writeHostDB(ctx, t, db)
	colls := []string{"users", "plans", "subscriptions", "payments", "sessions"}
	before := snapshot(ctx, t, db, colls...)
	type query struct {
		coll   string
		filter bson.D
	}
	queries := []query{
		{"subscriptions", bson.D{{Key: "user_id", Value: h.ana}}},
		{"subscriptions", bson.D{{Key: "plan_id", Value: h.planFloat}}},
		{"subscriptions", bson.D{{Key: "user_id", Value: h.bia.Hex()}}},
		{"users", bson.D{{Key: "plan_id", Value: h.planFloat}}},
		{"users", bson.D{{Key: "subscription_id", Value: h.keepSub}}},
		{"payments", bson.D{{Key: "user_id", Value: h.caio}}},
		{"payments", bson.D{{Key: "plan_id", Value: h.planFloat}}},
		{"sessions", bson.D{{Key: "user_id", Value: h.ana}}},
	}
	found := make([][]string, len(queries))
	for i, q := range queries {
		found[i] = hostIDs(ctx, t, db, q.coll, q.filter)
	}

	notes := testkit.NewNotifier()
	svc, err := billing.NewService(st, notes, billing.Config{Clock: testkit.NewClock(hostNow), BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	warn, err := svc.CheckExpiringSubscriptions(ctx)
	if err != nil || !warn.Success || warn.NotificationsSent != 1 {
		t.Fatalf("CheckExpiringSubscriptions = %+v, %v; want the one warning", warn, err)
	}
	exp, err := svc.ProcessExpiredSubscriptions(ctx)
	if err != nil || !exp.Success || exp.Processed != 3 {
		t.Fatalf("ProcessExpiredSubscriptions = %+v, %v; want Bia's, Duda's and Eva's lapsed subscriptions expired", exp, err)
	}
	if r, err := svc.RenewSubscriptions(ctx); err != nil || !r.Success {
		t.Fatalf("RenewSubscriptions = %+v, %v", r, err)
	}
	if r, err := svc.CleanupOldSessions(ctx); err != nil || !r.Success || r.Cleaned != 1 {
		t.Fatalf("CleanupOldSessions = %+v, %v; want the one expired session", r, err)
	}
	if r, err := svc.CleanupPendingPayments(ctx); err != nil || !r.Success || r.Cleaned != 1 {
		t.Fatalf("CleanupPendingPayments = %+v, %v; want the one stale payment", r, err)
	}
	res, err := svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: h.pendingPayment.Hex(), GatewayPaymentID: "mp-777"})
	if err != nil {
		t.Fatalf("ProcessApproved(Caio's payment): %v", err)
	}

	// The float-priced plan's emails show its price.
	r, err := notify.NewRenderer(notify.Config{FrontendURL: "https://app.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []billing.NotificationKind
	for _, n := range notes.Sent() {
		kinds = append(kinds, n.Kind)
		if n.Kind != billing.NotificationKindExpiring && n.Kind != billing.NotificationKindExpired {
			continue
		}
		m, err := r.RenderNotification(n)
		if err != nil {
			t.Fatalf("render %s: %v", n.Kind, err)
		}
		if n.Data.PlanName == "Pro" && !strings.Contains(m.Text, "R$ 49,90") {
			t.Errorf("%s email does not show the price R$ 49,90:\n%s", n.Kind, m.Text)
		}
	}
	if !slices.Contains(kinds, billing.NotificationKindExpiring) || !slices.Contains(kinds, billing.NotificationKindExpired) {
		t.Fatalf("emails %v; want an expiring and an expired one", kinds)
	}

	// Every field the app wrote survives with its type; only the intended ones change.
	after := snapshot(ctx, t, db, colls...)
	changes := map[string][]string{ // the app's fields each document may see changed
		key(h.warnSub):        {"expiration_warning_sent", "updated_at"},
		key(h.expireSub):      {"status", "updated_at"},
		key(h.bia):            {"plan_id", "updated_at"},
		key(h.dudaSub):        {"status", "updated_at"},
		key(h.evaOld):         {"status", "updated_at"},
		key(h.eva):            {"plan_id", "subscription_id", "subscription_status", "access_until", "updated_at"},
		key(h.duda):           {"plan_id", "subscription_status", "access_until", "updated_at"},
		key(h.caio):           {"plan_id", "subscription_id", "subscription_status", "access_until", "updated_at"},
		key(h.session):        {"flag_del", "deleted_at", "updated_at"},
		key(h.stalePayment):   {"status", "updated_at"},
		key(h.pendingPayment): {"status", "subscription_id", "gateway_payment_id", "paid_at", "updated_at"},
	}
	for _, c := range colls {
		for id, was := range before[c] {
			now, ok := after[c][id]
			if !ok {
				t.Errorf("%s %s was deleted", c, id)
				continue
			}
			elems, _ := was.Elements()
			for _, e := range elems {
				k := e.Key()
				v, err := now.LookupErr(k)
				switch {
				case err != nil:
					t.Errorf("%s %s lost its field %s", c, id, k)
				case slices.Contains(changes[id], k):
					if e.Value().Type != bson.TypeNull && v.Type != bson.TypeNull && v.Type != e.Value().Type {
						t.Errorf("%s %s: %s changed type %s -> %s (%v -> %v)", c, id, k, e.Value().Type, v.Type, e.Value(), v)
					}
				case !e.Value().Equal(v):
					t.Errorf("%s %s: %s changed %v (%s) -> %v (%s)", c, id, k, e.Value(), e.Value().Type, v, v.Type)
				}
			}
		}
	}
	// The intended changes, in the app's shapes.
	if v := after["users"][key(h.bia)].Lookup("plan_id"); v.Type != bson.TypeString || v.StringValue() != h.planWhole.Hex() {
		t.Errorf("Bia's plan_id after one of her subscriptions expired: %v (%s), want her live one's plan, still a string", v, v.Type)
	}
	eva := after["users"][key(h.eva)]
	if v := eva.Lookup("plan_id"); v.Type != bson.TypeObjectID || v.ObjectID() != h.planWhole {
		t.Errorf("Eva's plan_id moved to %v (%s), want her live subscription's plan as an ObjectID, like before", v, v.Type)
	}
	if v := eva.Lookup("subscription_id"); v.Type != bson.TypeObjectID || v.ObjectID() != h.evaNew {
		t.Errorf("Eva's subscription_id moved to %v (%s), want her live subscription as an ObjectID, like before", v, v.Type)
	}
	if v := after["users"][key(h.duda)].Lookup("plan_id"); v.Type != bson.TypeNull {
		t.Errorf("Duda's plan_id after her only subscription expired: %v (%s), want null as the app writes None", v, v.Type)
	}
	if v := after["users"][key(h.duda)].Lookup("subscription_id"); v.Type != bson.TypeObjectID || v.ObjectID() != h.dudaSub {
		t.Errorf("Duda's subscription_id: %v (%s), want her subscription's ObjectID as before", v, v.Type)
	}
	if v := after["users"][key(h.ana)].Lookup("plan_id"); !v.Equal(before["users"][key(h.ana)].Lookup("plan_id")) {
		t.Errorf("Ana's plan_id changed to %v though her other subscription is live", v)
	}
	caio := after["users"][key(h.caio)]
	if v := caio.Lookup("plan_id"); v.Type != bson.TypeString || v.StringValue() != h.planFloat.Hex() {
		t.Errorf("Caio's plan_id after paying: %v (%s), want the plan as a string (new references default to strings)", v, v.Type)
	}
	if v := caio.Lookup("subscription_id"); v.Type != bson.TypeString || v.StringValue() != res.SubscriptionID {
		t.Errorf("Caio's subscription_id: %v (%s), want %q as a string", v, v.Type, res.SubscriptionID)
	}
	pay := after["payments"][key(h.pendingPayment)]
	if v := pay.Lookup("amount"); v.Type != bson.TypeDouble || v.Double() != 49.9 {
		t.Errorf("Caio's payment amount: %v (%s), want the app's 49.9", v, v.Type)
	}
	if st := pay.Lookup("status").StringValue(); st != "approved" {
		t.Errorf("Caio's payment status %q, want approved", st)
	}
	if _, err := pay.LookupErr("currency"); err == nil {
		t.Errorf("a currency was written into Caio's payment, which had none: %v", pay)
	}
	newID, err := bson.ObjectIDFromHex(res.SubscriptionID)
	if err != nil {
		t.Fatalf("the new subscription's id %q is not an ObjectID's hex: %v", res.SubscriptionID, err)
	}
	newSub := after["subscriptions"][key(newID)]
	if newSub == nil {
		t.Fatalf("the new subscription %s is not stored under an ObjectID _id; have %v", res.SubscriptionID, slices.Collect(maps.Keys(after["subscriptions"])))
	}
	if v := newSub.Lookup("user_id"); v.Type != bson.TypeString || v.StringValue() != h.caio.Hex() {
		t.Errorf("new subscription's user_id %v (%s), want Caio as a string like the app's str(user_id)", v, v.Type)
	}

	// The app's own ObjectId queries find what they found before.
	// Eva's access moved to her other plan (an intended change).
	found[3] = slices.DeleteFunc(found[3], func(id string) bool { return id == h.eva.Hex() })
	for i, q := range queries {
		if got := hostIDs(ctx, t, db, q.coll, q.filter); !slices.Equal(got, found[i]) {
			t.Errorf("host query %s %v: %v, want %v", q.coll, q.filter, got, found[i])
		}
	}
}

// TestHostSessionWhilePending proves the session cleanup writes only its own fields on a
// host's session document and keeps the app's types, also while the soft delete's effects
// are pending (a run crashed between the delete and the audit entry): the app's fields
// other than flag_del and deleted_at are untouched, renewkit adds only sweep_token and the
// pending_* fields, and the next run writes the audit entry and removes pending_* again.
func TestHostSessionWhilePending(t *testing.T) {
	ctx, db, st := freshStore(t, mongostore.Config{BatchSize: 50}, time.Minute)
	h := writeHostDB(ctx, t, db)
	before := snapshot(ctx, t, db, "sessions")["sessions"][key(h.session)]
	eff := &billing.Effects{Token: "crashed-run", CreatedAt: hostNow, Audit: []billing.AuditEntry{{
		ID: "sessions:crashed-run", Action: billing.AuditSessionsCleaned, Actor: "renewkit", CreatedAt: hostNow,
		Details: map[string]any{"expired_before": hostNow.Add(-30 * testkit.Day)}}}}
	got, err := st.DeleteExpiredSessions(ctx, hostNow.Add(-30*testkit.Day), hostNow, 10, eff)
	if err != nil || len(got) != 1 || got[0].ID != h.session.Hex() {
		t.Fatalf("DeleteExpiredSessions = %+v, %v; want the host's expired session", got, err)
	}
	check := func(when string, added ...string) {
		t.Helper()
		doc := snapshot(ctx, t, db, "sessions")["sessions"][key(h.session)]
		elems, _ := before.Elements()
		for _, e := range elems {
			v, err := doc.LookupErr(e.Key())
			switch {
			case err != nil:
				t.Errorf("%s: the session lost its field %s", when, e.Key())
			case e.Key() == "flag_del" || e.Key() == "deleted_at":
				if v.Type != bson.TypeBoolean && e.Key() == "flag_del" || v.Type != bson.TypeDateTime && e.Key() == "deleted_at" {
					t.Errorf("%s: %s is %v (%s)", when, e.Key(), v, v.Type)
				}
			case !e.Value().Equal(v):
				t.Errorf("%s: %s changed %v (%s) -> %v (%s)", when, e.Key(), e.Value(), e.Value().Type, v, v.Type)
			}
		}
		all, _ := doc.Elements()
		var extra []string
		for _, e := range all {
			if _, err := before.LookupErr(e.Key()); err != nil && e.Key() != "deleted_at" {
				extra = append(extra, e.Key())
			}
		}
		slices.Sort(extra)
		if !slices.Equal(extra, slices.Sorted(slices.Values(added))) {
			t.Errorf("%s: renewkit added %v to the session, want %v", when, extra, added)
		}
	}
	check("while pending", "sweep_token", "pending_token", "pending_effects", "pending_details")
	svc, err := billing.NewService(st, testkit.NewNotifier(), billing.Config{Clock: testkit.NewClock(hostNow.Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.CleanupOldSessions(ctx)
	if err != nil || res.Resumed != 1 || res.Failed != 0 {
		t.Fatalf("CleanupOldSessions after the crash = %+v, %v; want the session's effects finished", res, err)
	}
	check("after the next run", "sweep_token")
	audit, err := st.ListAudit(ctx, billing.AuditFilter{Action: billing.AuditSessionsCleaned})
	if err != nil || len(audit) != 1 || audit[0].ID != "sessions:crashed-run" || audit[0].EntityID != h.session.Hex() {
		t.Fatalf("audit %+v, %v; want the crashed run's one entry about the session", audit, err)
	}
}

// With References: ReferencesObjectID a new document's references are ObjectIDs, and a
// reference written where the stored one is null becomes one too; ids that are not 24 hex
// digits stay strings. Proves the configurable default for new references.
func TestNewReferencesAsObjectIDs(t *testing.T) {
	ctx, db, st := freshStore(t, mongostore.Config{BatchSize: 50, References: mongostore.ReferencesObjectID}, time.Minute)
	user, plan := bson.NewObjectID(), bson.NewObjectID()
	if _, err := db.Collection("users").InsertOne(ctx, bson.D{{Key: "_id", Value: user}, {Key: "email", Value: "u@example.com"},
		{Key: "plan_id", Value: nil}, {Key: "flag_del", Value: false}}); err != nil {
		t.Fatal(err)
	}
	sub := billing.Subscription{UserID: user.Hex(), PlanID: "legacy-plan", Status: billing.SubscriptionStatusActive,
		BillingCycle: billing.CycleMonthly, CurrentPeriodEnd: hostNow.AddDate(0, 1, 0)}
	if err := st.InsertSubscription(ctx, &sub); err != nil {
		t.Fatal(err)
	}
	var doc bson.Raw
	if err := db.Collection("subscriptions").FindOne(ctx, bson.D{}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if v := doc.Lookup("user_id"); v.Type != bson.TypeObjectID || v.ObjectID() != user {
		t.Errorf("new subscription's user_id %v (%s), want an ObjectID", v, v.Type)
	}
	if v := doc.Lookup("plan_id"); v.Type != bson.TypeString || v.StringValue() != "legacy-plan" {
		t.Errorf("new subscription's plan_id %v (%s), want the non-hex id as a string", v, v.Type)
	}
	u, err := st.GetUser(ctx, user.Hex())
	if err != nil {
		t.Fatal(err)
	}
	next := u
	next.PlanID, next.SubscriptionID, next.Status = plan.Hex(), sub.ID, billing.SubscriptionStatusActive
	if err := billing.UpdateUserAccess(ctx, st, u, next); err != nil {
		t.Fatal(err)
	}
	var ud bson.Raw
	if err := db.Collection("users").FindOne(ctx, bson.D{{Key: "_id", Value: user}}).Decode(&ud); err != nil {
		t.Fatal(err)
	}
	if v := ud.Lookup("plan_id"); v.Type != bson.TypeObjectID || v.ObjectID() != plan {
		t.Errorf("user's plan_id written over null: %v (%s), want an ObjectID", v, v.Type)
	}
}
