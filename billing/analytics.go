package billing

import (
	"context"
	"fmt"
	"slices"
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
	MRR map[string]int64 `json:"mrr"`
	// Expiring3d and Expiring7d count active subscriptions whose period ends within 3 and 7
	// days: fixed report horizons. Due counts over the jobs' own windows.
	Expiring3d   int `json:"expiring_3d"`
	Expiring7d   int `json:"expiring_7d"`
	Live         int `json:"live"`
	PlansCounted int `json:"plans_counted"`
	// Due counts the subscriptions the next job runs will select, over the windows of the
	// service's Config (see CountDue).
	Due DueCounts `json:"due"`
}

// SubscriptionStats counts subscriptions by status and those the next job runs will select.
type SubscriptionStats struct {
	ByStatus map[SubscriptionStatus]int `json:"by_status"`
	Total    int                        `json:"total"`
	Due      DueCounts                  `json:"due"`
}

// DueCounts are the live subscriptions the next job runs will select, over the windows a
// Config sets. The JSON keys of the counts are those of earlier releases, whose windows were
// fixed at 3 days and 24 hours (the defaults); the windows are reported beside them.
type DueCounts struct {
	// Expiring: active, period ends within WarningWindowDays (the widest of
	// Config.WarningDays): the expiry warnings.
	Expiring int `json:"expiring_within_3d"`
	// PastPeriodEnd: active or past due with the period already over (expiry, grace).
	PastPeriodEnd int `json:"past_period_end"`
	// Renewing: auto-renewing, period ends within RenewWindowHours (Config.RenewWindow):
	// the renewals.
	Renewing int `json:"renewal_within_24h"`
	// WarningWindowDays is the widest of Config.WarningDays.
	WarningWindowDays int `json:"warning_window_days"`
	// RenewWindowHours is Config.RenewWindow in hours.
	RenewWindowHours float64 `json:"renew_window_hours"`

	// Deprecated: use Expiring, which counts over the configured warning window.
	ExpiringWithin3Days int `json:"-"`
	// Deprecated: use Renewing, which counts over the configured renew window.
	RenewalWithin24h int `json:"-"`
}

// CountSubscriptionStats counts subscriptions by status and, with CountDue, those due at now
// for the jobs a Service with cfg runs. Service.SubscriptionStats calls it with the
// service's Config.
func CountSubscriptionStats(ctx context.Context, c SubscriptionCounter, cfg Config, now time.Time) (SubscriptionStats, error) {
	by, err := c.CountSubscriptionsByStatus(ctx)
	if err != nil {
		return SubscriptionStats{}, fmt.Errorf("counting subscriptions: %w", err)
	}
	out := SubscriptionStats{ByStatus: by}
	if out.ByStatus == nil {
		out.ByStatus = map[SubscriptionStatus]int{}
	}
	for _, n := range by {
		out.Total += n
	}
	if out.Due, err = CountDue(ctx, c, cfg, now); err != nil {
		return SubscriptionStats{}, err
	}
	return out, nil
}

// CountDue counts the live subscriptions due at now for the jobs a Service with cfg runs:
// the expiry warnings (the widest of cfg.WarningDays), the expiry and grace sweeps, and the
// renewals (cfg.RenewWindow). Zero fields of cfg take their defaults, as in NewService.
func CountDue(ctx context.Context, c SubscriptionCounter, cfg Config, now time.Time) (DueCounts, error) {
	cfg.setDefaults()
	var out DueCounts
	widest := slices.Max(cfg.WarningDays)
	out.WarningWindowDays = widest
	out.RenewWindowHours = cfg.RenewWindow.Hours()
	yes := true
	for _, q := range []struct {
		dst *int
		f   SubscriptionFilter
	}{
		{&out.Expiring, SubscriptionFilter{Statuses: []SubscriptionStatus{SubscriptionStatusActive}, PeriodEndAfter: now, PeriodEndBefore: now.Add(time.Duration(widest) * 24 * time.Hour)}},
		{&out.PastPeriodEnd, SubscriptionFilter{Statuses: []SubscriptionStatus{SubscriptionStatusActive, SubscriptionStatusPastDue}, PeriodEndBefore: now}},
		{&out.Renewing, SubscriptionFilter{Statuses: []SubscriptionStatus{SubscriptionStatusActive, SubscriptionStatusPastDue}, PeriodEndAfter: now, PeriodEndBefore: now.Add(cfg.RenewWindow), AutoRenews: &yes}},
	} {
		n, err := c.CountSubscriptions(ctx, q.f)
		if err != nil {
			return DueCounts{}, fmt.Errorf("counting due subscriptions: %w", err)
		}
		*q.dst = n
	}
	out.ExpiringWithin3Days, out.RenewalWithin24h = out.Expiring, out.Renewing
	return out, nil
}

// SubscriptionStats counts subscriptions by status and those due now for the jobs, over the
// windows of the service's Config (see CountSubscriptionStats). A scheduler serves it with
// scheduler.Config{SubscriptionStats: svc.SubscriptionStats}.
func (s *Service) SubscriptionStats(ctx context.Context) (SubscriptionStats, error) {
	return CountSubscriptionStats(ctx, s.store, s.cfg, s.now())
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
	live := []SubscriptionStatus{SubscriptionStatusActive, SubscriptionStatusPastDue}
	if a.Live, err = s.store.CountSubscriptions(ctx, SubscriptionFilter{Statuses: live}); err != nil {
		return a, err
	}
	if base := a.Live + a.Expirations30d; base > 0 {
		r := float64(a.Expirations30d) / float64(base)
		a.ChurnRate30d = &r
	}
	active := []SubscriptionStatus{SubscriptionStatusActive}
	if a.Expiring3d, err = s.store.CountSubscriptions(ctx, SubscriptionFilter{Statuses: active, PeriodEndAfter: now, PeriodEndBefore: now.Add(3 * day)}); err != nil {
		return a, err
	}
	if a.Expiring7d, err = s.store.CountSubscriptions(ctx, SubscriptionFilter{Statuses: active, PeriodEndAfter: now, PeriodEndBefore: now.Add(7 * day)}); err != nil {
		return a, err
	}
	if a.Due, err = CountDue(ctx, s.store, s.cfg, now); err != nil {
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
