package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/scheduler"
	"github.com/renewkit/renewkit/store/memstore"
)

func TestNewSchedulerReportsEveryProblem(t *testing.T) {
	var calls atomic.Int64
	jobs := []billing.Job{
		countingJob("a", "0 9 * * *", &calls),
		countingJob("a", "0 9 * * *", &calls),
		{ID: "", Schedule: "0 9 * * *"},
		countingJob("bad", "61 9 * * *", &calls),
		countingJob("tz", "TZ=UTC 0 9 * * *", &calls),
		{ID: "norun", Schedule: "0 9 * * *"},
	}
	_, err := scheduler.NewScheduler(jobs, memstore.New(), scheduler.Config{
		Schedules:            map[string]string{"missing": "* * * * *"},
		Disabled:             []string{"ghost"},
		LockTTL:              500 * time.Millisecond,
		HistoryRetentionDays: -1,
		RunTimeout:           -time.Second,
		Alerts:               &scheduler.Alerts{Policy: scheduler.AlertPolicy{ConsecutiveFailures: -1, PartialFailures: -2}},
	})
	if !errors.Is(err, scheduler.ErrInvalidConfig) {
		t.Fatalf("err = %v, want ErrInvalidConfig", err)
	}
	for _, want := range []string{
		`job "a" is listed twice`, "empty ID", `job "bad"`, "set scheduler.Config.Location instead", `job "norun" has no Run`,
		`Config.Schedules["missing"]: no such job`, `Config.Disabled: "ghost" is no such job`,
		"Config.LockTTL: 500ms is too short", "Config.HistoryRetentionDays: -1 days", "Config.RunTimeout: -1s is negative",
		"Config.Alerts.Notifier: nil notifier", "Config.Alerts.To: recipient has no email",
		"Config.Alerts.Policy: ConsecutiveFailures -1", "Config.Alerts.Policy: PartialFailures -2",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := scheduler.NewScheduler(nil, nil, scheduler.Config{}); err == nil || !strings.Contains(err.Error(), "missing store") || !strings.Contains(err.Error(), "no jobs") {
		t.Errorf("NewScheduler(nil, nil, Config{}) = %v", err)
	}
	// A disabled job needs no schedule; an override replaces the job's own.
	s, err := scheduler.NewScheduler([]billing.Job{countingJob("manual", "", &calls), countingJob("x", "bad spec", &calls)}, memstore.New(), scheduler.Config{Schedules: map[string]string{"x": "*/5 * * * *"}, Disabled: []string{"manual"}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Get(context.Background(), "x")
	if err != nil || info.Schedule != "*/5 * * * *" {
		t.Fatalf("Get = %+v, %v", info, err)
	}
}

func TestDefaultJobsFireAtSeedTimes(t *testing.T) {
	defer noLeaks(t)
	clock := clockwork.NewFakeClockAt(time.Date(2025, 10, 30, 23, 0, 0, 0, saoPaulo))
	st := memstore.New()
	svc, err := billing.NewService(st, testkit.NewNotifier(), billing.Config{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	s := newScheduler(t, svc.Jobs(), st, scheduler.Config{Clock: clock, Location: saoPaulo, ReplicaID: "r1"})

	jobs, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantNext := map[string]string{
		billing.JobCheckExpiring:   "2025-10-31T09:00:00-03:00",
		billing.JobProcessExpired:  "2025-10-31T00:30:00-03:00",
		billing.JobRenew:           "2025-10-31T02:00:00-03:00",
		billing.JobCleanupSessions: "2025-11-02T03:00:00-03:00",
		billing.JobCleanupPayments: "2025-11-01T04:00:00-03:00",
	}
	wantTrigger := map[string]string{
		billing.JobCheckExpiring:   "cron[day_of_week='*', hour='9', minute='0']",
		billing.JobProcessExpired:  "cron[day_of_week='*', hour='0', minute='30']",
		billing.JobRenew:           "cron[day_of_week='*', hour='2', minute='0']",
		billing.JobCleanupSessions: "cron[day_of_week='sun', hour='3', minute='0']",
		billing.JobCleanupPayments: "cron[day='1', day_of_week='*', hour='4', minute='0']",
	}
	if len(jobs) != 5 {
		t.Fatalf("List = %d jobs", len(jobs))
	}
	for _, j := range jobs {
		if got := j.NextRun.Format(time.RFC3339); got != wantNext[j.ID] {
			t.Errorf("%s next_run = %s, want %s", j.ID, got, wantNext[j.ID])
		}
		if j.Trigger != wantTrigger[j.ID] {
			t.Errorf("%s trigger = %q, want %q", j.ID, j.Trigger, wantTrigger[j.ID])
		}
		if j.TimeZone != "America/Sao_Paulo" || j.LastRun != nil || j.Paused {
			t.Errorf("%s = %+v", j.ID, j)
		}
	}

	start(t, s)
	at := func(d, h, m int) time.Time {
		return time.Date(2025, time.Month(10+(d/100)), d%100, h, m, 0, 0, saoPaulo)
	}
	ticks := []struct {
		job string
		at  time.Time
	}{
		{billing.JobProcessExpired, at(31, 0, 30)}, {billing.JobRenew, at(31, 2, 0)}, {billing.JobCheckExpiring, at(31, 9, 0)},
		{billing.JobProcessExpired, at(101, 0, 30)}, {billing.JobRenew, at(101, 2, 0)}, {billing.JobCleanupPayments, at(101, 4, 0)},
		{billing.JobCheckExpiring, at(101, 9, 0)},
		{billing.JobProcessExpired, at(102, 0, 30)}, {billing.JobRenew, at(102, 2, 0)}, {billing.JobCleanupSessions, at(102, 3, 0)},
		{billing.JobCheckExpiring, at(102, 9, 0)},
	}
	for i, tk := range ticks {
		advanceTo(clock, tk.at)
		recs := waitTick(t, st, tk.job, tk.at, 1)
		r := recs[0]
		if r.Status != billing.RunStatusSucceeded || r.Trigger != billing.RunTriggerSchedule || r.Replica != "r1" {
			t.Fatalf("tick %d %s: %+v", i, tk.job, r)
		}
		if !r.StartedAt.Equal(tk.at) {
			t.Errorf("%s started %v, want %v", tk.job, r.StartedAt.In(saoPaulo), tk.at)
		}
		if _, ok := r.Result["total_found"]; !ok || r.Result["success"] != true {
			t.Errorf("%s result = %v", tk.job, r.Result)
		}
		total := 0
		for _, j := range jobs {
			total += len(executed(t, st, j.ID))
		}
		if total != i+1 {
			t.Fatalf("after tick %d (%s at %v): %d runs in all, want %d", i, tk.job, tk.at, total, i+1)
		}
	}
	shutdown(t, s)
}

func TestPauseSkipsTicksResumeRestoresAndPausePersists(t *testing.T) {
	defer noLeaks(t)
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	st := memstore.New()
	var calls atomic.Int64
	jobs := []billing.Job{countingJob("hourly", "0 * * * *", &calls)}
	h := func(n int) time.Time { return time.Date(2025, 1, 1, n, 0, 0, 0, time.UTC) }

	s1 := newScheduler(t, jobs, st, scheduler.Config{Clock: clock, ReplicaID: "r1"})
	start(t, s1)
	advanceTo(clock, h(1))
	waitTick(t, st, "hourly", h(1), 1)

	if err := s1.Pause(ctx, "hourly"); err != nil {
		t.Fatal(err)
	}
	info, _ := s1.Get(ctx, "hourly")
	if !info.Paused || info.NextRun != nil {
		t.Fatalf("paused job = %+v", info)
	}
	advanceTo(clock, h(2))
	if r := waitTick(t, st, "hourly", h(2), 1)[0]; r.Status != billing.RunStatusSkipped || !strings.Contains(r.Error, "paused") {
		t.Fatalf("tick while paused = %+v", r)
	}
	shutdown(t, s1)

	// A restart (or another replica) sees the pause: it is in the store.
	s2 := newScheduler(t, jobs, st, scheduler.Config{Clock: clock, ReplicaID: "r2"})
	start(t, s2)
	if info, _ := s2.Get(ctx, "hourly"); !info.Paused {
		t.Fatal("pause lost across restart")
	}
	advanceTo(clock, h(3))
	if r := waitTick(t, st, "hourly", h(3), 1)[0]; r.Status != billing.RunStatusSkipped || r.Replica != "r2" {
		t.Fatalf("tick after restart = %+v", r)
	}
	if err := s2.Resume(ctx, "hourly"); err != nil {
		t.Fatal(err)
	}
	info, _ = s2.Get(ctx, "hourly")
	if info.Paused || info.NextRun == nil || !info.NextRun.Equal(h(4)) {
		t.Fatalf("resumed job = %+v", info)
	}
	advanceTo(clock, h(4))
	if r := waitTick(t, st, "hourly", h(4), 1)[0]; r.Status != billing.RunStatusSucceeded {
		t.Fatalf("tick after resume = %+v", r)
	}
	shutdown(t, s2)
	if calls.Load() != 2 {
		t.Fatalf("job ran %d times, want 2", calls.Load())
	}
	if err := s2.Pause(ctx, "nope"); !errors.Is(err, scheduler.ErrUnknownJob) {
		t.Fatalf("Pause(unknown) = %v", err)
	}
}

func TestTriggerRunsNowAndRecordsHistory(t *testing.T) {
	defer noLeaks(t)
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	st := memstore.New()
	jobs := []billing.Job{
		{ID: "renew", Name: "Renew", Schedule: "0 2 * * *", Run: func(context.Context) (billing.Result, error) {
			clock.Advance(1500 * time.Millisecond) // the run takes 1.5s of fake time
			return testResult{Success: true, TotalFound: 4, Renewed: 3, Failed: 1}, nil
		}},
		{ID: "broken", Schedule: "0 3 * * *", Run: func(context.Context) (billing.Result, error) {
			return testResult{Success: false}, errors.New("gateway unreachable")
		}},
		{ID: "panics", Schedule: "0 4 * * *", Run: func(context.Context) (billing.Result, error) { panic("boom") }},
	}
	s := newScheduler(t, jobs, st, scheduler.Config{Clock: clock, ReplicaID: "r1"})
	start(t, s)

	run, err := s.Trigger(ctx, "renew")
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != billing.RunStatusSucceeded || run.Trigger != billing.RunTriggerManual || run.Replica != "r1" ||
		run.DurationMS != 1500 || !run.StartedAt.Equal(clock.Now().Add(-1500*time.Millisecond)) || !run.ScheduledFor.IsZero() {
		t.Fatalf("run = %+v", run)
	}
	if run.Result["total_found"] != float64(4) || run.Result["renewed"] != float64(3) || run.Result["success"] != true {
		t.Fatalf("result = %v", run.Result)
	}
	hist, err := s.History(ctx, "renew", 0)
	if err != nil || len(hist) != 1 || hist[0].ID != run.ID || hist[0].Result["failed"] != float64(1) {
		t.Fatalf("History = %+v, %v", hist, err)
	}

	bad, err := s.Trigger(ctx, "broken")
	if err != nil {
		t.Fatal(err)
	}
	if bad.Status != billing.RunStatusFailed || bad.Error != "gateway unreachable" || bad.Result["success"] != false {
		t.Fatalf("failed run = %+v", bad)
	}
	p, err := s.Trigger(ctx, "panics")
	if err != nil || p.Status != billing.RunStatusFailed || !strings.Contains(p.Error, "panicked: boom") {
		t.Fatalf("panicking run = %+v, %v", p, err)
	}
	info, _ := s.Get(ctx, "broken")
	if info.ConsecutiveFailures != 1 || info.LastStatus != billing.RunStatusFailed || info.LastRun == nil {
		t.Fatalf("Get(broken) = %+v", info)
	}

	id, err := s.TriggerAsync(ctx, "renew")
	if err != nil || id == "" {
		t.Fatalf("TriggerAsync = %q, %v", id, err)
	}
	eventually(t, "async run", func() bool {
		h, _ := s.History(ctx, "renew", 1)
		return len(h) == 1 && h[0].ID == id && h[0].Status == billing.RunStatusSucceeded
	})
	if _, err := s.Trigger(ctx, "nope"); !errors.Is(err, scheduler.ErrUnknownJob) {
		t.Fatalf("Trigger(unknown) = %v", err)
	}
	shutdown(t, s)
	if _, err := s.Trigger(ctx, "renew"); !errors.Is(err, scheduler.ErrClosed) {
		t.Fatalf("Trigger after Shutdown = %v", err)
	}
	if err := s.Start(ctx); !errors.Is(err, scheduler.ErrClosed) {
		t.Fatalf("Start after Shutdown = %v", err)
	}
}

// blocker is a job that runs until released (or cancelled).
type blocker struct {
	started chan struct{}
	release chan struct{}
	calls   atomic.Int64
}

func newBlocker() *blocker {
	return &blocker{started: make(chan struct{}, 10), release: make(chan struct{})}
}

func (b *blocker) job(id, spec string) billing.Job {
	return billing.Job{ID: id, Schedule: spec, Run: func(ctx context.Context) (billing.Result, error) {
		b.calls.Add(1)
		b.started <- struct{}{}
		select {
		case <-b.release:
			return testResult{Success: true}, nil
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}}
}

// countingLocker counts lease renewals.
type countingLocker struct {
	billing.Locker
	renewals atomic.Int64
}

func (l *countingLocker) RenewLock(ctx context.Context, lease billing.Lease, now time.Time, ttl time.Duration) (billing.Lease, error) {
	out, err := l.Locker.RenewLock(ctx, lease, now, ttl)
	if err == nil {
		l.renewals.Add(1)
	}
	return out, err
}

func TestNoOverlapTriggerConflictsAndTickSkips(t *testing.T) {
	defer noLeaks(t)
	ctx := context.Background()
	clock := clockwork.NewFakeClockAt(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	st := memstore.New()
	b := newBlocker()
	var calls2 atomic.Int64
	locker := &countingLocker{Locker: st}
	s1 := newScheduler(t, []billing.Job{b.job("slow", "0 * * * *")}, st, scheduler.Config{Clock: clock, ReplicaID: "r1", Locker: locker, LockTTL: 2 * time.Hour})
	// The second replica runs the same job id; its copy does not block, so a stolen lease
	// shows up as a run instead of a hang.
	s2 := newScheduler(t, []billing.Job{countingJob("slow", "0 * * * *", &calls2)}, st, scheduler.Config{Clock: clock, ReplicaID: "r2"})
	start(t, s1)

	id, err := s1.TriggerAsync(ctx, "slow")
	if err != nil {
		t.Fatal(err)
	}
	<-b.started
	if info, _ := s1.Get(ctx, "slow"); !info.Running {
		t.Fatalf("running job = %+v", info)
	}
	if _, err := s1.Trigger(ctx, "slow"); !errors.Is(err, scheduler.ErrJobRunning) {
		t.Fatalf("Trigger while running = %v", err)
	}
	if _, err := s1.TriggerAsync(ctx, "slow"); !errors.Is(err, scheduler.ErrJobRunning) {
		t.Fatalf("TriggerAsync while running = %v", err)
	}
	// Another replica sees the lease.
	if _, err := s2.Trigger(ctx, "slow"); !errors.Is(err, scheduler.ErrJobRunning) {
		t.Fatalf("Trigger on another replica = %v", err)
	}
	// Ticks while it runs are skipped, and the lease (2h) is renewed every 40 minutes.
	for i, tick := range []time.Time{time.Date(2025, 3, 1, 13, 0, 0, 0, time.UTC), time.Date(2025, 3, 1, 14, 0, 0, 0, time.UTC)} {
		advanceTo(clock, tick.Add(30*time.Minute))
		if r := waitTick(t, st, "slow", tick, 1)[0]; r.Status != billing.RunStatusSkipped || !strings.Contains(r.Error, "already running") {
			t.Fatalf("tick while running = %+v", r)
		}
		eventually(t, "lease renewal", func() bool { return locker.renewals.Load() >= int64(i+1) })
	}
	// 14:30: the first lease would have ended at 14:00.
	if _, err := s2.Trigger(ctx, "slow"); !errors.Is(err, scheduler.ErrJobRunning) {
		t.Fatalf("lease not renewed past its TTL: %v", err)
	}
	close(b.release)
	eventually(t, "manual run to finish", func() bool {
		h, _ := s1.History(ctx, "slow", 10)
		for _, r := range h {
			if r.ID == id {
				return r.Status == billing.RunStatusSucceeded
			}
		}
		return false
	})
	eventually(t, "job to be idle", func() bool { info, _ := s1.Get(ctx, "slow"); return !info.Running })
	if run, err := s2.Trigger(ctx, "slow"); err != nil || run.Status != billing.RunStatusSucceeded || run.Replica != "r2" {
		t.Fatalf("Trigger on r2 after release = %+v, %v", run, err)
	}
	shutdown(t, s1)
	shutdown(t, s2)
	if b.calls.Load() != 1 || calls2.Load() != 1 {
		t.Fatalf("calls r1=%d r2=%d", b.calls.Load(), calls2.Load())
	}
}

func TestShutdownWaitsForRunningJobs(t *testing.T) {
	defer noLeaks(t)
	ctx := context.Background()
	clock := clockwork.NewFakeClock()
	st := memstore.New()
	b := newBlocker()
	s := newScheduler(t, []billing.Job{b.job("slow", "0 * * * *")}, st, scheduler.Config{Clock: clock})
	start(t, s)
	id, err := s.TriggerAsync(ctx, "slow")
	if err != nil {
		t.Fatal(err)
	}
	<-b.started
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned while the job ran: %v", err)
	default:
	}
	close(b.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The run was complete before Shutdown returned.
	h := listRuns(t, st, "slow")
	if len(h) != 1 || h[0].ID != id || h[0].Status != billing.RunStatusSucceeded {
		t.Fatalf("history = %+v", h)
	}
}

func TestShutdownBoundedByContext(t *testing.T) {
	defer noLeaks(t)
	clock := clockwork.NewFakeClock()
	st := memstore.New()
	b := newBlocker()
	s := newScheduler(t, []billing.Job{b.job("stuck", "0 * * * *")}, st, scheduler.Config{Clock: clock})
	start(t, s)
	if _, err := s.TriggerAsync(context.Background(), "stuck"); err != nil {
		t.Fatal(err)
	}
	<-b.started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	eventually(t, "cancelled run to be recorded", func() bool {
		h := listRuns(t, st, "stuck")
		return len(h) == 1 && h[0].Status == billing.RunStatusFailed && strings.Contains(h[0].Error, "shut down")
	})
}

func TestHistoryRetention(t *testing.T) {
	defer noLeaks(t)
	ctx := context.Background()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := clockwork.NewFakeClockAt(now)
	st := memstore.New()
	var calls atomic.Int64
	for _, age := range []int{40, 8, 2} {
		if err := st.InsertJobRun(ctx, &billing.JobRun{JobID: "j", Trigger: billing.RunTriggerSchedule, Status: billing.RunStatusSucceeded,
			StartedAt: now.AddDate(0, 0, -age), FinishedAt: now.AddDate(0, 0, -age)}); err != nil {
			t.Fatal(err)
		}
	}
	s := newScheduler(t, []billing.Job{countingJob("j", "0 9 * * *", &calls)}, st, scheduler.Config{Clock: clock, HistoryRetentionDays: 7})
	if _, err := s.Trigger(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	h := listRuns(t, st, "j")
	if len(h) != 2 { // the 2-day-old run and the new one
		t.Fatalf("history after pruning = %d runs: %+v", len(h), h)
	}
	shutdown(t, s)
}

func TestOperatorAlertsOncePerEpisode(t *testing.T) {
	defer noLeaks(t)
	ctx := context.Background()
	clock := clockwork.NewFakeClock()
	st := memstore.New()
	var fail atomic.Bool
	var partial atomic.Int64
	job := billing.Job{ID: "renew", Schedule: "0 2 * * *", Run: func(context.Context) (billing.Result, error) {
		if fail.Load() {
			return nil, errors.New("store down")
		}
		return testResult{Success: true, TotalFound: 10, Failed: int(partial.Load())}, nil
	}}
	rec := testkit.NewNotifier()
	ops := billing.Recipient{Email: "ops@example.com", Name: "Ops"}
	s := newScheduler(t, []billing.Job{job}, st, scheduler.Config{Clock: clock, Alerts: &scheduler.Alerts{Notifier: rec, To: ops, Policy: scheduler.AlertPolicy{PartialFailures: 2}}})
	trigger := func() billing.JobRun {
		t.Helper()
		r, err := s.Trigger(ctx, "renew")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	fail.Store(true)
	trigger()
	trigger()
	if n := len(rec.Sent()); n != 0 {
		t.Fatalf("%d alerts after 2 failures", n)
	}
	third := trigger()
	got := rec.Sent()
	if len(got) != 1 {
		t.Fatalf("%d alerts after 3 failures, want 1", len(got))
	}
	a := got[0]
	if a.Kind != billing.NotificationKindOperatorAlert || a.To != ops || a.Data.JobID != "renew" || a.Data.RunID != third.ID ||
		a.Data.ConsecutiveFails != 3 || !strings.Contains(a.Data.Error, "store down") || a.Key == "" {
		t.Fatalf("alert = %+v", a)
	}
	trigger()
	if n := len(rec.Sent()); n != 1 {
		t.Fatalf("%d alerts after 4 failures, want still 1", n)
	}
	state, _ := st.GetJobState(ctx, "renew")
	if state.ConsecutiveFailures != 4 || len(state.Alerts) != 1 {
		t.Fatalf("state = %+v", state)
	}

	fail.Store(false)
	trigger()
	state, _ = st.GetJobState(ctx, "renew")
	if state.ConsecutiveFailures != 0 || len(state.Alerts) != 0 {
		t.Fatalf("state after success = %+v", state)
	}
	fail.Store(true)
	trigger()
	trigger()
	trigger()
	got = rec.Sent()
	if len(got) != 2 || got[1].Key == got[0].Key {
		t.Fatalf("second episode alerts = %+v", got)
	}

	// Partial failures: at the threshold (2) once, cleared by a clean run.
	fail.Store(false)
	partial.Store(1)
	trigger()
	if n := len(rec.Sent()); n != 2 {
		t.Fatalf("alert below threshold: %d", n)
	}
	partial.Store(3)
	trigger()
	trigger()
	got = rec.Sent()
	if len(got) != 3 || !strings.Contains(got[2].Data.Error, "3 of 10 records failed") {
		t.Fatalf("partial alerts = %+v", got)
	}
	partial.Store(0)
	trigger()
	partial.Store(2)
	trigger()
	if got = rec.Sent(); len(got) != 4 || got[3].Key == got[2].Key {
		t.Fatalf("partial second episode = %+v", got)
	}
	shutdown(t, s)
}

func TestCatchUpRunsOnceAfterDowntime(t *testing.T) {
	defer noLeaks(t)
	ctx := context.Background()
	day := func(d, h, m int) time.Time { return time.Date(2025, 10, d, h, m, 0, 0, saoPaulo) }
	clock := clockwork.NewFakeClockAt(day(1, 8, 0))
	st := memstore.New()
	var calls atomic.Int64
	jobs := []billing.Job{countingJob("daily", "0 9 * * *", &calls)}
	cfg := func(replica string) scheduler.Config {
		return scheduler.Config{Clock: clock, Location: saoPaulo, ReplicaID: replica}
	}

	s1 := newScheduler(t, jobs, st, cfg("r1"))
	start(t, s1)
	advanceTo(clock, day(1, 9, 0))
	waitTick(t, st, "daily", day(1, 9, 0), 1)
	shutdown(t, s1)

	// Down from day 1 to day 4 10:00: three ticks missed, two replicas come back at once.
	advanceTo(clock, day(4, 10, 0))
	s2 := newScheduler(t, jobs, st, cfg("r2"))
	s3 := newScheduler(t, jobs, st, cfg("r3"))
	var wg sync.WaitGroup
	for _, s := range []*scheduler.Scheduler{s2, s3} {
		wg.Go(func() { start(t, s) })
	}
	wg.Wait()
	// The first replica's catch-up runs; the second either finds it done under the lock
	// (a skipped record) or, starting after it, sees the tick succeeded and does nothing.
	waitTick(t, st, "daily", day(4, 9, 0), 1)
	eventually(t, "catch-up to finish", func() bool { return calls.Load() == 2 })
	// The schedule goes on as usual.
	advanceTo(clock, day(5, 9, 0))
	waitTick(t, st, "daily", day(5, 9, 0), 2)
	shutdown(t, s2)
	shutdown(t, s3)
	if calls.Load() != 3 {
		t.Fatalf("calls = %d, want 3", calls.Load())
	}
	var caught []billing.JobRun
	for _, r := range executed(t, st, "daily") {
		if r.Trigger == billing.RunTriggerCatchUp {
			caught = append(caught, r)
		}
	}
	if len(caught) != 1 || !caught[0].ScheduledFor.Equal(day(4, 9, 0)) || caught[0].Status != billing.RunStatusSucceeded {
		t.Fatalf("catch-up runs = %+v", caught)
	}

	// Restarting after a successful tick catches nothing up.
	advanceTo(clock, day(5, 9, 30))
	s4 := newScheduler(t, jobs, st, cfg("r4"))
	start(t, s4)
	shutdown(t, s4)
	if calls.Load() != 3 {
		t.Fatalf("restart without a missed tick ran the job: calls = %d", calls.Load())
	}
	_ = ctx
}

func TestCatchUpNewInstall(t *testing.T) {
	defer noLeaks(t)
	at := func(d, h int) time.Time { return time.Date(2025, 10, d, h, 0, 0, 0, time.UTC) }
	clock := clockwork.NewFakeClockAt(at(1, 10))
	st := memstore.New()
	var calls atomic.Int64
	jobs := []billing.Job{countingJob("daily", "0 9 * * *", &calls)}

	// Brand-new install at 10:00: the 09:00 tick happened before it existed.
	s1 := newScheduler(t, jobs, st, scheduler.Config{Clock: clock})
	start(t, s1)
	shutdown(t, s1)
	if calls.Load() != 0 {
		t.Fatalf("new install caught up: calls = %d", calls.Load())
	}
	// Down over the next 09:00 tick: that one is caught up, even though the job never ran.
	advanceTo(clock, at(2, 10))
	s2 := newScheduler(t, jobs, st, scheduler.Config{Clock: clock})
	start(t, s2)
	shutdown(t, s2) // waits for the catch-up run
	runs := executed(t, st, "daily")
	if len(runs) != 1 || runs[0].Trigger != billing.RunTriggerCatchUp || !runs[0].ScheduledFor.Equal(at(2, 9)) {
		t.Fatalf("runs = %+v", runs)
	}
}

func TestReplicasRunEachTickOnce(t *testing.T) {
	defer noLeaks(t)
	st := memstore.New()
	replicasRunEachTickOnce(t, [3]scheduler.Store{st, st, st}, st)
}

// replicasRunEachTickOnce drives three replicas, each on its own store handle, through 10
// ticks and checks each job ran exactly once per tick; runs reads the shared history.
func replicasRunEachTickOnce(t *testing.T, stores [3]scheduler.Store, runs billing.JobRunStore) {
	base := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	st := runs
	var callsA, callsB atomic.Int64
	jobs := []billing.Job{countingJob("a", "*/10 * * * *", &callsA), countingJob("b", "*/10 * * * *", &callsB)}
	// Each replica has its own clock; they fire the same tick up to 400ms apart.
	offsets := []time.Duration{0, 150 * time.Millisecond, 400 * time.Millisecond}
	clocks := make([]*clockwork.FakeClock, 3)
	reps := make([]*scheduler.Scheduler, 3)
	for i := range reps {
		clocks[i] = clockwork.NewFakeClockAt(base.Add(offsets[i]))
		reps[i] = newScheduler(t, jobs, stores[i], scheduler.Config{Clock: clocks[i], ReplicaID: fmt.Sprintf("r%d", i)})
		start(t, reps[i])
	}
	for k := 1; k <= 10; k++ {
		tick := base.Add(time.Duration(k) * 10 * time.Minute)
		if k%2 == 0 {
			// All replicas at once: they race for the lock.
			var wg sync.WaitGroup
			for i := range clocks {
				wg.Go(func() { advanceTo(clocks[i], tick.Add(offsets[i])) })
			}
			wg.Wait()
		} else {
			// One after the other, each after the previous finished: the later ones
			// find the lock free and must recognise the tick as done.
			for i := range clocks {
				advanceTo(clocks[i], tick.Add(offsets[i]))
				waitTick(t, st, "a", tick, i+1)
				waitTick(t, st, "b", tick, i+1)
			}
		}
		for _, id := range []string{"a", "b"} {
			recs := waitTick(t, st, id, tick, 3)
			ran := 0
			for _, r := range recs {
				if r.Status == billing.RunStatusSucceeded {
					ran++
				}
			}
			if ran != 1 || len(recs) != 3 {
				t.Fatalf("job %s tick %d: %d runs in %d records: %+v", id, k, ran, len(recs), recs)
			}
		}
	}
	for _, s := range reps {
		shutdown(t, s)
	}
	for _, id := range []string{"a", "b"} {
		if n := len(executed(t, st, id)); n != 10 {
			t.Errorf("job %s ran %d times, want 10", id, n)
		}
	}
	if callsA.Load() != 10 || callsB.Load() != 10 {
		t.Errorf("calls a=%d b=%d, want 10 each", callsA.Load(), callsB.Load())
	}
}

func TestDSTDailyJobsRunOncePerDay(t *testing.T) {
	defer noLeaks(t)
	ctx := context.Background()
	type tick struct {
		job string
		at  string
	}
	cases := []struct {
		name  string
		loc   *time.Location
		from  time.Time
		ticks []tick
	}{{
		name: "new york spring forward", loc: newYork, from: time.Date(2025, 3, 8, 0, 0, 0, 0, newYork),
		ticks: []tick{
			{"at0130", "2025-03-08T01:30:00-05:00"}, {"at0230", "2025-03-08T02:30:00-05:00"}, {"at0900", "2025-03-08T09:00:00-05:00"},
			{"at0130", "2025-03-09T01:30:00-05:00"}, {"at0230", "2025-03-09T03:30:00-04:00"}, {"at0900", "2025-03-09T09:00:00-04:00"},
			{"at0130", "2025-03-10T01:30:00-04:00"}, {"at0230", "2025-03-10T02:30:00-04:00"}, {"at0900", "2025-03-10T09:00:00-04:00"},
		},
	}, {
		name: "new york fall back", loc: newYork, from: time.Date(2025, 11, 1, 0, 0, 0, 0, newYork),
		ticks: []tick{
			{"at0130", "2025-11-01T01:30:00-04:00"}, {"at0230", "2025-11-01T02:30:00-04:00"}, {"at0900", "2025-11-01T09:00:00-04:00"},
			{"at0130", "2025-11-02T01:30:00-04:00"}, {"at0230", "2025-11-02T02:30:00-05:00"}, {"at0900", "2025-11-02T09:00:00-05:00"},
			{"at0130", "2025-11-03T01:30:00-05:00"}, {"at0230", "2025-11-03T02:30:00-05:00"}, {"at0900", "2025-11-03T09:00:00-05:00"},
		},
	}, {
		// Brazil dropped DST in 2019: the first Sunday of November (its old start) is plain.
		name: "sao paulo, no DST", loc: saoPaulo, from: time.Date(2025, 11, 1, 0, 0, 0, 0, saoPaulo),
		ticks: []tick{
			{"at0130", "2025-11-01T01:30:00-03:00"}, {"at0230", "2025-11-01T02:30:00-03:00"}, {"at0900", "2025-11-01T09:00:00-03:00"},
			{"at0130", "2025-11-02T01:30:00-03:00"}, {"at0230", "2025-11-02T02:30:00-03:00"}, {"at0900", "2025-11-02T09:00:00-03:00"},
			{"at0130", "2025-11-03T01:30:00-03:00"}, {"at0230", "2025-11-03T02:30:00-03:00"}, {"at0900", "2025-11-03T09:00:00-03:00"},
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := clockwork.NewFakeClockAt(tc.from)
			st := memstore.New()
			var c1, c2, c3 atomic.Int64
			jobs := []billing.Job{countingJob("at0130", "30 1 * * *", &c1), countingJob("at0230", "30 2 * * *", &c2), countingJob("at0900", "0 9 * * *", &c3)}
			s := newScheduler(t, jobs, st, scheduler.Config{Clock: clock, Location: tc.loc})
			start(t, s)
			for i, tk := range tc.ticks {
				// The job's next_run is this tick: nothing fires between the previous one and it.
				info, err := s.Get(ctx, tk.job)
				if err != nil {
					t.Fatal(err)
				}
				if got := info.NextRun.Format(time.RFC3339); got != tk.at {
					t.Fatalf("tick %d: %s next_run = %s, want %s", i, tk.job, got, tk.at)
				}
				at, _ := time.Parse(time.RFC3339, tk.at)
				advanceTo(clock, at)
				if r := waitTick(t, st, tk.job, at, 1)[0]; r.Status != billing.RunStatusSucceeded {
					t.Fatalf("tick %d: %+v", i, r)
				}
			}
			shutdown(t, s)
			if c1.Load() != 3 || c2.Load() != 3 || c3.Load() != 3 {
				t.Fatalf("runs over three days: 01:30=%d 02:30=%d 09:00=%d, want 3 each", c1.Load(), c2.Load(), c3.Load())
			}
		})
	}
}

func TestRunTimeoutCancelsTheJob(t *testing.T) {
	defer noLeaks(t)
	job := billing.Job{ID: "hangs", Schedule: "0 9 * * *", Run: func(ctx context.Context) (billing.Result, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	s := newScheduler(t, []billing.Job{job}, memstore.New(), scheduler.Config{Clock: clockwork.NewFakeClock(), RunTimeout: 20 * time.Millisecond})
	run, err := s.Trigger(context.Background(), "hangs")
	if err != nil || run.Status != billing.RunStatusFailed || !strings.Contains(run.Error, "deadline exceeded") {
		t.Fatalf("run = %+v, %v", run, err)
	}
	shutdown(t, s)
}

func TestTicksMissedWhilePausedAreNotCaughtUp(t *testing.T) {
	defer noLeaks(t)
	ctx := context.Background()
	at := func(d, h, m int) time.Time { return time.Date(2025, 10, d, h, m, 0, 0, time.UTC) }
	clock := clockwork.NewFakeClockAt(at(1, 8, 0))
	st := memstore.New()
	var calls atomic.Int64
	jobs := []billing.Job{countingJob("daily", "0 9 * * *", &calls)}
	s1 := newScheduler(t, jobs, st, scheduler.Config{Clock: clock})
	start(t, s1)
	advanceTo(clock, at(1, 9, 0))
	waitTick(t, st, "daily", at(1, 9, 0), 1)
	if err := s1.Pause(ctx, "daily"); err != nil {
		t.Fatal(err)
	}
	advanceTo(clock, at(2, 9, 0))
	waitTick(t, st, "daily", at(2, 9, 0), 1) // skipped: paused
	advanceTo(clock, at(2, 10, 0))
	if err := s1.Resume(ctx, "daily"); err != nil {
		t.Fatal(err)
	}
	shutdown(t, s1)
	s2 := newScheduler(t, jobs, st, scheduler.Config{Clock: clock})
	start(t, s2)
	shutdown(t, s2)
	if calls.Load() != 1 {
		t.Fatalf("calls = %d: the tick skipped while paused was caught up", calls.Load())
	}
}
