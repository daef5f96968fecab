package billing

import (
	"fmt"
	"time"
)

// Gateway names as stored in the gateway field of subscriptions and payments.
const (
	GatewayStripe      = "stripe"
	GatewayMercadoPago = "mercadopago"
	GatewayPayPal      = "paypal"
	GatewayManual      = "manual"
)

// Money is an amount in the currency's minor units (centavos, cents) plus an ISO 4217 code.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Validate reports ErrInvalidAmount for a negative amount or a missing currency.
func (m Money) Validate() error {
	if m.Amount < 0 {
		return fmt.Errorf("%w: %d is negative", ErrInvalidAmount, m.Amount)
	}
	if len(m.Currency) != 3 {
		return fmt.Errorf("%w: currency %q is not an ISO 4217 code", ErrInvalidAmount, m.Currency)
	}
	return nil
}

// Cycle is how long one paid period lasts.
type Cycle string

// BillingCycle is the former name of Cycle.
//
// Deprecated: use Cycle.
type BillingCycle = Cycle

const (
	CycleMonthly    Cycle = "monthly"
	CycleQuarterly  Cycle = "quarterly"
	CycleSemiannual Cycle = "semiannual"
	CycleYearly     Cycle = "yearly"
)

// Months returns the number of calendar months in the cycle, or 0 for an unknown cycle.
func (c Cycle) Months() int {
	switch c {
	case CycleMonthly:
		return 1
	case CycleQuarterly:
		return 3
	case CycleSemiannual:
		return 6
	case CycleYearly, "annual":
		return 12
	}
	return 0
}

// Valid reports whether the cycle is one renewkit knows.
func (c Cycle) Valid() bool { return c.Months() > 0 }

// AddCycle returns t plus one billing cycle. Month arithmetic clamps to the end of the month:
// Jan 31 + 1 month is Feb 28 (or 29), not Mar 3. The time of day and location are kept. A
// renewal of a period cut short keeps the billing day: the processor renews Feb 28 to Mar 31
// when the period started on Jan 31.
func AddCycle(t time.Time, c Cycle) time.Time {
	return AddMonths(t, c.Months())
}

// AddMonths adds n calendar months to t, clamping the day to the last day of the target month.
func AddMonths(t time.Time, n int) time.Time { return addMonthsOnDay(t, n, t.Day()) }

