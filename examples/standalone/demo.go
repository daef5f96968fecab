package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// demoGateway is the gateway name of the demo's auto-renewing subscriptions; demoLookup
// answers for it as a gateway would, so the renew job has something to reconcile without
// real credentials.
const demoGateway = "demo"

type demoLookup struct {
	store billing.Store
	clock billing.Clock
}

// LookupSubscription reports the demo subscription renewed for one more cycle once its period
// is within a day of ending, like a gateway that charged the card.
func (d demoLookup) LookupSubscription(ctx context.Context, id string) (billing.GatewaySubscription, error) {
	sub, err := d.store.FindSubscriptionByGateway(ctx, demoGateway, id)
	if err != nil {
		return billing.GatewaySubscription{}, err
	}
	gs := billing.GatewaySubscription{ID: id, Status: billing.SubscriptionStatusActive,
		PeriodStart: sub.CurrentPeriodStart, PeriodEnd: sub.CurrentPeriodEnd}
	if sub.CurrentPeriodEnd.Sub(d.clock.Now()) < 24*time.Hour {
		gs.PeriodStart, gs.PeriodEnd = sub.CurrentPeriodEnd, billing.AddCycle(sub.CurrentPeriodEnd, sub.BillingCycle)
	}
	return gs, nil
}

// loadDemo fills an empty store with plans, users and subscriptions at every lifecycle stage,
// sessions and payments, relative to now, and returns a one-line summary.
func loadDemo(ctx context.Context, st billing.Store, now time.Time) (string, error) {
	day := 24 * time.Hour
	plans := []billing.Plan{
		{ID: "plan_basico", Name: "Básico", BillingCycle: billing.CycleMonthly, Price: billing.Money{Amount: 4990, Currency: "BRL"}, Active: true},
		{ID: "plan_premium", Name: "Premium", BillingCycle: billing.CycleMonthly, Price: billing.Money{Amount: 9990, Currency: "BRL"}, Active: true},
		{ID: "plan_pro_yearly", Name: "Pro (yearly)", BillingCycle: billing.CycleYearly, Price: billing.Money{Amount: 9900, Currency: "USD"}, Active: true},
	}
	for i := range plans {
		plans[i].CreatedAt, plans[i].UpdatedAt = now.Add(-400*day), now.Add(-400*day)
		if err := st.InsertPlan(ctx, &plans[i]); err != nil {
			return "", fmt.Errorf("demo plan: %w", err)
		}
	}
	type stage struct {
		user, name, email, locale, tz string
		plan                          string
		status                        billing.SubscriptionStatus
		endsIn                        time.Duration
		gateway, gatewaySubID         string
	}
	stages := []stage{
		{"u_joao", "João Silva", "joao@example.com", "pt-BR", "America/Sao_Paulo", "plan_premium", billing.SubscriptionStatusActive, 3*day - time.Hour, billing.GatewayMercadoPago, ""},
		{"u_maria", "Maria Souza", "maria@example.com", "pt-BR", "America/Sao_Paulo", "plan_basico", billing.SubscriptionStatusActive, 2*day + 12*time.Hour, billing.GatewayManual, ""},
		{"u_alice", "Alice Smith", "alice@example.com", "en", "America/New_York", "plan_pro_yearly", billing.SubscriptionStatusActive, 3*day - 2*time.Hour, billing.GatewayPayPal, ""},
		{"u_bruno", "Bruno Costa", "bruno@example.com", "pt-BR", "America/Sao_Paulo", "plan_premium", billing.SubscriptionStatusActive, 12 * time.Hour, demoGateway, "demo_sub_bruno"},
		{"u_carla", "Carla Dias", "carla@example.com", "pt-BR", "America/Recife", "plan_basico", billing.SubscriptionStatusActive, -20 * time.Hour, billing.GatewayManual, ""},
		{"u_bob", "Bob Jones", "bob@example.com", "en", "Europe/London", "plan_pro_yearly", billing.SubscriptionStatusPastDue, -5 * day, demoGateway, "demo_sub_bob"},
		{"u_diego", "Diego Lima", "diego@example.com", "pt-BR", "America/Sao_Paulo", "plan_basico", billing.SubscriptionStatusActive, 20 * day, billing.GatewayMercadoPago, ""},
		{"u_eva", "Eva Rocha", "eva@example.com", "pt-BR", "America/Sao_Paulo", "plan_premium", billing.SubscriptionStatusInactive, -40 * day, billing.GatewayManual, ""},
		{"u_frank", "Frank Miller", "frank@example.com", "en", "UTC", "plan_basico", billing.SubscriptionStatusCancelled, -10 * day, billing.GatewayStripe, "sub_demo_frank"},
	}
	for _, s := range stages {
		p := plans[0]
		for _, pl := range plans {
			if pl.ID == s.plan {
				p = pl
			}
		}
		end := now.Add(s.endsIn)
		start := billing.AddMonths(end, -p.BillingCycle.Months())
		u := billing.User{ID: s.user, Name: s.name, Email: s.email, Locale: s.locale, TimeZone: s.tz,
			CreatedAt: start.Add(-30 * day), UpdatedAt: start}
		sub := billing.Subscription{ID: "sub_" + s.user[2:], UserID: s.user, PlanID: s.plan, Status: s.status,
			BillingCycle: p.BillingCycle, CurrentPeriodStart: start, CurrentPeriodEnd: end, Gateway: s.gateway,
			GatewaySubscriptionID: s.gatewaySubID, CreatedAt: start, UpdatedAt: start}
		if s.status.Live() {
			u.PlanID, u.SubscriptionID, u.Status, u.AccessUntil = s.plan, sub.ID, s.status, end
		} else {
			u.SubscriptionID, u.Status, u.AccessUntil = sub.ID, s.status, end
		}
		if err := st.InsertUser(ctx, &u); err != nil {
			return "", fmt.Errorf("demo user: %w", err)
		}
		if err := st.InsertSubscription(ctx, &sub); err != nil {
			return "", fmt.Errorf("demo subscription: %w", err)
		}
	}
	sessions := []time.Duration{-45 * day, -31 * day, -60 * day, -2 * day, 5 * day}
	for i, exp := range sessions {
		se := billing.Session{ID: fmt.Sprintf("sess_%d", i+1), UserID: stages[i].user, ExpiresAt: now.Add(exp), CreatedAt: now.Add(exp - 7*day)}
		if err := st.InsertSession(ctx, &se); err != nil {
			return "", fmt.Errorf("demo session: %w", err)
		}
	}
	payments := []struct {
		id, user, plan string
		age            time.Duration
		status         billing.PaymentStatus
	}{
		{"pay_stale_1", "u_eva", "plan_premium", 10 * day, billing.PaymentStatusPending},
		{"pay_stale_2", "u_frank", "plan_basico", 8 * day, billing.PaymentStatusPending},
		{"pay_recent", "u_diego", "plan_basico", 1 * day, billing.PaymentStatusPending},
		{"pay_ok", "u_joao", "plan_premium", 27 * day, billing.PaymentStatusApproved},
	}
	for _, p := range payments {
		pl, _ := st.GetPlan(ctx, p.plan)
		pay := billing.Payment{ID: p.id, UserID: p.user, PlanID: p.plan, Amount: pl.Price, Status: p.status,
			Gateway: billing.GatewayMercadoPago, CreatedAt: now.Add(-p.age), UpdatedAt: now.Add(-p.age)}
		if err := st.InsertPayment(ctx, &pay); err != nil {
			return "", fmt.Errorf("demo payment: %w", err)
		}
	}
	histories, err := loadDemoHistory(ctx, st, now)
	if err != nil {
		return "", err
	}
	if err := loadDemoInbox(ctx, st, now); err != nil {
		return "", err
	}
	return fmt.Sprintf("demo data: %d plans, %d users with subscriptions at every stage, %d sessions, %d payments, %s, %d webhook events",
		len(plans), len(stages), len(sessions), len(payments), histories, len(demoInbox)), nil
}

