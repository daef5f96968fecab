package billingtest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

// warningTransientFailureRetried proves failure mid-work loses nothing and is retried: a
// failed send leaves the subscription marked with its email pending (and unaudited), the
// next run sends it, and every subscription ends up with exactly one warning.
func (s *suite) warningTransientFailureRetried(ctx context.Context, t *testing.T) {
	end := testkit.Epoch.Add(2 * day)
	e := s.env(ctx, t, billing.Config{BatchSize: 2}, testkit.Plan("basic", billing.CycleMonthly, 2990), testkit.User("u"),
		testkit.Subscription("s1", "u", "basic", end), testkit.Subscription("s2", "u", "basic", end.Add(1)),
		testkit.Subscription("s3", "u", "basic", end.Add(2)))
	e.notif.FailNext(1)
	res, err := e.svc.CheckExpiringSubscriptions(ctx)
	must(t, err, "first run") // a record's failure is not the run's
	if res.TotalFound != 3 || res.NotificationsSent != 2 || res.Failed != 1 || len(res.Errors) != 1 {
		t.Fatalf("first run %+v, want 3 found, 2 sent, 1 failed", res)
	}
	failedID := e.notif.Failed()[0].Data.SubscriptionID
	if sub := e.sub(failedID); !sub.ExpirationWarningSent || sub.Pending == nil || len(sub.Pending.Notifications) != 1 {
		t.Fatalf("%s: warned=%v pending=%+v, want marked with its email pending", failedID, sub.ExpirationWarningSent, sub.Pending)
	}
	e.wantAudits(billing.AuditWarningSent, failedID, 0)

	res, err = e.svc.CheckExpiringSubscriptions(ctx)
	must(t, err, "second run")
	if res.TotalFound != 1 || res.Resumed != 1 || res.NotificationsSent != 1 || res.Failed != 0 {
		t.Fatalf("second run %+v, want the failed one only", res)
	}
	e.wantAudits(billing.AuditWarningSent, failedID, 1)
	for _, id := range []string{"s1", "s2", "s3"} {
		e.wantKinds(id, billing.NotificationKindExpiring)
		if !e.sub(id).ExpirationWarningSent {
			t.Fatalf("%s not marked", id)
		}
	}
	if res, _ := e.svc.CheckExpiringSubscriptions(ctx); res.TotalFound != 0 || e.notif.Count("") != 3 {
		t.Fatalf("third run %+v sent again", res)
	}
}

// warningPermanentFailureNotRetried proves a permanent failure (ErrUndeliverable) is
// recorded and not retried, while the other subscriptions are served.
func (s *suite) warningPermanentFailureNotRetried(ctx context.Context, t *testing.T) {
	end := testkit.Epoch.Add(2 * day)
	e := s.env(ctx, t, billing.Config{}, testkit.Plan("basic", billing.CycleMonthly, 2990), testkit.User("good"), testkit.User("bad"),
		testkit.Subscription("s-good", "good", "basic", end), testkit.Subscription("s-bad", "bad", "basic", end))
	e.notif.FailPermanently(func(n billing.Notification) bool { return n.To.UserID == "bad" })
	res, err := e.svc.CheckExpiringSubscriptions(ctx)
	must(t, err, "run")
	if res.TotalFound != 2 || res.NotificationsSent != 1 || res.Failed != 0 {
		t.Fatalf("run %+v, want 2 found, 1 sent, none to retry", res)
	}
	failed := e.notif.Failed()
	if len(failed) != 1 {
		t.Fatalf("failed deliveries %v, want 1", failed)
	}
	rec, err := e.st.GetNotification(ctx, failed[0].Key)
	must(t, err, "GetNotification")
	if rec.Status != "failed" || rec.Error == "" || rec.SubscriptionID != "s-bad" {
		t.Fatalf("record %+v, want status failed with the error", rec)
	}
	if !e.sub("s-bad").ExpirationWarningSent {
		t.Fatal("a permanently failed warning must count as handled")
	}
	attempts := e.notif.Attempts()
	res, err = e.svc.CheckExpiringSubscriptions(ctx)
	must(t, err, "second run")
	if res.TotalFound != 0 || e.notif.Attempts() != attempts {
		t.Fatalf("second run %+v retried the undeliverable warning (%d attempts, was %d)", res, e.notif.Attempts(), attempts)
	}
	e.wantKinds("s-good", billing.NotificationKindExpiring)
}

