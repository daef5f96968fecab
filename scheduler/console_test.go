package scheduler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/scheduler"
	"github.com/renewkit/renewkit/store/memstore"
)

var _ scheduler.ConsoleSource = (*billing.Service)(nil)

type consoleFixture struct {
	st  *memstore.Store
	svc *billing.Service
	n   *testkit.Notifier
	h   http.Handler
}

// newConsoleFixture seeds 7 subscriptions created an hour apart (s-0 oldest): s-0..s-4
// active and manual, ending in two days, s-5 inactive, s-6 cancelled at stripe; users
// u-0..u-6; one approved and one failed payment of s-0. The warning job has run once, and
// u-1's warning failed for good.
func newConsoleFixture(t *testing.T) *consoleFixture {
	t.Helper()
	st := memstore.New()
	now := testkit.Epoch
	recs := []any{testkit.Plan("p", billing.CycleMonthly, 1000), testkit.Plan("q", billing.CycleMonthly, 2000)}
	for i := range 7 {
		uid, sid := fmt.Sprintf("u-%d", i), fmt.Sprintf("s-%d", i)
		sub := testkit.Subscription(sid, uid, "p", now.Add(2*24*time.Hour))
		sub.CreatedAt = now.Add(time.Duration(i-10) * time.Hour)
		switch i {
		case 5:
			sub.Status, sub.PlanID = billing.SubscriptionStatusInactive, "q"
		case 6:
			sub = testkit.AutoRenewing(sub, billing.GatewayStripe)
			sub.Status = billing.SubscriptionStatusCancelled
		}
		recs = append(recs, testkit.UserWithAccess(uid, "p", sid, now.Add(2*24*time.Hour)), sub)
	}
	ok := testkit.Payment("pay-ok", "u-0", "p", 1000, now.Add(-2*time.Hour))
	ok.SubscriptionID, ok.Status = "s-0", billing.PaymentStatusApproved
	bad := testkit.Payment("pay-bad", "u-0", "p", 1000, now.Add(-time.Hour))
	bad.SubscriptionID, bad.Status = "s-0", billing.PaymentStatusFailed
	testkit.Seed(t, st, append(recs, ok, bad)...)
	n := testkit.NewNotifier()
	n.FailPermanently(func(x billing.Notification) bool { return x.To.UserID == "u-1" })
	svc, err := billing.NewService(st, n, billing.Config{Clock: testkit.NewClock(now)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CheckExpiringSubscriptions(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.Heal()
	h, err := scheduler.ConsoleHandler(svc, scheduler.ConsoleOptions{Authorize: hostAuth})
	if err != nil {
		t.Fatal(err)
	}
	return &consoleFixture{st: st, svc: svc, n: n, h: h}
}

func (f *consoleFixture) call(t *testing.T, method, target, token string, hdr ...string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s %s: body is not JSON (%d): %q", method, target, rec.Code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: Content-Type %q", method, target, ct)
	}
	return rec.Code, body
}

func listIDs(t *testing.T, body map[string]any, field, key string) []string {
	t.Helper()
	items, ok := body[field].([]any)
	if !ok {
		t.Fatalf("no %s list in %v", field, body)
	}
	var out []string
	for _, it := range items {
		out = append(out, fmt.Sprint(it.(map[string]any)[key]))
	}
	return out
}

func TestConsoleAuthMatrix(t *testing.T) {
	f := newConsoleFixture(t)
	routes := []struct{ method, target string }{
		{"GET", "/subscriptions"}, {"GET", "/subscriptions/s-0"}, {"GET", "/subscriptions/s-0/timeline"},
		{"GET", "/subscriptions/s-0/rerun?job=" + billing.JobCheckExpiring}, {"POST", "/subscriptions/s-0/rerun?job=" + billing.JobCheckExpiring},
		{"GET", "/payments"}, {"GET", "/notifications"}, {"POST", "/notifications/resend?key=x"}, {"GET", "/nope"},
	}
	for _, rt := range routes {
		if code, _ := f.call(t, rt.method, rt.target, ""); code != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d, want 401", rt.method, rt.target, code)
		}
		if code, _ := f.call(t, rt.method, rt.target, "wrong"); code != http.StatusUnauthorized {
			t.Errorf("%s %s with a bad token: %d, want 401", rt.method, rt.target, code)
		}
		if code, _ := f.call(t, rt.method, rt.target, viewerToken); code != http.StatusForbidden {
			t.Errorf("%s %s as a viewer: %d, want 403", rt.method, rt.target, code)
		}
		if code, _ := f.call(t, rt.method, rt.target, adminToken); code == http.StatusUnauthorized || code == http.StatusForbidden {
			t.Errorf("%s %s as an admin: %d", rt.method, rt.target, code)
		}
	}
	// The viewer's refused POST changed nothing.
	if audit, _ := f.st.ListAudit(context.Background(), billing.AuditFilter{Action: billing.AuditSubscriptionRerun}); len(audit) != 1 {
		t.Fatalf("rerun audited %d times, want once (the admin's)", len(audit))
	}
}

