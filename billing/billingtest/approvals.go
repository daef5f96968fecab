package billingtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

// errCrashed is what crashStore answers once its process has "died".
var errCrashed = errors.New("billingtest: the process crashed")

// crashStore counts the writes made through it and makes the process "crash" at the n-th
// one (n = 0: never): that write is made first when after is set, not made otherwise, and
// from then on every write fails, releasing locks included, so a lock held at the crash is
// left to its lease as a dead process leaves it. Reads go through.
//
// A FinishNotifications call counts one write per outcome it records: how the engine groups
// outcomes into calls depends on when its senders finish, so counting calls would number
// the writes after them differently from run to run. A crash at an outcome other than the
// last of its call is a crash before the call (one call is atomic).
type crashStore struct {
	billing.Store
	mu      sync.Mutex
	n       int
	after   bool
	writes  []string
	crashed bool
	// recorded: the notification keys whose sent record was written.
	recorded map[string]bool
}

// write records a write called name and runs it, unless the process is dead or dies now.
func (c *crashStore) write(name string, f func() error) error {
	return c.writeN(name, 1, f)
}

// writeN is write for a call that counts as count writes (at least one).
func (c *crashStore) writeN(name string, count int, f func() error) error {
	count = max(count, 1)
	c.mu.Lock()
	if c.crashed {
		c.mu.Unlock()
		return errCrashed
	}
	first := len(c.writes) + 1
	for range count {
		c.writes = append(c.writes, name)
	}
	crash := c.n >= first && c.n <= len(c.writes)
	made := !crash || c.after && c.n == len(c.writes)
	c.crashed = crash
	c.mu.Unlock()
	if !made {
		return errCrashed
	}
	if err := f(); err != nil || !crash {
		return err
	}
	return errCrashed
}

func (c *crashStore) written() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.writes...)
}

func (c *crashStore) InsertSubscription(ctx context.Context, x *billing.Subscription) error {
	return c.write("InsertSubscription", func() error { return c.Store.InsertSubscription(ctx, x) })
}

func (c *crashStore) UpdateSubscriptions(ctx context.Context, changes []billing.SubscriptionChange) (errs []error, err error) {
	err = c.write("UpdateSubscriptions", func() error {
		errs, err = c.Store.UpdateSubscriptions(ctx, changes)
		return err
	})
	return errs, err
}

func (c *crashStore) CompleteEffects(ctx context.Context, done []billing.EffectsDone) error {
	return c.write("CompleteEffects", func() error { return c.Store.CompleteEffects(ctx, done) })
}

func (c *crashStore) CompletePaymentEffects(ctx context.Context, id, token string) error {
	return c.write("CompletePaymentEffects", func() error { return c.Store.CompletePaymentEffects(ctx, id, token) })
}

func (c *crashStore) UpdateUsersAccess(ctx context.Context, changes []billing.UserAccessChange) (errs []error, err error) {
	err = c.write("UpdateUsersAccess", func() error {
		errs, err = c.Store.UpdateUsersAccess(ctx, changes)
		return err
	})
	return errs, err
}

func (c *crashStore) UpdatePayment(ctx context.Context, read, changed billing.Payment) error {
	return c.write("UpdatePayment", func() error { return c.Store.UpdatePayment(ctx, read, changed) })
}

func (c *crashStore) InsertAudit(ctx context.Context, a *billing.AuditEntry) error {
	return c.write("InsertAudit", func() error { return c.Store.InsertAudit(ctx, a) })
}

func (c *crashStore) CancelStalePayments(ctx context.Context, createdBefore, now time.Time, reason string, limit int, effects *billing.Effects) (out []billing.Payment, err error) {
	err = c.write("CancelStalePayments", func() (err error) {
		out, err = c.Store.CancelStalePayments(ctx, createdBefore, now, reason, limit, effects)
		return err
	})
	return out, err
}

func (c *crashStore) DeleteExpiredSessions(ctx context.Context, expiredBefore, now time.Time, limit int, effects *billing.Effects) (out []billing.Session, err error) {
	err = c.write("DeleteExpiredSessions", func() (err error) {
		out, err = c.Store.DeleteExpiredSessions(ctx, expiredBefore, now, limit, effects)
		return err
	})
	return out, err
}

func (c *crashStore) CompleteSessionEffects(ctx context.Context, token string) error {
	return c.write("CompleteSessionEffects", func() error { return c.Store.CompleteSessionEffects(ctx, token) })
}

func (c *crashStore) InsertAudits(ctx context.Context, entries []billing.AuditEntry) error {
	return c.write("InsertAudits", func() error { return c.Store.InsertAudits(ctx, entries) })
}

func (c *crashStore) ReserveNotifications(ctx context.Context, recs []billing.NotificationRecord, token string, now, leaseUntil time.Time) (ok []bool, err error) {
	err = c.write("ReserveNotifications", func() error {
		ok, err = c.Store.ReserveNotifications(ctx, recs, token, now, leaseUntil)
		return err
	})
	return ok, err
}

