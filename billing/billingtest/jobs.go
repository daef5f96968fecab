package billingtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

// seedScenario proves the original application's story: subscriptions expiring within 3 days get one
// warning, a second run sends nothing, and a renewal resets the warning for the next period.
func (s *suite) seedScenario(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	seedDoc := testkit.Subscription("s-duda", "duda", "basic", now.Add(day))
	seedDoc.ExpirationWarningSent = true // legacy schema: flag set, offset unknown
	e := s.env(ctx, t, billing.Config{},
		testkit.Plan("basic", billing.CycleMonthly, 2990),
		testkit.User("ana"), testkit.User("bia"), testkit.User("caio"), testkit.User("duda"),
		testkit.Subscription("s-ana", "ana", "basic", now.Add(3*day)), // exactly 3 days: included
		testkit.Subscription("s-bia", "bia", "basic", now.Add(2*day)),
		testkit.Subscription("s-caio", "caio", "basic", now.Add(3*day+time.Millisecond)),
		seedDoc,
	)

	res, err := e.svc.CheckExpiringSubscriptions(ctx)
	must(t, err, "first run")
	if !res.Success || res.TotalFound != 2 || res.NotificationsSent != 2 || res.Failed != 0 {
		t.Fatalf("first run = %+v, want 2 found, 2 sent", res)
	}
	e.wantKinds("s-ana", billing.NotificationKindExpiring)
	e.wantKinds("s-bia", billing.NotificationKindExpiring)
	e.wantKinds("s-caio")
	e.wantKinds("s-duda")
	if n := e.notif.For("s-ana")[0]; n.To.Email != "ana@example.com" || n.Data.DaysRemaining != 3 || !n.Data.PeriodEnd.Equal(now.Add(3*day)) || n.Data.PlanName != "Plan basic" {
		t.Fatalf("warning to ana carries %+v", n)
	}
	for _, id := range []string{"s-ana", "s-bia"} {
		if sub := e.sub(id); !sub.ExpirationWarningSent || sub.ExpirationWarningDays != 3 {
			t.Fatalf("%s not marked warned: %+v", id, sub)
		}
		e.wantAudits(billing.AuditWarningSent, id, 1)
	}

	// Second run: nothing is owed.
	res, err = e.svc.CheckExpiringSubscriptions(ctx)
	must(t, err, "second run")
	if res.TotalFound != 0 || res.NotificationsSent != 0 || e.notif.Count("") != 2 {
		t.Fatalf("second run = %+v with %d sent in total, want nothing new", res, e.notif.Count(""))
	}
	// An hour later only caio has come within 3 days: selection is by state, not by "exactly 3 days".
	e.clock.Advance(time.Hour)
	res, err = e.svc.CheckExpiringSubscriptions(ctx)
	must(t, err, "third run")
	if res.TotalFound != 1 || res.NotificationsSent != 1 || e.notif.Count("") != 3 {
		t.Fatalf("third run = %+v, want caio's warning only", res)
	}
	e.wantKinds("s-caio", billing.NotificationKindExpiring)
	e.wantKinds("s-ana", billing.NotificationKindExpiring)

	// Ana pays: the period moves a month on and the warning state resets.
	testkit.Seed(t, e.st, func() billing.Payment {
		p := testkit.Payment("pay-ana", "ana", "basic", 2990, e.clock.Now())
		p.SubscriptionID = "s-ana"
		return p
	}())
	_, err = e.svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay-ana"})
	must(t, err, "ProcessApproved")
	renewed := e.sub("s-ana")
	if want := billing.AddMonths(now.Add(3*day), 1); !renewed.CurrentPeriodEnd.Equal(want) || renewed.ExpirationWarningSent || renewed.ExpirationWarningDays != 0 {
		t.Fatalf("after renewal: end %v warned %v/%d; want end %v and the warning reset", renewed.CurrentPeriodEnd, renewed.ExpirationWarningSent, renewed.ExpirationWarningDays, want)
	}

	// Three days before the new end, the next period's warning goes out once.
	e.clock.Set(renewed.CurrentPeriodEnd.Add(-3 * day))
	res, err = e.svc.CheckExpiringSubscriptions(ctx)
	must(t, err, "run in the next period")
	if res.NotificationsSent < 1 {
		t.Fatalf("run in the next period = %+v, want ana's warning", res)
	}
	var warnings []billing.Notification
	for _, n := range e.notif.For("s-ana") {
		if n.Kind == billing.NotificationKindExpiring {
			warnings = append(warnings, n)
		}
	}
	if len(warnings) != 2 {
		t.Fatalf("ana got %d warnings, want 2 (one per period): %v", len(warnings), e.sentKinds("s-ana"))
	}
	if got := warnings[1].Data.PeriodEnd; !got.Equal(renewed.CurrentPeriodEnd) {
		t.Fatalf("second warning is about period end %v, want %v", got, renewed.CurrentPeriodEnd)
	}
}

