package scheduler_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/scheduler"
	"github.com/renewkit/renewkit/store/memstore"
)

var _ billing.LockInspector = (*memstore.Store)(nil)

// slowStateStore widens the window between a replica's read of a job state and its write,
// so read-modify-writes of two replicas interleave often.
type slowStateStore struct {
	*memstore.Store
}

func (s slowStateStore) GetJobState(ctx context.Context, id string) (billing.JobState, error) {
	st, err := s.Store.GetJobState(ctx, id)
	time.Sleep(time.Duration(rand.N(300)) * time.Microsecond)
	return st, err
}

func failingJob(id string) billing.Job {
	return billing.Job{ID: id, Schedule: "0 0 1 1 *", Run: func(context.Context) (billing.Result, error) {
		return nil, errors.New("gateway down")
	}}
}

// Two replicas sharing one store: a Pause on one races the failure-streak update of a run
// finishing on the other, many times, in both directions. Neither change is ever lost, and
// the consecutive-failure alert goes out once.
func TestPauseRacingRunCompletionOnAnotherReplica(t *testing.T) {
	defer noLeaks(t)
	ctx := context.Background()
	mem := memstore.New()
	st := slowStateStore{mem}
	rec := testkit.NewNotifier()
	alerts := &scheduler.Alerts{Notifier: rec, To: billing.Recipient{Email: "ops@example.com"}, Policy: scheduler.AlertPolicy{ConsecutiveFailures: 1}}
	a := newScheduler(t, []billing.Job{failingJob("renew")}, st, scheduler.Config{ReplicaID: "a", Alerts: alerts})
	b := newScheduler(t, []billing.Job{failingJob("renew")}, st, scheduler.Config{ReplicaID: "b", Alerts: alerts})
	defer shutdown(t, a)
	defer shutdown(t, b)

	const rounds = 150
	for i := range rounds {
		runner, pauser := a, b
		if i%2 == 1 {
			runner, pauser = b, a
		}
		var wg sync.WaitGroup
		var runErr, pauseErr error
		var run billing.JobRun
		wg.Go(func() { run, runErr = runner.Trigger(ctx, "renew") })
		wg.Go(func() { pauseErr = pauser.Pause(ctx, "renew") })
		wg.Wait()
		if runErr != nil || pauseErr != nil {
			t.Fatalf("round %d: Trigger: %v, Pause: %v", i, runErr, pauseErr)
		}
		if run.Status != billing.RunStatusFailed {
			t.Fatalf("round %d: run %+v, want failed", i, run)
		}
		js, err := mem.GetJobState(ctx, "renew")
		if err != nil {
			t.Fatal(err)
		}
		if !js.Paused || js.ConsecutiveFailures != i+1 {
			t.Fatalf("round %d: state %+v: want paused with %d consecutive failures (a change was lost)", i, js, i+1)
		}
		if err := runner.Resume(ctx, "renew"); err != nil {
			t.Fatalf("round %d: Resume: %v", i, err)
		}
	}
	js, err := mem.GetJobState(ctx, "renew")
	if err != nil {
		t.Fatal(err)
	}
	if js.Paused || js.ConsecutiveFailures != rounds || len(js.Alerts) != 1 {
		t.Fatalf("final state %+v: want resumed, %d failures, one alert raised", js, rounds)
	}
	if n := len(rec.Sent()); n != 1 {
		t.Fatalf("%d consecutive-failure alerts sent, want 1", n)
	}
}

// A replica crashed mid-run: its record stays "running" and its lease lapses. While the
// lease is live the job is running; once it lapsed Get no longer says so, and the next run
// (which takes the lock) marks the record failed with the time it was found.
func TestAbandonedRunMarkedFailedByNextRun(t *testing.T) {
	defer noLeaks(t)
	ctx := context.Background()
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := clockwork.NewFakeClockAt(t0)
	st := memstore.New()
	crashed := billing.JobRun{ID: "crashed", JobID: "renew", Trigger: billing.RunTriggerSchedule, Status: billing.RunStatusRunning,
		StartedAt: t0.Add(-30 * time.Second), Replica: "dead-1", ScheduledFor: t0.Add(-30 * time.Second)}
	if err := st.InsertJobRun(ctx, &crashed); err != nil {
		t.Fatal(err)
	}
	// The dead replica's lease: taken when its run started, never renewed.
	if _, err := st.AcquireLock(ctx, "job:renew", "dead-1", crashed.StartedAt, time.Minute); err != nil {
		t.Fatal(err)
	}
	s := newScheduler(t, []billing.Job{failingJob("renew")}, st, scheduler.Config{Clock: clock, ReplicaID: "r1"})
	defer shutdown(t, s)

	info, err := s.Get(ctx, "renew")
	if err != nil {
		t.Fatal(err)
	}
	if !info.Running || info.LastStatus != billing.RunStatusRunning {
		t.Fatalf("while the lease is live: %+v, want running", info)
	}
	if _, err := s.Trigger(ctx, "renew"); !errors.Is(err, scheduler.ErrJobRunning) {
		t.Fatalf("Trigger while the lease is live = %v, want ErrJobRunning", err)
	}

	clock.Advance(time.Minute) // the lease ended at t0+30s
	info, err = s.Get(ctx, "renew")
	if err != nil {
		t.Fatal(err)
	}
	if info.Running || info.LastStatus != billing.RunStatusFailed {
		t.Fatalf("after the lease lapsed: running=%v last_status=%s, want not running, failed", info.Running, info.LastStatus)
	}

	run, err := s.Trigger(ctx, "renew")
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.History(ctx, "renew", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].ID != run.ID || h[1].ID != "crashed" {
		t.Fatalf("history = %+v, want the new run then the crashed one", h)
	}
	got := h[1]
	now := t0.Add(time.Minute)
	if got.Status != billing.RunStatusFailed || !got.FinishedAt.Equal(now) || got.DurationMS != (90*time.Second).Milliseconds() ||
		got.Error != "abandoned: replica dead-1 stopped before the run finished" || got.Replica != "dead-1" {
		t.Fatalf("abandoned record = %+v", got)
	}
	// The abandoned run counts as a failure, in the streak and in the stats.
	js, err := st.GetJobState(ctx, "renew")
	if err != nil {
		t.Fatal(err)
	}
	if js.ConsecutiveFailures != 2 {
		t.Fatalf("consecutive failures = %d, want 2 (abandoned + failed)", js.ConsecutiveFailures)
	}
	stats, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if j := stats.Jobs[0]; j.Runs != 2 || j.Failures != 2 {
		t.Fatalf("stats = %+v, want 2 runs, 2 failures", j)
	}
	if info, _ := s.Get(ctx, "renew"); info.Running {
		t.Fatalf("after the next run: %+v, want not running", info)
	}
	// A record of a run that finished meanwhile is left alone by later runs.
	if _, err := s.Trigger(ctx, "renew"); err != nil {
		t.Fatal(err)
	}
	h, _ = s.History(ctx, "renew", 10)
	for _, r := range h {
		if r.ID != "crashed" && strings.HasPrefix(r.Error, "abandoned") {
			t.Fatalf("a finished run was marked abandoned: %+v", r)
		}
	}
}
