package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// stateAttempts bounds how often modifyState re-reads and re-applies a change that lost
// the race with another replica's write of the same job state.
const stateAttempts = 10

// modifyState reads the job's shared state, lets change edit it and stores it. The store
// checks the version read (billing.JobStateStore.PutJobState): when another replica
// stored the state in between, the write fails with billing.ErrConflict and the change is
// applied again to a fresh read, up to stateAttempts times, so no replica's change (a
// pause, a failure streak) is overwritten. change may run several times and must derive
// everything from the state it is given; it returns false to leave the state as it is.
// The returned state is what was stored (or read, when nothing changed). Within the
// process e.stateMu serialises the writers, so conflicts only come from other replicas.
func (s *Scheduler) modifyState(ctx context.Context, e *entry, change func(st *billing.JobState) bool) (billing.JobState, error) {
	e.stateMu.Lock()
	defer e.stateMu.Unlock()
	id := e.job.ID
	var err error
	for attempt := range stateAttempts {
		if attempt > 0 {
			if werr := conflictBackoff(ctx, attempt); werr != nil {
				return billing.JobState{}, fmt.Errorf("scheduler: writing state of %q: %w (after: %w)", id, werr, err)
			}
		}
		st, gerr := s.store.GetJobState(ctx, id)
		if gerr != nil {
			return billing.JobState{}, fmt.Errorf("scheduler: reading state of %q: %w", id, gerr)
		}
		st.JobID = id
		if !change(&st) {
			return st, nil
		}
		if err = s.store.PutJobState(ctx, st); err == nil {
			st.Version++
			return st, nil
		}
		if !errors.Is(err, billing.ErrConflict) {
			return billing.JobState{}, fmt.Errorf("scheduler: writing state of %q: %w", id, err)
		}
		s.cfg.Logger.DebugContext(ctx, "job state changed concurrently; retrying", "job_id", id, "attempt", attempt+1)
	}
	return billing.JobState{}, fmt.Errorf("scheduler: writing state of %q: still conflicting after %d attempts: %w", id, stateAttempts, err)
}

// conflictBackoff waits a few jittered milliseconds (real time: the writers racing are
// other processes, not the injected clock) before the next attempt.
func conflictBackoff(ctx context.Context, attempt int) error {
	d := time.Duration(attempt) * time.Millisecond
	t := time.NewTimer(d + rand.N(d))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
