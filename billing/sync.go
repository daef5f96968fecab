package billing

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// SyncParams is the gateway's view of a subscription, from a webhook (Stripe
// customer.subscription.*, PayPal BILLING.SUBSCRIPTION.*, Mercado Pago
// subscription_preapproval) or a lookup.
type SyncParams struct {
	Gateway               string
	GatewaySubscriptionID string
	// Status mapped to renewkit's: SubscriptionStatusActive, SubscriptionStatusPastDue, SubscriptionStatusCancelled (ended at
	// the gateway), SubscriptionStatusPending (not started); empty keeps the current status.
	Status            SubscriptionStatus
	PeriodStart       time.Time
	PeriodEnd         time.Time
	CancelAtPeriodEnd bool
	// EventTime is the gateway's own timestamp of the event or object. An event older than
	// the newest one applied is ignored, so late deliveries never move a subscription back.
	EventTime time.Time
	// UserID and PlanID, when the gateway carries them in a reference verified with
	// Service.VerifyReference (metadata, custom_id, external_reference), let
	// SyncSubscription create a subscription it does not know. It is created pending,
	// without a period: access comes with the first approved charge.
	UserID string
	PlanID string
	Actor  string
}

// SyncResult says what SyncSubscription did.
type SyncResult struct {
	SubscriptionID string `json:"subscription_id"`
	Created        bool   `json:"created,omitempty"`
	Changed        bool   `json:"changed"`
	// Stale: the event was older than what is stored and was ignored.
	Stale bool `json:"stale,omitempty"`
}

// SyncSubscription applies the gateway's state to the matching subscription: the period only
// moves forward, an ended subscription revokes access (and sends the expired email), an active
// one grants it. Unknown subscriptions are created when UserID and PlanID are given, else the
// error wraps ErrNotFound (a webhook answers with a retryable status: the event that creates
// the subscription may still be on its way).
func (pp *PaymentProcessor) SyncSubscription(ctx context.Context, p SyncParams) (SyncResult, error) {
	if p.Gateway == "" || p.GatewaySubscriptionID == "" {
		return SyncResult{}, fmt.Errorf("%w: gateway and gateway subscription id are required", ErrInvalidInput)
	}
	p.PeriodStart, p.PeriodEnd, p.EventTime = TruncateTime(p.PeriodStart), TruncateTime(p.PeriodEnd), TruncateTime(p.EventTime)
	var res SyncResult
	err := pp.withKeyLock(ctx, gatewaySubLock(p.Gateway, p.GatewaySubscriptionID), func() error {
		sub, err := pp.s.store.FindSubscriptionByGateway(ctx, p.Gateway, p.GatewaySubscriptionID)
		if errors.Is(err, ErrNotFound) {
			if p.UserID == "" || p.PlanID == "" {
				return fmt.Errorf("subscription %s/%s: %w", p.Gateway, p.GatewaySubscriptionID, err)
			}
			sub, err = pp.createFromGateway(ctx, p)
			if err != nil {
				return err
			}
			res.SubscriptionID, res.Created, res.Changed = sub.ID, true, true
			return nil
		}
		if err != nil {
			return fmt.Errorf("finding subscription %s/%s: %w", p.Gateway, p.GatewaySubscriptionID, err)
		}
		res.SubscriptionID = sub.ID
		if sub.Pending != nil {
			// An earlier delivery (or a job) left effects to finish: finish them first, then
			// apply the event to the record as it is after them.
			if err := pp.finishEffects(ctx, sub); err != nil {
				return err
			}
			if sub, err = pp.s.store.GetSubscription(ctx, sub.ID); err != nil {
				return fmt.Errorf("reloading subscription %s: %w", res.SubscriptionID, err)
			}
		}
		changed, stale, err := pp.applySync(ctx, sub, p)
		res.Changed, res.Stale = changed, stale
		return err
	})
	return res, err
}

