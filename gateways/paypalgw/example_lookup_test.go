package paypalgw_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/paypalgw"
)

// Build the lookup billing's renew job asks before it extends a PayPal subscription, and
// ask it about one. Here a local server stands in for PayPal's OAuth and Subscriptions
// APIs; a host sets Mode (or leaves it sandbox) instead of BaseURL, and its real
// credentials.
func ExampleNewRenewalLookup() {
	paypal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/oauth2/token":
			fmt.Fprint(w, `{"access_token":"A21-example","token_type":"Bearer","expires_in":32400}`)
		case r.Method == http.MethodGet && r.URL.Path == "/v1/billing/subscriptions/I-BW452GLLEP1G" &&
			r.Header.Get("Authorization") == "Bearer A21-example":
			fmt.Fprint(w, `{"id":"I-BW452GLLEP1G","status":"ACTIVE","plan_id":"P-5ML4271244454362WXNWU5NQ",
				"billing_info":{"last_payment":{"amount":{"currency_code":"USD","value":"19.90"},"time":"2026-01-15T10:00:05Z"},
				"next_billing_time":"2026-02-15T10:00:00Z"}}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer paypal.Close()

	lookup, err := paypalgw.NewRenewalLookup(paypalgw.Config{ClientID: "client-id", ClientSecret: "client-secret", BaseURL: paypal.URL})
	if err != nil {
		panic(err)
	}
	// A host registers it with billing:
	_ = billing.Config{Renewals: map[string]billing.RenewalLookup{billing.GatewayPayPal: lookup}}

	gs, err := lookup.LookupSubscription(context.Background(), "I-BW452GLLEP1G")
	if err != nil {
		panic(err)
	}
	fmt.Println(gs.Status, gs.PeriodStart.UTC().Format("2006-01-02 15:04"), gs.PeriodEnd.UTC().Format("2006-01-02 15:04"), gs.Amount.Amount, gs.Amount.Currency)
	// Output: active 2026-01-15 10:00 2026-02-15 10:00 1990 USD
}
