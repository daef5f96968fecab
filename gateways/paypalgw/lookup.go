package paypalgw

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/plutov/paypal/v4"

	"github.com/renewkit/renewkit/billing"
)

// apiClient wraps the SDK client: OAuth tokens are fetched and refreshed by the SDK.
type apiClient struct {
	sdk  *paypal.Client
	base string
}

func newAPIClient(cfg Config) (*apiClient, error) {
	sdk, err := paypal.NewClient(cfg.ClientID, cfg.ClientSecret, cfg.apiBase())
	if err != nil {
		return nil, fmt.Errorf("paypalgw: creating API client: %w", err)
	}
	sdk.SetHTTPClient(cfg.httpClient())
	return &apiClient{sdk: sdk, base: cfg.apiBase()}, nil
}

// get sends GET c.base+path and returns the answer's body. A failed call is the *APIError
// of op, which wraps notFound when the answer is a 404.
func (c *apiClient) get(ctx context.Context, op, path string, notFound error) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := c.sdk.SendWithAuth(req, &raw); err != nil {
		aerr := apiError(op, err)
		if aerr.StatusCode == http.StatusNotFound {
			aerr.Err = notFound
		}
		return nil, aerr
	}
	return raw, nil
}

// badAnswer is the *APIError of op for a 200 answer renewkit cannot use.
func badAnswer(op string, err error) *APIError {
	return &APIError{Gateway: billing.GatewayPayPal, Op: op, StatusCode: http.StatusOK, Err: err}
}

// subscription fetches GET /v1/billing/subscriptions/{id}. The raw JSON is decoded into
// renewkit's view rather than the SDK's struct, whose time fields reject PayPal's empty
// strings.
func (c *apiClient) subscription(ctx context.Context, id string) (*subscriptionState, error) {
	if err := checkSubscriptionID(id); err != nil {
		return nil, err
	}
	raw, err := c.get(ctx, "get subscription", "/v1/billing/subscriptions/"+id, fmt.Errorf("%w: %s", ErrSubscriptionNotFound, id))
	if err != nil {
		return nil, err
	}
	var st subscriptionState
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, badAnswer("get subscription", fmt.Errorf("%w: %v", ErrMalformedEvent, err))
	}
	if st.ID != id {
		return nil, badAnswer("get subscription", fmt.Errorf("asked for %s, PayPal answered %q", id, st.ID))
	}
	return &st, nil
}

// sale fetches GET /v1/payments/sale/{id}, the v1 sale a PAYMENT.SALE.COMPLETED event names.
// An unknown sale wraps ErrSaleNotFound.
func (c *apiClient) sale(ctx context.Context, id string) (*saleResource, error) {
	if err := checkSubscriptionID(id); err != nil { // same alphabet: the id goes into a path
		return nil, fmt.Errorf("%w: sale id: %w", ErrMalformedEvent, err)
	}
	raw, err := c.get(ctx, "get sale", "/v1/payments/sale/"+id, fmt.Errorf("%w: %s", ErrSaleNotFound, id))
	if err != nil {
		return nil, err
	}
	var s saleResource
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, badAnswer("get sale", fmt.Errorf("%w: %v", ErrMalformedEvent, err))
	}
	if s.ID != id {
		return nil, badAnswer("get sale", fmt.Errorf("asked for %s, PayPal answered %q", id, s.ID))
	}
	return &s, nil
}

// RenewalLookup implements billing.RenewalLookup over PayPal's Subscriptions API: status,
// billing_info.next_billing_time (the period end) and billing_info.last_payment.
type RenewalLookup struct {
	api *apiClient
}

var _ billing.RenewalLookup = (*RenewalLookup)(nil)

// NewRenewalLookup needs ClientID and ClientSecret; Mode or BaseURL and HTTPClient are used,
// the webhook fields are not.
func NewRenewalLookup(cfg Config) (*RenewalLookup, error) {
	cfg.WebhookID = "unused" // only the API part of Config matters here
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if !cfg.hasCredentials() {
		errs = append(errs, fmt.Errorf("%w: missing ClientID and ClientSecret: the lookup calls the Subscriptions API; copy them from the PayPal developer dashboard (Apps & Credentials)", ErrInvalidConfig))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	api, err := newAPIClient(cfg)
	if err != nil {
		return nil, err
	}
	return &RenewalLookup{api: api}, nil
}

// LookupSubscription returns PayPal's view of the subscription. Errors are *APIError (with
// the HTTP status and whether a retry can help); an unknown subscription wraps
// ErrSubscriptionNotFound.
func (l *RenewalLookup) LookupSubscription(ctx context.Context, gatewaySubscriptionID string) (billing.GatewaySubscription, error) {
	st, err := l.api.subscription(ctx, gatewaySubscriptionID)
	if err != nil {
		return billing.GatewaySubscription{}, err
	}
	return gatewaySubscription(st), nil
}

func gatewaySubscription(st *subscriptionState) billing.GatewaySubscription {
	gs := billing.GatewaySubscription{
		ID:        st.ID,
		Status:    st.mappedStatus(),
		PeriodEnd: st.BillingInfo.NextBillingTime.Time,
	}
	if lp := st.BillingInfo.LastPayment; !lp.Time.IsZero() {
		gs.PeriodStart = lp.Time.Time
		if m, err := ParseAmount(lp.Amount.Value, lp.Amount.Currency); err == nil {
			gs.Amount = m
		}
	}
	if gs.Status == billing.SubscriptionStatusCancelled {
		gs.CancelAtPeriodEnd = true
	}
	return gs
}