// warningLadder proves that with a 7,3,1 ladder each offset is sent once per period and
// only the nearest offset goes out when a run finds a subscription already inside a smaller one.
func (s *suite) warningLadder(ctx context.Context, t *testing.T) {
	end := testkit.Epoch.Add(10 * day)
	late := testkit.Subscription("s-late", "bia", "basic", testkit.Epoch.Add(2*day)) // first seen 2 days out
	e := s.env(ctx, t, billing.Config{WarningDays: []int{7, 3, 1}},
		testkit.Plan("basic", billing.CycleMonthly, 2990), testkit.User("ana"), testkit.User("bia"),
		testkit.Subscription("s1", "ana", "basic", end), late)

	res, err := e.svc.CheckExpiringSubscriptions(ctx)
	must(t, err, "run at 10 days")
	if res.NotificationsSent != 1 || e.sub("s-late").ExpirationWarningDays != 3 {
		t.Fatalf("a subscription first seen 2 days out gets the 3-day warning only: %+v, %v", res, e.sentKinds("s-late"))
	}
	e.wantKinds("s1")

	steps := []struct {
		at       time.Time
		wantDays int // offset marked after the run
		wantSent int // warnings for s1 so far
	}{
		{end.Add(-7 * day), 7, 1},
		{end.Add(-7*day + time.Hour), 7, 1}, // same offset again: nothing
		{end.Add(-3*day - time.Millisecond), 7, 1},
		{end.Add(-2 * day), 3, 2},
		{end.Add(-25 * time.Hour), 3, 2},
		{end.Add(-12 * time.Hour), 1, 3},
		{end.Add(-time.Hour), 1, 3},
	}
	for _, st := range steps {
		e.clock.Set(st.at)
		_, err := e.svc.CheckExpiringSubscriptions(ctx)
		must(t, err, "run")
		sub := e.sub("s1")
		if got := len(e.notif.For("s1")); got != st.wantSent || sub.ExpirationWarningDays != st.wantDays {
			t.Fatalf("at end-%v: %d warnings, offset %d; want %d warnings, offset %d", end.Sub(st.at), got, sub.ExpirationWarningDays, st.wantSent, st.wantDays)
		}
	}
}

