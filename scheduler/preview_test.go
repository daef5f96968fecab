package scheduler_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// TestAdminPreview proves GET /{job_id}/preview reports what a job would do and changes
// nothing: the subscription stays unwarned and no run is recorded.
func TestAdminPreview(t *testing.T) {
	defer noLeaks(t)
	f := newAdminFixture(t)
	defer shutdown(t, f.s)
	ctx := t.Context()
	now := f.clock.Now()
	plan := billing.Plan{ID: "basic", Name: "Basic", BillingCycle: billing.CycleMonthly, Price: billing.Money{Amount: 990, Currency: "BRL"}}
	user := billing.User{ID: "u", Email: "u@example.com"}
	sub := billing.Subscription{ID: "s", UserID: "u", PlanID: "basic", Status: billing.SubscriptionStatusActive, BillingCycle: billing.CycleMonthly,
		CurrentPeriodStart: now.AddDate(0, -1, 0), CurrentPeriodEnd: now.Add(48 * time.Hour), Gateway: billing.GatewayManual}
	for _, err := range []error{f.store.InsertPlan(ctx, &plan), f.store.InsertUser(ctx, &user), f.store.InsertSubscription(ctx, &sub)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	rec, body := f.do(t, "GET", "/"+billing.JobCheckExpiring+"/preview", adminToken)
	if rec.Code != 200 || body["total"] != float64(1) {
		t.Fatalf("preview: %d %s", rec.Code, rec.Body)
	}
	items := body["items"].([]any)
	if got := items[0].(map[string]any); got["subscription_id"] != "s" || got["action"] == "" {
		t.Fatalf("preview item %v", got)
	}
	if got, _ := f.store.GetSubscription(ctx, "s"); got.ExpirationWarningSent {
		t.Fatal("preview marked the subscription warned")
	}
	if runs, _ := f.store.ListJobRuns(ctx, billing.JobRunFilter{JobID: billing.JobCheckExpiring}); len(runs) != 0 {
		t.Fatalf("preview recorded %d runs", len(runs))
	}
	if rec, _ := f.do(t, "GET", "/slow/preview", adminToken); rec.Code != http.StatusNotFound {
		t.Fatalf("job without preview: %d, want 404", rec.Code)
	}
	if rec, _ := f.do(t, "GET", "/nope/preview", adminToken); rec.Code != http.StatusNotFound {
		t.Fatalf("unknown job: %d, want 404", rec.Code)
	}
	if rec, _ := f.do(t, "POST", "/"+billing.JobRenew+"/preview", adminToken); rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST preview: %d, want 405", rec.Code)
	}
	if rec, _ := f.do(t, "GET", "/"+billing.JobCheckExpiring+"/preview", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("preview without a token: %d, want 401", rec.Code)
	}
}
