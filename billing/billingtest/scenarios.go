package billingtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

var basic = testkit.Plan("basic", billing.CycleMonthly, 2990)

// A user pays while the expiry job works on their lapsed subscription: the payment lands
// between the job's claim and its transition. Proves: the job's conditional write fails and
// it does nothing more (no access revoked, no "expired" email); the user keeps what they paid
// for.
func (s *suite) paymentBetweenClaimAndExpiry(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	sub := testkit.Subscription("s1", "u1", "basic", now.Add(-time.Hour))
	pay := testkit.Payment("pay1", "u1", "basic", 2990, now.Add(-time.Minute))
	pay.SubscriptionID = "s1"
	e := s.env(ctx, t, billing.Config{}, basic, testkit.UserWithAccess("u1", "basic", "s1", sub.CurrentPeriodEnd), sub, pay)
	hook := &hookStore{Store: e.st, afterClaim: func(ctx context.Context, claimed []billing.Subscription) {
		if _, err := e.svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay1"}); err != nil {
			t.Errorf("ProcessApproved during the sweep: %v", err)
		}
	}}
	svc := e.service(hook, billing.Config{})
	res, err := svc.ProcessExpiredSubscriptions(ctx)
	must(t, err, "ProcessExpiredSubscriptions")
	if !hook.fired {
		t.Fatal("the sweep claimed nothing")
	}
	got := e.sub("s1")
	if got.Status != billing.SubscriptionStatusActive || !got.CurrentPeriodEnd.After(now) {
		t.Fatalf("paid subscription is %s until %v, want active into the future", got.Status, got.CurrentPeriodEnd)
	}
	if u := e.user("u1"); !u.HasAccess(now) {
		t.Fatalf("user who paid has no access: %+v", u)
	}
	if k := e.sentKinds("s1"); slices.Contains(k, billing.NotificationKindExpired) {
		t.Fatalf("user who paid was emailed %v", k)
	}
	if res.Processed != 0 || res.Skipped != 1 {
		t.Fatalf("result %+v, want nothing processed and the record skipped", res)
	}
	e.noPending()
}

// The host application cancels a subscription while the warning job works on it. Proves:
// no warning goes out and the host's status is not overwritten with the one the job read.
func (s *suite) hostCancelsBetweenClaimAndWarning(ctx context.Context, t *testing.T) {
	sub := testkit.Subscription("s1", "u1", "basic", testkit.Epoch.Add(2*day))
	e := s.env(ctx, t, billing.Config{}, basic, testkit.UserWithAccess("u1", "basic", "s1", sub.CurrentPeriodEnd), sub)
	hook := &hookStore{Store: e.st, afterClaim: func(ctx context.Context, _ []billing.Subscription) {
		if err := s.opts.HostWrite(ctx, e.st, "s1", billing.FieldStatus, string(billing.SubscriptionStatusCancelled)); err != nil {
			t.Errorf("host write: %v", err)
		}
	}}
	res, err := e.service(hook, billing.Config{}).CheckExpiringSubscriptions(ctx)
	must(t, err, "CheckExpiringSubscriptions")
	if got := e.sub("s1"); got.Status != billing.SubscriptionStatusCancelled || got.ExpirationWarningSent {
		t.Fatalf("record is %s, warned=%v; want the host's cancelled, not warned", got.Status, got.ExpirationWarningSent)
	}
	if n := e.notif.Count(""); n != 0 || res.NotificationsSent != 0 {
		t.Fatalf("%d notifications sent (result %+v) for a subscription the host cancelled", n, res)
	}
	e.noPending()
}

