package stripegw

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/internal/hookhttp"
)

// RenewalLookup asks Stripe's Subscriptions API about a subscription for billing's renew
// job. Build it with NewRenewalLookup and register it as
// billing.Config{Renewals: map[string]billing.RenewalLookup{billing.GatewayStripe: l}}.
type RenewalLookup struct {
	api *api
}

var _ billing.RenewalLookup = (*RenewalLookup)(nil)

// NewRenewalLookup returns a lookup over the Subscriptions API at cfg.BaseURL.
// cfg.SecretKey is required; WebhookSecret, Clock and ProcessInline are not used.
func NewRenewalLookup(cfg Config) (*RenewalLookup, error) {
	var errs []error
	if cfg.SecretKey == "" {
		errs = append(errs, fmt.Errorf("%w: SecretKey is empty: set STRIPE_SECRET_KEY (sk_... or a restricted key that reads subscriptions and invoices)", ErrInvalidConfig))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	log, _ := hookhttp.Defaults(nil, cfg.Logger, nil)
	return &RenewalLookup{api: newAPI(cfg, log)}, nil
}

// LookupSubscription retrieves the subscription (with its latest invoice expanded) and
// maps it: Status as in the webhook handler, CancelAtPeriodEnd, and the paid period.
//
// PeriodStart..PeriodEnd is the current period (current_period_start/end) when the latest
// invoice is paid (or owes nothing); while it is unpaid (Stripe opened the new period but
// has not collected it yet, or the charge failed) the subscription is paid only through
// current_period_start, which is returned as PeriodEnd, so the renew job never extends a
// subscription for a period Stripe has not been paid for. Amount and PaymentID describe the
// latest invoice. A failed call returns an *APIError (HTTP status, retryable or not).
func (l *RenewalLookup) LookupSubscription(ctx context.Context, gatewaySubscriptionID string) (billing.GatewaySubscription, error) {
	if gatewaySubscriptionID == "" {
		return billing.GatewaySubscription{}, fmt.Errorf("%w: empty Stripe subscription id", billing.ErrInvalidInput)
	}
	s, err := l.api.subscription(ctx, gatewaySubscriptionID)
	if err != nil {
		return billing.GatewaySubscription{}, err
	}
	return toGatewaySubscription(s), nil
}

func toGatewaySubscription(s *wireSubscription) billing.GatewaySubscription {
	ps, pe := s.period()
	gs := billing.GatewaySubscription{
		ID: s.ID, Status: mapStatus(s.Status), PeriodStart: ps, PeriodEnd: pe, CancelAtPeriodEnd: s.CancelAtPeriodEnd,
	}
	if inv := s.latest; inv != nil {
		gs.PaymentID = inv.ID
		if inv.Currency != "" {
			gs.Amount = billing.Money{Amount: inv.AmountPaid, Currency: currency(inv.Currency)}
		}
		if !inv.isPaid() && inv.AmountDue > 0 {
			gs.PeriodStart, gs.PeriodEnd = time.Time{}, ps
			gs.PaymentID = ""
		}
	}
	return gs
}
