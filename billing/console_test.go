package billing_test

import (
	"context"
	"errors"
	"testing"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/memstore"
)

// consoleFixture: ana's and bob's subscriptions end in two days (due for the warning),
// ana has an approved payment; the clock is testkit.Epoch.
func consoleFixture(t *testing.T) (*memstore.Store, *billing.Service, *testkit.Notifier, *testkit.Clock) {
	t.Helper()
	st := memstore.New()
	now := testkit.Epoch
	pay := testkit.Payment("pay-ana", "ana", "p", 1000, now.Add(-30*day))
	pay.SubscriptionID, pay.Status = "s-ana", billing.PaymentStatusApproved
	testkit.Seed(t, st, testkit.Plan("p", billing.CycleMonthly, 1000),
		testkit.UserWithAccess("ana", "p", "s-ana", now.Add(2*day)), testkit.Subscription("s-ana", "ana", "p", now.Add(2*day)),
		testkit.UserWithAccess("bob", "p", "s-bob", now.Add(2*day)), testkit.Subscription("s-bob", "bob", "p", now.Add(2*day)), pay)
	n := testkit.NewNotifier()
	clock := testkit.NewClock(now)
	svc, err := billing.NewService(st, n, billing.Config{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return st, svc, n, clock
}

func TestTimelineOrdersEverySource(t *testing.T) {
	ctx := context.Background()
	_, svc, _, clock := consoleFixture(t)
	if _, err := svc.CheckExpiringSubscriptions(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * day)
	if _, err := svc.ProcessExpiredSubscriptions(ctx); err != nil {
		t.Fatal(err)
	}
	tl, err := svc.Timeline(ctx, "s-ana", 0)
	if err != nil {
		t.Fatal(err)
	}
	if tl.User == nil || tl.User.Email != "ana@example.com" || tl.Subscription.Status != billing.SubscriptionStatusInactive {
		t.Fatalf("timeline head: user %+v, subscription %+v", tl.User, tl.Subscription)
	}
	seen := map[string]bool{}
	for i, ev := range tl.Events {
		seen[ev.Source+" "+ev.What] = true
		if i > 0 && ev.At.After(tl.Events[i-1].At) {
			t.Fatalf("event %d (%s) is newer than event %d: not newest first", i, ev.What, i-1)
		}
		if ev.Source == billing.SourceNotification && (ev.Notification == nil || ev.Notification.SubscriptionID != "s-ana") {
			t.Fatalf("notification event of another subscription: %+v", ev.Notification)
		}
	}
	for _, want := range []string{"notification expiring", "notification expired", "job " + billing.AuditWarningSent,
		"job " + billing.AuditSubscriptionExpired, "payment approved"} {
		if !seen[want] {
			t.Errorf("timeline lacks %q; has %v", want, seen)
		}
	}
	if _, err := svc.Timeline(ctx, "nope", 0); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("unknown subscription: %v, want ErrNotFound", err)
	}
}

func TestResendNotificationOnlyAfterAPermanentFailure(t *testing.T) {
	ctx := context.Background()
	st, svc, n, _ := consoleFixture(t)
	n.FailPermanently(func(x billing.Notification) bool { return x.To.UserID == "ana" })
	if _, err := svc.CheckExpiringSubscriptions(ctx); err != nil {
		t.Fatal(err)
	}
	notes, _, err := svc.ListNotifications(ctx, billing.NotificationQuery{SubscriptionID: "s-ana"})
	if err != nil || len(notes) != 1 || notes[0].Status != billing.NotificationFailed || notes[0].Data == nil {
		t.Fatalf("ana's warning: %+v, %v; want one failed record with its data", notes, err)
	}
	key := notes[0].Key
	if _, err := svc.ResendNotification(ctx, key, ""); !errors.Is(err, billing.ErrInvalidInput) {
		t.Fatalf("resend without operator: %v", err)
	}
	// Still failing: the record stays failed with the new error, and the attempt is audited.
	if _, err := svc.ResendNotification(ctx, key, "maria"); !errors.Is(err, billing.ErrUndeliverable) {
		t.Fatalf("resend to a failing address: %v", err)
	}
	n.Heal()
	rec, err := svc.ResendNotification(ctx, key, "maria")
	if err != nil || rec.Status != billing.NotificationSent {
		t.Fatalf("resend: %+v, %v", rec, err)
	}
	sent := n.Sent()
	last := sent[len(sent)-1]
	if last.Key != key || last.To.Email != "ana@example.com" || last.Data.DaysRemaining != notes[0].Data.DaysRemaining {
		t.Fatalf("resent %+v, want the recorded data to ana", last)
	}
	if _, err := svc.ResendNotification(ctx, key, "maria"); !errors.Is(err, billing.ErrInvalidTransition) {
		t.Fatalf("resending a sent email: %v, want ErrInvalidTransition", err)
	}
	audit, _ := st.ListAudit(ctx, billing.AuditFilter{Action: billing.AuditNotificationResent})
	if len(audit) != 2 || audit[0].Actor != "maria" || audit[1].Details["result"] != "sent" {
		t.Fatalf("resend audit: %+v", audit)
	}
}

func TestRerunSubscriptionDryRunChangesNothing(t *testing.T) {
	ctx := context.Background()
	st, svc, n, _ := consoleFixture(t)
	p, res, err := svc.RerunSubscription(ctx, billing.JobCheckExpiring, "s-ana", "", true)
	if err != nil || res != nil || p.Total != 1 || p.Items[0].SubscriptionID != "s-ana" {
		t.Fatalf("dry run: %+v, %v, %v; want s-ana alone", p, res, err)
	}
	if len(n.Sent()) != 0 {
		t.Fatal("the dry run sent email")
	}
	if _, _, err := svc.RerunSubscription(ctx, billing.JobCheckExpiring, "s-ana", "", false); !errors.Is(err, billing.ErrInvalidInput) {
		t.Fatalf("run without operator: %v", err)
	}
	_, res, err = svc.RerunSubscription(ctx, billing.JobCheckExpiring, "s-ana", "maria", false)
	if err != nil || res.Found() != 1 {
		t.Fatalf("rerun: %v, %v", res, err)
	}
	if sent := n.Sent(); len(sent) != 1 || sent[0].To.UserID != "ana" {
		t.Fatalf("rerun sent %+v, want ana's warning only", sent)
	}
	if bob, _ := st.GetSubscription(ctx, "s-bob"); bob.ExpirationWarningSent {
		t.Fatal("the rerun of ana's subscription warned bob")
	}
	audit, _ := st.ListAudit(ctx, billing.AuditFilter{Action: billing.AuditSubscriptionRerun})
	if len(audit) != 1 || audit[0].Actor != "maria" || audit[0].EntityID != "s-ana" {
		t.Fatalf("rerun audit: %+v", audit)
	}
	if _, _, err := svc.RerunSubscription(ctx, billing.JobCleanupSessions, "s-ana", "maria", true); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("rerun of a job without subscriptions: %v", err)
	}
}

