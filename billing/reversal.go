package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Payment statuses of money that went back to the buyer. The transitions of a payment:
//
//	pending      -> approved | failed | cancelled | refunded | charged_back
//	failed       -> approved | cancelled | refunded | charged_back
//	cancelled    -> approved (the gateway says it was paid) | refunded | charged_back
//	approved     -> refunded (a full refund) | charged_back (a chargeback, or a dispute opened)
//	charged_back -> approved (the dispute was won) | refunded
//	refunded     (final: it is never approved again)
//
// A partial refund leaves the status as it is and records Payment.RefundedAmount.
const (
	// PaymentStatusRefunded: the gateway gave the whole amount back to the buyer.
	PaymentStatusRefunded PaymentStatus = "refunded"
	// PaymentStatusChargedBack: the buyer's bank took the money back (a chargeback, or a
	// dispute that withdrew the funds). A dispute the merchant wins returns the payment to
	// approved.
	PaymentStatusChargedBack PaymentStatus = "charged_back"
)

// Former names of the reversal statuses.
const (
	// Deprecated: use PaymentStatusRefunded.
	PaymentRefunded = PaymentStatusRefunded
	// Deprecated: use PaymentStatusChargedBack.
	PaymentChargedBack = PaymentStatusChargedBack
)

// Audit actions of reversals.
const (
	AuditPaymentRefunded          = "payment.refunded"
	AuditPaymentPartiallyRefunded = "payment.partially_refunded"
	AuditPaymentChargedBack       = "payment.charged_back"
	AuditPaymentDisputeWon        = "payment.dispute_won"
)

// ReversalAccess says when a refund or chargeback ends the access the payment bought.
type ReversalAccess string

const (
	// ReversalAccessAtOnce (the default, also the zero value ""): the subscription is cancelled and
	// the user's access revoked when the reversal is applied.
	ReversalAccessAtOnce ReversalAccess = "at_once"
	// ReversalAccessAtPeriodEnd: the subscription is set to cancel at its period end (no renewal,
	// no grace) and access lasts until then.
	ReversalAccessAtPeriodEnd ReversalAccess = "period_end"
)

// Former names of the ReversalAccess values, kept for one release.
const (
	// Deprecated: use ReversalAccessAtOnce.
	RevokeAtOnce = ReversalAccessAtOnce
	// Deprecated: use ReversalAccessAtPeriodEnd.
	RevokeAtPeriodEnd = ReversalAccessAtPeriodEnd
)

func (a ReversalAccess) validate() error {
	switch a {
	case "", ReversalAccessAtOnce, ReversalAccessAtPeriodEnd:
		return nil
	}
	return fmt.Errorf("ReversalAccess: %q is not %q or %q", string(a), ReversalAccessAtOnce, ReversalAccessAtPeriodEnd)
}

// ReversalKind is what happened to a payment's money.
type ReversalKind string

const (
	// ReversalKindRefund: money was refunded; ReversalParams.Refunded says how much in total.
	ReversalKindRefund ReversalKind = "refund"
	// ReversalKindChargeback: the buyer's bank took the money back, or a dispute withdrew it.
	ReversalKindChargeback ReversalKind = "chargeback"
	// ReversalKindDisputeWon: a dispute closed in the merchant's favour; the money came back.
	ReversalKindDisputeWon ReversalKind = "dispute_won"
)

// Former names of the ReversalKind values, kept for one release.
const (
	// Deprecated: use ReversalKindRefund.
	ReversalRefund = ReversalKindRefund
	// Deprecated: use ReversalKindChargeback.
	ReversalChargeback = ReversalKindChargeback
	// Deprecated: use ReversalKindDisputeWon.
	ReversalDisputeWon = ReversalKindDisputeWon
)

