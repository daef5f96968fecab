package pgstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/renewkit/renewkit/billing"
)

var runCols = `id, job_id, trigger, status, started_at, ` + z("finished_at") + `, duration_ms, result, error, replica, ` + z("scheduled_for")

func scanRun(r pgx.Rows) (billing.JobRun, error) {
	var x billing.JobRun
	var trigger, status string
	var result []byte
	if err := r.Scan(&x.ID, &x.JobID, &trigger, &status, &x.StartedAt, &x.FinishedAt, &x.DurationMS, &result, &x.Error, &x.Replica, &x.ScheduledFor); err != nil {
		return x, err
	}
	x.Trigger, x.Status = billing.RunTrigger(trigger), billing.RunStatus(status)
	x.StartedAt, x.FinishedAt, x.ScheduledFor = t0(x.StartedAt), t0(x.FinishedAt), t0(x.ScheduledFor)
	var err error
	x.Result, err = decodeMap(result)
	return x, err
}

func runArgs(r *billing.JobRun) ([]any, error) {
	result, err := encodeMap(r.Result)
	if err != nil {
		return nil, err
	}
	var res any
	if result != nil {
		res = string(result)
	}
	return []any{r.ID, r.JobID, string(r.Trigger), string(r.Status), rt(r.StartedAt), nt(r.FinishedAt), r.DurationMS,
		res, r.Error, r.Replica, nt(r.ScheduledFor)}, nil
}

func (s *Store) InsertJobRun(ctx context.Context, r *billing.JobRun) error {
	if r.ID == "" {
		r.ID = billing.NewID()
	}
	args, err := runArgs(r)
	if err != nil {
		return err
	}
	if _, err := s.exec(ctx, s.t(`INSERT INTO {schema}.job_runs (id, job_id, trigger, status, started_at, finished_at,
		duration_ms, result, error, replica, scheduled_for) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11)`), args...); err != nil {
		return s.wrap(err, "inserting job run %q", r.ID)
	}
	r.StartedAt, r.FinishedAt, r.ScheduledFor = t0(r.StartedAt), t0(r.FinishedAt), t0(r.ScheduledFor)
	return nil
}

// UpdateJobRun replaces the stored run; ErrNotFound when there is none.
func (s *Store) UpdateJobRun(ctx context.Context, r billing.JobRun) error {
	args, err := runArgs(&r)
	if err != nil {
		return err
	}
	tag, err := s.exec(ctx, s.t(`UPDATE {schema}.job_runs SET job_id = $2, trigger = $3, status = $4, started_at = $5,
		finished_at = $6, duration_ms = $7, result = $8::jsonb, error = $9, replica = $10, scheduled_for = $11 WHERE id = $1`), args...)
	if err != nil {
		return s.wrap(err, "updating job run %q", r.ID)
	}
	if tag.RowsAffected() == 0 {
		return notFound("job run", r.ID)
	}
	return nil
}

// ListJobRuns returns matching runs newest first.
func (s *Store) ListJobRuns(ctx context.Context, f billing.JobRunFilter) ([]billing.JobRun, error) {
	var conds []string
	var args []any
	if f.JobID != "" {
		args = append(args, f.JobID)
		conds = append(conds, fmt.Sprintf("job_id = $%d", len(args)))
	}
	if !f.Since.IsZero() {
		args = append(args, t0(f.Since))
		conds = append(conds, fmt.Sprintf("started_at >= $%d", len(args)))
	}
	where := "true"
	if len(conds) > 0 {
		where = strings.Join(conds, " AND ")
	}
	q := `SELECT ` + runCols + ` FROM {schema}.job_runs WHERE ` + where + ` ORDER BY started_at DESC, id DESC`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	runs, err := collect(ctx, s, scanRun, s.t(q), args...)
	return runs, s.wrap(err, "listing job runs")
}

func (s *Store) DeleteJobRunsBefore(ctx context.Context, t time.Time) (int, error) {
	tag, err := s.exec(ctx, s.t(`DELETE FROM {schema}.job_runs WHERE started_at < $1`), rt(t))
	if err != nil {
		return 0, s.wrap(err, "deleting job runs")
	}
	return int(tag.RowsAffected()), nil
}

// --- job state ---

func (s *Store) GetJobState(ctx context.Context, jobID string) (billing.JobState, error) {
	states, err := collect(ctx, s, func(r pgx.Rows) (billing.JobState, error) {
		var st billing.JobState
		var fails int32
		err := r.Scan(&st.JobID, &st.Paused, &st.PausedAt, &fails, &st.LastScheduledSuccess, &st.Alerts, &st.UpdatedAt, &st.Version)
		st.ConsecutiveFailures = int(fails)
		st.PausedAt, st.LastScheduledSuccess, st.UpdatedAt = t0(st.PausedAt), t0(st.LastScheduledSuccess), t0(st.UpdatedAt)
		if len(st.Alerts) == 0 {
			st.Alerts = nil
		}
		return st, err
	}, s.t(`SELECT job_id, paused, `+z("paused_at")+`, consecutive_failures, `+z("last_scheduled_success")+`, alerts, `+z("updated_at")+`, version
		FROM {schema}.job_states WHERE job_id = $1`), jobID)
	if err != nil {
		return billing.JobState{}, s.wrap(err, "reading job state %q", jobID)
	}
	if len(states) == 0 {
		return billing.JobState{JobID: jobID}, nil
	}
	return states[0], nil
}

// PutJobState stores st when the stored version is st.Version (0: none stored), in one
// conditional statement.
func (s *Store) PutJobState(ctx context.Context, st billing.JobState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if st.JobID == "" {
		return invalid("job state without job id")
	}
	args := []any{st.JobID, st.Paused, nt(st.PausedAt), st.ConsecutiveFailures, nt(st.LastScheduledSuccess),
		nonNil(st.Alerts), nt(st.UpdatedAt), st.Version}
	var q string
	if st.Version == 0 {
		q = `INSERT INTO {schema}.job_states (job_id, paused, paused_at, consecutive_failures, last_scheduled_success, alerts, updated_at, version)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8 + 1) ON CONFLICT (job_id) DO NOTHING`
	} else {
		q = `UPDATE {schema}.job_states SET paused = $2, paused_at = $3, consecutive_failures = $4, last_scheduled_success = $5,
			alerts = $6, updated_at = $7, version = $8 + 1 WHERE job_id = $1 AND version = $8`
	}
	tag, err := s.exec(ctx, s.t(q), args...)
	if err != nil {
		return s.wrap(err, "storing job state %q", st.JobID)
	}
	if tag.RowsAffected() == 0 {
		return conflict("job state", st.JobID, fmt.Sprintf("is no longer at version %d (another writer stored it): read it again", st.Version))
	}
	return nil
}