// loadDemoHistory adds two subscribers with a story for the console's timeline: Rita was
// warned, expired and lost access (her expiry email failed for good, so it can be resent);
// Lucas renewed through Mercado Pago five days ago. It also writes 90 days of snapshots for
// the overview's charts, drawn from the demo's counts.
func loadDemoHistory(ctx context.Context, st billing.Store, now time.Time) (string, error) {
	day := 24 * time.Hour
	basico := billing.Money{Amount: 4990, Currency: "BRL"}
	ritaEnd, lucasEnd := now.Add(-10*day), now.Add(25*day)
	users := []billing.User{
		{ID: "u_rita", Name: "Rita Alves", Email: "rita@example.com", Locale: "pt-BR", TimeZone: "America/Sao_Paulo",
			SubscriptionID: "sub_rita", Status: billing.SubscriptionStatusInactive, AccessUntil: ritaEnd, CreatedAt: now.Add(-100 * day), UpdatedAt: ritaEnd},
		{ID: "u_lucas", Name: "Lucas Pereira", Email: "lucas@example.com", Locale: "pt-BR", TimeZone: "America/Sao_Paulo",
			PlanID: "plan_basico", SubscriptionID: "sub_lucas", Status: billing.SubscriptionStatusActive, AccessUntil: lucasEnd, CreatedAt: now.Add(-70 * day), UpdatedAt: now.Add(-5 * day)},
	}
	subs := []billing.Subscription{
		{ID: "sub_rita", UserID: "u_rita", PlanID: "plan_basico", Status: billing.SubscriptionStatusInactive, BillingCycle: billing.CycleMonthly,
			CurrentPeriodStart: billing.AddMonths(ritaEnd, -1), CurrentPeriodEnd: ritaEnd, Gateway: billing.GatewayManual,
			ExpirationWarningSent: true, ExpirationWarningDays: 3, CreatedAt: now.Add(-100 * day), UpdatedAt: ritaEnd.Add(30 * time.Minute)},
		{ID: "sub_lucas", UserID: "u_lucas", PlanID: "plan_basico", Status: billing.SubscriptionStatusActive, BillingCycle: billing.CycleMonthly,
			CurrentPeriodStart: billing.AddMonths(lucasEnd, -1), CurrentPeriodEnd: lucasEnd, Gateway: billing.GatewayMercadoPago,
			GatewaySubscriptionID: "mp_preapproval_lucas", AppliedPayments: []string{"pay_lucas_2"}, CreatedAt: now.Add(-65 * day), UpdatedAt: now.Add(-5 * day)},
	}
	for i := range users {
		if err := st.InsertUser(ctx, &users[i]); err != nil {
			return "", fmt.Errorf("demo user: %w", err)
		}
		if err := st.InsertSubscription(ctx, &subs[i]); err != nil {
			return "", fmt.Errorf("demo subscription: %w", err)
		}
	}
	payments := []billing.Payment{
		{ID: "pay_rita", UserID: "u_rita", PlanID: "plan_basico", SubscriptionID: "sub_rita", Amount: basico, Status: billing.PaymentStatusApproved,
			Gateway: billing.GatewayManual, ProcessedAt: billing.AddMonths(ritaEnd, -1), CreatedAt: billing.AddMonths(ritaEnd, -1), UpdatedAt: billing.AddMonths(ritaEnd, -1)},
		{ID: "pay_lucas_1", UserID: "u_lucas", PlanID: "plan_basico", SubscriptionID: "sub_lucas", Amount: basico, Status: billing.PaymentStatusApproved,
			Gateway: billing.GatewayMercadoPago, GatewayPaymentID: "mp_lucas_1", ProcessedAt: now.Add(-35 * day), CreatedAt: now.Add(-35 * day), UpdatedAt: now.Add(-35 * day)},
		{ID: "pay_lucas_2", UserID: "u_lucas", PlanID: "plan_basico", SubscriptionID: "sub_lucas", Amount: basico, Status: billing.PaymentStatusApproved,
			Gateway: billing.GatewayMercadoPago, GatewayPaymentID: "mp_lucas_2", ProcessedAt: now.Add(-5 * day), CreatedAt: now.Add(-5 * day), UpdatedAt: now.Add(-5 * day)},
	}
	for i := range payments {
		if err := st.InsertPayment(ctx, &payments[i]); err != nil {
			return "", fmt.Errorf("demo payment: %w", err)
		}
	}
	warned, expired, renewed := ritaEnd.Add(-3*day), ritaEnd.Add(30*time.Minute), now.Add(-5*day)
	type note struct {
		rec    billing.NotificationRecord
		at     time.Time
		status string
		err    string
	}
	notes := []note{
		{billing.NotificationRecord{Key: "expiring:sub_rita:" + fmt.Sprint(ritaEnd.UnixMilli()) + ":3", Kind: billing.NotificationKindExpiring,
			SubscriptionID: "sub_rita", UserID: "u_rita", Data: &billing.NotificationData{PlanName: "Básico", SubscriptionID: "sub_rita",
				PeriodEnd: ritaEnd, DaysRemaining: 3}}, warned, billing.NotificationSent, ""},
		{billing.NotificationRecord{Key: "expired:sub_rita:" + fmt.Sprint(ritaEnd.UnixMilli()), Kind: billing.NotificationKindExpired,
			SubscriptionID: "sub_rita", UserID: "u_rita", Data: &billing.NotificationData{PlanName: "Básico", SubscriptionID: "sub_rita",
				PeriodEnd: ritaEnd}}, expired, billing.NotificationFailed, "550 5.2.2 mailbox full"},
		{billing.NotificationRecord{Key: "renewed:sub_lucas:" + fmt.Sprint(lucasEnd.UnixMilli()), Kind: billing.NotificationKindRenewed,
			SubscriptionID: "sub_lucas", UserID: "u_lucas", Data: &billing.NotificationData{PlanName: "Básico", SubscriptionID: "sub_lucas",
				PaymentID: "pay_lucas_2", Amount: basico, PeriodStart: billing.AddMonths(lucasEnd, -1), PeriodEnd: lucasEnd, Gateway: billing.GatewayMercadoPago}},
			renewed, billing.NotificationSent, ""},
	}
	for _, n := range notes {
		if _, err := st.ReserveNotifications(ctx, []billing.NotificationRecord{n.rec}, "demo", n.at, n.at.Add(time.Minute)); err != nil {
			return "", fmt.Errorf("demo notification: %w", err)
		}
		done := billing.NotificationRecord{Key: n.rec.Key, Status: n.status, Error: n.err, UpdatedAt: n.at}
		if err := st.FinishNotifications(ctx, []billing.NotificationRecord{done}, "demo"); err != nil {
			return "", fmt.Errorf("demo notification: %w", err)
		}
	}
	audit := []billing.AuditEntry{
		{Action: billing.AuditPaymentApproved, EntityType: "payment", EntityID: "pay_rita", UserID: "u_rita", Actor: "admin", CreatedAt: payments[0].CreatedAt},
		{Action: billing.AuditWarningSent, EntityType: "subscription", EntityID: "sub_rita", UserID: "u_rita", Actor: "renewkit", CreatedAt: warned,
			Details: map[string]any{"days": 3, "kind": string(billing.NotificationKindExpiring), "period_end": ritaEnd}},
		{Action: billing.AuditSubscriptionExpired, EntityType: "subscription", EntityID: "sub_rita", UserID: "u_rita", Actor: "renewkit", CreatedAt: expired,
			Details: map[string]any{"previous_status": string(billing.SubscriptionStatusActive), "period_end": ritaEnd}},
		{Action: billing.AuditAccessRevoked, EntityType: "user", EntityID: "u_rita", UserID: "u_rita", Actor: "renewkit", CreatedAt: expired},
		{Action: billing.AuditPaymentApproved, EntityType: "payment", EntityID: "pay_lucas_2", UserID: "u_lucas", Actor: billing.GatewayMercadoPago, CreatedAt: renewed},
		{Action: billing.AuditSubscriptionRenewed, EntityType: "subscription", EntityID: "sub_lucas", UserID: "u_lucas", Actor: billing.GatewayMercadoPago, CreatedAt: renewed,
			Details: map[string]any{"payment_id": "pay_lucas_2", "period_end": lucasEnd}},
	}
	for i := range audit {
		if err := st.InsertAudit(ctx, &audit[i]); err != nil {
			return "", fmt.Errorf("demo audit: %w", err)
		}
	}
	snaps := 0
	if ss, ok := st.(billing.SnapshotStore); ok {
		for d := 89; d >= 1; d-- {
			// A slowly growing base with a dip a month ago, so the lines have a shape.
			active := 4 + (89-d)/30
			if d > 25 && d < 35 {
				active--
			}
			pastDue := 0
			if d < 20 {
				pastDue = 1
			}
			snap := billing.DailySnapshot{Day: now.Add(-time.Duration(d) * day), Taken: now.Add(-time.Duration(d) * day),
				ByStatus: map[billing.SubscriptionStatus]int{billing.SubscriptionStatusActive: active, billing.SubscriptionStatusPastDue: pastDue,
					billing.SubscriptionStatusInactive: 1 + (89-d)/60, billing.SubscriptionStatusCancelled: 1},
				MRR: map[string]int64{"BRL": int64(active) * 6650, "USD": 1650}}
			if err := ss.PutDailySnapshot(ctx, snap); err != nil {
				return "", fmt.Errorf("demo snapshot: %w", err)
			}
			snaps++
		}
	}
	return fmt.Sprintf("2 subscriber histories, %d daily snapshots", snaps), nil
}

