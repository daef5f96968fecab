package memstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/renewkit/renewkit/billing"
)

func normRun(r billing.JobRun) billing.JobRun {
	r.StartedAt, r.FinishedAt, r.ScheduledFor = t0(r.StartedAt), t0(r.FinishedAt), t0(r.ScheduledFor)
	r.Result = maps.Clone(r.Result)
	return r
}

func (s *Store) InsertJobRun(ctx context.Context, r *billing.JobRun) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.ID == "" {
		r.ID = billing.NewID()
	}
	if _, ok := s.runs[r.ID]; ok {
		return conflict("job run", r.ID)
	}
	*r = normRun(*r)
	s.runs[r.ID] = normRun(*r)
	return nil
}

func (s *Store) UpdateJobRun(ctx context.Context, r billing.JobRun) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.runs[r.ID]; !ok {
		return notFound("job run", r.ID)
	}
	s.runs[r.ID] = normRun(r)
	return nil
}

func (s *Store) ListJobRuns(ctx context.Context, f billing.JobRunFilter) ([]billing.JobRun, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	since := t0(f.Since)
	var out []billing.JobRun
	for _, r := range s.runs {
		if (f.JobID == "" || r.JobID == f.JobID) && (since.IsZero() || !r.StartedAt.Before(since)) {
			out = append(out, normRun(r))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].StartedAt.Equal(out[j].StartedAt) {
			return out[i].StartedAt.After(out[j].StartedAt)
		}
		return out[i].ID > out[j].ID
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

func (s *Store) DeleteJobRunsBefore(ctx context.Context, t time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t = t0(t)
	n := 0
	for id, r := range s.runs {
		if r.StartedAt.Before(t) {
			delete(s.runs, id)
			n++
		}
	}
	return n, nil
}

func (s *Store) GetJobState(ctx context.Context, jobID string) (billing.JobState, error) {
	if err := ctx.Err(); err != nil {
		return billing.JobState{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.jobStates[jobID]
	if !ok {
		return billing.JobState{JobID: jobID}, nil
	}
	st.Alerts = slices.Clone(st.Alerts)
	return st, nil
}

func (s *Store) PutJobState(ctx context.Context, st billing.JobState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if st.JobID == "" {
		return fmt.Errorf("memstore: job state without job id: %w", billing.ErrInvalidInput)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.jobStates[st.JobID].Version; cur != st.Version { // a missing state is version 0
		return fmt.Errorf("memstore: job state %q is at version %d, not %d: %w", st.JobID, cur, st.Version, billing.ErrConflict)
	}
	st.PausedAt, st.LastScheduledSuccess, st.UpdatedAt = t0(st.PausedAt), t0(st.LastScheduledSuccess), t0(st.UpdatedAt)
	st.Alerts = slices.Clone(st.Alerts)
	st.Version++
	s.jobStates[st.JobID] = st
	return nil
}
