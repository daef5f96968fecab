package memstore

import (
	"slices"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// field is one document field a conditional write may change: same compares two records'
// values at the stores' precision, set copies src's (normalised) value into dst. The lists
// below mirror billing.ChangedSubscriptionFields and billing.ChangedPaymentFields (a test
// keeps them in step) without allocating a list of names per write.
type field[T any] struct {
	name string
	same func(a, b *T) bool
	set  func(dst, src *T)
}

// sameTime compares at the stores' precision; equal instants need no truncation.
func sameTime(a, b time.Time) bool { return a.Equal(b) || t0(a).Equal(t0(b)) }

// subFields are the writable fields of a subscription: every one except ID, Pending and
// Version.
var subFields = []field[billing.Subscription]{
	{billing.FieldUserID,
		func(a, b *billing.Subscription) bool { return a.UserID == b.UserID },
		func(d, s *billing.Subscription) { d.UserID = s.UserID }},
	{billing.FieldPlanID,
		func(a, b *billing.Subscription) bool { return a.PlanID == b.PlanID },
		func(d, s *billing.Subscription) { d.PlanID = s.PlanID }},
	{billing.FieldStatus,
		func(a, b *billing.Subscription) bool { return a.Status == b.Status },
		func(d, s *billing.Subscription) { d.Status = s.Status }},
	{billing.FieldBillingCycle,
		func(a, b *billing.Subscription) bool { return a.BillingCycle == b.BillingCycle },
		func(d, s *billing.Subscription) { d.BillingCycle = s.BillingCycle }},
	{billing.FieldCurrentPeriodStart,
		func(a, b *billing.Subscription) bool { return sameTime(a.CurrentPeriodStart, b.CurrentPeriodStart) },
		func(d, s *billing.Subscription) { d.CurrentPeriodStart = t0(s.CurrentPeriodStart) }},
	{billing.FieldCurrentPeriodEnd,
		func(a, b *billing.Subscription) bool { return sameTime(a.CurrentPeriodEnd, b.CurrentPeriodEnd) },
		func(d, s *billing.Subscription) { d.CurrentPeriodEnd = t0(s.CurrentPeriodEnd) }},
	{billing.FieldGateway,
		func(a, b *billing.Subscription) bool { return a.Gateway == b.Gateway },
		func(d, s *billing.Subscription) { d.Gateway = s.Gateway }},
	{billing.FieldGatewaySubscriptionID,
		func(a, b *billing.Subscription) bool { return a.GatewaySubscriptionID == b.GatewaySubscriptionID },
		func(d, s *billing.Subscription) { d.GatewaySubscriptionID = s.GatewaySubscriptionID }},
	{billing.FieldCancelAtPeriodEnd,
		func(a, b *billing.Subscription) bool { return a.CancelAtPeriodEnd == b.CancelAtPeriodEnd },
		func(d, s *billing.Subscription) { d.CancelAtPeriodEnd = s.CancelAtPeriodEnd }},
	{billing.FieldExpirationWarningSent,
		func(a, b *billing.Subscription) bool { return a.ExpirationWarningSent == b.ExpirationWarningSent },
		func(d, s *billing.Subscription) { d.ExpirationWarningSent = s.ExpirationWarningSent }},
	{billing.FieldExpirationWarningDays,
		func(a, b *billing.Subscription) bool { return a.ExpirationWarningDays == b.ExpirationWarningDays },
		func(d, s *billing.Subscription) { d.ExpirationWarningDays = s.ExpirationWarningDays }},
	{billing.FieldGatewayUpdatedAt,
		func(a, b *billing.Subscription) bool { return sameTime(a.GatewayUpdatedAt, b.GatewayUpdatedAt) },
		func(d, s *billing.Subscription) { d.GatewayUpdatedAt = t0(s.GatewayUpdatedAt) }},
	{billing.FieldAppliedPayments,
		func(a, b *billing.Subscription) bool { return slices.Equal(a.AppliedPayments, b.AppliedPayments) },
		func(d, s *billing.Subscription) { d.AppliedPayments = slices.Clone(s.AppliedPayments) }},
	{billing.FieldCancelledAt,
		func(a, b *billing.Subscription) bool { return sameTime(a.CancelledAt, b.CancelledAt) },
		func(d, s *billing.Subscription) { d.CancelledAt = t0(s.CancelledAt) }},
	{billing.FieldCreatedAt,
		func(a, b *billing.Subscription) bool { return sameTime(a.CreatedAt, b.CreatedAt) },
		func(d, s *billing.Subscription) { d.CreatedAt = t0(s.CreatedAt) }},
	{billing.FieldUpdatedAt,
		func(a, b *billing.Subscription) bool { return sameTime(a.UpdatedAt, b.UpdatedAt) },
		func(d, s *billing.Subscription) { d.UpdatedAt = t0(s.UpdatedAt) }},
	{billing.FieldDeleted,
		func(a, b *billing.Subscription) bool { return a.Deleted == b.Deleted },
		func(d, s *billing.Subscription) { d.Deleted = s.Deleted }},
}

// paymentFields are the writable fields of a payment: every one except ID, Pending and
// Version.
var paymentFields = []field[billing.Payment]{
	{billing.FieldUserID,
		func(a, b *billing.Payment) bool { return a.UserID == b.UserID },
		func(d, s *billing.Payment) { d.UserID = s.UserID }},
	{billing.FieldPlanID,
		func(a, b *billing.Payment) bool { return a.PlanID == b.PlanID },
		func(d, s *billing.Payment) { d.PlanID = s.PlanID }},
	{billing.FieldSubscriptionID,
		func(a, b *billing.Payment) bool { return a.SubscriptionID == b.SubscriptionID },
		func(d, s *billing.Payment) { d.SubscriptionID = s.SubscriptionID }},
	{billing.FieldAmount,
		func(a, b *billing.Payment) bool { return a.Amount.Amount == b.Amount.Amount },
		func(d, s *billing.Payment) { d.Amount.Amount = s.Amount.Amount }},
	{billing.FieldCurrency,
		func(a, b *billing.Payment) bool { return a.Amount.Currency == b.Amount.Currency },
		func(d, s *billing.Payment) { d.Amount.Currency = s.Amount.Currency }},
	{billing.FieldStatus,
		func(a, b *billing.Payment) bool { return a.Status == b.Status },
		func(d, s *billing.Payment) { d.Status = s.Status }},
	{billing.FieldGateway,
		func(a, b *billing.Payment) bool { return a.Gateway == b.Gateway },
		func(d, s *billing.Payment) { d.Gateway = s.Gateway }},
	{billing.FieldGatewayPaymentID,
		func(a, b *billing.Payment) bool { return a.GatewayPaymentID == b.GatewayPaymentID },
		func(d, s *billing.Payment) { d.GatewayPaymentID = s.GatewayPaymentID }},
	{billing.FieldGatewaySubscriptionID,
		func(a, b *billing.Payment) bool { return a.GatewaySubscriptionID == b.GatewaySubscriptionID },
		func(d, s *billing.Payment) { d.GatewaySubscriptionID = s.GatewaySubscriptionID }},
	{billing.FieldReason,
		func(a, b *billing.Payment) bool { return a.Reason == b.Reason },
		func(d, s *billing.Payment) { d.Reason = s.Reason }},
	{billing.FieldProcessedAt,
		func(a, b *billing.Payment) bool { return sameTime(a.ProcessedAt, b.ProcessedAt) },
		func(d, s *billing.Payment) { d.ProcessedAt = t0(s.ProcessedAt) }},
	{billing.FieldRefundedAmount,
		func(a, b *billing.Payment) bool { return a.RefundedAmount == b.RefundedAmount },
		func(d, s *billing.Payment) { d.RefundedAmount = s.RefundedAmount }},
	{billing.FieldReversalReason,
		func(a, b *billing.Payment) bool { return a.ReversalReason == b.ReversalReason },
		func(d, s *billing.Payment) { d.ReversalReason = s.ReversalReason }},
	{billing.FieldReversedAt,
		func(a, b *billing.Payment) bool { return sameTime(a.ReversedAt, b.ReversedAt) },
		func(d, s *billing.Payment) { d.ReversedAt = t0(s.ReversedAt) }},
	{billing.FieldCreatedAt,
		func(a, b *billing.Payment) bool { return sameTime(a.CreatedAt, b.CreatedAt) },
		func(d, s *billing.Payment) { d.CreatedAt = t0(s.CreatedAt) }},
	{billing.FieldUpdatedAt,
		func(a, b *billing.Payment) bool { return sameTime(a.UpdatedAt, b.UpdatedAt) },
		func(d, s *billing.Payment) { d.UpdatedAt = t0(s.UpdatedAt) }},
	{billing.FieldDeleted,
		func(a, b *billing.Payment) bool { return a.Deleted == b.Deleted },
		func(d, s *billing.Payment) { d.Deleted = s.Deleted }},
}

// writable reports whether the change from read to changed may be applied to stored:
// stored still has read's value of every field the change writes. It reports whether the
// change writes anything too.
func writable[T any](fields []field[T], stored, read, changed *T) (ok, writes bool) {
	for i := range fields {
		f := &fields[i]
		if f.same(read, changed) {
			continue
		}
		writes = true
		if !f.same(stored, read) {
			return false, true
		}
	}
	return true, writes
}

// apply writes into dst the fields where changed differs from read.
func apply[T any](fields []field[T], dst, read, changed *T) {
	for i := range fields {
		if f := &fields[i]; !f.same(read, changed) {
			f.set(dst, changed)
		}
	}
}
