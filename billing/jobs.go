package billing

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// RunSummary is what every job result reports. The result types embed it, so its fields
// marshal at the top level with the original application's keys (success, total_found).
type RunSummary struct {
	Success    bool `json:"success"`
	TotalFound int  `json:"total_found"`
	// Failed counts selected records the run could not finish; a later run retries them.
	Failed int `json:"failed"`
	// Skipped counts records someone else changed between the claim and the transition;
	// the run left them alone.
	Skipped int `json:"skipped,omitempty"`
	// Resumed counts records whose pending effects, left by an earlier run, this run
	// finished.
	Resumed int `json:"resumed,omitempty"`
	// Errors names the records that failed and why (at most 20).
	Errors []string `json:"errors,omitempty"`
	Error  string   `json:"error,omitempty"`
}

// Found returns TotalFound.
func (s RunSummary) Found() int { return s.TotalFound }

// Failures returns Failed.
func (s RunSummary) Failures() int { return s.Failed }

// ExpiringResult is returned by CheckExpiringSubscriptions.
type ExpiringResult struct {
	RunSummary
	NotificationsSent int `json:"notifications_sent"`
}

// ExpiredResult is returned by ProcessExpiredSubscriptions.
type ExpiredResult struct {
	RunSummary
	Processed int `json:"processed"`
	// Renewed counts auto-renewing subscriptions the gateway reported renewed when asked
	// before expiring them.
	Renewed int `json:"renewed,omitempty"`
}

// RenewResult is returned by RenewSubscriptions.
type RenewResult struct {
	RunSummary
	Renewed int `json:"renewed"`
	// Cancelling counts subscriptions the gateway will not renew; they now expire at their
	// period end without grace.
	Cancelling int `json:"cancelling"`
}

// CleanupResult is returned by the two cleanup jobs. Failed counts records that could not
// be read; they are left untouched.
type CleanupResult struct {
	RunSummary
	Cleaned int `json:"cleaned"`
	// Pruned is what cleanup_old_sessions removed past Config.Retention (see Pruner).
	Pruned PruneResult `json:"pruned,omitzero"`
}

var (
	_ Result = ExpiringResult{}
	_ Result = ExpiredResult{}
	_ Result = RenewResult{}
	_ Result = CleanupResult{}
)