func (pp *PaymentProcessor) createFromGateway(ctx context.Context, p SyncParams) (Subscription, error) {
	plan, err := pp.s.store.GetPlan(ctx, p.PlanID)
	if errors.Is(err, ErrNotFound) {
		return Subscription{}, fmt.Errorf("%w %q", ErrUnknownPlan, p.PlanID)
	}
	if err != nil {
		return Subscription{}, err
	}
	u, err := pp.s.store.GetUser(ctx, p.UserID)
	if err != nil {
		return Subscription{}, fmt.Errorf("loading user %s: %w", p.UserID, err)
	}
	now := pp.s.now()
	status := p.Status
	if status == "" || status.Live() {
		// Access comes with money: a subscription first known from a status (PayPal's
		// ACTIVATED, an authorized preapproval) stays pending, without a period, until a
		// charge is approved for it.
		status, p.PeriodStart, p.PeriodEnd = SubscriptionStatusPending, time.Time{}, time.Time{}
	}
	sub := Subscription{
		ID: NewID(), UserID: u.ID, PlanID: plan.ID, Status: status, BillingCycle: plan.BillingCycle,
		CurrentPeriodStart: p.PeriodStart, CurrentPeriodEnd: p.PeriodEnd, Gateway: p.Gateway,
		GatewaySubscriptionID: p.GatewaySubscriptionID, CancelAtPeriodEnd: p.CancelAtPeriodEnd,
		GatewayUpdatedAt: p.EventTime, CreatedAt: now, UpdatedAt: now,
	}
	// The creation's audit entry is recorded on the record's insert, as an effect: a crash
	// after the insert leaves it pending, never lost (the first charge's welcome email
	// depends on it).
	sub.Pending = pp.s.newRun().effects(sub, nil, nil, AuditEntry{
		Action: AuditSubscriptionCreated, EntityType: "subscription", EntityID: sub.ID, UserID: sub.UserID, Actor: p.Actor,
		Details: map[string]any{"gateway": p.Gateway, "gateway_subscription_id": p.GatewaySubscriptionID, "status": string(status)},
	})
	if err := pp.s.store.InsertSubscription(ctx, &sub); err != nil {
		return Subscription{}, fmt.Errorf("creating subscription %s/%s: %w", p.Gateway, p.GatewaySubscriptionID, err)
	}
	return sub, pp.finishEffects(ctx, sub)
}

// applySync merges p into sub. It reports whether anything changed and whether p was stale.
func (pp *PaymentProcessor) applySync(ctx context.Context, sub Subscription, p SyncParams) (changed, stale bool, err error) {
	if !p.EventTime.IsZero() && !sub.GatewayUpdatedAt.IsZero() {
		if p.EventTime.Before(sub.GatewayUpdatedAt) {
			return false, true, nil
		}
		// An ended subscription is revived only by a strictly newer event or a new period.
		if p.EventTime.Equal(sub.GatewayUpdatedAt) && sub.Status == SubscriptionStatusCancelled && p.Status.Live() && !p.PeriodEnd.After(sub.CurrentPeriodEnd) {
			return false, true, nil
		}
	}
	before := sub
	now := pp.s.now()
	if p.PeriodEnd.After(sub.CurrentPeriodEnd) {
		start := p.PeriodStart
		if start.IsZero() || !start.Before(p.PeriodEnd) {
			start = sub.CurrentPeriodEnd
		}
		sub.startPeriod(start, p.PeriodEnd)
	}
	if p.Status != "" && !(p.Status == SubscriptionStatusPending && sub.Status.Live()) {
		sub.Status = p.Status
	}
	sub.CancelAtPeriodEnd = p.CancelAtPeriodEnd
	if p.EventTime.After(sub.GatewayUpdatedAt) {
		sub.GatewayUpdatedAt = p.EventTime
	}
	ended := sub.Status == SubscriptionStatusCancelled && before.Status != SubscriptionStatusCancelled
	if ended {
		sub.CancelledAt = now
	}
	changed = !(sub.Status == before.Status && sub.CurrentPeriodEnd.Equal(before.CurrentPeriodEnd) &&
		sub.CancelAtPeriodEnd == before.CancelAtPeriodEnd && sub.GatewayUpdatedAt.Equal(before.GatewayUpdatedAt))
	u, plan, err := pp.s.subjectOf(ctx, sub)
	if err != nil {
		return false, false, err
	}
	if changed {
		// The transition first, conditional on the record as read, carrying its effects
		// (the audit entry and, when it ends the subscription, the access revocation and
		// the expired email) on the record: a failure after it leaves them pending, and the
		// redelivery (or the next job run) finishes them.
		sub.UpdatedAt = now
		audit := AuditEntry{
			Action: AuditSubscriptionUpdated, EntityType: "subscription", EntityID: sub.ID, UserID: sub.UserID, Actor: p.Actor,
			Details: map[string]any{"previous_status": string(before.Status), "status": string(sub.Status),
				"previous_period_end": before.CurrentPeriodEnd, "period_end": sub.CurrentPeriodEnd,
				"cancel_at_period_end": sub.CancelAtPeriodEnd, "gateway_event_time": p.EventTime},
		}
		var access *AccessEffect
		var notes []Notification
		if ended {
			audit.Action = AuditSubscriptionEnded
			access = &AccessEffect{UserID: u.ID, Status: SubscriptionStatusCancelled}
			notes = []Notification{{
				Kind: NotificationKindExpired, Key: notificationKey(NotificationKindExpired, sub.ID, sub.CurrentPeriodEnd), To: recipient(u),
				Data: NotificationData{PlanName: plan.Name, SubscriptionID: sub.ID, Gateway: sub.Gateway,
					PeriodStart: sub.CurrentPeriodStart, PeriodEnd: sub.CurrentPeriodEnd},
			}}
		}
		eff := pp.s.newRun().effects(sub, access, notes, audit)
		if sub, err = updateSubscription(ctx, pp.s.store, SubscriptionChange{Read: before, Changed: sub, Effects: eff}); err != nil {
			return false, false, fmt.Errorf("syncing subscription %s: %w", sub.ID, err)
		}
		if err := pp.finishEffects(ctx, sub); err != nil {
			return true, false, err
		}
	}
	// The access change is idempotent, so a redelivery finishes it even when the record is
	// already as the event says.
	switch {
	case sub.Status == SubscriptionStatusCancelled:
		if err := pp.s.reconcileAccess(ctx, u.ID, sub, SubscriptionStatusCancelled); err != nil {
			return changed, false, err
		}
	case sub.Status.Live() && sub.CurrentPeriodEnd.After(now):
		if err := pp.s.grantAccess(ctx, u, sub); err != nil {
			return changed, false, err
		}
	}
	return changed, false, nil
}

