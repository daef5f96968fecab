package billingtest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

// payment returns a pending payment of 2990 created an hour before testkit.Epoch, changed by
// mods.
func payment(id, user, plan string, mods ...func(*billing.Payment)) billing.Payment {
	p := testkit.Payment(id, user, plan, 2990, testkit.Epoch.Add(-time.Hour))
	for _, m := range mods {
		m(&p)
	}
	return p
}

func forSub(id string) func(*billing.Payment) {
	return func(p *billing.Payment) { p.SubscriptionID = id }
}

// approveFirstPaymentAndTwice proves a first approval creates the subscription, grants
// access, emails (confirmation + welcome) and audits, and that approving the same payment
// again extends nothing and sends nothing ("approve-twice extends once").
func (s *suite) approveFirstPaymentAndTwice(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	e := s.env(ctx, t, billing.Config{}, testkit.Plan("basic", billing.CycleMonthly, 2990), testkit.User("u"), payment("pay1", "u", "basic"))
	pp := e.svc.Processor()
	res, err := pp.ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay1", GatewayPaymentID: "pi_1", Actor: "stripe"})
	must(t, err, "ProcessApproved")
	if !res.Success || res.Duplicate || res.SubscriptionID == "" || res.PaymentID != "pay1" {
		t.Fatalf("result %+v", res)
	}
	sub := e.sub(res.SubscriptionID)
	want := billing.AddMonths(now, 1)
	if sub.Status != billing.SubscriptionStatusActive || sub.PlanID != "basic" || sub.UserID != "u" || !sub.CurrentPeriodStart.Equal(now) ||
		!sub.CurrentPeriodEnd.Equal(want) || !reflect.DeepEqual(sub.AppliedPayments, []string{"pay1"}) {
		t.Fatalf("created subscription %+v, want active basic %v..%v", sub, now, want)
	}
	u := e.user("u")
	if u.PlanID != "basic" || u.SubscriptionID != sub.ID || !u.AccessUntil.Equal(want) || !u.HasAccess(now) {
		t.Fatalf("user access %+v", u)
	}
	p := e.payment("pay1")
	if p.Status != billing.PaymentStatusApproved || p.SubscriptionID != sub.ID || !p.ProcessedAt.Equal(now) || p.GatewayPaymentID != "pi_1" {
		t.Fatalf("payment %+v", p)
	}
	e.wantKindSet("pay1", billing.NotificationKindPaymentSuccessful, billing.NotificationKindWelcome)
	e.wantAudits(billing.AuditSubscriptionCreated, sub.ID, 1)
	e.wantAudits(billing.AuditPaymentApproved, "pay1", 1)
	e.wantAudits(billing.AuditUserPlanUpdated, "u", 1)
	if a := e.audits(billing.AuditPaymentApproved, "pay1")[0]; a.Actor != "stripe" {
		t.Fatalf("audit actor %q, want stripe", a.Actor)
	}

	before := e.snapshot([]string{"u"}, []string{"pay1"})
	e.clock.Advance(time.Hour)
	res, err = pp.ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay1"})
	must(t, err, "ProcessApproved again")
	if !res.Success || !res.Duplicate || res.SubscriptionID != sub.ID {
		t.Fatalf("second approval %+v, want a duplicate", res)
	}
	if after := e.snapshot([]string{"u"}, []string{"pay1"}); !reflect.DeepEqual(before, after) {
		t.Fatalf("approving twice changed state:\n before %+v\n after  %+v", before, after)
	}
}

