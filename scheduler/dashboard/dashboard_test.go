package dashboard_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/scheduler"
	"github.com/renewkit/renewkit/scheduler/dashboard"
	"github.com/renewkit/renewkit/store/memstore"
)

const token = "dashboard-test-token-0123456789"

type result struct {
	Success    bool `json:"success"`
	TotalFound int  `json:"total_found"`
	Processed  int  `json:"processed"`
}

func (r result) Found() int    { return r.TotalFound }
func (r result) Failures() int { return 0 }

// env is a scheduler with two jobs (alpha succeeds, beta fails) and its dashboard mounted
// under prefix with http.StripPrefix on a local server.
type env struct {
	t      *testing.T
	s      *scheduler.Scheduler
	srv    *httptest.Server
	prefix string
}

func newEnv(t *testing.T, prefix string, opts dashboard.Config) *env {
	t.Helper()
	jobs := []billing.Job{
		{ID: "alpha", Name: "Alpha job", Description: "does alpha things", Schedule: "0 9 * * *",
			Run: func(context.Context) (billing.Result, error) {
				return result{Success: true, TotalFound: 3, Processed: 3}, nil
			}},
		{ID: "beta", Name: "Beta job", Schedule: "30 0 * * *",
			Run: func(context.Context) (billing.Result, error) {
				return result{}, errors.New("gateway <unreachable>")
			}},
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	loc, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		t.Fatal(err)
	}
	s, err := scheduler.NewScheduler(jobs, memstore.New(), scheduler.Config{Logger: quiet, Location: loc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	if opts.Authorize == nil {
		opts.Authorize = dashboard.TokenAuthorizer(token)
	}
	opts.Logger = quiet
	h, err := dashboard.New(s, opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(prefix+"/", http.StripPrefix(prefix, h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{t: t, s: s, srv: srv, prefix: prefix}
}

type reqOpt func(*http.Request)

func bearer(tok string) reqOpt {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func cookie(v string) reqOpt {
	return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: dashboard.CookieName, Value: v}) }
}

func header(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

type response struct {
	code int
	hdr  http.Header
	body string
	url  *url.URL // the request URL, to resolve Location against
}

// location resolves the Location header against the request URL, as a browser does.
func (r response) location() string {
	loc := r.hdr.Get("Location")
	if loc == "" {
		return ""
	}
	u, err := r.url.Parse(loc)
	if err != nil {
		return "bad location " + loc
	}
	return u.RequestURI()
}

// do sends method path (relative to the mount prefix) without following redirects. A form
// makes it a form POST.
func (e *env) do(method, path string, form url.Values, opts ...reqOpt) response {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.srv.URL+e.prefix+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, o := range opts {
		o(req)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{code: resp.StatusCode, hdr: resp.Header, body: string(b), url: req.URL}
}

func (e *env) paused(id string) bool {
	e.t.Helper()
	j, err := e.s.Get(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return j.Paused
}

func (e *env) runs(id string) []billing.JobRun {
	e.t.Helper()
	runs, err := e.s.History(context.Background(), id, 10)
	if err != nil {
		e.t.Fatal(err)
	}
	return runs
}

// Each row proves who gets in: valid bearer or login cookie pass; without valid
// credentials a GET is sent to the login form when token login is on and answered 401
// otherwise; a POST is always 401; an authenticated non-admin gets 403.
func TestAuthMatrix(t *testing.T) {
	session := loginCookie(t, newEnv(t, "/admin", dashboard.Config{LoginToken: token}))
	forbidden := func(*http.Request) error { return fmt.Errorf("%w: operator is a viewer", scheduler.ErrForbidden) }
	cases := []struct {
		name         string
		opts         dashboard.Config
		method, path string
		req          []reqOpt
		code         int
		location     string
	}{
		{"no credentials, login on: overview", dashboard.Config{LoginToken: token}, "GET", "/", nil, 303, "/admin/login"},
		{"no credentials, login on: job page", dashboard.Config{LoginToken: token}, "GET", "/jobs/alpha", nil, 303, "/admin/login"},
		{"no credentials, login on: POST", dashboard.Config{LoginToken: token}, "POST", "/jobs/alpha/pause", nil, 401, ""},
		{"no credentials, login off", dashboard.Config{}, "GET", "/", nil, 401, ""},
		{"no credentials, login off: job page", dashboard.Config{}, "GET", "/jobs/alpha", nil, 401, ""},
		{"wrong cookie, login on", dashboard.Config{LoginToken: token}, "GET", "/", []reqOpt{cookie("forged")}, 303, "/admin/login"},
		{"token as cookie value", dashboard.Config{LoginToken: token}, "GET", "/", []reqOpt{cookie(token)}, 303, "/admin/login"},
		{"wrong cookie, login off", dashboard.Config{}, "GET", "/", []reqOpt{cookie(session)}, 200, ""},
		{"wrong cookie, POST", dashboard.Config{LoginToken: token}, "POST", "/jobs/alpha/pause", []reqOpt{cookie("forged")}, 401, ""},
		{"wrong bearer", dashboard.Config{}, "GET", "/", []reqOpt{bearer("not-the-token")}, 401, ""},
		{"bearer", dashboard.Config{}, "GET", "/", []reqOpt{bearer(token)}, 200, ""},
		{"bearer, job page", dashboard.Config{}, "GET", "/jobs/beta", []reqOpt{bearer(token)}, 200, ""},
		{"session cookie", dashboard.Config{LoginToken: token}, "GET", "/", []reqOpt{cookie(session)}, 200, ""},
		{"forbidden", dashboard.Config{Authorize: forbidden, LoginToken: token}, "GET", "/", nil, 403, ""},
		{"forbidden POST", dashboard.Config{Authorize: forbidden}, "POST", "/jobs/alpha/pause", nil, 403, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "/admin", tc.opts)
			var form url.Values
			if tc.method == "POST" {
				form = url.Values{}
			}
			r := e.do(tc.method, tc.path, form, tc.req...)
			if r.code != tc.code {
				t.Fatalf("status %d, want %d\n%s", r.code, tc.code, r.body)
			}
			if got := r.location(); got != tc.location {
				t.Errorf("Location resolves to %q, want %q", got, tc.location)
			}
			if tc.code != 200 && strings.Contains(r.body, "Alpha job") {
				t.Error("refused response shows the jobs")
			}
			if e.paused("alpha") {
				t.Error("refused POST paused the job")
			}
		})
	}
}

// loginCookie signs in through the form and returns the session cookie's value.
func loginCookie(t *testing.T, e *env) string {
	t.Helper()
	r := e.do("POST", "/login", url.Values{"token": {token}})
	if r.code != http.StatusSeeOther || r.location() != e.prefix+"/" {
		t.Fatalf("login: %d to %q, want 303 to %s/", r.code, r.location(), e.prefix)
	}
	for _, c := range (&http.Response{Header: r.hdr}).Cookies() {
		if c.Name == dashboard.CookieName {
			return c.Value
		}
	}
	t.Fatal("login set no session cookie")
	return ""
}

// Proves the token login: the form renders; a wrong token is sent back to the form with an
// error and gets no cookie; the right one gets an HttpOnly, SameSite=Strict cookie that is
// not the token itself and opens the dashboard; logout clears it.
func TestLogin(t *testing.T) {
	e := newEnv(t, "/admin", dashboard.Config{LoginToken: token})
	r := e.do("GET", "/login", nil)
	if r.code != 200 || !strings.Contains(r.body, `name="token"`) || strings.Contains(r.body, "not valid") {
		t.Fatalf("login form: %d\n%s", r.code, r.body)
	}

	r = e.do("POST", "/login", url.Values{"token": {"wrong-token-wrong-token"}})
	if r.code != http.StatusSeeOther || r.location() != "/admin/login?error=1" {
		t.Fatalf("wrong token: %d to %q, want 303 to /admin/login?error=1", r.code, r.location())
	}
	if len(r.hdr.Values("Set-Cookie")) != 0 {
		t.Fatalf("wrong token got cookies %v", r.hdr.Values("Set-Cookie"))
	}
	if r := e.do("GET", "/login?error=1", nil); !strings.Contains(r.body, "That token is not valid.") {
		t.Errorf("login form does not show the error:\n%s", r.body)
	}

	r = e.do("POST", "/login", url.Values{"token": {" " + token + "\n"}})
	if r.code != http.StatusSeeOther || r.location() != "/admin/" {
		t.Fatalf("login: %d to %q", r.code, r.location())
	}
	cookies := (&http.Response{Header: r.hdr}).Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	c := cookies[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Value == "" || strings.Contains(c.Value, token) || c.MaxAge <= 0 {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, expiring, not the token", c)
	}
	if r := e.do("GET", "/", nil, cookie(c.Value)); r.code != 200 || !strings.Contains(r.body, "Alpha job") {
		t.Fatalf("overview with the session cookie: %d", r.code)
	}

	r = e.do("POST", "/logout", url.Values{}, cookie(c.Value))
	if r.code != http.StatusSeeOther || r.location() != "/admin/login" {
		t.Fatalf("logout: %d to %q", r.code, r.location())
	}
	out := (&http.Response{Header: r.hdr}).Cookies()
	if len(out) != 2 || out[0].Name != dashboard.CookieName || out[0].MaxAge >= 0 ||
		out[1].Name != dashboard.OperatorCookie || out[1].MaxAge >= 0 {
		t.Fatalf("logout cookies %v: want the session and operator cookies deleted", out)
	}
}

// Proves the login form is off without Config.LoginToken.
func TestLoginOff(t *testing.T) {
	e := newEnv(t, "/admin", dashboard.Config{})
	if r := e.do("GET", "/login", nil); r.code != http.StatusNotFound {
		t.Fatalf("GET /login: %d, want 404", r.code)
	}
	if r := e.do("POST", "/login", url.Values{"token": {token}}); r.code != http.StatusNotFound || len(r.hdr.Values("Set-Cookie")) != 0 {
		t.Fatalf("POST /login: %d %v, want 404 without cookie", r.code, r.hdr.Values("Set-Cookie"))
	}
}

// Proves cross-site form posts are refused with 403 and change nothing, whether the browser
// says so with Origin or with Sec-Fetch-Site, even with a valid session; same-origin posts
// pass.
func TestCrossSitePostRefused(t *testing.T) {
	e := newEnv(t, "/admin", dashboard.Config{LoginToken: token})
	session := cookie(loginCookie(t, e))
	for _, action := range []string{"pause", "trigger"} {
		for name, h := range map[string]reqOpt{
			"Origin of another host":    header("Origin", "http://evil.example"),
			"Origin of another port":    header("Origin", "http://127.0.0.1:1"),
			"Sec-Fetch-Site cross-site": header("Sec-Fetch-Site", "cross-site"),
			"Sec-Fetch-Site same-site":  header("Sec-Fetch-Site", "same-site"),
		} {
			r := e.do("POST", "/jobs/alpha/"+action, url.Values{}, session, h)
			if r.code != http.StatusForbidden {
				t.Errorf("%s with %s: %d, want 403", action, name, r.code)
			}
		}
	}
	if e.paused("alpha") || len(e.runs("alpha")) != 0 {
		t.Fatalf("a cross-site post changed the job: paused %v, runs %d", e.paused("alpha"), len(e.runs("alpha")))
	}
	if r := e.do("POST", "/login", url.Values{"token": {token}}, header("Origin", "http://evil.example")); len(r.hdr.Values("Set-Cookie")) != 0 {
		t.Errorf("cross-site login set a cookie")
	}
	r := e.do("POST", "/jobs/alpha/pause", url.Values{}, session, header("Origin", e.srv.URL), header("Sec-Fetch-Site", "same-origin"))
	if r.code != http.StatusSeeOther || !e.paused("alpha") {
		t.Fatalf("same-origin pause: %d, paused %v", r.code, e.paused("alpha"))
	}
}

// Proves the buttons act on the scheduler and redirect back: pause and resume flip the
// stored state, trigger runs the job once and records it, back=overview returns to the
// overview, and the flash message says what happened.
func TestActions(t *testing.T) {
	e := newEnv(t, "/admin", dashboard.Config{})
	auth := bearer(token)

	r := e.do("POST", "/jobs/alpha/pause", url.Values{}, auth)
	if r.code != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/admin/jobs/alpha?flash=") || !e.paused("alpha") {
		t.Fatalf("pause: %d to %q, paused %v", r.code, r.location(), e.paused("alpha"))
	}
	page := e.do("GET", strings.TrimPrefix(r.location(), "/admin"), nil, auth)
	if !strings.Contains(page.body, "Paused alpha") || !strings.Contains(page.body, `data-paused="true"`) {
		t.Errorf("job page after pause lacks the flash or the paused state:\n%s", page.body)
	}
	if r := e.do("POST", "/jobs/alpha/resume", url.Values{"back": {"overview"}}, auth); r.code != http.StatusSeeOther ||
		!strings.HasPrefix(r.location(), "/admin/?flash=") || e.paused("alpha") {
		t.Fatalf("resume: %d to %q, paused %v", r.code, r.location(), e.paused("alpha"))
	}

	r = e.do("POST", "/jobs/alpha/trigger", url.Values{}, auth)
	runs := e.runs("alpha")
	if r.code != http.StatusSeeOther || len(runs) != 1 || runs[0].Status != billing.RunStatusSucceeded || runs[0].Trigger != billing.RunTriggerManual {
		t.Fatalf("trigger: %d, runs %+v", r.code, runs)
	}
	page = e.do("GET", strings.TrimPrefix(r.location(), "/admin"), nil, auth)
	if !strings.Contains(page.body, "Ran alpha: succeeded") || strings.Count(page.body, "<tr data-run=") != 1 ||
		!strings.Contains(page.body, "processed=3 total_found=3") || !strings.Contains(page.body, " -03</td>") {
		t.Errorf("job page after trigger:\n%s", page.body)
	}

	e.do("POST", "/jobs/beta/trigger", url.Values{}, auth)
	if runs := e.runs("beta"); len(runs) != 1 || runs[0].Status != billing.RunStatusFailed {
		t.Fatalf("beta runs %+v", runs)
	}
	page = e.do("GET", "/jobs/beta", nil, auth)
	if !strings.Contains(page.body, "gateway &lt;unreachable&gt;") || !strings.Contains(page.body, `class="badge failed"`) {
		t.Errorf("failed run's error not shown (escaped):\n%s", page.body)
	}
	over := e.do("GET", "/", nil, auth)
	if strings.Count(over.body, "<tr data-job=") != 2 || !strings.Contains(over.body, "1 failures in a row") {
		t.Errorf("overview:\n%s", over.body)
	}
}

// Proves unknown jobs and actions are 404 pages, and GET on an action is not allowed.
func TestUnknown(t *testing.T) {
	e := newEnv(t, "/admin", dashboard.Config{})
	auth := bearer(token)
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/jobs/nope", 404},
		{"POST", "/jobs/nope/pause", 404},
		{"POST", "/jobs/nope/trigger", 404},
		{"POST", "/jobs/alpha/explode", 404},
		{"GET", "/jobs/alpha/pause", 405},
		{"GET", "/nowhere", 404},
	} {
		var form url.Values
		if c.method == "POST" {
			form = url.Values{}
		}
		r := e.do(c.method, c.path, form, auth)
		if r.code != c.code {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, r.code, c.code)
		}
	}
	if r := e.do("GET", "/jobs/nope", nil, auth); !strings.Contains(r.body, "No such job.") || !strings.HasSuffix(strings.TrimSpace(r.body), "</html>") {
		t.Errorf("404 page:\n%s", r.body)
	}
	if e.paused("alpha") || len(e.runs("alpha")) != 0 {
		t.Error("an unknown action changed alpha")
	}
}

var linkRe = regexp.MustCompile(`(?:href|action)="([^"]*)"`)

// Proves every page renders completely (no template error cuts it short, no ZgotmplZ),
// carries the security headers, and that its links, form actions and redirects are
// relative and resolve under the mount prefix, however deep the page.
func TestPagesUnderPrefix(t *testing.T) {
	for _, prefix := range []string{"/admin", "/ops/renewkit/dash"} {
		t.Run(prefix, func(t *testing.T) {
			e := newEnv(t, prefix, dashboard.Config{LoginToken: token, EmailPreviewURL: "emails/"})
			session := cookie(loginCookie(t, e))
			e.do("POST", "/jobs/alpha/trigger", url.Values{}, session)
			e.do("POST", "/jobs/beta/pause", url.Values{}, session)
			for _, p := range []string{"/", "/?flash=hello", "/jobs/alpha", "/jobs/beta", "/jobs/nope", "/login", "/login?error=1"} {
				r := e.do("GET", p, nil, session)
				if r.code != 200 && !(p == "/jobs/nope" && r.code == 404) {
					t.Errorf("GET %s: %d", p, r.code)
				}
				body := strings.TrimSpace(r.body)
				if !strings.HasPrefix(body, "<!doctype html>") || !strings.HasSuffix(body, "</html>") {
					t.Errorf("GET %s: page incomplete (template error?):\n%s", p, r.body)
				}
				for _, bad := range []string{"ZgotmplZ", "<no value>", "template:"} {
					if strings.Contains(body, bad) {
						t.Errorf("GET %s: page contains %q", p, bad)
					}
				}
				csp := r.hdr.Get("Content-Security-Policy")
				if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
					r.hdr.Get("X-Content-Type-Options") != "nosniff" || r.hdr.Get("Content-Type") != "text/html; charset=utf-8" {
					t.Errorf("GET %s: headers %v", p, r.hdr)
				}
				for _, m := range linkRe.FindAllStringSubmatch(r.body, -1) {
					link := m[1]
					if strings.HasPrefix(link, "/") || strings.Contains(link, "://") {
						t.Errorf("GET %s: link %q is not relative", p, link)
						continue
					}
					u, err := r.url.Parse(link)
					if err != nil || !strings.HasPrefix(u.Path, prefix+"/") {
						t.Errorf("GET %s: link %q resolves to %v, outside %s/", p, link, u, prefix)
					}
				}
				if p == "/jobs/alpha" && !strings.Contains(r.body, `action="../jobs/alpha/trigger"`) {
					t.Errorf("job page trigger form action:\n%s", r.body)
				}
			}
			// The email previews link resolves to prefix/emails/ from every page.
			for _, p := range []string{"/", "/jobs/alpha"} {
				r := e.do("GET", p, nil, session)
				found := false
				for _, m := range linkRe.FindAllStringSubmatch(r.body, -1) {
					if u, _ := r.url.Parse(m[1]); u != nil && u.Path == prefix+"/emails/" {
						found = true
					}
				}
				if !found {
					t.Errorf("GET %s: no link to %s/emails/", p, prefix)
				}
			}
			// Redirects from deep paths resolve under the prefix too.
			r := e.do("POST", "/jobs/alpha/resume", url.Values{}, session)
			if !strings.HasPrefix(r.location(), prefix+"/jobs/alpha?") {
				t.Errorf("resume redirect resolves to %q", r.location())
			}
			r = e.do("GET", "/jobs/alpha", nil)
			if r.location() != prefix+"/login" {
				t.Errorf("login redirect resolves to %q", r.location())
			}
		})
	}
}

// Proves New reports every missing or invalid option at once.
func TestNewValidates(t *testing.T) {
	_, err := dashboard.New(nil, dashboard.Config{HistoryLimit: -1})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"nil scheduler", "Authorize is required", "HistoryLimit"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// Proves TokenAuthorizer: bearer or cookie, and an empty token accepts nobody.
func TestTokenAuthorizer(t *testing.T) {
	e := newEnv(t, "/admin", dashboard.Config{LoginToken: token})
	session := loginCookie(t, e)
	check := func(tok string, opts ...reqOpt) error {
		r := httptest.NewRequest("GET", "/", nil)
		for _, o := range opts {
			o(r)
		}
		return dashboard.TokenAuthorizer(tok)(r)
	}
	if err := check(token, bearer(token)); err != nil {
		t.Errorf("bearer: %v", err)
	}
	if err := check(token, cookie(session)); err != nil {
		t.Errorf("cookie: %v", err)
	}
	if err := check(token, bearer("x"), cookie(session)); !errors.Is(err, scheduler.ErrUnauthenticated) {
		t.Errorf("a wrong bearer with a good cookie: %v, want unauthenticated", err)
	}
	if err := check(""); !errors.Is(err, scheduler.ErrUnauthenticated) {
		t.Errorf("empty token, no credentials: %v", err)
	}
	if err := check("", bearer("")); !errors.Is(err, scheduler.ErrUnauthenticated) {
		t.Errorf("empty token, empty bearer: %v", err)
	}
	if err := check("", cookie(session)); !errors.Is(err, scheduler.ErrUnauthenticated) {
		t.Errorf("empty token, a cookie: %v", err)
	}
}