// warningKind proves auto-renewing subscriptions get a renewal notice, not an expiry
// warning, and that a subscription set to cancel is warned like a manual one.
func (s *suite) warningKind(ctx context.Context, t *testing.T) {
	end := testkit.Epoch.Add(2 * day)
	cancelling := testkit.AutoRenewing(testkit.Subscription("s-cancelling", "u", "basic", end), billing.GatewayPayPal)
	cancelling.CancelAtPeriodEnd = true
	e := s.env(ctx, t, billing.Config{}, testkit.Plan("basic", billing.CycleMonthly, 2990), testkit.User("u"),
		testkit.Subscription("s-manual", "u", "basic", end),
		testkit.AutoRenewing(testkit.Subscription("s-stripe", "u", "basic", end), billing.GatewayStripe),
		testkit.AutoRenewing(testkit.Subscription("s-mp", "u", "basic", end), billing.GatewayMercadoPago),
		cancelling)
	res, err := e.svc.CheckExpiringSubscriptions(ctx)
	must(t, err, "run")
	if res.NotificationsSent != 4 {
		t.Fatalf("run = %+v, want 4 sent", res)
	}
	e.wantKinds("s-manual", billing.NotificationKindExpiring)
	e.wantKinds("s-stripe", billing.NotificationKindRenewalUpcoming)
	e.wantKinds("s-mp", billing.NotificationKindRenewalUpcoming)
	e.wantKinds("s-cancelling", billing.NotificationKindExpiring)
	if n := e.notif.For("s-stripe")[0]; n.Data.Amount != (billing.Money{Amount: 2990, Currency: "BRL"}) || !n.Data.PeriodEnd.Equal(end) {
		t.Fatalf("renewal notice carries %+v, want the plan price and the charge date", n.Data)
	}
}

// processExpired is a table of expiry transitions: which subscriptions expire (with and
// without grace), and that expiry revokes access, emails once and audits.
func (s *suite) processExpired(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	grace := 3 * day
	cases := []struct {
		name   string
		sub    billing.Subscription
		expire bool
	}{
		{"manual ended 1ms ago", testkit.Subscription("s", "u", "basic", now.Add(-time.Millisecond)), true},
		{"manual ends exactly now", testkit.Subscription("s", "u", "basic", now), true},
		{"manual ends in 1ms", testkit.Subscription("s", "u", "basic", now.Add(time.Millisecond)), false},
		{"auto-renewing inside grace", testkit.AutoRenewing(testkit.Subscription("s", "u", "basic", now.Add(-grace+time.Millisecond)), billing.GatewayStripe), false},
		{"auto-renewing grace just over", testkit.AutoRenewing(testkit.Subscription("s", "u", "basic", now.Add(-grace)), billing.GatewayStripe), true},
		{"past_due beyond grace", func() billing.Subscription {
			x := testkit.AutoRenewing(testkit.Subscription("s", "u", "basic", now.Add(-4*day)), billing.GatewayPayPal)
			x.Status = billing.SubscriptionStatusPastDue
			return x
		}(), true},
		{"cancelling gets no grace", func() billing.Subscription {
			x := testkit.AutoRenewing(testkit.Subscription("s", "u", "basic", now.Add(-time.Hour)), billing.GatewayStripe)
			x.CancelAtPeriodEnd = true
			return x
		}(), true},
		{"already inactive", func() billing.Subscription {
			x := testkit.Subscription("s", "u", "basic", now.Add(-10*day))
			x.Status = billing.SubscriptionStatusInactive
			return x
		}(), false},
		{"cancelled", func() billing.Subscription {
			x := testkit.Subscription("s", "u", "basic", now.Add(-10*day))
			x.Status = billing.SubscriptionStatusCancelled
			return x
		}(), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The gateways say the auto-renewing ones ended: only then do they expire.
			ended := lookup{"gw-s": answer(billing.GatewaySubscription{Status: billing.SubscriptionStatusCancelled})}
			e := s.env(ctx, t, billing.Config{Grace: grace, Renewals: map[string]billing.RenewalLookup{
				billing.GatewayStripe: ended, billing.GatewayPayPal: ended}},
				testkit.Plan("basic", billing.CycleMonthly, 2990),
				testkit.UserWithAccess("u", "basic", "s", c.sub.CurrentPeriodEnd), c.sub)
			before := e.sub("s")
			res, err := e.svc.ProcessExpiredSubscriptions(ctx)
			must(t, err, "run")
			after, u := e.sub("s"), e.user("u")
			if !c.expire {
				if res.TotalFound != 0 || after.Version != before.Version || u.PlanID != "basic" || e.notif.Count("") != 0 {
					t.Fatalf("not due, yet: result %+v, sub %+v, user %+v", res, after, u)
				}
				return
			}
			if !res.Success || res.TotalFound != 1 || res.Processed != 1 {
				t.Fatalf("result %+v, want 1 found and processed", res)
			}
			if after.Status != billing.SubscriptionStatusInactive {
				t.Fatalf("status %s, want inactive", after.Status)
			}
			// Access revoked: no plan, inactive, not HasAccess.
			if u.PlanID != "" || u.Status != billing.SubscriptionStatusInactive || u.HasAccess(e.clock.Now()) {
				t.Fatalf("user keeps access: %+v", u)
			}
			e.wantKinds("s", billing.NotificationKindExpired)
			e.wantAudits(billing.AuditSubscriptionExpired, "s", 1)
			e.wantAudits(billing.AuditAccessRevoked, "u", 1)
			// Idempotent: a second run changes nothing.
			res, err = e.svc.ProcessExpiredSubscriptions(ctx)
			must(t, err, "second run")
			if res.TotalFound != 0 || e.notif.Count("") != 1 || len(e.audits("", "")) != 2 {
				t.Fatalf("second run %+v changed something", res)
			}
		})
	}
}

