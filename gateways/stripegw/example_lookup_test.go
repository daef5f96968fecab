package stripegw_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/stripegw"
)

// Build the lookup billing's renew job asks before it extends a Stripe subscription, and
// ask it about one. Here a local server stands in for Stripe's Subscriptions API; a host
// leaves BaseURL empty and sets its real secret key.
func ExampleNewRenewalLookup() {
	stripe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/subscriptions/sub_1" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"sub_1","object":"subscription","status":"active","cancel_at_period_end":false,
			"current_period_start":1768435200,"current_period_end":1771113600,
			"latest_invoice":{"id":"in_1","object":"invoice","status":"paid","paid":true,"currency":"brl","amount_due":2990,"amount_paid":2990}}`)
	}))
	defer stripe.Close()

	lookup, err := stripegw.NewRenewalLookup(stripegw.Config{SecretKey: "sk_test_example", BaseURL: stripe.URL, MaxNetworkRetries: -1})
	if err != nil {
		panic(err)
	}
	// A host registers it with billing:
	_ = billing.Config{Renewals: map[string]billing.RenewalLookup{billing.GatewayStripe: lookup}}

	gs, err := lookup.LookupSubscription(context.Background(), "sub_1")
	if err != nil {
		panic(err)
	}
	fmt.Println(gs.Status, gs.PeriodStart.UTC().Format("2006-01-02"), gs.PeriodEnd.UTC().Format("2006-01-02"), gs.Amount.Amount, gs.Amount.Currency, gs.PaymentID)
	// Output: active 2026-01-15 2026-02-15 2990 BRL in_1
}
