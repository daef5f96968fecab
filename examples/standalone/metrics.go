package main

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/renewkit/renewkit/billing"
)

// metrics are the server's Prometheus series. They are fed by decorators around the store
// (finished job runs), the jobs (their results and errors), the notifier (emails) and the
// webhook routes, and by a collector that reads the jobs' shared state and the analytics
// when scraped, so the library needs no metrics dependency. Job series are labelled job_id:
// Prometheus keeps the label "job" for the scrape job's name.
type metrics struct {
	reg          *prometheus.Registry
	jobRuns      *prometheus.CounterVec
	jobFailures  *prometheus.CounterVec
	jobDuration  *prometheus.HistogramVec
	breakerTrips *prometheus.CounterVec
	recsFound    *prometheus.CounterVec
	recsFailed   *prometheus.CounterVec
	emails       *prometheus.CounterVec
	emailsFailed *prometheus.CounterVec
	webhooks     *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	duplicates   *prometheus.CounterVec
	state        *stateCollector
	// The webhook inbox: attempts by outcome and their duration, the time from acceptance
	// to a final state, and (read when scraped) the depth by state and the oldest pending age.
	inboxAttempt *prometheus.HistogramVec
	inboxApplied *prometheus.HistogramVec
	inbox        *inboxCollector
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		jobRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "renewkit_job_runs_total",
			Help: "Finished job runs by job and status (succeeded, failed, skipped)."}, []string{"job_id", "status"}),
		jobFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "renewkit_job_failures_total",
			Help: "Job runs that failed, by job."}, []string{"job_id"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "renewkit_job_duration_seconds",
			Help: "Duration of job runs that ran, by job.", Buckets: prometheus.ExponentialBuckets(0.005, 4, 10)}, []string{"job_id"}),
		breakerTrips: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "renewkit_notifier_breaker_trips_total",
			Help: "Job runs stopped by the notifier circuit breaker (consecutive transient send failures: the email service is down), by job."}, []string{"job_id"}),
		recsFound: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "renewkit_job_records_found_total",
			Help: "Records that completed job runs selected (the result's total_found), by job."}, []string{"job_id"}),
		recsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "renewkit_job_records_failed_total",
			Help: "Records that completed job runs could not finish and left for a later run (the result's failed), by job; for renew_subscriptions, renewals that failed."}, []string{"job_id"}),
		emails: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "renewkit_emails_sent_total",
			Help: "Notifications delivered, by kind."}, []string{"kind"}),
		emailsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "renewkit_emails_failed_total",
			Help: "Notifications that failed, by kind and whether the failure is permanent."}, []string{"kind", "permanent"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "renewkit_webhooks_received_total",
			Help: "Webhook deliveries received, by gateway and HTTP status."}, []string{"gateway", "code"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "renewkit_webhooks_rejected_total",
			Help: "Webhook deliveries rejected with a 4xx (bad signature, malformed, too large), by gateway."}, []string{"gateway"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "renewkit_webhooks_duplicated_total",
			Help: "Webhook deliveries of events already processed, by gateway."}, []string{"gateway"}),
		state: newStateCollector(),
		inboxAttempt: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "renewkit_webhook_inbox_processing_seconds",
			Help:    "Duration of inbox processing attempts, by gateway and the state the attempt left the event in.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}, []string{"gateway", "state"}),
		inboxApplied: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "renewkit_webhook_inbox_applied_latency_seconds",
			Help:    "Time from a webhook's acceptance into the inbox to its processed or ignored state, by gateway.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 12)}, []string{"gateway"}),
		inbox: &inboxCollector{},
	}
	m.reg.MustRegister(m.jobRuns, m.jobFailures, m.jobDuration, m.breakerTrips, m.recsFound, m.recsFailed,
		m.emails, m.emailsFailed, m.webhooks, m.rejected, m.duplicates, m.state, m.inboxAttempt, m.inboxApplied, m.inbox,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// jobs returns the jobs with their runs metered: breaker trips and the records each run
// found and failed. Every job's counters start at 0, so the first trip is an increase a
// rule sees.
func (m *metrics) jobs(jobs []billing.Job) []billing.Job {
	out := make([]billing.Job, len(jobs))
	for i, j := range jobs {
		for _, c := range []*prometheus.CounterVec{m.jobFailures, m.breakerTrips, m.recsFound, m.recsFailed} {
			c.WithLabelValues(j.ID)
		}
		run := j.Run
		if run != nil {
			j.Run = func(ctx context.Context) (billing.Result, error) {
				res, err := run(ctx)
				m.observeResult(j.ID, res, err)
				return res, err
			}
		}
		out[i] = j
	}
	return out
}

// observeResult counts what one run of job reported. Records count only for runs that
// completed, as the scheduler's alerts do: a run the breaker stopped reports its unsent
// notifications as failed records, which would make an email outage look like failing
// renewals.
func (m *metrics) observeResult(job string, res billing.Result, err error) {
	if errors.Is(err, billing.ErrNotifierUnavailable) {
		m.breakerTrips.WithLabelValues(job).Inc()
	}
	if err != nil || res == nil {
		return
	}
	if v := reflect.ValueOf(res); v.Kind() == reflect.Pointer && v.IsNil() {
		return
	}
	m.recsFound.WithLabelValues(job).Add(float64(max(res.Found(), 0)))
	m.recsFailed.WithLabelValues(job).Add(float64(max(res.Failures(), 0)))
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// observeRun counts a run record once it is final.
func (m *metrics) observeRun(r billing.JobRun) {
	switch r.Status {
	case billing.RunStatusSucceeded, billing.RunStatusFailed, billing.RunStatusSkipped:
	default:
		return
	}
	m.jobRuns.WithLabelValues(r.JobID, string(r.Status)).Inc()
	if r.Status == billing.RunStatusFailed {
		m.jobFailures.WithLabelValues(r.JobID).Inc()
	}
	if r.Status != billing.RunStatusSkipped {
		m.jobDuration.WithLabelValues(r.JobID).Observe(float64(r.DurationMS) / 1000)
	}
}

// meteredStore counts job runs as the scheduler records them.
type meteredStore struct {
	billing.Store
	m *metrics
}

func (s meteredStore) InsertJobRun(ctx context.Context, r *billing.JobRun) error {
	err := s.Store.InsertJobRun(ctx, r)
	if err == nil {
		s.m.observeRun(*r)
	}
	return err
}

func (s meteredStore) UpdateJobRun(ctx context.Context, r billing.JobRun) error {
	err := s.Store.UpdateJobRun(ctx, r)
	if err == nil {
		s.m.observeRun(r)
	}
	return err
}

// meteredNotifier counts deliveries by kind.
type meteredNotifier struct {
	billing.Notifier
	m *metrics
}

func (n meteredNotifier) Notify(ctx context.Context, msg billing.Notification) error {
	err := n.Notifier.Notify(ctx, msg)
	switch {
	case err == nil:
		n.m.emails.WithLabelValues(string(msg.Kind)).Inc()
	default:
		n.m.emailsFailed.WithLabelValues(string(msg.Kind), strconv.FormatBool(errors.Is(err, billing.ErrUndeliverable))).Inc()
	}
	return err
}

// webhook wraps a gateway's handler to count deliveries, rejections and duplicates.
func (m *metrics) webhook(gateway string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		m.webhooks.WithLabelValues(gateway, strconv.Itoa(rec.code)).Inc()
		if rec.code >= 400 && rec.code < 500 && rec.code != http.StatusConflict {
			m.rejected.WithLabelValues(gateway).Inc()
		}
		if w.Header().Get("X-Webhook-Outcome") == string(billing.EventOutcomeDuplicate) {
			m.duplicates.WithLabelValues(gateway).Inc()
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}
