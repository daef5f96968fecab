package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// PaymentProcessor turns gateway-agnostic payment outcomes into subscription changes. Every
// method is an idempotent state transition: delivering the same outcome twice changes state
// once and sends each email once. Bad input (unknown payment, terminal state, negative amount,
// unknown plan) returns a sentinel error and changes nothing. Get one from Service.Processor.
type PaymentProcessor struct {
	s *Service
}

// Processor returns the service's payment processor.
func (s *Service) Processor() *PaymentProcessor { return &PaymentProcessor{s: s} }

// ApproveParams identifies an approved payment.
type ApproveParams struct {
	PaymentID             string
	GatewayPaymentID      string
	GatewaySubscriptionID string
	// PeriodStart and PeriodEnd, when the gateway states the paid period (a Stripe invoice
	// line, a PayPal next_billing_time), replace the period computed from the plan's cycle:
	// no cycle is added on top of them, and a period the subscription already covers (the
	// renew job or a sync got there first) is kept as it is.
	PeriodStart time.Time
	PeriodEnd   time.Time
	// PaidAt is the gateway's time of the charge, when known. A charge made at or before
	// the newest gateway event applied (Subscription.GatewayUpdatedAt) never undoes it: it
	// is recorded and may extend the period, but does not revive an ended subscription or
	// clear past_due.
	PaidAt time.Time
	// Charged is what the gateway charged, as re-read from its API. When it is set (a
	// currency is given), the payment is approved only if Charged is in the payment's
	// currency and at least its amount; otherwise the payment is recorded as failed with
	// the reason, audited, nothing is granted, and the error wraps ErrChargeMismatch.
	// Gateway handlers always set it; an operator approving by hand may leave it empty.
	Charged Money
	// Actor is recorded in the audit log (a gateway name, an admin's id); default "renewkit".
	Actor string
}

// FailParams identifies a failed or cancelled payment.
type FailParams struct {
	PaymentID        string
	GatewayPaymentID string
	Reason           string
	Actor            string
}

// ProcessResult is the outcome of processing one payment, in the original application's
// JSON shape.
type ProcessResult struct {
	Success        bool   `json:"success"`
	PaymentID      string `json:"payment_id"`
	SubscriptionID string `json:"subscription_id,omitempty"`
	Message        string `json:"message"`
	// Duplicate: the payment was already in the requested state; nothing changed.
	Duplicate bool `json:"duplicate,omitempty"`
}

// withPaymentLock serialises processing of one payment across goroutines and replicas. A
// payment being processed elsewhere yields ErrConflict: retry later.
func (pp *PaymentProcessor) withPaymentLock(ctx context.Context, paymentID string, f func() error) error {
	return pp.withKeyLock(ctx, "payment:"+paymentID, f)
}