func TestConsoleSubscriptionsPaginate(t *testing.T) {
	f := newConsoleFixture(t)
	var got []string
	cursor, pages := "", 0
	for {
		pages++
		code, body := f.call(t, "GET", "/subscriptions?limit=3&cursor="+url.QueryEscape(cursor), adminToken)
		if code != http.StatusOK {
			t.Fatalf("page %d: %d %v", pages, code, body)
		}
		ids := listIDs(t, body, "subscriptions", "id")
		if len(ids) > 3 {
			t.Fatalf("page %d has %d subscriptions", pages, len(ids))
		}
		got = append(got, ids...)
		if cursor = body["next_cursor"].(string); cursor == "" {
			break
		}
	}
	want := []string{"s-6", "s-5", "s-4", "s-3", "s-2", "s-1", "s-0"}
	if !slices.Equal(got, want) || pages != 3 {
		t.Fatalf("paged %v in %d pages, want %v in 3", got, pages, want)
	}
	for _, bad := range []string{"limit=0", "limit=201", "limit=x", "cursor=%21%21", "status=gone", "q=" + strings.Repeat("a", 201)} {
		if code, body := f.call(t, "GET", "/subscriptions?"+bad, adminToken); code != http.StatusBadRequest || body["error"] == "" {
			t.Errorf("?%s: %d %v, want 400 with an error", bad, code, body)
		}
	}
}

func TestConsoleFilters(t *testing.T) {
	f := newConsoleFixture(t)
	cases := []struct {
		target, field, key string
		want               []string
	}{
		{"/subscriptions?status=inactive,cancelled", "subscriptions", "id", []string{"s-6", "s-5"}},
		{"/subscriptions?gateway=stripe", "subscriptions", "id", []string{"s-6"}},
		{"/subscriptions?plan=q", "subscriptions", "id", []string{"s-5"}},
		{"/subscriptions?q=u-3%40example.com", "subscriptions", "id", []string{"s-3"}},
		{"/subscriptions?q=gw-s-6", "subscriptions", "id", []string{"s-6"}},
		{"/subscriptions?q=s-2", "subscriptions", "id", []string{"s-2"}},
		{"/subscriptions?q=nobody", "subscriptions", "id", nil},
		{"/payments?status=failed", "payments", "id", []string{"pay-bad"}},
		{"/payments?subscription_id=s-0", "payments", "id", []string{"pay-bad", "pay-ok"}},
		{"/notifications?status=failed", "notifications", "subscription_id", []string{"s-1"}},
		{"/notifications?kind=expiring&subscription_id=s-4", "notifications", "subscription_id", []string{"s-4"}},
		{"/notifications?kind=welcome", "notifications", "key", nil},
	}
	for _, tc := range cases {
		code, body := f.call(t, "GET", tc.target, adminToken)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %v", tc.target, code, body)
		}
		if got := listIDs(t, body, tc.field, tc.key); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.target, got, tc.want)
		}
	}
	for _, bad := range []string{"/payments?status=paid", "/notifications?kind=sms", "/notifications?status=lost"} {
		if code, _ := f.call(t, "GET", bad, adminToken); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, code)
		}
	}
}

