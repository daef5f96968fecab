package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/renewkit/renewkit/billing"
)

// gaugeTTL is how long a scrape reuses the store reading behind the gauges.
const gaugeTTL = 30 * time.Second

// stateReading is one reading of the store for the gauges; a nil part could not be read.
type stateReading struct {
	streaks   map[string]int // consecutive failed runs, by job id
	analytics *billing.Analytics
}

// stateCollector exports gauges read from the store when Prometheus scrapes: each job's
// failure streak (the scheduler's shared billing.JobState, so every replica reports the
// same value) and the subscriptions live and expiring soon (billing.Service.Analytics).
// Scrapes within ttl of a reading reuse it, so frequent or concurrent scrapes cost at most
// one reading per ttl. A part that cannot be read is left out of the scrape and logged.
type stateCollector struct {
	streak, expiring, live *prometheus.Desc

	mu   sync.Mutex
	read func(context.Context) stateReading // nil until configure
	ttl  time.Duration
	now  func() time.Time
	at   time.Time // of last
	last stateReading
}

var _ prometheus.Collector = (*stateCollector)(nil)

func newStateCollector() *stateCollector {
	return &stateCollector{
		streak: prometheus.NewDesc("renewkit_job_consecutive_failures",
			"Runs of the job that failed in a row (0 after a success), as the scheduler stores it for every replica.", []string{"job_id"}, nil),
		expiring: prometheus.NewDesc("renewkit_subscriptions_expiring",
			"Active subscriptions whose period ends within the window (3d, 7d).", []string{"window"}, nil),
		live: prometheus.NewDesc("renewkit_subscriptions_live",
			"Live subscriptions (active or past due).", nil, nil),
		ttl: gaugeTTL,
		now: time.Now,
	}
}

// configure says where the gauges come from: the state of the jobs ids in states, and
// analytics. ttl <= 0 means gaugeTTL.
func (c *stateCollector) configure(ids []string, states billing.JobStateStore,
	analytics func(context.Context) (billing.Analytics, error), ttl time.Duration, log *slog.Logger) {
	read := func(ctx context.Context) stateReading {
		var r stateReading
		streaks := make(map[string]int, len(ids))
		for _, id := range ids {
			st, err := states.GetJobState(ctx, id)
			if err != nil && !errors.Is(err, billing.ErrNotFound) {
				log.WarnContext(ctx, "metrics: reading job state failed; renewkit_job_consecutive_failures left out", "job_id", id, "error", err)
				streaks = nil
				break
			}
			streaks[id] = st.ConsecutiveFailures
		}
		r.streaks = streaks
		if an, err := analytics(ctx); err != nil {
			log.WarnContext(ctx, "metrics: reading analytics failed; subscription gauges left out", "error", err)
		} else {
			r.analytics = &an
		}
		return r
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read = read
	if ttl > 0 {
		c.ttl = ttl
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.streak
	ch <- c.expiring
	ch <- c.live
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.reading()
	for id, n := range r.streaks {
		ch <- prometheus.MustNewConstMetric(c.streak, prometheus.GaugeValue, float64(n), id)
	}
	if an := r.analytics; an != nil {
		ch <- prometheus.MustNewConstMetric(c.expiring, prometheus.GaugeValue, float64(an.Expiring3d), "3d")
		ch <- prometheus.MustNewConstMetric(c.expiring, prometheus.GaugeValue, float64(an.Expiring7d), "7d")
		ch <- prometheus.MustNewConstMetric(c.live, prometheus.GaugeValue, float64(an.Live))
	}
}

// reading returns the last reading when it is fresh, else reads again. Concurrent scrapes
// wait for one reading.
func (c *stateCollector) reading() stateReading {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.read == nil {
		return stateReading{}
	}
	now := c.now()
	if !c.at.IsZero() && now.Sub(c.at) < c.ttl {
		return c.last
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.last, c.at = c.read(ctx), now
	return c.last
}