// approveRenews is a table of renewals: the new period starts at the later of now and the
// current period end, the plan switches when the payment's plan differs, and the welcome
// email goes only with the first subscription.
func (s *suite) approveRenews(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	cases := []struct {
		name      string
		sub       func() billing.Subscription
		plan      string
		wantStart time.Time
		wantEnd   time.Time
	}{
		{"active: from the current end", func() billing.Subscription { return testkit.Subscription("s", "u", "basic", now.Add(10*day)) },
			"basic", now.Add(10 * day), billing.AddMonths(now.Add(10*day), 1)},
		{"month-end clamp", func() billing.Subscription {
			return testkit.Subscription("s", "u", "basic", time.Date(2030, time.January, 31, 12, 0, 0, 0, time.UTC))
		}, "basic", time.Date(2030, time.January, 31, 12, 0, 0, 0, time.UTC), time.Date(2030, time.February, 28, 12, 0, 0, 0, time.UTC)},
		{"lapsed: from now", func() billing.Subscription {
			x := testkit.Subscription("s", "u", "basic", now.Add(-5*day))
			x.Status = billing.SubscriptionStatusInactive
			return x
		}, "basic", now, billing.AddMonths(now, 1)},
		{"active but past its end: from now", func() billing.Subscription {
			return testkit.AutoRenewing(testkit.Subscription("s", "u", "basic", now.Add(-day)), billing.GatewayStripe)
		}, "basic", now, billing.AddMonths(now, 1)},
		{"plan switch to yearly", func() billing.Subscription { return testkit.Subscription("s", "u", "basic", now.Add(10*day)) },
			"pro", now.Add(10 * day), billing.AddMonths(now.Add(10*day), 12)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sub := c.sub()
			sub.AppliedPayments = []string{"pay0"} // renewkit has applied a payment before
			sub.ExpirationWarningSent, sub.ExpirationWarningDays = true, 3
			e := s.env(ctx, t, billing.Config{}, testkit.Plan("basic", billing.CycleMonthly, 2990), testkit.Plan("pro", billing.CycleYearly, 29900),
				testkit.UserWithAccess("u", "basic", "s", sub.CurrentPeriodEnd), sub, payment("pay1", "u", c.plan, forSub("s")))
			res, err := e.svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: "pay1"})
			must(t, err, "ProcessApproved")
			got := e.sub("s")
			if res.SubscriptionID != "s" || got.Status != billing.SubscriptionStatusActive || !got.CurrentPeriodStart.Equal(c.wantStart) || !got.CurrentPeriodEnd.Equal(c.wantEnd) {
				t.Fatalf("renewed %+v, want active %v..%v", got, c.wantStart, c.wantEnd)
			}
			if got.ExpirationWarningSent || got.ExpirationWarningDays != 0 {
				t.Fatalf("warning state not reset: %+v", got)
			}
			if got.PlanID != c.plan || got.BillingCycle != map[string]billing.Cycle{"basic": billing.CycleMonthly, "pro": billing.CycleYearly}[c.plan] {
				t.Fatalf("plan %s/%s, want %s", got.PlanID, got.BillingCycle, c.plan)
			}
			u := e.user("u")
			if u.PlanID != c.plan || !u.AccessUntil.Equal(c.wantEnd) || u.Status != billing.SubscriptionStatusActive {
				t.Fatalf("user %+v", u)
			}
			e.wantKinds("pay1", billing.NotificationKindPaymentSuccessful) // no welcome: not the first subscription
			e.wantAudits(billing.AuditSubscriptionRenewed, "s", 1)
			switched := 0
			if c.plan != "basic" {
				switched = 1
			}
			e.wantAudits(billing.AuditUserPlanUpdated, "u", switched)
		})
	}
}

// welcomeOnlyOnFirstSubscription proves the welcome email goes with the payment that
// started the user's first subscription and never again.
func (s *suite) welcomeOnlyOnFirstSubscription(ctx context.Context, t *testing.T) {
	e := s.env(ctx, t, billing.Config{}, testkit.Plan("basic", billing.CycleMonthly, 2990), testkit.User("u"),
		payment("pay1", "u", "basic"), payment("pay2", "u", "basic"), payment("pay3", "u", "basic"))
	for _, id := range []string{"pay1", "pay2", "pay3"} {
		_, err := e.svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: id})
		must(t, err, "ProcessApproved "+id)
	}
	if n := e.notif.Count(billing.NotificationKindWelcome); n != 1 {
		t.Fatalf("%d welcome emails, want 1", n)
	}
	e.wantKindSet("pay1", billing.NotificationKindPaymentSuccessful, billing.NotificationKindWelcome)
	e.wantKinds("pay2", billing.NotificationKindPaymentSuccessful)
	e.wantKinds("pay3", billing.NotificationKindPaymentSuccessful)
	subs := e.userSubs("u")
	if len(subs) != 1 || !subs[0].CurrentPeriodEnd.Equal(billing.AddMonths(testkit.Epoch, 3)) {
		t.Fatalf("three payments: %+v, want one subscription three months long", subs)
	}
}

