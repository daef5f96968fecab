package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/notify"
)

// recordResult is a billing.Result for the test jobs.
type recordResult struct {
	Success    bool `json:"success"`
	TotalFound int  `json:"total_found"`
	Failed     int  `json:"failed"`
}

func (r recordResult) Found() int    { return r.TotalFound }
func (r recordResult) Failures() int { return r.Failed }

// alertSink is a signed-webhook receiver: it verifies each request and keeps the payloads.
type alertSink struct {
	secret []byte
	mu     sync.Mutex
	got    []notify.WebhookPayload
	bad    []string
}

func (s *alertSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := notify.VerifyWebhook(s.secret, r.Header.Get(notify.SignatureHeader), body, time.Now(), 0); err != nil {
		s.bad = append(s.bad, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var p notify.WebhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		s.bad = append(s.bad, err.Error())
	}
	s.got = append(s.got, p)
}

func (s *alertSink) payloads() ([]notify.WebhookPayload, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got), slices.Clone(s.bad)
}

// Proves the standalone server's alerting end to end: a run stopped by the notifier
// circuit breaker sends the notifier_unavailable alert at once through the signed
// ALERT_WEBHOOK_URL and not by email, and counts in renewkit_notifier_breaker_trips_total
// and renewkit_job_consecutive_failures; a run's failed records count in
// renewkit_job_records_failed_total; the subscription gauges match billing's analytics; every
// job's counters exist at 0 before its first run; the webhook secret is never printed.
func TestAlertingChannelsAndMetrics(t *testing.T) {
	const secret = "alert-webhook-secret-Zq77-0123456789"
	sink := &alertSink{secret: []byte(secret)}
	hook := httptest.NewServer(sink)
	defer hook.Close()
	var outage atomic.Bool
	outage.Store(true)
	jobs := []billing.Job{
		{ID: "mail_outage", Schedule: "0 0 1 1 *", Run: func(context.Context) (billing.Result, error) {
			if !outage.Load() {
				return recordResult{Success: true, TotalFound: 4}, nil
			}
			err := fmt.Errorf("%w: 5 consecutive transient failures, the last: 421 try later", billing.ErrNotifierUnavailable)
			return recordResult{TotalFound: 40, Failed: 35}, fmt.Errorf("sending warnings: %w", err)
		}},
		{ID: "partial", Schedule: "0 0 1 1 *", Run: func(context.Context) (billing.Result, error) {
			return recordResult{Success: true, TotalFound: 7, Failed: 3}, nil
		}},
	}
	s := startServer(t, map[string]string{"ALERT_WEBHOOK_URL": hook.URL + "/ops?token=tok-Zq78", "ALERT_WEBHOOK_SECRET": secret},
		func(c *Config) { c.extraJobs, c.gaugeTTL = jobs, time.Nanosecond })

	before := scrape(t, s)
	for _, id := range []string{billing.JobRenew, "mail_outage", "partial"} {
		for _, name := range []string{"renewkit_notifier_breaker_trips_total", "renewkit_job_records_failed_total",
			"renewkit_job_records_found_total", "renewkit_job_failures_total"} {
			if !hasSeries(before, name, map[string]string{"job_id": id}) {
				t.Errorf("%s{job_id=%q} missing before the first run: a rule's increase() would miss the first one", name, id)
			}
		}
	}
	trigger := func(id string) billing.JobRun {
		t.Helper()
		code, body := s.do(http.MethodPost, "/api/admin/jobs/"+id+"/trigger", nil, true)
		if code != http.StatusOK {
			t.Fatalf("trigger %s: %d %s", id, code, body)
		}
		return decode[billing.JobRun](t, body)
	}
	run := trigger("mail_outage")
	if run.Status != billing.RunStatusFailed || !strings.Contains(run.Error, "notifier unavailable") {
		t.Fatalf("tripped run = %+v", run)
	}
	got, bad := sink.payloads()
	if len(bad) != 0 || len(got) != 1 {
		t.Fatalf("webhook got %d alerts (%v), want 1 at the first trip", len(got), bad)
	}
	a := got[0]
	if a.Kind != billing.NotificationKindOperatorAlert || a.Data.JobID != "mail_outage" || a.Data.RunID != run.ID ||
		!strings.Contains(a.Key, ":notifier_unavailable:") || a.Subject == "" {
		t.Fatalf("webhook alert = %+v", a)
	}
	trigger("mail_outage")
	trigger("partial")

	after := scrape(t, s)
	moved := []struct {
		name   string
		labels map[string]string
		by     float64
	}{
		{"renewkit_notifier_breaker_trips_total", map[string]string{"job_id": "mail_outage"}, 2},
		{"renewkit_notifier_breaker_trips_total", map[string]string{"job_id": "partial"}, 0},
		// Records count for completed runs only: the tripped runs' unsent emails are not
		// failed renewals.
		{"renewkit_job_records_failed_total", map[string]string{"job_id": "mail_outage"}, 0},
		{"renewkit_job_records_failed_total", map[string]string{"job_id": "partial"}, 3},
		{"renewkit_job_records_found_total", map[string]string{"job_id": "partial"}, 7},
		{"renewkit_job_failures_total", map[string]string{"job_id": "mail_outage"}, 2},
		// The email channel was skipped for the breaker's alert (it is down), not for the
		// partial_failures alert of "partial".
		{"renewkit_emails_sent_total", map[string]string{"kind": string(billing.NotificationKindOperatorAlert)}, 1},
		{"renewkit_emails_failed_total", map[string]string{"kind": string(billing.NotificationKindOperatorAlert)}, 0},
	}
	for _, m := range moved {
		b, a := value(before, m.name, m.labels), value(after, m.name, m.labels)
		if a-b != m.by {
			t.Errorf("%s%v moved %v -> %v, want +%v", m.name, m.labels, b, a, m.by)
		}
	}
	if n := value(after, "renewkit_job_consecutive_failures", map[string]string{"job_id": "mail_outage"}); n != 2 {
		t.Errorf("renewkit_job_consecutive_failures{mail_outage} = %v, want 2", n)
	}
	if !hasSeries(after, "renewkit_job_consecutive_failures", map[string]string{"job_id": "partial"}) ||
		value(after, "renewkit_job_consecutive_failures", map[string]string{"job_id": "partial"}) != 0 {
		t.Errorf("renewkit_job_consecutive_failures{partial} should be 0")
	}
	var conds []string
	got, _ = sink.payloads()
	for _, p := range got {
		conds = append(conds, strings.Split(p.Key, ":")[2])
	}
	if !slices.Equal(conds, []string{"notifier_unavailable", "partial_failures"}) {
		t.Errorf("webhook alerts %v: want one per episode, and partial's on every channel", conds)
	}

	an, err := s.app.svc.Analytics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if an.Expiring7d == 0 {
		t.Fatalf("demo data has nothing expiring in 7 days: %+v", an)
	}
	for _, g := range []struct {
		name   string
		labels map[string]string
		want   int
	}{
		{"renewkit_subscriptions_expiring", map[string]string{"window": "3d"}, an.Expiring3d},
		{"renewkit_subscriptions_expiring", map[string]string{"window": "7d"}, an.Expiring7d},
		{"renewkit_subscriptions_live", nil, an.Live},
	} {
		if v := value(after, g.name, g.labels); v != float64(g.want) {
			t.Errorf("%s%v = %v, want %d", g.name, g.labels, v, g.want)
		}
	}

	// Recovery clears the streak the gauge reports.
	outage.Store(false)
	trigger("mail_outage")
	if n := value(scrape(t, s), "renewkit_job_consecutive_failures", map[string]string{"job_id": "mail_outage"}); n != 0 {
		t.Errorf("streak after a good run = %v", n)
	}
	for _, out := range []string{s.stdout.String(), s.stderr.String()} {
		if strings.Contains(out, secret) || strings.Contains(out, "tok-Zq78") {
			t.Errorf("the webhook secret or URL token was printed:\n%s", out)
		}
	}
	if !strings.Contains(s.stderr.String(), "signed webhook to http://127.0.0.1") {
		t.Errorf("startup log does not say alerts go to the webhook:\n%s", s.stderr.String())
	}
}

