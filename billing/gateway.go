package billing

import (
	"context"
	"time"
)

// GatewaySubscription is what a gateway says about a subscription.
type GatewaySubscription struct {
	ID                string             `json:"id"`
	Status            SubscriptionStatus `json:"status"` // mapped to renewkit's statuses
	PeriodStart       time.Time          `json:"period_start"`
	PeriodEnd         time.Time          `json:"period_end"`
	CancelAtPeriodEnd bool               `json:"cancel_at_period_end"`
	// Amount of the latest (or next) charge, when the gateway says.
	Amount Money `json:"amount,omitzero"`
	// PaymentID is the gateway's id of the charge that paid PeriodStart..PeriodEnd, when known.
	PaymentID string `json:"payment_id,omitempty"`
}

// RenewalLookup asks a gateway for the current state of an auto-renewing subscription. The
// renew job calls it for subscriptions ending within its window, and the expiry job before
// it expires one past its grace period. Jobs call it from several goroutines at once (up to
// Config.SendConcurrency): implementations must be safe for concurrent use.
type RenewalLookup interface {
	LookupSubscription(ctx context.Context, gatewaySubscriptionID string) (GatewaySubscription, error)
}
