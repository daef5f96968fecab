package scheduler_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/scheduler"
	"github.com/renewkit/renewkit/store/memstore"
)

const (
	adminToken  = "admin-s3cret-token"
	viewerToken = "viewer-token-xyz"
	prefix      = "/api/admin/jobs"
)

// hostAuth is a host's authorizer: a valid admin token passes, a valid non-admin token is
// forbidden, anything else is unauthenticated.
func hostAuth(r *http.Request) error {
	if scheduler.BearerToken(adminToken)(r) == nil {
		return nil
	}
	if scheduler.BearerToken(viewerToken)(r) == nil {
		return scheduler.ErrForbidden
	}
	return scheduler.BearerToken(adminToken)(r)
}

type adminFixture struct {
	clock *clockwork.FakeClock
	store *memstore.Store
	s     *scheduler.Scheduler
	h     http.Handler
	block *blocker
}

func newAdminFixture(t *testing.T) *adminFixture {
	t.Helper()
	clock := clockwork.NewFakeClockAt(time.Date(2025, 10, 19, 10, 0, 0, 0, saoPaulo))
	st := memstore.New()
	svc, err := billing.NewService(st, testkit.NewNotifier(), billing.Config{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	b := newBlocker()
	jobs := append(svc.Jobs(), b.job("slow", "0 * * * *"))
	s := newScheduler(t, jobs, st, scheduler.Config{Clock: clock, Location: saoPaulo, ReplicaID: "r1"})
	start(t, s)
	h, err := scheduler.AdminHandler(s, scheduler.AdminOptions{Authorize: hostAuth})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(prefix+"/", http.StripPrefix(prefix, h))
	return &adminFixture{clock: clock, store: st, s: s, h: mux, block: b}
}

func (f *adminFixture) do(t *testing.T, method, path, token string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, prefix+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: Content-Type %q, body %s", method, path, ct, rec.Body)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s %s: body is not a JSON object: %v: %s", method, path, err, rec.Body)
	}
	return rec, body
}

func TestAdminHandlerRequiresAuthorizer(t *testing.T) {
	s := newScheduler(t, []billing.Job{countingJob("a", "0 9 * * *", new(atomic.Int64))}, memstore.New(), scheduler.Config{})
	if _, err := scheduler.AdminHandler(s, scheduler.AdminOptions{}); !errors.Is(err, scheduler.ErrInvalidConfig) || !strings.Contains(err.Error(), "Authorize is required") {
		t.Fatalf("AdminHandler without Authorize = %v", err)
	}
	if _, err := scheduler.AdminHandler(nil, scheduler.AdminOptions{Authorize: hostAuth}); err == nil {
		t.Fatal("AdminHandler(nil) accepted")
	}
}

func TestBearerToken(t *testing.T) {
	auth := scheduler.BearerToken(adminToken)
	for _, tc := range []struct {
		header string
		ok     bool
	}{
		{"", false}, {"Bearer", false}, {"Basic " + adminToken, false}, {"Bearer wrong", false},
		{"Bearer " + adminToken + "x", false}, {"Bearer " + adminToken, true}, {"bearer " + adminToken, true},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		err := auth(r)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err = %v", tc.header, err)
		}
		if err != nil && (!errors.Is(err, scheduler.ErrUnauthenticated) || strings.Contains(err.Error(), "wrong") || strings.Contains(err.Error(), adminToken)) {
			t.Errorf("%q: error %q must be ErrUnauthenticated and not echo the token", tc.header, err)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer ")
	if scheduler.BearerToken("")(r) == nil {
		t.Error("an empty configured token accepted a request")
	}
}

func TestAdminAuthMatrix(t *testing.T) {
	defer noLeaks(t)
	f := newAdminFixture(t)
	routes := []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/" + billing.JobRenew}, {"POST", "/" + billing.JobRenew + "/pause"},
		{"POST", "/" + billing.JobRenew + "/resume"}, {"POST", "/" + billing.JobRenew + "/trigger"},
		{"GET", "/stats/summary"}, {"GET", "/no_such_job"}, {"DELETE", "/"},
	}
	for _, rt := range routes {
		for _, c := range []struct {
			name, token string
			status      int
		}{{"none", "", 401}, {"wrong token", "nope-" + adminToken, 401}, {"not admin", viewerToken, 403}} {
			rec, body := f.do(t, rt.method, rt.path, c.token)
			if rec.Code != c.status {
				t.Errorf("%s %s as %s: %d, want %d", rt.method, rt.path, c.name, rec.Code, c.status)
			}
			msg, _ := body["error"].(string)
			if msg == "" || strings.Contains(rec.Body.String(), adminToken) || strings.Contains(rec.Body.String(), viewerToken) {
				t.Errorf("%s %s as %s: body %s", rt.method, rt.path, c.name, rec.Body)
			}
			if c.status == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: 401 without WWW-Authenticate", rt.method, rt.path)
			}
		}
		rec, _ := f.do(t, rt.method, rt.path, adminToken)
		if rec.Code == 401 || rec.Code == 403 {
			t.Errorf("%s %s as admin: %d", rt.method, rt.path, rec.Code)
		}
	}
	shutdown(t, f.s)
}

