package scheduler

// The deprecated functional options, tested inside the package: they fill a Config for
// NewScheduler, and still reject their own bad arguments as before.

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/memstore"
)

func optionsTestJobs() []billing.Job {
	run := func(context.Context) (billing.Result, error) { return nil, nil }
	return []billing.Job{{ID: "a", Schedule: "0 9 * * *", Run: run}, {ID: "b", Schedule: "0 10 * * *", Run: run}}
}

func TestDeprecatedOptionsReportTheirOwnProblems(t *testing.T) {
	rec := testkit.NewNotifier()
	_, err := New(optionsTestJobs(), memstore.New(),
		nil,
		WithLocation(nil),
		WithSchedule("", "* * * * *"),
		WithDisabled(""),
		WithClock(nil),
		WithLogger(nil),
		WithSubscriptionStats(nil),
		WithLocker(nil),
		WithLockTTL(0),
		WithReplicaID(""),
		WithHistoryRetention(0),
		WithRunTimeout(0),
		WithAlertChannel("", nil),
		WithAlertChannel("webhook", rec), WithAlertChannel("webhook", rec),
	)
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v, want ErrInvalidConfig", err)
	}
	for _, want := range []string{
		"nil Option", "WithLocation: nil location", "WithSchedule: empty job id", "WithDisabled: empty job id",
		"WithClock: nil clock", "WithLogger: nil logger", "WithSubscriptionStats: nil func", "WithLocker: nil locker",
		"WithLockTTL: 0s is too short", "WithReplicaID: empty id", "WithHistoryRetention: 0 days",
		"WithRunTimeout: 0s is not positive", `WithAlertChannel(""): empty name`, `WithAlertChannel(""): nil notifier`,
		`WithAlertChannel("webhook"): name used twice`, "WithAlertChannel needs WithAlerts",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}

	_, err = New(optionsTestJobs(), memstore.New(),
		WithAlerts(nil, billing.Recipient{}, AlertPolicy{ConsecutiveFailures: -1, PartialFailures: -2, RenewalFailures: -2}),
		WithAlertChannel("webhook", rec))
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v, want ErrInvalidConfig", err)
	}
	for _, want := range []string{"WithAlerts: nil notifier", "WithAlerts: recipient has no email",
		"WithAlerts: ConsecutiveFailures -1", "WithAlerts: PartialFailures -2", "WithAlerts: RenewalFailures -2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "needs WithAlerts") {
		t.Errorf("a bad WithAlerts is still WithAlerts:\n%v", err)
	}
	// Problems only the Config can see are reported with the options' own.
	_, err = New(optionsTestJobs(), nil, WithSchedule("ghost", "0 9 * * *"), WithClock(nil))
	for _, want := range []string{"missing store", `Config.Schedules["ghost"]: no such job`, "WithClock: nil clock"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestDeprecatedOptionsFillTheConfig(t *testing.T) {
	sp, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		t.Fatal(err)
	}
	clock := clockwork.NewFakeClock()
	logger := slog.New(slog.DiscardHandler)
	st := memstore.New()
	locker := testLocker{st}
	email, hook := testkit.NewNotifier(), testkit.NewNotifier()
	ops := billing.Recipient{Email: "ops@example.com"}
	statsCalled := false
	s, err := New(optionsTestJobs(), st,
		WithLocation(sp), WithSchedule("a", "*/5 * * * *"), WithDisabled("b"), WithClock(clock), WithLogger(logger),
		WithSubscriptionStats(func(context.Context) (billing.SubscriptionStats, error) {
			statsCalled = true
			return billing.SubscriptionStats{}, nil
		}),
		WithLocker(locker), WithLockTTL(2*time.Minute), WithReplicaID("r1"), WithHistoryRetention(7),
		WithRunTimeout(time.Minute),
		WithAlertChannel("webhook", hook), // before WithAlerts: the order does not matter
		WithAlerts(email, ops, AlertPolicy{PartialFailures: -1}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Shutdown(context.Background()) }()
	c := s.cfg
	if c.Location != sp || c.Clock != clock || c.Logger != logger || c.Locker != locker || c.LockTTL != 2*time.Minute ||
		c.ReplicaID != "r1" || c.HistoryRetentionDays != 7 || c.RunTimeout != time.Minute {
		t.Errorf("cfg = %+v", c)
	}
	if c.Schedules["a"] != "*/5 * * * *" || len(c.Disabled) != 1 || c.Disabled[0] != "b" || !s.byID["b"].disabled {
		t.Errorf("Schedules = %v, Disabled = %v", c.Schedules, c.Disabled)
	}
	if _, err := c.SubscriptionStats(context.Background()); err != nil || !statsCalled {
		t.Errorf("SubscriptionStats not the given func: called %v, %v", statsCalled, err)
	}
	a := c.Alerts
	if a == nil || a.Notifier != email || a.To != ops || len(a.Channels) != 1 || a.Channels[0].Name != "webhook" || a.Channels[0].Notifier != hook {
		t.Fatalf("Alerts = %+v", a)
	}
	if want := (AlertPolicy{ConsecutiveFailures: 3, PartialFailures: -1, RenewalFailures: 5}); a.Policy != want {
		t.Errorf("Policy = %+v, want the defaults filled in: %+v", a.Policy, want)
	}
}

// testLocker is a distinct Locker value to tell WithLocker's from the store's.
type testLocker struct{ billing.Locker }
