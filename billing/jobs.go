package billing

import (
	"context"
	"fmt"
	"time"
)

// ExpiringResult is returned by CheckExpiringSubscriptions.
type ExpiringResult struct {
	Success           bool `json:"success"`
	TotalFound        int  `json:"total_found"`
	NotificationsSent int  `json:"notifications_sent"`
	Failed            int  `json:"failed"`
	// Errors names the records that failed and why (at most 20).
	Errors []string `json:"errors,omitempty"`
	Error  string   `json:"error,omitempty"`
}

// ExpiredResult is returned by ProcessExpiredSubscriptions.
type ExpiredResult struct {
	Success    bool     `json:"success"`
	TotalFound int      `json:"total_found"`
	Processed  int      `json:"processed"`
	Failed     int      `json:"failed"`
	Errors     []string `json:"errors,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// RenewResult is returned by RenewSubscriptions.
type RenewResult struct {
	Success    bool `json:"success"`
	TotalFound int  `json:"total_found"`
	Renewed    int  `json:"renewed"`
	Failed     int  `json:"failed"`
	// Cancelling counts subscriptions the gateway will not renew; they now expire at their
	// period end without grace.
	Cancelling int      `json:"cancelling"`
	Errors     []string `json:"errors,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// CleanupResult is returned by the two cleanup jobs.
type CleanupResult struct {
	Success    bool   `json:"success"`
	TotalFound int    `json:"total_found"`
	Cleaned    int    `json:"cleaned"`
	Error      string `json:"error,omitempty"`
}

func (r ExpiringResult) Found() int    { return r.TotalFound }
func (r ExpiringResult) Failures() int { return r.Failed }
func (r ExpiredResult) Found() int     { return r.TotalFound }
func (r ExpiredResult) Failures() int  { return r.Failed }
func (r RenewResult) Found() int       { return r.TotalFound }
func (r RenewResult) Failures() int    { return r.Failed }
func (r CleanupResult) Found() int     { return r.TotalFound }
func (r CleanupResult) Failures() int  { return 0 }

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// CheckExpiringSubscriptions sends the expiry warning to active subscriptions whose period
// ends within one of the ladder offsets and that were not warned for that offset in the
// current period, then marks them. The nearest offset wins: a subscription 2 days from its
// end with ladder 7,3,1 gets the 3-day warning once, not the 7-day one as well. Auto-renewing
// subscriptions get a renewal-upcoming notice (date and amount) instead.
func (s *Service) CheckExpiringSubscriptions(ctx context.Context) (ExpiringResult, error) {
	var res ExpiringResult
	var st sweepStats
	var runErr error
	for _, days := range s.cfg.WarningDays {
		now := s.now()
		f := SubscriptionFilter{
			Statuses:        []SubscriptionStatus{StatusActive},
			PeriodEndAfter:  now,
			PeriodEndBefore: now.Add(time.Duration(days) * 24 * time.Hour),
			WarningDueDays:  days,
		}
		if runErr = s.sweep(ctx, f, &st, func(sub Subscription) error {
			sent, err := s.warn(ctx, sub, days)
			if sent {
				res.NotificationsSent++
			}
			return err
		}); runErr != nil {
			break
		}
	}
	res.TotalFound, res.Failed, res.Errors = st.found, st.failed, st.errors
	res.Success, res.Error = runErr == nil, errText(runErr)
	return res, runErr
}

func (s *Service) warn(ctx context.Context, sub Subscription, days int) (bool, error) {
	now := s.now()
	// The nearest ladder offset wins even when another run's pass for a wider offset got
	// here first, so concurrent runs agree on one warning (and one key) per subscription.
	days = s.nearestOffset(now, sub.CurrentPeriodEnd, days)
	if !sub.WarningDue(days) {
		return false, nil
	}
	u, p, err := s.subjectOf(ctx, sub)
	if err != nil {
		return false, err
	}
	kind := KindExpiring
	if sub.AutoRenews() {
		kind = KindRenewalUpcoming
	}
	n := Notification{
		Kind: kind,
		Key:  notificationKey(kind, sub.ID, sub.CurrentPeriodEnd, days),
		To:   recipient(u),
		Data: NotificationData{
			PlanName: p.Name, SubscriptionID: sub.ID, Amount: p.Price, Gateway: sub.Gateway,
			PeriodStart: sub.CurrentPeriodStart, PeriodEnd: sub.CurrentPeriodEnd,
			DaysRemaining: daysUntil(now, sub.CurrentPeriodEnd),
		},
	}
	sent, err := s.notifyOnce(ctx, n, sub.ID)
	if err != nil {
		return false, err
	}
	sub.ExpirationWarningSent = true
	sub.ExpirationWarningDays = days
	sub.UpdatedAt = now
	if _, err := s.store.UpdateSubscription(ctx, sub); err != nil {
		return sent, fmt.Errorf("marking warning sent: %w", err)
	}
	return sent, s.audit(ctx, AuditEntry{
		Action: AuditWarningSent, EntityType: "subscription", EntityID: sub.ID, UserID: sub.UserID,
		Details: map[string]any{"days": days, "kind": string(kind), "period_end": sub.CurrentPeriodEnd, "sent": sent},
	})
}

// nearestOffset returns the smallest ladder offset (at most upTo) whose window already
// contains end.
func (s *Service) nearestOffset(now, end time.Time, upTo int) int {
	for _, d := range s.cfg.WarningDays { // ascending
		if d <= upTo && !end.After(now.Add(time.Duration(d)*24*time.Hour)) {
			return d
		}
	}
	return upTo
}

// ProcessExpiredSubscriptions expires live subscriptions past their period end (auto-renewing
// ones only after the grace period): status inactive, the user's access revoked, the expired
// email, audit entries. Access is revoked before the email is sent; if the email fails, the
// subscription stays selected and the next run sends it and finishes.
func (s *Service) ProcessExpiredSubscriptions(ctx context.Context) (ExpiredResult, error) {
	var res ExpiredResult
	var st sweepStats
	var runErr error
	now := s.now()
	no, yes := false, true
	passes := []SubscriptionFilter{
		{Statuses: []SubscriptionStatus{StatusActive, StatusPastDue}, PeriodEndBefore: now, AutoRenews: &no},
		{Statuses: []SubscriptionStatus{StatusActive, StatusPastDue}, PeriodEndBefore: now.Add(-s.cfg.Grace), AutoRenews: &yes},
	}
	for _, f := range passes {
		if runErr = s.sweep(ctx, f, &st, func(sub Subscription) error {
			if err := s.expire(ctx, sub); err != nil {
				return err
			}
			res.Processed++
			return nil
		}); runErr != nil {
			break
		}
	}
	res.TotalFound, res.Failed, res.Errors = st.found, st.failed, st.errors
	res.Success, res.Error = runErr == nil, errText(runErr)
	return res, runErr
}

func (s *Service) expire(ctx context.Context, sub Subscription) error {
	u, p, err := s.subjectOf(ctx, sub)
	if err != nil {
		return err
	}
	if err := s.revokeAccess(ctx, u, sub, StatusInactive); err != nil {
		return err
	}
	if _, err := s.notifyOnce(ctx, Notification{
		Kind: KindExpired,
		Key:  notificationKey(KindExpired, sub.ID, sub.CurrentPeriodEnd),
		To:   recipient(u),
		Data: NotificationData{PlanName: p.Name, SubscriptionID: sub.ID, Amount: p.Price, Gateway: sub.Gateway,
			PeriodStart: sub.CurrentPeriodStart, PeriodEnd: sub.CurrentPeriodEnd},
	}, sub.ID); err != nil {
		return err
	}
	prev := sub.Status
	sub.Status = StatusInactive
	sub.UpdatedAt = s.now()
	if _, err := s.store.UpdateSubscription(ctx, sub); err != nil {
		return fmt.Errorf("marking subscription inactive: %w", err)
	}
	return s.audit(ctx, AuditEntry{
		Action: AuditSubscriptionExpired, EntityType: "subscription", EntityID: sub.ID, UserID: sub.UserID,
		Details: map[string]any{"previous_status": string(prev), "period_end": sub.CurrentPeriodEnd},
	})
}

// revokeAccess removes the user's access granted by sub. A user whose access now comes from
// another subscription keeps it.
func (s *Service) revokeAccess(ctx context.Context, u User, sub Subscription, status SubscriptionStatus) error {
	if u.SubscriptionID != "" && u.SubscriptionID != sub.ID {
		return nil
	}
	if u.PlanID == "" && u.Status == status {
		return nil
	}
	prevPlan := u.PlanID
	u.PlanID, u.SubscriptionID, u.Status = "", sub.ID, status
	u.AccessUntil = sub.CurrentPeriodEnd
	u.UpdatedAt = s.now()
	if err := s.store.UpdateUserAccess(ctx, u); err != nil {
		return fmt.Errorf("revoking access of user %s: %w", u.ID, err)
	}
	return s.audit(ctx, AuditEntry{
		Action: AuditAccessRevoked, EntityType: "user", EntityID: u.ID, UserID: u.ID,
		Details: map[string]any{"subscription_id": sub.ID, "previous_plan_id": prevPlan, "status": string(status)},
	})
}

// RenewSubscriptions asks the gateway about each auto-renewing subscription ending within
// RenewWindow (or already in grace). When the gateway reports a later period, it is stored,
// the renewed email goes out and the renewal is audited. A gateway error fails that
// subscription only.
func (s *Service) RenewSubscriptions(ctx context.Context) (RenewResult, error) {
	var res RenewResult
	now := s.now()
	yes := true
	f := SubscriptionFilter{
		Statuses:        []SubscriptionStatus{StatusActive, StatusPastDue},
		PeriodEndBefore: now.Add(s.cfg.RenewWindow),
		AutoRenews:      &yes,
	}
	var st sweepStats
	err := s.sweep(ctx, f, &st, func(sub Subscription) error {
		outcome, err := s.renew(ctx, sub)
		switch outcome {
		case renewRenewed:
			res.Renewed++
		case renewCancelling:
			res.Cancelling++
		}
		return err
	})
	res.TotalFound, res.Failed, res.Errors = st.found, st.failed, st.errors
	res.Success, res.Error = err == nil, errText(err)
	return res, err
}

type renewOutcome int

const (
	renewNone renewOutcome = iota
	renewRenewed
	renewCancelling
)

func (s *Service) renew(ctx context.Context, sub Subscription) (renewOutcome, error) {
	lookup := s.cfg.Renewals[sub.Gateway]
	if lookup == nil {
		return renewNone, fmt.Errorf("%w %q", ErrNoRenewalLookup, sub.Gateway)
	}
	gs, err := lookup.LookupSubscription(ctx, sub.GatewaySubscriptionID)
	if err != nil {
		return renewNone, fmt.Errorf("asking %s about %s: %w", sub.Gateway, sub.GatewaySubscriptionID, err)
	}
	now := s.now()
	gs.PeriodStart, gs.PeriodEnd = TruncateTime(gs.PeriodStart), TruncateTime(gs.PeriodEnd)
	if gs.Status.Live() && gs.PeriodEnd.After(sub.CurrentPeriodEnd) {
		u, p, err := s.subjectOf(ctx, sub)
		if err != nil {
			return renewNone, err
		}
		amount := gs.Amount
		if amount.Currency == "" {
			amount = p.Price
		}
		if _, err := s.notifyOnce(ctx, Notification{
			Kind: KindRenewed,
			Key:  notificationKey(KindRenewed, sub.ID, gs.PeriodEnd),
			To:   recipient(u),
			Data: NotificationData{PlanName: p.Name, SubscriptionID: sub.ID, Amount: amount, Gateway: sub.Gateway,
				PeriodStart: gs.PeriodStart, PeriodEnd: gs.PeriodEnd},
		}, sub.ID); err != nil {
			return renewNone, err
		}
		prevEnd := sub.CurrentPeriodEnd
		sub.startPeriod(gs.PeriodStart, gs.PeriodEnd)
		sub.Status, sub.CancelAtPeriodEnd, sub.UpdatedAt = StatusActive, gs.CancelAtPeriodEnd, now
		if sub, err = s.store.UpdateSubscription(ctx, sub); err != nil {
			return renewNone, fmt.Errorf("storing renewed period: %w", err)
		}
		if err := s.grantAccess(ctx, u, sub); err != nil {
			return renewNone, err
		}
		return renewRenewed, s.audit(ctx, AuditEntry{
			Action: AuditSubscriptionRenewed, EntityType: "subscription", EntityID: sub.ID, UserID: sub.UserID,
			Details: map[string]any{"gateway": sub.Gateway, "previous_period_end": prevEnd, "period_end": sub.CurrentPeriodEnd, "source": "renew_job"},
		})
	}
	if !gs.Status.Live() || gs.CancelAtPeriodEnd {
		sub.CancelAtPeriodEnd, sub.UpdatedAt = true, now
		if _, err := s.store.UpdateSubscription(ctx, sub); err != nil {
			return renewNone, fmt.Errorf("marking subscription as cancelling: %w", err)
		}
		return renewCancelling, s.audit(ctx, AuditEntry{
			Action: AuditSubscriptionUpdated, EntityType: "subscription", EntityID: sub.ID, UserID: sub.UserID,
			Details: map[string]any{"cancel_at_period_end": true, "gateway_status": string(gs.Status), "source": "renew_job"},
		})
	}
	// The gateway has not charged yet; a later run (or the webhook) picks it up.
	return renewNone, nil
}

// grantAccess points the user's access at sub for its current period.
func (s *Service) grantAccess(ctx context.Context, u User, sub Subscription) error {
	if u.PlanID == sub.PlanID && u.SubscriptionID == sub.ID && u.Status == sub.Status && u.AccessUntil.Equal(sub.CurrentPeriodEnd) {
		return nil
	}
	prevPlan := u.PlanID
	u.PlanID, u.SubscriptionID, u.Status, u.AccessUntil = sub.PlanID, sub.ID, sub.Status, sub.CurrentPeriodEnd
	u.UpdatedAt = s.now()
	if err := s.store.UpdateUserAccess(ctx, u); err != nil {
		return fmt.Errorf("updating access of user %s: %w", u.ID, err)
	}
	if prevPlan == sub.PlanID {
		return nil
	}
	return s.audit(ctx, AuditEntry{
		Action: AuditUserPlanUpdated, EntityType: "user", EntityID: u.ID, UserID: u.ID,
		Details: map[string]any{"previous_plan_id": prevPlan, "plan_id": sub.PlanID, "subscription_id": sub.ID},
	})
}

// CleanupOldSessions soft-deletes sessions that expired more than SessionRetention ago (a
// session expired exactly SessionRetention ago is included) and audits each batch.
func (s *Service) CleanupOldSessions(ctx context.Context) (CleanupResult, error) {
	var res CleanupResult
	now := s.now()
	cutoff := now.Add(-s.cfg.SessionRetention)
	var runErr error
	for {
		batch, err := s.store.DeleteExpiredSessions(ctx, cutoff, now, s.cfg.BatchSize)
		if err != nil {
			runErr = fmt.Errorf("deleting expired sessions: %w", err)
			break
		}
		if len(batch) > 0 {
			ids := make([]string, len(batch))
			for i, se := range batch {
				ids[i] = se.ID
			}
			res.TotalFound += len(batch)
			res.Cleaned += len(batch)
			_ = s.audit(ctx, AuditEntry{
				Action: AuditSessionsCleaned, EntityType: "session", EntityID: ids[0],
				Details: map[string]any{"count": len(ids), "session_ids": ids, "expired_before": cutoff},
			})
		}
		if len(batch) < s.cfg.BatchSize {
			break
		}
	}
	res.Success, res.Error = runErr == nil, errText(runErr)
	return res, runErr
}

// CleanupPendingPayments cancels payments pending for more than PendingPaymentTTL (exactly
// PendingPaymentTTL included) and audits each.
func (s *Service) CleanupPendingPayments(ctx context.Context) (CleanupResult, error) {
	var res CleanupResult
	now := s.now()
	cutoff := now.Add(-s.cfg.PendingPaymentTTL)
	reason := fmt.Sprintf("pending for more than %s", s.cfg.PendingPaymentTTL)
	var runErr error
	for {
		batch, err := s.store.CancelStalePayments(ctx, cutoff, now, reason, s.cfg.BatchSize)
		if err != nil {
			runErr = fmt.Errorf("cancelling stale payments: %w", err)
			break
		}
		for _, p := range batch {
			res.TotalFound++
			res.Cleaned++
			_ = s.audit(ctx, AuditEntry{
				Action: AuditPaymentCancelled, EntityType: "payment", EntityID: p.ID, UserID: p.UserID,
				Details: map[string]any{"reason": reason, "created_at": p.CreatedAt, "source": JobCleanupPayments},
			})
		}
		if len(batch) < s.cfg.BatchSize {
			break
		}
	}
	res.Success, res.Error = runErr == nil, errText(runErr)
	return res, runErr
}
