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

func newRuns() table[billing.JobRun] {
	return table[billing.JobRun]{
		kind: "job run", rows: map[string]billing.JobRun{}, norm: normRun, clone: normRun,
		id: func(r *billing.JobRun) *string { return &r.ID },
	}
}

func normRun(r billing.JobRun) billing.JobRun {
	r.StartedAt, r.FinishedAt, r.ScheduledFor = t0(r.StartedAt), t0(r.FinishedAt), t0(r.ScheduledFor)
	r.Result = maps.Clone(r.Result)
	return r
}

func (s *Store) InsertJobRun(ctx context.Context, r *billing.JobRun) error {
	return s.update(ctx, func() error {
		return s.runs.insert(r)
	})
}

func (s *Store) UpdateJobRun(ctx context.Context, r billing.JobRun) error {
	return s.update(ctx, func() error {
		if _, ok := s.runs.rows[r.ID]; !ok {
			return notFound("job run", r.ID)
		}
		s.runs.put(&r)
		return nil
	})
}

func (s *Store) ListJobRuns(ctx context.Context, f billing.JobRunFilter) ([]billing.JobRun, error) {
	return read(ctx, s, func() ([]billing.JobRun, error) {
		since := t0(f.Since)
		var out []billing.JobRun
		for _, r := range s.runs.rows {
			if (f.JobID == "" || r.JobID == f.JobID) && (since.IsZero() || !r.StartedAt.Before(since)) {
				out = append(out, s.runs.out(r))
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
	})
}

func (s *Store) DeleteJobRunsBefore(ctx context.Context, t time.Time) (int, error) {
	return write(ctx, s, func() (int, error) {
		t = t0(t)
		n := 0
		for id, r := range s.runs.rows {
			if r.StartedAt.Before(t) {
				delete(s.runs.rows, id)
				n++
			}
		}
		return n, nil
	})
}

func (s *Store) GetJobState(ctx context.Context, jobID string) (billing.JobState, error) {
	return read(ctx, s, func() (billing.JobState, error) {
		st, ok := s.jobStates[jobID]
		if !ok {
			return billing.JobState{JobID: jobID}, nil
		}
		st.Alerts = slices.Clone(st.Alerts)
		return st, nil
	})
}

func (s *Store) PutJobState(ctx context.Context, st billing.JobState) error {
	return s.update(ctx, func() error {
		if st.JobID == "" {
			return fmt.Errorf("memstore: job state without job id: %w", billing.ErrInvalidInput)
		}
		if cur := s.jobStates[st.JobID].Version; cur != st.Version { // a missing state is version 0
			return fmt.Errorf("memstore: job state %q is at version %d, not %d: %w", st.JobID, cur, st.Version, billing.ErrConflict)
		}
		st.PausedAt, st.LastScheduledSuccess, st.UpdatedAt = t0(st.PausedAt), t0(st.LastScheduledSuccess), t0(st.UpdatedAt)
		st.Alerts = slices.Clone(st.Alerts)
		st.Version++
		s.jobStates[st.JobID] = st
		return nil
	})
}
