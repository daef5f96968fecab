package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/renewkit/renewkit/billing"
)

// Store is what the scheduler keeps in the store: the run history, the per-job
// state replicas share (pause, failure streaks, alerts) and the lease lock. Every
// billing.Store (store/memstore, store/mongostore) satisfies it.
type Store interface {
	billing.JobRunStore
	billing.JobStateStore
	billing.Locker
}

// SchedulerStore is the former name of Store.
//
// Deprecated: use Store.
type SchedulerStore = Store

// SubscriptionCounter is billing.SubscriptionCounter.
//
// Deprecated: use billing.SubscriptionCounter.
type SubscriptionCounter = billing.SubscriptionCounter

// Scheduler runs named jobs on cron schedules (over gocron), records every run in the
// store, keeps one run per tick across replicas and lets operators pause, resume and
// trigger jobs. Build it with NewScheduler, then Start it; Shutdown stops it. It is safe for
// concurrent use.
type Scheduler struct {
	cfg   Config // defaults applied
	store Store
	jobs  []*entry
	byID  map[string]*entry

	// baseCtx parents every run; it is cancelled when Shutdown stops waiting.
	baseCtx    context.Context
	cancelBase context.CancelFunc

	mu        sync.Mutex
	started   bool
	closed    bool
	gs        gocron.Scheduler
	lastPrune time.Time
	wg        sync.WaitGroup
}

type entry struct {
	job      billing.Job
	sched    *schedule // nil only for a disabled job without a schedule
	disabled bool
	running  atomic.Bool
	// progress is the current or last run's progress in this process (progress.go).
	progress atomic.Pointer[RunProgress]
	// stateMu serialises this process's read-modify-write of the job's JobState.
	stateMu sync.Mutex
}

// NewScheduler validates the jobs and cfg and builds a Scheduler. Nothing runs until
// Start. Every problem is reported at once, wrapped in ErrInvalidConfig.
func NewScheduler(jobs []billing.Job, store Store, cfg Config) (*Scheduler, error) {
	return newScheduler(jobs, store, cfg, nil)
}

