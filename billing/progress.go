package billing

import (
	"context"
	"sync"
)

// Progress is how far a running job got through its subscriptions: the records it
// claimed, finished (Done includes Failed) and could not finish, and an estimate of how
// many it will claim in all, counted when each sweep starts (records that become due
// while it runs can push Claimed past it).
type Progress struct {
	Claimed       int `json:"claimed"`
	Done          int `json:"done"`
	Failed        int `json:"failed"`
	TotalEstimate int `json:"total_estimate"`
}

// ProgressFunc receives a job's progress after each batch. It is called from the run's
// goroutines, one call at a time, and must return quickly.
type ProgressFunc func(Progress)

type progressKey struct{}

type progressTracker struct {
	mu sync.Mutex
	p  Progress
	f  ProgressFunc
}

// WithProgress returns a context whose subscription job runs (CheckExpiringSubscriptions,
// ProcessExpiredSubscriptions, RenewSubscriptions, ...) report their progress to f. The
// scheduler passes one to every run; without it a run counts nothing extra.
func WithProgress(ctx context.Context, f ProgressFunc) context.Context {
	if f == nil {
		return ctx
	}
	return context.WithValue(ctx, progressKey{}, &progressTracker{f: f})
}

func trackerOf(ctx context.Context) *progressTracker {
	t, _ := ctx.Value(progressKey{}).(*progressTracker)
	return t
}

// report applies change to the run's progress and hands it on, when ctx has a tracker.
func (r *run) report(ctx context.Context, change func(*Progress)) {
	t := trackerOf(ctx)
	if t == nil {
		return
	}
	r.mu.Lock()
	failed := r.failed
	r.mu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	change(&t.p)
	t.p.Failed = failed
	t.f(t.p)
}

// estimate adds the number of records f selects now to the total estimate.
func (r *run) estimate(ctx context.Context, f SubscriptionFilter) {
	if trackerOf(ctx) == nil {
		return
	}
	n, err := r.s.store.CountSubscriptions(ctx, f)
	if err != nil {
		r.s.log.DebugContext(ctx, "progress estimate unavailable", "error", err)
		return
	}
	r.report(ctx, func(p *Progress) { p.TotalEstimate += n })
}

// claimed counts a claimed batch: good records to work on and unreadable ones, which are
// done (failed) at once.
func (r *run) claimed(ctx context.Context, good, unreadable int) {
	r.report(ctx, func(p *Progress) { p.Claimed += good + unreadable; p.Done += unreadable })
}

func (r *run) finished(ctx context.Context, n int) {
	r.report(ctx, func(p *Progress) { p.Done += n })
}