// hasSeries reports whether family name has a series whose labels include want.
func hasSeries(fams map[string]*dto.MetricFamily, name string, want map[string]string) bool {
	for _, m := range fams[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		ok := true
		for k, v := range want {
			ok = ok && labels[k] == v
		}
		if ok {
			return true
		}
	}
	return false
}

// Proves the gauges' store reading is reused for the TTL: scrapes within it cost nothing,
// concurrent ones wait for a single reading, and a failed part is left out.
func TestStateGaugesReadAtMostOncePerTTL(t *testing.T) {
	c := newStateCollector()
	now := time.Date(2025, 10, 20, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	c.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	var reads atomic.Int64
	var analyticsErr atomic.Bool
	states := &countingStates{}
	c.configure([]string{"a", "b"}, states, func(context.Context) (billing.Analytics, error) {
		reads.Add(1)
		if analyticsErr.Load() {
			return billing.Analytics{}, fmt.Errorf("store down")
		}
		return billing.Analytics{Expiring3d: 2, Expiring7d: 5, Live: 40}, nil
	}, 0, slog.New(slog.DiscardHandler))
	if c.ttl != gaugeTTL {
		t.Fatalf("ttl %v, want the default %v", c.ttl, gaugeTTL)
	}
	collect := func() int {
		ch := make(chan prometheus.Metric, 16)
		c.Collect(ch)
		close(ch)
		n := 0
		for range ch {
			n++
		}
		return n
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { collect() })
	}
	wg.Wait()
	if n := collect(); n != 5 || reads.Load() != 1 || states.calls.Load() != 2 {
		t.Fatalf("%d series, %d analytics reads, %d state reads; want 5 series from one reading", n, reads.Load(), states.calls.Load())
	}
	advance(gaugeTTL - time.Second)
	collect()
	if reads.Load() != 1 {
		t.Fatalf("read again within the TTL")
	}
	advance(time.Second)
	analyticsErr.Store(true)
	if n := collect(); n != 2 || reads.Load() != 2 {
		t.Fatalf("after the TTL with analytics failing: %d series (want the 2 streaks), %d reads", n, reads.Load())
	}
}