func TestConsoleSubscriptionAndTimeline(t *testing.T) {
	f := newConsoleFixture(t)
	code, body := f.call(t, "GET", "/subscriptions/s-0", adminToken)
	if code != http.StatusOK || body["user"].(map[string]any)["email"] != "u-0@example.com" {
		t.Fatalf("GET /subscriptions/s-0: %d %v", code, body)
	}
	code, body = f.call(t, "GET", "/subscriptions/s-0/timeline", adminToken)
	if code != http.StatusOK {
		t.Fatalf("timeline: %d %v", code, body)
	}
	var sources []string
	for _, ev := range body["events"].([]any) {
		e := ev.(map[string]any)
		sources = append(sources, e["source"].(string)+":"+e["what"].(string))
	}
	for _, want := range []string{"notification:expiring", "job:" + billing.AuditWarningSent, "payment:approved", "payment:failed"} {
		if !slices.Contains(sources, want) {
			t.Errorf("timeline lacks %s: %v", want, sources)
		}
	}
	for _, target := range []string{"/subscriptions/nope", "/subscriptions/nope/timeline", "/subscriptions/nope/rerun?job=" + billing.JobCheckExpiring,
		"/subscriptions/s-0/rerun?job=nope", "/subscriptions/s-0/other"} {
		if code, _ := f.call(t, "GET", target, adminToken); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", target, code)
		}
	}
	if code, _ := f.call(t, "POST", "/notifications/resend?key=nope", adminToken); code != http.StatusNotFound {
		t.Errorf("resend of an unknown key: %d, want 404", code)
	}
	req := httptest.NewRequest("DELETE", "/subscriptions/s-0", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") == "" {
		t.Fatalf("DELETE: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
}

func TestConsoleActionsAreAuditedWithTheOperator(t *testing.T) {
	f := newConsoleFixture(t)
	_, body := f.call(t, "GET", "/notifications?status=failed", adminToken)
	key := listIDs(t, body, "notifications", "key")[0]
	code, body := f.call(t, "POST", "/notifications/resend?key="+url.QueryEscape(key), adminToken, "X-Renewkit-Operator", "Maria Souza")
	if code != http.StatusOK || body["status"] != billing.NotificationSent {
		t.Fatalf("resend: %d %v", code, body)
	}
	if code, _ := f.call(t, "POST", "/notifications/resend?key="+url.QueryEscape(key), adminToken); code != http.StatusConflict {
		t.Fatalf("second resend: %d, want 409", code)
	}
	if code, _ := f.call(t, "POST", "/notifications/resend", adminToken); code != http.StatusBadRequest {
		t.Fatalf("resend without key: %d, want 400", code)
	}
	// Dry run, then the run itself.
	code, body = f.call(t, "GET", "/subscriptions/s-5/rerun?job="+billing.JobProcessExpired, adminToken)
	if code != http.StatusOK || body["dry_run"] != true {
		t.Fatalf("dry run: %d %v", code, body)
	}
	code, body = f.call(t, "POST", "/subscriptions/s-2/rerun?job="+billing.JobCheckExpiring, adminToken, "X-Renewkit-Operator", "<script>")
	if code != http.StatusOK || body["dry_run"] != false {
		t.Fatalf("rerun: %d %v", code, body)
	}
	audit, _ := f.st.ListAudit(context.Background(), billing.AuditFilter{Action: billing.AuditNotificationResent})
	if len(audit) != 1 || audit[0].Actor != "Maria Souza" {
		t.Fatalf("resend audit %+v, want actor Maria Souza", audit)
	}
	audit, _ = f.st.ListAudit(context.Background(), billing.AuditFilter{Action: billing.AuditSubscriptionRerun})
	if len(audit) != 1 || audit[0].Actor != "admin" || audit[0].EntityID != "s-2" {
		t.Fatalf("rerun audit %+v, want actor admin (the bad name refused) on s-2", audit)
	}
}

func TestAdminJobViewIncludesRunProgress(t *testing.T) {
	defer noLeaks(t)
	f := newAdminFixture(t)
	defer shutdown(t, f.s)
	for i := range 3 {
		uid, sid := fmt.Sprintf("u%d", i), fmt.Sprintf("s%d", i)
		testkit.Seed(t, f.store, testkit.UserWithAccess(uid, "p", sid, f.clock.Now().Add(48*time.Hour)),
			testkit.Subscription(sid, uid, "p", f.clock.Now().Add(48*time.Hour)))
	}
	testkit.Seed(t, f.store, testkit.Plan("p", billing.CycleMonthly, 1000))
	_, body := f.do(t, "GET", "/"+billing.JobCheckExpiring, adminToken)
	if _, has := body["job"].(map[string]any)["progress"]; has {
		t.Fatalf("progress before any run: %v", body["job"])
	}
	if rec, _ := f.do(t, "POST", "/"+billing.JobCheckExpiring+"/trigger", adminToken); rec.Code != http.StatusOK {
		t.Fatalf("trigger: %d", rec.Code)
	}
	_, body = f.do(t, "GET", "/"+billing.JobCheckExpiring, adminToken)
	p, ok := body["job"].(map[string]any)["progress"].(map[string]any)
	if !ok {
		t.Fatalf("no progress after a run: %v", body["job"])
	}
	if p["percent"] != 100.0 || p["claimed"] != 3.0 || p["done"] != 3.0 || p["total_estimate"] != 3.0 || p["running"] != false || p["status"] != "succeeded" {
		t.Fatalf("progress %v, want 3 of 3 done, 100%%, succeeded", p)
	}
}