// ReversalParams describes a refund, a chargeback or a dispute outcome, as re-read from the
// gateway.
type ReversalParams struct {
	// PaymentID is renewkit's payment id when the gateway echoes it; else the payment is
	// found by Gateway and the first of GatewayPaymentIDs renewkit recorded (a Stripe
	// charge may be recorded under its invoice or its payment intent).
	PaymentID         string
	Gateway           string
	GatewayPaymentIDs []string
	Kind              ReversalKind
	// Refunded is, for ReversalKindRefund, the total refunded so far, in the payment's
	// currency. At least the payment's amount is a full refund; less is a partial refund,
	// which is recorded and changes no access.
	Refunded Money
	// Reason is the gateway's reason (a dispute reason, a refund reason), for the record.
	Reason string
	// EventTime is the gateway's time of the reversal.
	EventTime time.Time
	Actor     string
}

// ProcessReversal applies a refund, chargeback or dispute outcome to the payment it names.
// A full refund or a chargeback of the payment that bought the subscription's current period
// ends that access (Config.ReversalAccess: at once, the default, or at the period end),
// emails NotificationKindPaymentReversed and audits it; a reversal of an older payment is recorded and
// audited and leaves the current period alone. A partial refund records the amount refunded
// and changes no access. A dispute won returns a charged-back payment to approved and gives
// back the access its chargeback ended, if nothing else changed the subscription since. A
// replay of a reversal already applied changes nothing and sends nothing (Duplicate).
//
// Like the jobs, the subscription change is stored first, conditionally on the record as
// read and together with its effects (access, email with its send-once key, audit); the
// payment is marked after it, and the effects run last. A crash leaves the effects pending
// for the next job run, and a redelivery finds the payment unmarked and finishes.
//
// A payment renewkit does not know is ErrUnknownPayment (webhooks ignore it: the charge is
// not renewkit's).
func (pp *PaymentProcessor) ProcessReversal(ctx context.Context, params ReversalParams) (ProcessResult, error) {
	var res ProcessResult
	switch params.Kind {
	case ReversalKindRefund, ReversalKindChargeback, ReversalKindDisputeWon:
	default:
		return res, fmt.Errorf("%w: reversal kind %q", ErrInvalidInput, params.Kind)
	}
	p, err := pp.reversedPayment(ctx, params)
	if err != nil {
		return res, err
	}
	res.PaymentID, res.SubscriptionID = p.ID, p.SubscriptionID
	if params.Kind == ReversalKindRefund {
		if err := params.Refunded.Validate(); err != nil {
			return res, fmt.Errorf("refund of payment %s: %w", p.ID, err)
		}
		if params.Refunded.Amount == 0 || params.Refunded.Currency != p.Amount.Currency {
			return res, fmt.Errorf("%w: refund of %d %s for payment %s of %d %s", ErrInvalidAmount,
				params.Refunded.Amount, params.Refunded.Currency, p.ID, p.Amount.Amount, p.Amount.Currency)
		}
	}
	// The locks approval takes, in its order: a reversal never interleaves with an
	// approval or a status change of the same payment, subscription or user.
	keys := []string{"payment:" + p.ID}
	if p.GatewaySubscriptionID != "" {
		keys = append(keys, gatewaySubLock(p.Gateway, p.GatewaySubscriptionID))
	}
	keys = append(keys, "user:"+p.UserID)
	err = pp.withKeyLocks(ctx, keys, func() error {
		dup, err := pp.reverse(ctx, p.ID, params)
		res.Duplicate = dup
		return err
	})
	if err != nil {
		return res, err
	}
	res.Success = true
	res.Message = "payment " + string(params.Kind) + " applied"
	if res.Duplicate {
		res.Message = "payment " + string(params.Kind) + " already applied"
	}
	return res, nil
}

