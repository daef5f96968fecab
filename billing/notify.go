package billing

import (
	"context"
	"time"
)

// NotificationKind names an email (or other channel message) renewkit sends.
type NotificationKind string

const (
	// NotificationKindExpiring: a manually renewed subscription ends in a few days; link to renew.
	NotificationKindExpiring NotificationKind = "expiring"
	// NotificationKindRenewalUpcoming: an auto-renewing subscription will be charged soon.
	NotificationKindRenewalUpcoming NotificationKind = "renewal_upcoming"
	// NotificationKindExpired: the subscription ended and access was revoked.
	NotificationKindExpired NotificationKind = "expired"
	// NotificationKindRenewed: a new period started.
	NotificationKindRenewed NotificationKind = "renewed"
	// NotificationKindPaymentSuccessful: a payment was approved.
	NotificationKindPaymentSuccessful NotificationKind = "payment_successful"
	// NotificationKindPaymentFailed: a payment failed; link to update the payment method.
	NotificationKindPaymentFailed NotificationKind = "payment_failed"
	// NotificationKindWelcome: the user's first subscription started.
	NotificationKindWelcome NotificationKind = "welcome"
	// NotificationKindOperatorAlert: for the operators: a job keeps failing.
	NotificationKindOperatorAlert NotificationKind = "operator_alert"
	// NotificationKindPaymentReversed: a payment was refunded or charged back. Data.Reason is
	// "refunded" or "charged_back", Data.Amount the amount taken back, Data.PeriodEnd when
	// the access the payment bought ends (zero: the current period is not affected).
	NotificationKindPaymentReversed NotificationKind = "payment_reversed"
)

// Former names of the NotificationKind values, kept for one release.
const (
	// Deprecated: use NotificationKindExpiring.
	KindExpiring = NotificationKindExpiring
	// Deprecated: use NotificationKindRenewalUpcoming.
	KindRenewalUpcoming = NotificationKindRenewalUpcoming
	// Deprecated: use NotificationKindExpired.
	KindExpired = NotificationKindExpired
	// Deprecated: use NotificationKindRenewed.
	KindRenewed = NotificationKindRenewed
	// Deprecated: use NotificationKindPaymentSuccessful.
	KindPaymentSuccessful = NotificationKindPaymentSuccessful
	// Deprecated: use NotificationKindPaymentFailed.
	KindPaymentFailed = NotificationKindPaymentFailed
	// Deprecated: use NotificationKindWelcome.
	KindWelcome = NotificationKindWelcome
	// Deprecated: use NotificationKindOperatorAlert.
	KindOperatorAlert = NotificationKindOperatorAlert
	// Deprecated: use NotificationKindPaymentReversed.
	KindPaymentReversed = NotificationKindPaymentReversed
)

// AllNotificationKinds returns every notification kind, in a new slice each call.
func AllNotificationKinds() []NotificationKind {
	return []NotificationKind{
		NotificationKindExpiring, NotificationKindRenewalUpcoming, NotificationKindExpired, NotificationKindRenewed,
		NotificationKindPaymentSuccessful, NotificationKindPaymentFailed, NotificationKindWelcome, NotificationKindOperatorAlert, NotificationKindPaymentReversed,
	}
}

// Kinds lists every notification kind.
//
// Deprecated: use AllNotificationKinds, which a caller cannot change for everyone else.
var Kinds = AllNotificationKinds()

// Recipient is who a notification goes to.
type Recipient struct {
	UserID   string `json:"user_id,omitempty"`
	Email    string `json:"email"`
	Name     string `json:"name"`
	Locale   string `json:"locale,omitempty"`
	TimeZone string `json:"timezone,omitempty"`
}

// Notification is one message. Data fields are set as the kind needs them; templates use
// what they need.
type Notification struct {
	Kind NotificationKind `json:"kind"`
	// Key is the send-once key (kind, subscription or payment, period); channels pass it on
	// (SMTP as the X-Renewkit-Key header) so duplicates can be recognised downstream.
	Key  string           `json:"key"`
	To   Recipient        `json:"to"`
	Data NotificationData `json:"data"`
}

// NotificationData is what templates render.
type NotificationData struct {
	PlanName       string    `json:"plan_name,omitempty"`
	SubscriptionID string    `json:"subscription_id,omitempty"`
	PaymentID      string    `json:"payment_id,omitempty"`
	Amount         Money     `json:"amount,omitzero"`
	PeriodStart    time.Time `json:"period_start,omitzero"`
	PeriodEnd      time.Time `json:"period_end,omitzero"` // expiry date, or the next charge date
	DaysRemaining  int       `json:"days_remaining,omitempty"`
	Gateway        string    `json:"gateway,omitempty"`
	Reason         string    `json:"reason,omitempty"` // payment failure reason
	// Operator alerts.
	JobID            string `json:"job_id,omitempty"`
	RunID            string `json:"run_id,omitempty"`
	Error            string `json:"error,omitempty"`
	ConsecutiveFails int    `json:"consecutive_failures,omitempty"`
}

// Notifier delivers notifications. Implementations wrap ErrUndeliverable for permanent
// failures; any other error is treated as transient and retried by a later run.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, n Notification) error

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, n Notification) error { return f(ctx, n) }
