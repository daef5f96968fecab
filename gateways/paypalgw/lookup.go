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

// subscription fetches GET /v1/billing/subscriptions/{id}. The raw JSON is decoded into
// renewkit's view rather than the SDK's struct, whose time fields reject PayPal's empty
// strings.
func (c *apiClient) subscription(ctx context.Context, id string) (*subscriptionState, error) {
	if err := checkSubscriptionID(id); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/billing/subscriptions/"+id, nil)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := c.sdk.SendWithAuth(req, &raw); err != nil {
		aerr := apiError("get subscription", err)
		if aerr.StatusCode == http.StatusNotFound {
			aerr.Err = fmt.Errorf("%w: %s", ErrSubscriptionNotFound, id)
		}
		return nil, aerr
	}
	var st subscriptionState
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, &APIError{Gateway: billing.GatewayPayPal, Op: "get subscription", StatusCode: http.StatusOK, Err: fmt.Errorf("%w: %v", ErrMalformedEvent, err)}
	}
	if st.ID != id {
		return nil, &APIError{Gateway: billing.GatewayPayPal, Op: "get subscription", StatusCode: http.StatusOK, Err: fmt.Errorf("asked for %s, PayPal answered %q", id, st.ID)}
	}
	return &st, nil
}

// sale fetches GET /v1/payments/sale/{id}, the v1 sale a PAYMENT.SALE.COMPLETED event names.
// An unknown sale wraps ErrSaleNotFound.
func (c *apiClient) sale(ctx context.Context, id string) (*saleResource, error) {
	if err := checkSubscriptionID(id); err != nil { // same alphabet: the id goes into a path
		return nil, fmt.Errorf("%w: sale id: %w", ErrMalformedEvent, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/payments/sale/"+id, nil)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := c.sdk.SendWithAuth(req, &raw); err != nil {
		aerr := apiError("get sale", err)
		if aerr.StatusCode == http.StatusNotFound {
			aerr.Err = fmt.Errorf("%w: %s", ErrSaleNotFound, id)
		}
		return nil, aerr
	}
	var s saleResource
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, &APIError{Gateway: billing.GatewayPayPal, Op: "get sale", StatusCode: http.StatusOK, Err: fmt.Errorf("%w: %v", ErrMalformedEvent, err)}
	}
	if s.ID != id {
		return nil, &APIError{Gateway: billing.GatewayPayPal, Op: "get sale", StatusCode: http.StatusOK, Err: fmt.Errorf("asked for %s, PayPal answered %q", id, s.ID)}
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
