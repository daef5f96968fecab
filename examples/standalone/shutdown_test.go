package main

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/scheduler"
)

type blockResult struct {
	Released bool `json:"released"`
}

func (blockResult) Found() int    { return 1 }
func (blockResult) Failures() int { return 0 }

// blockingJob runs until release is closed or its context ends; it reports start and the
// cause of a cancellation.
type blockingJob struct {
	started, release, cancelled chan struct{}
	cause                       error
}

func newBlockingJob() *blockingJob {
	return &blockingJob{started: make(chan struct{}), release: make(chan struct{}), cancelled: make(chan struct{})}
}

func (b *blockingJob) job() billing.Job {
	return billing.Job{ID: "block", Name: "Blocking job", Schedule: "0 0 1 1 *",
		Run: func(ctx context.Context) (billing.Result, error) {
			close(b.started)
			select {
			case <-b.release:
				return blockResult{Released: true}, nil
			case <-ctx.Done():
				b.cause = context.Cause(ctx)
				close(b.cancelled)
				return blockResult{}, ctx.Err()
			}
		}}
}

// triggerAsync starts the blocking job through the admin API (?async=true) and waits until
// it runs.
func triggerAsync(t *testing.T, s *server, b *blockingJob) string {
	t.Helper()
	code, body := s.do(http.MethodPost, "/api/admin/jobs/block/trigger?async=true", nil, true)
	if code != http.StatusAccepted {
		t.Fatalf("async trigger: %d %s", code, body)
	}
	select {
	case <-b.started:
	case <-time.After(10 * time.Second):
		t.Fatal("job did not start")
	}
	return decode[map[string]string](t, body)["run_id"]
}

func refused(base string) func() bool {
	return func() bool {
		resp, err := (&http.Client{Timeout: time.Second}).Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err != nil
	}
}

// Proves graceful shutdown waits for a running job: after the signal the server stops
// accepting connections but serve does not return while the job runs; once the job
// finishes serve exits 0 and the run record is completed as succeeded.
func TestShutdownWaitsForRunningJob(t *testing.T) {
	b := newBlockingJob()
	s := startServer(t, nil, func(c *Config) {
		c.grace = 20 * time.Second
		c.extraJobs = []billing.Job{b.job()}
	})
	runID := triggerAsync(t, s, b)

	s.cancel()
	eventually(t, 5*time.Second, "listener closed", refused(s.base))
	select {
	case code := <-s.done:
		s.done <- code
		t.Fatalf("serve returned %d while the job was still running", code)
	case <-time.After(200 * time.Millisecond):
	}
	close(b.release)
	if code := s.stop(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0\n%s", code, s.stderr.String())
	}
	select {
	case <-b.cancelled:
		t.Fatal("the job's context was cancelled although it finished within the grace")
	default:
	}
	runs, err := s.app.sched.History(context.Background(), "block", 5)
	if err != nil || len(runs) != 1 {
		t.Fatalf("history %v, %v", runs, err)
	}
	r := runs[0]
	if r.ID != runID || r.Status != billing.RunStatusSucceeded || r.FinishedAt.IsZero() || r.Result["released"] != true {
		t.Fatalf("run record %+v, want %s succeeded with released=true", r, runID)
	}
}

// Proves a job that outlives the shutdown grace is cancelled (its context's cause is
// scheduler.ErrClosed), serve exits 1 at the end of the grace instead of hanging, and the
// run is still recorded, as failed.
func TestShutdownCancelsJobPastGrace(t *testing.T) {
	b := newBlockingJob()
	const grace = 500 * time.Millisecond
	s := startServer(t, nil, func(c *Config) {
		c.grace = grace
		c.extraJobs = []billing.Job{b.job()}
	})
	defer close(b.release)
	runID := triggerAsync(t, s, b)

	start := time.Now()
	code := s.stop(grace + 10*time.Second)
	if code != 1 {
		t.Fatalf("exit code %d, want 1\n%s", code, s.stderr.String())
	}
	if took := time.Since(start); took < grace {
		t.Errorf("serve returned after %s, before the %s grace", took, grace)
	}
	select {
	case <-b.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the job's context was not cancelled")
	}
	if !errors.Is(b.cause, scheduler.ErrClosed) {
		t.Errorf("cancellation cause %v, want scheduler.ErrClosed", b.cause)
	}
	var r billing.JobRun
	eventually(t, 5*time.Second, "the run recorded as failed", func() bool {
		runs, err := s.app.sched.History(context.Background(), "block", 1)
		if err != nil || len(runs) == 0 {
			return false
		}
		r = runs[0]
		return r.Status == billing.RunStatusFailed
	})
	if r.ID != runID || r.FinishedAt.IsZero() || r.Error == "" {
		t.Fatalf("run record %+v", r)
	}
}