// newScheduler is NewScheduler reporting errs (the deprecated options' own problems)
// alongside those it finds.
func newScheduler(jobs []billing.Job, store Store, cfg Config, errs []error) (*Scheduler, error) {
	if store == nil {
		errs = append(errs, errors.New("missing store: pass memstore.New() or a mongostore.Store"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	cfg = cfg.withDefaults(store)
	disabled := make(map[string]bool, len(cfg.Disabled))
	for _, id := range cfg.Disabled {
		disabled[id] = true
	}

	s := &Scheduler{cfg: cfg, store: store, byID: map[string]*entry{}}
	if len(jobs) == 0 {
		errs = append(errs, errors.New("no jobs: pass billing.Service.Jobs() or your own []billing.Job"))
	}
	now := cfg.Clock.Now()
	for i, j := range jobs {
		switch {
		case j.ID == "":
			errs = append(errs, fmt.Errorf("job %d has an empty ID: give every job a unique id", i))
			continue
		case s.byID[j.ID] != nil:
			errs = append(errs, fmt.Errorf("job %q is listed twice: job ids must be unique", j.ID))
			continue
		}
		if j.Run == nil {
			errs = append(errs, fmt.Errorf("job %q has no Run function", j.ID))
		}
		if j.Name == "" {
			j.Name = j.ID
		}
		e := &entry{job: j, disabled: disabled[j.ID]}
		if spec, ok := cfg.Schedules[j.ID]; ok {
			e.job.Schedule = spec
		}
		if e.job.Schedule != "" || !e.disabled {
			sc, err := parseSchedule(e.job.Schedule, cfg.Location, now)
			if err != nil {
				errs = append(errs, fmt.Errorf("job %q: %w (override it in Config.Schedules)", j.ID, err))
			}
			e.sched = sc
		}
		s.byID[j.ID] = e
		s.jobs = append(s.jobs, e)
	}
	for id := range cfg.Schedules {
		if s.byID[id] == nil {
			errs = append(errs, fmt.Errorf("Config.Schedules[%q]: no such job; use one of the known jobs: %v", id, s.ids()))
		}
	}
	for id := range disabled {
		if s.byID[id] == nil {
			errs = append(errs, fmt.Errorf("Config.Disabled: %q is no such job; use one of the known jobs: %v", id, s.ids()))
		}
	}
	if err := invalid(errs...); err != nil {
		return nil, err
	}
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	return s, nil
}

func (s *Scheduler) ids() []string {
	out := make([]string, 0, len(s.jobs))
	for _, e := range s.jobs {
		out = append(out, e.job.ID)
	}
	return out
}

func (s *Scheduler) now() time.Time { return s.cfg.Clock.Now() }

// ReplicaID returns the name this process records in runs and leases.
func (s *Scheduler) ReplicaID() string { return s.cfg.ReplicaID }

// Location returns the time zone schedules are read in.
func (s *Scheduler) Location() *time.Location { return s.cfg.Location }

// Start arms the schedules and catches up missed runs: a job whose last successful
// scheduled run is older than its previous tick (the process was down then) runs once in
// the background with trigger catch_up, however many ticks it missed. A job never seen
// before (a brand-new install, or a job added since the last start) is not caught up: its
// first run is its next tick, as an operator installing at 10:00 expects no 09:00 run.
// Paused and disabled jobs are not caught up. Start returns ErrAlreadyStarted when called
// twice and ErrClosed after Shutdown.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.started:
		return ErrAlreadyStarted
	}
	gs, err := gocron.NewScheduler(gocron.WithClock(s.cfg.Clock), gocron.WithLocation(s.cfg.Location))
	if err != nil {
		return fmt.Errorf("scheduler: starting gocron: %w", err)
	}
	for _, e := range s.jobs {
		if e.disabled {
			continue
		}
		_, err := gs.NewJob(
			gocron.CronJob(e.sched.spec, false),
			gocron.NewTask(s.onTick, e),
			gocron.WithName(e.job.ID),
			gocron.WithCronImplementation(gocronCron{e.sched}),
		)
		if err != nil {
			_ = gs.Shutdown()
			return fmt.Errorf("scheduler: registering job %q: %w", e.job.ID, err)
		}
	}
	s.gs, s.started = gs, true
	for _, e := range s.jobs {
		if e.disabled {
			continue
		}
		if tick, ok := s.needsCatchUp(ctx, e); ok {
			s.dispatchLocked(e, billing.RunTriggerCatchUp, tick)
		}
	}
	gs.Start()
	s.cfg.Logger.InfoContext(ctx, "scheduler started", "replica", s.cfg.ReplicaID, "jobs", len(s.jobs), "location", s.cfg.Location.String())
	return nil
}

// needsCatchUp reports whether e missed its previous tick and returns that tick.
func (s *Scheduler) needsCatchUp(ctx context.Context, e *entry) (time.Time, bool) {
	now := s.now()
	prev := e.sched.Prev(now)
	if prev.IsZero() {
		return time.Time{}, false
	}
	var tick time.Time
	_, err := s.modifyState(ctx, e, func(st *billing.JobState) bool {
		tick = time.Time{}
		switch {
		case st.Paused:
			return false
		case !st.LastScheduledSuccess.IsZero():
			if st.LastScheduledSuccess.Before(prev) {
				tick = prev
			}
			return false
		case st.UpdatedAt.IsZero():
			// First sight of this job: remember when, so a tick missed from now on is
			// caught up.
			st.UpdatedAt = now
			return true
		default:
			// Never succeeded on schedule: catch up when nothing touched the job since its
			// previous tick.
			if st.UpdatedAt.Before(prev) {
				tick = prev
			}
			return false
		}
	})
	if err != nil {
		s.cfg.Logger.WarnContext(ctx, "catch-up check failed; the job waits for its next tick", "job_id", e.job.ID, "error", err)
		return time.Time{}, false
	}
	return tick, !tick.IsZero()
}

// Shutdown stops the schedules and waits for running jobs to finish, for as long as ctx
// allows. When ctx ends first, the runs' contexts are cancelled and ctx's error is
// returned; their records are still completed when the jobs return. No run starts after
// Shutdown (Trigger returns ErrClosed). Calling it again is a no-op.
func (s *Scheduler) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	gs := s.gs
	s.mu.Unlock()

	var errs []error
	if gs != nil {
		if err := gs.ShutdownWithContext(ctx); err != nil {
			errs = append(errs, fmt.Errorf("scheduler: stopping gocron: %w", err))
		}
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancelBase()
		errs = append(errs, fmt.Errorf("scheduler: shutdown gave up waiting; running jobs were cancelled: %w", ctx.Err()))
	}
	s.cancelBase()
	s.cfg.Logger.InfoContext(ctx, "scheduler stopped", "replica", s.cfg.ReplicaID)
	return errors.Join(errs...)
}