// summary is what run r counted, ended by err.
func (r *run) summary(err error) RunSummary {
	return RunSummary{TotalFound: r.found, Failed: r.failed, Skipped: r.skipped, Resumed: r.resumed,
		Errors: r.errs, Success: err == nil, Error: errText(err)}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// CheckExpiringSubscriptions sends the expiry warning to active subscriptions whose period
// ends within the widest ladder offset and that were not warned for their offset in the
// current period, and marks them. A record's offset is the nearest ladder offset whose window
// holds its period end: a subscription 2 days from its end with ladder 7,3,1 gets the 3-day
// warning once, not the 7-day one as well. Auto-renewing subscriptions get a
// renewal-upcoming notice (date and amount) instead.
//
// The mark is stored first, conditionally on the record as claimed, together with the
// email to send; the email goes out after it. A record someone changed meanwhile gets
// neither. An email that fails transiently stays pending on the record and the next run
// sends it.
func (s *Service) CheckExpiringSubscriptions(ctx context.Context) (ExpiringResult, error) {
	r := s.newRun()
	r.emailOnly = true // warnings are only emails: an outage stops the run
	defer r.release(ctx)
	err := r.resume(ctx)
	if err == nil {
		now := s.now()
		widest := s.cfg.WarningDays[len(s.cfg.WarningDays)-1]
		f := SubscriptionFilter{
			Statuses:        []SubscriptionStatus{SubscriptionStatusActive},
			PeriodEndAfter:  now,
			PeriodEndBefore: now.Add(time.Duration(widest) * 24 * time.Hour),
			WarningDueDays:  s.cfg.WarningDays[0],
		}
		err = r.sweep(ctx, f, each(r.warning))
	}
	return ExpiringResult{RunSummary: r.summary(err), NotificationsSent: r.sent}, err
}

// warning is the transition that marks sub warned for its ladder offset with the email to
// send; records not due for their offset are skipped.
func (r *run) warning(ctx context.Context, b *batch, sub Subscription) decision {
	now := r.s.now()
	days, ok := r.s.offsetFor(now, sub.CurrentPeriodEnd)
	if !ok || !sub.WarningDue(days) {
		return decision{skip: true}
	}
	u, err := b.user(sub.UserID)
	if err != nil {
		return decision{err: fmt.Errorf("loading user: %w", err)}
	}
	p, err := r.plan(ctx, sub.PlanID)
	if err != nil {
		return decision{err: err}
	}
	kind := NotificationKindExpiring
	if sub.AutoRenews() {
		kind = NotificationKindRenewalUpcoming
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
	changed := sub
	changed.ExpirationWarningSent, changed.ExpirationWarningDays, changed.UpdatedAt = true, days, now
	d := r.details(3)
	d["days"], d["kind"], d["period_end"] = days, detail(kind), sub.CurrentPeriodEnd
	return r.transition(changed, r.effects(changed, nil, []Notification{n}, AuditEntry{
		Action: AuditWarningSent, EntityType: "subscription", EntityID: sub.ID, UserID: sub.UserID, Details: d,
	}), nil)
}

// offsetFor returns the smallest ladder offset whose window (now, now+offset days] holds
// end, or false when end is outside every window.
func (s *Service) offsetFor(now, end time.Time) (int, bool) {
	if !end.After(now) {
		return 0, false
	}
	for _, d := range s.cfg.WarningDays { // ascending
		if !end.After(now.Add(time.Duration(d) * 24 * time.Hour)) {
			return d, true
		}
	}
	return 0, false
}

// ProcessExpiredSubscriptions expires live subscriptions past their period end: status
// inactive, the user's access revoked (unless another live subscription grants it), the
// expired email and the audit entries. An auto-renewing subscription past its grace period is
// first looked up at its gateway: a live answer with a later period renews it instead, an
// explicit end expires it, and an unknown or failed answer fails that record, which keeps its
// grace and is asked again by the next run.
func (s *Service) ProcessExpiredSubscriptions(ctx context.Context) (ExpiredResult, error) {
	r := s.newRun()
	defer r.release(ctx)
	var processed, renewed int
	// The counters' callbacks, made once for every record (a closure per record costs an
	// allocation each).
	expired := func() { r.count(&processed, 1) }
	wasRenewed := func() { r.count(&renewed, 1) }
	err := r.resume(ctx)
	now := s.now()
	no, yes := false, true
	live := []SubscriptionStatus{SubscriptionStatusActive, SubscriptionStatusPastDue}
	if err == nil {
		err = r.sweep(ctx, SubscriptionFilter{Statuses: live, PeriodEndBefore: now, AutoRenews: &no},
			each(func(ctx context.Context, b *batch, sub Subscription) decision {
				return r.expiry(ctx, b, sub, SubscriptionStatusInactive, expired)
			}))
	}
	if err == nil {
		err = r.sweep(ctx, SubscriptionFilter{Statuses: live, PeriodEndBefore: now.Add(-s.cfg.Grace), AutoRenews: &yes},
			r.asked(func(ctx context.Context, b *batch, sub Subscription, gs GatewaySubscription) decision {
				switch {
				case gs.Status.Live() && gs.PeriodEnd.After(sub.CurrentPeriodEnd):
					return r.renewal(ctx, b, sub, gs, JobProcessExpired, wasRenewed)
				case gs.Status.Live():
					// The gateway still collects (retrying a failed charge): access stays
					// until it says the subscription ended.
					return decision{}
				}
				return r.expiry(ctx, b, sub, SubscriptionStatusInactive, expired)
			}))
	}
	err = r.settle(err)
	return ExpiredResult{RunSummary: r.summary(err), Processed: processed, Renewed: renewed}, err
}

// expiry is the transition that ends sub with status.
func (r *run) expiry(ctx context.Context, b *batch, sub Subscription, status SubscriptionStatus, done func()) decision {
	now := r.s.now()
	p, err := r.plan(ctx, sub.PlanID)
	if err != nil {
		return decision{err: err}
	}
	changed := sub
	changed.Status, changed.UpdatedAt = status, now
	var notes []Notification
	var access *AccessEffect
	switch u, err := b.user(sub.UserID); {
	case err == nil:
		access = &AccessEffect{UserID: u.ID, Status: status}
		notes = []Notification{{
			Kind: NotificationKindExpired,
			Key:  notificationKey(NotificationKindExpired, sub.ID, sub.CurrentPeriodEnd),
			To:   recipient(u),
			Data: NotificationData{PlanName: p.Name, SubscriptionID: sub.ID, Amount: p.Price, Gateway: sub.Gateway,
				PeriodStart: sub.CurrentPeriodStart, PeriodEnd: sub.CurrentPeriodEnd},
		}}
	case errors.Is(err, ErrNotFound):
		// No user left to email or to take access from: the record still expires.
	default:
		return decision{err: fmt.Errorf("loading user: %w", err)}
	}
	d := r.details(2)
	d["previous_status"], d["period_end"] = detail(sub.Status), sub.CurrentPeriodEnd
	return r.transition(changed, r.effects(changed, access, notes, AuditEntry{
		Action: AuditSubscriptionExpired, EntityType: "subscription", EntityID: sub.ID, UserID: sub.UserID, Details: d,
	}), done)
}

// renewal is the transition that starts the period the gateway reports.
func (r *run) renewal(ctx context.Context, b *batch, sub Subscription, gs GatewaySubscription, source string, done func()) decision {
	now := r.s.now()
	p, err := r.plan(ctx, sub.PlanID)
	if err != nil {
		return decision{err: err}
	}
	start := gs.PeriodStart
	if start.IsZero() || !start.Before(gs.PeriodEnd) {
		start = sub.CurrentPeriodEnd
	}
	changed := sub
	changed.startPeriod(start, gs.PeriodEnd)
	changed.Status, changed.CancelAtPeriodEnd, changed.UpdatedAt = SubscriptionStatusActive, gs.CancelAtPeriodEnd, now
	amount := gs.Amount
	if amount.Currency == "" {
		amount = p.Price
	}
	var notes []Notification
	var access *AccessEffect
	switch u, err := b.user(sub.UserID); {
	case err == nil:
		access = &AccessEffect{UserID: u.ID}
		notes = []Notification{{
			Kind: NotificationKindRenewed,
			Key:  notificationKey(NotificationKindRenewed, sub.ID, gs.PeriodEnd),
			To:   recipient(u),
			Data: NotificationData{PlanName: p.Name, SubscriptionID: sub.ID, Amount: amount, Gateway: sub.Gateway,
				PeriodStart: start, PeriodEnd: gs.PeriodEnd},
		}}
	case !errors.Is(err, ErrNotFound):
		return decision{err: fmt.Errorf("loading user: %w", err)}
	}
	return r.transition(changed, r.effects(changed, access, notes, AuditEntry{
		Action: AuditSubscriptionRenewed, EntityType: "subscription", EntityID: sub.ID, UserID: sub.UserID,
		Details: map[string]any{"gateway": sub.Gateway, "previous_status": detail(sub.Status),
			"previous_period_end": sub.CurrentPeriodEnd, "period_end": gs.PeriodEnd, "source": source},
	}), done)
}

// each is a decider that decides every record of a batch on its own.
func each(decide func(ctx context.Context, b *batch, sub Subscription) decision) decider {
	return func(ctx context.Context, b *batch, ds []decision) {
		for i, sub := range b.subs {
			ds[i] = decide(ctx, b, sub)
		}
	}
}

// asked is a decider that first asks the gateways about the whole batch (see lookup) and
// decides each record from its answer; a failed or unknown answer fails that record.
func (r *run) asked(decide func(ctx context.Context, b *batch, sub Subscription, gs GatewaySubscription) decision) decider {
	return func(ctx context.Context, b *batch, ds []decision) {
		answers := r.lookup(ctx, b.subs)
		for i, sub := range b.subs {
			if a := answers[i]; a.err != nil {
				ds[i].err = a.err
			} else {
				ds[i] = decide(ctx, b, sub, a.gs)
			}
		}
	}
}

// answer is what a gateway said about one subscription.
type answer struct {
	gs  GatewaySubscription
	err error
}

// lookup asks the gateways about subs, at most SendConcurrency at a time. An answer without
// a status renewkit knows is an error: it neither renews nor ends anything.
func (r *run) lookup(ctx context.Context, subs []Subscription) []answer {
	out := make([]answer, len(subs))
	notAsked := fmt.Errorf("gateway not asked: %w", context.Canceled) // one value for every record
	for i := range out {
		out[i].err = notAsked
	}
	parallel(ctx, len(subs), r.s.cfg.SendConcurrency, func(i int) {
		sub := subs[i]
		lookup := r.s.cfg.Renewals[sub.Gateway]
		if lookup == nil {
			out[i].err = fmt.Errorf("%w %q", ErrNoRenewalLookup, sub.Gateway)
			return
		}
		gs, err := lookup.LookupSubscription(ctx, sub.GatewaySubscriptionID)
		if err != nil {
			out[i].err = fmt.Errorf("asking %s about %s: %w", sub.Gateway, sub.GatewaySubscriptionID, err)
			return
		}
		gs.PeriodStart, gs.PeriodEnd = TruncateTime(gs.PeriodStart), TruncateTime(gs.PeriodEnd)
		switch gs.Status {
		case SubscriptionStatusActive, SubscriptionStatusPastDue, SubscriptionStatusCancelled, SubscriptionStatusInactive:
			out[i] = answer{gs: gs}
		default:
			out[i].err = fmt.Errorf("%w: %s answered status %q for %s; the subscription keeps its state and is asked again",
				ErrUnknownGatewayStatus, sub.Gateway, gs.Status, sub.GatewaySubscriptionID)
		}
	})
	return out
}

// RenewSubscriptions asks the gateway about each auto-renewing subscription ending within
// RenewWindow (or already in grace). When the gateway reports a later period, it is stored,
// the user's access follows, the renewed email goes out and the renewal is audited. It also
// asks about auto-renewing subscriptions that expired within ReconcileWindow, so a renewal
// whose webhook was lost restores access. A gateway error, or an answer without a known
// status, fails that subscription only.
func (s *Service) RenewSubscriptions(ctx context.Context) (RenewResult, error) {
	r := s.newRun()
	defer r.release(ctx)
	var renewed, cancelling int
	err := r.resume(ctx)
	now := s.now()
	yes := true
	if err == nil {
		err = r.sweep(ctx, SubscriptionFilter{Statuses: []SubscriptionStatus{SubscriptionStatusActive, SubscriptionStatusPastDue},
			PeriodEndBefore: now.Add(s.cfg.RenewWindow), AutoRenews: &yes},
			r.asked(func(ctx context.Context, b *batch, sub Subscription, gs GatewaySubscription) decision {
				switch {
				case gs.Status.Live() && gs.PeriodEnd.After(sub.CurrentPeriodEnd):
					return r.renewal(ctx, b, sub, gs, JobRenew, func() { r.count(&renewed, 1) })
				case !gs.Status.Live() || gs.CancelAtPeriodEnd:
					changed := sub
					changed.CancelAtPeriodEnd, changed.UpdatedAt = true, now
					return r.transition(changed, r.effects(changed, nil, nil, AuditEntry{
						Action: AuditSubscriptionUpdated, EntityType: "subscription", EntityID: sub.ID, UserID: sub.UserID,
						Details: map[string]any{"cancel_at_period_end": true, "gateway_status": string(gs.Status), "source": JobRenew},
					}), func() { r.count(&cancelling, 1) })
				}
				// The gateway has not charged yet; a later run (or the webhook) picks it up.
				return decision{}
			}))
	}
	if err == nil {
		// Expired lately while auto-renewing: a renewal whose webhook never came.
		err = r.sweep(ctx, SubscriptionFilter{Statuses: []SubscriptionStatus{SubscriptionStatusInactive},
			PeriodEndAfter: now.Add(-s.cfg.Grace - s.cfg.ReconcileWindow), PeriodEndBefore: now, AutoRenews: &yes},
			r.asked(func(ctx context.Context, b *batch, sub Subscription, gs GatewaySubscription) decision {
				if gs.Status.Live() && gs.PeriodEnd.After(now) {
					return r.renewal(ctx, b, sub, gs, JobRenew, func() { r.count(&renewed, 1) })
				}
				return decision{skip: true} // ended as it should have
			}))
	}
	err = r.settle(err)
	return RenewResult{RunSummary: r.summary(err), Renewed: renewed, Cancelling: cancelling}, err
}

// CleanupOldSessions first finishes the effects a crashed process left on sessions
// (Session.Pending recorded at least ClaimLease ago: counted in Resumed, or Failed when they
// do not finish yet), then soft-deletes sessions that expired more than SessionRetention ago
// (a session expired exactly SessionRetention ago is included). Each batch's soft delete
// records the batch's one audit entry (AuditSessionsCleaned, naming its sessions) as pending
// effects in the same write; the entry is then written and the effects cleared, so a crash
// or a failed audit write between the two is finished by the next run (the batch's
// sessions count in Failed until then) and the entry is written once. Then it prunes
// renewkit's bookkeeping past Config.Retention when the store is a Pruner.
func (s *Service) CleanupOldSessions(ctx context.Context) (CleanupResult, error) {
	var res CleanupResult
	now := s.now()
	cutoff := now.Add(-s.cfg.SessionRetention)
	seen := map[string]bool{}
	runErr := s.finishSessionsLeft(ctx, &res, seen, now)
	for runErr == nil {
		token := newToken()
		eff := &Effects{Token: token, CreatedAt: now, Audit: []AuditEntry{{
			ID: "sessions:" + token, Action: AuditSessionsCleaned, Actor: "renewkit", CreatedAt: now,
			Details: map[string]any{"expired_before": cutoff},
		}}}
		batch, err := s.store.DeleteExpiredSessions(ctx, cutoff, now, s.cfg.BatchSize, eff)
		bad, partial := recordErrors(err)
		if err != nil && !partial {
			runErr = fmt.Errorf("deleting expired sessions: %w", err)
			break
		}
		res.reportBad(s, ctx, bad, seen)
		if len(batch) > 0 {
			res.TotalFound += len(batch)
			if err := s.finishSessions(ctx, eff, batch); err != nil {
				res.failSessions(s, ctx, batch, err)
			} else {
				res.Cleaned += len(batch)
			}
		}
		// A round that changed nothing met only unreadable records: stop.
		if len(batch) == 0 || len(batch)+len(bad) < s.cfg.BatchSize {
			break
		}
	}
	if runErr == nil {
		res.Pruned, runErr = s.prune(ctx, now)
	}
	res.Success, res.Error = runErr == nil, errText(runErr)
	return res, runErr
}

// sessionBatchesPerRound is how many batches left by crashed runs (each at most BatchSize
// sessions) CleanupOldSessions reads at a time.
const sessionBatchesPerRound = 8

// finishSessionsLeft finishes the pending effects of sessions, a few batches at a time,
// counting each session in res (seen: the records met so far). Effects recorded less than
// ClaimLease before now belong to a run that may still be writing its batch (or its
// entry): they are left to it, as a claimed record is, so the entry never names part of a
// batch. It stops when a round finishes none: what is left waits for the next run.
func (s *Service) finishSessionsLeft(ctx context.Context, res *CleanupResult, seen map[string]bool, now time.Time) error {
	for {
		left, err := s.store.ListSessionsWithEffects(ctx, sessionBatchesPerRound)
		bad, partial := recordErrors(err)
		if err != nil && !partial {
			return fmt.Errorf("listing sessions with pending effects: %w", err)
		}
		res.reportBad(s, ctx, bad, seen)
		finished, batches := 0, 0
		for len(left) > 0 {
			n := 1 // the sessions of one token are next to each other
			for n < len(left) && left[n].Pending.Token == left[0].Pending.Token {
				n++
			}
			batch := left[:n]
			left = left[n:]
			batches++
			if seen[batch[0].ID] {
				continue // failed earlier in this run
			}
			if batch[0].Pending.CreatedAt.After(now.Add(-s.cfg.ClaimLease)) {
				continue // another run's, in flight
			}
			for _, se := range batch {
				seen[se.ID] = true
			}
			res.TotalFound += len(batch)
			if err := s.finishSessions(ctx, batch[0].Pending, batch); err != nil {
				res.failSessions(s, ctx, batch, err)
				continue
			}
			res.Resumed += len(batch)
			finished++
		}
		if finished == 0 || batches+len(bad) < sessionBatchesPerRound {
			return nil
		}
	}
}

// finishSessions writes the audit entries of eff, the pending effects batch carries (all of
// its sessions and only them), and then clears them, even when ctx has just been cancelled:
// what is done must not be repeated.
func (s *Service) finishSessions(ctx context.Context, eff *Effects, batch []Session) error {
	if entries := eff.sessionAudit(batch); len(entries) > 0 {
		if err := s.store.InsertAudits(ctx, entries); err != nil {
			return fmt.Errorf("effects of %d deleted sessions (first %s): writing audit entries: %w", len(batch), batch[0].ID, err)
		}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(s.cfg.ClaimLease, time.Minute))
	defer cancel()
	if err := s.store.CompleteSessionEffects(cctx, eff.Token); err != nil {
		return fmt.Errorf("effects of %d deleted sessions (first %s): clearing them: %w", len(batch), batch[0].ID, err)
	}
	return nil
}

// failSessions counts the sessions of batch, whose effects did not finish, in Failed.
func (res *CleanupResult) failSessions(s *Service, ctx context.Context, batch []Session, err error) {
	res.failed(len(batch), err)
	s.log.WarnContext(ctx, "sessions deleted, their effects not finished; the next run finishes them",
		"sessions", len(batch), "first_session_id", batch[0].ID, "error", err)
}

// failed counts n records in Failed and keeps err's text among the first maxResultErrors.
func (res *CleanupResult) failed(n int, err error) {
	res.Failed += n
	if len(res.Errors) < maxResultErrors {
		res.Errors = append(res.Errors, err.Error())
	}
}

// CleanupPendingPayments first finishes the effects a crashed process left on payments
// (Payment.Pending: counted in Resumed, or Failed when they do not finish yet), then cancels
// payments pending for more than PendingPaymentTTL (exactly PendingPaymentTTL included). A
// batch's cancellations record their audit entry as pending effects in the same write; the
// entries of the batch are then written with one insert and the effects cleared, so a crash
// or a failed audit write between the two is finished by the next run (the payment counts
// in Failed until then). A payment document the store cannot read is reported and left as
// it is.
func (s *Service) CleanupPendingPayments(ctx context.Context) (CleanupResult, error) {
	var res CleanupResult
	now := s.now()
	cutoff := now.Add(-s.cfg.PendingPaymentTTL)
	reason := fmt.Sprintf("pending for more than %s", s.cfg.PendingPaymentTTL)
	seen := map[string]bool{}
	runErr := s.finishPaymentsLeft(ctx, &res, seen)
	for runErr == nil {
		token := newToken()
		eff := &Effects{Token: token, CreatedAt: now, Audit: []AuditEntry{{
			ID: "cleanup:" + token, Action: AuditPaymentCancelled, Actor: "renewkit", CreatedAt: now,
			Details: map[string]any{"reason": reason, "source": JobCleanupPayments},
		}}}
		batch, err := s.store.CancelStalePayments(ctx, cutoff, now, reason, s.cfg.BatchSize, eff)
		bad, partial := recordErrors(err)
		if err != nil && !partial {
			runErr = fmt.Errorf("cancelling stale payments: %w", err)
			break
		}
		res.reportBad(s, ctx, bad, seen)
		res.TotalFound += len(batch)
		s.finishCancelled(ctx, &res, batch)
		if len(batch) == 0 || len(batch)+len(bad) < s.cfg.BatchSize {
			break
		}
	}
	res.Success, res.Error = runErr == nil, errText(runErr)
	return res, runErr
}

// finishCancelled writes the audit entries the payments of batch, just cancelled, carry
// with one insert and then clears their effects, counting each payment in res: Cleaned, or
// Failed when its effects are left for the next run.
func (s *Service) finishCancelled(ctx context.Context, res *CleanupResult, batch []Payment) {
	fail := func(p Payment, err error) {
		res.failed(1, err)
		s.log.WarnContext(ctx, "payment cancelled, its effects not finished; the next run finishes them", "payment_id", p.ID, "error", err)
	}
	var entries []AuditEntry
	for _, p := range batch {
		if p.Pending != nil {
			entries = append(entries, p.Pending.paymentAudit(p)...)
		}
	}
	if len(entries) > 0 {
		if err := s.store.InsertAudits(ctx, entries); err != nil {
			for _, p := range batch {
				fail(p, fmt.Errorf("effects of payment %s: writing audit entries: %w", p.ID, err))
			}
			return
		}
	}
	for _, p := range batch {
		if err := s.completePaymentEffects(ctx, p); err != nil {
			fail(p, err)
			continue
		}
		res.Cleaned++
	}
}

// finishPaymentsLeft finishes the pending effects of payments, a batch at a time, counting
// each payment in res (seen: the records met so far). It stops when a batch finishes none:
// what is left waits for the next run.
func (s *Service) finishPaymentsLeft(ctx context.Context, res *CleanupResult, seen map[string]bool) error {
	for {
		batch, err := s.store.ListPaymentsWithEffects(ctx, s.cfg.BatchSize)
		bad, partial := recordErrors(err)
		if err != nil && !partial {
			return fmt.Errorf("listing payments with pending effects: %w", err)
		}
		res.reportBad(s, ctx, bad, seen)
		finished := 0
		for _, p := range batch {
			if seen[p.ID] {
				continue
			}
			seen[p.ID] = true
			res.TotalFound++
			if err := s.finishPaymentEffects(ctx, p); err != nil {
				res.failed(1, err)
				s.log.WarnContext(ctx, "payment effects not finished; the next run retries", "payment_id", p.ID, "error", err)
				continue
			}
			res.Resumed++
			finished++
		}
		if finished == 0 || len(batch)+len(bad) < s.cfg.BatchSize {
			return nil
		}
	}
}

// reportBad counts unreadable records once per run, however many rounds meet them.
func (res *CleanupResult) reportBad(s *Service, ctx context.Context, bad []*RecordError, seen map[string]bool) {
	for _, re := range bad {
		if seen[re.ID] {
			continue
		}
		seen[re.ID] = true
		res.TotalFound++
		res.failed(1, re)
		s.log.ErrorContext(ctx, "record unreadable; fix the document", "collection", re.Collection, "id", re.ID, "error", re.Err)
	}
}