// demoFailedEvent is the demo inbox's failed event: a delivery about Bob's subscription
// that failed while the gateway was down and waits, for hours, for its next retry.
const demoFailedEvent = "demo_evt_bob_sync"

// demoInbox is the demo's webhook inbox: the Mercado Pago payment notification that renewed
// Lucas, processed, and demoFailedEvent.
var demoInbox = []struct {
	ev    billing.WebhookEvent
	age   time.Duration
	state billing.WebhookEventState
	err   string
}{
	{billing.WebhookEvent{Gateway: billing.GatewayMercadoPago, EventID: "payment:mp_lucas_2:demo", Type: "payment", ObjectKey: "payment:mp_lucas_2",
		Payload: []byte(`{"type":"payment","data_id":"mp_lucas_2"}`)}, 5 * 24 * time.Hour, billing.WebhookEventStateProcessed, ""},
	{billing.WebhookEvent{Gateway: demoGateway, EventID: demoFailedEvent, Type: "subscription.updated", ObjectKey: "demo_sub_bob",
		Payload: []byte(`{"subscription":"demo_sub_bob"}`)}, 20 * time.Minute, billing.WebhookEventStateFailed, "demo gateway: 503 Service Unavailable while re-reading the subscription"},
}

// loadDemoInbox puts demoInbox in the store's inbox as a worker would have left it.
func loadDemoInbox(ctx context.Context, st billing.Store, now time.Time) error {
	for _, d := range demoInbox {
		at := now.Add(-d.age)
		d.ev.OccurredAt = at.Add(-time.Second)
		if _, _, err := st.PutWebhookEvent(ctx, d.ev, at); err != nil {
			return fmt.Errorf("demo webhook event: %w", err)
		}
		claimed, err := st.ClaimWebhookEvents(ctx, billing.WebhookClaimParams{Token: "demo", Now: at, LeaseUntil: at.Add(time.Minute), Limit: 1,
			Gateway: d.ev.Gateway, EventID: d.ev.EventID})
		if err != nil || len(claimed) != 1 {
			return fmt.Errorf("demo webhook event %s: claimed %d: %v", d.ev.EventID, len(claimed), err)
		}
		f := billing.WebhookFinish{Gateway: d.ev.Gateway, EventID: d.ev.EventID, Token: "demo", State: d.state, Attempts: claimed[0].Attempts,
			Error: d.err, Now: at, Attempt: billing.WebhookAttempt{At: at, State: d.state, Error: d.err, Duration: 40 * time.Millisecond}}
		if d.state == billing.WebhookEventStateFailed {
			f.NextAttemptAt = now.Add(6 * time.Hour) // the backoff after several attempts
		}
		if err := st.FinishWebhookEvent(ctx, f); err != nil {
			return fmt.Errorf("demo webhook event %s: %w", d.ev.EventID, err)
		}
	}
	return nil
}

// processWebhook applies an event of the demo gateway: its payload names a demo
// subscription, which the demo gateway reports unchanged, so applying it checks that the
// subscription exists (ErrNotFound parks the event until it does).
func (d demoLookup) processWebhook(ctx context.Context, ev billing.WebhookEvent) (bool, error) {
	var body struct {
		Subscription string `json:"subscription"`
	}
	if err := json.Unmarshal(ev.Payload, &body); err != nil || body.Subscription == "" {
		return true, nil // not an event the demo gateway sends: ignored
	}
	if _, err := d.store.FindSubscriptionByGateway(ctx, demoGateway, body.Subscription); err != nil {
		return false, err
	}
	return false, nil
}
