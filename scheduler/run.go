package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/renewkit/renewkit/billing"
)

// errSkipped: the tick was recorded as skipped; nothing to run.
var errSkipped = errors.New("scheduler: run skipped")

// Alert conditions kept in billing.JobState.Alerts.
const (
	alertConsecutive = "consecutive_failures"
	alertPartial     = "partial_failures"
	// alertNotifierUnavailable: the run's error wraps billing.ErrNotifierUnavailable (the
	// jobs' circuit breaker stopped the run's sends).
	alertNotifierUnavailable = "notifier_unavailable"
	// alertRenewal: a billing.JobRenew run could not reconcile AlertPolicy.RenewalFailures
	// subscriptions or more.
	alertRenewal = "renewal_failures"
)

type activeRun struct {
	e     *entry
	run   billing.JobRun
	lease billing.Lease
}

func lockKey(jobID string) string { return "job:" + jobID }

// begin claims a run of e: the in-process singleton, then (for ticks) the pause state,
// then the lease lock shared by replicas, then (for ticks, under the lock) whether this
// tick already ran anywhere. A scheduled or catch-up run that may not start is recorded
// as skipped and errSkipped is returned; a manual one returns ErrJobRunning. On success
// the run's record is stored with status running and the caller must call complete.
func (s *Scheduler) begin(ctx context.Context, e *entry, trigger billing.RunTrigger, tick time.Time, runID string) (*activeRun, error) {
	manual := trigger == billing.RunTriggerManual
	id := e.job.ID
	if !e.running.CompareAndSwap(false, true) {
		if manual {
			return nil, fmt.Errorf("%w: %q runs in this process", ErrJobRunning, id)
		}
		return nil, s.skip(ctx, e, trigger, tick, "already running in this process")
	}
	ok := false
	defer func() {
		if !ok {
			e.running.Store(false)
		}
	}()
	if !manual {
		if reason, err := s.tickDone(ctx, e, trigger, tick, false); err != nil {
			return nil, err
		} else if reason != "" {
			return nil, s.skip(ctx, e, trigger, tick, reason)
		}
	}
	now := s.now()
	lease, err := s.cfg.Locker.AcquireLock(ctx, lockKey(id), s.cfg.ReplicaID, now, s.cfg.LockTTL)
	switch {
	case errors.Is(err, billing.ErrLockHeld):
		if manual {
			return nil, fmt.Errorf("%w: %q runs on another replica", ErrJobRunning, id)
		}
		return nil, s.skip(ctx, e, trigger, tick, "running on another replica (lock held)")
	case err != nil:
		return nil, fmt.Errorf("scheduler: acquiring the lock of %q: %w", id, err)
	}
	unlock := func() {
		if err := s.cfg.Locker.ReleaseLock(context.WithoutCancel(ctx), lease); err != nil {
			s.cfg.Logger.WarnContext(ctx, "releasing job lock failed; it expires after its TTL", "job_id", id, "error", err)
		}
	}
	// Under the lock, records still "running" were left by a replica that stopped.
	s.reapAbandoned(ctx, e, now)
	if !manual {
		// Under the lock no other run of this job is live anywhere, so the checks below
		// cannot race with another replica handling the same tick.
		reason, err := s.tickDone(ctx, e, trigger, tick, true)
		if err != nil {
			unlock()
			return nil, err
		}
		if reason != "" {
			unlock()
			return nil, s.skip(ctx, e, trigger, tick, reason)
		}
	}
	run := billing.JobRun{
		ID: runID, JobID: id, Trigger: trigger, Status: billing.RunStatusRunning,
		StartedAt: now, Replica: s.cfg.ReplicaID, ScheduledFor: tick,
	}
	if err := s.store.InsertJobRun(ctx, &run); err != nil {
		unlock()
		return nil, fmt.Errorf("scheduler: recording the run of %q: %w", id, err)
	}
	ok = true
	s.cfg.Logger.InfoContext(ctx, "job run started", "job_id", id, "run_id", run.ID, "trigger", trigger, "scheduled_for", tick)
	return &activeRun{e: e, run: run, lease: lease}, nil
}

