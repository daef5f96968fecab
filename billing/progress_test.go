package billing_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/memstore"
)

// TestProgressReportsEveryBatch runs the warning job over 25 due subscriptions in batches
// of 10 and checks the reports: claimed grows batch by batch, done never passes claimed,
// and the last report has every record claimed and done against an estimate of 25.
func TestProgressReportsEveryBatch(t *testing.T) {
	st := memstore.New()
	now := testkit.Epoch
	records := []any{testkit.Plan("p", billing.CycleMonthly, 1000)}
	for i := range 25 {
		uid, sid := fmt.Sprintf("u%02d", i), fmt.Sprintf("s%02d", i)
		records = append(records, testkit.UserWithAccess(uid, "p", sid, now.Add(2*day)), testkit.Subscription(sid, uid, "p", now.Add(2*day)))
	}
	testkit.Seed(t, st, records...)
	svc, err := billing.NewService(st, testkit.NewNotifier(), billing.Config{Clock: testkit.NewClock(now), BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reports []billing.Progress
	ctx := billing.WithProgress(context.Background(), func(p billing.Progress) {
		mu.Lock()
		reports = append(reports, p)
		mu.Unlock()
	})
	res, err := svc.CheckExpiringSubscriptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Found() != 25 {
		t.Fatalf("found %d, want 25", res.Found())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) < 4 {
		t.Fatalf("got %d reports, want one estimate and one per claimed and finished batch: %+v", len(reports), reports)
	}
	prevClaimed := 0
	for i, p := range reports {
		if p.Done > p.Claimed || p.Claimed < prevClaimed || p.TotalEstimate != 25 {
			t.Fatalf("report %d is inconsistent: %+v (previous claimed %d)", i, p, prevClaimed)
		}
		prevClaimed = p.Claimed
	}
	if last := reports[len(reports)-1]; last.Claimed != 25 || last.Done != 25 || last.Failed != 0 {
		t.Fatalf("last report %+v, want 25 claimed and done, none failed", last)
	}
	// Without a progress function nothing is reported and the run is the same.
	if _, err := svc.CheckExpiringSubscriptions(context.Background()); err != nil {
		t.Fatal(err)
	}
}
