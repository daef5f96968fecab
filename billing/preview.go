package billing

import (
	"context"
	"fmt"
	"time"
)

// PreviewItem is one record a job would change and what it would do.
type PreviewItem struct {
	SubscriptionID string    `json:"subscription_id"`
	UserID         string    `json:"user_id"`
	PlanID         string    `json:"plan_id"`
	Status         string    `json:"status"`
	Gateway        string    `json:"gateway,omitempty"`
	PeriodEnd      time.Time `json:"period_end"`
	Action         string    `json:"action"`
}

// Preview is a dry run of a job: what it would do now. Nothing is claimed, sent or changed.
type Preview struct {
	JobID       string        `json:"job_id"`
	GeneratedAt time.Time     `json:"generated_at"`
	Total       int           `json:"total"`
	Items       []PreviewItem `json:"items"`
	// Truncated: Items lists the first MaxPreviewItems of Total.
	Truncated bool   `json:"truncated"`
	Summary   string `json:"summary"`
}

// MaxPreviewItems bounds Preview.Items.
const MaxPreviewItems = 200

// ErrPreviewUnsupported: the store lacks the optional capability a preview needs.
var ErrPreviewUnsupported = fmt.Errorf("%w: the store cannot list records for a preview", ErrInvalidInput)

// Preview reports what the job with id would do if it ran now, changing nothing. It returns
// ErrNotFound for an id that is not one of the five jobs.
func (s *Service) Preview(ctx context.Context, jobID string) (Preview, error) {
	now := s.now()
	p := Preview{JobID: jobID, GeneratedAt: now, Items: []PreviewItem{}}
	switch jobID {
	case JobCheckExpiring:
		seen := map[string]bool{}
		for _, days := range s.cfg.WarningDays {
			f := SubscriptionFilter{Statuses: []SubscriptionStatus{SubscriptionStatusActive}, PeriodEndAfter: now,
				PeriodEndBefore: now.Add(time.Duration(days) * 24 * time.Hour), WarningDueDays: days}
			err := s.previewSubs(ctx, &p, f, seen, func(sub Subscription) string {
				if sub.AutoRenews() {
					return fmt.Sprintf("send renewal_upcoming (%d-day notice), mark warned", days)
				}
				return fmt.Sprintf("send expiring warning (%d days), mark warned", days)
			})
			if err != nil {
				return p, err
			}
		}
		p.Summary = fmt.Sprintf("%d subscriptions would be warned", p.Total)
	case JobProcessExpired:
		no, yes := false, true
		seen := map[string]bool{}
		live := []SubscriptionStatus{SubscriptionStatusActive, SubscriptionStatusPastDue}
		for _, f := range []SubscriptionFilter{
			{Statuses: live, PeriodEndBefore: now, AutoRenews: &no},
			{Statuses: live, PeriodEndBefore: now.Add(-s.cfg.Grace), AutoRenews: &yes},
		} {
			if err := s.previewSubs(ctx, &p, f, seen, func(Subscription) string {
				return "set inactive, revoke access, send expired email"
			}); err != nil {
				return p, err
			}
		}
		p.Summary = fmt.Sprintf("%d subscriptions would expire", p.Total)
	case JobRenew:
		yes := true
		f := SubscriptionFilter{Statuses: []SubscriptionStatus{SubscriptionStatusActive, SubscriptionStatusPastDue},
			PeriodEndBefore: now.Add(s.cfg.RenewWindow), AutoRenews: &yes}
		if err := s.previewSubs(ctx, &p, f, map[string]bool{}, func(sub Subscription) string {
			if s.cfg.Renewals[sub.Gateway] == nil {
				return "fail: no renewal lookup configured for gateway " + sub.Gateway
			}
			return "ask " + sub.Gateway + " for the current period; store it if renewed"
		}); err != nil {
			return p, err
		}
		p.Summary = fmt.Sprintf("%d auto-renewing subscriptions would be reconciled", p.Total)
	case JobCleanupSessions, JobCleanupPayments:
		cc, ok := s.store.(CleanupCounter)
		if !ok {
			return p, ErrPreviewUnsupported
		}
		var err error
		if jobID == JobCleanupSessions {
			p.Total, err = cc.CountExpiredSessions(ctx, now.Add(-s.cfg.SessionRetention))
			p.Summary = fmt.Sprintf("%d sessions expired over %s ago would be soft-deleted", p.Total, s.cfg.SessionRetention)
		} else {
			p.Total, err = cc.CountStalePayments(ctx, now.Add(-s.cfg.PendingPaymentTTL))
			p.Summary = fmt.Sprintf("%d payments pending over %s would be cancelled", p.Total, s.cfg.PendingPaymentTTL)
		}
		if err != nil {
			return p, err
		}
	default:
		return p, fmt.Errorf("job %q: %w", jobID, ErrNotFound)
	}
	return p, nil
}

func (s *Service) previewSubs(ctx context.Context, p *Preview, f SubscriptionFilter, seen map[string]bool, action func(Subscription) string) error {
	f = scoped(ctx, f)
	n, err := s.store.CountSubscriptions(ctx, f)
	if err != nil {
		return err
	}
	subs, err := s.store.ListSubscriptions(ctx, f, MaxPreviewItems)
	if err != nil {
		return err
	}
	listed := 0
	for _, sub := range subs {
		if seen[sub.ID] {
			n--
			continue
		}
		seen[sub.ID] = true
		listed++
		if len(p.Items) < MaxPreviewItems {
			p.Items = append(p.Items, PreviewItem{SubscriptionID: sub.ID, UserID: sub.UserID, PlanID: sub.PlanID,
				Status: string(sub.Status), Gateway: sub.Gateway, PeriodEnd: sub.CurrentPeriodEnd, Action: action(sub)})
		}
	}
	p.Total += n
	p.Truncated = p.Truncated || len(p.Items) < p.Total
	return nil
}