// reversedPayment finds the payment a reversal names.
func (pp *PaymentProcessor) reversedPayment(ctx context.Context, params ReversalParams) (Payment, error) {
	if params.PaymentID != "" {
		return pp.loadPayment(ctx, params.PaymentID)
	}
	if params.Gateway == "" {
		return Payment{}, fmt.Errorf("%w: a reversal needs a payment id or a gateway and its payment ids", ErrInvalidInput)
	}
	for _, gid := range params.GatewayPaymentIDs {
		if gid == "" {
			continue
		}
		p, err := pp.s.store.FindPaymentByGateway(ctx, params.Gateway, gid)
		if err == nil {
			return pp.loadPayment(ctx, p.ID)
		}
		if !errors.Is(err, ErrNotFound) {
			return Payment{}, fmt.Errorf("finding %s payment %s: %w", params.Gateway, gid, err)
		}
	}
	return Payment{}, fmt.Errorf("%w: no %s payment %v", ErrUnknownPayment, params.Gateway, params.GatewayPaymentIDs)
}

// reversalPlan is what one reversal changes.
type reversalPlan struct {
	next   Payment
	action string
	ends   bool // a full refund or a chargeback: the access the payment bought ends
	notify bool // the buyer is told (the payment was approved when the money went back)
}

// planReversal decides the payment's next state; ok=false when the reversal is applied
// already (or, for a dispute won, when there is no chargeback to undo).
func planReversal(p Payment, params ReversalParams, now time.Time) (reversalPlan, bool) {
	next := p
	next.UpdatedAt = now
	switch params.Kind {
	case ReversalKindRefund:
		total := params.Refunded.Amount
		if p.Status == PaymentStatusRefunded || total <= p.RefundedAmount && total < p.Amount.Amount {
			return reversalPlan{}, false
		}
		next.RefundedAmount = max(total, p.RefundedAmount)
		if total < p.Amount.Amount {
			return reversalPlan{next: next, action: AuditPaymentPartiallyRefunded}, true
		}
		next.Status, next.ReversedAt = PaymentStatusRefunded, now
		if params.Reason != "" {
			next.ReversalReason = params.Reason
		}
		return reversalPlan{next: next, action: AuditPaymentRefunded, ends: true, notify: p.Status == PaymentStatusApproved}, true
	case ReversalKindChargeback:
		if p.Status == PaymentStatusChargedBack || p.Status == PaymentStatusRefunded {
			return reversalPlan{}, false
		}
		next.Status, next.ReversedAt, next.ReversalReason = PaymentStatusChargedBack, now, params.Reason
		return reversalPlan{next: next, action: AuditPaymentChargedBack, ends: true, notify: p.Status == PaymentStatusApproved}, true
	default: // ReversalKindDisputeWon
		if p.Status != PaymentStatusChargedBack {
			return reversalPlan{}, false
		}
		next.Status, next.ReversedAt = PaymentStatusApproved, time.Time{}
		return reversalPlan{next: next, action: AuditPaymentDisputeWon}, true
	}
}