// GatewayPaymentParams describes a charge the gateway made: a renewal it collected by itself
// (Stripe invoice.paid, PayPal PAYMENT.SALE.COMPLETED, a Mercado Pago preapproval charge) or a
// checkout payment.
type GatewayPaymentParams struct {
	Gateway               string
	GatewayPaymentID      string
	GatewaySubscriptionID string
	// PaymentID is renewkit's payment id when the gateway echoes it (metadata,
	// external_reference); the payment is then approved as is.
	PaymentID string
	Amount    Money
	// PeriodStart and PeriodEnd: the period the charge pays for, when the gateway says.
	PeriodStart time.Time
	PeriodEnd   time.Time
	// PaidAt is the gateway's time of the charge (see ApproveParams.PaidAt).
	PaidAt time.Time
	// UserID and PlanID identify the buyer when the subscription is not known yet.
	UserID string
	PlanID string
	Actor  string
}

// ApplyGatewayPayment records a charge made at the gateway and approves it through
// ProcessApproved. The payment is found by renewkit's id, else by (gateway, gateway payment
// id), else created for the subscription with the gateway subscription id (or for UserID and
// PlanID). Applying the same charge twice extends the subscription once.
func (pp *PaymentProcessor) ApplyGatewayPayment(ctx context.Context, p GatewayPaymentParams) (ProcessResult, error) {
	if err := p.Amount.Validate(); err != nil {
		return ProcessResult{}, fmt.Errorf("gateway payment %s/%s: the charged amount is required: %w", p.Gateway, p.GatewayPaymentID, err)
	}
	approve := ApproveParams{GatewayPaymentID: p.GatewayPaymentID, GatewaySubscriptionID: p.GatewaySubscriptionID,
		PeriodStart: p.PeriodStart, PeriodEnd: p.PeriodEnd, PaidAt: p.PaidAt, Charged: p.Amount, Actor: p.Actor}
	if p.PaymentID != "" {
		approve.PaymentID = p.PaymentID
		return pp.ProcessApproved(ctx, approve)
	}
	pay, err := pp.gatewayPayment(ctx, p, true)
	if err != nil {
		return ProcessResult{}, err
	}
	approve.PaymentID = pay.ID
	return pp.ProcessApproved(ctx, approve)
}

// FailGatewayPayment records a charge the gateway could not collect (Stripe
// invoice.payment_failed, PayPal BILLING.SUBSCRIPTION.PAYMENT.FAILED, a rejected Mercado Pago
// preapproval charge) and fails it through ProcessFailed, which sends the payment-failed
// email once. The payment is found like ApplyGatewayPayment finds it, or created pending for
// the subscription. A charge that was approved meanwhile is left alone (ErrInvalidTransition).
func (pp *PaymentProcessor) FailGatewayPayment(ctx context.Context, p GatewayPaymentParams, reason string) (ProcessResult, error) {
	fail := FailParams{GatewayPaymentID: p.GatewayPaymentID, Reason: reason, Actor: p.Actor}
	if p.PaymentID != "" {
		fail.PaymentID = p.PaymentID
		return pp.ProcessFailed(ctx, fail)
	}
	pay, err := pp.gatewayPayment(ctx, p, false)
	if err != nil {
		return ProcessResult{}, err
	}
	fail.PaymentID = pay.ID
	return pp.ProcessFailed(ctx, fail)
}

