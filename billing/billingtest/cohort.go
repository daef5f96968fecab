package billingtest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

// scanStore counts the records each claim of one cohort (ids, sorted, all ending at end)
// makes the store pass over in claim order: those inside the claim's window and past its
// position, up to the last one it returned when the claim came back full (a store stops
// at its limit), every one of them otherwise. Records the claim filters out (held by the
// run, already warned) are passed over all the same: that is the cost it counts.
type scanStore struct {
	billing.Store
	end time.Time
	ids []string

	mu      sync.Mutex
	scanned int
}

func (s *scanStore) ClaimSubscriptions(ctx context.Context, p billing.ClaimParams) ([]billing.Subscription, error) {
	subs, err := s.Store.ClaimSubscriptions(ctx, p)
	if p.Pending {
		return subs, err
	}
	lo, hi := 0, len(s.ids)
	if !p.Filter.PeriodEndAfter.IsZero() && !s.end.After(p.Filter.PeriodEndAfter) {
		lo = hi
	}
	if p.After.ID != "" {
		switch c := s.end.Compare(p.After.PeriodEnd); {
		case c < 0:
			lo = hi
		case c == 0:
			lo = max(lo, sort.Search(len(s.ids), func(i int) bool { return s.ids[i] > p.After.ID }))
		}
	}
	if len(subs) == p.Limit {
		last := ""
		for _, x := range subs {
			last = max(last, x.ID)
		}
		hi, _ = slices.BinarySearch(s.ids, last)
		hi++
	}
	s.mu.Lock()
	s.scanned += max(hi-lo, 0)
	s.mu.Unlock()
	return subs, err
}

// cohortWarnedOnce: a monthly cohort, three batches and a bit sharing one period end, is
// warned once each, and the run's claims pass over each record about once: a claim starts
// after the last record the run claimed, not at the shared end, so it does not read again
// the records already handled (which made a job quadratic in the cohort's size).
func (s *suite) cohortWarnedOnce(ctx context.Context, t *testing.T) {
	const batch = 10
	n := 3*batch + 2
	end := testkit.Epoch.Add(2 * day)
	records := []any{basic}
	ids := make([]string, n)
	for i := n - 1; i >= 0; i-- { // inserted in reverse ID order
		ids[i] = fmt.Sprintf("%024x", i+1)
		uid := fmt.Sprintf("u%03d", i)
		records = append(records, testkit.User(uid), testkit.Subscription(ids[i], uid, "basic", end))
	}
	e := s.env(ctx, t, billing.Config{}, records...)
	counted := &scanStore{Store: e.st, end: end, ids: ids}
	res, err := e.service(counted, billing.Config{BatchSize: batch}).CheckExpiringSubscriptions(ctx)
	must(t, err, "CheckExpiringSubscriptions")
	if res.TotalFound != n || res.NotificationsSent != n {
		t.Fatalf("run = %+v, want %d found and sent", res, n)
	}
	for _, id := range ids {
		e.wantKinds(id, billing.NotificationKindExpiring)
	}
	if counted.scanned > n+batch {
		t.Fatalf("the claims passed over %d records of a %d-record cohort in batches of %d, want at most %d: each claim re-read the records handled before it",
			counted.scanned, n, batch, n+batch)
	}
}
