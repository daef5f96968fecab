package mongostore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/mongostore"
)

// majorBRL is the configuration for the original app's database: prices and amounts as
// floats of reais, no currency field.
var majorBRL = mongostore.Config{BatchSize: 50, Money: mongostore.MoneyMajorUnits, DefaultCurrency: "BRL"}

// TestMoneyConfigValidate proves that Validate rejects an unknown MoneyFormat and a
// currency that is not three uppercase letters, saying what to use instead.
func TestMoneyConfigValidate(t *testing.T) {
	if err := majorBRL.Validate(); err != nil {
		t.Fatalf("major units, BRL: %v", err)
	}
	for _, c := range []struct {
		cfg  mongostore.Config
		want string
	}{
		{mongostore.Config{DefaultCurrency: "brl"}, `DefaultCurrency: "brl" is not a currency code; use three uppercase letters`},
		{mongostore.Config{DefaultCurrency: "R$"}, "DefaultCurrency"},
		{mongostore.Config{Money: 7}, "Config.Money: MoneyFormat(7) is unknown; use MoneyMinorUnits"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v; want it to say %q", c.cfg, err, c.want)
		}
	}
}

func insertRaw(ctx context.Context, t *testing.T, db *mongo.Database, coll string, docs ...bson.M) {
	t.Helper()
	for _, d := range docs {
		if _, err := db.Collection(coll).InsertOne(ctx, d); err != nil {
			t.Fatalf("insert into %s: %v", coll, err)
		}
	}
}

// legacyPlan is a plans document as the original app writes it, without currency.
func legacyPlan(id bson.ObjectID, name string, price any) bson.M {
	return bson.M{"_id": id, "name": name, "billing_cycle": "monthly", "price": price, "active": true,
		"created_at": seedNow.AddDate(-1, 0, 0), "flag_del": false}
}