// tickDone says why a scheduled or catch-up run for tick must not start ("" if it may).
// With history (only meaningful under the job's lock) it also consults the run records:
// a scheduled tick runs at most once across replicas, even if their clocks fire it
// moments apart; a catch-up runs unless that tick succeeded or was already caught up.
func (s *Scheduler) tickDone(ctx context.Context, e *entry, trigger billing.RunTrigger, tick time.Time, history bool) (string, error) {
	st, err := s.store.GetJobState(ctx, e.job.ID)
	if err != nil {
		return "", fmt.Errorf("scheduler: reading state of %q: %w", e.job.ID, err)
	}
	if st.Paused {
		return "paused", nil
	}
	if !st.LastScheduledSuccess.Before(billing.TruncateTime(tick)) {
		return "already ran for this tick", nil
	}
	if !history {
		return "", nil
	}
	runs, err := s.store.ListJobRuns(ctx, billing.JobRunFilter{JobID: e.job.ID, Since: tick.Add(-time.Hour)})
	if err != nil {
		return "", fmt.Errorf("scheduler: listing runs of %q: %w", e.job.ID, err)
	}
	for _, r := range runs {
		if r.Status == billing.RunStatusSkipped || !r.ScheduledFor.Equal(tick) {
			continue
		}
		if trigger == billing.RunTriggerSchedule || r.Trigger == billing.RunTriggerCatchUp || r.Status == billing.RunStatusSucceeded {
			return fmt.Sprintf("already ran for this tick (run %s on %s)", r.ID, r.Replica), nil
		}
	}
	return "", nil
}

// skip records a skipped tick and returns errSkipped.
func (s *Scheduler) skip(ctx context.Context, e *entry, trigger billing.RunTrigger, tick time.Time, reason string) error {
	now := s.now()
	r := billing.JobRun{
		JobID: e.job.ID, Trigger: trigger, Status: billing.RunStatusSkipped, StartedAt: now, FinishedAt: now,
		Error: "skipped: " + reason, Replica: s.cfg.ReplicaID, ScheduledFor: tick,
	}
	if err := s.store.InsertJobRun(ctx, &r); err != nil {
		s.cfg.Logger.WarnContext(ctx, "recording a skipped tick failed", "job_id", e.job.ID, "error", err)
	}
	s.cfg.Logger.DebugContext(ctx, "job tick skipped", "job_id", e.job.ID, "trigger", trigger, "scheduled_for", tick, "reason", reason)
	return errSkipped
}

// complete runs the claimed job, keeps its lease alive meanwhile, and stores the outcome:
// the run record, the job state (failure streak, last scheduled success, alerts), the
// alerts themselves. parent carries the caller's values; Shutdown cancels the run.
func (s *Scheduler) complete(a *activeRun, parent context.Context) billing.JobRun {
	defer a.e.running.Store(false)
	runCtx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	stop := context.AfterFunc(s.baseCtx, func() { cancel(ErrClosed) })
	defer stop()
	if s.cfg.RunTimeout > 0 {
		var cancelT context.CancelFunc
		runCtx, cancelT = context.WithTimeout(runCtx, s.cfg.RunTimeout)
		defer cancelT()
	}

	leaseCtx, stopLease := context.WithCancel(runCtx)
	leaseOut := make(chan billing.Lease, 1)
	ticker := s.cfg.Clock.NewTicker(s.cfg.LockTTL / 3) // armed before the job starts
	go s.keepLease(leaseCtx, a, ticker, cancel, leaseOut)

	res, err := safeRun(s.trackProgress(runCtx, a.e, a.run), a.e.job.Run)
	stopLease()
	lease := <-leaseOut

	run := a.run
	run.FinishedAt = s.now()
	run.DurationMS = run.FinishedAt.Sub(run.StartedAt).Milliseconds()
	run.Status = billing.RunStatusSucceeded
	if err != nil {
		run.Status, run.Error = billing.RunStatusFailed, err.Error()
	}
	s.endProgress(a.e, run, res)
	if m, merr := resultMap(res); merr != nil {
		s.cfg.Logger.WarnContext(runCtx, "job result not recorded", "job_id", run.JobID, "error", merr)
	} else {
		run.Result = m
	}

	wctx, wcancel := context.WithTimeout(context.WithoutCancel(parent), 30*time.Second)
	defer wcancel()
	if uerr := s.store.UpdateJobRun(wctx, run); uerr != nil {
		s.cfg.Logger.ErrorContext(wctx, "recording the run outcome failed", "job_id", run.JobID, "run_id", run.ID, "error", uerr)
	}
	s.updateState(wctx, a.e, run, res, err)
	if rerr := s.cfg.Locker.ReleaseLock(wctx, lease); rerr != nil && !errors.Is(rerr, billing.ErrLockLost) {
		s.cfg.Logger.WarnContext(wctx, "releasing job lock failed; it expires after its TTL", "job_id", run.JobID, "error", rerr)
	}
	s.prune(wctx)
	lvl := "job run succeeded"
	if err != nil {
		lvl = "job run failed"
	}
	s.cfg.Logger.InfoContext(wctx, lvl, "job_id", run.JobID, "run_id", run.ID, "trigger", run.Trigger,
		"duration_ms", run.DurationMS, "error", run.Error)
	return run
}