// The host changes a field the job does not touch while the job works on the record.
// Proves: the job's write carries only the fields it changed, so the host's value survives
// and the warning still goes out.
func (s *suite) hostWriteToAnotherFieldSurvives(ctx context.Context, t *testing.T) {
	sub := testkit.Subscription("s1", "u1", "basic", testkit.Epoch.Add(2*day))
	e := s.env(ctx, t, billing.Config{}, basic, testkit.Plan("pro", billing.CycleMonthly, 4990),
		testkit.UserWithAccess("u1", "basic", "s1", sub.CurrentPeriodEnd), sub)
	hook := &hookStore{Store: e.st, afterClaim: func(ctx context.Context, _ []billing.Subscription) {
		if err := s.opts.HostWrite(ctx, e.st, "s1", billing.FieldPlanID, "pro"); err != nil {
			t.Errorf("host write: %v", err)
		}
	}}
	_, err := e.service(hook, billing.Config{}).CheckExpiringSubscriptions(ctx)
	must(t, err, "CheckExpiringSubscriptions")
	got := e.sub("s1")
	if got.PlanID != "pro" {
		t.Fatalf("plan_id is %q after the job's write, want the host's %q", got.PlanID, "pro")
	}
	if !got.ExpirationWarningSent || e.notif.Count(billing.NotificationKindExpiring) != 1 {
		t.Fatalf("warned=%v, %d warnings; want the warning sent and marked", got.ExpirationWarningSent, e.notif.Count(billing.NotificationKindExpiring))
	}
	e.noPending()
}

// Three replicas run the warning job at once over the same due records, with a notifier
// slow enough that their batches overlap. Proves: every warning is sent exactly once and
// every record ends marked, with nothing pending.
func (s *suite) concurrentRunsSendOnce(ctx context.Context, t *testing.T) {
	n := s.opts.Records
	records := []any{basic}
	for i := range n {
		id := fmt.Sprintf("s%03d", i)
		uid := fmt.Sprintf("u%03d", i)
		sub := testkit.Subscription(id, uid, "basic", testkit.Epoch.Add(day+time.Duration(i)*time.Minute))
		records = append(records, testkit.UserWithAccess(uid, "basic", id, sub.CurrentPeriodEnd), sub)
	}
	e := s.env(ctx, t, billing.Config{}, records...)
	slow := billing.NotifierFunc(func(ctx context.Context, m billing.Notification) error {
		time.Sleep(2 * time.Millisecond)
		return e.notif.Notify(ctx, m)
	})
	var wg sync.WaitGroup
	results := make([]billing.ExpiringResult, 3)
	for i := range 3 {
		svc := e.serviceWith(e.replica(), slow, billing.Config{BatchSize: max(n/4, 1)})
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := svc.CheckExpiringSubscriptions(ctx)
			if err != nil {
				t.Errorf("replica %d: %v", i, err)
			}
			results[i] = res
		}()
	}
	wg.Wait()
	if got := e.sentOncePerKey(); got != n {
		t.Fatalf("%d distinct warnings sent, want %d (results %+v)", got, n, results)
	}
	total := 0
	for _, r := range results {
		total += r.NotificationsSent
	}
	if total != n {
		t.Fatalf("results count %d sends, want %d: %+v", total, n, results)
	}
	for i := range n {
		if id := fmt.Sprintf("s%03d", i); !e.sub(id).ExpirationWarningSent {
			t.Fatalf("%s not marked warned", id)
		}
	}
	e.noPending()
}

