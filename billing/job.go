package billing

import (
	"context"
	"time"
)

// Result is what a job run returns. The concrete types (ExpiringResult, ...) marshal to the
// original application's JSON keys.
type Result interface {
	// Found is how many records the run selected (JSON total_found).
	Found() int
	// Failures is how many selected records the run could not finish; they are retried by
	// a later run.
	Failures() int
}

// JobFunc runs a job once.
type JobFunc func(ctx context.Context) (Result, error)

// Job is a named unit of scheduled work. Schedule is a standard five-field cron spec
// (minute hour day-of-month month day-of-week) read in the scheduler's time zone.
type Job struct {
	ID          string
	Name        string
	Description string
	Schedule    string
	Run         JobFunc
	// Preview, when set, reports what Run would do now without changing anything (a dry
	// run); the admin API serves it at GET /{job_id}/preview.
	Preview func(ctx context.Context) (any, error)
}

// Default job ids, as in the original application.
const (
	JobCheckExpiring   = "check_expiring_subscriptions"
	JobProcessExpired  = "process_expired_subscriptions"
	JobRenew           = "renew_subscriptions"
	JobCleanupSessions = "cleanup_old_sessions"
	JobCleanupPayments = "cleanup_pending_payments"
)

// RunTrigger says what started a run.
type RunTrigger string

const (
	RunTriggerSchedule RunTrigger = "schedule"
	RunTriggerManual   RunTrigger = "manual"
	RunTriggerCatchUp  RunTrigger = "catch_up"
)

// Former names of the RunTrigger values, kept for one release.
const (
	// Deprecated: use RunTriggerSchedule.
	TriggerSchedule = RunTriggerSchedule
	// Deprecated: use RunTriggerManual.
	TriggerManual = RunTriggerManual
	// Deprecated: use RunTriggerCatchUp.
	TriggerCatchUp = RunTriggerCatchUp
)

// RunStatus is the outcome of a run.
type RunStatus string

const (
	RunStatusRunning   RunStatus = "running"
	RunStatusSucceeded RunStatus = "succeeded"
	RunStatusFailed    RunStatus = "failed"
	// RunStatusSkipped: a scheduled tick found the job running elsewhere (lock held) or paused.
	RunStatusSkipped RunStatus = "skipped"
)

// Former names of the RunStatus values, kept for one release.
const (
	// Deprecated: use RunStatusRunning.
	RunRunning = RunStatusRunning
	// Deprecated: use RunStatusSucceeded.
	RunSucceeded = RunStatusSucceeded
	// Deprecated: use RunStatusFailed.
	RunFailed = RunStatusFailed
	// Deprecated: use RunStatusSkipped.
	RunSkipped = RunStatusSkipped
)

// JobRun is one entry of the run history (job_runs collection).
type JobRun struct {
	ID         string         `json:"id"`
	JobID      string         `json:"job_id"`
	Trigger    RunTrigger     `json:"trigger"`
	Status     RunStatus      `json:"status"`
	StartedAt  time.Time      `json:"started_at"`
	FinishedAt time.Time      `json:"finished_at,omitzero"`
	DurationMS int64          `json:"duration_ms"`
	Result     map[string]any `json:"result,omitempty"`
	Error      string         `json:"error,omitempty"`
	Replica    string         `json:"replica,omitempty"`
	// ScheduledFor is the tick time of a scheduled or catch-up run.
	ScheduledFor time.Time `json:"scheduled_for,omitzero"`
}

// JobState is per-job state shared by replicas. Writers read it, change it and store it
// back with JobStateStore.PutJobState, which checks Version so a concurrent change made by
// another replica is never overwritten: on ErrConflict, read again and re-apply the change.
type JobState struct {
	JobID               string    `json:"job_id"`
	Paused              bool      `json:"paused"`
	PausedAt            time.Time `json:"paused_at,omitzero"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	// LastScheduledSuccess is the tick time of the newest successful scheduled (or
	// catch-up) run; catch-up on start compares it with the previous tick.
	LastScheduledSuccess time.Time `json:"last_scheduled_success,omitzero"`
	// Alerts are the alert conditions currently raised, so each is sent once per episode.
	Alerts    []string  `json:"alerts,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// Version counts the stored writes of the state (0: never stored). PutJobState stores
	// the state only when the stored version is still Version, and stores Version+1.
	Version int64 `json:"version"`
}
