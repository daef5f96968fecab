package dashboard_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/scheduler"
	"github.com/renewkit/renewkit/scheduler/dashboard"
	"github.com/renewkit/renewkit/store/memstore"
)

// consoleEnv is the billing jobs on a memstore with three subscriptions due for the
// warning (u-1's address refuses mail for good), a snapshot, and the dashboard with the
// console on, under /admin with token login. The warning job has run once.
func newConsoleEnv(t *testing.T) (*env, *memstore.Store, string) {
	t.Helper()
	st := memstore.New()
	now := time.Now().UTC()
	recs := []any{testkit.Plan("p", billing.CycleMonthly, 1000)}
	for _, id := range []string{"0", "1", "2"} {
		uid, sid := "u-"+id, "s-"+id
		recs = append(recs, testkit.UserWithAccess(uid, "p", sid, now.Add(48*time.Hour)), testkit.Subscription(sid, uid, "p", now.Add(48*time.Hour)))
	}
	testkit.Seed(t, st, recs...)
	n := testkit.NewNotifier()
	n.FailPermanently(func(x billing.Notification) bool { return x.To.UserID == "u-1" })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := billing.NewService(st, n, billing.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s, err := scheduler.NewScheduler(svc.Jobs(), st, scheduler.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	if _, err := s.Trigger(context.Background(), billing.JobCheckExpiring); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.TakeSnapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.Heal()
	h, err := dashboard.New(s, dashboard.Config{Authorize: dashboard.TokenAuthorizer(token), LoginToken: token, Logger: quiet,
		Console: svc, Insights: svc, EmailView: func(ctx context.Context, key string) (dashboard.EmailMessage, error) {
			sent, err := svc.SentNotification(ctx, key)
			return dashboard.EmailMessage{Subject: "subject of " + sent.Key, HTML: "<p>Hello <b>" + sent.To.Name + "</b></p>",
				Text: "Hello " + sent.To.Name}, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e := &env{t: t, s: s, srv: srv, prefix: "/admin"}
	failed, _, err := svc.ListNotifications(context.Background(), billing.NotificationQuery{Status: billing.NotificationFailed})
	if err != nil || len(failed) != 1 {
		t.Fatalf("failed notifications %+v, %v", failed, err)
	}
	return e, st, failed[0].Key
}

func operatorCookie(t *testing.T, e *env, name string) []reqOpt {
	t.Helper()
	r := e.do("POST", "/login", url.Values{"token": {token}, "operator": {name}})
	var out []reqOpt
	for _, c := range (&http.Response{Header: r.hdr}).Cookies() {
		out = append(out, func(req *http.Request) { req.AddCookie(c) })
	}
	if len(out) != 2 {
		t.Fatalf("login set %d cookies, want the session and the operator", len(out))
	}
	return out
}

func TestConsolePagesRender(t *testing.T) {
	e, _, failedKey := newConsoleEnv(t)
	auth := bearer(token)
	pages := []struct {
		path string
		code int
		want []string
	}{
		{"/", 200, []string{`id="chart-status"`, "<svg", `id="chart-cancellations"`, `subscriptions" id="nav-subscriptions"`, `email-log" id="nav-emails"`}},
		{"/subscriptions", 200, []string{`data-sub="s-0"`, `data-sub="s-1"`, `data-sub="s-2"`}},
		{"/subscriptions?q=u-2%40", 200, []string{`data-sub="s-2"`}},
		{"/subscriptions?status=inactive", 200, []string{"No subscription matches."}},
		{"/subscriptions?status=lost", 400, []string{`role="alert"`, "lost"}},
		{"/subscriptions/s-1", 200, []string{`data-source="notification" data-what="expiring"`, `class="resend-link"`, `data-source="job"`}},
		{"/subscriptions/nope", 404, nil},
		{"/subscriptions/s-0/rerun?job=" + billing.JobCheckExpiring, 200, []string{`id="rerun-confirm"`, "Dry run"}},
		{"/subscriptions/s-0/rerun?job=nope", 404, nil},
		{"/email-log", 200, []string{`data-key="` + failedKey + `"`}},
		{"/email-log?status=failed&kind=expiring", 200, []string{`data-key="` + failedKey + `"`}},
		{"/email-log?kind=sms", 400, []string{"sms"}},
		{"/email-log/view?key=" + url.QueryEscape(failedKey), 200, []string{"subject of " + failedKey, "Hello User u-1", `sandbox=""`}},
		{"/email-log/view?key=nope", 404, nil},
		{"/email-log/resend?key=" + url.QueryEscape(failedKey), 200, []string{`id="resend-confirm"`}},
		{"/jobs/" + billing.JobCheckExpiring, 200, []string{`id="chart-duration"`, `id="run-progress"`, `static/console.js`}},
	}
	for _, p := range pages {
		r := e.do("GET", p.path, nil, auth)
		if r.code != p.code {
			t.Errorf("GET %s: %d, want %d", p.path, r.code, p.code)
			continue
		}
		for _, w := range p.want {
			if !strings.Contains(r.body, w) {
				t.Errorf("GET %s lacks %q", p.path, w)
			}
		}
		for _, bad := range []string{"ZgotmplZ", "<no value>", "template:"} {
			if strings.Contains(r.body, bad) {
				t.Errorf("GET %s contains %q", p.path, bad)
			}
		}
	}
	r := e.do("GET", "/email-log/view/html?key="+url.QueryEscape(failedKey), nil, auth)
	if csp := r.hdr.Get("Content-Security-Policy"); r.code != 200 || !strings.Contains(csp, "sandbox") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("email HTML part: %d, CSP %q", r.code, csp)
	}
	r = e.do("GET", "/jobs/"+billing.JobCheckExpiring+"/progress", nil, auth)
	var prog struct {
		Running  bool                   `json:"running"`
		Progress *scheduler.RunProgress `json:"progress"`
	}
	if err := json.Unmarshal([]byte(r.body), &prog); err != nil || prog.Progress == nil || prog.Progress.Percent != 100 || prog.Progress.Done != 3 {
		t.Errorf("progress JSON %s (%v): want the finished run at 100%%, 3 done", r.body, err)
	}
	if r := e.do("GET", "/static/console.js", nil); r.code != 200 || !strings.HasPrefix(r.hdr.Get("Content-Type"), "text/javascript") {
		t.Errorf("script: %d %q", r.code, r.hdr.Get("Content-Type"))
	}
	for _, p := range []string{"/subscriptions", "/email-log", "/jobs/" + billing.JobCheckExpiring + "/progress"} {
		if r := e.do("GET", p, nil); r.code != http.StatusSeeOther {
			t.Errorf("GET %s without credentials: %d, want the login redirect", p, r.code)
		}
	}
}

func TestConsoleActionsNeedConfirmationSameOriginAndNameTheOperator(t *testing.T) {
	e, st, failedKey := newConsoleEnv(t)
	ctx := context.Background()
	op := operatorCookie(t, e, "Maria Souza")
	form := url.Values{"key": {failedKey}}
	if r := e.do("POST", "/email-log/resend", form, op...); r.code != http.StatusBadRequest {
		t.Fatalf("resend without confirmation: %d", r.code)
	}
	form.Set("confirm", "yes")
	if r := e.do("POST", "/email-log/resend", form, append(op, header("Sec-Fetch-Site", "cross-site"))...); r.code != http.StatusForbidden {
		t.Fatalf("cross-site resend: %d", r.code)
	}
	if n, _ := st.GetNotification(ctx, failedKey); n.Status != billing.NotificationFailed {
		t.Fatalf("a refused resend changed the record: %+v", n)
	}
	r := e.do("POST", "/email-log/resend", form, op...)
	if r.code != http.StatusSeeOther || !strings.Contains(r.location(), "/admin/subscriptions/s-1?flash=") {
		t.Fatalf("resend: %d to %q", r.code, r.location())
	}
	if n, _ := st.GetNotification(ctx, failedKey); n.Status != billing.NotificationSent {
		t.Fatalf("after resend: %+v", n)
	}
	if r := e.do("POST", "/email-log/resend", form, op...); r.code != http.StatusConflict {
		t.Fatalf("second resend: %d, want 409", r.code)
	}

	rerun := url.Values{"job": {billing.JobCheckExpiring}}
	if r := e.do("POST", "/subscriptions/s-0/rerun", rerun, op...); r.code != http.StatusBadRequest {
		t.Fatalf("rerun without confirmation: %d", r.code)
	}
	rerun.Set("confirm", "yes")
	// A forged operator cookie names nobody: the action is audited as admin.
	forged := []reqOpt{op[0], func(req *http.Request) {
		req.AddCookie(&http.Cookie{Name: dashboard.OperatorCookie, Value: "TWFsbG9yeQ.00"})
	}}
	if r := e.do("POST", "/subscriptions/s-0/rerun", rerun, forged...); r.code != http.StatusSeeOther {
		t.Fatalf("rerun: %d %s", r.code, r.body)
	}
	resent, _ := st.ListAudit(ctx, billing.AuditFilter{Action: billing.AuditNotificationResent})
	reruns, _ := st.ListAudit(ctx, billing.AuditFilter{Action: billing.AuditSubscriptionRerun})
	if len(resent) != 1 || resent[0].Actor != "Maria Souza" || len(reruns) != 1 || reruns[0].Actor != "admin" || reruns[0].EntityID != "s-0" {
		t.Fatalf("audit: resent %+v, reruns %+v", resent, reruns)
	}
}
