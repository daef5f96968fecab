package dashboard

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/scheduler"
)

// Insights feeds the overview's charts; *billing.Service implements it (its store needs
// billing.SnapshotStore for the daily series).
type Insights interface {
	Snapshots(ctx context.Context, days int) ([]billing.DailySnapshot, error)
	Forecast(ctx context.Context, days int) ([]billing.ExpectedRevenue, error)
	Cancellations(ctx context.Context, months int) ([]billing.MonthCancellations, error)
}

// EmailMessage is a rendered email, as EmailView returns it.
type EmailMessage struct {
	Subject, HTML, Text string
}

// OperatorCookie holds the name an operator gave at login, signed with the login token.
const OperatorCookie = "renewkit_operator"

//go:embed static/console.js
var consoleJS []byte

func operatorValue(token, name string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(name)) + "." + hex.EncodeToString(operatorMAC(token, name))
}

func operatorMAC(token, name string) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("renewkit dashboard operator v1\n" + name))
	return m.Sum(nil)
}

// TokenOperator names the operator of a request for the audit log: the name signed into
// the OperatorCookie at login with token, else scheduler.OperatorHeader's answer.
func TokenOperator(token string) scheduler.Identify {
	return func(r *http.Request) string {
		if c, err := r.Cookie(OperatorCookie); err == nil && token != "" {
			enc, mac, ok := strings.Cut(c.Value, ".")
			raw, derr := base64.RawURLEncoding.DecodeString(enc)
			got, herr := hex.DecodeString(mac)
			if ok && derr == nil && herr == nil && hmac.Equal(got, operatorMAC(token, string(raw))) {
				if name := scheduler.CleanOperator(string(raw)); name != "" {
					return name
				}
			}
		}
		return scheduler.OperatorHeader(r)
	}
}

// --- live progress ---

func (d *dash) progress(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("job_id")
	p, ok, err := d.s.Progress(id)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	info, err := d.s.Get(r.Context(), id)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	out := map[string]any{"job_id": id, "running": info.Running}
	if ok {
		out["progress"] = p
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(out)
}

func (d *dash) script(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	_, _ = w.Write(consoleJS)
}

// --- subscriptions ---

type statusLink struct {
	Label, URL string
	On         bool
}

type subscriptionsPage struct {
	Title, Base, EmailsURL string
	Login, Console         bool
	Q                      string
	Statuses               []statusLink
	Subs                   []billing.Subscription
	Next                   string
	Error                  string
}

func (d *dash) subscriptions(w http.ResponseWriter, r *http.Request) {
	p := subscriptionsPage{Title: d.opts.Title, Base: d.rel(r, ""), EmailsURL: d.emailsURL(r), Login: d.opts.LoginToken != "", Console: true,
		Q: r.URL.Query().Get("q")}
	p.Statuses = filterChoices(filterLink(r.URL.Query(), "q", "status"), "status", r.URL.Query().Get("status"), "all",
		scheduler.AllSubscriptionStatuses())
	q, err := scheduler.ParseSubscriptionQuery(r)
	if err != nil {
		p.Error = strings.TrimPrefix(err.Error(), "bad parameter: ")
		d.render(w, r, http.StatusBadRequest, "subscriptions.html", p)
		return
	}
	q.Limit = 25
	subs, next, err := d.opts.Console.SearchSubscriptions(r.Context(), q)
	if err != nil && !isRecordErr(err) {
		d.fail(w, r, err)
		return
	}
	p.Subs, p.Next = subs, nextPage(r, next.String())
	d.render(w, r, http.StatusOK, "subscriptions.html", p)
}

func isRecordErr(err error) bool {
	var re *billing.RecordError
	return errors.As(err, &re)
}

type subscriberPage struct {
	Title, Base, EmailsURL string
	Login, Console         bool
	T                      billing.Timeline
	Jobs                   []string
	Flash                  string
}

func (d *dash) subscriber(w http.ResponseWriter, r *http.Request) {
	tl, err := d.opts.Console.Timeline(r.Context(), r.PathValue("id"), 100)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, "subscriber.html", subscriberPage{Title: d.opts.Title, Base: d.rel(r, ""), EmailsURL: d.emailsURL(r),
		Login: d.opts.LoginToken != "", Console: true, T: tl, Jobs: billing.RerunJobIDs(), Flash: r.URL.Query().Get("flash")})
}

