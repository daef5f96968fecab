package scheduler_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/scheduler"
	"go.uber.org/goleak"
)

func mustLoc(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

var (
	saoPaulo = mustLoc("America/Sao_Paulo")
	newYork  = mustLoc("America/New_York")
)

// testResult is a billing.Result shaped like the billing jobs' results.
type testResult struct {
	Success    bool `json:"success"`
	TotalFound int  `json:"total_found"`
	Renewed    int  `json:"renewed"`
	Failed     int  `json:"failed"`
}

func (r testResult) Found() int    { return r.TotalFound }
func (r testResult) Failures() int { return r.Failed }

// countingJob returns a job that counts its runs and reports a small result.
func countingJob(id, spec string, calls *atomic.Int64) billing.Job {
	return billing.Job{ID: id, Name: id, Schedule: spec, Run: func(context.Context) (billing.Result, error) {
		n := calls.Add(1)
		return testResult{Success: true, TotalFound: int(n)}, nil
	}}
}

// eventually polls cond (1ms apart, 10s at most): gocron hands ticks to goroutines, so
// tests wait for the store to show their effect.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func listRuns(t *testing.T, st billing.JobRunStore, jobID string) []billing.JobRun {
	t.Helper()
	runs, err := st.ListJobRuns(context.Background(), billing.JobRunFilter{JobID: jobID})
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

// executed returns the runs that were not skipped, oldest first.
func executed(t *testing.T, st billing.JobRunStore, jobID string) []billing.JobRun {
	t.Helper()
	var out []billing.JobRun
	runs := listRuns(t, st, jobID)
	for i := len(runs) - 1; i >= 0; i-- {
		if runs[i].Status != billing.RunStatusSkipped {
			out = append(out, runs[i])
		}
	}
	return out
}

// tickRecords returns the finished records (run or skip) of jobID for tick.
func tickRecords(t *testing.T, st billing.JobRunStore, jobID string, tick time.Time) []billing.JobRun {
	t.Helper()
	var out []billing.JobRun
	for _, r := range listRuns(t, st, jobID) {
		if r.ScheduledFor.Equal(tick) && r.Status != billing.RunStatusRunning {
			out = append(out, r)
		}
	}
	return out
}

// waitTick waits until jobID has n finished records for tick.
func waitTick(t *testing.T, st billing.JobRunStore, jobID string, tick time.Time, n int) []billing.JobRun {
	t.Helper()
	var recs []billing.JobRun
	eventually(t, jobID+" records at "+tick.String(), func() bool {
		recs = tickRecords(t, st, jobID, tick)
		return len(recs) >= n
	})
	return recs
}

func advanceTo(c *clockwork.FakeClock, at time.Time) {
	if d := at.Sub(c.Now()); d > 0 {
		c.Advance(d)
	}
}

// newScheduler builds a Scheduler from cfg, with a logger that discards unless cfg has one.
func newScheduler(t *testing.T, jobs []billing.Job, st scheduler.Store, cfg scheduler.Config) *scheduler.Scheduler {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := scheduler.NewScheduler(jobs, st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func start(t *testing.T, s *scheduler.Scheduler) {
	t.Helper()
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func shutdown(t *testing.T, s *scheduler.Scheduler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// noLeaks checks, after the test's schedulers are shut down, that no goroutine is left.
func noLeaks(t *testing.T) {
	t.Helper()
	goleak.VerifyNone(t)
}