// A run's batch takes longer than its claim lease. Another run starts once the first lease
// would have ended. Proves: the first run renews its leases while it works, so the second
// takes nothing of it and no warning goes out twice. Runs on the wall clock.
func (s *suite) leaseRunsOutMidBatch(ctx context.Context, t *testing.T) {
	const n, lease = 12, 300 * time.Millisecond
	now := time.Now()
	records := []any{basic}
	for i := range n {
		id, uid := fmt.Sprintf("s%02d", i), fmt.Sprintf("u%02d", i)
		sub := testkit.Subscription(id, uid, "basic", now.Add(day+time.Duration(i)*time.Minute))
		records = append(records, testkit.UserWithAccess(uid, "basic", id, sub.CurrentPeriodEnd), sub)
	}
	e := s.env(ctx, t, billing.Config{}, records...)
	var mu sync.Mutex
	started := make(chan struct{})
	var once sync.Once
	slow := billing.NotifierFunc(func(ctx context.Context, m billing.Notification) error {
		once.Do(func() { close(started) })
		time.Sleep(lease / 3)
		mu.Lock()
		defer mu.Unlock()
		return e.notif.Notify(ctx, m)
	})
	cfg := billing.Config{Clock: billing.SystemClock(), ClaimLease: lease, SendConcurrency: 1}
	first, second := e.serviceWith(e.replica(), slow, cfg), e.serviceWith(e.replica(), slow, cfg)
	done := make(chan billing.ExpiringResult, 1)
	go func() {
		res, err := first.CheckExpiringSubscriptions(ctx)
		if err != nil {
			t.Errorf("first run: %v", err)
		}
		done <- res
	}()
	<-started
	time.Sleep(2 * lease) // the first run's original leases are over; it is still sending
	res2, err := second.CheckExpiringSubscriptions(ctx)
	must(t, err, "second run")
	res1 := <-done
	if got := e.sentOncePerKey(); got != n {
		t.Fatalf("%d distinct warnings, want %d (first %+v, second %+v)", got, n, res1, res2)
	}
	if res1.NotificationsSent+res2.NotificationsSent != n {
		t.Fatalf("runs count %d+%d sends, want %d", res1.NotificationsSent, res2.NotificationsSent, n)
	}
}

// The notifier fails transiently for one record. Proves: the record's transition is stored
// with its email pending; the next run sends it (once) and clears it, without sending the
// others again.
func (s *suite) failedSendStaysPending(ctx context.Context, t *testing.T) {
	end := testkit.Epoch.Add(2 * day)
	e := s.env(ctx, t, billing.Config{}, basic, testkit.User("u"),
		testkit.Subscription("s1", "u", "basic", end), testkit.Subscription("s2", "u", "basic", end.Add(time.Millisecond)),
		testkit.Subscription("s3", "u", "basic", end.Add(2*time.Millisecond)))
	svc := e.service(e.st, billing.Config{SendConcurrency: 1})
	e.notif.FailNext(1)
	res, err := svc.CheckExpiringSubscriptions(ctx)
	must(t, err, "first run")
	if res.TotalFound != 3 || res.NotificationsSent != 2 || res.Failed != 1 {
		t.Fatalf("first run %+v, want 3 found, 2 sent, 1 failed", res)
	}
	failedID := e.notif.Failed()[0].Data.SubscriptionID
	if got := e.sub(failedID); got.Pending == nil || len(got.Pending.Notifications) != 1 {
		t.Fatalf("%s: pending effects %+v, want its email pending", failedID, got.Pending)
	}
	res, err = svc.CheckExpiringSubscriptions(ctx)
	must(t, err, "second run")
	if res.Resumed != 1 || res.NotificationsSent != 1 || res.Failed != 0 {
		t.Fatalf("second run %+v, want the pending one resumed and sent", res)
	}
	if got := e.sentOncePerKey(); got != 3 {
		t.Fatalf("%d warnings, want 3", got)
	}
	audits, err := e.st.ListAudit(ctx, billing.AuditFilter{Action: billing.AuditWarningSent})
	must(t, err, "ListAudit")
	if len(audits) != 3 {
		t.Fatalf("%d warning audit entries, want 3", len(audits))
	}
	e.noPending()
}

// Every send fails transiently (an SMTP outage). Proves: the run stops after
// BreakerThreshold consecutive failures instead of paying every record's retries, reports
// success false with ErrNotifierUnavailable, marks nothing sent; after recovery each
// warning goes out exactly once.
func (s *suite) breakerStopsOutage(ctx context.Context, t *testing.T) {
	o := s.outage(ctx, t, func(i int) time.Time { return testkit.Epoch.Add(day + time.Duration(i)*time.Minute) },
		func(svc *billing.Service) (bool, error) {
			res, err := svc.CheckExpiringSubscriptions(ctx)
			return res.Success, err
		})
	for _, m := range o.e.notif.Failed() {
		if rec, err := o.e.st.GetNotification(ctx, m.Key); err == nil && rec.Status != billing.NotificationSending {
			t.Fatalf("notification %s recorded %s during the outage", m.Key, rec.Status)
		}
	}
	o.healAndRerun("warnings")
}