type rerunPage struct {
	Title, Base, EmailsURL string
	Login, Console         bool
	SubscriptionID, Job    string
	Preview                billing.Preview
}

// rerunPreview shows the job's dry run for the subscription and asks for confirmation.
func (d *dash) rerunPreview(w http.ResponseWriter, r *http.Request) {
	id, job := r.PathValue("id"), r.URL.Query().Get("job")
	p, _, err := d.opts.Console.RerunSubscription(r.Context(), job, id, d.identify(r), true)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, "rerun.html", rerunPage{Title: d.opts.Title, Base: d.rel(r, ""), EmailsURL: d.emailsURL(r),
		Login: d.opts.LoginToken != "", Console: true, SubscriptionID: id, Job: job, Preview: p})
}

func (d *dash) rerun(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		d.errorPage(w, r, http.StatusForbidden, "Cross-site request refused.")
		return
	}
	id, job := r.PathValue("id"), r.PostFormValue("job")
	if r.PostFormValue("confirm") != "yes" {
		d.errorPage(w, r, http.StatusBadRequest, "Confirm the run on its preview page first.")
		return
	}
	_, res, err := d.opts.Console.RerunSubscription(r.Context(), job, id, d.identify(r), false)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	flash := fmt.Sprintf("Ran %s for this subscription: %d found, %d failed", job, res.Found(), res.Failures())
	seeOther(w, d.rel(r, "subscriptions/"+url.PathEscape(id))+"?flash="+url.QueryEscape(flash))
}

// --- emails ---

type emailsPage struct {
	Title, Base, EmailsURL string
	Login, Console         bool
	Kinds                  []statusLink
	Statuses               []statusLink
	Notes                  []billing.NotificationRecord
	Next, Error, Flash     string
}

func (d *dash) emails(w http.ResponseWriter, r *http.Request) {
	p := emailsPage{Title: d.opts.Title, Base: d.rel(r, ""), EmailsURL: d.emailsURL(r), Login: d.opts.LoginToken != "", Console: true,
		Flash: r.URL.Query().Get("flash")}
	v := r.URL.Query()
	link := filterLink(v, "kind", "status")
	p.Statuses = filterChoices(link, "status", v.Get("status"), "any status", scheduler.AllNotificationStatuses())
	p.Kinds = filterChoices(link, "kind", v.Get("kind"), "any kind", billing.AllNotificationKinds())
	q, err := scheduler.ParseNotificationQuery(r)
	if err != nil {
		p.Error = strings.TrimPrefix(err.Error(), "bad parameter: ")
		d.render(w, r, http.StatusBadRequest, "emails.html", p)
		return
	}
	q.Limit = 50
	notes, next, err := d.opts.Console.ListNotifications(r.Context(), q)
	if err != nil && !isRecordErr(err) {
		d.fail(w, r, err)
		return
	}
	p.Notes, p.Next = notes, nextPage(r, next.String())
	d.render(w, r, http.StatusOK, "emails.html", p)
}

type emailPage struct {
	Title, Base, EmailsURL string
	Login, Console         bool
	Key                    string
	Msg                    EmailMessage
}

func (d *dash) emailView(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	m, err := d.opts.EmailView(r.Context(), key)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, "email.html", emailPage{Title: d.opts.Title, Base: d.rel(r, ""), EmailsURL: d.emailsURL(r),
		Login: d.opts.LoginToken != "", Console: true, Key: key, Msg: m})
}