type countingStates struct{ calls atomic.Int64 }

func (s *countingStates) GetJobState(_ context.Context, id string) (billing.JobState, error) {
	s.calls.Add(1)
	return billing.JobState{JobID: id, ConsecutiveFailures: 1}, nil
}

func (s *countingStates) PutJobState(context.Context, billing.JobState) error { return nil }

// alertRules is the part of a Prometheus rule file the tests read.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

var (
	metricRef = regexp.MustCompile(`\b(renewkit_[a-z0-9_]+)(\{[^}]*\})?`)
	matcher   = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	grouping  = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// Proves alerts.yml holds the four alerts the seed asks for, each with a duration,
// severity and summary, and that every series and label its expressions name is one this
// server exports (the ones a scrape of a fresh server shows).
func TestAlertRulesUseExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f alertRules
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	s := startServer(t, nil, nil)
	// Counters with labels appear once used: run each job once so every family shows.
	for _, j := range s.app.svc.Jobs() {
		if code, body := s.do(http.MethodPost, "/api/admin/jobs/"+j.ID+"/trigger", nil, true); code != http.StatusOK {
			t.Fatalf("trigger %s: %d %s", j.ID, code, body)
		}
	}
	s.app.metrics.emailsFailed.WithLabelValues("expiring", "false") // as the first failure would
	fams := scrape(t, s)
	labelsOf := func(name string) (map[string]bool, bool) {
		fam, ok := fams[name]
		if !ok {
			return nil, false
		}
		out := map[string]bool{}
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				out[l.GetName()] = true
			}
		}
		return out, true
	}

	var alerts []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: needs expr, labels.severity and annotations.summary", r.Alert)
			}
			if _, err := model.ParseDuration(r.For); err != nil {
				t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
			}
			exprLabels := map[string]bool{}
			refs := metricRef.FindAllStringSubmatch(r.Expr, -1)
			if len(refs) == 0 {
				t.Errorf("%s: names no renewkit series", r.Alert)
			}
			for _, ref := range refs {
				labels, ok := labelsOf(ref[1])
				if !ok {
					t.Errorf("%s: %s is not exported by the server", r.Alert, ref[1])
					continue
				}
				for l := range labels {
					exprLabels[l] = true
				}
				for _, m := range matcher.FindAllStringSubmatch(ref[2], -1) {
					if !labels[m[1]] {
						t.Errorf("%s: %s has no label %q", r.Alert, ref[1], m[1])
					}
				}
			}
			for _, g := range grouping.FindAllStringSubmatch(r.Expr, -1) {
				for l := range strings.SplitSeq(g[1], ",") {
					if l = strings.TrimSpace(l); l != "" && !exprLabels[l] {
						t.Errorf("%s: groups by %q, which none of its series has", r.Alert, l)
					}
				}
			}
		}
	}
	want := []string{"RenewkitJobFailingConsecutively", "RenewkitEmailServiceDown", "RenewkitManySubscriptionsExpiring", "RenewkitRenewalsFailing"}
	if !slices.Equal(alerts, want) {
		t.Errorf("alerts %v, want %v", alerts, want)
	}
}

// Proves the rules parse and fire as intended on synthetic series (testdata/alerts_test.yml),
// when promtool is installed (Debian: apt-get install prometheus).
func TestAlertRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		testkit.Unavailable(t, "promtool not installed: apt-get install prometheus (scripts/test does)")
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "testdata/alerts_test.yml"}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