// enter registers a run with the WaitGroup Shutdown waits on; false once shut down.
func (s *Scheduler) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enterLocked()
}

func (s *Scheduler) enterLocked() bool {
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// onTick is gocron's task: it starts the run in the background and returns at once, so
// gocron's executor never blocks and Shutdown owns the waiting.
func (s *Scheduler) onTick(e *entry) {
	now := s.now()
	tick := e.sched.Prev(now)
	if tick.IsZero() {
		tick = now
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dispatchLocked(e, billing.RunTriggerSchedule, tick)
}

func (s *Scheduler) dispatchLocked(e *entry, trigger billing.RunTrigger, tick time.Time) {
	if !s.enterLocked() {
		return
	}
	go func() {
		defer s.wg.Done()
		a, err := s.begin(s.baseCtx, e, trigger, tick, billing.NewID())
		if err != nil {
			if !errors.Is(err, errSkipped) {
				s.cfg.Logger.ErrorContext(s.baseCtx, "scheduled run not started", "job_id", e.job.ID, "trigger", trigger, "error", err)
			}
			return
		}
		s.complete(a, s.baseCtx)
	}()
}

func (s *Scheduler) entry(id string) (*entry, error) {
	e := s.byID[id]
	if e == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownJob, id)
	}
	return e, nil
}

// Trigger runs the job now, in the caller's goroutine, and returns its run record (a job
// that fails is a completed run: see JobRun.Status and Error). It returns ErrJobRunning
// when the job is running here or on another replica, ErrUnknownJob and ErrClosed. A
// paused or disabled job can be triggered. The run is not cancelled when ctx is; Shutdown
// cancels it.
func (s *Scheduler) Trigger(ctx context.Context, id string) (billing.JobRun, error) {
	e, err := s.entry(id)
	if err != nil {
		return billing.JobRun{}, err
	}
	if !s.enter() {
		return billing.JobRun{}, ErrClosed
	}
	defer s.wg.Done()
	a, err := s.begin(ctx, e, billing.RunTriggerManual, time.Time{}, billing.NewID())
	if err != nil {
		return billing.JobRun{}, err
	}
	return s.complete(a, context.WithoutCancel(ctx)), nil
}

// TriggerAsync starts the job now in the background and returns the id of its run record
// once the run has been claimed (so conflicts are reported: ErrJobRunning).
func (s *Scheduler) TriggerAsync(ctx context.Context, id string) (string, error) {
	e, err := s.entry(id)
	if err != nil {
		return "", err
	}
	if !s.enter() {
		return "", ErrClosed
	}
	a, err := s.begin(ctx, e, billing.RunTriggerManual, time.Time{}, billing.NewID())
	if err != nil {
		s.wg.Done()
		return "", err
	}
	parent := context.WithoutCancel(ctx)
	go func() {
		defer s.wg.Done()
		s.complete(a, parent)
	}()
	return a.run.ID, nil
}

// Pause stops the job's scheduled runs on every replica (the state is in the store and
// checked at each tick) until Resume. Ticks while paused are recorded as skipped.
func (s *Scheduler) Pause(ctx context.Context, id string) error { return s.setPaused(ctx, id, true) }

// Resume undoes Pause. Ticks missed while paused are not caught up, now or at the next
// Start: the job's catch-up baseline (JobState.LastScheduledSuccess) moves to its previous
// tick.
func (s *Scheduler) Resume(ctx context.Context, id string) error { return s.setPaused(ctx, id, false) }

func (s *Scheduler) setPaused(ctx context.Context, id string, paused bool) error {
	e, err := s.entry(id)
	if err != nil {
		return err
	}
	now := s.now()
	_, err = s.modifyState(ctx, e, func(st *billing.JobState) bool {
		if !paused && st.Paused && e.sched != nil {
			// Ticks missed while paused are not owed: move the catch-up baseline past them.
			if prev := e.sched.Prev(now); !prev.IsZero() && !st.PausedAt.After(prev) && st.LastScheduledSuccess.Before(prev) {
				st.LastScheduledSuccess = prev
			}
		}
		st.Paused, st.UpdatedAt = paused, now
		st.PausedAt = time.Time{}
		if paused {
			st.PausedAt = now
		}
		return true
	})
	if err != nil {
		return err
	}
	s.cfg.Logger.InfoContext(ctx, "job state changed", "job_id", id, "paused", paused)
	return nil
}