// failAndCancelTransitions is the table of failed/cancelled transitions: allowed ones
// change status, reason and audit (failed also emails, once); forbidden ones return
// ErrInvalidTransition.
func (s *suite) failAndCancelTransitions(ctx context.Context, t *testing.T) {
	type call int
	const (
		fail call = iota
		cancel
	)
	cases := []struct {
		name      string
		from      billing.PaymentStatus
		call      call
		want      billing.PaymentStatus
		wantErr   error
		wantEmail bool
		wantAudit string
	}{
		{"pending to failed", billing.PaymentStatusPending, fail, billing.PaymentStatusFailed, nil, true, billing.AuditPaymentFailed},
		{"pending to cancelled", billing.PaymentStatusPending, cancel, billing.PaymentStatusCancelled, nil, false, billing.AuditPaymentCancelled},
		{"failed to cancelled", billing.PaymentStatusFailed, cancel, billing.PaymentStatusCancelled, nil, false, billing.AuditPaymentCancelled},
		{"approved cannot fail", billing.PaymentStatusApproved, fail, billing.PaymentStatusApproved, billing.ErrInvalidTransition, false, ""},
		{"approved cannot be cancelled", billing.PaymentStatusApproved, cancel, billing.PaymentStatusApproved, billing.ErrInvalidTransition, false, ""},
		{"cancelled cannot fail", billing.PaymentStatusCancelled, fail, billing.PaymentStatusCancelled, billing.ErrInvalidTransition, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := s.env(ctx, t, billing.Config{}, testkit.Plan("basic", billing.CycleMonthly, 2990), testkit.User("u"),
				payment("pay1", "u", "basic", func(p *billing.Payment) { p.Status = c.from }))
			do := func() (billing.ProcessResult, error) {
				params := billing.FailParams{PaymentID: "pay1", Reason: "card declined", Actor: "stripe"}
				if c.call == fail {
					return e.svc.Processor().ProcessFailed(ctx, params)
				}
				return e.svc.Processor().ProcessCancelled(ctx, params)
			}
			before := e.snapshot([]string{"u"}, []string{"pay1"})
			res, err := do()
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("got %v, want %v", err, c.wantErr)
				}
				if after := e.snapshot([]string{"u"}, []string{"pay1"}); !reflect.DeepEqual(before, after) {
					t.Fatalf("a refused transition changed state:\n before %+v\n after  %+v", before, after)
				}
				return
			}
			must(t, err, "transition")
			p := e.payment("pay1")
			if !res.Success || p.Status != c.want || p.Reason != "card declined" || !p.ProcessedAt.Equal(e.clock.Now()) {
				t.Fatalf("result %+v, payment %+v; want %s with the reason", res, p, c.want)
			}
			e.wantAudits(c.wantAudit, "pay1", 1)
			if c.wantEmail {
				e.wantKinds("pay1", billing.NotificationKindPaymentFailed)
				if n := e.notif.For("pay1")[0]; n.Data.Reason != "card declined" || n.To.Email != "u@example.com" {
					t.Fatalf("payment failed email %+v", n)
				}
			} else {
				e.wantKinds("pay1")
			}
			// Delivered again: a duplicate that changes nothing and sends nothing.
			mid := e.snapshot([]string{"u"}, []string{"pay1"})
			res, err = do()
			must(t, err, "repeat")
			if !res.Duplicate {
				t.Fatalf("repeat %+v, want a duplicate", res)
			}
			if after := e.snapshot([]string{"u"}, []string{"pay1"}); !reflect.DeepEqual(mid, after) {
				t.Fatalf("a repeated transition changed state")
			}
		})
	}
}

