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

// outcomeCase is one payment-only transition to crash in the middle of: the call that
// makes it (and, redelivered, finishes it) and what it must leave behind.
type outcomeCase struct {
	from   billing.PaymentStatus
	call   func(ctx context.Context, svc *billing.Service) error
	want   billing.PaymentStatus
	action string // the one audit entry the transition leaves
	email  bool   // whether it sends the payment-failed email
}

func outcomeCases() map[string]outcomeCase {
	fail := billing.FailParams{PaymentID: "pay1", Reason: "card declined", Actor: "stripe"}
	return map[string]outcomeCase{
		"Failed": {from: billing.PaymentStatusPending, want: billing.PaymentStatusFailed, action: billing.AuditPaymentFailed, email: true,
			call: func(ctx context.Context, svc *billing.Service) error {
				_, err := svc.Processor().ProcessFailed(ctx, fail)
				return err
			}},
		"Cancelled": {from: billing.PaymentStatusFailed, want: billing.PaymentStatusCancelled, action: billing.AuditPaymentCancelled,
			call: func(ctx context.Context, svc *billing.Service) error {
				_, err := svc.Processor().ProcessCancelled(ctx, fail)
				return err
			}},
		// An approval whose charge does not match: refused, the payment failed, no email.
		"Rejected": {from: billing.PaymentStatusPending, want: billing.PaymentStatusFailed, action: billing.AuditPaymentFailed,
			call: func(ctx context.Context, svc *billing.Service) error {
				_, err := svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay1", Actor: "stripe",
					Charged: billing.Money{Amount: 990, Currency: "BRL"}})
				if errors.Is(err, billing.ErrChargeMismatch) {
					return nil // the refusal is the outcome
				}
				if err == nil {
					return errors.New("a mismatched charge was approved")
				}
				return err
			}},
	}
}

// paymentOutcomeSurvivesCrashAtEveryWrite proves a payment-only transition (failed,
// cancelled, a charge mismatch rejected) loses nothing to a crash and repeats nothing: the
// process dies at each write the transition makes in turn (before it and just after it),
// and then either the gateway's redelivery of the same outcome or, when the crash left the
// payment changed, the next cleanup_pending_payments run finishes it, leaving exactly what
// one clean transition leaves: the payment in its new status, one audit entry, the
// payment-failed email (for a failure) sent once (twice only when it was in flight at the
// crash), nothing pending.
func (s *suite) paymentOutcomeSurvivesCrashAtEveryWrite(ctx context.Context, t *testing.T) {
	for name, tc := range outcomeCases() {
		t.Run(name, func(t *testing.T) {
			records := []any{basic, testkit.User("u"), payment("pay1", "u", "basic", func(p *billing.Payment) { p.Status = tc.from })}
			s.crashThenFinish(ctx, t, records, func(svc *billing.Service) error { return tc.call(ctx, svc) },
				func(e *env) bool { return e.payment("pay1").Status != tc.from },
				func(e *env, inFlight map[string]bool) { e.wantOutcome(tc, inFlight) })
		})
	}
}

// crashThenFinish runs call once cleanly on a store seeded with records, checking what it
// leaves, then for each write it made in turn: on a fresh store, call through a crashStore
// dying at that write (before it, just after it), and, once the dead process's locks and
// reservations have run out, the gateway's redelivery (call again). When changed is not
// nil each crash is also finished the other way, in a "job" subtest beside a "redelivery"
// one: where changed says the crash left the payment changed, by the next
// cleanup_pending_payments run. check then gets the keys of the emails in flight at the
// crash (sent, their record not written).
func (s *suite) crashThenFinish(ctx context.Context, t *testing.T, records []any, call func(*billing.Service) error,
	changed func(*env) bool, check func(e *env, inFlight map[string]bool)) {
	t.Helper()
	clean := s.env(ctx, t, billing.Config{}, records...)
	counter := &crashStore{Store: clean.st}
	must(t, call(clean.service(counter, billing.Config{})), "clean run")
	check(clean, nil)
	writes := counter.written()
	crashThen := func(t *testing.T, n int, after bool, byJob bool) {
		e := s.env(ctx, t, billing.Config{}, records...)
		crash := &crashStore{Store: e.st, n: n, after: after}
		if err := call(e.service(crash, billing.Config{})); !errors.Is(err, errCrashed) {
			t.Fatalf("the run crashed at write %d (%s) and reported %v", n, writes[n-1], err)
		}
		inFlight := crash.inFlight(e.notif)
		e.clock.Advance(time.Hour)
		if byJob && changed(e) {
			_, err := e.svc.CleanupPendingPayments(ctx)
			must(t, err, "CleanupPendingPayments after the crash")
		} else {
			must(t, call(e.svc), "redelivery after the crash")
		}
		check(e, inFlight)
	}
	atEveryWrite(t, writes, func(t *testing.T, n int, after bool) {
		if changed == nil {
			crashThen(t, n, after, false)
			return
		}
		for _, by := range []string{"redelivery", "job"} {
			t.Run(by, func(t *testing.T) { crashThen(t, n, after, by == "job") })
		}
	})
}

