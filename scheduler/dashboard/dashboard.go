package dashboard

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/scheduler"
)

//go:embed templates/*.html
var templateFS embed.FS

// CookieName is the session cookie the token login sets.
const CookieName = "renewkit_admin"

// Config configures the dashboard.
type Config struct {
	// Authorize is required: the same admin check the jobs API uses. Use TokenAuthorizer to
	// accept both the bearer header and the login cookie.
	Authorize scheduler.Authorizer
	// LoginToken, when set, enables the /login form: an operator pastes the admin token and
	// gets an HttpOnly, SameSite=Strict session cookie, valid for 12 hours and derived from
	// it (never the token itself). Leave empty when the host authenticates operators its
	// own way.
	LoginToken string
	// EmailPreviewURL links the email previews (the standalone server mounts them at
	// /admin/emails/ and passes "emails/"). A relative URL is relative to the dashboard's
	// root, whatever the page. Empty hides the link.
	EmailPreviewURL string
	// Title heads every page. Default "renewkit".
	Title string
	// HistoryLimit is how many runs a job page lists. Default 25.
	HistoryLimit int
	// Extra, when set, adds named figures (analytics) to the overview.
	Extra func(ctx context.Context) ([]Figure, error)
	// Console, when set (the *billing.Service), adds the subscription search, the
	// subscriber pages with their timeline, the email log and the safe actions (resend a
	// failed email, re-run one subscription through a job after its dry run).
	Console scheduler.ConsoleSource
	// EmailView renders the email a notification record sent (see notify's
	// Renderer.SentMessage); the timeline and the email log link to it. Needs Console.
	EmailView func(ctx context.Context, key string) (EmailMessage, error)
	// Insights, when set (the *billing.Service), adds the overview's charts.
	Insights Insights
	// Inbox, when set (the *billing.Service), adds the webhook inbox pages: events by state
	// and gateway, an event's attempts and errors (never its payload), and the replay of a
	// failed, dead or ignored event, audited with the operator.
	Inbox InboxSource
	// Identify names the operator of an action for the audit log. Default: with
	// LoginToken, TokenOperator(LoginToken) (the name given at login), else
	// scheduler.OperatorHeader.
	Identify scheduler.Identify
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Clock dates the login form's session cookies. Default: the wall clock. A host that
	// sets it checks the cookies with TokenAuthorizerAt(token, clock).
	Clock billing.Clock
}

// Options is the former name of Config.
//
// Deprecated: use Config.
type Options = Config

// Figure is one named number on the overview.
type Figure struct {
	Label string
	Value string
}

type dash struct {
	s        *scheduler.Scheduler
	opts     Config
	pages    *template.Template
	log      *slog.Logger
	identify scheduler.Identify
}

