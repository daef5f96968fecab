package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
)

type runDoc struct {
	ID           docID     `bson:"_id"`
	JobID        string    `bson:"job_id"`
	Trigger      string    `bson:"trigger"`
	Status       string    `bson:"status"`
	StartedAt    time.Time `bson:"started_at"`
	FinishedAt   time.Time `bson:"finished_at"`
	DurationMS   int64     `bson:"duration_ms"`
	Result       bson.Raw  `bson:"result"`
	Error        string    `bson:"error"`
	Replica      string    `bson:"replica"`
	ScheduledFor time.Time `bson:"scheduled_for"`
}

func decodeRun(raw bson.Raw) (billing.JobRun, error) {
	d, err := unmarshal[runDoc](raw)
	if err != nil {
		return billing.JobRun{}, err
	}
	res, err := anyMap(d.Result)
	return billing.JobRun{
		ID: string(d.ID), JobID: d.JobID, Trigger: billing.RunTrigger(d.Trigger), Status: billing.RunStatus(d.Status),
		StartedAt: utc(d.StartedAt), FinishedAt: utc(d.FinishedAt), DurationMS: d.DurationMS, Result: res,
		Error: d.Error, Replica: d.Replica, ScheduledFor: utc(d.ScheduledFor),
	}, err
}

func runFields(r billing.JobRun) *fields {
	f := &fields{}
	f.put("job_id", r.JobID)
	f.put("trigger", string(r.Trigger))
	f.put("status", string(r.Status))
	f.time("started_at", r.StartedAt)
	f.time("finished_at", r.FinishedAt)
	f.put("duration_ms", r.DurationMS)
	f.optAny("result", r.Result, len(r.Result) == 0)
	f.optStr("error", r.Error)
	f.optStr("replica", r.Replica)
	f.time("scheduled_for", r.ScheduledFor)
	return f
}

func (s *Store) InsertJobRun(ctx context.Context, r *billing.JobRun) error {
	if err := prepareInsert(ctx, &r.ID); err != nil {
		return err
	}
	if err := insert(ctx, s.runs, runFields(*r).doc(r.ID), "job run", r.ID); err != nil {
		return err
	}
	r.StartedAt, r.FinishedAt, r.ScheduledFor = utc(r.StartedAt), utc(r.FinishedAt), utc(r.ScheduledFor)
	return nil
}

func (s *Store) UpdateJobRun(ctx context.Context, r billing.JobRun) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	res, err := s.runs.UpdateOne(ctx, byID(r.ID), runFields(r).update())
	if err != nil {
		return opErr("update job run", err)
	}
	if res.MatchedCount == 0 {
		return notFound("job run", r.ID)
	}
	return nil
}

func (s *Store) ListJobRuns(ctx context.Context, f billing.JobRunFilter) ([]billing.JobRun, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	q := bson.D{}
	if f.JobID != "" {
		q = append(q, bson.E{Key: "job_id", Value: f.JobID})
	}
	if !f.Since.IsZero() {
		q = append(q, bson.E{Key: "started_at", Value: bson.D{{Key: "$gte", Value: bson.NewDateTimeFromTime(f.Since)}}})
	}
	o := findOpts().SetSort(bson.D{{Key: "started_at", Value: -1}, {Key: "_id", Value: -1}})
	if f.Limit > 0 {
		o.SetLimit(int64(f.Limit))
	}
	cur, err := s.runs.Find(ctx, q, o)
	if err != nil {
		return nil, opErr("list job runs", err)
	}
	out, err := decodeAll(ctx, cur, decodeRun)
	if err != nil {
		return nil, opErr("list job runs", err)
	}
	return out, nil
}

func (s *Store) DeleteJobRunsBefore(ctx context.Context, t time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	res, err := s.runs.DeleteMany(ctx, bson.D{{Key: "started_at", Value: bson.D{{Key: "$lt", Value: bson.NewDateTimeFromTime(t)}}}})
	if err != nil {
		return 0, opErr("delete job runs", err)
	}
	return int(res.DeletedCount), nil
}