// expiryKeepsAccessFromAnotherSubscription proves expiring an old subscription does not
// revoke access the user now has through a newer one.
func (s *suite) expiryKeepsAccessFromAnotherSubscription(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	e := s.env(ctx, t, billing.Config{}, testkit.Plan("basic", billing.CycleMonthly, 2990), testkit.Plan("pro", billing.CycleMonthly, 5990),
		testkit.UserWithAccess("u", "pro", "s-new", now.Add(20*day)),
		testkit.Subscription("s-old", "u", "basic", now.Add(-day)),
		testkit.Subscription("s-new", "u", "pro", now.Add(20*day)))
	res, err := e.svc.ProcessExpiredSubscriptions(ctx)
	must(t, err, "run")
	if res.Processed != 1 || e.sub("s-old").Status != billing.SubscriptionStatusInactive {
		t.Fatalf("s-old not expired: %+v", res)
	}
	if u := e.user("u"); u.PlanID != "pro" || u.SubscriptionID != "s-new" || !u.HasAccess(now) {
		t.Fatalf("access from s-new was revoked: %+v", u)
	}
	e.wantAudits(billing.AuditAccessRevoked, "u", 0)
}

// renewSubscriptions proves the renew job's outcomes per subscription: renewed (new
// period, email, audit, access extended), not yet renewed (unchanged), cancelled at the
// gateway (now cancelling), and a gateway error or a missing lookup fail only that one.
func (s *suite) renewSubscriptions(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	end := now.Add(12 * time.Hour)
	newEnd := billing.AddMonths(end, 1)
	sub := func(id, gw string) billing.Subscription {
		x := testkit.AutoRenewing(testkit.Subscription(id, "u-"+id, "basic", end), gw)
		x.ExpirationWarningSent, x.ExpirationWarningDays = true, 3
		return x
	}
	// A missing id is an error, like the gateway's 404.
	stripe := &countedLookup{RenewalLookup: lookup{
		"gw-renewed":   answer(billing.GatewaySubscription{ID: "gw-renewed", Status: billing.SubscriptionStatusActive, PeriodStart: end, PeriodEnd: newEnd}),
		"gw-pending":   answer(billing.GatewaySubscription{ID: "gw-pending", Status: billing.SubscriptionStatusActive, PeriodStart: end.AddDate(0, -1, 0), PeriodEnd: end}),
		"gw-cancelled": answer(billing.GatewaySubscription{ID: "gw-cancelled", Status: billing.SubscriptionStatusCancelled, PeriodStart: end.AddDate(0, -1, 0), PeriodEnd: end}),
		"gw-far":       answer(billing.GatewaySubscription{ID: "gw-far", Status: billing.SubscriptionStatusActive, PeriodEnd: newEnd}),
		"gw-broken":    failure(errors.New("stripe: 500")),
	}}
	far := testkit.AutoRenewing(testkit.Subscription("far", "u-far", "basic", now.Add(2*day)), billing.GatewayStripe)
	e := s.env(ctx, t, billing.Config{Renewals: map[string]billing.RenewalLookup{billing.GatewayStripe: stripe}},
		testkit.Plan("basic", billing.CycleMonthly, 2990),
		testkit.UserWithAccess("u-renewed", "basic", "renewed", end), testkit.User("u-pending"), testkit.User("u-cancelled"),
		testkit.User("u-broken"), testkit.User("u-paypal"), testkit.User("u-far"),
		sub("renewed", billing.GatewayStripe), sub("pending", billing.GatewayStripe), sub("cancelled", billing.GatewayStripe),
		sub("broken", billing.GatewayStripe), sub("paypal", billing.GatewayPayPal), far,
		testkit.Subscription("manual", "u-far", "basic", end), // not auto-renewing: not asked
	)
	before := map[string]billing.Subscription{}
	for _, id := range []string{"pending", "broken", "paypal", "far", "manual"} {
		before[id] = e.sub(id)
	}
	res, err := e.svc.RenewSubscriptions(ctx)
	must(t, err, "run")
	if !res.Success || res.TotalFound != 5 || res.Renewed != 1 || res.Cancelling != 1 || res.Failed != 2 {
		t.Fatalf("result %+v, want found 5, renewed 1, cancelling 1, failed 2 (gateway error, no lookup)", res)
	}

	r := e.sub("renewed")
	if !r.CurrentPeriodEnd.Equal(newEnd) || !r.CurrentPeriodStart.Equal(end) || r.Status != billing.SubscriptionStatusActive || r.ExpirationWarningSent {
		t.Fatalf("renewed: %+v", r)
	}
	if u := e.user("u-renewed"); !u.AccessUntil.Equal(newEnd) || u.PlanID != "basic" {
		t.Fatalf("access not extended: %+v", u)
	}
	e.wantKinds("renewed", billing.NotificationKindRenewed)
	e.wantAudits(billing.AuditSubscriptionRenewed, "renewed", 1)

	c := e.sub("cancelled")
	if !c.CancelAtPeriodEnd || c.AutoRenews() || !c.CurrentPeriodEnd.Equal(end) {
		t.Fatalf("cancelled at the gateway: %+v, want cancelling with the period kept", c)
	}
	e.wantAudits(billing.AuditSubscriptionUpdated, "cancelled", 1)
	for id, b := range before {
		if got := e.sub(id); got.Version != b.Version {
			t.Fatalf("%s changed: %+v", id, got)
		}
		e.wantKinds(id)
	}
	if calls := stripe.calls.Load(); calls != 4 {
		t.Fatalf("stripe asked %d times, want 4 (paypal has no lookup, far and manual are not due)", calls)
	}

	// The cancelling one now expires at its end without grace.
	e.clock.Set(end)
	exp, err := e.svc.ProcessExpiredSubscriptions(ctx)
	must(t, err, "expire run")
	if e.sub("cancelled").Status != billing.SubscriptionStatusInactive || e.sub("pending").Status != billing.SubscriptionStatusActive {
		t.Fatalf("after the end: %+v; want cancelled expired, pending in grace", exp)
	}
}