// outage is a job run while every send fails, on n subscriptions (s000 ... with users
// u000 ...) and a Service whose breaker trips after 3 failures.
type outage struct {
	e   *env
	svc *billing.Service
	n   int
	job func(*billing.Service) (success bool, err error)
}

// outage seeds Options.Records subscriptions on plan basic, the i-th ending at end(i), each
// user with access until then, and runs job once on a Service with BatchSize n/4,
// SendConcurrency 2 and BreakerThreshold 3 while every send fails transiently. It fails
// unless the run reports success false with ErrNotifierUnavailable, having attempted at
// most threshold+concurrency (5) sends.
func (s *suite) outage(ctx context.Context, t *testing.T, end func(i int) time.Time, job func(*billing.Service) (bool, error)) *outage {
	t.Helper()
	n := s.opts.Records
	records := []any{basic}
	for i := range n {
		id, uid := fmt.Sprintf("s%03d", i), fmt.Sprintf("u%03d", i)
		sub := testkit.Subscription(id, uid, "basic", end(i))
		records = append(records, testkit.UserWithAccess(uid, "basic", id, sub.CurrentPeriodEnd), sub)
	}
	e := s.env(ctx, t, billing.Config{}, records...)
	svc := e.service(e.st, billing.Config{BatchSize: max(n/4, 1), SendConcurrency: 2, BreakerThreshold: 3})
	e.notif.FailNext(1 << 20)
	success, err := job(svc)
	if !errors.Is(err, billing.ErrNotifierUnavailable) || success {
		t.Fatalf("run during the outage: success %v, %v; want success false with ErrNotifierUnavailable", success, err)
	}
	if a := e.notif.Attempts(); a > 3+2 {
		t.Fatalf("%d sends attempted during the outage, want at most threshold+concurrency (5)", a)
	}
	return &outage{e: e, svc: svc, n: n, job: job}
}

// healAndRerun heals the notifier and runs the job three times. It fails unless every run
// succeeds, every email (what, for the message) went out exactly once, one for each of the
// n subscriptions, and nothing is left pending.
func (o *outage) healAndRerun(what string) {
	o.e.t.Helper()
	o.e.notif.Heal()
	for range 3 {
		if _, err := o.job(o.svc); err != nil {
			o.e.t.Fatalf("run after recovery: %v", err)
		}
	}
	if got := o.e.sentOncePerKey(); got != o.n {
		o.e.t.Fatalf("%d distinct %s after recovery, want %d", got, what, o.n)
	}
	o.e.noPending()
}

// Auto-renewing subscriptions past their grace period are looked up before they expire.
// Proves: a live answer with a later period renews (access kept, renewed email), an ended
// answer expires, and an answer without a status or an error fails that record, which keeps
// its state and grace.
func (s *suite) autoRenewingAskedBeforeExpiry(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	end := now.Add(-4 * day) // past the default 3-day grace
	mk := func(id string) billing.Subscription {
		return testkit.AutoRenewing(testkit.Subscription(id, "u-"+id, "basic", end), billing.GatewayStripe)
	}
	records := []any{basic}
	for _, id := range []string{"renewed", "ended", "blank", "broken"} {
		records = append(records, testkit.UserWithAccess("u-"+id, "basic", id, end), mk(id))
	}
	e := s.env(ctx, t, billing.Config{}, records...)
	next := billing.GatewaySubscription{Status: billing.SubscriptionStatusActive, PeriodStart: end, PeriodEnd: billing.AddMonths(end, 1)}
	svc := e.service(e.st, billing.Config{Renewals: map[string]billing.RenewalLookup{billing.GatewayStripe: lookup{
		"gw-renewed": answer(next),
		"gw-ended":   answer(billing.GatewaySubscription{Status: billing.SubscriptionStatusCancelled, PeriodEnd: end}),
		"gw-blank":   answer(billing.GatewaySubscription{}),
		"gw-broken":  func() (billing.GatewaySubscription, error) { return billing.GatewaySubscription{}, errors.New("503") },
	}}})
	res, err := svc.ProcessExpiredSubscriptions(ctx)
	must(t, err, "ProcessExpiredSubscriptions")
	if res.Processed != 1 || res.Renewed != 1 || res.Failed != 2 {
		t.Fatalf("result %+v, want 1 expired, 1 renewed, 2 failed", res)
	}
	if got := e.sub("renewed"); got.Status != billing.SubscriptionStatusActive || !got.CurrentPeriodEnd.Equal(next.PeriodEnd) {
		t.Fatalf("renewed: %s until %v", got.Status, got.CurrentPeriodEnd)
	}
	if u := e.user("u-renewed"); !u.HasAccess(now) {
		t.Fatalf("renewed user lost access: %+v", u)
	}
	if k := e.sentKinds("renewed"); !slices.Equal(k, []billing.NotificationKind{billing.NotificationKindRenewed}) {
		t.Fatalf("renewed got %v", k)
	}
	if got := e.sub("ended"); got.Status != billing.SubscriptionStatusInactive {
		t.Fatalf("ended: %s, want inactive", got.Status)
	}
	for _, id := range []string{"blank", "broken"} {
		if got := e.sub(id); got.Status != billing.SubscriptionStatusActive || len(e.sentKinds(id)) != 0 {
			t.Fatalf("%s: %s with %v; a failed lookup must change nothing", id, got.Status, e.sentKinds(id))
		}
	}
	e.noPending()
}