// gatewayPayment finds the payment record of a gateway charge, or creates it pending. A
// payment created for a charge to approve (atPlanPrice) costs its plan's price, which
// ProcessApproved compares with the amount charged; one created for a failed charge records
// the amount the gateway states.
func (pp *PaymentProcessor) gatewayPayment(ctx context.Context, p GatewayPaymentParams, atPlanPrice bool) (Payment, error) {
	if p.Gateway == "" || p.GatewayPaymentID == "" {
		return Payment{}, fmt.Errorf("%w: gateway and gateway payment id are required", ErrInvalidInput)
	}
	if err := p.Amount.Validate(); err != nil {
		return Payment{}, err
	}
	pay, err := pp.s.store.FindPaymentByGateway(ctx, p.Gateway, p.GatewayPaymentID)
	if errors.Is(err, ErrNotFound) {
		return pp.insertGatewayPayment(ctx, p, atPlanPrice)
	}
	return pay, err
}

func (pp *PaymentProcessor) insertGatewayPayment(ctx context.Context, p GatewayPaymentParams, atPlanPrice bool) (Payment, error) {
	pay := Payment{UserID: p.UserID, PlanID: p.PlanID, Amount: p.Amount, Status: PaymentStatusPending, Gateway: p.Gateway,
		GatewayPaymentID: p.GatewayPaymentID, GatewaySubscriptionID: p.GatewaySubscriptionID}
	if p.GatewaySubscriptionID != "" {
		sub, err := pp.s.store.FindSubscriptionByGateway(ctx, p.Gateway, p.GatewaySubscriptionID)
		switch {
		case err == nil:
			pay.UserID, pay.PlanID, pay.SubscriptionID = sub.UserID, sub.PlanID, sub.ID
		case !errors.Is(err, ErrNotFound):
			return Payment{}, err
		}
	}
	if pay.UserID == "" || pay.PlanID == "" {
		return Payment{}, fmt.Errorf("gateway payment %s/%s: no subscription %q and no user and plan to create one: %w",
			p.Gateway, p.GatewayPaymentID, p.GatewaySubscriptionID, ErrNotFound)
	}
	if atPlanPrice {
		plan, err := pp.s.store.GetPlan(ctx, pay.PlanID)
		if errors.Is(err, ErrNotFound) {
			return Payment{}, fmt.Errorf("%w %q (gateway payment %s/%s)", ErrUnknownPlan, pay.PlanID, p.Gateway, p.GatewayPaymentID)
		}
		if err != nil {
			return Payment{}, fmt.Errorf("loading plan %s: %w", pay.PlanID, err)
		}
		if err := plan.Price.Validate(); err != nil {
			return Payment{}, fmt.Errorf("plan %s: %w", plan.ID, err)
		}
		pay.Amount = plan.Price
	}
	now := pp.s.now()
	pay.ID, pay.CreatedAt, pay.UpdatedAt = NewID(), now, now
	err := pp.s.store.InsertPayment(ctx, &pay)
	if errors.Is(err, ErrConflict) { // a concurrent delivery inserted it first
		return pp.s.store.FindPaymentByGateway(ctx, p.Gateway, p.GatewayPaymentID)
	}
	return pay, err
}

// Permanent reports whether err is bad input that a retry cannot fix (unknown payment or
// plan, invalid amount or transition, malformed input). Webhook handlers answer 4xx for these
// and 5xx for the rest.
func Permanent(err error) bool {
	for _, e := range []error{ErrInvalidInput, ErrUnknownPayment, ErrUnknownPlan, ErrInvalidAmount, ErrInvalidTransition} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// EventOutcome is what HandleWebhookEvent did with a delivery.
type EventOutcome string

const (
	EventOutcomeProcessed  EventOutcome = "processed"
	EventOutcomeIgnored    EventOutcome = "ignored"
	EventOutcomeDuplicate  EventOutcome = "duplicate"
	EventOutcomeInProgress EventOutcome = "in_progress"
	EventOutcomeFailed     EventOutcome = "failed"
	// EventOutcomeRejected: a genuine delivery whose content renewkit refuses (a bad reference,
	// a charge that does not match): recorded as ignored with the reason, answered 2xx,
	// nothing granted.
	EventOutcomeRejected EventOutcome = "rejected"
)

// Former names of the EventOutcome values, kept for one release.
const (
	// Deprecated: use EventOutcomeProcessed.
	OutcomeProcessed = EventOutcomeProcessed
	// Deprecated: use EventOutcomeIgnored.
	OutcomeIgnored = EventOutcomeIgnored
	// Deprecated: use EventOutcomeDuplicate.
	OutcomeDuplicate = EventOutcomeDuplicate
	// Deprecated: use EventOutcomeInProgress.
	OutcomeInProgress = EventOutcomeInProgress
	// Deprecated: use EventOutcomeFailed.
	OutcomeFailed = EventOutcomeFailed
	// Deprecated: use EventOutcomeRejected.
	OutcomeRejected = EventOutcomeRejected
)