// cleanupOldSessions proves the 30-day boundary: exactly 30 days ago is cleaned, 1ms less
// is kept, and the run is audited.
func (s *suite) cleanupOldSessions(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	gone := testkit.Session("gone", "u", now.Add(-90*day))
	gone.Deleted, gone.DeletedAt = true, now.Add(-50*day)
	e := s.env(ctx, t, billing.Config{},
		testkit.Session("at-30d", "u", now.Add(-30*day)),
		testkit.Session("older", "u", now.Add(-31*day)),
		testkit.Session("30d-minus-1ms", "u", now.Add(-30*day+time.Millisecond)),
		testkit.Session("live", "u", now.Add(day)), gone)
	res, err := e.svc.CleanupOldSessions(ctx)
	must(t, err, "run")
	if !res.Success || res.TotalFound != 2 || res.Cleaned != 2 {
		t.Fatalf("result %+v, want 2 cleaned", res)
	}
	for id, deleted := range map[string]bool{"at-30d": true, "older": true, "30d-minus-1ms": false, "live": false} {
		se, err := e.st.GetSession(ctx, id)
		must(t, err, "GetSession")
		if se.Deleted != deleted || (deleted && !se.DeletedAt.Equal(now)) {
			t.Fatalf("session %s: %+v, want deleted=%v", id, se, deleted)
		}
	}
	a := e.audits(billing.AuditSessionsCleaned, "")
	if len(a) != 1 || a[0].Details["count"] != 2 {
		t.Fatalf("audit %+v, want one entry counting 2", a)
	}
	res, err = e.svc.CleanupOldSessions(ctx)
	must(t, err, "second run")
	if res.Cleaned != 0 || len(e.audits(billing.AuditSessionsCleaned, "")) != 1 {
		t.Fatalf("second run %+v cleaned again", res)
	}
}

