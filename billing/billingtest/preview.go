package billingtest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

// previewChangesNothing proves each job's dry run lists what the job would do and then
// the job does exactly that: the preview counts equal the run's, and nothing was claimed,
// sent or written by the preview.
func (s *suite) previewChangesNothing(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	auto := testkit.AutoRenewing(testkit.Subscription("auto", "u3", "basic", now.Add(10*time.Hour)), "demo")
	e := s.env(ctx, t, billing.Config{WarningDays: []int{7, 3, 1}}, testkit.Plan("basic", billing.CycleMonthly, 2990),
		testkit.User("u1"), testkit.User("u2"), testkit.User("u3"),
		testkit.Subscription("soon", "u1", "basic", now.Add(2*day)),
		testkit.Subscription("late", "u2", "basic", now.Add(-day)),
		auto,
		testkit.Session("old", "u1", now.Add(-40*day)),
		testkit.Payment("stale", "u1", "basic", 2990, now.Add(-8*day)))
	want := map[string]int{billing.JobCheckExpiring: 2, billing.JobProcessExpired: 1, billing.JobRenew: 1,
		billing.JobCleanupSessions: 1, billing.JobCleanupPayments: 1}
	before := e.notif.Attempts()
	for _, job := range e.svc.Jobs() {
		p, err := e.svc.Preview(ctx, job.ID)
		must(t, err, "Preview "+job.ID)
		if p.Total != want[job.ID] {
			t.Errorf("%s preview total %d, want %d: %+v", job.ID, p.Total, want[job.ID], p)
		}
		viaJob, err := job.Preview(ctx)
		must(t, err, "Job.Preview "+job.ID)
		if got := viaJob.(billing.Preview); got.Total != p.Total || !reflect.DeepEqual(got.Items, p.Items) {
			t.Errorf("%s: Job.Preview %+v differs from Service.Preview %+v", job.ID, got, p)
		}
	}
	if e.notif.Attempts() != before || e.sub("soon").ExpirationWarningSent || e.sub("late").Status != billing.SubscriptionStatusActive {
		t.Fatal("a preview changed state or sent a notification")
	}
	// The jobs then find exactly what the previews announced.
	warned, err := e.svc.CheckExpiringSubscriptions(ctx)
	must(t, err, "CheckExpiringSubscriptions")
	expired, err := e.svc.ProcessExpiredSubscriptions(ctx)
	must(t, err, "ProcessExpiredSubscriptions")
	if warned.TotalFound != want[billing.JobCheckExpiring] || expired.TotalFound != want[billing.JobProcessExpired] {
		t.Fatalf("jobs found %d and %d, previews said %d and %d", warned.TotalFound, expired.TotalFound,
			want[billing.JobCheckExpiring], want[billing.JobProcessExpired])
	}
	if _, err := e.svc.Preview(ctx, "nope"); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("unknown job: %v, want ErrNotFound", err)
	}
}