func (c *crashStore) FinishNotifications(ctx context.Context, recs []billing.NotificationRecord, token string) error {
	return c.writeN("FinishNotifications", len(recs), func() error {
		err := c.Store.FinishNotifications(ctx, recs, token)
		if err == nil {
			c.mu.Lock()
			if c.recorded == nil {
				c.recorded = map[string]bool{}
			}
			for _, r := range recs {
				c.recorded[r.Key] = true
			}
			c.mu.Unlock()
		}
		return err
	})
}

// inFlight returns the keys of the notifications sent through n whose sent record was not
// written before the crash: the sends in flight, which a restart may repeat.
func (c *crashStore) inFlight(n *testkit.Notifier) map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]bool{}
	for _, x := range n.Sent() {
		if !c.recorded[x.Key] {
			out[x.Key] = true
		}
	}
	return out
}

func (c *crashStore) ReleaseLock(ctx context.Context, l billing.Lease) error {
	c.mu.Lock()
	dead := c.crashed
	c.mu.Unlock()
	if dead {
		return errCrashed
	}
	return c.Store.ReleaseLock(ctx, l)
}

// approvalCase is one approval to crash in the middle of, and what it must leave behind.
type approvalCase struct {
	records []any
	// created: the approval creates the user's first subscription (audited as created, with
	// a welcome email); otherwise it renews subscription "s" (audited as renewed).
	created bool
	// end is the period end the approval leaves, given the period start it left (a first
	// subscription starts when the approval that creates it runs).
	end func(start time.Time) time.Time
}

func approvalCases() map[string]approvalCase {
	now, end := testkit.Epoch, testkit.Epoch.Add(5*day)
	basic := testkit.Plan("basic", billing.CycleMonthly, 2990)
	return map[string]approvalCase{
		"FirstSubscription": {created: true, end: func(start time.Time) time.Time {
			if !start.Equal(now) && !start.Equal(now.Add(time.Hour)) {
				return time.Time{} // neither the first delivery's time nor the redelivery's
			}
			return billing.AddMonths(start, 1)
		},
			records: []any{basic, testkit.User("u"), payment("pay1", "u", "basic")}},
		"Renewal": {end: func(time.Time) time.Time { return billing.AddMonths(end, 1) },
			records: []any{basic, testkit.UserWithAccess("u", "basic", "s", end), testkit.Subscription("s", "u", "basic", end),
				payment("pay1", "u", "basic", forSub("s"))}},
	}
}

// approvalSurvivesCrashAtEveryWrite proves an approval's effects survive a crash: the
// process dies at each write an approval makes in turn (before it and just after it), and
// the gateway's redelivery of the same approval then leaves exactly what one clean approval
// leaves: the subscription once with the paid period, the user's access, one subscription
// created (or renewed) and one payment approved audit entry, the payment-confirmed email
// (and for a first subscription the welcome email) sent exactly once, nothing pending.
func (s *suite) approvalSurvivesCrashAtEveryWrite(ctx context.Context, t *testing.T) {
	for name, tc := range approvalCases() {
		t.Run(name, func(t *testing.T) {
			approve := func(svc *billing.Service) error {
				_, err := svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay1"})
				return err
			}
			// The approval is finished by the redelivery alone: no job resumes it.
			s.crashThenFinish(ctx, t, tc.records, approve, nil,
				func(e *env, inFlight map[string]bool) { e.wantApproved(tc, inFlight) })
		})
	}
}

// atEveryWrite runs crashAt in a subtest for each of writes in turn (n counts from 1), once
// crashing before the write and once just after it; the subtest is named after the write
// (03_after_UpdatePayment).
func atEveryWrite(t *testing.T, writes []string, crashAt func(t *testing.T, n int, after bool)) {
	t.Helper()
	for n := 1; n <= len(writes); n++ {
		for _, after := range []bool{false, true} {
			when := "before"
			if after {
				when = "after"
			}
			t.Run(fmt.Sprintf("%02d_%s_%s", n, when, writes[n-1]), func(t *testing.T) { crashAt(t, n, after) })
		}
	}
}

// welcomeSurvivesFailedCreationAudit proves the welcome email of a first subscription does
// not depend on the audit log: the creation's audit write fails once, and after the
// redelivery the welcome (and the confirmation) went out exactly once and the creation is
// audited once.
func (s *suite) welcomeSurvivesFailedCreationAudit(ctx context.Context, t *testing.T) {
	tc := approvalCases()["FirstSubscription"]
	e := s.env(ctx, t, billing.Config{}, tc.records...)
	flaky := &failAudit{Store: e.st, action: billing.AuditSubscriptionCreated, failures: 1}
	_, err := e.service(flaky, billing.Config{}).Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay1"})
	if err == nil || flaky.failures != 0 {
		t.Fatalf("ProcessApproved: %v with %d audit failures left; want the failed audit write reported", err, flaky.failures)
	}
	_, err = e.svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay1"})
	must(t, err, "redelivered ProcessApproved")
	if n := e.notif.Count(billing.NotificationKindWelcome); n != 1 {
		t.Fatalf("%d welcome emails after the creation's audit write failed once, want 1", n)
	}
	e.wantApproved(tc, nil)
}