// New returns the dashboard handler, relative to where the host mounts it (the standalone
// server mounts it at /admin/ with http.StripPrefix):
//
//	GET  /                      jobs, next run, paused, last result, subscription counts, charts
//	GET  /jobs/{job_id}         one job, its run charts, progress and history
//	GET  /jobs/{job_id}/progress             the current or last run's progress (JSON)
//	POST /jobs/{job_id}/{pause|resume|trigger|start}   buttons; redirect back (start: in the background)
//	GET  /subscriptions         search (q, status)          with Config.Console
//	GET  /subscriptions/{id}    the subscriber and the timeline
//	GET  /subscriptions/{id}/rerun?job=      dry run; POST runs it (confirm=yes)
//	GET  /email-log             the email log (kind, status)
//	GET  /email-log/view?key=   one email as sent              with Config.EmailView
//	GET  /email-log/resend?key= confirmation; POST resends (key, confirm=yes)
//	GET  /inbox                 webhook inbox (status, gateway, cursor)   with Config.Inbox
//	GET  /inbox/{gateway}/{event_id}         one event, its attempts and errors
//	GET  /inbox/{gateway}/{event_id}/replay  confirmation; POST replays it (confirm=yes)
//	GET  /login, POST /login    token login (only with Config.LoginToken)
//	POST /logout
func New(s *scheduler.Scheduler, opts Config) (http.Handler, error) {
	var errs []error
	if s == nil {
		errs = append(errs, errors.New("nil scheduler: pass the *Scheduler from scheduler.NewScheduler"))
	}
	if opts.Authorize == nil {
		errs = append(errs, errors.New("Config.Authorize is required: pass the host's admin check or dashboard.TokenAuthorizer(token)"))
	}
	if opts.HistoryLimit < 0 {
		errs = append(errs, fmt.Errorf("Config.HistoryLimit %d is negative; use 0 for the default", opts.HistoryLimit))
	}
	if opts.EmailView != nil && opts.Console == nil {
		errs = append(errs, errors.New("Config.EmailView needs Config.Console: pass the *billing.Service"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	if opts.Title == "" {
		opts.Title = "renewkit"
	}
	if opts.HistoryLimit == 0 {
		opts.HistoryLimit = 25
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = billing.SystemClock()
	}
	pages, err := template.New("").Funcs(template.FuncMap{
		"when":     func(t any) string { return formatTime(t, s.Location()) },
		"duration": formatDuration,
		"result":   formatResult,
		"detail":   func(v any) string { return formatDetail(v, s.Location()) },
		"money":    func(m billing.Money) string { return fmt.Sprintf("%d.%02d %s", m.Amount/100, m.Amount%100, m.Currency) },
		"inbox":    func() bool { return opts.Inbox != nil },
		"eventurl": eventPath,
	}).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard: parsing templates: %w", err)
	}
	d := &dash{s: s, opts: opts, pages: pages, log: log, identify: opts.Identify}
	if d.identify == nil {
		d.identify = scheduler.OperatorHeader
		if opts.LoginToken != "" {
			d.identify = TokenOperator(opts.LoginToken)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.auth(d.overview))
	mux.HandleFunc("GET /jobs/{job_id}", d.auth(d.job))
	mux.HandleFunc("GET /jobs/{job_id}/progress", d.auth(d.progress))
	mux.HandleFunc("POST /jobs/{job_id}/{action}", d.auth(d.act))
	mux.HandleFunc("GET /static/console.js", d.script)
	if opts.Console != nil {
		mux.HandleFunc("GET /subscriptions", d.auth(d.subscriptions))
		mux.HandleFunc("GET /subscriptions/{id}", d.auth(d.subscriber))
		mux.HandleFunc("GET /subscriptions/{id}/rerun", d.auth(d.rerunPreview))
		mux.HandleFunc("POST /subscriptions/{id}/rerun", d.auth(d.rerun))
		mux.HandleFunc("GET /email-log", d.auth(d.emails))
		mux.HandleFunc("GET /email-log/resend", d.auth(d.resendConfirm))
		mux.HandleFunc("POST /email-log/resend", d.auth(d.resend))
		if opts.EmailView != nil {
			mux.HandleFunc("GET /email-log/view", d.auth(d.emailView))
			mux.HandleFunc("GET /email-log/view/html", d.auth(d.emailHTML))
		}
	}
	if opts.Inbox != nil {
		mux.HandleFunc("GET /inbox", d.auth(d.inbox))
		mux.HandleFunc("GET /inbox/{gateway}/{event_id}", d.auth(d.inboxEvent))
		mux.HandleFunc("GET /inbox/{gateway}/{event_id}/replay", d.auth(d.replayConfirm))
		mux.HandleFunc("POST /inbox/{gateway}/{event_id}/replay", d.auth(d.replay))
	}
	mux.HandleFunc("GET /login", d.loginForm)
	mux.HandleFunc("POST /login", d.login)
	mux.HandleFunc("POST /logout", d.logout)
	return secureHeaders(mux), nil
}

func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// sessionTTL is how long a login lasts, in the browser and on the server.
const sessionTTL = 12 * time.Hour

// sessionValue is the cookie value for a session ending at exp: "<unix exp>.<hex MAC>", the
// MAC keyed by the token. Knowing the cookie does not reveal the token, and a copied cookie
// stops working at exp.
func sessionValue(token string, exp time.Time) string {
	ts := strconv.FormatInt(exp.Unix(), 10)
	return ts + "." + hex.EncodeToString(sessionMAC(token, ts))
}

func sessionMAC(token, ts string) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("renewkit dashboard session v2\n" + ts))
	return m.Sum(nil)
}

// validSession reports whether v is a cookie sessionValue(token, exp) made with exp after now.
func validSession(token, v string, now time.Time) bool {
	ts, mac, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(mac)
	if err != nil || !hmac.Equal(got, sessionMAC(token, ts)) {
		return false
	}
	exp, err := strconv.ParseInt(ts, 10, 64)
	return err == nil && now.Unix() < exp
}

// TokenAuthorizer accepts "Authorization: Bearer <token>" or an unexpired session cookie
// the login form set, both checked in constant time. An empty token accepts nobody.
func TokenAuthorizer(token string) scheduler.Authorizer {
	return TokenAuthorizerAt(token, billing.SystemClock())
}

// TokenAuthorizerAt is TokenAuthorizer with the session cookies' expiry read on clock (the
// Config.Clock of the dashboard that sets them).
func TokenAuthorizerAt(token string, clock billing.Clock) scheduler.Authorizer {
	if clock == nil {
		clock = billing.SystemClock()
	}
	bearer := scheduler.BearerToken(token)
	return func(r *http.Request) error {
		if r.Header.Get("Authorization") != "" {
			return bearer(r)
		}
		c, err := r.Cookie(CookieName)
		if err != nil || token == "" {
			return scheduler.ErrUnauthenticated
		}
		if !validSession(token, c.Value, clock.Now()) {
			return fmt.Errorf("%w: invalid or expired session", scheduler.ErrUnauthenticated)
		}
		return nil
	}
}

func (d *dash) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := d.opts.Authorize(r)
		switch {
		case err == nil:
			next(w, r)
		case errors.Is(err, scheduler.ErrForbidden):
			d.errorPage(w, r, http.StatusForbidden, "Your account is not an administrator.")
		case d.opts.LoginToken != "" && r.Method == http.MethodGet:
			seeOther(w, d.rel(r, "login"))
		default:
			d.errorPage(w, r, http.StatusUnauthorized, "Sign in to see the dashboard.")
		}
	}
}

