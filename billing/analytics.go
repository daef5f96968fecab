package billing

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Analytics are the business figures of an analytics and reports page: renewals,
// expirations and churn over recent windows, monthly recurring revenue and what expires soon.
type Analytics struct {
	GeneratedAt time.Time `json:"generated_at"`
	Renewals7d  int       `json:"renewals_7d"`
	Renewals30d int       `json:"renewals_30d"`
	// Expirations count subscriptions that lapsed (expiry job) or ended at the gateway.
	Expirations7d  int `json:"expirations_7d"`
	Expirations30d int `json:"expirations_30d"`
	// ChurnRate30d is the share of the subscriptions live 30 days ago (live now plus those
	// that ended since) that ended in the last 30 days; nil without any.
	ChurnRate30d *float64 `json:"churn_rate_30d"`
	// MRR is the monthly recurring revenue by currency, in minor units: each live
	// subscription's plan price divided by its cycle's months.
	MRR          map[string]int64 `json:"mrr"`
	Expiring3d   int              `json:"expiring_3d"`
	Expiring7d   int              `json:"expiring_7d"`
	Live         int              `json:"live"`
	PlansCounted int              `json:"plans_counted"`
}

// Analytics computes the figures from the audit log and subscription counts.
func (s *Service) Analytics(ctx context.Context) (Analytics, error) {
	now := s.now()
	day := 24 * time.Hour
	a := Analytics{GeneratedAt: now, MRR: map[string]int64{}}
	counter, canCount := s.store.(AuditCounter)
	count := func(since time.Time, actions ...string) (int, error) {
		n := 0
		for _, action := range actions {
			f := AuditFilter{Action: action, Since: since}
			if canCount {
				c, err := counter.CountAudit(ctx, f)
				if err != nil {
					return 0, fmt.Errorf("counting audit log: %w", err)
				}
				n += c
				continue
			}
			es, err := s.store.ListAudit(ctx, f)
			if err != nil {
				return 0, fmt.Errorf("reading audit log: %w", err)
			}
			n += len(es)
		}
		return n, nil
	}
	var err error
	if a.Renewals7d, err = count(now.Add(-7*day), AuditSubscriptionRenewed); err != nil {
		return a, err
	}
	if a.Renewals30d, err = count(now.Add(-30*day), AuditSubscriptionRenewed); err != nil {
		return a, err
	}
	if a.Expirations7d, err = count(now.Add(-7*day), AuditSubscriptionExpired, AuditSubscriptionEnded); err != nil {
		return a, err
	}
	if a.Expirations30d, err = count(now.Add(-30*day), AuditSubscriptionExpired, AuditSubscriptionEnded); err != nil {
		return a, err
	}
	live := []SubscriptionStatus{StatusActive, StatusPastDue}
	if a.Live, err = s.store.CountSubscriptions(ctx, SubscriptionFilter{Statuses: live}); err != nil {
		return a, err
	}
	if base := a.Live + a.Expirations30d; base > 0 {
		r := float64(a.Expirations30d) / float64(base)
		a.ChurnRate30d = &r
	}
	active := []SubscriptionStatus{StatusActive}
	if a.Expiring3d, err = s.store.CountSubscriptions(ctx, SubscriptionFilter{Statuses: active, PeriodEndAfter: now, PeriodEndBefore: now.Add(3 * day)}); err != nil {
		return a, err
	}
	if a.Expiring7d, err = s.store.CountSubscriptions(ctx, SubscriptionFilter{Statuses: active, PeriodEndAfter: now, PeriodEndBefore: now.Add(7 * day)}); err != nil {
		return a, err
	}
	plans, err := s.store.ListPlans(ctx)
	if bad, partial := recordErrors(err); err != nil && !partial {
		return a, err
	} else if len(bad) > 0 {
		// One unreadable plan leaves the others' revenue to count.
		s.log.WarnContext(ctx, "plans unreadable; MRR leaves them out", "count", len(bad), "error", err)
	}
	sort.Slice(plans, func(i, j int) bool { return plans[i].ID < plans[j].ID })
	for _, p := range plans {
		months := p.BillingCycle.Months()
		if months == 0 {
			continue
		}
		n, err := s.store.CountSubscriptions(ctx, SubscriptionFilter{Statuses: live, PlanID: p.ID})
		if err != nil {
			return a, err
		}
		a.PlansCounted++
		if n > 0 {
			a.MRR[p.Price.Currency] += int64(n) * p.Price.Amount / int64(months)
		}
	}
	return a, nil
}