// failAudit fails the first failures audit writes that carry an entry with action.
type failAudit struct {
	billing.Store
	action   string
	mu       sync.Mutex
	failures int
}

func (f *failAudit) fail(entries ...billing.AuditEntry) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range entries {
		if a.Action == f.action && f.failures > 0 {
			f.failures--
			return true
		}
	}
	return false
}

func (f *failAudit) InsertAudit(ctx context.Context, a *billing.AuditEntry) error {
	if f.fail(*a) {
		return errors.New("billingtest: audit write failed")
	}
	return f.Store.InsertAudit(ctx, a)
}

func (f *failAudit) InsertAudits(ctx context.Context, entries []billing.AuditEntry) error {
	if f.fail(entries...) {
		return errors.New("billingtest: audit write failed")
	}
	return f.Store.InsertAudits(ctx, entries)
}

// wantApproved fails unless pay1's approval is complete, exactly once, as tc says. The
// emails whose keys are inFlight (sent at a crash, their record not written) may have gone
// out twice; every other key once.
func (e *env) wantApproved(tc approvalCase, inFlight map[string]bool) {
	e.t.Helper()
	subs := e.userSubs("u")
	if len(subs) != 1 {
		e.t.Fatalf("user u has %d subscriptions, want 1", len(subs))
	}
	sub := subs[0]
	end := tc.end(sub.CurrentPeriodStart)
	if sub.Status != billing.SubscriptionStatusActive || !sub.CurrentPeriodEnd.Equal(end) || len(sub.AppliedPayments) != 1 || sub.AppliedPayments[0] != "pay1" {
		e.t.Fatalf("subscription %+v, want active until %v with pay1 applied once", sub, end)
	}
	if u := e.user("u"); u.PlanID != "basic" || u.SubscriptionID != sub.ID || !u.AccessUntil.Equal(end) {
		e.t.Fatalf("user access %+v, want basic through %s until %v", u, sub.ID, end)
	}
	if p := e.payment("pay1"); p.Status != billing.PaymentStatusApproved || p.SubscriptionID != sub.ID {
		e.t.Fatalf("payment %+v, want approved for %s", p, sub.ID)
	}
	created, renewed, welcome := 1, 0, 1
	if !tc.created {
		created, renewed, welcome = 0, 1, 0
	}
	e.wantAudits(billing.AuditSubscriptionCreated, sub.ID, created)
	e.wantAudits(billing.AuditSubscriptionRenewed, sub.ID, renewed)
	e.wantAudits(billing.AuditPaymentApproved, "pay1", 1)
	sent := e.wantSentOnce(inFlight)
	keys, seen := map[billing.NotificationKind]int{}, map[string]bool{}
	for _, n := range e.notif.Sent() {
		if !seen[n.Key] {
			seen[n.Key] = true
			keys[n.Kind]++
		}
	}
	if keys[billing.NotificationKindPaymentSuccessful] != 1 || keys[billing.NotificationKindWelcome] != welcome || len(keys) != 1+welcome {
		e.t.Fatalf("emails sent %v, want one payment-confirmed and %d welcome", sent, welcome)
	}
	e.noPending()
}

// paidGetsAccessOverLapsed proves a payment for a new subscription moves the user's access
// onto it when the subscription the access points at is still active but its period has
// ended (the expire job has not reached it yet): whoever paid has access at once, not
// after the next expire run.
func (s *suite) paidGetsAccessOverLapsed(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	pending := testkit.Subscription("s-new", "u", "pro", time.Time{})
	pending.Status = billing.SubscriptionStatusPending
	e := s.env(ctx, t, billing.Config{}, testkit.Plan("basic", billing.CycleMonthly, 2990), testkit.Plan("pro", billing.CycleMonthly, 5990),
		testkit.UserWithAccess("u", "basic", "s-old", now.Add(-day)),
		testkit.Subscription("s-old", "u", "basic", now.Add(-day)),
		pending, payment("pay-new", "u", "pro", forSub("s-new")))
	res, err := e.svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay-new", Actor: "stripe"})
	must(t, err, "ProcessApproved")
	if res.SubscriptionID != "s-new" || e.sub("s-new").Status != billing.SubscriptionStatusActive {
		t.Fatalf("approval %+v, s-new %+v", res, e.sub("s-new"))
	}
	if u := e.user("u"); u.SubscriptionID != "s-new" || u.PlanID != "pro" || !u.HasAccess(now) {
		t.Fatalf("the paying user has no access: %+v", u)
	}
}
