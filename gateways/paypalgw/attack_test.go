package paypalgw

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// The attacker suite: each case is something a buyer can do in their browser (PayPal's JS
// SDK sets custom_id and plan_id) or with a captured delivery, and each asserts that
// nothing is granted: no live subscription, no access, no approved payment, and a refused
// charge recorded as failed with its reason.

const attacker = "attacker"

func newAttackEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t, time.Now().UTC().Truncate(time.Second), func(c *Config) {
		c.Plans = map[string]string{testPayPalPlan: testPlan, "P-CHEAP": "plan-cheap"}
	})
	ctx := context.Background()
	if err := e.store.InsertPlan(ctx, &billing.Plan{ID: "plan-cheap", Name: "Cheap", BillingCycle: billing.CycleMonthly,
		Price: billing.Money{Amount: 1, Currency: "USD"}, Active: true}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.InsertUser(ctx, &billing.User{ID: attacker, Email: "eve@example.com"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// noGrant asserts that no user has access, no subscription is live and no payment approved.
func (e *env) noGrant() {
	e.t.Helper()
	ctx := context.Background()
	for _, id := range []string{testUser, attacker} {
		if u, _ := e.store.GetUser(ctx, id); u.HasAccess(e.clock.Now()) || u.PlanID != "" {
			e.t.Errorf("user %s has access: %+v", id, u)
		}
		subs, _ := e.store.ListUserSubscriptions(ctx, id)
		for _, s := range subs {
			if s.Status.Live() {
				e.t.Errorf("live subscription of %s: %+v", id, s)
			}
		}
	}
	for _, k := range e.sortedEmails() {
		if k.Kind == billing.NotificationKindPaymentSuccessful || k.Kind == billing.NotificationKindWelcome {
			e.t.Errorf("email %s sent", k.Kind)
		}
	}
}

func (e *env) wantRejected(rec *httptest.ResponseRecorder) {
	e.t.Helper()
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"rejected"`) {
		e.t.Fatalf("got %d %s, want 200 rejected", rec.Code, rec.Body)
	}
}

// activation is ACTIVATED for the test subscription with custom_id and plan_id.
func activation(t *testing.T, e *env, eventID, customID, planID string) []byte {
	now := e.clock.Now()
	body := subscriptionEvent(t, subEvent{EventID: eventID, Type: EventSubscriptionActivated, Status: "ACTIVE",
		Created: now, Updated: now.Add(-time.Second), NextBilling: now.AddDate(0, 1, 0), CustomID: customID})
	return bytes.Replace(body, []byte(testPayPalPlan), []byte(planID), 1)
}

// Proves: a custom_id the buyer wrote ("user-1:plan-pro", the old convention) creates
// nothing and its sale grants nothing; the delivery is answered 200 "rejected".
func TestAttackForgedReference(t *testing.T) {
	e := newAttackEnv(t)
	e.wantRejected(e.deliver(activation(t, e, "WH-1", testUser+":"+testPlan, testPayPalPlan)))
	if _, ok := e.sub(); ok {
		t.Fatal("a subscription was created from an unsigned custom_id")
	}
	e.noGrant()
}

// Proves: a reference signed for the attacker, edited to name someone else's user id,
// is refused: the victim's access is not pointed at the attacker's subscription.
func TestAttackSomeoneElsesUserID(t *testing.T) {
	e := newAttackEnv(t)
	own := signedCustomID(t, attacker, testPlan)
	victim := signedCustomID(t, testUser, testPlan)
	spliced := victim[:len(victim)-22] + own[len(own)-22:] // the victim's ids, the attacker's tag
	e.wantRejected(e.deliver(activation(t, e, "WH-1", spliced, testPayPalPlan)))
	if _, ok := e.sub(); ok {
		t.Fatal("a subscription was created for the victim")
	}
	e.noGrant()
}

// Proves: a genuine reference for the 19.90 plan on a subscription to PayPal's 0.01 plan
// (plan_id chosen in the browser) is refused; so is an unmapped PayPal plan.
func TestAttackCheaperPlan(t *testing.T) {
	for _, planID := range []string{"P-CHEAP", "P-UNMAPPED"} {
		t.Run(planID, func(t *testing.T) {
			e := newAttackEnv(t)
			e.wantRejected(e.deliver(activation(t, e, "WH-1", signedCustomID(t, testUser, testPlan), planID)))
			if _, ok := e.sub(); ok {
				t.Fatal("a subscription was created for another PayPal plan")
			}
			e.noGrant()
		})
	}
}

// Proves: a sale of 0.01 USD, or of 19.90 in another currency, for a genuine subscription
// to the 19.90 USD plan grants nothing: the payment is failed with the reason, the
// subscription stays pending, the delivery is answered 200 "rejected".
func TestAttackCheapOrForeignSale(t *testing.T) {
	for name, mutate := range map[string]func([]byte) []byte{
		"cheaper amount": func(b []byte) []byte { return b },
		"wrong currency": func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"currency": "USD", "details"`), []byte(`"currency": "BRL", "details"`), 1)
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newAttackEnv(t)
			e.mustDeliver(activation(t, e, "WH-1", signedCustomID(t, testUser, testPlan), testPayPalPlan))
			total := "0.01"
			if name == "wrong currency" {
				total = "19.90"
			}
			e.wantRejected(e.deliver(mutate(saleEvent(t, "WH-2", "SALE-X", e.clock.Now(), total))))
			pay, err := e.store.FindPaymentByGateway(context.Background(), billing.GatewayPayPal, "SALE-X")
			if err != nil || pay.Status != billing.PaymentStatusFailed || !strings.Contains(pay.Reason, "charge mismatch") {
				t.Fatalf("payment %+v %v, want failed with a charge mismatch reason", pay, err)
			}
			if sub, _ := e.sub(); sub.Status != billing.SubscriptionStatusPending || !sub.CurrentPeriodEnd.IsZero() {
				t.Fatalf("subscription %+v, want pending without a period", sub)
			}
			e.noGrant()
		})
	}
}