// The renew job gets an answer without a status ("{}" from a misbehaving API). Proves: it is
// a failure of that record, not a "cancelling" mark that would remove its grace.
func (s *suite) renewUnknownStatus(ctx context.Context, t *testing.T) {
	sub := testkit.AutoRenewing(testkit.Subscription("s1", "u1", "basic", testkit.Epoch.Add(time.Hour)), billing.GatewayStripe)
	e := s.env(ctx, t, billing.Config{}, basic, testkit.UserWithAccess("u1", "basic", "s1", sub.CurrentPeriodEnd), sub)
	svc := e.service(e.st, billing.Config{Renewals: map[string]billing.RenewalLookup{
		billing.GatewayStripe: lookup{"gw-s1": answer(billing.GatewaySubscription{})}}})
	res, err := svc.RenewSubscriptions(ctx)
	must(t, err, "RenewSubscriptions")
	if res.Failed != 1 || res.Cancelling != 0 || res.Renewed != 0 {
		t.Fatalf("result %+v, want 1 failed", res)
	}
	if got := e.sub("s1"); got.CancelAtPeriodEnd || got.Status != billing.SubscriptionStatusActive {
		t.Fatalf("record %+v changed on an unknown answer", got)
	}
}

// An auto-renewing subscription expired two days ago though the gateway renewed it (the
// webhook was lost). Proves: the renew job asks again and restores the period and access.
func (s *suite) renewReconcilesExpired(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	end := now.Add(-5 * day)
	sub := testkit.AutoRenewing(testkit.Subscription("s1", "u1", "basic", end), billing.GatewayStripe)
	sub.Status = billing.SubscriptionStatusInactive
	u := testkit.User("u1")
	u.SubscriptionID, u.Status, u.AccessUntil = "s1", billing.SubscriptionStatusInactive, end
	e := s.env(ctx, t, billing.Config{}, basic, u, sub)
	next := billing.GatewaySubscription{Status: billing.SubscriptionStatusActive, PeriodStart: end, PeriodEnd: billing.AddMonths(end, 1)}
	svc := e.service(e.st, billing.Config{Renewals: map[string]billing.RenewalLookup{
		billing.GatewayStripe: lookup{"gw-s1": answer(next)}}})
	res, err := svc.RenewSubscriptions(ctx)
	must(t, err, "RenewSubscriptions")
	if res.Renewed != 1 {
		t.Fatalf("result %+v, want the expired subscription renewed", res)
	}
	if got := e.sub("s1"); got.Status != billing.SubscriptionStatusActive || !got.CurrentPeriodEnd.Equal(next.PeriodEnd) {
		t.Fatalf("record %s until %v", got.Status, got.CurrentPeriodEnd)
	}
	if got := e.user("u1"); !got.HasAccess(now) || got.PlanID != "basic" {
		t.Fatalf("user %+v has no access back", got)
	}
	e.noPending()
}