// JobInfo describes a job for List, Get and the admin API.
type JobInfo struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// NextRun is the next tick in the scheduler's zone; nil while paused or disabled.
	NextRun *time.Time `json:"next_run"`
	// Trigger describes the schedule in the original application's API format:
	// cron[day_of_week='*', hour='9', minute='0'].
	Trigger  string `json:"trigger"`
	Schedule string `json:"schedule"`
	TimeZone string `json:"timezone"`
	Paused   bool   `json:"paused"`
	Disabled bool   `json:"disabled"`
	// Running: a run is in progress here or (per the history) on another replica. A record
	// left "running" by a replica that stopped is not: when the job's lock is free (the
	// locker implements billing.LockInspector) it is reported with LastStatus failed, as the next
	// run of the job records it.
	Running bool `json:"running"`
	// LastRun is when the newest run that was not skipped started.
	LastRun             *time.Time        `json:"last_run"`
	LastStatus          billing.RunStatus `json:"last_status,omitempty"`
	ConsecutiveFailures int               `json:"consecutive_failures"`
	// Progress is the current or last run's progress when it ran in this process.
	Progress *RunProgress `json:"progress,omitempty"`
}

// List describes every job, in the order they were given to NewScheduler.
func (s *Scheduler) List(ctx context.Context) ([]JobInfo, error) {
	out := make([]JobInfo, 0, len(s.jobs))
	for _, e := range s.jobs {
		info, err := s.info(ctx, e)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

// Get describes one job; ErrUnknownJob if there is none with that id.
func (s *Scheduler) Get(ctx context.Context, id string) (JobInfo, error) {
	e, err := s.entry(id)
	if err != nil {
		return JobInfo{}, err
	}
	return s.info(ctx, e)
}

// History returns the job's newest runs, newest first (limit <= 0: 20).
func (s *Scheduler) History(ctx context.Context, id string, limit int) ([]billing.JobRun, error) {
	if _, err := s.entry(id); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 20
	}
	runs, err := s.store.ListJobRuns(ctx, billing.JobRunFilter{JobID: id, Limit: limit})
	if err != nil {
		return nil, fmt.Errorf("scheduler: listing runs of %q: %w", id, err)
	}
	return runs, nil
}

func (s *Scheduler) info(ctx context.Context, e *entry) (JobInfo, error) {
	st, err := s.store.GetJobState(ctx, e.job.ID)
	if err != nil {
		return JobInfo{}, fmt.Errorf("scheduler: reading state of %q: %w", e.job.ID, err)
	}
	info := JobInfo{
		ID: e.job.ID, Name: e.job.Name, Description: e.job.Description,
		Schedule: e.job.Schedule, TimeZone: s.cfg.Location.String(),
		Paused: st.Paused, Disabled: e.disabled, Running: e.running.Load(),
		ConsecutiveFailures: st.ConsecutiveFailures, Progress: e.progress.Load(),
	}
	if e.sched != nil {
		info.Trigger = e.sched.describe()
		if !st.Paused && !e.disabled {
			if n := e.sched.Next(s.now()); !n.IsZero() {
				n = n.In(s.cfg.Location)
				info.NextRun = &n
			}
		}
	} else {
		info.Trigger = "manual"
	}
	runs, err := s.store.ListJobRuns(ctx, billing.JobRunFilter{JobID: e.job.ID, Limit: 50})
	if err != nil {
		return JobInfo{}, fmt.Errorf("scheduler: listing runs of %q: %w", e.job.ID, err)
	}
	for _, r := range runs {
		if r.Status == billing.RunStatusSkipped {
			continue
		}
		t := r.StartedAt.In(s.cfg.Location)
		info.LastRun, info.LastStatus = &t, r.Status
		if r.Status == billing.RunStatusRunning {
			status, running, err := s.runState(ctx, e, r)
			if err != nil {
				return JobInfo{}, err
			}
			info.LastStatus = status
			info.Running = info.Running || running
		}
		break
	}
	return info, nil
}

// Preview returns what the job would do if it ran now, changing nothing (billing.Job.Preview).
// ErrUnknownJob for an unknown id, ErrNoPreview for a job without one.
func (s *Scheduler) Preview(ctx context.Context, id string) (any, error) {
	e := s.byID[id]
	if e == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownJob, id)
	}
	if e.job.Preview == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoPreview, id)
	}
	return e.job.Preview(ctx)
}
