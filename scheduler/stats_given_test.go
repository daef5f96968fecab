package scheduler_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/scheduler"
	"github.com/renewkit/renewkit/store/memstore"
)

// TestStatsServesGivenSubscriptionStats: with Config.SubscriptionStats the scheduler serves the
// counts it is given (billing computes them from its Config), and reports their error.
func TestStatsServesGivenSubscriptionStats(t *testing.T) {
	defer noLeaks(t)
	store := memstore.New()
	svc, err := billing.NewService(store, billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }), billing.Config{})
	if err != nil {
		t.Fatal(err)
	}
	given := billing.SubscriptionStats{Total: 42, ByStatus: map[billing.SubscriptionStatus]int{billing.SubscriptionStatusActive: 42},
		Due: billing.DueCounts{Expiring: 7, WarningWindowDays: 7, RenewWindowHours: 48}}
	var fail error
	s, err := scheduler.NewScheduler(svc.Jobs(), store, scheduler.Config{
		Logger:            slog.New(slog.DiscardHandler),
		SubscriptionStats: func(context.Context) (billing.SubscriptionStats, error) { return given, fail },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t, s)
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Subscriptions == nil || st.Subscriptions.Total != 42 || st.Subscriptions.Due != given.Due {
		t.Errorf("Stats().Subscriptions = %+v, want %+v", st.Subscriptions, given)
	}
	fail = errors.New("counting failed")
	if _, err := s.Stats(context.Background()); !errors.Is(err, fail) {
		t.Errorf("Stats() error = %v, want %v", err, fail)
	}
}