// A user of the original application's schema (plan_id, no subscription_id) has an old
// subscription that lapses and a newer live one on another plan. Proves: expiring the old one
// keeps the access the live one grants.
func (s *suite) expiryKeepsOtherAccess(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	old := testkit.Subscription("old", "u1", "basic", now.Add(-time.Hour))
	live := testkit.Subscription("new", "u1", "pro", now.Add(20*day))
	u := testkit.User("u1")
	u.PlanID, u.Status, u.AccessUntil = "pro", billing.SubscriptionStatusActive, live.CurrentPeriodEnd
	e := s.env(ctx, t, billing.Config{}, basic, testkit.Plan("pro", billing.CycleMonthly, 4990), u, old, live)
	res, err := e.svc.ProcessExpiredSubscriptions(ctx)
	must(t, err, "ProcessExpiredSubscriptions")
	if res.Processed != 1 {
		t.Fatalf("result %+v, want the old one expired", res)
	}
	if got := e.user("u1"); got.PlanID != "pro" || !got.HasAccess(now) {
		t.Fatalf("user %+v lost the access the live subscription grants", got)
	}
	e.noPending()
}

// With the ladder 7,3,1 a record that fails (its plan is gone) is attempted and counted
// once per run, not once per offset.
func (s *suite) ladderFailureOnce(ctx context.Context, t *testing.T) {
	sub := testkit.Subscription("s1", "u1", "missing-plan", testkit.Epoch.Add(12*time.Hour))
	e := s.env(ctx, t, billing.Config{}, basic, testkit.UserWithAccess("u1", "basic", "s1", sub.CurrentPeriodEnd), sub)
	svc := e.service(e.st, billing.Config{WarningDays: []int{7, 3, 1}})
	res, err := svc.CheckExpiringSubscriptions(ctx)
	must(t, err, "CheckExpiringSubscriptions")
	if res.TotalFound != 1 || res.Failed != 1 {
		t.Fatalf("result %+v, want total_found 1, failed 1", res)
	}
}

// The host changes a subscription's status between the processor's read and its write.
// Proves: the processor's conditional write does not put back the status it read.
func (s *suite) processorKeepsHostWrites(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	sub := testkit.AutoRenewing(testkit.Subscription("s1", "u1", "basic", now.Add(10*day)), billing.GatewayStripe)
	e := s.env(ctx, t, billing.Config{}, basic, testkit.UserWithAccess("u1", "basic", "s1", sub.CurrentPeriodEnd), sub)
	read := e.sub("s1")
	must(t, s.opts.HostWrite(ctx, e.st, "s1", billing.FieldStatus, string(billing.SubscriptionStatusCancelled)), "host write")
	changed := read
	changed.CancelAtPeriodEnd, changed.UpdatedAt = true, now
	_, err := billing.UpdateSubscription(ctx, e.st, read, changed)
	if !errors.Is(err, billing.ErrConflict) {
		t.Fatalf("write from a stale read: %v, want ErrConflict", err)
	}
	if got := e.sub("s1"); got.Status != billing.SubscriptionStatusCancelled || got.CancelAtPeriodEnd {
		t.Fatalf("record %s cancel_at_period_end=%v, want the host's state untouched", got.Status, got.CancelAtPeriodEnd)
	}
}