// reverse applies params to payment id under its locks. It reports whether the reversal was
// applied already.
func (pp *PaymentProcessor) reverse(ctx context.Context, id string, params ReversalParams) (bool, error) {
	p, err := pp.s.store.GetPayment(ctx, id) // re-read under the locks
	if err != nil {
		return false, fmt.Errorf("loading payment %s: %w", id, err)
	}
	// What an earlier transition of the payment left pending (a crash, a failed send) is
	// finished first.
	if p, err = pp.s.settledPayment(ctx, p); err != nil {
		return false, err
	}
	now := pp.s.now()
	plan, ok := planReversal(p, params, now)
	if !ok {
		// Applied already: finish what a crash may have left pending, send nothing new.
		return true, pp.finishPending(ctx, p.SubscriptionID)
	}
	sub, found, err := pp.reversedSubscription(ctx, p)
	if err != nil {
		return false, err
	}
	details := map[string]any{"previous_status": string(p.Status), "status": string(plan.next.Status),
		"kind": string(params.Kind), "amount": p.Amount.Amount, "currency": p.Amount.Currency,
		"refunded_amount": plan.next.RefundedAmount, "reason": params.Reason, "gateway": p.Gateway,
		"gateway_payment_id": p.GatewayPaymentID, "gateway_event_time": params.EventTime, "subscription_id": p.SubscriptionID}
	payAudit := AuditEntry{Action: plan.action, EntityType: "payment", EntityID: p.ID, UserID: p.UserID,
		Actor: params.Actor, Details: details}

	var change *SubscriptionChange
	if found {
		change, err = pp.reversalChange(ctx, sub, p, plan, params, payAudit, now)
		if err != nil {
			return false, err
		}
	}
	if change == nil {
		// Nothing to change on a subscription: the payment, recording in the same write
		// its audit entry (a fixed id, so a redelivery never doubles it) and, for money
		// taken back from an approved payment, the email; they run after it, and what a
		// crash leaves the redelivery or the next cleanup_pending_payments run finishes.
		var notes []Notification
		if plan.notify {
			u, err := pp.s.store.GetUser(ctx, p.UserID)
			if err != nil {
				return false, fmt.Errorf("loading user %s: %w", p.UserID, err)
			}
			var planName string
			if pl, err := pp.s.store.GetPlan(ctx, p.PlanID); err == nil {
				planName = pl.Name
			}
			notes = append(notes, reversalNote(u, planName, p, params, time.Time{}))
		}
		next := plan.next
		next.Pending = pp.s.paymentEffects("reversal:"+p.ID+":"+plan.action+":"+fmt.Sprint(plan.next.RefundedAmount), payAudit, notes...)
		if err := pp.markReversed(ctx, p, next); err != nil {
			return false, err
		}
		return false, pp.s.finishPaymentEffects(ctx, next)
	}
	// The transition first, conditional on the record as read, with its effects.
	stored, err := updateSubscription(ctx, pp.s.store, *change)
	if err != nil {
		return false, fmt.Errorf("applying %s of payment %s to subscription %s: %w", params.Kind, p.ID, sub.ID, err)
	}
	if err := pp.markReversed(ctx, p, plan.next); err != nil {
		return false, err
	}
	return false, pp.finishEffects(ctx, stored)
}

// reversedSubscription loads the subscription the payment paid for; found=false when it has
// none (a payment never applied) or it is gone.
func (pp *PaymentProcessor) reversedSubscription(ctx context.Context, p Payment) (Subscription, bool, error) {
	if p.SubscriptionID == "" {
		return Subscription{}, false, nil
	}
	sub, err := pp.s.store.GetSubscription(ctx, p.SubscriptionID)
	if errors.Is(err, ErrNotFound) {
		return Subscription{}, false, nil
	}
	if err != nil {
		return Subscription{}, false, fmt.Errorf("loading subscription %s of payment %s: %w", p.SubscriptionID, p.ID, err)
	}
	// A transition of this record may still be being finished: decide on the record as it
	// is after it.
	if sub, err = pp.settled(ctx, sub); err != nil {
		return Subscription{}, false, err
	}
	return sub, true, nil
}

// settled finishes the pending effects sub carries (a job's transition, a crashed
// delivery's; they are idempotent) and returns the record as it is after them. Effects
// another run left again meanwhile are ErrConflict: the caller retries later.
func (pp *PaymentProcessor) settled(ctx context.Context, sub Subscription) (Subscription, error) {
	if sub.Pending == nil {
		return sub, nil
	}
	if err := pp.finishEffects(ctx, sub); err != nil {
		return Subscription{}, err
	}
	next, err := pp.s.store.GetSubscription(ctx, sub.ID)
	if err != nil {
		return Subscription{}, fmt.Errorf("reloading subscription %s: %w", sub.ID, err)
	}
	if next.Pending != nil {
		return Subscription{}, fmt.Errorf("%w: subscription %s has effects another run is finishing", ErrConflict, sub.ID)
	}
	return next, nil
}

