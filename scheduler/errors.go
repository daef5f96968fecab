package scheduler

import "errors"

// Sentinel errors, matched with errors.Is.
var (
	// ErrUnknownJob: no job with that id (HTTP 404).
	ErrUnknownJob = errors.New("scheduler: unknown job")
	// ErrNoPreview: the job has no dry run (HTTP 404 on /{job_id}/preview).
	ErrNoPreview = errors.New("scheduler: job has no preview")
	// ErrJobRunning: the job is running, in this process or on another replica (HTTP 409).
	ErrJobRunning = errors.New("scheduler: job is already running")
	// ErrClosed: Shutdown was called; no new runs start (HTTP 503).
	ErrClosed = errors.New("scheduler: shut down")
	// ErrAlreadyStarted: Start was called twice.
	ErrAlreadyStarted = errors.New("scheduler: already started")
	// ErrInvalidConfig wraps every problem NewScheduler, New and AdminHandler find in their arguments.
	ErrInvalidConfig = errors.New("scheduler: invalid configuration")
	// ErrUnauthenticated: the request carries no valid credentials (HTTP 401). Authorizers
	// return it (wrapped or not).
	ErrUnauthenticated = errors.New("scheduler: authentication required")
	// ErrForbidden: the caller is authenticated but not an administrator (HTTP 403).
	ErrForbidden = errors.New("scheduler: admin role required")
)