// keepLease renews the run's lease every third of its TTL until ctx ends, then reports
// the current lease. Losing the lease cancels the run: another replica may take over.
func (s *Scheduler) keepLease(ctx context.Context, a *activeRun, t clockwork.Ticker, cancelRun context.CancelCauseFunc, out chan<- billing.Lease) {
	lease := a.lease
	defer func() { out <- lease }()
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
			l, err := s.cfg.Locker.RenewLock(ctx, lease, s.now(), s.cfg.LockTTL)
			switch {
			case err == nil:
				lease = l
			case errors.Is(err, billing.ErrLockLost):
				s.cfg.Logger.ErrorContext(ctx, "job lock lost; cancelling the run", "job_id", a.run.JobID, "run_id", a.run.ID)
				cancelRun(fmt.Errorf("scheduler: lock of %q lost: %w", a.run.JobID, err))
				return
			case ctx.Err() != nil:
				return
			default:
				s.cfg.Logger.WarnContext(ctx, "renewing job lock failed; retrying", "job_id", a.run.JobID, "error", err)
			}
		}
	}
}

func safeRun(ctx context.Context, f billing.JobFunc) (res billing.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, fmt.Errorf("job panicked: %v", p)
		}
	}()
	return f(ctx)
}

// resultMap turns a job's Result into the map stored in JobRun.Result, through its JSON
// form so its keys (success, total_found, ...) are kept.
func resultMap(r billing.Result) (map[string]any, error) {
	if noResult(r) {
		return nil, nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		var v any
		if err2 := json.Unmarshal(b, &v); err2 != nil {
			return nil, err
		}
		m = map[string]any{"value": v}
	}
	return m, nil
}