func TestAdminRoutes(t *testing.T) {
	defer noLeaks(t)
	f := newAdminFixture(t)

	// GET /: the seed's shape.
	rec, body := f.do(t, "GET", "/", adminToken)
	if rec.Code != 200 || body["total"] != float64(6) {
		t.Fatalf("GET /: %d %s", rec.Code, rec.Body)
	}
	jobs := body["jobs"].([]any)
	first := jobs[0].(map[string]any)
	for _, k := range []string{"id", "name", "next_run", "trigger", "paused", "last_run"} {
		if _, ok := first[k]; !ok {
			t.Errorf("job lacks %q: %v", k, first)
		}
	}
	if first["id"] != billing.JobCheckExpiring || first["next_run"] != "2025-10-20T09:00:00-03:00" ||
		first["trigger"] != "cron[day_of_week='*', hour='9', minute='0']" || first["paused"] != false || first["last_run"] != nil {
		t.Errorf("first job = %v", first)
	}

	// POST trigger: runs and returns the run record.
	rec, body = f.do(t, "POST", "/"+billing.JobCheckExpiring+"/trigger", adminToken)
	if rec.Code != 200 || body["status"] != "succeeded" || body["trigger"] != "manual" || body["job_id"] != billing.JobCheckExpiring {
		t.Fatalf("trigger: %d %s", rec.Code, rec.Body)
	}
	result := body["result"].(map[string]any)
	if result["success"] != true || result["total_found"] != float64(0) || result["notifications_sent"] != float64(0) {
		t.Errorf("trigger result = %v", result)
	}
	if _, err := time.Parse(time.RFC3339, body["started_at"].(string)); err != nil {
		t.Errorf("started_at: %v", err)
	}
	runID := body["id"].(string)

	// GET /{job_id}: the job and its recent runs.
	rec, body = f.do(t, "GET", "/"+billing.JobCheckExpiring, adminToken)
	if rec.Code != 200 {
		t.Fatalf("GET job: %d %s", rec.Code, rec.Body)
	}
	job := body["job"].(map[string]any)
	runs := body["runs"].([]any)
	if job["id"] != billing.JobCheckExpiring || job["last_run"] == nil || len(runs) != 1 || runs[0].(map[string]any)["id"] != runID {
		t.Errorf("GET job = %s", rec.Body)
	}

	// Pause and resume.
	rec, body = f.do(t, "POST", "/"+billing.JobRenew+"/pause", adminToken)
	if rec.Code != 200 || body["paused"] != true || body["next_run"] != nil {
		t.Errorf("pause: %d %s", rec.Code, rec.Body)
	}
	rec, body = f.do(t, "POST", "/"+billing.JobRenew+"/resume", adminToken)
	if rec.Code != 200 || body["paused"] != false || body["next_run"] != "2025-10-20T02:00:00-03:00" {
		t.Errorf("resume: %d %s", rec.Code, rec.Body)
	}

	// Async trigger: 202 with the run id.
	rec, body = f.do(t, "POST", "/"+billing.JobRenew+"/trigger?async=true", adminToken)
	if rec.Code != 202 || body["run_id"] == "" || body["job_id"] != billing.JobRenew {
		t.Fatalf("async trigger: %d %s", rec.Code, rec.Body)
	}
	asyncID := body["run_id"].(string)
	eventually(t, "async run", func() bool {
		h, _ := f.s.History(context.Background(), billing.JobRenew, 1)
		return len(h) == 1 && h[0].ID == asyncID && h[0].Status == billing.RunStatusSucceeded
	})

	// 409 while running.
	rec, _ = f.do(t, "POST", "/slow/trigger?async=true", adminToken)
	if rec.Code != 202 {
		t.Fatalf("slow trigger: %d", rec.Code)
	}
	<-f.block.started
	rec, body = f.do(t, "POST", "/slow/trigger", adminToken)
	if rec.Code != 409 || !strings.Contains(body["error"].(string), "already running") {
		t.Errorf("trigger while running: %d %s", rec.Code, rec.Body)
	}
	close(f.block.release)

	// Stats.
	if err := f.store.InsertSubscription(context.Background(), &billing.Subscription{
		UserID: "u1", PlanID: "p1", Status: billing.SubscriptionStatusActive,
		CurrentPeriodStart: f.clock.Now().AddDate(0, -1, 0), CurrentPeriodEnd: f.clock.Now().Add(48 * time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "slow run to finish", func() bool { info, _ := f.s.Get(context.Background(), "slow"); return !info.Running })
	rec, body = f.do(t, "GET", "/stats/summary", adminToken)
	if rec.Code != 200 {
		t.Fatalf("stats: %d %s", rec.Code, rec.Body)
	}
	totals := body["totals"].(map[string]any)
	if totals["runs"] != float64(3) || totals["succeeded"] != float64(3) || totals["failures"] != float64(0) || totals["success_rate"] != float64(1) {
		t.Errorf("totals = %v", totals)
	}
	var expiring map[string]any
	for _, j := range body["jobs"].([]any) {
		if m := j.(map[string]any); m["job_id"] == billing.JobCheckExpiring {
			expiring = m
		}
	}
	for _, k := range []string{"runs", "failures", "success_rate", "avg_duration_ms", "last_duration_ms", "last_run"} {
		if _, ok := expiring[k]; !ok {
			t.Errorf("job stats lack %q: %v", k, expiring)
		}
	}
	subs := body["subscriptions"].(map[string]any)
	if subs["by_status"].(map[string]any)["active"] != float64(1) || subs["due"].(map[string]any)["expiring_within_3d"] != float64(1) {
		t.Errorf("subscriptions = %v", subs)
	}
	shutdown(t, f.s)
}

func TestAdminErrors(t *testing.T) {
	defer noLeaks(t)
	f := newAdminFixture(t)
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/no_such_job", 404, ""},
		{"POST", "/no_such_job/trigger", 404, ""},
		{"POST", "/no_such_job/pause", 404, ""},
		{"GET", "/" + billing.JobRenew + "/unknown", 404, ""},
		{"GET", "/a/b/c", 404, ""},
		{"DELETE", "/", 405, "GET, HEAD"},
		{"POST", "/", 405, "GET, HEAD"},
		{"POST", "/stats/summary", 405, "GET, HEAD"},
		{"DELETE", "/" + billing.JobRenew, 405, "GET, HEAD"},
		{"GET", "/" + billing.JobRenew + "/trigger", 405, "POST"},
		{"PUT", "/" + billing.JobRenew + "/pause", 405, "POST"},
	} {
		rec, body := f.do(t, tc.method, tc.path, adminToken)
		if rec.Code != tc.status || rec.Header().Get("Allow") != tc.allow || body["error"] == "" {
			t.Errorf("%s %s: %d Allow=%q %s", tc.method, tc.path, rec.Code, rec.Header().Get("Allow"), rec.Body)
		}
	}
	shutdown(t, f.s)
	rec, _ := f.do(t, "POST", "/"+billing.JobRenew+"/trigger", adminToken)
	if rec.Code != 503 {
		t.Errorf("trigger after shutdown: %d", rec.Code)
	}
}
