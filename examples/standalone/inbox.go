package main

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/renewkit/renewkit/billing"
)

// inboxCollector exports the webhook inbox's depth by state and the age of its oldest
// pending event, read from the store when Prometheus scrapes.
type inboxCollector struct {
	mu  sync.Mutex
	svc *billing.Service // nil until configure
}

var (
	inboxDepthDesc = prometheus.NewDesc("renewkit_webhook_inbox_events",
		"Webhook events in the inbox, by state (received, failed and parked are still to process).", []string{"state"}, nil)
	inboxOldestDesc = prometheus.NewDesc("renewkit_webhook_inbox_oldest_pending_age_seconds",
		"Age of the oldest webhook event still to process (0 when none).", nil, nil)
)

func (c *inboxCollector) configure(svc *billing.Service) {
	c.mu.Lock()
	c.svc = svc
	c.mu.Unlock()
}

func (c *inboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- inboxDepthDesc
	ch <- inboxOldestDesc
}

func (c *inboxCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	svc := c.svc
	c.mu.Unlock()
	if svc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := svc.WebhookInboxStats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(inboxDepthDesc, err)
		return
	}
	for _, s := range billing.AllWebhookEventStates() {
		ch <- prometheus.MustNewConstMetric(inboxDepthDesc, prometheus.GaugeValue, float64(st.ByState[s]), string(s))
	}
	age := 0.0
	if !st.OldestPending.IsZero() {
		age = max(svc.Clock().Now().Sub(st.OldestPending).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(inboxOldestDesc, prometheus.GaugeValue, age)
}

// observeInbox records one inbox attempt.
func (m *metrics) observeInbox(now func() time.Time) func(billing.WebhookEvent, billing.WebhookAttempt) {
	return func(ev billing.WebhookEvent, a billing.WebhookAttempt) {
		m.inboxAttempt.WithLabelValues(ev.Gateway, string(a.State)).Observe(a.Duration.Seconds())
		if a.State == billing.WebhookEventStateProcessed || a.State == billing.WebhookEventStateIgnored {
			m.inboxApplied.WithLabelValues(ev.Gateway).Observe(max(now().Sub(ev.ReceivedAt).Seconds(), 0))
		}
	}
}