// The store fails for a moment right after a warning went out, when its send is recorded.
// Proves: the record is written once the store answers again, so the warning is not sent a
// second time by a later run (the original check-send-record sent it again).
func (s *suite) recordWriteFailsAfterSend(ctx context.Context, t *testing.T) {
	sub := testkit.Subscription("s1", "u1", "basic", testkit.Epoch.Add(2*day))
	e := s.env(ctx, t, billing.Config{}, basic, testkit.UserWithAccess("u1", "basic", "s1", sub.CurrentPeriodEnd), sub)
	flaky := &flakyFinish{Store: e.st, failures: 1}
	svc := e.service(flaky, billing.Config{})
	for range 2 {
		_, err := svc.CheckExpiringSubscriptions(ctx)
		must(t, err, "CheckExpiringSubscriptions")
		e.clock.Advance(time.Hour)
	}
	// Past every lease: a reservation left "sending" would now be taken over and resent.
	e.clock.Advance(day)
	_, err := svc.CheckExpiringSubscriptions(ctx)
	must(t, err, "CheckExpiringSubscriptions after the leases")
	if n := e.notif.Count(billing.NotificationKindExpiring); n != 1 {
		t.Fatalf("warning delivered %d times, want once", n)
	}
	rec, err := e.st.GetNotification(ctx, e.notif.Sent()[0].Key)
	must(t, err, "GetNotification")
	if rec.Status != billing.NotificationSent {
		t.Fatalf("record %+v, want sent", rec)
	}
	e.noPending()
}

// Every send fails transiently and every due record fits in one batch, so the breaker trips
// in the sweep's last batch. Proves: the run still reports success false with
// ErrNotifierUnavailable (the outage is not hidden because it began at the end).
func (s *suite) breakerInLastBatch(ctx context.Context, t *testing.T) {
	records := []any{basic}
	for i := range 10 {
		id, uid := fmt.Sprintf("s%02d", i), fmt.Sprintf("u%02d", i)
		sub := testkit.Subscription(id, uid, "basic", testkit.Epoch.Add(day+time.Duration(i)*time.Minute))
		records = append(records, testkit.UserWithAccess(uid, "basic", id, sub.CurrentPeriodEnd), sub)
	}
	e := s.env(ctx, t, billing.Config{}, records...)
	e.notif.FailNext(1 << 20)
	res, err := e.service(e.st, billing.Config{SendConcurrency: 1, BreakerThreshold: 3}).CheckExpiringSubscriptions(ctx)
	if !errors.Is(err, billing.ErrNotifierUnavailable) || res.Success {
		t.Fatalf("run %+v, %v; want success false with ErrNotifierUnavailable", res, err)
	}
}

// A warning's email keeps failing (the recipient's mailbox is full) until the period is
// over. Proves: the stuck email does not keep the record from expiring; once the period has
// ended the warning is dropped (it would say something false) and the expiry job expires the
// subscription and revokes access.
func (s *suite) stuckWarningDoesNotBlockExpiry(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	sub := testkit.Subscription("s1", "u1", "basic", now.Add(2*day))
	e := s.env(ctx, t, billing.Config{}, basic, testkit.UserWithAccess("u1", "basic", "s1", sub.CurrentPeriodEnd), sub)
	e.notif.FailNext(1 << 20)
	res, err := e.svc.CheckExpiringSubscriptions(ctx)
	must(t, err, "warning run")
	if res.Failed != 1 || e.sub("s1").Pending == nil {
		t.Fatalf("warning run %+v, want the email pending", res)
	}
	e.clock.Set(now.Add(3 * day)) // the period is over; the mailbox is still full
	exp, err := e.svc.ProcessExpiredSubscriptions(ctx)
	must(t, err, "expiry run")
	if exp.Resumed != 1 {
		t.Fatalf("expiry run %+v, want the stale warning finished first", exp)
	}
	// The expired email fails too (same mailbox) and stays pending; the expiry and the
	// access change are stored all the same.
	if got := e.sub("s1"); got.Status != billing.SubscriptionStatusInactive {
		t.Fatalf("subscription is %s three days after its end, want inactive (pending: %+v)", got.Status, got.Pending)
	}
	if u := e.user("u1"); u.PlanID != "" {
		t.Fatalf("user %+v kept the plan after the period ended", u)
	}
	for _, n := range e.notif.Sent() {
		if n.Kind == billing.NotificationKindExpiring {
			t.Fatalf("the stale warning went out after the period: %+v", n)
		}
	}
}

