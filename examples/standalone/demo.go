package main

import (
	"context"
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
	gs := billing.GatewaySubscription{ID: id, Status: billing.StatusActive,
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
		{"u_joao", "João Silva", "joao@example.com", "pt-BR", "America/Sao_Paulo", "plan_premium", billing.StatusActive, 3*day - time.Hour, billing.GatewayMercadoPago, ""},
		{"u_maria", "Maria Souza", "maria@example.com", "pt-BR", "America/Sao_Paulo", "plan_basico", billing.StatusActive, 2*day + 12*time.Hour, billing.GatewayManual, ""},
		{"u_alice", "Alice Smith", "alice@example.com", "en", "America/New_York", "plan_pro_yearly", billing.StatusActive, 3*day - 2*time.Hour, billing.GatewayPayPal, ""},
		{"u_bruno", "Bruno Costa", "bruno@example.com", "pt-BR", "America/Sao_Paulo", "plan_premium", billing.StatusActive, 12 * time.Hour, demoGateway, "demo_sub_bruno"},
		{"u_carla", "Carla Dias", "carla@example.com", "pt-BR", "America/Recife", "plan_basico", billing.StatusActive, -20 * time.Hour, billing.GatewayManual, ""},
		{"u_bob", "Bob Jones", "bob@example.com", "en", "Europe/London", "plan_pro_yearly", billing.StatusPastDue, -5 * day, demoGateway, "demo_sub_bob"},
		{"u_diego", "Diego Lima", "diego@example.com", "pt-BR", "America/Sao_Paulo", "plan_basico", billing.StatusActive, 20 * day, billing.GatewayMercadoPago, ""},
		{"u_eva", "Eva Rocha", "eva@example.com", "pt-BR", "America/Sao_Paulo", "plan_premium", billing.StatusInactive, -40 * day, billing.GatewayManual, ""},
		{"u_frank", "Frank Miller", "frank@example.com", "en", "UTC", "plan_basico", billing.StatusCancelled, -10 * day, billing.GatewayStripe, "sub_demo_frank"},
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
		{"pay_stale_1", "u_eva", "plan_premium", 10 * day, billing.PaymentPending},
		{"pay_stale_2", "u_frank", "plan_basico", 8 * day, billing.PaymentPending},
		{"pay_recent", "u_diego", "plan_basico", 1 * day, billing.PaymentPending},
		{"pay_ok", "u_joao", "plan_premium", 27 * day, billing.PaymentApproved},
	}
	for _, p := range payments {
		pl, _ := st.GetPlan(ctx, p.plan)
		pay := billing.Payment{ID: p.id, UserID: p.user, PlanID: p.plan, Amount: pl.Price, Status: p.status,
			Gateway: billing.GatewayMercadoPago, CreatedAt: now.Add(-p.age), UpdatedAt: now.Add(-p.age)}
		if err := st.InsertPayment(ctx, &pay); err != nil {
			return "", fmt.Errorf("demo payment: %w", err)
		}
	}
	return fmt.Sprintf("demo data: %d plans, %d users with subscriptions at every stage, %d sessions, %d payments",
		len(plans), len(stages), len(sessions), len(payments)), nil
}
