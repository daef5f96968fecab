package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// LockInspector is billing.LockInspector, the optional capability of the Locker (the
// store, or Config.Locker) that lets List and Get tell abandoned runs from live ones.
//
// Deprecated: use billing.LockInspector.
type LockInspector = billing.LockInspector

// abandonedScan is how many of a job's newest run records a replica that takes the job's
// lock checks for runs left "running". Every acquisition checks, so a stopped replica's
// record is found by the next run after its lease expires, while it is still recent.
const abandonedScan = 100

func abandonedError(replica string) string {
	return fmt.Sprintf("abandoned: replica %s stopped before the run finished", replica)
}

// reapAbandoned is called by the replica that just took the job's lock at now. While the
// lock was free no run of the job was live anywhere, so a record still "running" that
// started before now belongs to a replica that stopped (crashed, was killed, or lost its
// lease) before finishing it: it is marked failed, finished now, and counted in the job's
// failure streak, so history, stats and alerts stay truthful. A replica that merely lost
// its lease and finishes later still writes its run's real outcome over this one.
func (s *Scheduler) reapAbandoned(ctx context.Context, e *entry, now time.Time) {
	runs, err := s.store.ListJobRuns(ctx, billing.JobRunFilter{JobID: e.job.ID, Limit: abandonedScan})
	if err != nil {
		s.cfg.Logger.WarnContext(ctx, "checking for abandoned runs failed", "job_id", e.job.ID, "error", err)
		return
	}
	reaped := 0
	for _, r := range runs {
		if r.Status != billing.RunStatusRunning || !r.StartedAt.Before(now) {
			continue
		}
		r.Status, r.Error = billing.RunStatusFailed, abandonedError(r.Replica)
		r.FinishedAt = now
		r.DurationMS = now.Sub(r.StartedAt).Milliseconds()
		if err := s.store.UpdateJobRun(ctx, r); err != nil {
			s.cfg.Logger.WarnContext(ctx, "marking an abandoned run failed did not work", "job_id", e.job.ID, "run_id", r.ID, "error", err)
			continue
		}
		reaped++
		s.cfg.Logger.WarnContext(ctx, "abandoned run marked failed", "job_id", e.job.ID, "run_id", r.ID,
			"replica", r.Replica, "started_at", r.StartedAt)
	}
	if reaped == 0 {
		return
	}
	_, err = s.modifyState(ctx, e, func(st *billing.JobState) bool {
		st.ConsecutiveFailures += reaped
		st.UpdatedAt = now
		return true
	})
	if err != nil {
		s.cfg.Logger.ErrorContext(ctx, "counting abandoned runs in the failure streak failed", "job_id", e.job.ID, "error", err)
	}
}

// runState says whether r, the job's newest run record and still "running", is in
// progress, and which status to report for it. It is when it runs in this process, when
// the job's lock is held, or when the locker cannot tell (no billing.LockInspector). Otherwise
// its replica stopped: r is reported failed, as the next run will record it, unless it
// finished between the two reads.
func (s *Scheduler) runState(ctx context.Context, e *entry, r billing.JobRun) (billing.RunStatus, bool, error) {
	if e.running.Load() {
		return r.Status, true, nil
	}
	li, ok := s.cfg.Locker.(billing.LockInspector)
	if !ok {
		return r.Status, true, nil
	}
	_, held, err := li.CurrentLease(ctx, lockKey(e.job.ID), s.now())
	if err != nil {
		return "", false, fmt.Errorf("scheduler: reading the lock of %q: %w", e.job.ID, err)
	}
	if held {
		return r.Status, true, nil
	}
	// A run finishing now records its outcome before it releases the lock.
	runs, err := s.store.ListJobRuns(ctx, billing.JobRunFilter{JobID: e.job.ID, Since: r.StartedAt})
	if err != nil {
		return "", false, fmt.Errorf("scheduler: listing runs of %q: %w", e.job.ID, err)
	}
	for _, x := range runs {
		if x.ID == r.ID && x.Status != billing.RunStatusRunning {
			return x.Status, false, nil
		}
	}
	return billing.RunStatusFailed, false, nil
}