// cleanupSessionsSurvivesCrashAtEveryWrite proves a soft delete of expired sessions and its
// audit entry are never half-applied ("a failure in the middle of work loses nothing and is
// retried"): a run crashed at each write of a clean run (before it, just after it) reports
// the failure, and the next run leaves every expired session soft-deleted and named by
// exactly one cleanup audit entry, with no effects left pending. A failed audit write is
// reported (the batch counts in Failed, not Cleaned), and the next run writes the entry.
func (s *suite) cleanupSessionsSurvivesCrashAtEveryWrite(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	cfg := billing.Config{BatchSize: 2} // three expired sessions: two batches
	expired := []string{"old1", "old2", "old3"}
	records := []any{
		testkit.Session("old1", "u", now.Add(-40*day)),
		testkit.Session("old2", "u", now.Add(-35*day)),
		testkit.Session("old3", "u", now.Add(-31*day)),
		testkit.Session("live", "u", now.Add(day)),
	}
	clean := s.env(ctx, t, cfg, records...)
	counter := &crashStore{Store: clean.st}
	res, err := clean.service(counter, cfg).CleanupOldSessions(ctx)
	must(t, err, "clean run")
	if !res.Success || res.Cleaned != 3 || res.Failed != 0 {
		t.Fatalf("clean run %+v, want 3 cleaned", res)
	}
	clean.wantSessionsCleaned(expired)
	// failThenFinish runs the cleanup on e through broken, which fails part of it: the run
	// reports the failure (what), and a run an hour later through e's store itself finishes
	// with nothing failed.
	failThenFinish := func(e *env, broken billing.Store, what string) {
		e.t.Helper()
		res, err := e.service(broken, cfg).CleanupOldSessions(ctx)
		if err == nil && res.Failed == 0 {
			e.t.Fatalf("the run %s reported %+v", what, res)
		}
		e.clock.Advance(time.Hour)
		res, err = e.svc.CleanupOldSessions(ctx)
		must(e.t, err, "the next run")
		if !res.Success || res.Failed != 0 {
			e.t.Fatalf("the run after the one %s: %+v, want nothing failed", what, res)
		}
		e.wantSessionsCleaned(expired)
	}
	writes := counter.written()
	atEveryWrite(t, writes, func(t *testing.T, n int, after bool) {
		e := s.env(ctx, t, cfg, records...)
		failThenFinish(e, &crashStore{Store: e.st, n: n, after: after}, fmt.Sprintf("that crashed at write %d (%s)", n, writes[n-1]))
	})
	t.Run("FailedAuditWrite", func(t *testing.T) {
		e := s.env(ctx, t, cfg, records...)
		flaky := &failAudit{Store: e.st, action: billing.AuditSessionsCleaned, failures: 1}
		failThenFinish(e, flaky, "whose audit write failed")
		if flaky.failures != 0 {
			t.Fatal("the audit write never failed")
		}
	})
	// A batch another run has just deleted is its own until ClaimLease has passed: a run
	// meeting it leaves it (an entry written now could name only part of the batch), and a
	// run after the lease finishes it as a crashed run's.
	t.Run("InFlightBatchLeftToItsRun", func(t *testing.T) {
		e := s.env(ctx, t, cfg, records...)
		cutoff := now.Add(-30 * day)
		eff := &billing.Effects{Token: "in-flight", CreatedAt: now, Audit: []billing.AuditEntry{{ID: "sessions:in-flight",
			Action: billing.AuditSessionsCleaned, Actor: "renewkit", CreatedAt: now, Details: map[string]any{"expired_before": cutoff}}}}
		other, err := e.st.DeleteExpiredSessions(ctx, cutoff, now, 2, eff)
		if err != nil || len(other) != 2 {
			t.Fatalf("the other run's delete: %d sessions, %v; want 2", len(other), err)
		}
		res, err := e.svc.CleanupOldSessions(ctx)
		must(t, err, "the run beside the other one")
		if res.Cleaned != 1 || res.Resumed != 0 || res.Failed != 0 || len(e.audits(billing.AuditSessionsCleaned, "")) != 1 {
			t.Fatalf("the run beside the other one %+v, want only the third session cleaned and audited", res)
		}
		e.clock.Advance(time.Hour)
		res, err = e.svc.CleanupOldSessions(ctx)
		must(t, err, "the run after the lease")
		if res.Resumed != 2 || res.Failed != 0 {
			t.Fatalf("the run after the lease %+v, want the other run's two sessions finished", res)
		}
		e.wantSessionsCleaned(expired)
	})
}

