package billingtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

// yearOfDailyJobs runs the five jobs once a day for a year on a fake clock while users
// renew monthly through the processor (a payment lock and a webhook event each time), with
// short retention so that a year shows several generations, and proves that what
// renewkit keeps for itself is pruned past its retention: the send-once records and
// webhook events of the first months are gone while the recent ones remain, lock keys idle
// for more than a day lose their state (their fencing counter starts again), and no claim
// is left on a record. Bounded, not just deleted once: the cleanup job reports pruning in
// every month after the first retention period.
func (s *suite) yearOfDailyJobs(ctx context.Context, t *testing.T) {
	// A year is 365 runs of every job: it gets three times the suite's per-test budget
	// (Options.Timeout), so its length alone does not time it out on a slow store.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*s.opts.Timeout)
	defer cancel()
	const users = 3
	cfg := billing.Config{BatchSize: 20, Retention: billing.Retention{Notifications: 60 * day, WebhookEvents: 30 * day, Audit: 120 * day}}
	var records []any
	records = append(records, testkit.Plan("p", billing.CycleMonthly, 2990))
	for i := range users {
		id := fmt.Sprintf("u%d", i)
		end := testkit.Epoch.Add(time.Duration(5+i*9) * day)
		records = append(records, testkit.UserWithAccess(id, "p", "s"+id, end), testkit.Subscription("s"+id, id, "p", end))
	}
	e := s.env(ctx, t, cfg, records...)
	if _, ok := e.st.(billing.Pruner); !ok {
		t.Fatalf("%T is not a billing.Pruner: its notification records, webhook events and locks grow for ever", e.st)
	}

	type mark struct {
		at       time.Time
		key      string // a notification key sent that day
		event    string // a webhook event received that day
		lockKey  string // a payment lock taken that day
		lockTime time.Time
	}
	var marks []mark
	prunedMonths := map[int]bool{}
	payments := 0
	for d := range 365 {
		now := e.clock.Advance(day)
		before := len(e.notif.Sent())
		// Users pay two days before their period ends; the gateway's webhook arrives too.
		for i := range users {
			sub := e.sub(fmt.Sprintf("su%d", i))
			if sub.CurrentPeriodEnd.Sub(now) > 2*day {
				continue
			}
			payments++
			pid := fmt.Sprintf("pay-%d", payments)
			p := testkit.Payment(pid, sub.UserID, "p", 2990, now)
			p.SubscriptionID = sub.ID
			must(t, e.st.InsertPayment(ctx, &p), "insert payment")
			if _, err := e.svc.Processor().ProcessApproved(ctx, billing.ApproveParams{PaymentID: pid, GatewayPaymentID: "gw-" + pid}); err != nil {
				t.Fatalf("day %d: approve %s: %v", d, pid, err)
			}
			ev := billing.WebhookEvent{Gateway: billing.GatewayStripe, EventID: "evt-" + pid, Type: "invoice.paid"}
			if _, err := e.svc.HandleWebhookEvent(ctx, ev, func(context.Context) (bool, error) { return true, nil }); err != nil {
				t.Fatalf("day %d: webhook %s: %v", d, ev.EventID, err)
			}
			marks = append(marks, mark{at: now, event: ev.EventID, lockKey: "payment:" + pid, lockTime: now})
		}
		for _, job := range e.svc.Jobs() {
			res, err := job.Run(ctx)
			if err != nil {
				t.Fatalf("day %d: %s: %v", d, job.ID, err)
			}
			if c, ok := res.(billing.CleanupResult); ok && c.Pruned.Notifications+c.Pruned.WebhookEvents > 0 {
				prunedMonths[d/30] = true
			}
		}
		if sent := e.notif.Sent(); len(sent) > before {
			marks = append(marks, mark{at: now, key: sent[len(sent)-1].Key})
		}
	}
	if payments < 30 {
		t.Fatalf("only %d renewals in a year; the scenario did not run", payments)
	}
	for m := 3; m < 12; m++ {
		if !prunedMonths[m] {
			t.Errorf("month %d pruned nothing: the records of the months before it pile up", m)
		}
	}

	now := e.clock.Now()
	for _, m := range marks {
		age := now.Sub(m.at)
		if m.key != "" {
			_, err := e.st.GetNotification(ctx, m.key)
			switch {
			case age > cfg.Retention.Notifications+day && !errors.Is(err, billing.ErrNotFound):
				t.Errorf("notification %s, %v old, still stored (retention %v): %v", m.key, age, cfg.Retention.Notifications, err)
			case age < cfg.Retention.Notifications-day && err != nil:
				t.Errorf("notification %s, %v old, gone before its retention: %v", m.key, age, err)
			}
		}
		if m.event != "" {
			_, err := e.st.GetWebhookEvent(ctx, billing.GatewayStripe, m.event)
			switch {
			case age > cfg.Retention.WebhookEvents+day && !errors.Is(err, billing.ErrNotFound):
				t.Errorf("webhook event %s, %v old, still stored (retention %v): %v", m.event, age, cfg.Retention.WebhookEvents, err)
			case age < cfg.Retention.WebhookEvents-day && err != nil:
				t.Errorf("webhook event %s, %v old, gone before its retention: %v", m.event, age, err)
			}
		}
	}
	// The first payment's lock key has been idle for months: its state is gone, so a new
	// acquisition starts the fencing counter again.
	first := marks[slices.IndexFunc(marks, func(m mark) bool { return m.lockKey != "" })]
	lease, err := e.st.AcquireLock(ctx, first.lockKey, "probe", now, time.Minute)
	must(t, err, "acquire an idle lock key")
	if lease.Token != 1 {
		t.Errorf("lock %s idle since %v got token %d: its state was never pruned", first.lockKey, first.lockTime, lease.Token)
	}
	entries, err := e.st.ListAudit(ctx, billing.AuditFilter{})
	must(t, err, "list the audit log")
	old, recent := 0, 0
	for _, a := range entries {
		switch age := now.Sub(a.CreatedAt); {
		case age > cfg.Retention.Audit+day:
			old++
		case age < 30*day:
			recent++
		}
	}
	if old > 0 {
		t.Errorf("%d audit entries older than the audit retention (%v) remain", old, cfg.Retention.Audit)
	}
	if recent == 0 {
		t.Error("no audit entry of the last month: pruning went too far")
	}
	e.noPending()
}
