package mercadopagogw_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/mercadopagogw"
)

// Build the lookup billing's renew job asks before it extends a Mercado Pago preapproval,
// and ask it about one. Here a local server stands in for the preapproval API; a host
// leaves BaseURL empty and sets its real access token.
func ExampleNewRenewalLookup() {
	mp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/preapproval/2c9380848d6f7e2b018d7a1b2c3d04e5" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"2c9380848d6f7e2b018d7a1b2c3d04e5","status":"authorized",
			"auto_recurring":{"frequency":1,"frequency_type":"months","currency_id":"BRL","transaction_amount":49.9},
			"next_payment_date":"2026-02-15T10:00:00.000-03:00",
			"summarized":{"charged_quantity":1,"pending_charge_quantity":0,"last_charged_date":"2026-01-15T10:05:02.000-03:00"}}`)
	}))
	defer mp.Close()

	lookup, err := mercadopagogw.NewRenewalLookup(mercadopagogw.Config{AccessToken: "APP_USR-example", BaseURL: mp.URL})
	if err != nil {
		panic(err)
	}
	// A host registers it with billing:
	_ = billing.Config{Renewals: map[string]billing.RenewalLookup{billing.GatewayMercadoPago: lookup}}

	gs, err := lookup.LookupSubscription(context.Background(), "2c9380848d6f7e2b018d7a1b2c3d04e5")
	if err != nil {
		panic(err)
	}
	fmt.Println(gs.Status, gs.PeriodStart.UTC().Format("2006-01-02 15:04"), gs.PeriodEnd.UTC().Format("2006-01-02 15:04"), gs.Amount.Amount, gs.Amount.Currency)
	// Output: active 2026-01-15 13:05 2026-02-15 13:00 4990 BRL
}