// wantSessionsCleaned fails unless every session of ids is soft-deleted and named by
// exactly one cleanup audit entry, each entry's count matching its list and naming no other
// session, and no effects are left pending.
func (e *env) wantSessionsCleaned(ids []string) {
	e.t.Helper()
	named := map[string]int{}
	for _, a := range e.audits(billing.AuditSessionsCleaned, "") {
		list := detailStrings(a.Details["session_ids"])
		if fmt.Sprint(a.Details["count"]) != fmt.Sprint(len(list)) || len(list) == 0 || a.EntityID != list[0] || a.EntityType != "session" {
			e.t.Fatalf("audit entry %+v: want entity the first of its session_ids and count their number", a)
		}
		for _, id := range list {
			named[id]++
		}
	}
	for _, id := range ids {
		se, err := e.st.GetSession(e.ctx, id)
		if err != nil {
			e.t.Fatalf("GetSession(%s): %v", id, err)
		}
		if !se.Deleted {
			e.t.Fatalf("session %s not soft-deleted: %+v", id, se)
		}
		if named[id] != 1 {
			e.t.Fatalf("session %s named by %d cleanup audit entries, want 1 (all: %v)", id, named[id], named)
		}
		delete(named, id)
	}
	if len(named) > 0 {
		e.t.Fatalf("cleanup audit entries name other sessions: %v", named)
	}
	e.noPending()
}

// detailStrings reads a list of strings from an audit detail as a store returns it.
func detailStrings(v any) []string {
	switch l := v.(type) {
	case []string:
		return l
	case []any:
		out := make([]string, len(l))
		for i, x := range l {
			out[i] = fmt.Sprint(x)
		}
		return out
	}
	return nil
}

