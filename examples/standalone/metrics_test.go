package main

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/stripegw"
	"github.com/renewkit/renewkit/gateways/stripegw/stripegwtest"
)

// scrape fetches /metrics (no auth: Prometheus scrapes it) and parses it with the
// Prometheus text parser.
func scrape(t *testing.T, s *server) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := s.do(http.MethodGet, "/metrics", nil, false)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return fams
}

// value sums the samples of family name whose labels include want (counter or gauge value,
// histogram sample count); absent series count as 0.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var sum float64
	for _, m := range fams[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// Proves /metrics parses with the Prometheus text parser and its series move: a triggered
// job adds one succeeded run and one duration sample, its emails count by kind, and Stripe
// webhook deliveries count as received, rejected (bad signature) and duplicated. /healthz
// and /readyz answer 200 with the scheduler running.
func TestMetricsMove(t *testing.T) {
	const secret = "whsec_metrics_test"
	s := startServer(t, map[string]string{"STRIPE_WEBHOOK_SECRET": secret}, nil)

	if code, body := s.do(http.MethodGet, "/healthz", nil, false); code != http.StatusOK {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	code, body := s.do(http.MethodGet, "/readyz", nil, false)
	if code != http.StatusOK {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	if r := decode[map[string]string](t, body); r["scheduler"] != "ok" || r["store"] != "ok" {
		t.Fatalf("/readyz %v", r)
	}

	before := scrape(t, s)
	job := map[string]string{"job_id": billing.JobCheckExpiring, "status": "succeeded"}
	if code, body := s.do(http.MethodPost, "/api/admin/jobs/"+billing.JobCheckExpiring+"/trigger", nil, true); code != http.StatusOK {
		t.Fatalf("trigger: %d %s", code, body)
	}

	// Stripe: a Checkout payment for the demo's pending payment (processed, emails the
	// receipt), the same delivery again (duplicate), an unsigned copy (rejected).
	session := map[string]any{"id": "cs_metrics", "object": "checkout.session", "mode": "payment", "status": "complete",
		"payment_status": "paid", "payment_intent": "pi_metrics", "amount_total": 4990, "currency": "brl",
		"metadata": map[string]string{"payment_id": "pay_recent"}}
	ev := stripegwtest.NewEvent("evt_metrics_1", stripegw.EventCheckoutSessionCompleted, session)
	post := func(sign bool) (int, string) {
		req := ev.Request(s.base+"/api/payments/stripe/webhook", secret, time.Now())
		if !sign {
			req.Header.Set(stripegw.SignatureHeader, stripegw.SignPayload("whsec_wrong", ev.Payload(), time.Now()))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Webhook-Outcome")
	}
	if code, outcome := post(true); code != http.StatusOK || outcome != string(billing.OutcomeAccepted) {
		t.Fatalf("first delivery: %d %s\n%s", code, outcome, s.stderr.String())
	}
	if code, outcome := post(true); code != http.StatusOK || outcome != string(billing.EventOutcomeDuplicate) {
		t.Fatalf("second delivery: %d %s", code, outcome)
	}
	if code, _ := post(false); code != http.StatusBadRequest {
		t.Fatalf("badly signed delivery: %d, want 400", code)
	}
	// The inbox worker applies the accepted event, then records its attempt: wait for both
	// (the payment is approved inside the attempt, the metrics move after it).
	processed := map[string]string{"gateway": "stripe", "state": "processed"}
	var after map[string]*dto.MetricFamily
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		pay, err := s.app.store.GetPayment(context.Background(), "pay_recent")
		after = scrape(t, s)
		moved := value(after, "renewkit_webhook_inbox_processing_seconds", processed) > value(before, "renewkit_webhook_inbox_processing_seconds", processed)
		if err == nil && pay.Status == billing.PaymentStatusApproved && moved {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pay_recent %+v, %v (inbox attempt recorded: %v): want approved by the inbox worker", pay, err, moved)
		}
	}

	moved := []struct {
		name   string
		labels map[string]string
		by     float64
	}{
		{"renewkit_job_runs_total", job, 1},
		{"renewkit_job_duration_seconds", map[string]string{"job_id": billing.JobCheckExpiring}, 1},
		{"renewkit_emails_sent_total", map[string]string{"kind": "expiring"}, 3},
		{"renewkit_emails_sent_total", map[string]string{"kind": "renewal_upcoming"}, 1},
		{"renewkit_emails_sent_total", map[string]string{"kind": "payment_successful"}, 1},
		{"renewkit_webhooks_received_total", map[string]string{"gateway": "stripe"}, 3},
		{"renewkit_webhooks_received_total", map[string]string{"gateway": "stripe", "code": "200"}, 2},
		{"renewkit_webhooks_received_total", map[string]string{"gateway": "stripe", "code": "400"}, 1},
		{"renewkit_webhooks_rejected_total", map[string]string{"gateway": "stripe"}, 1},
		{"renewkit_webhooks_duplicated_total", map[string]string{"gateway": "stripe"}, 1},
		{"renewkit_webhook_inbox_processing_seconds", map[string]string{"gateway": "stripe", "state": "processed"}, 1},
		{"renewkit_webhook_inbox_applied_latency_seconds", map[string]string{"gateway": "stripe"}, 1},
		{"renewkit_webhook_inbox_events", map[string]string{"state": "processed"}, 1},
	}
	for _, m := range moved {
		b, a := value(before, m.name, m.labels), value(after, m.name, m.labels)
		if a-b != m.by {
			t.Errorf("%s%v moved %v -> %v, want +%v", m.name, m.labels, b, a, m.by)
		}
	}
	if v := value(after, "renewkit_job_failures_total", nil); v != 0 {
		t.Errorf("renewkit_job_failures_total = %v, want 0", v)
	}
	if _, ok := after["go_goroutines"]; !ok {
		t.Error("Go runtime metrics missing")
	}
	for _, f := range []string{"renewkit_emails_sent_total", "renewkit_job_runs_total"} {
		if after[f].GetHelp() == "" || after[f].GetType() != dto.MetricType_COUNTER {
			t.Errorf("%s: help %q, type %v; want a documented counter", f, after[f].GetHelp(), after[f].GetType())
		}
	}
}