// rel builds a link relative to the dashboard root from the request path, so the handler
// works under any prefix.
func (d *dash) rel(r *http.Request, target string) string {
	// The escaped path: a slash escaped inside a segment (an event id) is no level.
	depth := strings.Count(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	if depth == 0 && target == "" {
		return "./"
	}
	return strings.Repeat("../", depth) + target
}

// emailsURL is the email previews link as seen from r's page: a relative
// Config.EmailPreviewURL is relative to the dashboard root, not to the page.
func (d *dash) emailsURL(r *http.Request) string {
	u := d.opts.EmailPreviewURL
	if u == "" || strings.HasPrefix(u, "/") || strings.Contains(u, "://") {
		return u
	}
	return d.rel(r, u)
}

type overviewPage struct {
	Title, Base, EmailsURL string
	Jobs                   []scheduler.JobInfo
	Results                map[string]string
	Durations              map[string]string
	Counts                 []Figure
	Extra                  []Figure
	Charts                 *chartSet
	Login, Console         bool
	Now                    time.Time
	Zone                   string
	Flash                  string
}

func (d *dash) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	jobs, err := d.s.List(ctx)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	p := overviewPage{Title: d.opts.Title, Base: d.rel(r, ""), EmailsURL: d.emailsURL(r), Jobs: jobs,
		Results: map[string]string{}, Durations: map[string]string{}, Login: d.opts.LoginToken != "", Console: d.opts.Console != nil,
		Zone: d.s.Location().String(), Flash: r.URL.Query().Get("flash")}
	for _, j := range jobs {
		runs, err := d.s.History(ctx, j.ID, 5)
		if err != nil {
			d.fail(w, r, err)
			return
		}
		for _, run := range runs {
			if run.Status == billing.RunStatusSkipped {
				continue
			}
			p.Results[j.ID] = formatResult(run)
			p.Durations[j.ID] = formatDuration(run.DurationMS)
			break
		}
	}
	stats, err := d.s.Stats(ctx)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if sc := stats.Subscriptions; sc != nil {
		statuses := make([]string, 0, len(sc.ByStatus))
		for st := range sc.ByStatus {
			statuses = append(statuses, string(st))
		}
		sort.Strings(statuses)
		for _, st := range statuses {
			p.Counts = append(p.Counts, Figure{Label: st, Value: fmt.Sprint(sc.ByStatus[billing.SubscriptionStatus(st)])})
		}
		p.Counts = append(p.Counts,
			Figure{Label: fmt.Sprintf("expiring within %d days", sc.Due.WarningWindowDays), Value: fmt.Sprint(sc.Due.Expiring)},
			Figure{Label: "past period end", Value: fmt.Sprint(sc.Due.PastPeriodEnd)},
			Figure{Label: fmt.Sprintf("renewal within %gh", sc.Due.RenewWindowHours), Value: fmt.Sprint(sc.Due.Renewing)})
	}
	if d.opts.Extra != nil {
		extra, err := d.opts.Extra(ctx)
		if err != nil {
			d.log.WarnContext(ctx, "dashboard figures unavailable", "error", err)
		}
		p.Extra = extra
	}
	if d.opts.Insights != nil {
		cs := d.overviewCharts(ctx)
		p.Charts = &cs
	}
	d.render(w, r, http.StatusOK, "overview.html", p)
}