// cleanupPaymentsSurvivesCrashAtEveryWrite proves a cancellation of stale payments and its
// audit entries are never half-applied: a run crashed at each write of a clean run (before
// it, just after it) reports the failure, and the next run leaves every stale payment
// cancelled and audited exactly once, with no effects left pending ("a failure in the
// middle of work loses nothing and is retried").
func (s *suite) cleanupPaymentsSurvivesCrashAtEveryWrite(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	records := []any{
		testkit.Payment("old1", "u", "basic", 2990, now.Add(-20*day)),
		testkit.Payment("old2", "u", "basic", 2990, now.Add(-8*day)),
	}
	check := func(e *env) {
		e.t.Helper()
		for _, id := range []string{"old1", "old2"} {
			if p := e.payment(id); p.Status != billing.PaymentStatusCancelled {
				e.t.Fatalf("payment %s is %s, want cancelled", id, p.Status)
			}
			e.wantAudits(billing.AuditPaymentCancelled, id, 1)
			if n := len(e.audits("", id)); n != 1 {
				e.t.Fatalf("%d audit entries for %s, want its one cancellation", n, id)
			}
		}
		e.noPending()
	}
	clean := s.env(ctx, t, billing.Config{}, records...)
	counter := &crashStore{Store: clean.st}
	res, err := clean.service(counter, billing.Config{}).CleanupPendingPayments(ctx)
	must(t, err, "clean run")
	if !res.Success || res.Cleaned != 2 || res.Failed != 0 {
		t.Fatalf("clean run %+v, want 2 cleaned", res)
	}
	check(clean)
	writes := counter.written()
	atEveryWrite(t, writes, func(t *testing.T, n int, after bool) {
		e := s.env(ctx, t, billing.Config{}, records...)
		crash := &crashStore{Store: e.st, n: n, after: after}
		res, err := e.service(crash, billing.Config{}).CleanupPendingPayments(ctx)
		if err == nil && res.Failed == 0 {
			t.Fatalf("the run crashed at write %d (%s) and reported %+v", n, writes[n-1], res)
		}
		e.clock.Advance(time.Hour)
		res, err = e.svc.CleanupPendingPayments(ctx)
		must(t, err, "the run after the crash")
		if res.Failed != 0 {
			t.Fatalf("the run after the crash %+v, want nothing failed", res)
		}
		check(e)
	})
}

// cleanupPendingPayments proves the 7-day boundary: exactly 7 days old is cancelled, 1ms
// younger is kept, only pending payments are touched, and each is audited.
func (s *suite) cleanupPendingPayments(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	approved := testkit.Payment("approved", "u", "basic", 2990, now.Add(-30*day))
	approved.Status = billing.PaymentStatusApproved
	e := s.env(ctx, t, billing.Config{},
		testkit.Payment("at-7d", "u", "basic", 2990, now.Add(-7*day)),
		testkit.Payment("older", "u", "basic", 2990, now.Add(-20*day)),
		testkit.Payment("7d-minus-1ms", "u", "basic", 2990, now.Add(-7*day+time.Millisecond)),
		approved)
	res, err := e.svc.CleanupPendingPayments(ctx)
	must(t, err, "run")
	if !res.Success || res.TotalFound != 2 || res.Cleaned != 2 {
		t.Fatalf("result %+v, want 2 cleaned", res)
	}
	for id, want := range map[string]billing.PaymentStatus{"at-7d": billing.PaymentStatusCancelled, "older": billing.PaymentStatusCancelled,
		"7d-minus-1ms": billing.PaymentStatusPending, "approved": billing.PaymentStatusApproved} {
		p := e.payment(id)
		if p.Status != want {
			t.Fatalf("payment %s is %s, want %s", id, p.Status, want)
		}
		if want == billing.PaymentStatusCancelled && (p.Reason == "" || !p.ProcessedAt.Equal(now)) {
			t.Fatalf("payment %s cancelled without reason or time: %+v", id, p)
		}
	}
	e.wantAudits(billing.AuditPaymentCancelled, "at-7d", 1)
	e.wantAudits(billing.AuditPaymentCancelled, "older", 1)
	e.wantAudits(billing.AuditPaymentCancelled, "7d-minus-1ms", 0)
}
