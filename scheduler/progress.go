package scheduler

import (
	"context"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// RunProgress is the progress of a job's current run in this process, or of its last one
// once it finished. Subscription jobs report after every batch (billing.WithProgress);
// other jobs report only their end.
type RunProgress struct {
	RunID string `json:"run_id"`
	billing.Progress
	Running   bool      `json:"running"`
	Percent   int       `json:"percent"` // 0 to 100; 100 once the run ended
	Status    string    `json:"status"`  // billing.RunStatus
	StartedAt time.Time `json:"started_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// percent estimates how far a running run is: done out of the larger of the estimate and
// what was claimed, never 100 before the run ends.
func percent(p billing.Progress) int {
	total := max(p.TotalEstimate, p.Claimed)
	if total == 0 {
		return 0
	}
	return min(99, p.Done*100/total)
}

// trackProgress returns ctx reporting the run's progress to e, and stores the starting
// point.
func (s *Scheduler) trackProgress(ctx context.Context, e *entry, run billing.JobRun) context.Context {
	e.progress.Store(&RunProgress{RunID: run.ID, Running: true, Status: string(billing.RunStatusRunning), StartedAt: run.StartedAt, UpdatedAt: s.now()})
	return billing.WithProgress(ctx, func(p billing.Progress) {
		e.progress.Store(&RunProgress{RunID: run.ID, Progress: p, Running: true, Percent: percent(p),
			Status: string(billing.RunStatusRunning), StartedAt: run.StartedAt, UpdatedAt: s.now()})
	})
}

// endProgress stores the final progress of a finished run: what was reported, or for a
// job that reports none, its result's count.
func (s *Scheduler) endProgress(e *entry, run billing.JobRun, res billing.Result) {
	last := e.progress.Load()
	p := RunProgress{RunID: run.ID, Status: string(run.Status), Percent: 100, StartedAt: run.StartedAt, UpdatedAt: run.FinishedAt}
	if last != nil && last.RunID == run.ID {
		p.Progress = last.Progress
	}
	if p.Claimed == 0 && !noResult(res) {
		n := found(res)
		p.Progress = billing.Progress{Claimed: n, Done: n, Failed: failures(res), TotalEstimate: n}
	}
	e.progress.Store(&p)
}

// Progress returns the progress of the job's current or last run in this process; false
// when it has not run here since the process started. ErrUnknownJob for an unknown id.
func (s *Scheduler) Progress(id string) (RunProgress, bool, error) {
	e, err := s.entry(id)
	if err != nil {
		return RunProgress{}, false, err
	}
	p := e.progress.Load()
	if p == nil {
		return RunProgress{}, false, nil
	}
	return *p, true, nil
}