// withKeyLock runs f holding the store lock key. A lock held by another request (a
// concurrent delivery of the same event, a charge racing a status change) is waited for, up
// to Config.LockWait; still held then, the call fails with ErrConflict and the caller (a
// webhook) answers with a retryable status.
func (pp *PaymentProcessor) withKeyLock(ctx context.Context, key string, f func() error) error {
	deadline := time.Now().Add(pp.s.cfg.LockWait)
	delay := 2 * time.Millisecond
	for {
		lease, err := pp.s.store.AcquireLock(ctx, key, newToken(), pp.s.clock.Now(), pp.s.cfg.ClaimLease)
		if err == nil {
			defer func() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				_ = pp.s.store.ReleaseLock(rctx, lease)
			}()
			return f()
		}
		if !errors.Is(err, ErrLockHeld) {
			return fmt.Errorf("locking %s: %w", key, err)
		}
		if !time.Now().Add(delay).Before(deadline) {
			return fmt.Errorf("%w: %s is being processed", ErrConflict, key)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// withKeyLocks holds every key, in order, while f runs.
func (pp *PaymentProcessor) withKeyLocks(ctx context.Context, keys []string, f func() error) error {
	if len(keys) == 0 {
		return f()
	}
	return pp.withKeyLock(ctx, keys[0], func() error { return pp.withKeyLocks(ctx, keys[1:], f) })
}

func gatewaySubLock(gateway, id string) string { return "gwsub:" + gateway + ":" + id }

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// loadPayment fetches a payment and validates the parts every transition relies on.
func (pp *PaymentProcessor) loadPayment(ctx context.Context, id string) (Payment, error) {
	if id == "" {
		return Payment{}, fmt.Errorf("%w: payment id is empty", ErrInvalidInput)
	}
	p, err := pp.s.store.GetPayment(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Payment{}, fmt.Errorf("%w %q: %w", ErrUnknownPayment, id, err)
	}
	if err != nil {
		return Payment{}, fmt.Errorf("loading payment %s: %w", id, err)
	}
	if err := p.Amount.Validate(); err != nil {
		return Payment{}, fmt.Errorf("payment %s: %w", id, err)
	}
	return p, nil
}

// ProcessApproved marks the payment approved, creates the user's subscription or renews it by
// one billing cycle from the later of now and the current period end (switching plan when the
// payment's plan differs), points the user's access at it, sends the payment-confirmed email
// (and the welcome email when the payment started the user's first subscription) and audits
// each change.
//
// Like the jobs, the subscription write comes first, conditional on the record as read, and
// records in the same single-document write what the approval leaves to do (the access, the
// emails with their send-once keys, the audit entries with fixed ids); the payment is marked
// approved after it, and those effects run last. A crash or a failed write at any point
// leaves them pending: the redelivery (or the next job run) finishes them before anything
// else, and nothing done is done twice. Approving an approved payment changes nothing; it
// only finishes what an earlier delivery left pending. A transient email failure is returned
// after the state changes are stored, so the caller (a webhook) answers with a retryable
// error and the redelivery sends it.
func (pp *PaymentProcessor) ProcessApproved(ctx context.Context, params ApproveParams) (ProcessResult, error) {
	var res ProcessResult
	p, err := pp.loadPayment(ctx, params.PaymentID)
	if err != nil {
		return res, err
	}
	res.PaymentID = p.ID
	switch p.Status {
	case PaymentStatusPending, PaymentStatusFailed, PaymentStatusApproved, PaymentStatusCancelled:
		// A cancelled payment the gateway reports paid (the pending-payment cleanup gave up
		// on it, then the money arrived) is approved: whoever paid gets what they paid for.
	default:
		return res, fmt.Errorf("%w: payment %s is %s and cannot be approved", ErrInvalidTransition, p.ID, p.Status)
	}
	plan, err := pp.s.store.GetPlan(ctx, p.PlanID)
	if errors.Is(err, ErrNotFound) {
		return res, fmt.Errorf("%w %q (payment %s)", ErrUnknownPlan, p.PlanID, p.ID)
	}
	if err != nil {
		return res, fmt.Errorf("loading plan %s: %w", p.PlanID, err)
	}
	if !plan.BillingCycle.Valid() {
		return res, fmt.Errorf("%w: plan %s has billing cycle %q", ErrInvalidInput, plan.ID, plan.BillingCycle)
	}
	keys := []string{"payment:" + p.ID}
	if gid := firstNonEmpty(params.GatewaySubscriptionID, p.GatewaySubscriptionID); gid != "" {
		// The same lock SyncSubscription takes, so a charge and a status change of one
		// gateway subscription never interleave.
		keys = append(keys, gatewaySubLock(p.Gateway, gid))
	}
	// Payments of one user are applied one at a time, so two first payments approved at
	// once find each other's subscription instead of creating two.
	keys = append(keys, "user:"+p.UserID)
	err = pp.withKeyLocks(ctx, keys, func() error {
		if p, err = pp.s.store.GetPayment(ctx, p.ID); err != nil { // re-read under the locks
			return err
		}
		// What an earlier transition of the payment (a failure) left to do. It does not hold
		// up the approval: what does not finish now stays pending for the next
		// cleanup_pending_payments run.
		if settled, err := pp.s.settledPayment(ctx, p); err != nil {
			pp.s.log.WarnContext(ctx, "payment effects not finished before its approval", "payment_id", p.ID, "error", err)
		} else {
			p = settled
		}
		u, err := pp.s.store.GetUser(ctx, p.UserID)
		if err != nil {
			return fmt.Errorf("loading user %s of payment %s: %w", p.UserID, p.ID, err)
		}
		if p.Status == PaymentStatusApproved {
			// Approved already: finish what a crash or a failed send left pending, start
			// nothing new.
			res.Duplicate, res.SubscriptionID = true, p.SubscriptionID
			return pp.finishPending(ctx, p.SubscriptionID)
		}
		if err := pp.checkCharge(ctx, p, params); err != nil {
			return err
		}
		sub, err := pp.applyPayment(ctx, p, u, plan, params)
		if err != nil {
			return err
		}
		res.SubscriptionID = sub.ID
		if _, err = pp.markApproved(ctx, p, sub.ID, params); err != nil {
			return err
		}
		if sub.Pending == nil {
			return nil
		}
		return pp.finishEffects(ctx, sub)
	})
	if err != nil {
		return res, err
	}
	res.Success = true
	res.Message = "payment approved"
	if res.Duplicate {
		res.Message = "payment already approved"
	}
	return res, nil
}

// checkCharge compares what the gateway charged with what the payment costs. A mismatch
// marks a pending payment failed with the reason (no email: the subscriber cannot fix it by
// updating a card), audits it for any payment, and returns an error wrapping
// ErrChargeMismatch; nothing is granted.
func (pp *PaymentProcessor) checkCharge(ctx context.Context, p Payment, params ApproveParams) error {
	c := params.Charged
	if c.Currency == "" {
		return nil
	}
	if strings.EqualFold(c.Currency, p.Amount.Currency) && c.Amount >= p.Amount.Amount {
		return nil
	}
	reason := fmt.Sprintf("charge mismatch: the gateway charged %d %s, the payment costs %d %s",
		c.Amount, strings.ToUpper(c.Currency), p.Amount.Amount, p.Amount.Currency)
	return pp.rejectPayment(ctx, p, reason, params.GatewayPaymentID, params.Actor, map[string]any{
		"charged": c.Amount, "charged_currency": strings.ToUpper(c.Currency)})
}

// rejectPayment records a refused approval: a pending payment becomes failed with reason,
// and an audit entry says why. For a pending payment the audit entry is recorded as the
// failure's pending effect in the same write (see movePayment); a redelivery of the same
// rejection (the payment failed with this reason already) audits nothing new. The returned
// error wraps ErrChargeMismatch.
func (pp *PaymentProcessor) rejectPayment(ctx context.Context, p Payment, reason, gatewayPaymentID, actor string, details map[string]any) error {
	mismatch := fmt.Errorf("%w: payment %s: %s", ErrChargeMismatch, p.ID, reason)
	d := map[string]any{"previous_status": string(p.Status), "reason": reason, "gateway": p.Gateway,
		"gateway_payment_id": firstNonEmpty(gatewayPaymentID, p.GatewayPaymentID), "amount": p.Amount.Amount, "currency": p.Amount.Currency}
	for k, v := range details {
		d[k] = v
	}
	entry := AuditEntry{Action: AuditPaymentFailed, EntityType: "payment", EntityID: p.ID, UserID: p.UserID, Actor: actor, Details: d}
	switch {
	case p.Status == PaymentStatusPending:
		next, now := p, pp.s.now()
		next.Status, next.Reason, next.ProcessedAt, next.UpdatedAt = PaymentStatusFailed, reason, now, now
		if gatewayPaymentID != "" {
			next.GatewayPaymentID = gatewayPaymentID
		}
		if err := pp.movePayment(ctx, p, next, pp.s.paymentEffects(paymentAuditID(p.ID, next.Status), entry)); err != nil {
			return err
		}
	case p.Status == PaymentStatusFailed && p.Reason == reason:
		// This rejection, delivered again: nothing new to audit; what the first delivery
		// left pending is finished (ProcessApproved tried already; this reports why not).
		if err := pp.s.finishPaymentEffects(ctx, p); err != nil {
			return err
		}
	default:
		if err := pp.s.audit(ctx, entry); err != nil {
			return err
		}
	}
	return mismatch
}

// markApproved stores p as approved for subscription subID. The pending-payment cleanup
// does not take the payment's lock: when it cancelled p after p was read, the write
// conflicts, and is made again from the payment as it is now (cancelled becomes approved:
// the gateway says it was paid).
func (pp *PaymentProcessor) markApproved(ctx context.Context, p Payment, subID string, params ApproveParams) (Payment, error) {
	for attempt := 0; ; attempt++ {
		read, now := p, pp.s.now()
		p.Status, p.SubscriptionID, p.ProcessedAt, p.UpdatedAt, p.Reason = PaymentStatusApproved, subID, now, now, ""
		if params.GatewayPaymentID != "" {
			p.GatewayPaymentID = params.GatewayPaymentID
		}
		if params.GatewaySubscriptionID != "" {
			p.GatewaySubscriptionID = params.GatewaySubscriptionID
		}
		err := pp.s.store.UpdatePayment(ctx, read, p)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, ErrConflict) || attempt == 2 {
			return read, fmt.Errorf("marking payment %s approved: %w", p.ID, err)
		}
		if p, err = pp.s.store.GetPayment(ctx, p.ID); err != nil {
			return read, fmt.Errorf("marking payment %s approved: %w", read.ID, err)
		}
		if p.Status == PaymentStatusApproved {
			return p, nil
		}
	}
}

// grantAccess points the user's access at sub for its current period.
func (s *Service) grantAccess(ctx context.Context, u User, sub Subscription) error {
	if u.PlanID == sub.PlanID && u.SubscriptionID == sub.ID && u.Status == sub.Status && u.AccessUntil.Equal(sub.CurrentPeriodEnd) {
		return nil
	}
	if sub.UserID != u.ID {
		return fmt.Errorf("%w: subscription %s belongs to user %s, not %s", ErrInvalidInput, sub.ID, sub.UserID, u.ID)
	}
	if u.SubscriptionID != "" && u.SubscriptionID != sub.ID && u.HasAccess(s.now()) {
		// Access never moves off another live subscription of the user: it follows that
		// one until it ends, then the expiry moves it to the user's live ones.
		cur, err := s.store.GetSubscription(ctx, u.SubscriptionID)
		switch {
		case err == nil && cur.UserID == u.ID && cur.Status.Live() && !cur.Deleted && cur.CurrentPeriodEnd.After(s.now()):
			s.log.InfoContext(ctx, "access kept on the user's other live subscription", "user_id", u.ID,
				"subscription_id", cur.ID, "new_subscription_id", sub.ID)
			return nil
		case err != nil && !errors.Is(err, ErrNotFound):
			return fmt.Errorf("loading subscription %s of user %s: %w", u.SubscriptionID, u.ID, err)
		}
	}
	next := u
	next.PlanID, next.SubscriptionID, next.Status, next.AccessUntil = sub.PlanID, sub.ID, sub.Status, sub.CurrentPeriodEnd
	next.UpdatedAt = s.now()
	if err := UpdateUserAccess(ctx, s.store, u, next); err != nil {
		return fmt.Errorf("updating access of user %s: %w", u.ID, err)
	}
	if a, ok := accessAudit(u, next, sub.ID, nil); ok {
		return s.audit(ctx, a)
	}
	return nil
}

// applyPayment creates or extends the subscription the payment pays for, in one write that
// records the approval's effects on the record (see approvalEffects), and returns the record
// as stored. A subscription that already lists the payment in AppliedPayments is not
// extended again, so a redelivery after a crash between this step and the payment update
// never extends twice.
func (pp *PaymentProcessor) applyPayment(ctx context.Context, p Payment, u User, plan Plan, params ApproveParams) (Subscription, error) {
	sub, found, err := pp.findSubscription(ctx, p, params)
	if err != nil {
		return Subscription{}, err
	}
	if found && sub.Pending != nil && sub.Pending.hasAudit(approvalAuditID(p.ID, AuditPaymentApproved)) {
		// An earlier delivery's write, its effects not finished: finish them, nothing else.
		return pp.settled(ctx, sub)
	}
	for {
		if found && sub.hasApplied(p.ID) {
			return pp.recordApproval(ctx, u, plan, sub, p, params)
		}
		next, audit := pp.paidPeriod(sub, found, p, plan, params)
		if found && sub.Pending != nil {
			// Another transition's effects (a job's) are still to finish: finish them
			// first, then decide on the record as it is after them.
			if sub, err = pp.supersede(ctx, sub, next); err != nil {
				return Subscription{}, err
			}
			continue
		}
		// The welcome goes with the payment that starts the user's first subscription,
		// decided now, with the change: the one that creates it, or the first paid on
		// one that has not started.
		first := !found
		if found {
			if first, err = pp.startsFirstSubscription(ctx, u, sub); err != nil {
				return Subscription{}, err
			}
		}
		eff, err := pp.approvalEffects(ctx, u, plan, next, p, params, first, audit...)
		if err != nil {
			return Subscription{}, err
		}
		if !found {
			next.Pending = eff
			if err := pp.s.store.InsertSubscription(ctx, &next); err != nil {
				return Subscription{}, fmt.Errorf("creating subscription for payment %s: %w", p.ID, err)
			}
			return next, nil
		}
		stored, err := updateSubscription(ctx, pp.s.store, SubscriptionChange{Read: sub, Changed: next, Effects: eff})
		if err != nil {
			return Subscription{}, fmt.Errorf("renewing subscription %s for payment %s: %w", sub.ID, p.ID, err)
		}
		return stored, nil
	}
}

// recordApproval records the effects of approving p on sub, which lists p as applied
// already but carries no effects of this approval: RecordCoveredPayment marks a covered
// period's charge applied before approving it, or an earlier delivery's effects were
// finished by someone else (a job). Their audit ids and send-once keys make the ones done
// no-ops.
func (pp *PaymentProcessor) recordApproval(ctx context.Context, u User, plan Plan, sub Subscription, p Payment, params ApproveParams) (Subscription, error) {
	sub, err := pp.settled(ctx, sub)
	if err != nil {
		return Subscription{}, err
	}
	eff, err := pp.approvalEffects(ctx, u, plan, sub, p, params, false)
	if err != nil {
		return Subscription{}, err
	}
	stored, err := updateSubscription(ctx, pp.s.store, SubscriptionChange{Read: sub, Changed: sub, Effects: eff})
	if err != nil {
		return Subscription{}, fmt.Errorf("recording the approval of payment %s on subscription %s: %w", p.ID, sub.ID, err)
	}
	return stored, nil
}

// supersede finishes the effects sub carries before a change that leaves it as next. When
// next is no longer the state they were recorded for, their notifications say nothing true
// any more (a warning about the period being paid now) and are dropped, as the effects step
// drops those of a record changed since; the access change and the audit entries still run.
func (pp *PaymentProcessor) supersede(ctx context.Context, sub, next Subscription) (Subscription, error) {
	if eff := *sub.Pending; next.Status != eff.Status || !next.CurrentPeriodEnd.Equal(eff.PeriodEnd) {
		eff.Notifications = nil
		sub.Pending = &eff
	}
	return pp.settled(ctx, sub)
}

// paidPeriod returns the subscription as paying p leaves it (a new one when !found) and the
// audit entry of that change (none when the period was renewed already, by the renew job or
// a sync, and audited then).
func (pp *PaymentProcessor) paidPeriod(sub Subscription, found bool, p Payment, plan Plan, params ApproveParams) (Subscription, []AuditEntry) {
	now := pp.s.now()
	paidAt := TruncateTime(params.PaidAt)
	// older: the gateway made this charge before the newest event applied to the
	// subscription. It never undoes that event: a charge from before the gateway ended the
	// subscription does not bring it back, one from before a failed renewal does not clear
	// past_due.
	older := found && !paidAt.IsZero() && !paidAt.After(sub.GatewayUpdatedAt)
	keepEnded := older && sub.Status == SubscriptionStatusCancelled
	start := now
	if found && !sub.CurrentPeriodEnd.IsZero() && (keepEnded || (sub.Status.Live() && sub.CurrentPeriodEnd.After(now))) {
		start = sub.CurrentPeriodEnd // paid periods follow each other
	}
	end := AddCycle(start, plan.BillingCycle)
	if found && start.Equal(sub.CurrentPeriodEnd) && sub.CurrentPeriodStart.Day() > start.Day() {
		// The period that ends now was cut short by a short month (Jan 31 -> Feb 28): the
		// next one ends on the day the previous one started (Mar 31), not on the 28th.
		end = addMonthsOnDay(start, plan.BillingCycle.Months(), sub.CurrentPeriodStart.Day())
	}
	if pe := TruncateTime(params.PeriodEnd); !pe.IsZero() {
		// The gateway says which period the charge paid: never add a cycle on top of it.
		// A period the subscription already covers (a renew job or a sync got there
		// first) is kept as it is.
		start, end = TruncateTime(params.PeriodStart), pe
		if found && !pe.After(sub.CurrentPeriodEnd) {
			start, end = sub.CurrentPeriodStart, sub.CurrentPeriodEnd
		}
		if start.IsZero() || !start.Before(end) {
			start = now
			if found && sub.CurrentPeriodEnd.Before(end) && !sub.CurrentPeriodEnd.IsZero() {
				start = sub.CurrentPeriodEnd
			}
		}
	}
	activate := !keepEnded && !(older && sub.Status == SubscriptionStatusPastDue)
	gatewaySubID := firstNonEmpty(params.GatewaySubscriptionID, p.GatewaySubscriptionID)
	if !found {
		sub = Subscription{
			ID: NewID(), UserID: p.UserID, PlanID: plan.ID, Status: SubscriptionStatusActive, BillingCycle: plan.BillingCycle,
			Gateway: p.Gateway, GatewaySubscriptionID: gatewaySubID, GatewayUpdatedAt: paidAt, CreatedAt: now, UpdatedAt: now,
		}
		sub.startPeriod(start, end)
		sub.markApplied(p.ID)
		return sub, []AuditEntry{{
			Action: AuditSubscriptionCreated, EntityType: "subscription", EntityID: sub.ID, UserID: sub.UserID,
			Actor: params.Actor, Details: map[string]any{"payment_id": p.ID, "plan_id": plan.ID, "period_end": end},
		}}
	}
	prevPlan, prevEnd, prevStatus := sub.PlanID, sub.CurrentPeriodEnd, sub.Status
	sub.AppliedPayments = slices.Clone(sub.AppliedPayments)
	sub.PlanID, sub.BillingCycle, sub.UpdatedAt = plan.ID, plan.BillingCycle, now
	if activate {
		sub.Status = SubscriptionStatusActive
	}
	if paidAt.After(sub.GatewayUpdatedAt) {
		sub.GatewayUpdatedAt = paidAt
	}
	if p.Gateway != "" {
		sub.Gateway = p.Gateway
	}
	if gatewaySubID != "" {
		sub.GatewaySubscriptionID = gatewaySubID
	}
	if !end.Equal(sub.CurrentPeriodEnd) {
		sub.startPeriod(start, end)
	}
	sub.markApplied(p.ID)
	sub.Pending = nil
	if end.Equal(prevEnd) && prevStatus == sub.Status && prevPlan == plan.ID {
		return sub, nil
	}
	return sub, []AuditEntry{{
		Action: AuditSubscriptionRenewed, EntityType: "subscription", EntityID: sub.ID, UserID: sub.UserID, Actor: params.Actor,
		Details: map[string]any{"payment_id": p.ID, "previous_plan_id": prevPlan, "plan_id": plan.ID,
			"previous_status": string(prevStatus), "previous_period_end": prevEnd, "period_end": end},
	}}
}

// approvalAuditID is the id of the audit entry with action that approving payment id
// writes: fixed, so an approval recorded twice (a redelivery after a crash) audits once.
func approvalAuditID(paymentID, action string) string { return "approval:" + paymentID + ":" + action }

// approvalEffects are what approving p leaves to do once sub, the subscription as the
// approval leaves it, is stored: point the user's access at it (when it is live), send the
// payment-confirmed email and, when the payment starts the user's first subscription
// (decided by the caller when it makes the change), the welcome email, and write subAudit
// and the payment-approved audit entry.
func (pp *PaymentProcessor) approvalEffects(ctx context.Context, u User, plan Plan, sub Subscription, p Payment,
	params ApproveParams, first bool, subAudit ...AuditEntry) (*Effects, error) {
	key, err := pp.paymentEmailKey(ctx, sub, p, params.PeriodEnd)
	if err != nil {
		return nil, err
	}
	data := NotificationData{PlanName: plan.Name, SubscriptionID: sub.ID, PaymentID: p.ID, Amount: p.Amount,
		Gateway: p.Gateway, PeriodStart: sub.CurrentPeriodStart, PeriodEnd: sub.CurrentPeriodEnd}
	notes := []Notification{{Kind: NotificationKindPaymentSuccessful, Key: key, To: recipient(u), Data: data}}
	if first {
		notes = append(notes, Notification{Kind: NotificationKindWelcome, Key: notificationKey(NotificationKindWelcome, u.ID, time.Time{}), To: recipient(u), Data: data})
	}
	var access *AccessEffect
	if sub.Status.Live() {
		access = &AccessEffect{UserID: u.ID}
	}
	audit := append(subAudit, AuditEntry{
		Action: AuditPaymentApproved, EntityType: "payment", EntityID: p.ID, UserID: p.UserID, Actor: params.Actor,
		Details: map[string]any{"previous_status": string(p.Status), "subscription_id": sub.ID, "amount": p.Amount.Amount,
			"currency": p.Amount.Currency, "gateway": p.Gateway,
			"gateway_payment_id": firstNonEmpty(params.GatewayPaymentID, p.GatewayPaymentID)},
	})
	for i := range audit {
		audit[i].ID = approvalAuditID(p.ID, audit[i].Action)
	}
	return pp.s.newRun().effects(sub, access, notes, audit...), nil
}

// startsFirstSubscription reports whether a payment applied to read, a subscription that
// exists already, starts the user's first subscription: nothing was ever paid on read, it is
// the user's only subscription, and renewkit created it (a gateway announced it before its
// first charge; its creation entry is written with the record's insert, as an effect, so it
// is there once the record's effects are finished, which the caller has done). A
// subscription another program wrote (in the legacy schema) renewed through renewkit is not
// a first subscription, so its user gets no welcome email.
func (pp *PaymentProcessor) startsFirstSubscription(ctx context.Context, u User, read Subscription) (bool, error) {
	if len(read.AppliedPayments) > 0 {
		return false, nil
	}
	subs, err := pp.s.store.ListUserSubscriptions(ctx, u.ID)
	if err != nil {
		return false, fmt.Errorf("listing subscriptions of user %s: %w", u.ID, err)
	}
	if len(subs) != 1 || subs[0].ID != read.ID {
		return false, nil
	}
	created, err := pp.s.store.ListAudit(ctx, AuditFilter{Action: AuditSubscriptionCreated, EntityID: read.ID, Limit: 1})
	if err != nil {
		return false, fmt.Errorf("reading the creation of subscription %s: %w", read.ID, err)
	}
	return len(created) > 0, nil
}

// findSubscription picks the subscription a payment pays for: the one it names, the one with
// its gateway subscription id, else the user's newest.
func (pp *PaymentProcessor) findSubscription(ctx context.Context, p Payment, params ApproveParams) (Subscription, bool, error) {
	st := pp.s.store
	if p.SubscriptionID != "" {
		sub, err := st.GetSubscription(ctx, p.SubscriptionID)
		if err == nil {
			return sub, true, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return Subscription{}, false, err
		}
	}
	for _, gid := range []string{params.GatewaySubscriptionID, p.GatewaySubscriptionID} {
		if gid == "" {
			continue
		}
		sub, err := st.FindSubscriptionByGateway(ctx, p.Gateway, gid)
		if err == nil {
			return sub, true, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return Subscription{}, false, err
		}
	}
	subs, err := st.ListUserSubscriptions(ctx, p.UserID)
	if err != nil {
		return Subscription{}, false, err
	}
	if len(subs) > 0 {
		return subs[0], true, nil
	}
	return Subscription{}, false, nil
}

// ProcessFailed marks a pending payment failed with the reason, audits it and sends the
// payment-failed email. A failed payment is a duplicate; an approved or cancelled one is
// ErrInvalidTransition.
//
// Like an approval, the payment's write records in the same single-document write what the
// change leaves to do (Payment.Pending: the audit entry with the fixed id
// payment:<id>:<status>, the email with its send-once key); they run after it and are
// cleared last. A crash or a failed write at any point leaves them pending: the redelivery
// (a duplicate) or the next cleanup_pending_payments run finishes them, and nothing done
// is done twice. The same holds for ProcessCancelled, for a charge mismatch refused by
// ProcessApproved and for a reversal that changes only the payment.
func (pp *PaymentProcessor) ProcessFailed(ctx context.Context, params FailParams) (ProcessResult, error) {
	return pp.finish(ctx, params, PaymentStatusFailed, AuditPaymentFailed)
}

// ProcessCancelled marks a pending (or failed) payment cancelled with the reason and audits
// it. A cancelled payment is a duplicate; an approved one is ErrInvalidTransition.
func (pp *PaymentProcessor) ProcessCancelled(ctx context.Context, params FailParams) (ProcessResult, error) {
	return pp.finish(ctx, params, PaymentStatusCancelled, AuditPaymentCancelled)
}

func (pp *PaymentProcessor) finish(ctx context.Context, params FailParams, to PaymentStatus, action string) (ProcessResult, error) {
	var res ProcessResult
	p, err := pp.loadPayment(ctx, params.PaymentID)
	if err != nil {
		return res, err
	}
	res.PaymentID, res.SubscriptionID = p.ID, p.SubscriptionID
	allowed := p.Status == PaymentStatusPending || p.Status == to || (to == PaymentStatusCancelled && p.Status == PaymentStatusFailed)
	if !allowed {
		return res, fmt.Errorf("%w: payment %s is %s and cannot become %s", ErrInvalidTransition, p.ID, p.Status, to)
	}
	err = pp.withPaymentLock(ctx, p.ID, func() error {
		if p, err = pp.s.store.GetPayment(ctx, p.ID); err != nil {
			return err
		}
		left := p.Pending != nil
		if p, err = pp.s.settledPayment(ctx, p); err != nil {
			return err
		}
		if p.Status == to {
			// Delivered again: what the first delivery left pending is finished now.
			res.Duplicate = true
			if left {
				return nil
			}
			return pp.failedEmail(ctx, p)
		}
		if p.Status != PaymentStatusPending && !(to == PaymentStatusCancelled && p.Status == PaymentStatusFailed) {
			return fmt.Errorf("%w: payment %s is %s and cannot become %s", ErrInvalidTransition, p.ID, p.Status, to)
		}
		next, now := p, pp.s.now()
		next.Status, next.Reason, next.ProcessedAt, next.UpdatedAt = to, params.Reason, now, now
		if params.GatewayPaymentID != "" {
			next.GatewayPaymentID = params.GatewayPaymentID
		}
		var notes []Notification
		if to == PaymentStatusFailed {
			n, err := pp.failedNote(ctx, next)
			if err != nil {
				return err
			}
			notes = append(notes, n)
		}
		return pp.movePayment(ctx, p, next, pp.s.paymentEffects(paymentAuditID(p.ID, to), AuditEntry{
			Action: action, EntityType: "payment", EntityID: p.ID, UserID: p.UserID, Actor: params.Actor,
			Details: map[string]any{"previous_status": string(p.Status), "reason": params.Reason, "gateway": p.Gateway,
				"gateway_payment_id": next.GatewayPaymentID},
		}, notes...))
	})
	if err != nil {
		return res, err
	}
	res.Success = true
	res.Message = "payment " + string(to)
	if res.Duplicate {
		res.Message = "payment already " + string(to)
	}
	return res, nil
}

// failedEmail sends the payment-failed email for a failed payment (once).
func (pp *PaymentProcessor) failedEmail(ctx context.Context, p Payment) error {
	if p.Status != PaymentStatusFailed {
		return nil
	}
	n, err := pp.failedNote(ctx, p)
	if err != nil {
		return err
	}
	_, err = pp.s.notifyOnce(ctx, n, p.SubscriptionID)
	return err
}

// failedNote is the payment-failed email of p, with its send-once key.
func (pp *PaymentProcessor) failedNote(ctx context.Context, p Payment) (Notification, error) {
	u, err := pp.s.store.GetUser(ctx, p.UserID)
	if err != nil {
		return Notification{}, fmt.Errorf("loading user %s: %w", p.UserID, err)
	}
	var planName string
	if plan, err := pp.s.store.GetPlan(ctx, p.PlanID); err == nil {
		planName = plan.Name
	}
	return Notification{
		Kind: NotificationKindPaymentFailed, Key: notificationKey(NotificationKindPaymentFailed, p.ID, time.Time{}), To: recipient(u),
		Data: NotificationData{PlanName: planName, SubscriptionID: p.SubscriptionID, PaymentID: p.ID,
			Amount: p.Amount, Gateway: p.Gateway, Reason: p.Reason},
	}, nil
}

// paymentAuditID is the id of the audit entry of the transition that gave payment id the
// status to: fixed (a payment becomes failed, or cancelled, at most once), so a transition
// finished twice (a redelivery after a crash, a job) audits once.
func paymentAuditID(id string, to PaymentStatus) string { return "payment:" + id + ":" + string(to) }

// paymentEffects are what a payment's transition leaves to do: write audit under its fixed
// id auditID and send notes (built like a job's effects, touching no subscription).
func (s *Service) paymentEffects(auditID string, audit AuditEntry, notes ...Notification) *Effects {
	audit.ID = auditID
	return s.newRun().effects(Subscription{}, nil, notes, audit)
}

// movePayment stores next, the payment read moves to, with eff as its pending effects in
// the same conditional write, then carries them out. A crash or a failed write after the
// first leaves them on the payment: the redelivery, or the next cleanup_pending_payments
// run, finishes them.
func (pp *PaymentProcessor) movePayment(ctx context.Context, read, next Payment, eff *Effects) error {
	next.Pending = eff
	if err := pp.s.store.UpdatePayment(ctx, read, next); err != nil {
		return fmt.Errorf("marking payment %s %s: %w", next.ID, next.Status, err)
	}
	return pp.s.finishPaymentEffects(ctx, next)
}

// settledPayment finishes the effects p carries, if any, and returns p without them.
func (s *Service) settledPayment(ctx context.Context, p Payment) (Payment, error) {
	if p.Pending == nil {
		return p, nil
	}
	if err := s.finishPaymentEffects(ctx, p); err != nil {
		return p, err
	}
	p.Pending = nil
	return p, nil
}

// finishPaymentEffects carries out the effects p.Pending records, if any: the emails (each
// once per key) while the effects are younger than Config.ReconcileWindow (the
// payment-failed email only while the payment is still failed), then the audit entries
// (fixed ids: stored ones are skipped), and clears them where they are still the ones
// recorded. What does not finish stays on the payment and is returned.
func (s *Service) finishPaymentEffects(ctx context.Context, p Payment) error {
	eff := p.Pending
	if eff == nil {
		return nil
	}
	late := !eff.CreatedAt.IsZero() && s.now().Sub(eff.CreatedAt) > s.cfg.ReconcileWindow
	for _, n := range eff.Notifications {
		if n.Kind == NotificationKindPaymentFailed && p.Status != PaymentStatusFailed {
			continue // the payment changed since (approved after all): the email says nothing true
		}
		if late {
			s.log.WarnContext(ctx, "pending notification given up after ReconcileWindow", "payment_id", p.ID, "kind", n.Kind, "since", eff.CreatedAt)
			continue
		}
		if _, err := s.notifyOnce(ctx, n, p.SubscriptionID); err != nil {
			return fmt.Errorf("effects of payment %s: %w", p.ID, err)
		}
	}
	if len(eff.Audit) > 0 {
		if err := s.store.InsertAudits(ctx, eff.paymentAudit(p)); err != nil {
			return fmt.Errorf("effects of payment %s: writing audit entries: %w", p.ID, err)
		}
	}
	return s.completePaymentEffects(ctx, p)
}

// completePaymentEffects clears the pending effects of p once they are done, even when ctx
// has just been cancelled: what is done must not be repeated.
func (s *Service) completePaymentEffects(ctx context.Context, p Payment) error {
	if p.Pending == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(s.cfg.ClaimLease, time.Minute))
	defer cancel()
	if err := s.store.CompletePaymentEffects(cctx, p.ID, p.Pending.Token); err != nil {
		return fmt.Errorf("effects of payment %s: clearing them: %w", p.ID, err)
	}
	return nil
}