// expiryEmailFailureRetried proves failure mid-work loses nothing: the expiry is stored
// first and access is revoked before the email; when the email fails it stays pending on the
// record and the next run sends it exactly once and finishes, without revoking (or auditing)
// twice.
func (s *suite) expiryEmailFailureRetried(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	e := s.env(ctx, t, billing.Config{}, testkit.Plan("basic", billing.CycleMonthly, 2990),
		testkit.UserWithAccess("u", "basic", "s", now.Add(-day)), testkit.Subscription("s", "u", "basic", now.Add(-day)))
	e.notif.FailNext(1)
	res, err := e.svc.ProcessExpiredSubscriptions(ctx)
	must(t, err, "first run")
	if res.Failed != 1 || res.Processed != 0 {
		t.Fatalf("first run %+v, want 1 failed", res)
	}
	if u := e.user("u"); u.PlanID != "" || u.HasAccess(now) {
		t.Fatalf("access not revoked before the email: %+v", u)
	}
	if sub := e.sub("s"); sub.Status != billing.SubscriptionStatusInactive || sub.Pending == nil {
		t.Fatalf("subscription %s pending=%+v, want inactive with its email pending", sub.Status, sub.Pending)
	}
	res, err = e.svc.ProcessExpiredSubscriptions(ctx)
	must(t, err, "second run")
	if res.Resumed != 1 || e.sub("s").Pending != nil {
		t.Fatalf("second run %+v did not finish", res)
	}
	e.wantKinds("s", billing.NotificationKindExpired)
	e.wantAudits(billing.AuditAccessRevoked, "u", 1)
	e.wantAudits(billing.AuditSubscriptionExpired, "s", 1)
}

// approvedEmailFailureRetried proves a transient email failure after an approval keeps the
// state change, reports an error (so a webhook is redelivered), and the redelivery sends the
// missing email exactly once without extending again.
func (s *suite) approvedEmailFailureRetried(ctx context.Context, t *testing.T) {
	e := s.env(ctx, t, billing.Config{}, testkit.Plan("basic", billing.CycleMonthly, 2990), testkit.User("u"), payment("pay1", "u", "basic"))
	e.notif.FailNext(1) // the confirmation fails; the welcome goes out
	_, err := e.svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay1"})
	if !errors.Is(err, testkit.ErrTransient) {
		t.Fatalf("got %v, want the transient email error", err)
	}
	if p := e.payment("pay1"); p.Status != billing.PaymentStatusApproved {
		t.Fatalf("payment %s, want approved despite the email failure", p.Status)
	}
	end := e.userSubs("u")[0].CurrentPeriodEnd
	res, err := e.svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay1"})
	must(t, err, "redelivery")
	if !res.Duplicate || !e.userSubs("u")[0].CurrentPeriodEnd.Equal(end) {
		t.Fatalf("redelivery %+v extended again", res)
	}
	if e.notif.Count(billing.NotificationKindPaymentSuccessful) != 1 || e.notif.Count(billing.NotificationKindWelcome) != 1 {
		t.Fatalf("emails %v, want one confirmation and one welcome", e.sentKinds("pay1"))
	}
}

