package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jonboulle/clockwork"
	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/scheduler"
	"github.com/renewkit/renewkit/store/memstore"
)

// errSMTPDown is what a notifier returns while its channel is down.
var errSMTPDown = errors.New("smtp: 421 service not available")

// setDown takes n's channel down (every delivery fails with errSMTPDown, recording nothing)
// or brings it back.
func setDown(n *testkit.Notifier, down bool) {
	if down {
		n.FailWith(errSMTPDown)
	} else {
		n.Heal()
	}
}

// condition returns the alert condition a NotificationKindOperatorAlert key names
// (operator_alert:<job>:<condition>:<run>).
func condition(n billing.Notification) string {
	parts := strings.Split(n.Key, ":")
	if len(parts) != 4 {
		return n.Key
	}
	return parts[2]
}

func conditions(ns []billing.Notification) []string {
	out := make([]string, 0, len(ns))
	for _, n := range ns {
		out = append(out, condition(n))
	}
	return out
}

// Proves a run stopped by billing's circuit breaker (its error wraps
// billing.ErrNotifierUnavailable) raises notifier_unavailable at its first failure, on every
// alert channel but the email notifier the jobs send through, once per episode; a run that
// does not trip clears it, even one failing for another reason; and alerts raised by a
// tripped run (consecutive failures too) keep skipping the email channel.
func TestNotifierUnavailableAlertSkipsEmail(t *testing.T) {
	defer noLeaks(t)
	ctx := context.Background()
	st := memstore.New()
	var mode atomic.Value
	mode.Store("trip")
	job := billing.Job{ID: billing.JobCheckExpiring, Schedule: "0 9 * * *", Run: func(context.Context) (billing.Result, error) {
		switch mode.Load() {
		case "trip":
			err := fmt.Errorf("%w: 5 consecutive transient failures, the last: smtp 421", billing.ErrNotifierUnavailable)
			return testResult{Success: false, TotalFound: 40, Failed: 35}, fmt.Errorf("sending warnings: %w", err)
		case "store":
			return nil, errors.New("store down")
		}
		return testResult{Success: true, TotalFound: 40}, nil
	}}
	email, webhook, chat := testkit.NewNotifier(), testkit.NewNotifier(), testkit.NewNotifier()
	setDown(email, true)
	ops := billing.Recipient{Email: "ops@example.com"}
	s := newScheduler(t, []billing.Job{job}, st, scheduler.Config{Clock: clockwork.NewFakeClock(),
		Alerts: &scheduler.Alerts{Notifier: email, To: ops, Policy: scheduler.AlertPolicy{PartialFailures: -1},
			Channels: []scheduler.AlertChannel{{Name: "webhook", Notifier: webhook}, {Name: "chat", Notifier: chat}}}})
	trigger := func(m string) billing.JobRun {
		t.Helper()
		mode.Store(m)
		r, err := s.Trigger(ctx, billing.JobCheckExpiring)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	alerts := func(step string) []string {
		t.Helper()
		state, err := st.GetJobState(ctx, billing.JobCheckExpiring)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := conditions(webhook.Sent()), conditions(chat.Sent()); !slices.Equal(got, want) {
			t.Fatalf("%s: webhook got %v, chat %v: every channel gets every alert", step, got, want)
		}
		if n := len(email.Sent()); n != 0 {
			t.Fatalf("%s: %d alerts went by email while it is down", step, n)
		}
		return state.Alerts
	}

	first := trigger("trip")
	if first.Status != billing.RunStatusFailed {
		t.Fatalf("tripped run %+v, want failed", first)
	}
	got := webhook.Sent()
	if len(got) != 1 {
		t.Fatalf("%d webhook alerts after the first trip, want 1 at once", len(got))
	}
	a := got[0]
	if a.Kind != billing.NotificationKindOperatorAlert || condition(a) != "notifier_unavailable" || a.To != ops ||
		a.Data.RunID != first.ID || a.Data.JobID != billing.JobCheckExpiring ||
		!strings.Contains(a.Data.Error, "notifier unavailable") || !strings.Contains(a.Data.Error, "smtp 421") {
		t.Fatalf("alert = %+v", a)
	}
	if st := alerts("first trip"); !slices.Equal(st, []string{"notifier_unavailable"}) {
		t.Fatalf("state alerts %v", st)
	}
	trigger("trip")
	if n := len(webhook.Sent()); n != 1 {
		t.Fatalf("%d alerts after a second trip, want still 1 (once per episode)", n)
	}
	alerts("second trip")

	// A run that does not trip ends the episode; the next trip alerts again.
	setDown(email, false)
	trigger("ok")
	if st := alerts("recovered"); len(st) != 0 {
		t.Fatalf("alerts after a good run: %v", st)
	}
	setDown(email, true)
	trigger("trip")
	if got := webhook.Sent(); len(got) != 2 || got[1].Key == got[0].Key {
		t.Fatalf("second episode: %+v", got)
	}
	// Failing for another reason clears it too, and that run's alerts may use email.
	trigger("store")
	if st := alerts("store failure"); len(st) != 0 {
		t.Fatalf("alerts after a non-breaker failure: %v", st)
	}
	// The third failure in a row is a trip: both conditions, neither by email.
	trigger("trip")
	if got := conditions(webhook.Sent()); !slices.Equal(got[2:], []string{"consecutive_failures", "notifier_unavailable"}) {
		t.Fatalf("alerts of the third failure: %v", got)
	}
	if st := alerts("third failure"); !slices.Equal(st, []string{"consecutive_failures", "notifier_unavailable"}) {
		t.Fatalf("state alerts %v", st)
	}
	shutdown(t, s)
}

// Proves alerts go through every destination concurrently and count as sent when one took
// them: a failing webhook does not stop the email, a failing email does not stop the
// webhook, and a condition nobody took is retried by the next run. Without another
// channel, notifier_unavailable still tries the only notifier there is.
func TestAlertChannelsFailIndependently(t *testing.T) {
	defer noLeaks(t)
	ctx := context.Background()
	st := memstore.New()
	var trip atomic.Bool
	job := billing.Job{ID: "j", Schedule: "0 9 * * *", Run: func(context.Context) (billing.Result, error) {
		if trip.Load() {
			return nil, billing.ErrNotifierUnavailable
		}
		return nil, errors.New("boom")
	}}
	email, webhook := testkit.NewNotifier(), testkit.NewNotifier()
	s := newScheduler(t, []billing.Job{job}, st, scheduler.Config{Clock: clockwork.NewFakeClock(),
		Alerts: &scheduler.Alerts{Notifier: email, To: billing.Recipient{Email: "ops@example.com"}, Policy: scheduler.AlertPolicy{ConsecutiveFailures: 1},
			Channels: []scheduler.AlertChannel{{Name: "webhook", Notifier: webhook}}}})
	trigger := func() {
		t.Helper()
		if _, err := s.Trigger(ctx, "j"); err != nil {
			t.Fatal(err)
		}
	}
	setDown(webhook, true)
	trigger()
	if len(email.Sent()) != 1 || len(webhook.Sent()) != 0 {
		t.Fatalf("email %d, webhook %d: want the email despite the webhook", len(email.Sent()), len(webhook.Sent()))
	}
	state, _ := st.GetJobState(ctx, "j")
	if !slices.Equal(state.Alerts, []string{"consecutive_failures"}) {
		t.Fatalf("alerts %v: one channel taking it is enough", state.Alerts)
	}
	// notifier_unavailable: the email is skipped; with the webhook down nobody takes it,
	// so it is not recorded and the next trip tries again.
	trip.Store(true)
	trigger()
	state, _ = st.GetJobState(ctx, "j")
	if slices.Contains(state.Alerts, "notifier_unavailable") || len(email.Sent()) != 1 {
		t.Fatalf("alerts %v, emails %d", state.Alerts, len(email.Sent()))
	}
	setDown(webhook, false)
	trigger()
	if got := conditions(webhook.Sent()); !slices.Equal(got, []string{"notifier_unavailable"}) {
		t.Fatalf("webhook got %v after it recovered", got)
	}
	shutdown(t, s)

	// No other channel: the alert is still tried on Alerts.Notifier.
	only := testkit.NewNotifier()
	s2 := newScheduler(t, []billing.Job{job}, memstore.New(), scheduler.Config{Clock: clockwork.NewFakeClock(),
		Alerts: &scheduler.Alerts{Notifier: only, To: billing.Recipient{Email: "ops@example.com"}}})
	if _, err := s2.Trigger(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	if got := conditions(only.Sent()); !slices.Equal(got, []string{"notifier_unavailable"}) {
		t.Fatalf("sole notifier got %v", got)
	}
	shutdown(t, s2)
}

// Proves renewal_failures: a renew_subscriptions run with AlertPolicy.RenewalFailures
// failed subscriptions or more (default 5) alerts on every channel, once per episode,
// cleared by a run below the threshold; other jobs never raise it; -1 turns it off.
func TestRenewalFailuresAlert(t *testing.T) {
	defer noLeaks(t)
	ctx := context.Background()
	st := memstore.New()
	var failed atomic.Int64
	run := func(context.Context) (billing.Result, error) {
		return testResult{Success: true, TotalFound: 10, Failed: int(failed.Load())}, nil
	}
	jobs := []billing.Job{
		{ID: billing.JobRenew, Schedule: "0 2 * * *", Run: run},
		{ID: billing.JobProcessExpired, Schedule: "30 0 * * *", Run: run},
	}
	email, webhook := testkit.NewNotifier(), testkit.NewNotifier()
	s := newScheduler(t, jobs, st, scheduler.Config{Clock: clockwork.NewFakeClock(),
		Alerts: &scheduler.Alerts{Notifier: email, To: billing.Recipient{Email: "ops@example.com"}, Policy: scheduler.AlertPolicy{PartialFailures: -1},
			Channels: []scheduler.AlertChannel{{Name: "webhook", Notifier: webhook}}}})
	trigger := func(id string, n int64) {
		t.Helper()
		failed.Store(n)
		if _, err := s.Trigger(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	trigger(billing.JobRenew, 4)
	trigger(billing.JobProcessExpired, 9)
	if n := len(email.Sent()); n != 0 {
		t.Fatalf("%d alerts below the threshold or from another job", n)
	}
	trigger(billing.JobRenew, 5)
	got := email.Sent()
	if len(got) != 1 || condition(got[0]) != "renewal_failures" || got[0].Data.JobID != billing.JobRenew ||
		!strings.Contains(got[0].Data.Error, "5 of 10 auto-renewing subscriptions") {
		t.Fatalf("renewal alert = %+v", got)
	}
	if w := webhook.Sent(); len(w) != 1 || w[0].Key != got[0].Key {
		t.Fatalf("webhook got %+v, want the same alert", w)
	}
	trigger(billing.JobRenew, 8)
	if n := len(email.Sent()); n != 1 {
		t.Fatalf("%d alerts while the episode lasts, want 1", n)
	}
	trigger(billing.JobRenew, 1)
	state, _ := st.GetJobState(ctx, billing.JobRenew)
	if len(state.Alerts) != 0 {
		t.Fatalf("alerts after a run below the threshold: %v", state.Alerts)
	}
	trigger(billing.JobRenew, 6)
	if got := email.Sent(); len(got) != 2 || got[1].Key == got[0].Key {
		t.Fatalf("second episode: %+v", got)
	}
	shutdown(t, s)

	off := testkit.NewNotifier()
	s2 := newScheduler(t, jobs, memstore.New(), scheduler.Config{Clock: clockwork.NewFakeClock(),
		Alerts: &scheduler.Alerts{Notifier: off, To: billing.Recipient{Email: "ops@example.com"}, Policy: scheduler.AlertPolicy{PartialFailures: -1, RenewalFailures: -1}}})
	failed.Store(10)
	if _, err := s2.Trigger(ctx, billing.JobRenew); err != nil {
		t.Fatal(err)
	}
	if n := len(off.Sent()); n != 0 {
		t.Fatalf("RenewalFailures -1: %d alerts", n)
	}
	shutdown(t, s2)
}

func TestAlertChannelsValidate(t *testing.T) {
	job := billing.Job{ID: "j", Schedule: "0 9 * * *", Run: func(context.Context) (billing.Result, error) { return nil, nil }}
	rec := testkit.NewNotifier()
	ops := billing.Recipient{Email: "ops@example.com"}
	_, err := scheduler.NewScheduler([]billing.Job{job}, memstore.New(), scheduler.Config{Alerts: &scheduler.Alerts{Notifier: rec, To: ops,
		Channels: []scheduler.AlertChannel{{}, {Name: "webhook", Notifier: rec}, {Name: "webhook", Notifier: rec}}}})
	if !errors.Is(err, scheduler.ErrInvalidConfig) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"Config.Alerts.Channels[0]: empty name", "Config.Alerts.Channels[0]: nil notifier",
		"Config.Alerts.Channels[2]: name used twice"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "Channels[1]") {
		t.Errorf("the first channel named webhook is valid:\n%v", err)
	}
	_, err = scheduler.NewScheduler([]billing.Job{job}, memstore.New(), scheduler.Config{Alerts: &scheduler.Alerts{Notifier: rec, To: ops, Policy: scheduler.AlertPolicy{RenewalFailures: -2}}})
	if err == nil || !strings.Contains(err.Error(), "Config.Alerts.Policy: RenewalFailures -2") {
		t.Fatalf("RenewalFailures -2: %v", err)
	}
}