// --- job state ---

type stateDoc struct {
	JobID                string    `bson:"_id"`
	Paused               bool      `bson:"paused"`
	PausedAt             time.Time `bson:"paused_at"`
	ConsecutiveFailures  int       `bson:"consecutive_failures"`
	LastScheduledSuccess time.Time `bson:"last_scheduled_success"`
	Alerts               []string  `bson:"alerts"`
	UpdatedAt            time.Time `bson:"updated_at"`
	Version              int64     `bson:"version"` // missing in documents written before versions: 0
}

func decodeState(raw bson.Raw) (billing.JobState, error) {
	d, err := unmarshal[stateDoc](raw)
	return billing.JobState{
		JobID: d.JobID, Paused: d.Paused, PausedAt: utc(d.PausedAt), ConsecutiveFailures: d.ConsecutiveFailures,
		LastScheduledSuccess: utc(d.LastScheduledSuccess), Alerts: d.Alerts, UpdatedAt: utc(d.UpdatedAt),
		Version: d.Version,
	}, err
}

func (s *Store) GetJobState(ctx context.Context, jobID string) (billing.JobState, error) {
	if err := ctx.Err(); err != nil {
		return billing.JobState{}, err
	}
	st, err := findOne(ctx, s.states, bson.D{{Key: "_id", Value: jobID}}, decodeState, "job state", jobID)
	if errors.Is(err, billing.ErrNotFound) {
		return billing.JobState{JobID: jobID}, nil
	}
	return st, err
}

// PutJobState stores st when the stored version is st.Version (0: none stored) and writes
// version st.Version+1; otherwise it returns billing.ErrConflict. Of two writers racing on
// one version, one wins.
func (s *Store) PutJobState(ctx context.Context, st billing.JobState) error {
	// Implementation:
	// PutJobState replaces the document {_id: job id} when its version is st.Version (a
	// missing field is version 0) and writes version st.Version+1. For version 0 the replace
	// upserts: when a document with another version exists, the filter misses and the insert
	// collides with it on _id, which is reported as ErrConflict; of two writers racing to
	// create the document the unique _id lets one win. On MongoDB the filter is checked
	// atomically with the write. FerretDB v1 reads, then rewrites, without re-checking it, so
	// in ClaimSerialized mode the check and write run under the store-level mutex
	// "job_state/<job id>" (as claim rounds do), which serialises the writers of all Stores in
	// that mode.
	if err := ctx.Err(); err != nil {
		return err
	}
	if st.JobID == "" {
		return opErr("put job state", errors.Join(errors.New("job state without job id"), billing.ErrInvalidInput))
	}
	f := &fields{}
	f.put("paused", st.Paused)
	f.time("paused_at", st.PausedAt)
	f.put("consecutive_failures", st.ConsecutiveFailures)
	f.time("last_scheduled_success", st.LastScheduledSuccess)
	f.optAny("alerts", st.Alerts, len(st.Alerts) == 0)
	f.time("updated_at", st.UpdatedAt)
	f.put("version", st.Version+1)
	doc := append(bson.D{{Key: "_id", Value: st.JobID}}, f.set...)
	filter := bson.D{{Key: "_id", Value: st.JobID}, versionIs(st.Version)}
	stale := func() error {
		return fmt.Errorf("mongostore: job state %q changed since version %d was read: %w", st.JobID, st.Version, billing.ErrConflict)
	}
	return s.exclusive(ctx, "job_state/"+st.JobID, func() error {
		res, err := s.states.ReplaceOne(ctx, filter, doc, options.Replace().SetUpsert(st.Version == 0))
		switch {
		case mongo.IsDuplicateKeyError(err):
			return stale()
		case err != nil:
			return opErr("put job state", err)
		case res.MatchedCount == 0 && res.UpsertedCount == 0:
			return stale()
		}
		return nil
	})
}