// concurrentRunsSendEachEmailOnce proves two or more concurrent runs of the same job (on
// one or several replicas) send each email exactly once and process each record once.
func (s *suite) concurrentRunsSendEachEmailOnce(ctx context.Context, t *testing.T) {
	// 120 subscriptions at the default Records: even ones due for a warning, odd ones expired.
	subs, runs := 3*s.opts.Records, 4
	wantWarned, wantExpired := (subs+1)/2, subs/2
	now := testkit.Epoch
	records := []any{testkit.Plan("basic", billing.CycleMonthly, 2990)}
	for i := range subs {
		uid, id := fmt.Sprintf("u%03d", i), fmt.Sprintf("s%03d", i)
		end := now.Add(day + millis(i))
		if i%2 == 1 {
			end = now.Add(-day - millis(i)) // expired
		}
		records = append(records, testkit.UserWithAccess(uid, "basic", id, end), testkit.Subscription(id, uid, "basic", end))
	}
	e := s.env(ctx, t, billing.Config{}, records...)
	svcs := e.replicas(runs, billing.Config{BatchSize: 7})

	warned, expired := make([]billing.ExpiringResult, runs), make([]billing.ExpiredResult, runs)
	errs := make([]error, 2*runs)
	concurrently(2*runs, func(i int) {
		if i < runs {
			warned[i], errs[i] = svcs[i].CheckExpiringSubscriptions(ctx)
		} else {
			expired[i-runs], errs[i] = svcs[i-runs].ProcessExpiredSubscriptions(ctx)
		}
	})
	for i, err := range errs {
		must(t, err, fmt.Sprintf("run %d", i))
	}
	sent, processed := 0, 0
	for i := range runs {
		sent += warned[i].NotificationsSent
		processed += expired[i].Processed
	}
	if sent != wantWarned || processed != wantExpired {
		t.Fatalf("runs together sent %d warnings and expired %d, want %d and %d", sent, processed, wantWarned, wantExpired)
	}
	for i := range subs {
		id := fmt.Sprintf("s%03d", i)
		if i%2 == 0 {
			e.wantKinds(id, billing.NotificationKindExpiring)
			e.wantAudits(billing.AuditWarningSent, id, 1)
		} else {
			e.wantKinds(id, billing.NotificationKindExpired)
			e.wantAudits(billing.AuditSubscriptionExpired, id, 1)
			e.wantAudits(billing.AuditAccessRevoked, fmt.Sprintf("u%03d", i), 1)
		}
	}
}

// concurrentApproveExtendsOnce proves concurrent deliveries of the same approval extend
// the subscription once and email once; the losers get ErrConflict (retry later) or a
// duplicate result.
func (s *suite) concurrentApproveExtendsOnce(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	e := s.env(ctx, t, billing.Config{}, testkit.Plan("basic", billing.CycleMonthly, 2990),
		testkit.UserWithAccess("u", "basic", "s", now.Add(10*day)),
		func() billing.Subscription {
			x := testkit.Subscription("s", "u", "basic", now.Add(10*day))
			x.AppliedPayments = []string{"pay0"}
			return x
		}(), payment("pay1", "u", "basic", forSub("s")))
	const n = 8
	results, errs := make([]billing.ProcessResult, n), make([]error, n)
	svcs := e.replicas(n, billing.Config{})
	concurrently(n, func(i int) {
		results[i], errs[i] = svcs[i].Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay1"})
	})
	applied := 0
	for i := range n {
		switch {
		case errs[i] == nil && !results[i].Duplicate:
			applied++
		case errs[i] == nil:
		case !errors.Is(errs[i], billing.ErrConflict):
			t.Fatalf("delivery %d: %v, want success, duplicate or ErrConflict", i, errs[i])
		}
	}
	if applied != 1 {
		t.Fatalf("%d deliveries applied the payment, want exactly 1", applied)
	}
	if sub := e.sub("s"); !sub.CurrentPeriodEnd.Equal(billing.AddMonths(now.Add(10*day), 1)) {
		t.Fatalf("period end %v, want extended once", sub.CurrentPeriodEnd)
	}
	e.wantKinds("pay1", billing.NotificationKindPaymentSuccessful)
	e.wantAudits(billing.AuditSubscriptionRenewed, "s", 1)
	e.wantAudits(billing.AuditPaymentApproved, "pay1", 1)
}