// Proves: a delivery replayed with its genuine headers an hour later (old transmission
// time) is refused with 400 and stores nothing.
func TestAttackReplayedOldSignature(t *testing.T) {
	e := newAttackEnv(t)
	body := activation(t, e, "WH-OLD", signedCustomID(t, testUser, testPlan), testPayPalPlan)
	hdr := e.signer.Sign(body, e.clock.Now().Add(-time.Hour))
	if rec := e.post(body, hdr); rec.Code != http.StatusBadRequest {
		t.Fatalf("replay: got %d %s, want 400", rec.Code, rec.Body)
	}
	e.assertUntouched("WH-OLD")
}

// Proves: a genuine sale body re-sent under a new event id extends the subscription once:
// the payment is keyed by the sale id, not by the event id.
func TestAttackReplayedBodyNewID(t *testing.T) {
	e := newAttackEnv(t)
	e.mustDeliver(activation(t, e, "WH-1", signedCustomID(t, testUser, testPlan), testPayPalPlan))
	e.mustDeliver(saleEvent(t, "WH-2", "SALE-1", e.clock.Now(), "19.90"))
	first, _ := e.sub()
	e.mustDeliver(saleEvent(t, "WH-3-NEW-ID", "SALE-1", e.clock.Now(), "19.90"))
	if again, _ := e.sub(); !again.CurrentPeriodEnd.Equal(first.CurrentPeriodEnd) || len(again.AppliedPayments) != 1 {
		t.Fatalf("replayed sale extended again: %v -> %v", first.CurrentPeriodEnd, again.CurrentPeriodEnd)
	}
}

// Proves: without API credentials, a body forged to the CRC32 of a genuinely signed sale
// and sent with its headers is acknowledged and grants nothing (offline verification covers
// the body only through CRC32, so nothing it says is applied).
func TestAttackCRC32Collision(t *testing.T) {
	e := newStrictEnv(t, time.Now().UTC().Truncate(time.Second), nil)
	sale := saleEvent(t, "WH-SALE", "SALE-1", e.clock.Now(), "19.90")
	rec := e.post(collidingSale(t, sale, e.clock.Now()), e.signer.Sign(sale, e.clock.Now()))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"ignored"`) {
		t.Fatalf("collision: got %d %s, want 200 ignored", rec.Code, rec.Body)
	}
	assertNothingGranted(t, e)
}