type jobPage struct {
	Title, Base, EmailsURL string
	Job                    scheduler.JobInfo
	Runs                   []billing.JobRun
	Login, Console         bool
	Flash, RunID           string
	Duration, Found        template.HTML
}

func (d *dash) job(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	j, err := d.s.Get(ctx, r.PathValue("job_id"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	runs, err := d.s.History(ctx, j.ID, max(d.opts.HistoryLimit, 40))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	dur, found := jobCharts(runs, d.s.Location())
	if len(runs) > d.opts.HistoryLimit {
		runs = runs[:d.opts.HistoryLimit]
	}
	d.render(w, r, http.StatusOK, "job.html", jobPage{Title: d.opts.Title, Base: d.rel(r, ""), EmailsURL: d.emailsURL(r), Job: j, Runs: runs,
		Login: d.opts.LoginToken != "", Console: d.opts.Console != nil, Flash: r.URL.Query().Get("flash"), RunID: r.URL.Query().Get("run"),
		Duration: dur, Found: found})
}

// sameOrigin refuses cross-site form posts (the cookie is SameSite=Strict as well).
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
	return true
}

func (d *dash) act(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		d.errorPage(w, r, http.StatusForbidden, "Cross-site request refused.")
		return
	}
	ctx := r.Context()
	id := r.PathValue("job_id")
	var err error
	var flash string
	switch r.PathValue("action") {
	case "pause":
		err, flash = d.s.Pause(ctx, id), "Paused "+id
	case "resume":
		err, flash = d.s.Resume(ctx, id), "Resumed "+id
	case "trigger":
		var run billing.JobRun
		run, err = d.s.Trigger(ctx, id)
		flash = fmt.Sprintf("Ran %s: %s in %s", id, run.Status, formatDuration(run.DurationMS))
	case "start":
		var runID string
		if runID, err = d.s.TriggerAsync(ctx, id); err == nil {
			seeOther(w, d.rel(r, "jobs/"+url.PathEscape(id))+"?run="+url.QueryEscape(runID)+"&flash="+url.QueryEscape("Started "+id+"; its progress shows below"))
			return
		}
	default:
		d.errorPage(w, r, http.StatusNotFound, "No such action.")
		return
	}
	if err != nil {
		d.fail(w, r, err)
		return
	}
	back := d.rel(r, "jobs/"+url.PathEscape(id))
	if r.FormValue("back") == "overview" {
		back = d.rel(r, "")
	}
	seeOther(w, back+"?flash="+url.QueryEscape(flash))
}

func (d *dash) loginForm(w http.ResponseWriter, r *http.Request) {
	if d.opts.LoginToken == "" {
		d.errorPage(w, r, http.StatusNotFound, "Token login is off; sign in through the application.")
		return
	}
	d.render(w, r, http.StatusOK, "login.html", map[string]any{"Title": d.opts.Title, "Error": r.URL.Query().Get("error") != ""})
}

