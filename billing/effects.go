package billing

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"time"
)

// Effects are what a subscription transition leaves to do once it is stored: bring the
// user's access in line, send the emails, write the audit entries. A job records them on the
// subscription in the same single-document write as the transition (Subscription.Pending),
// carries them out after it and then removes them (SubscriptionStore.CompleteEffects). A run
// that finds a record with pending effects, its own or a crashed run's, finishes them. Each
// effect is idempotent: the access change is computed from the user's live subscriptions at
// the time it runs, notifications are sent once per key (NotificationStore reservations),
// and audit entries carry fixed ids (AuditStore.InsertAudits skips stored ones).
type Effects struct {
	// Token identifies the transition that recorded the effects.
	Token string `json:"token"`
	// Access, when set, points the user's access at their live subscriptions, or revokes
	// it when none is left.
	Access *AccessEffect `json:"access,omitempty"`
	// Notifications go out after the access change, each once per key.
	Notifications []Notification `json:"notifications,omitempty"`
	// Audit entries carry their ids. On a payment, an entry without EntityID is about the
	// payment that carries it: finishing the effects writes it with the payment's id as
	// EntityID (EntityType "payment", UserID the payment's user unless set) and its ID
	// followed by ":" and the payment's id. That lets a store record one set of effects on
	// every record of a bulk write (PaymentStore.CancelStalePayments). On sessions, an
	// entry without EntityID is about all the sessions that carry the same effects:
	// finishing them writes it once, its ID kept, with EntityType "session", EntityID the
	// first of the sessions' ids and Details "count" and "session_ids" (the ids in order)
	// added (SessionStore.DeleteExpiredSessions).
	Audit []AuditEntry `json:"audit,omitempty"`
	// Status and PeriodEnd are the record's state as the transition left it. A record
	// found in another state when the effects run was changed since (a payment, a webhook,
	// the host): its notifications are then no longer sent, the access change and the
	// audit entries still are.
	Status    SubscriptionStatus `json:"status"`
	PeriodEnd time.Time          `json:"period_end"`
	CreatedAt time.Time          `json:"created_at"`
}

// AccessEffect asks for the access of UserID to be reconciled with the user's live
// subscriptions after a subscription ended or started a new period.
type AccessEffect struct {
	UserID string `json:"user_id"`
	// Status is the access status written when no live subscription is left
	// (SubscriptionStatusInactive after expiry, SubscriptionStatusCancelled when the gateway ended it).
	Status SubscriptionStatus `json:"status,omitempty"`
}

// Document field names reported by ChangedSubscriptionFields and ChangedPaymentFields; they
// are the field names of the original application's collections.
const (
	FieldUserID                = "user_id"
	FieldPlanID                = "plan_id"
	FieldSubscriptionID        = "subscription_id"
	FieldStatus                = "status"
	FieldBillingCycle          = "billing_cycle"
	FieldCurrentPeriodStart    = "current_period_start"
	FieldCurrentPeriodEnd      = "current_period_end"
	FieldGateway               = "gateway"
	FieldGatewaySubscriptionID = "gateway_subscription_id"
	FieldGatewayPaymentID      = "gateway_payment_id"
	FieldCancelAtPeriodEnd     = "cancel_at_period_end"
	FieldExpirationWarningSent = "expiration_warning_sent"
	FieldExpirationWarningDays = "expiration_warning_days"
	FieldGatewayUpdatedAt      = "gateway_updated_at"
	FieldAppliedPayments       = "applied_payments"
	FieldCancelledAt           = "cancelled_at"
	FieldAmount                = "amount"
	FieldCurrency              = "currency"
	FieldReason                = "reason"
	FieldProcessedAt           = "processed_at"
	FieldRefundedAmount        = "refunded_amount"
	FieldReversalReason        = "reversal_reason"
	FieldReversedAt            = "reversed_at"
	FieldCreatedAt             = "created_at"
	FieldUpdatedAt             = "updated_at"
	FieldDeleted               = "flag_del"
)

// changes collects the names of the fields that differ.
type changes []string

func (c *changes) str(name, a, b string) {
	if a != b {
		*c = append(*c, name)
	}
}

func (c *changes) time(name string, a, b time.Time) {
	if !TruncateTime(a).Equal(TruncateTime(b)) {
		*c = append(*c, name)
	}
}

func (c *changes) flag(name string, a, b bool) {
	if a != b {
		*c = append(*c, name)
	}
}

// ChangedSubscriptionFields returns the document field names where b differs from a, in a
// fixed order. Times are compared at the stores' millisecond precision. ID, Pending and
// Version are never reported: they are not written by a change.
func ChangedSubscriptionFields(a, b Subscription) []string {
	var c changes
	c.str(FieldUserID, a.UserID, b.UserID)
	c.str(FieldPlanID, a.PlanID, b.PlanID)
	c.str(FieldStatus, string(a.Status), string(b.Status))
	c.str(FieldBillingCycle, string(a.BillingCycle), string(b.BillingCycle))
	c.time(FieldCurrentPeriodStart, a.CurrentPeriodStart, b.CurrentPeriodStart)
	c.time(FieldCurrentPeriodEnd, a.CurrentPeriodEnd, b.CurrentPeriodEnd)
	c.str(FieldGateway, a.Gateway, b.Gateway)
	c.str(FieldGatewaySubscriptionID, a.GatewaySubscriptionID, b.GatewaySubscriptionID)
	c.flag(FieldCancelAtPeriodEnd, a.CancelAtPeriodEnd, b.CancelAtPeriodEnd)
	c.flag(FieldExpirationWarningSent, a.ExpirationWarningSent, b.ExpirationWarningSent)
	if a.ExpirationWarningDays != b.ExpirationWarningDays {
		c = append(c, FieldExpirationWarningDays)
	}
	c.time(FieldGatewayUpdatedAt, a.GatewayUpdatedAt, b.GatewayUpdatedAt)
	if !slices.Equal(a.AppliedPayments, b.AppliedPayments) {
		c = append(c, FieldAppliedPayments)
	}
	c.time(FieldCancelledAt, a.CancelledAt, b.CancelledAt)
	c.time(FieldCreatedAt, a.CreatedAt, b.CreatedAt)
	c.time(FieldUpdatedAt, a.UpdatedAt, b.UpdatedAt)
	c.flag(FieldDeleted, a.Deleted, b.Deleted)
	return c
}