// boughtCurrentPeriod reports whether p is the payment that bought sub's current period.
func boughtCurrentPeriod(sub Subscription, p Payment) bool {
	n := len(sub.AppliedPayments)
	return n > 0 && sub.AppliedPayments[n-1] == p.ID
}

// reversalChange is the subscription change a reversal makes, or nil when it changes no
// subscription: a partial refund, a reversal of a payment that did not buy the current
// period, a subscription that ended already.
func (pp *PaymentProcessor) reversalChange(ctx context.Context, sub Subscription, p Payment, plan reversalPlan,
	params ReversalParams, payAudit AuditEntry, now time.Time) (*SubscriptionChange, error) {
	if !boughtCurrentPeriod(sub, p) {
		return nil, nil
	}
	changed := sub
	changed.UpdatedAt = now
	var access *AccessEffect
	var notes []Notification
	subAudit := AuditEntry{EntityType: "subscription", EntityID: sub.ID, UserID: sub.UserID, Actor: params.Actor}
	atOnce := pp.s.cfg.ReversalAccess != ReversalAccessAtPeriodEnd
	switch {
	case plan.ends && sub.Status.Live() && atOnce:
		changed.Status, changed.CancelledAt = SubscriptionStatusCancelled, now
		if params.EventTime.After(changed.GatewayUpdatedAt) {
			changed.GatewayUpdatedAt = TruncateTime(params.EventTime)
		}
		access = &AccessEffect{UserID: sub.UserID, Status: SubscriptionStatusCancelled}
		subAudit.Action = AuditSubscriptionEnded
	case plan.ends && sub.Status.Live():
		if sub.CancelAtPeriodEnd {
			return nil, nil
		}
		changed.CancelAtPeriodEnd = true
		subAudit.Action = AuditSubscriptionUpdated
	case params.Kind == ReversalKindDisputeWon && sub.UpdatedAt.Equal(p.ReversedAt):
		// Nothing changed the subscription since the chargeback: undo what it did.
		switch {
		case sub.Status == SubscriptionStatusCancelled && sub.CurrentPeriodEnd.After(now):
			changed.Status, changed.CancelledAt = SubscriptionStatusActive, time.Time{}
			access = &AccessEffect{UserID: sub.UserID}
		case sub.Status.Live() && sub.CancelAtPeriodEnd:
			changed.CancelAtPeriodEnd = false
		default:
			return nil, nil
		}
		subAudit.Action = AuditSubscriptionUpdated
	default:
		return nil, nil
	}
	subAudit.Details = map[string]any{"previous_status": string(sub.Status), "status": string(changed.Status),
		"cancel_at_period_end": changed.CancelAtPeriodEnd, "period_end": sub.CurrentPeriodEnd,
		"payment_id": p.ID, "reversal": string(params.Kind)}
	if plan.notify {
		u, err := pp.s.store.GetUser(ctx, sub.UserID)
		switch {
		case err == nil:
			var planName string
			if pl, err := pp.s.store.GetPlan(ctx, sub.PlanID); err == nil {
				planName = pl.Name
			}
			ends := sub.CurrentPeriodEnd
			if atOnce {
				ends = now
			}
			notes = []Notification{reversalNote(u, planName, p, params, ends)}
		case !errors.Is(err, ErrNotFound):
			return nil, fmt.Errorf("loading user %s: %w", sub.UserID, err)
		}
	}
	r := pp.s.newRun()
	eff := r.effects(changed, access, notes, payAudit, subAudit)
	return &SubscriptionChange{Read: sub, Changed: changed, Effects: eff}, nil
}