// addMonthsOnDay adds n calendar months to t and lands on day (the billing anchor), clamped
// to the last day of the target month.
func addMonthsOnDay(t time.Time, n, day int) time.Time {
	y, m, _ := t.Date()
	first := time.Date(y, m+time.Month(n), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	d := min(day, daysIn(first.Year(), first.Month()))
	return time.Date(first.Year(), first.Month(), d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// Plan is something a user subscribes to.
type Plan struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	BillingCycle Cycle     `json:"billing_cycle"`
	Price        Money     `json:"price"`
	Active       bool      `json:"active"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	Deleted      bool      `json:"flag_del"`
}

// SubscriptionStatus is the lifecycle state of a subscription.
type SubscriptionStatus string

const (
	// SubscriptionStatusPending: created, first payment not approved yet.
	SubscriptionStatusPending SubscriptionStatus = "pending"
	// SubscriptionStatusActive: paid through CurrentPeriodEnd; the user has access.
	SubscriptionStatusActive SubscriptionStatus = "active"
	// SubscriptionStatusPastDue: the gateway failed to collect a renewal and is retrying; access is
	// kept until the period (plus grace) ends.
	SubscriptionStatusPastDue SubscriptionStatus = "past_due"
	// SubscriptionStatusInactive: the period ended without renewal (the legacy schema's expiry status).
	SubscriptionStatusInactive SubscriptionStatus = "inactive"
	// SubscriptionStatusCancelled: ended at the gateway or by the user.
	SubscriptionStatusCancelled SubscriptionStatus = "cancelled"
)

// Former names of the SubscriptionStatus values, kept for one release.
const (
	// Deprecated: use SubscriptionStatusPending.
	StatusPending = SubscriptionStatusPending
	// Deprecated: use SubscriptionStatusActive.
	StatusActive = SubscriptionStatusActive
	// Deprecated: use SubscriptionStatusPastDue.
	StatusPastDue = SubscriptionStatusPastDue
	// Deprecated: use SubscriptionStatusInactive.
	StatusInactive = SubscriptionStatusInactive
	// Deprecated: use SubscriptionStatusCancelled.
	StatusCancelled = SubscriptionStatusCancelled
)

// Live reports whether a subscription in this status still grants access.
func (s SubscriptionStatus) Live() bool {
	return s == SubscriptionStatusActive || s == SubscriptionStatusPastDue
}

// Subscription mirrors a document of the subscriptions collection.
type Subscription struct {
	ID                    string             `json:"id"`
	UserID                string             `json:"user_id"`
	PlanID                string             `json:"plan_id"`
	Status                SubscriptionStatus `json:"status"`
	BillingCycle          Cycle              `json:"billing_cycle"`
	CurrentPeriodStart    time.Time          `json:"current_period_start"`
	CurrentPeriodEnd      time.Time          `json:"current_period_end"`
	Gateway               string             `json:"gateway"`
	GatewaySubscriptionID string             `json:"gateway_subscription_id,omitempty"`
	// CancelAtPeriodEnd: the gateway will not charge again; the subscription is not
	// auto-renewing and expires at CurrentPeriodEnd.
	CancelAtPeriodEnd bool `json:"cancel_at_period_end"`
	// ExpirationWarningSent is the legacy schema's flag: a warning went out for the current period.
	ExpirationWarningSent bool `json:"expiration_warning_sent"`
	// ExpirationWarningDays is the smallest ladder offset (days before the end) already
	// warned for the current period; 0 with ExpirationWarningSent means "warned, offset
	// unknown" (records in the legacy schema), treated as every offset sent.
	ExpirationWarningDays int `json:"expiration_warning_days,omitempty"`
	// GatewayUpdatedAt is the gateway's own timestamp of the newest event applied, so an
	// older event delivered late never moves the subscription backwards.
	GatewayUpdatedAt time.Time `json:"gateway_updated_at,omitzero"`
	// AppliedPayments are the ids of the most recent payments that extended the period
	// (newest last, at most MaxAppliedPayments), so one payment never extends twice.
	AppliedPayments []string  `json:"applied_payments,omitempty"`
	CancelledAt     time.Time `json:"cancelled_at,omitzero"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
	Deleted         bool      `json:"flag_del"`
	// Pending is what a job's transition of this record left to do, recorded by the same
	// write; nil when nothing is pending. Stores keep it; only UpdateSubscriptions (with
	// SubscriptionChange.Effects) sets it and CompleteEffects clears it.
	Pending *Effects `json:"pending,omitempty"`
	// Version counts the writes renewkit made to the record. It is informative: writes are
	// conditional on the fields they change, not on the version (a host application never
	// bumps it).
	Version int64 `json:"version"`
}

// MaxAppliedPayments bounds Subscription.AppliedPayments.
const MaxAppliedPayments = 10

// AutoRenews reports whether the gateway charges the subscription by itself (a Stripe or
// PayPal subscription, a Mercado Pago preapproval) and it is not set to cancel.
func (s Subscription) AutoRenews() bool {
	return s.GatewaySubscriptionID != "" && s.Gateway != GatewayManual && !s.CancelAtPeriodEnd
}

// WarningDue reports whether a warning for the ladder offset days is still owed for the
// current period.
func (s Subscription) WarningDue(days int) bool {
	return !s.ExpirationWarningSent || (s.ExpirationWarningDays > 0 && s.ExpirationWarningDays > days)
}

func (s Subscription) hasApplied(paymentID string) bool {
	for _, id := range s.AppliedPayments {
		if id == paymentID {
			return true
		}
	}
	return false
}

func (s *Subscription) markApplied(paymentID string) {
	s.AppliedPayments = append(s.AppliedPayments, paymentID)
	if n := len(s.AppliedPayments); n > MaxAppliedPayments {
		s.AppliedPayments = append([]string(nil), s.AppliedPayments[n-MaxAppliedPayments:]...)
	}
}

// startPeriod moves the subscription to a new paid period and resets the warning state.
func (s *Subscription) startPeriod(start, end time.Time) {
	s.CurrentPeriodStart = start
	s.CurrentPeriodEnd = end
	s.ExpirationWarningSent = false
	s.ExpirationWarningDays = 0
}

// PaymentStatus is the state of a payment.
type PaymentStatus string

const (
	PaymentStatusPending   PaymentStatus = "pending"
	PaymentStatusApproved  PaymentStatus = "approved"
	PaymentStatusFailed    PaymentStatus = "failed"
	PaymentStatusCancelled PaymentStatus = "cancelled"
)

// Former names of the PaymentStatus values, kept for one release.
const (
	// Deprecated: use PaymentStatusPending.
	PaymentPending = PaymentStatusPending
	// Deprecated: use PaymentStatusApproved.
	PaymentApproved = PaymentStatusApproved
	// Deprecated: use PaymentStatusFailed.
	PaymentFailed = PaymentStatusFailed
	// Deprecated: use PaymentStatusCancelled.
	PaymentCancelled = PaymentStatusCancelled
)

// Payment mirrors a document of the payments collection.
type Payment struct {
	ID                    string        `json:"id"`
	UserID                string        `json:"user_id"`
	PlanID                string        `json:"plan_id"`
	SubscriptionID        string        `json:"subscription_id,omitempty"`
	Amount                Money         `json:"amount"`
	Status                PaymentStatus `json:"status"`
	Gateway               string        `json:"gateway"`
	GatewayPaymentID      string        `json:"gateway_payment_id,omitempty"`
	GatewaySubscriptionID string        `json:"gateway_subscription_id,omitempty"`
	// Reason says why a payment failed or was cancelled.
	Reason string `json:"reason,omitempty"`
	// RefundedAmount is how much of Amount (same currency) the gateway refunded so far; a
	// full refund makes the payment PaymentStatusRefunded.
	RefundedAmount int64 `json:"refunded_amount,omitempty"`
	// ReversalReason is the gateway's reason for a refund or chargeback.
	ReversalReason string `json:"reversal_reason,omitempty"`
	// ReversedAt is when renewkit applied the refund or chargeback that took the money back.
	ReversedAt  time.Time `json:"reversed_at,omitzero"`
	ProcessedAt time.Time `json:"processed_at,omitzero"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	Deleted     bool      `json:"flag_del"`
	// Pending is what the transition that gave the payment its status (failed, cancelled)
	// left to do, recorded by the same write: its audit entry, the payment-failed email; nil
	// when nothing is pending. Stores keep it; only InsertPayment and UpdatePayment (when
	// changed carries new effects) set it and CompletePaymentEffects clears it.
	Pending *Effects `json:"pending,omitempty"`
	Version int64    `json:"version"`
}

// User is the part of a users document renewkit reads and writes: who to email, in which
// language and zone, and what the user has access to.
type User struct {
	ID       string `json:"id"`
	Email    string `json:"email"`
	Name     string `json:"name"`
	Locale   string `json:"locale,omitempty"`   // "pt-BR", "en"; empty: the notifier's default
	TimeZone string `json:"timezone,omitempty"` // IANA zone for dates in emails
	// PlanID is the plan the user currently has access to; empty when access is revoked.
	PlanID         string             `json:"plan_id,omitempty"`
	SubscriptionID string             `json:"subscription_id,omitempty"`
	Status         SubscriptionStatus `json:"subscription_status,omitempty"`
	// AccessUntil is when the user's paid access ends.
	AccessUntil time.Time `json:"access_until,omitzero"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	Deleted     bool      `json:"flag_del"`
}

// HasAccess reports whether the user has a live plan at now.
func (u User) HasAccess(now time.Time) bool {
	return u.PlanID != "" && u.Status.Live() && now.Before(u.AccessUntil)
}

// Session is a login session of the host application; renewkit only cleans them up.
type Session struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	ExpiresAt time.Time `json:"expires_at"`
	CreatedAt time.Time `json:"created_at"`
	Deleted   bool      `json:"flag_del"`
	DeletedAt time.Time `json:"deleted_at,omitzero"`
	// Pending is what the cleanup that soft-deleted the session left to do (its audit
	// entry), recorded by the same write; nil when nothing is pending. Stores keep it; only
	// InsertSession and DeleteExpiredSessions set it and CompleteSessionEffects clears it.
	Pending *Effects `json:"pending,omitempty"`
}

// AuditEntry is one line of the audit_logs collection.
type AuditEntry struct {
	ID         string         `json:"id"`
	Action     string         `json:"action"`
	EntityType string         `json:"entity_type"`
	EntityID   string         `json:"entity_id"`
	UserID     string         `json:"user_id,omitempty"`
	Actor      string         `json:"actor"`
	Details    map[string]any `json:"details,omitempty"`
	CreatedAt  time.Time      `json:"created_at"`
}

// Audit actions written by the jobs and the processor.
const (
	AuditWarningSent         = "subscription.expiration_warning_sent"
	AuditSubscriptionExpired = "subscription.expired"
	AuditSubscriptionRenewed = "subscription.renewed"
	AuditSubscriptionCreated = "subscription.created"
	AuditSubscriptionUpdated = "subscription.updated"
	AuditSubscriptionEnded   = "subscription.cancelled"
	AuditAccessRevoked       = "user.access_revoked"
	AuditUserPlanUpdated     = "user.plan_updated"
	AuditPaymentApproved     = "payment.approved"
	AuditPaymentFailed       = "payment.failed"
	AuditPaymentCancelled    = "payment.cancelled"
	AuditSessionsCleaned     = "session.cleaned"
)