func (d *dash) login(w http.ResponseWriter, r *http.Request) {
	if d.opts.LoginToken == "" {
		d.errorPage(w, r, http.StatusNotFound, "Token login is off; sign in through the application.")
		return
	}
	if !sameOrigin(r) {
		d.errorPage(w, r, http.StatusForbidden, "Cross-site request refused.")
		return
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(r.PostFormValue("token"))))
	want := sha256.Sum256([]byte(d.opts.LoginToken))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		d.log.WarnContext(r.Context(), "dashboard login refused", "remote", r.RemoteAddr)
		seeOther(w, "login?error=1")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: sessionValue(d.opts.LoginToken, d.opts.Clock.Now().Add(sessionTTL)), Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(sessionTTL / time.Second)})
	if name := scheduler.CleanOperator(r.PostFormValue("operator")); name != "" {
		http.SetCookie(w, &http.Cookie{Name: OperatorCookie, Value: operatorValue(d.opts.LoginToken, name), Path: "/",
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(sessionTTL / time.Second)})
	}
	seeOther(w, "./")
}

func (d *dash) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: OperatorCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	seeOther(w, "login")
}

// seeOther redirects to a location relative to the browser's URL. http.Redirect would
// resolve it against the path left after http.StripPrefix and lose the mount prefix.
func seeOther(w http.ResponseWriter, location string) {
	w.Header().Set("Location", location)
	w.WriteHeader(http.StatusSeeOther)
}

func (d *dash) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, scheduler.ErrUnknownJob):
		d.errorPage(w, r, http.StatusNotFound, "No such job.")
	case errors.Is(err, scheduler.ErrJobRunning):
		d.errorPage(w, r, http.StatusConflict, "The job is running already; try again when it finishes.")
	case errors.Is(err, scheduler.ErrClosed):
		d.errorPage(w, r, http.StatusServiceUnavailable, "The scheduler is shutting down.")
	case errors.Is(err, billing.ErrNotFound):
		d.errorPage(w, r, http.StatusNotFound, "Not found.")
	case errors.Is(err, billing.ErrInvalidTransition), errors.Is(err, billing.ErrConflict):
		d.errorPage(w, r, http.StatusConflict, "That cannot be done in the record's current state: "+err.Error())
	case errors.Is(err, billing.ErrConsoleUnsupported):
		d.errorPage(w, r, http.StatusNotImplemented, "The store has no console queries.")
	case errors.Is(err, billing.ErrInvalidInput):
		d.errorPage(w, r, http.StatusBadRequest, err.Error())
	default:
		d.log.ErrorContext(r.Context(), "dashboard request failed", "path", r.URL.Path, "error", err)
		d.errorPage(w, r, http.StatusInternalServerError, "Something failed; see the server log.")
	}
}

func (d *dash) errorPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	d.render(w, r, status, "error.html", map[string]any{"Title": d.opts.Title, "Status": status, "Message": msg, "Base": d.rel(r, "")})
}

func (d *dash) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := d.pages.ExecuteTemplate(w, name, data); err != nil {
		d.log.ErrorContext(r.Context(), "dashboard template failed", "template", name, "error", err)
	}
}

// formatTime shows t in the scheduler's zone, as the schedules are read (run records are
// stored in UTC).
func formatTime(t any, loc *time.Location) string {
	switch v := t.(type) {
	case *time.Time:
		if v == nil {
			return "—"
		}
		return v.In(loc).Format("2006-01-02 15:04 MST")
	case time.Time:
		if v.IsZero() {
			return "—"
		}
		return v.In(loc).Format("2006-01-02 15:04:05 MST")
	}
	return "—"
}

func formatDuration(ms int64) string {
	switch {
	case ms < 1000:
		return fmt.Sprintf("%d ms", ms)
	case ms < 60_000:
		return fmt.Sprintf("%.1f s", float64(ms)/1000)
	}
	return (time.Duration(ms) * time.Millisecond).Round(time.Second).String()
}

// formatResult renders a run's result compactly: the counters the jobs return.
func formatResult(run billing.JobRun) string {
	if run.Error != "" && len(run.Result) == 0 {
		return run.Error
	}
	keys := make([]string, 0, len(run.Result))
	for k := range run.Result {
		if k == "success" || k == "errors" || k == "error" {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		b, _ := json.Marshal(run.Result[k])
		parts = append(parts, k+"="+string(b))
	}
	s := strings.Join(parts, " ")
	if run.Error != "" {
		s += " — " + run.Error
	}
	return s
}

// formatDetail renders an audit detail value: times in the scheduler's zone, the rest as
// Go prints them.
func formatDetail(v any, loc *time.Location) string {
	switch t := v.(type) {
	case time.Time:
		return formatTime(t, loc)
	case string:
		return t
	}
	return fmt.Sprint(v)
}
