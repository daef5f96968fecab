package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// Stats summarises the run history kept in the store (the retention window) and, when the
// store can count them, the subscriptions the jobs work on.
type Stats struct {
	GeneratedAt time.Time  `json:"generated_at"`
	Since       time.Time  `json:"since"`
	Jobs        []JobStats `json:"jobs"`
	Totals      RunCounts  `json:"totals"`
	// Subscriptions is nil when the store does not implement SubscriptionCounter.
	Subscriptions *SubscriptionStats `json:"subscriptions,omitempty"`
}

// RunCounts counts finished runs. Runs is Succeeded + Failures; skipped ticks are counted
// apart. SuccessRate is Succeeded/Runs, nil without runs.
type RunCounts struct {
	Runs        int      `json:"runs"`
	Succeeded   int      `json:"succeeded"`
	Failures    int      `json:"failures"`
	Skipped     int      `json:"skipped"`
	SuccessRate *float64 `json:"success_rate"`
}

// JobStats is one job's share of Stats.
type JobStats struct {
	JobID string `json:"job_id"`
	RunCounts
	AvgDurationMS       *float64   `json:"avg_duration_ms"`
	LastDurationMS      *int64     `json:"last_duration_ms"`
	LastRun             *time.Time `json:"last_run"`
	LastStatus          string     `json:"last_status,omitempty"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	Paused              bool       `json:"paused"`
}

// SubscriptionStats counts subscriptions by status and those due for the jobs now.
type SubscriptionStats struct {
	ByStatus map[billing.SubscriptionStatus]int `json:"by_status"`
	Total    int                                `json:"total"`
	Due      DueCounts                          `json:"due"`
}

// DueCounts are the live subscriptions the next job runs will select.
type DueCounts struct {
	// ExpiringWithin3Days: active, period ends within 3 days (expiry warnings).
	ExpiringWithin3Days int `json:"expiring_within_3d"`
	// PastPeriodEnd: active or past due with the period already over (expiry, grace).
	PastPeriodEnd int `json:"past_period_end"`
	// RenewalWithin24h: auto-renewing, period ends within 24 hours (renewals).
	RenewalWithin24h int `json:"renewal_within_24h"`
}

func (c *RunCounts) add(r billing.JobRun) {
	switch r.Status {
	case billing.RunSucceeded:
		c.Runs++
		c.Succeeded++
	case billing.RunFailed:
		c.Runs++
		c.Failures++
	case billing.RunSkipped:
		c.Skipped++
	}
}

func (c *RunCounts) rate() {
	if c.Runs > 0 {
		r := float64(c.Succeeded) / float64(c.Runs)
		c.SuccessRate = &r
	}
}

// Stats computes the summary the admin API serves at /stats/summary.
func (s *Scheduler) Stats(ctx context.Context) (Stats, error) {
	now := s.now()
	out := Stats{GeneratedAt: now.In(s.cfg.loc), Since: now.AddDate(0, 0, -s.cfg.retention).In(s.cfg.loc)}
	for _, e := range s.jobs {
		runs, err := s.store.ListJobRuns(ctx, billing.JobRunFilter{JobID: e.job.ID, Since: out.Since})
		if err != nil {
			return Stats{}, fmt.Errorf("scheduler: listing runs of %q: %w", e.job.ID, err)
		}
		st, err := s.store.GetJobState(ctx, e.job.ID)
		if err != nil {
			return Stats{}, fmt.Errorf("scheduler: reading state of %q: %w", e.job.ID, err)
		}
		js := JobStats{JobID: e.job.ID, ConsecutiveFailures: st.ConsecutiveFailures, Paused: st.Paused}
		var total int64
		for _, r := range runs { // newest first
			js.add(r)
			out.Totals.add(r)
			if r.Status != billing.RunSucceeded && r.Status != billing.RunFailed {
				continue
			}
			total += r.DurationMS
			if js.LastDurationMS == nil {
				d, t := r.DurationMS, r.StartedAt.In(s.cfg.loc)
				js.LastDurationMS, js.LastRun, js.LastStatus = &d, &t, string(r.Status)
			}
		}
		if js.Runs > 0 {
			avg := float64(total) / float64(js.Runs)
			js.AvgDurationMS = &avg
		}
		js.rate()
		out.Jobs = append(out.Jobs, js)
	}
	out.Totals.rate()
	if c, ok := s.store.(SubscriptionCounter); ok {
		subs, err := subscriptionStats(ctx, c, now)
		if err != nil {
			return Stats{}, err
		}
		out.Subscriptions = &subs
	}
	return out, nil
}

func subscriptionStats(ctx context.Context, c SubscriptionCounter, now time.Time) (SubscriptionStats, error) {
	by, err := c.CountSubscriptionsByStatus(ctx)
	if err != nil {
		return SubscriptionStats{}, fmt.Errorf("scheduler: counting subscriptions: %w", err)
	}
	out := SubscriptionStats{ByStatus: by}
	if out.ByStatus == nil {
		out.ByStatus = map[billing.SubscriptionStatus]int{}
	}
	for _, n := range by {
		out.Total += n
	}
	yes := true
	for _, q := range []struct {
		dst *int
		f   billing.SubscriptionFilter
	}{
		{&out.Due.ExpiringWithin3Days, billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.StatusActive}, PeriodEndAfter: now, PeriodEndBefore: now.Add(72 * time.Hour)}},
		{&out.Due.PastPeriodEnd, billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.StatusActive, billing.StatusPastDue}, PeriodEndBefore: now}},
		{&out.Due.RenewalWithin24h, billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.StatusActive, billing.StatusPastDue}, PeriodEndAfter: now, PeriodEndBefore: now.Add(24 * time.Hour), AutoRenews: &yes}},
	} {
		n, err := c.CountSubscriptions(ctx, q.f)
		if err != nil {
			return SubscriptionStats{}, fmt.Errorf("scheduler: counting due subscriptions: %w", err)
		}
		*q.dst = n
	}
	return out, nil
}