func oid(t *testing.T, hex string) bson.ObjectID {
	t.Helper()
	id, err := bson.ObjectIDFromHex(hex)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func plansByID(t *testing.T, ps []billing.Plan) map[string]billing.Plan {
	t.Helper()
	out := map[string]billing.Plan{}
	for _, p := range ps {
		out[p.ID] = p
	}
	return out
}

// TestMoneyLegacyPlansMajorUnits proves that with Money: MoneyMajorUnits and
// DefaultCurrency "BRL" the original app's prices (49.9 and 29.0 doubles, an int32, no
// currency) read as minor units of BRL, and a plan with its own currency keeps it (and its
// exponent: JPY has no minor unit).
func TestMoneyLegacyPlansMajorUnits(t *testing.T) {
	ctx, db, st := freshStore(t, majorBRL, time.Minute)
	float, whole, integer, yen := bson.NewObjectID(), bson.NewObjectID(), bson.NewObjectID(), bson.NewObjectID()
	yenDoc := legacyPlan(yen, "Yen", 500.0)
	yenDoc["currency"] = "JPY"
	insertRaw(ctx, t, db, "plans",
		legacyPlan(float, "Pro", 49.9), legacyPlan(whole, "Basic", 29.0), legacyPlan(integer, "Int", int32(29)), yenDoc)

	list, err := st.ListPlans(ctx)
	if err != nil {
		t.Fatalf("ListPlans: %v", err)
	}
	got := plansByID(t, list)
	for id, want := range map[bson.ObjectID]billing.Money{
		float: {Amount: 4990, Currency: "BRL"}, whole: {Amount: 2900, Currency: "BRL"},
		integer: {Amount: 2900, Currency: "BRL"}, yen: {Amount: 500, Currency: "JPY"},
	} {
		if p, ok := got[id.Hex()]; !ok || p.Price != want {
			t.Errorf("plan %s: %+v (listed %v), want price %+v", id.Hex(), p.Price, ok, want)
		}
		if p, err := st.GetPlan(ctx, id.Hex()); err != nil || p.Price != want {
			t.Errorf("GetPlan %s: %+v, %v; want price %+v", id.Hex(), p.Price, err, want)
		}
	}

	// Decimal128 where the server supports it (FerretDB v1 drops the connection), on a
	// client of its own.
	dec, _ := bson.ParseDecimal128("19.99")
	decID := bson.NewObjectID()
	if _, err := newClient(t).Database(db.Name()).Collection("plans").InsertOne(ctx, legacyPlan(decID, "Dec", dec)); err != nil {
		t.Logf("server refuses decimal128 (%v); decimal reading is covered by TestMoneyRounding", err)
		return
	}
	if p, err := st.GetPlan(ctx, decID.Hex()); err != nil || p.Price != (billing.Money{Amount: 1999, Currency: "BRL"}) {
		t.Errorf("decimal128 19.99: %+v, %v; want 1999 BRL", p.Price, err)
	}
}

// TestMoneyDefaultConfigReportsFloatPrice proves that with the default (minor units) a
// fractional price is a malformed record, reported by id as a *billing.RecordError, while
// ListPlans still returns every other plan; that int32 and whole doubles read as minor
// units; and that DefaultCurrency fills a missing currency (empty when unset).
func TestMoneyDefaultConfigReportsFloatPrice(t *testing.T) {
	db := freshDB(t, client(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bad, i32, whole := bson.NewObjectID(), bson.NewObjectID(), bson.NewObjectID()
	insertRaw(ctx, t, db, "plans", legacyPlan(bad, "Float", 49.9), legacyPlan(i32, "Int32", int32(4990)), legacyPlan(whole, "Whole", 4990.0))

	for _, c := range []struct {
		cfg  mongostore.Config
		want string
	}{{testConfig, ""}, {mongostore.Config{BatchSize: 50, DefaultCurrency: "BRL"}, "BRL"}} {
		st := newStore(t, db, c.cfg)
		list, err := st.ListPlans(ctx)
		var rec *billing.RecordError
		if !errors.As(err, &rec) || rec.ID != bad.Hex() || rec.Collection != "plans" || !errors.Is(err, billing.ErrMalformedRecord) {
			t.Fatalf("ListPlans error = %v; want a RecordError for plan %s", err, bad.Hex())
		}
		got := plansByID(t, list)
		if len(got) != 2 || got[i32.Hex()].Price != (billing.Money{Amount: 4990, Currency: c.want}) ||
			got[whole.Hex()].Price != (billing.Money{Amount: 4990, Currency: c.want}) {
			t.Fatalf("ListPlans = %+v; want the two whole prices as 4990 %q", list, c.want)
		}
		if _, err := st.GetPlan(ctx, bad.Hex()); !errors.As(err, &rec) || !errors.Is(err, billing.ErrMalformedRecord) {
			t.Fatalf("GetPlan(float price) = %v; want a RecordError", err)
		}
	}
}

// TestMoneyWarningShowsLegacyPrice proves that a subscription of a plan priced 49.9 with no
// currency gets its 3-day warning through billing.Service, with the price as 4990 BRL.
func TestMoneyWarningShowsLegacyPrice(t *testing.T) {
	ctx, db, st := freshStore(t, majorBRL, 2*time.Minute)
	plan, user, sub := bson.NewObjectID(), bson.NewObjectID(), bson.NewObjectID()
	insertRaw(ctx, t, db, "plans", legacyPlan(plan, "Pro", 49.9))
	insertRaw(ctx, t, db, "users", bson.M{"_id": user, "email": "ana@example.com", "name": "Ana", "plan_id": plan.Hex(),
		"created_at": seedNow.AddDate(-1, 0, 0), "flag_del": false})
	insertRaw(ctx, t, db, "subscriptions", bson.M{"_id": sub, "user_id": user.Hex(), "plan_id": plan.Hex(), "status": "active",
		"billing_cycle": "monthly", "gateway": "manual", "expiration_warning_sent": false,
		"current_period_start": seedNow.AddDate(0, -1, 2), "current_period_end": seedNow.Add(2 * 24 * time.Hour),
		"created_at": seedNow.AddDate(0, -2, 0), "flag_del": false})
	notes := testkit.NewNotifier()
	svc, err := billing.NewService(st, notes, billing.Config{Clock: testkit.NewClock(seedNow), BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.CheckExpiringSubscriptions(ctx)
	if err != nil || !res.Success || res.NotificationsSent != 1 {
		t.Fatalf("CheckExpiringSubscriptions = %+v, %v; want one warning", res, err)
	}
	sent := notes.Sent()
	if len(sent) != 1 || sent[0].Kind != billing.NotificationKindExpiring || sent[0].Data.Amount != (billing.Money{Amount: 4990, Currency: "BRL"}) {
		t.Fatalf("sent %+v; want one expiring warning with amount 4990 BRL", sent)
	}
	var p bson.M
	if err := db.Collection("plans").FindOne(ctx, bson.M{"_id": plan}).Decode(&p); err != nil || p["price"] != 49.9 {
		t.Fatalf("plan after the run: %v, %v; want price 49.9 untouched", p, err)
	}
	if _, ok := p["currency"]; ok {
		t.Fatalf("plan after the run gained a currency: %v", p)
	}
}

// TestMoneyPaymentsMajorUnits proves, in both claim modes, that a payment stored as 49.9
// without currency reads as 4990 BRL in major-unit mode (and is malformed in minor-unit
// mode); that an update leaves an unchanged amount as the host wrote it, and writes a
// changed one back as a double of major units, its condition matching a stored value with
// float noise; and that new plans and payments are written as doubles of major units.
func TestMoneyPaymentsMajorUnits(t *testing.T) {
	for _, mode := range []mongostore.ClaimMode{mongostore.ClaimSerialized, mongostore.ClaimAtomic} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := majorBRL
			cfg.ClaimMode = mode
			ctx, db, st := freshStore(t, cfg, time.Minute)
			pay, noisy := bson.NewObjectID(), bson.NewObjectID()
			for id, amount := range map[bson.ObjectID]float64{pay: 49.9, noisy: 49.9 + 1e-9} {
				insertRaw(ctx, t, db, "payments", bson.M{"_id": id, "user_id": bson.NewObjectID().Hex(), "amount": amount,
					"status": "pending", "gateway": "mercadopago", "created_at": seedNow, "flag_del": false})
			}
			raw := func(id any) bson.M {
				t.Helper()
				var m bson.M
				if err := db.Collection("payments").FindOne(ctx, bson.M{"_id": id}).Decode(&m); err != nil {
					t.Fatal(err)
				}
				return m
			}

			p, err := st.GetPayment(ctx, pay.Hex())
			if err != nil || p.Amount != (billing.Money{Amount: 4990, Currency: "BRL"}) {
				t.Fatalf("GetPayment(49.9) = %+v, %v; want 4990 BRL", p.Amount, err)
			}
			if _, err := newStore(t, db, testConfig).GetPayment(ctx, pay.Hex()); !errors.Is(err, billing.ErrMalformedRecord) {
				t.Fatalf("GetPayment(49.9) in minor-unit mode = %v; want a malformed record", err)
			}

			changed := p
			changed.Status = billing.PaymentStatusApproved
			if err := st.UpdatePayment(ctx, p, changed); err != nil {
				t.Fatalf("UpdatePayment(status): %v", err)
			}
			if d := raw(pay); d["amount"] != 49.9 || d["status"] != "approved" || d["currency"] != nil {
				t.Fatalf("after a status change: %v; want amount 49.9 and no currency as written by the host", d)
			}

			n, err := st.GetPayment(ctx, noisy.Hex())
			if err != nil || n.Amount.Amount != 4990 {
				t.Fatalf("GetPayment(49.9+1e-9) = %+v, %v; want 4990", n.Amount, err)
			}
			more := n
			more.Amount.Amount = 5990
			if err := st.UpdatePayment(ctx, n, more); err != nil {
				t.Fatalf("UpdatePayment(amount) on a noisy stored amount: %v", err)
			}
			if d := raw(noisy); d["amount"] != 59.9 {
				t.Fatalf("after an amount change: %v; want amount 59.9", d)
			}
			stale := n
			stale.Amount.Amount = 6990
			if err := st.UpdatePayment(ctx, n, stale); !errors.Is(err, billing.ErrConflict) {
				t.Fatalf("UpdatePayment from a stale amount = %v; want ErrConflict", err)
			}

			np := billing.Payment{UserID: "u1", Amount: billing.Money{Amount: 1999, Currency: "BRL"}, Status: billing.PaymentStatusPending,
				Gateway: "manual", CreatedAt: seedNow}
			if err := st.InsertPayment(ctx, &np); err != nil {
				t.Fatal(err)
			}
			if d := raw(oid(t, np.ID)); d["amount"] != 19.99 {
				t.Fatalf("inserted payment: %v; want amount 19.99", d)
			}
			plan := billing.Plan{Name: "New", BillingCycle: billing.Cycle("monthly"), Price: billing.Money{Amount: 4990, Currency: "BRL"}, Active: true}
			if err := st.InsertPlan(ctx, &plan); err != nil {
				t.Fatal(err)
			}
			var pd bson.M
			if err := db.Collection("plans").FindOne(ctx, bson.M{"_id": oid(t, plan.ID)}).Decode(&pd); err != nil || pd["price"] != 49.9 {
				t.Fatalf("inserted plan: %v, %v; want price 49.9", pd, err)
			}
		})
	}
}
