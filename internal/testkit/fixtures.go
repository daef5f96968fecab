package testkit

import (
	"context"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// Plan returns an active plan with the cycle and a price in BRL centavos.
func Plan(id string, cycle billing.Cycle, amount int64) billing.Plan {
	return billing.Plan{
		ID: id, Name: "Plan " + id, BillingCycle: cycle, Price: billing.Money{Amount: amount, Currency: "BRL"},
		Active: true, CreatedAt: Epoch.Add(-365 * Day), UpdatedAt: Epoch.Add(-365 * Day),
	}
}

// User returns a user without access, email id@example.com, locale en.
func User(id string) billing.User {
	return billing.User{
		ID: id, Email: id + "@example.com", Name: "User " + id, Locale: "en", TimeZone: "UTC",
		CreatedAt: Epoch.Add(-365 * Day), UpdatedAt: Epoch.Add(-365 * Day),
	}
}

// UserWithAccess returns User(id) with access to the plan through the subscription until
// AccessUntil.
func UserWithAccess(id, planID, subscriptionID string, until time.Time) billing.User {
	u := User(id)
	u.PlanID, u.SubscriptionID, u.Status, u.AccessUntil = planID, subscriptionID, billing.SubscriptionStatusActive, until
	return u
}

// Subscription returns an active, manually renewed, monthly subscription whose current
// period ends at end, not yet warned.
func Subscription(id, userID, planID string, end time.Time) billing.Subscription {
	return billing.Subscription{
		ID: id, UserID: userID, PlanID: planID, Status: billing.SubscriptionStatusActive, BillingCycle: billing.CycleMonthly,
		CurrentPeriodStart: billing.AddMonths(end, -1), CurrentPeriodEnd: end, Gateway: billing.GatewayManual,
		CreatedAt: billing.AddMonths(end, -1), UpdatedAt: billing.AddMonths(end, -1),
	}
}

// AutoRenewing returns s charged by the gateway on its own: Gateway set and
// GatewaySubscriptionID "gw-" + s.ID.
func AutoRenewing(s billing.Subscription, gateway string) billing.Subscription {
	s.Gateway, s.GatewaySubscriptionID = gateway, "gw-"+s.ID
	return s
}

// Payment returns a pending Stripe payment of amount BRL centavos created at created.
func Payment(id, userID, planID string, amount int64, created time.Time) billing.Payment {
	return billing.Payment{
		ID: id, UserID: userID, PlanID: planID, Amount: billing.Money{Amount: amount, Currency: "BRL"},
		Status: billing.PaymentStatusPending, Gateway: billing.GatewayStripe, CreatedAt: created, UpdatedAt: created,
	}
}

// Session returns a live session expiring at expires.
func Session(id, userID string, expires time.Time) billing.Session {
	return billing.Session{ID: id, UserID: userID, ExpiresAt: expires, CreatedAt: expires.Add(-Day)}
}

// Seed inserts records (Plan, User, Subscription, Payment, Session, AuditEntry, or pointers
// to them) into st and fails the test on any error or unknown type.
func Seed(t testing.TB, st billing.Store, records ...any) {
	t.Helper()
	ctx := context.Background()
	for _, r := range records {
		var err error
		switch v := r.(type) {
		case billing.Plan:
			err = st.InsertPlan(ctx, &v)
		case *billing.Plan:
			err = st.InsertPlan(ctx, v)
		case billing.User:
			err = st.InsertUser(ctx, &v)
		case *billing.User:
			err = st.InsertUser(ctx, v)
		case billing.Subscription:
			err = st.InsertSubscription(ctx, &v)
		case *billing.Subscription:
			err = st.InsertSubscription(ctx, v)
		case billing.Payment:
			err = st.InsertPayment(ctx, &v)
		case *billing.Payment:
			err = st.InsertPayment(ctx, v)
		case billing.Session:
			err = st.InsertSession(ctx, &v)
		case *billing.Session:
			err = st.InsertSession(ctx, v)
		case billing.AuditEntry:
			err = st.InsertAudit(ctx, &v)
		case *billing.AuditEntry:
			err = st.InsertAudit(ctx, v)
		default:
			t.Fatalf("testkit.Seed: cannot insert %T", r)
		}
		if err != nil {
			t.Fatalf("testkit.Seed(%T): %v", r, err)
		}
	}
}

// HasAccess reports whether user id has access at clock's time; it fails the test when the
// user cannot be read.
func HasAccess(t testing.TB, users billing.UserStore, clock billing.Clock, id string) bool {
	t.Helper()
	u, err := users.GetUser(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return u.HasAccess(clock.Now())
}