func TestForecastCancellationsAndSnapshots(t *testing.T) {
	ctx := context.Background()
	st, svc, _, clock := consoleFixture(t)
	auto := testkit.AutoRenewing(testkit.Subscription("s-auto", "bob", "p", testkit.Epoch.Add(10*day)), billing.GatewayStripe)
	testkit.Seed(t, st, auto)
	fc, err := svc.Forecast(ctx, 30)
	if err != nil || len(fc) != 1 || fc[0].Amount != 1000 || fc[0].Gateway != billing.GatewayStripe || fc[0].Currency != "BRL" {
		t.Fatalf("forecast %+v, %v; want 1000 BRL through stripe", fc, err)
	}
	clock.Advance(3 * day)
	if _, err := svc.ProcessExpiredSubscriptions(ctx); err != nil {
		t.Fatal(err)
	}
	cs, err := svc.Cancellations(ctx, 3)
	if err != nil || len(cs) != 3 || cs[2].BySource["expiry"] != 2 {
		t.Fatalf("cancellations %+v, %v; want 2 expiries this month", cs, err)
	}
	snap, err := svc.TakeSnapshot(ctx)
	if err != nil || snap.ByStatus[billing.SubscriptionStatusInactive] != 2 || snap.MRR["BRL"] != 1000 {
		t.Fatalf("snapshot %+v, %v", snap, err)
	}
	snaps, err := svc.Snapshots(ctx, 90)
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots %+v, %v", snaps, err)
	}
}
