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
	// Subscriptions comes from Config.SubscriptionStats, else from the store when it is a
	// billing.SubscriptionCounter; nil without either.
	Subscriptions *billing.SubscriptionStats `json:"subscriptions,omitempty"`
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

// SubscriptionStats is billing.SubscriptionStats.
//
// Deprecated: use billing.SubscriptionStats.
type SubscriptionStats = billing.SubscriptionStats

// DueCounts is billing.DueCounts.
//
// Deprecated: use billing.DueCounts.
type DueCounts = billing.DueCounts

func (c *RunCounts) add(r billing.JobRun) {
	switch r.Status {
	case billing.RunStatusSucceeded:
		c.Runs++
		c.Succeeded++
	case billing.RunStatusFailed:
		c.Runs++
		c.Failures++
	case billing.RunStatusSkipped:
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
	out := Stats{GeneratedAt: now.In(s.cfg.Location), Since: now.AddDate(0, 0, -s.cfg.HistoryRetentionDays).In(s.cfg.Location)}
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
			if r.Status != billing.RunStatusSucceeded && r.Status != billing.RunStatusFailed {
				continue
			}
			total += r.DurationMS
			if js.LastDurationMS == nil {
				d, t := r.DurationMS, r.StartedAt.In(s.cfg.Location)
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
	if subs, ok, err := s.subscriptionStats(ctx, now); err != nil {
		return Stats{}, fmt.Errorf("scheduler: %w", err)
	} else if ok {
		out.Subscriptions = &subs
	}
	return out, nil
}

// subscriptionStats serves what Config.SubscriptionStats gives, else billing's counts on the
// store with billing's default windows; ok is false when neither is available.
func (s *Scheduler) subscriptionStats(ctx context.Context, now time.Time) (billing.SubscriptionStats, bool, error) {
	if s.cfg.SubscriptionStats != nil {
		st, err := s.cfg.SubscriptionStats(ctx)
		return st, err == nil, err
	}
	c, ok := s.store.(billing.SubscriptionCounter)
	if !ok {
		return billing.SubscriptionStats{}, false, nil
	}
	st, err := billing.CountSubscriptionStats(ctx, c, billing.Config{}, now)
	return st, err == nil, err
}