// emailHTML serves a sent email's HTML part for the sandboxed frame of its page, under a
// policy that lets it load nothing.
func (d *dash) emailHTML(w http.ResponseWriter, r *http.Request) {
	m, err := d.opts.EmailView(r.Context(), r.URL.Query().Get("key"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; sandbox")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(m.HTML))
}

type resendPage struct {
	Title, Base, EmailsURL string
	Login, Console         bool
	N                      billing.NotificationRecord
}

// resendConfirm asks before resending an email that failed for good.
func (d *dash) resendConfirm(w http.ResponseWriter, r *http.Request) {
	rec, err := d.opts.Console.GetNotification(r.Context(), r.URL.Query().Get("key"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, "resend.html", resendPage{Title: d.opts.Title, Base: d.rel(r, ""), EmailsURL: d.emailsURL(r),
		Login: d.opts.LoginToken != "", Console: true, N: rec})
}

func (d *dash) resend(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		d.errorPage(w, r, http.StatusForbidden, "Cross-site request refused.")
		return
	}
	key := r.PostFormValue("key")
	if r.PostFormValue("confirm") != "yes" || key == "" {
		d.errorPage(w, r, http.StatusBadRequest, "Confirm the resend on its page first.")
		return
	}
	rec, err := d.opts.Console.ResendNotification(r.Context(), key, d.identify(r))
	flash := "Resent " + string(rec.Kind) + " email: delivered"
	switch {
	case errors.Is(err, billing.ErrUndeliverable):
		flash = "Resent " + string(rec.Kind) + " email: it failed again; see its error in the log"
	case err != nil:
		d.fail(w, r, err)
		return
	}
	back := d.rel(r, "email-log")
	if rec.SubscriptionID != "" {
		back = d.rel(r, "subscriptions/"+url.PathEscape(rec.SubscriptionID))
	}
	seeOther(w, back+"?flash="+url.QueryEscape(flash))
}

// --- charts ---

type chartSet struct {
	Status, Cancellations template.HTML
	MRR, Forecast         []template.HTML
	Notes                 []string
}

// overviewCharts draws the overview's pictures; a source that fails is noted and left out.
func (d *dash) overviewCharts(ctx context.Context) chartSet {
	var cs chartSet
	in := d.opts.Insights
	snaps, err := in.Snapshots(ctx, 90)
	switch {
	case err != nil:
		d.log.WarnContext(ctx, "dashboard snapshots unavailable", "error", err)
		cs.Notes = append(cs.Notes, "Daily snapshots are unavailable: "+err.Error())
	case len(snaps) == 0:
		cs.Notes = append(cs.Notes, "No daily snapshots yet: the snapshot job stores one a day.")
	default:
		labels := make([]string, len(snaps))
		for i, s := range snaps {
			labels[i] = s.Day.Format("Jan 2")
		}
		var ss []series
		for _, st := range scheduler.AllSubscriptionStatuses() {
			se := series{Name: string(st), Values: make([]float64, len(snaps))}
			any := false
			for i, s := range snaps {
				se.Values[i] = float64(s.ByStatus[st])
				any = any || s.ByStatus[st] > 0
			}
			if any {
				ss = append(ss, se)
			}
		}
		cs.Status = lineChart("chart-status", "Subscriptions by status, last 90 days", labels, ss, true, formatCount)
		currencies := map[string]bool{}
		for _, s := range snaps {
			for c := range s.MRR {
				currencies[c] = true
			}
		}
		for _, c := range sortedKeys(currencies) {
			se := series{Name: "MRR " + c, Values: make([]float64, len(snaps))}
			for i, s := range snaps {
				se.Values[i] = float64(s.MRR[c])
			}
			cs.MRR = append(cs.MRR, lineChart("chart-mrr-"+c, "MRR in "+c+", last 90 days", labels, []series{se}, false, formatMinor))
		}
	}
	fc, err := in.Forecast(ctx, 30)
	if err != nil {
		d.log.WarnContext(ctx, "dashboard forecast unavailable", "error", err)
		cs.Notes = append(cs.Notes, "The revenue forecast is unavailable.")
	} else {
		byCur := map[string][]billing.ExpectedRevenue{}
		for _, e := range fc {
			byCur[e.Currency] = append(byCur[e.Currency], e)
		}
		for _, c := range sortedKeys(byCur) {
			var labels []string
			se := series{Name: "expected " + c}
			for _, e := range byCur[c] {
				labels = append(labels, fmt.Sprintf("%s (%d)", e.Gateway, e.Subscriptions))
				se.Values = append(se.Values, float64(e.Amount))
			}
			cs.Forecast = append(cs.Forecast, barChart("chart-forecast-"+c, "Expected renewals in "+c+", next 30 days, by gateway", labels, []series{se}, false, false, formatMinor))
		}
		if len(fc) == 0 {
			cs.Notes = append(cs.Notes, "No auto-renewing subscription renews in the next 30 days.")
		}
	}
	months, err := in.Cancellations(ctx, 6)
	if err != nil {
		d.log.WarnContext(ctx, "dashboard cancellations unavailable", "error", err)
		cs.Notes = append(cs.Notes, "Cancellations are unavailable.")
	} else {
		labels := make([]string, len(months))
		ss := make([]series, len(billing.AllCancellationSources()))
		for k, src := range billing.AllCancellationSources() {
			ss[k] = series{Name: strings.ReplaceAll(src, "_", " "), Values: make([]float64, len(months))}
			for i, m := range months {
				labels[i] = m.Month
				ss[k].Values[i] = float64(m.BySource[src])
			}
		}
		cs.Cancellations = barChart("chart-cancellations", "Cancellations by cause, per month", labels, ss, true, true, formatCount)
	}
	return cs
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// processedKeys are the result counters that say how many records a run finished, per job.
var processedKeys = []string{"processed", "notifications_sent", "renewed", "cleaned"}

func resultNumber(run billing.JobRun, keys ...string) (float64, bool) {
	for _, k := range keys {
		if v, ok := run.Result[k].(float64); ok {
			return v, true
		}
		if v, ok := run.Result[k].(int); ok {
			return float64(v), true
		}
	}
	return 0, false
}

// jobCharts draws the last 30 finished runs of a job, oldest first: duration, and found
// versus processed.
func jobCharts(runs []billing.JobRun, loc *time.Location) (template.HTML, template.HTML) {
	var done []billing.JobRun
	for _, r := range runs {
		if r.Status != billing.RunStatusSkipped && r.Status != billing.RunStatusRunning {
			done = append(done, r)
		}
	}
	if len(done) > 30 {
		done = done[:30]
	}
	slices.Reverse(done)
	if len(done) == 0 {
		return "", ""
	}
	labels := make([]string, len(done))
	dur := series{Name: "duration", Values: make([]float64, len(done))}
	found := series{Name: "found", Values: make([]float64, len(done))}
	processed := series{Name: "processed", Values: make([]float64, len(done))}
	for i, r := range done {
		labels[i] = r.StartedAt.In(loc).Format("01-02 15:04")
		dur.Values[i] = float64(r.DurationMS)
		found.Values[i], _ = resultNumber(r, "total_found")
		processed.Values[i], _ = resultNumber(r, processedKeys...)
	}
	last := "the last run"
	if len(done) > 1 {
		last = fmt.Sprintf("the last %d runs", len(done))
	}
	return barChart("chart-duration", "Duration of "+last, labels, []series{dur}, false, false, formatMS),
		barChart("chart-found", "Found and processed in "+last, labels, []series{found, processed}, false, true, formatCount)
}

// filterChoices returns the links of one filter of a list page: allLabel turns it off, then
// one link a value; the link of cur, the value in force, is On.
func filterChoices[T ~string](link func(k, val string) string, key, cur, allLabel string, values []T) []statusLink {
	out := []statusLink{{Label: allLabel, URL: link(key, ""), On: cur == ""}}
	for _, x := range values {
		out = append(out, statusLink{Label: string(x), URL: link(key, string(x)), On: cur == string(x)})
	}
	return out
}

// nextPage returns the query string of the list page after r's, which starts at cursor;
// empty when cursor is (r's page is the last).
func nextPage(r *http.Request, cursor string) string {
	if cursor == "" {
		return ""
	}
	v := r.URL.Query()
	v.Set("cursor", cursor)
	return "?" + v.Encode()
}

// filterLink returns a func making the query string of a filtered page: the filters named
// in keep as they are in v, with k set to val (removed when val is empty).
func filterLink(v url.Values, keep ...string) func(k, val string) string {
	return func(k, val string) string {
		q := url.Values{}
		for _, name := range keep {
			if x := v.Get(name); x != "" {
				q.Set(name, x)
			}
		}
		if val == "" {
			q.Del(k)
		} else {
			q.Set(k, val)
		}
		return "?" + q.Encode()
	}
}