// reversalNote is the payment_reversed email. accessEnds is when the access the payment
// bought ends (zero: the reversal left the current period alone).
func reversalNote(u User, planName string, p Payment, params ReversalParams, accessEnds time.Time) Notification {
	amount := p.Amount
	if params.Kind == ReversalKindRefund {
		amount = params.Refunded
	}
	what := string(PaymentStatusRefunded)
	if params.Kind == ReversalKindChargeback {
		what = string(PaymentStatusChargedBack)
	}
	return Notification{
		Kind: NotificationKindPaymentReversed, Key: notificationKey(NotificationKindPaymentReversed, p.ID+":"+what, time.Time{}), To: recipient(u),
		Data: NotificationData{PlanName: planName, SubscriptionID: p.SubscriptionID, PaymentID: p.ID, Amount: amount,
			Gateway: p.Gateway, Reason: what, PeriodEnd: accessEnds},
	}
}

// markReversed stores the payment's new state. The pending-payment cleanup does not hold
// the payment's lock: when it cancelled the payment meanwhile, the reversal is applied to
// the payment as it is now.
func (pp *PaymentProcessor) markReversed(ctx context.Context, read, next Payment) error {
	for attempt := 0; ; attempt++ {
		err := pp.s.store.UpdatePayment(ctx, read, next)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrConflict) || attempt == 2 {
			return fmt.Errorf("marking payment %s %s: %w", read.ID, next.Status, err)
		}
		cur, gerr := pp.s.store.GetPayment(ctx, read.ID)
		if gerr != nil {
			return fmt.Errorf("marking payment %s %s: %w", read.ID, next.Status, gerr)
		}
		if cur.Status == next.Status && cur.RefundedAmount == next.RefundedAmount {
			return nil
		}
		if cur.Status != PaymentStatusCancelled || read.Status != PaymentStatusPending {
			return fmt.Errorf("marking payment %s %s: %w", read.ID, next.Status, err)
		}
		next.Reason = cur.Reason
		read = cur
	}
}

// finishPending finishes effects left pending on the subscription (by a reversal that
// crashed before running them, or a job), so a redelivery completes them.
func (pp *PaymentProcessor) finishPending(ctx context.Context, subID string) error {
	if subID == "" {
		return nil
	}
	sub, err := pp.s.store.GetSubscription(ctx, subID)
	if errors.Is(err, ErrNotFound) || err == nil && sub.Pending == nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("loading subscription %s: %w", subID, err)
	}
	return pp.finishEffects(ctx, sub)
}

// finishEffects runs the pending effects of sub through the jobs' effects step. What does
// not finish stays on the record: the next job run (or a redelivery) finishes it.
func (pp *PaymentProcessor) finishEffects(ctx context.Context, sub Subscription) error {
	failed := pp.s.newRun().finish(ctx, []Subscription{sub})
	if err, bad := failed[sub.ID]; bad {
		return fmt.Errorf("effects of subscription %s: %w", sub.ID, err)
	}
	return nil
}

// paymentEmailKey is the send-once key of a payment's confirmation email: its own, unless
// the payment paid for the period the subscription is in now (the gateway's stated period
// end is the current one) and the renew job already announced that period (its renewed
// email's key is recorded): then that key, so the period is announced once, not by a
// renewed and a payment-successful email both.
func (pp *PaymentProcessor) paymentEmailKey(ctx context.Context, sub Subscription, p Payment, statedEnd time.Time) (string, error) {
	own := notificationKey(NotificationKindPaymentSuccessful, p.ID, time.Time{})
	statedEnd = TruncateTime(statedEnd)
	if statedEnd.IsZero() || !statedEnd.Equal(sub.CurrentPeriodEnd) || !slices.Contains(sub.AppliedPayments, p.ID) {
		return own, nil
	}
	period := notificationKey(NotificationKindRenewed, sub.ID, sub.CurrentPeriodEnd)
	_, err := pp.s.store.GetNotification(ctx, period)
	switch {
	case err == nil:
		return period, nil
	case errors.Is(err, ErrNotFound):
		return own, nil
	}
	return "", fmt.Errorf("reading notification %s: %w", period, err)
}
