package mercadopagogw

import (
	"context"
	"fmt"

	"github.com/renewkit/renewkit/billing"
)

var _ billing.RenewalLookup = (*RenewalLookup)(nil)

// RenewalLookup tells the renew job about Mercado Pago preapprovals (automatic renewal:
// Mercado Pago charges the card each period by itself). Register it for the gateway:
//
//	billing.Config{Renewals: map[string]billing.RenewalLookup{billing.GatewayMercadoPago: lookup}}
type RenewalLookup struct {
	api *api
}

// NewRenewalLookup builds a lookup from cfg; only AccessToken (and optionally BaseURL,
// HTTPClient, Timeout) are used.
func NewRenewalLookup(cfg Config) (*RenewalLookup, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	a, err := newAPI(cfg)
	if err != nil {
		return nil, err
	}
	return &RenewalLookup{api: a}, nil
}

// LookupSubscription reads the preapproval gatewaySubscriptionID. The period ends at
// next_payment_date and starts at the last charge; while a charge is pending or failing, or
// the preapproval is paused or pending, no period is reported (PeriodEnd is zero), so the
// renew job waits. authorized maps to active, paused to past_due, cancelled to cancelled,
// pending to pending; an authorized preapproval with a
// charge pending or failing is past_due. Errors are *APIError (HTTP status, Retryable).
func (l *RenewalLookup) LookupSubscription(ctx context.Context, gatewaySubscriptionID string) (billing.GatewaySubscription, error) {
	pre, err := l.api.getPreapproval(ctx, gatewaySubscriptionID)
	if err != nil {
		return billing.GatewaySubscription{}, err
	}
	if _, ok := preapprovalStatus(pre.Status); !ok {
		return billing.GatewaySubscription{}, fmt.Errorf("%w: preapproval %s has unknown status %q", ErrAPI, pre.ID, truncate(pre.Status))
	}
	params := syncParams(pre)
	gs := billing.GatewaySubscription{
		ID: pre.ID, Status: params.Status, PeriodStart: params.PeriodStart, PeriodEnd: params.PeriodEnd,
		CancelAtPeriodEnd: params.CancelAtPeriodEnd,
	}
	if m, err := toMoney(pre.AutoRecurring.TransactionAmount, pre.AutoRecurring.CurrencyID); err == nil && m.Amount > 0 {
		gs.Amount = m
	}
	return gs, nil
}