// ChangedPaymentFields is ChangedSubscriptionFields for payments. A changed Amount reports
// FieldAmount and/or FieldCurrency.
func ChangedPaymentFields(a, b Payment) []string {
	var c changes
	c.str(FieldUserID, a.UserID, b.UserID)
	c.str(FieldPlanID, a.PlanID, b.PlanID)
	c.str(FieldSubscriptionID, a.SubscriptionID, b.SubscriptionID)
	if a.Amount.Amount != b.Amount.Amount {
		c = append(c, FieldAmount)
	}
	c.str(FieldCurrency, a.Amount.Currency, b.Amount.Currency)
	c.str(FieldStatus, string(a.Status), string(b.Status))
	c.str(FieldGateway, a.Gateway, b.Gateway)
	c.str(FieldGatewayPaymentID, a.GatewayPaymentID, b.GatewayPaymentID)
	c.str(FieldGatewaySubscriptionID, a.GatewaySubscriptionID, b.GatewaySubscriptionID)
	c.str(FieldReason, a.Reason, b.Reason)
	c.time(FieldProcessedAt, a.ProcessedAt, b.ProcessedAt)
	if a.RefundedAmount != b.RefundedAmount {
		c = append(c, FieldRefundedAmount)
	}
	c.str(FieldReversalReason, a.ReversalReason, b.ReversalReason)
	c.time(FieldReversedAt, a.ReversedAt, b.ReversedAt)
	c.time(FieldCreatedAt, a.CreatedAt, b.CreatedAt)
	c.time(FieldUpdatedAt, a.UpdatedAt, b.UpdatedAt)
	c.flag(FieldDeleted, a.Deleted, b.Deleted)
	return c
}

// UpdateSubscription applies one conditional change through st.UpdateSubscriptions and
// returns changed (with Version incremented) or the change's error (ErrConflict when the
// record no longer has what read says, ErrNotFound when it is gone).
func UpdateSubscription(ctx context.Context, st SubscriptionStore, read, changed Subscription) (Subscription, error) {
	return updateSubscription(ctx, st, SubscriptionChange{Read: read, Changed: changed})
}

// updateSubscription applies one conditional change and returns the record as stored: its
// Pending the change's Effects when it has any (else the read's), its Version incremented.
func updateSubscription(ctx context.Context, st SubscriptionStore, ch SubscriptionChange) (Subscription, error) {
	errs, err := st.UpdateSubscriptions(ctx, []SubscriptionChange{ch})
	if err = aligned(errs, err, 1); err == nil {
		err = errs[0]
	}
	if err != nil {
		return ch.Read, err
	}
	stored := ch.Changed
	stored.Pending = ch.Read.Pending
	if ch.Effects != nil {
		stored.Pending = ch.Effects
	}
	stored.Version = ch.Read.Version + 1
	return stored, nil
}

// hasAudit reports whether e writes the audit entry with id.
func (e *Effects) hasAudit(id string) bool {
	return slices.ContainsFunc(e.Audit, func(a AuditEntry) bool { return a.ID == id })
}

// UpdateUserAccess applies one conditional access change through st.UpdateUsersAccess.
func UpdateUserAccess(ctx context.Context, st UserStore, read, changed User) error {
	errs, err := st.UpdateUsersAccess(ctx, []UserAccessChange{{Read: read, Changed: changed}})
	if err = aligned(errs, err, 1); err == nil {
		err = errs[0]
	}
	return err
}

// paymentAudit returns the audit entries of e for payment p, the entries about the payment
// that carries them (no EntityID) bound to p; see Effects.Audit.
func (e *Effects) paymentAudit(p Payment) []AuditEntry {
	out := make([]AuditEntry, len(e.Audit))
	for i, a := range e.Audit {
		if a.EntityID == "" {
			a.ID += ":" + p.ID
			a.EntityType, a.EntityID = cmp.Or(a.EntityType, "payment"), p.ID
			a.UserID = cmp.Or(a.UserID, p.UserID)
		}
		out[i] = a
	}
	return out
}

// sessionAudit returns the audit entries of e for ss, the sessions that carry it, the entries
// about them (no EntityID) naming all of them; see Effects.Audit.
func (e *Effects) sessionAudit(ss []Session) []AuditEntry {
	ids := make([]string, len(ss))
	for i, se := range ss {
		ids[i] = se.ID
	}
	slices.Sort(ids)
	out := make([]AuditEntry, len(e.Audit))
	for i, a := range e.Audit {
		if a.EntityID == "" && len(ids) > 0 {
			a.EntityType, a.EntityID = cmp.Or(a.EntityType, "session"), ids[0]
			d := make(map[string]any, len(a.Details)+2)
			maps.Copy(d, a.Details)
			d["count"], d["session_ids"] = len(ids), ids
			a.Details = d
		}
		out[i] = a
	}
	return out
}
