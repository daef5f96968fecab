package billing_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/notify/lognotify"
	"github.com/renewkit/renewkit/store/memstore"
)

var refSecret = []byte("0123456789abcdef-reference-secret")

// TestReferenceRoundTrip proves a signed reference verifies to what was signed, and only
// uses characters every gateway field accepts (Stripe's client_reference_id: alphanumerics,
// '-' and '_'), within PayPal's 127-character custom_id limit.
func TestReferenceRoundTrip(t *testing.T) {
	for _, ref := range []billing.Reference{
		{UserID: "u", PlanID: "p"},
		{UserID: "65f0c0ffee0000000000beef", PlanID: "plan-premium-yearly", PaymentID: "65f0c0ffee0000000000cafe"},
	} {
		s, err := billing.SignReference(refSecret, ref)
		if err != nil {
			t.Fatal(err)
		}
		if len(s) > billing.MaxReferenceLength {
			t.Fatalf("reference is %d characters", len(s))
		}
		for _, c := range s {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				t.Fatalf("reference %q has %q, which Stripe's client_reference_id refuses", s, c)
			}
		}
		got, err := billing.VerifyReference(refSecret, s)
		if err != nil || got != ref {
			t.Fatalf("VerifyReference = %+v, %v; want %+v", got, err, ref)
		}
	}
	if _, err := billing.SignReference(refSecret, billing.Reference{UserID: strings.Repeat("u", 100), PlanID: "p"}); !errors.Is(err, billing.ErrInvalidInput) {
		t.Fatalf("an over-long reference: %v, want ErrInvalidInput", err)
	}
	if _, err := billing.SignReference([]byte("short"), billing.Reference{UserID: "u", PlanID: "p"}); !errors.Is(err, billing.ErrInvalidInput) {
		t.Fatalf("a short secret: %v, want ErrInvalidInput", err)
	}
}

// TestReferenceRefused proves every reference the buyer could make without the secret is
// refused with ErrBadReference, and that the error never carries the secret: the legacy
// "user:plan" convention, an edited user or plan, a reference signed with another secret,
// a truncated one, and any reference when no secret is configured.
func TestReferenceRefused(t *testing.T) {
	good, err := billing.SignReference(refSecret, billing.Reference{UserID: "attacker", PlanID: "basic"})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := billing.SignReference([]byte("another-secret-of-the-same-size!"), billing.Reference{UserID: "victim", PlanID: "premium"})
	// The payload of a reference for another user, spliced onto good's tag.
	victim, _ := billing.SignReference(refSecret, billing.Reference{UserID: "victim", PlanID: "premium"})
	spliced := victim[:len(victim)-22] + good[len(good)-22:]
	flipped := good[:5] + string(good[5]^1) + good[6:]
	for name, s := range map[string]string{
		"unsigned user:plan": "victim:premium", "empty": "", "other secret": other, "spliced tag": spliced,
		"edited payload": flipped, "truncated": good[:len(good)-1], "prefix only": "rk1",
	} {
		_, err := billing.VerifyReference(refSecret, s)
		if !errors.Is(err, billing.ErrBadReference) {
			t.Errorf("%s: %v, want ErrBadReference", name, err)
		}
		if err != nil && strings.Contains(err.Error(), string(refSecret)) {
			t.Errorf("%s: the error shows the secret", name)
		}
	}
	if _, err := billing.VerifyReference(nil, good); !errors.Is(err, billing.ErrBadReference) {
		t.Fatalf("no secret: %v, want ErrBadReference", err)
	}
}

type moneyEnv struct {
	ctx context.Context
	st  *memstore.Store
	svc *billing.Service
	now time.Time
}

func newMoneyEnv(t *testing.T) moneyEnv {
	t.Helper()
	ctx := context.Background()
	now := time.Date(2030, 5, 10, 12, 0, 0, 0, time.UTC)
	st := memstore.New()
	for _, p := range []billing.Plan{
		{ID: "premium", Name: "Premium", BillingCycle: billing.CycleYearly, Price: billing.Money{Amount: 99900, Currency: "USD"}, Active: true},
		{ID: "basic", Name: "Basic", BillingCycle: billing.CycleMonthly, Price: billing.Money{Amount: 1, Currency: "USD"}, Active: true},
	} {
		if err := st.InsertPlan(ctx, &p); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"victim", "attacker"} {
		if err := st.InsertUser(ctx, &billing.User{ID: id, Email: id + "@example.com"}); err != nil {
			t.Fatal(err)
		}
	}
	n, _ := lognotify.NewNotifier(lognotify.Config{})
	svc, err := billing.NewService(st, n, billing.Config{Clock: testkit.NewClock(now), ReferenceSecret: refSecret})
	if err != nil {
		t.Fatal(err)
	}
	return moneyEnv{ctx: ctx, st: st, svc: svc, now: now}
}