// noResult: the job returned no result (nil, or a nil pointer).
func noResult(r billing.Result) bool {
	if r == nil {
		return true
	}
	v := reflect.ValueOf(r)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

func failures(r billing.Result) int {
	if noResult(r) {
		return 0
	}
	return r.Failures()
}

func found(r billing.Result) int {
	if noResult(r) {
		return 0
	}
	return r.Found()
}

// updateState folds a finished run into the job's shared state and raises or clears
// operator alerts, once per episode. The fold is re-applied when another replica changed
// the state meanwhile (a pause); an alert sent by an earlier attempt is not sent again.
func (s *Scheduler) updateState(ctx context.Context, e *entry, run billing.JobRun, res billing.Result, runErr error) {
	// A run the breaker stopped says the jobs' notifier is down: its alerts skip it.
	notifierDown := errors.Is(runErr, billing.ErrNotifierUnavailable)
	sent := map[string]bool{}
	// toggle raises cond (once per episode: not while st.Alerts holds it) when on, and
	// clears it otherwise. msg is only built for an alert that is sent.
	toggle := func(st *billing.JobState, cond string, on bool, msg func() string) {
		switch {
		case !on:
			st.Alerts = slices.DeleteFunc(st.Alerts, func(a string) bool { return a == cond })
			return
		case slices.Contains(st.Alerts, cond):
			return
		}
		if !sent[cond] {
			sent[cond] = s.alert(ctx, e, run, cond, msg(), st.ConsecutiveFailures, notifierDown)
		}
		if sent[cond] {
			st.Alerts = append(st.Alerts, cond)
		}
	}
	_, err := s.modifyState(ctx, e, func(st *billing.JobState) bool {
		failed := run.Status == billing.RunStatusFailed
		if failed {
			st.ConsecutiveFailures++
		} else {
			st.ConsecutiveFailures = 0
			if run.Trigger != billing.RunTriggerManual && run.ScheduledFor.After(st.LastScheduledSuccess) {
				st.LastScheduledSuccess = run.ScheduledFor
			}
		}
		if s.cfg.Alerts != nil {
			p := s.cfg.Alerts.Policy
			toggle(st, alertConsecutive, st.ConsecutiveFailures >= p.ConsecutiveFailures, func() string {
				return fmt.Sprintf("%d consecutive failed runs; last error: %s", st.ConsecutiveFailures, run.Error)
			})
			// The breaker: at the first run it stops, cleared by the next run it does not.
			toggle(st, alertNotifierUnavailable, notifierDown, func() string {
				return "notifications are failing: the run stopped sending and left the rest pending for the next run; " + run.Error
			})
			// Record failures: only a run that completed says whether they persist.
			if !failed {
				n := failures(res)
				toggle(st, alertPartial, p.PartialFailures > 0 && n >= p.PartialFailures, func() string {
					return fmt.Sprintf("%d of %d records failed and will be retried by a later run", n, found(res))
				})
				if e.job.ID == billing.JobRenew {
					toggle(st, alertRenewal, p.RenewalFailures > 0 && n >= p.RenewalFailures, func() string {
						return fmt.Sprintf("%d of %d auto-renewing subscriptions could not be reconciled with their gateway "+
							"(alert threshold %d); they keep their state and are retried by the next run", n, found(res), p.RenewalFailures)
					})
				}
			}
		}
		st.UpdatedAt = s.now()
		return true
	})
	if err != nil {
		s.cfg.Logger.ErrorContext(ctx, "updating job state failed; failure streak not updated", "job_id", e.job.ID, "error", err)
	}
}

// alert sends one operator alert to Alerts.Notifier and every one of Alerts.Channels at
// once, and reports whether at least one took it; a condition no destination took is
// retried by the next run that still meets it. With skipPrimary (the jobs' notifier is
// down) Alerts.Notifier is left out, unless it is the only destination.
func (s *Scheduler) alert(ctx context.Context, e *entry, run billing.JobRun, cond, msg string, streak int, skipPrimary bool) bool {
	n := billing.Notification{
		Kind: billing.NotificationKindOperatorAlert,
		Key:  fmt.Sprintf("%s:%s:%s:%s", billing.NotificationKindOperatorAlert, e.job.ID, cond, run.ID),
		To:   s.cfg.Alerts.To,
		Data: billing.NotificationData{JobID: e.job.ID, RunID: run.ID, Error: msg, ConsecutiveFails: streak},
	}
	dests := s.cfg.Alerts.Channels
	if !skipPrimary || len(dests) == 0 {
		dests = append([]AlertChannel{{Name: primaryChannel, Notifier: s.cfg.Alerts.Notifier}}, dests...)
	}
	errs := make([]error, len(dests))
	var wg sync.WaitGroup
	for i, d := range dests {
		wg.Go(func() {
			if err := d.Notifier.Notify(ctx, n); err != nil {
				errs[i] = fmt.Errorf("channel %s: %w", d.Name, err)
			}
		})
	}
	wg.Wait()
	var took []string
	for i, d := range dests {
		if errs[i] == nil {
			took = append(took, d.Name)
		}
	}
	if err := errors.Join(errs...); err != nil {
		s.cfg.Logger.ErrorContext(ctx, "operator alert not sent on every channel", "job_id", e.job.ID, "condition", cond,
			"run_id", run.ID, "sent_on", took, "error", err)
	}
	if len(took) == 0 {
		return false
	}
	s.cfg.Logger.WarnContext(ctx, "operator alert sent", "job_id", e.job.ID, "condition", cond, "run_id", run.ID, "channels", took)
	return true
}

// primaryChannel names Alerts.Notifier in logs.
const primaryChannel = "primary"

// prune deletes run records older than the retention window, at most once an hour.
func (s *Scheduler) prune(ctx context.Context) {
	now := s.now()
	s.mu.Lock()
	if !s.lastPrune.IsZero() && now.Sub(s.lastPrune) < time.Hour {
		s.mu.Unlock()
		return
	}
	s.lastPrune = now
	s.mu.Unlock()
	cutoff := now.AddDate(0, 0, -s.cfg.HistoryRetentionDays)
	n, err := s.store.DeleteJobRunsBefore(ctx, cutoff)
	if err != nil {
		s.cfg.Logger.WarnContext(ctx, "pruning run history failed", "error", err)
		return
	}
	if n > 0 {
		s.cfg.Logger.InfoContext(ctx, "run history pruned", "deleted", n, "before", cutoff)
	}
}