// wantOutcome fails unless pay1's transition is complete, exactly once, as tc says. An email
// whose key is inFlight (sent at a crash, its record not written) may have gone out twice.
func (e *env) wantOutcome(tc outcomeCase, inFlight map[string]bool) {
	e.t.Helper()
	if p := e.payment("pay1"); p.Status != tc.want {
		e.t.Fatalf("payment %+v, want %s", p, tc.want)
	}
	e.wantAudits(tc.action, "pay1", 1)
	if n := len(e.audits("", "pay1")); n != 1 {
		e.t.Fatalf("%d audit entries for pay1, want the one %s", n, tc.action)
	}
	for _, n := range e.notif.Sent() {
		if n.Kind != billing.NotificationKindPaymentFailed || n.Data.PaymentID != "pay1" || n.Data.Reason == "" {
			e.t.Fatalf("unexpected email %+v", n)
		}
	}
	sent := e.wantSentOnce(inFlight)
	want := 0
	if tc.email {
		want = 1
	}
	if len(sent) != want {
		e.t.Fatalf("payment-failed emails %v, want %d", sent, want)
	}
	e.noPending()
}

// failureEffectsDoNotHoldUpApproval: the payment-failed email fails to send (the notifier is
// down), then the gateway reports the payment paid after all. Proves: the approval is not
// held up by the failure's unfinished effects (the payment is approved, the user has
// access), and the next cleanup_pending_payments run finishes them without the email,
// which is no longer true: the failure is audited once, nothing stays pending.
func (s *suite) failureEffectsDoNotHoldUpApproval(ctx context.Context, t *testing.T) {
	e := s.env(ctx, t, billing.Config{}, basic, testkit.User("u"), payment("pay1", "u", "basic"))
	down := e.serviceWith(e.st, failingKind{e.notif, billing.NotificationKindPaymentFailed}, billing.Config{})
	if _, err := down.Processor().ProcessFailed(ctx, billing.FailParams{PaymentID: "pay1", Reason: "card declined"}); err == nil {
		t.Fatal("ProcessFailed reported success with its email not sent")
	}
	if p := e.payment("pay1"); p.Status != billing.PaymentStatusFailed || p.Pending == nil {
		t.Fatalf("payment %+v after the failed send, want failed with its effects pending", p)
	}
	_, err := down.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay1"})
	must(t, err, "ProcessApproved while payment-failed emails cannot be sent")
	if p := e.payment("pay1"); p.Status != billing.PaymentStatusApproved {
		t.Fatalf("payment %+v, want approved", p)
	}
	if u := e.user("u"); !u.HasAccess(e.clock.Now()) {
		t.Fatalf("the paying user has no access: %+v", u)
	}
	res, err := e.svc.CleanupPendingPayments(ctx)
	must(t, err, "CleanupPendingPayments")
	if res.Resumed != 1 || res.Failed != 0 {
		t.Fatalf("cleanup %+v, want the failure's effects finished", res)
	}
	e.wantAudits(billing.AuditPaymentFailed, "pay1", 1)
	if n := e.notif.Count(billing.NotificationKindPaymentFailed); n != 0 {
		t.Fatalf("%d payment-failed emails for a payment approved since, want none", n)
	}
	e.noPending()
}

// failingKind is a Notifier whose deliveries of kind fail with a transient error; the
// others go to Notifier.
type failingKind struct {
	billing.Notifier
	kind billing.NotificationKind
}

func (f failingKind) Notify(ctx context.Context, n billing.Notification) error {
	if n.Kind == f.kind {
		return fmt.Errorf("billingtest: %s cannot be sent now: %w", n.Kind, testkit.ErrTransient)
	}
	return f.Notifier.Notify(ctx, n)
}

// paymentReversalSurvivesCrashAtEveryWrite proves a reversal that changes only the payment
// (its subscription is gone, or the refund is partial) loses nothing to a crash and repeats
// nothing: the process dies at each write in turn (before it and just after it), then the
// gateway's redelivery or, when the crash left the payment changed, the next
// cleanup_pending_payments run leaves what one clean reversal leaves: the payment refunded
// (in full or in part), one audit entry, for a full refund the payment_reversed email once
// (twice only when it was in flight at the crash), nothing pending.
func (s *suite) paymentReversalSurvivesCrashAtEveryWrite(ctx context.Context, t *testing.T) {
	cases := map[string]struct {
		refunded int64
		want     billing.PaymentStatus
		action   string
		emails   int
	}{
		"FullRefund":    {2990, billing.PaymentStatusRefunded, billing.AuditPaymentRefunded, 1},
		"PartialRefund": {1000, billing.PaymentStatusApproved, billing.AuditPaymentPartiallyRefunded, 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			records := []any{basic, testkit.User("u"), payment("pay1", "u", "basic", func(p *billing.Payment) {
				p.Status, p.GatewayPaymentID = billing.PaymentStatusApproved, "in_1"
			})}
			reverse := func(svc *billing.Service) error {
				_, err := svc.Processor().ProcessReversal(ctx, refund(tc.refunded))
				return err
			}
			check := func(e *env, inFlight map[string]bool) {
				e.t.Helper()
				if p := e.payment("pay1"); p.Status != tc.want || p.RefundedAmount != tc.refunded {
					e.t.Fatalf("payment %+v, want %s with %d refunded", p, tc.want, tc.refunded)
				}
				e.wantAudits(tc.action, "pay1", 1)
				if n := len(e.audits("", "pay1")); n != 1 {
					e.t.Fatalf("%d audit entries for pay1, want the one %s", n, tc.action)
				}
				for _, n := range e.notif.Sent() {
					if n.Kind != billing.NotificationKindPaymentReversed {
						e.t.Fatalf("emails %v (in flight at the crash: %v), want %d payment_reversed once", e.notif.Sent(), inFlight, tc.emails)
					}
				}
				sent := e.wantSentOnce(inFlight)
				if len(sent) != tc.emails {
					e.t.Fatalf("emails %v, want %d payment_reversed", sent, tc.emails)
				}
				e.noPending()
			}
			s.crashThenFinish(ctx, t, records, reverse, func(e *env) bool { return e.payment("pay1").RefundedAmount != 0 }, check)
		})
	}
}