// TestChargeMismatchGrantsNothing proves that a gateway charge of less than the plan costs,
// or in another currency, is recorded as a failed payment with the reason and audited, and
// creates, extends and grants nothing; the same charge delivered again changes nothing more.
func TestChargeMismatchGrantsNothing(t *testing.T) {
	for name, charged := range map[string]billing.Money{
		"cheaper":        {Amount: 1, Currency: "USD"},
		"wrong currency": {Amount: 99900, Currency: "BRL"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newMoneyEnv(t)
			pp := e.svc.Processor()
			if _, err := pp.SyncSubscription(e.ctx, billing.SyncParams{Gateway: billing.GatewayPayPal, GatewaySubscriptionID: "I-1",
				Status: billing.SubscriptionStatusActive, UserID: "victim", PlanID: "premium"}); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				_, err := pp.ApplyGatewayPayment(e.ctx, billing.GatewayPaymentParams{Gateway: billing.GatewayPayPal,
					GatewayPaymentID: "SALE-1", GatewaySubscriptionID: "I-1", Amount: charged})
				if !errors.Is(err, billing.ErrChargeMismatch) {
					t.Fatalf("ApplyGatewayPayment: %v, want ErrChargeMismatch", err)
				}
			}
			pay, err := e.st.FindPaymentByGateway(e.ctx, billing.GatewayPayPal, "SALE-1")
			if err != nil {
				t.Fatal(err)
			}
			if pay.Status != billing.PaymentStatusFailed || !strings.Contains(pay.Reason, "charge mismatch") || pay.Amount.Amount != 99900 {
				t.Fatalf("payment %+v, want failed for 99900 USD with a charge mismatch reason", pay)
			}
			sub, _ := e.st.FindSubscriptionByGateway(e.ctx, billing.GatewayPayPal, "I-1")
			if sub.Status != billing.SubscriptionStatusPending || !sub.CurrentPeriodEnd.IsZero() {
				t.Fatalf("subscription %s until %v, want pending without a period", sub.Status, sub.CurrentPeriodEnd)
			}
			if u, _ := e.st.GetUser(e.ctx, "victim"); u.HasAccess(e.now) {
				t.Fatalf("user has access: %+v", u)
			}
			audits, _ := e.st.ListAudit(e.ctx, billing.AuditFilter{Action: billing.AuditPaymentFailed, EntityID: pay.ID})
			if len(audits) == 0 {
				t.Fatal("the refused charge is not audited")
			}
		})
	}
}

// TestSyncCreatesPendingWithoutAccess proves a status alone (PayPal's ACTIVATED with a
// next_billing_time) creates a pending subscription and grants nothing: access comes with
// an approved charge.
func TestSyncCreatesPendingWithoutAccess(t *testing.T) {
	e := newMoneyEnv(t)
	res, err := e.svc.Processor().SyncSubscription(e.ctx, billing.SyncParams{Gateway: billing.GatewayPayPal, GatewaySubscriptionID: "I-1",
		Status: billing.SubscriptionStatusActive, PeriodEnd: e.now.AddDate(1, 0, 0), UserID: "attacker", PlanID: "premium"})
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := e.st.GetSubscription(e.ctx, res.SubscriptionID)
	if sub.Status != billing.SubscriptionStatusPending || !sub.CurrentPeriodEnd.IsZero() {
		t.Fatalf("subscription %s until %v, want pending without a period", sub.Status, sub.CurrentPeriodEnd)
	}
	if u, _ := e.st.GetUser(e.ctx, "attacker"); u.HasAccess(e.now) {
		t.Fatalf("user has access: %+v", u)
	}
}

// TestAccessStaysOnLiveSubscription proves a user's access never moves off another live
// subscription of theirs: a second subscription paid for the same user keeps the first one's
// access until it ends.
func TestAccessStaysOnLiveSubscription(t *testing.T) {
	e := newMoneyEnv(t)
	pp := e.svc.Processor()
	for _, gid := range []string{"I-OWN", "I-SECOND"} {
		if _, err := pp.SyncSubscription(e.ctx, billing.SyncParams{Gateway: billing.GatewayPayPal, GatewaySubscriptionID: gid,
			UserID: "victim", PlanID: "premium"}); err != nil {
			t.Fatal(err)
		}
		if _, err := pp.ApplyGatewayPayment(e.ctx, billing.GatewayPaymentParams{Gateway: billing.GatewayPayPal,
			GatewayPaymentID: "SALE-" + gid, GatewaySubscriptionID: gid, Amount: billing.Money{Amount: 99900, Currency: "USD"}}); err != nil {
			t.Fatal(err)
		}
	}
	own, _ := e.st.FindSubscriptionByGateway(e.ctx, billing.GatewayPayPal, "I-OWN")
	if u, _ := e.st.GetUser(e.ctx, "victim"); u.SubscriptionID != own.ID {
		t.Fatalf("access moved to %s, want it kept on %s", u.SubscriptionID, own.ID)
	}
}

// TestRefusedEventIsRejected proves a delivery refused for its content (a bad reference, a
// charge mismatch) is answered without error as "rejected" and stored as ignored with the
// reason, so the gateway stops retrying and a redelivery is a duplicate.
func TestRefusedEventIsRejected(t *testing.T) {
	e := newMoneyEnv(t)
	ev := billing.WebhookEvent{Gateway: billing.GatewayStripe, EventID: "evt_1", Type: "checkout.session.completed"}
	out, err := e.svc.HandleWebhookEvent(e.ctx, ev, func(context.Context) (bool, error) {
		_, err := e.svc.VerifyReference("victim:premium")
		return false, err
	})
	if err != nil || out != billing.EventOutcomeRejected {
		t.Fatalf("outcome %s, %v; want rejected, nil", out, err)
	}
	stored, _ := e.st.GetWebhookEvent(e.ctx, ev.Gateway, ev.EventID)
	if stored.State != billing.WebhookEventStateIgnored || !strings.Contains(stored.Error, "reference") {
		t.Fatalf("stored %+v, want ignored with the reason", stored)
	}
	if out, _ := e.svc.HandleWebhookEvent(e.ctx, ev, nil); out != billing.EventOutcomeDuplicate {
		t.Fatalf("redelivery: %s, want duplicate", out)
	}
}
