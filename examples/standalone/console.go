package main

import (
	"context"
	"sync"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/scheduler/dashboard"
)

// snapshotter stores the day's subscription snapshot (billing.Service.TakeSnapshot) for the
// dashboard's charts: at start and after any job run on a day that has none yet, so one
// small document is written per day while the scheduler runs.
type snapshotter struct {
	svc *billing.Service
	mu  sync.Mutex
	day time.Time
}

func (s *snapshotter) due(ctx context.Context, now time.Time) {
	day := billing.SnapshotDay(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.day.Equal(day) {
		return
	}
	if _, err := s.svc.TakeSnapshot(ctx); err == nil {
		s.day = day
	}
}

// withSnapshots makes every job's run end by taking the day's snapshot when it is due.
func (a *app) withSnapshots(jobs []billing.Job, snap *snapshotter) []billing.Job {
	out := make([]billing.Job, len(jobs))
	for i, j := range jobs {
		run := j.Run
		if run != nil {
			j.Run = func(ctx context.Context) (billing.Result, error) {
				res, err := run(ctx)
				snap.due(context.WithoutCancel(ctx), time.Now())
				return res, err
			}
		}
		out[i] = j
	}
	return out
}

// emailView renders the email a notification record sent, for the dashboard's timeline
// and email log.
func (a *app) emailView(ctx context.Context, key string) (dashboard.EmailMessage, error) {
	n, err := a.svc.SentNotification(ctx, key)
	if err != nil {
		return dashboard.EmailMessage{}, err
	}
	m, err := a.renderer.RenderNotification(n)
	if err != nil {
		return dashboard.EmailMessage{}, err
	}
	return dashboard.EmailMessage{Subject: m.Subject, HTML: m.HTML, Text: m.Text}, nil
}