// renewkit once revoked a user of the original schema (subscription_id now names the old
// subscription X); the host then granted the plan again for a new subscription Y, writing
// only plan_id and status. Proves: when Y expires the access it granted is revoked (X, not
// live, gives no access), instead of being mistaken for access the host granted elsewhere.
func (s *suite) revokeAfterHostRegrant(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	x := testkit.Subscription("x", "u1", "basic", now.Add(-40*day))
	x.Status = billing.SubscriptionStatusInactive
	y := testkit.Subscription("y", "u1", "basic", now.Add(-time.Hour))
	u := testkit.User("u1")
	u.PlanID, u.SubscriptionID, u.Status, u.AccessUntil = "basic", "x", billing.SubscriptionStatusActive, y.CurrentPeriodEnd
	e := s.env(ctx, t, billing.Config{}, basic, u, x, y)
	res, err := e.svc.ProcessExpiredSubscriptions(ctx)
	must(t, err, "ProcessExpiredSubscriptions")
	if res.Processed != 1 {
		t.Fatalf("result %+v, want y expired", res)
	}
	if got := e.user("u1"); got.PlanID != "" || got.HasAccess(now) {
		t.Fatalf("user %+v keeps the plan after y, the only subscription that granted it, expired", got)
	}
}

// A payment renews the subscription after the warning job stored its transition and before
// the email went out. Proves: the warning about the old period end is not sent.
func (s *suite) warningMootAfterRenewal(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	sub := testkit.Subscription("s1", "u1", "basic", now.Add(2*day))
	pay := testkit.Payment("pay1", "u1", "basic", 2990, now)
	pay.SubscriptionID = "s1"
	e := s.env(ctx, t, billing.Config{}, basic, testkit.UserWithAccess("u1", "basic", "s1", sub.CurrentPeriodEnd), sub, pay)
	hook := &reserveHook{Store: e.st}
	hook.before = func() {
		if _, err := e.svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay1"}); err != nil {
			t.Errorf("ProcessApproved between transition and send: %v", err)
		}
	}
	_, err := e.service(hook, billing.Config{}).CheckExpiringSubscriptions(ctx)
	must(t, err, "CheckExpiringSubscriptions")
	if n := e.notif.Count(billing.NotificationKindExpiring); n != 0 {
		t.Fatalf("%d warnings about a period the user has just renewed", n)
	}
	e.noPending()
}

// reserveHook runs before once, right before the first ListSubscriptions the effects step
// makes after a transition: the moment a payment lands between a job's write and its email.
type reserveHook struct {
	billing.Store
	once   sync.Once
	before func()
}

func (h *reserveHook) ListSubscriptions(ctx context.Context, f billing.SubscriptionFilter, limit int) ([]billing.Subscription, error) {
	if len(f.UserIDs) > 0 {
		h.once.Do(h.before)
	}
	return h.Store.ListSubscriptions(ctx, f, limit)
}

// An email outage does not hold back expiries: with the notifier down, the expire job still
// ends every lapsed subscription and revokes its access (nobody keeps access they did not
// pay for because the email service is down); the breaker only stops the sends, which stay
// pending, and the run reports ErrNotifierUnavailable. After recovery each expired email
// goes out exactly once and nothing is left pending. Proves: a failure in the middle loses
// nothing and is retried.
func (s *suite) breakerDoesNotHoldBackExpiries(ctx context.Context, t *testing.T) {
	o := s.outage(ctx, t, func(i int) time.Time { return testkit.Epoch.Add(-day - time.Duration(i)*time.Minute) },
		func(svc *billing.Service) (bool, error) {
			res, err := svc.ProcessExpiredSubscriptions(ctx)
			return res.Success, err
		})
	for i := range o.n {
		id, uid := fmt.Sprintf("s%03d", i), fmt.Sprintf("u%03d", i)
		if st := o.e.sub(id).Status; st != billing.SubscriptionStatusInactive {
			t.Fatalf("%s is %s after the run during the outage, want inactive: the outage held back its expiry", id, st)
		}
		if u := o.e.user(uid); u.PlanID != "" {
			t.Fatalf("%s keeps plan %q after its subscription expired during the outage", uid, u.PlanID)
		}
	}
	o.healAndRerun("expired emails")
}