// processorBadInput proves every bad input returns its sentinel (errors.Is) and changes
// nothing: payment, subscriptions, user, audit log and notifications compared before/after.
func (s *suite) processorBadInput(ctx context.Context, t *testing.T) {
	now := testkit.Epoch
	approve := func(id string) func(*billing.PaymentProcessor) error {
		return func(pp *billing.PaymentProcessor) error {
			_, err := pp.ProcessApproved(ctx, billing.ApproveParams{PaymentID: id})
			return err
		}
	}
	failP := func(id string) func(*billing.PaymentProcessor) error {
		return func(pp *billing.PaymentProcessor) error {
			_, err := pp.ProcessFailed(ctx, billing.FailParams{PaymentID: id, Reason: "x"})
			return err
		}
	}
	cancelP := func(id string) func(*billing.PaymentProcessor) error {
		return func(pp *billing.PaymentProcessor) error {
			_, err := pp.ProcessCancelled(ctx, billing.FailParams{PaymentID: id, Reason: "x"})
			return err
		}
	}
	cases := []struct {
		name string
		pay  *billing.Payment
		call func(*billing.PaymentProcessor) error
		want error
	}{
		{"approve: empty id", nil, approve(""), billing.ErrInvalidInput},
		{"approve: unknown payment", nil, approve("ghost"), billing.ErrUnknownPayment},
		{"approve: negative amount", ptr(payment("bad", "u", "basic", func(p *billing.Payment) { p.Amount.Amount = -1 })), approve("bad"), billing.ErrInvalidAmount},
		{"approve: no currency", ptr(payment("bad", "u", "basic", func(p *billing.Payment) { p.Amount.Currency = "" })), approve("bad"), billing.ErrInvalidAmount},
		{"approve: unknown plan", ptr(payment("bad", "u", "gold", forSub("s"))), approve("bad"), billing.ErrUnknownPlan},
		{"fail: empty id", nil, failP(""), billing.ErrInvalidInput},
		{"fail: unknown payment", nil, failP("ghost"), billing.ErrUnknownPayment},
		{"fail: approved payment", ptr(payment("bad", "u", "basic", func(p *billing.Payment) { p.Status = billing.PaymentStatusApproved })), failP("bad"), billing.ErrInvalidTransition},
		{"fail: negative amount", ptr(payment("bad", "u", "basic", func(p *billing.Payment) { p.Amount.Amount = -500 })), failP("bad"), billing.ErrInvalidAmount},
		{"cancel: unknown payment", nil, cancelP("ghost"), billing.ErrUnknownPayment},
		{"cancel: approved payment", ptr(payment("bad", "u", "basic", func(p *billing.Payment) { p.Status = billing.PaymentStatusApproved })), cancelP("bad"), billing.ErrInvalidTransition},
		{"cancel: negative amount", ptr(payment("bad", "u", "basic", func(p *billing.Payment) { p.Amount.Amount = -1 })), cancelP("bad"), billing.ErrInvalidAmount},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			records := []any{testkit.Plan("basic", billing.CycleMonthly, 2990), testkit.UserWithAccess("u", "basic", "s", now.Add(5*day)),
				testkit.Subscription("s", "u", "basic", now.Add(5*day)), payment("good", "u", "basic", forSub("s"))}
			if c.pay != nil {
				records = append(records, *c.pay)
			}
			e := s.env(ctx, t, billing.Config{}, records...)
			before := e.snapshot([]string{"u"}, []string{"bad", "good", "ghost"})
			err := c.call(e.svc.Processor())
			if !errors.Is(err, c.want) {
				t.Fatalf("got error %v, want %v", err, c.want)
			}
			if after := e.snapshot([]string{"u"}, []string{"bad", "good", "ghost"}); !reflect.DeepEqual(before, after) {
				t.Fatalf("bad input changed state:\n before %+v\n after  %+v", before, after)
			}
			if errors.Is(c.want, billing.ErrUnknownPayment) && !errors.Is(err, billing.ErrNotFound) {
				t.Fatalf("unknown payment error %v should also match ErrNotFound", err)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
