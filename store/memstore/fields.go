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

// value is a field compared with == and copied as is; at points at it in a record.
func value[T any, V comparable](name string, at func(*T) *V) field[T] {
	return field[T]{name,
		func(a, b *T) bool { return *at(a) == *at(b) },
		func(d, s *T) { *at(d) = *at(s) }}
}

// instant is a time field, compared and stored at the stores' precision.
func instant[T any](name string, at func(*T) *time.Time) field[T] {
	return field[T]{name,
		func(a, b *T) bool { return sameTime(*at(a), *at(b)) },
		func(d, s *T) { *at(d) = t0(*at(s)) }}
}

// list is a list of ids, compared element by element and copied so the store never shares
// the caller's backing array.
func list[T any](name string, at func(*T) *[]string) field[T] {
	return field[T]{name,
		func(a, b *T) bool { return slices.Equal(*at(a), *at(b)) },
		func(d, s *T) { *at(d) = slices.Clone(*at(s)) }}
}

type (
	sub = billing.Subscription
	pay = billing.Payment
)

// subFields are the writable fields of a subscription: every one except ID, Pending and
// Version.
var subFields = []field[sub]{
	value(billing.FieldUserID, func(r *sub) *string { return &r.UserID }),
	value(billing.FieldPlanID, func(r *sub) *string { return &r.PlanID }),
	value(billing.FieldStatus, func(r *sub) *billing.SubscriptionStatus { return &r.Status }),
	value(billing.FieldBillingCycle, func(r *sub) *billing.Cycle { return &r.BillingCycle }),
	instant(billing.FieldCurrentPeriodStart, func(r *sub) *time.Time { return &r.CurrentPeriodStart }),
	instant(billing.FieldCurrentPeriodEnd, func(r *sub) *time.Time { return &r.CurrentPeriodEnd }),
	value(billing.FieldGateway, func(r *sub) *string { return &r.Gateway }),
	value(billing.FieldGatewaySubscriptionID, func(r *sub) *string { return &r.GatewaySubscriptionID }),
	value(billing.FieldCancelAtPeriodEnd, func(r *sub) *bool { return &r.CancelAtPeriodEnd }),
	value(billing.FieldExpirationWarningSent, func(r *sub) *bool { return &r.ExpirationWarningSent }),
	value(billing.FieldExpirationWarningDays, func(r *sub) *int { return &r.ExpirationWarningDays }),
	instant(billing.FieldGatewayUpdatedAt, func(r *sub) *time.Time { return &r.GatewayUpdatedAt }),
	list(billing.FieldAppliedPayments, func(r *sub) *[]string { return &r.AppliedPayments }),
	instant(billing.FieldCancelledAt, func(r *sub) *time.Time { return &r.CancelledAt }),
	instant(billing.FieldCreatedAt, func(r *sub) *time.Time { return &r.CreatedAt }),
	instant(billing.FieldUpdatedAt, func(r *sub) *time.Time { return &r.UpdatedAt }),
	value(billing.FieldDeleted, func(r *sub) *bool { return &r.Deleted }),
}

// paymentFields are the writable fields of a payment: every one except ID, Pending and
// Version.
var paymentFields = []field[pay]{
	value(billing.FieldUserID, func(r *pay) *string { return &r.UserID }),
	value(billing.FieldPlanID, func(r *pay) *string { return &r.PlanID }),
	value(billing.FieldSubscriptionID, func(r *pay) *string { return &r.SubscriptionID }),
	value(billing.FieldAmount, func(r *pay) *int64 { return &r.Amount.Amount }),
	value(billing.FieldCurrency, func(r *pay) *string { return &r.Amount.Currency }),
	value(billing.FieldStatus, func(r *pay) *billing.PaymentStatus { return &r.Status }),
	value(billing.FieldGateway, func(r *pay) *string { return &r.Gateway }),
	value(billing.FieldGatewayPaymentID, func(r *pay) *string { return &r.GatewayPaymentID }),
	value(billing.FieldGatewaySubscriptionID, func(r *pay) *string { return &r.GatewaySubscriptionID }),
	value(billing.FieldReason, func(r *pay) *string { return &r.Reason }),
	instant(billing.FieldProcessedAt, func(r *pay) *time.Time { return &r.ProcessedAt }),
	value(billing.FieldRefundedAmount, func(r *pay) *int64 { return &r.RefundedAmount }),
	value(billing.FieldReversalReason, func(r *pay) *string { return &r.ReversalReason }),
	instant(billing.FieldReversedAt, func(r *pay) *time.Time { return &r.ReversedAt }),
	instant(billing.FieldCreatedAt, func(r *pay) *time.Time { return &r.CreatedAt }),
	instant(billing.FieldUpdatedAt, func(r *pay) *time.Time { return &r.UpdatedAt }),
	value(billing.FieldDeleted, func(r *pay) *bool { return &r.Deleted }),
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
