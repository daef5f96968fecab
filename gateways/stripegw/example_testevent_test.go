package stripegw_test

import (
	"fmt"
	"time"

	"github.com/renewkit/renewkit/gateways/stripegw"
)

// ExampleNewTestEvent builds a signed invoice.paid delivery for a host's test of its
// webhook endpoint.
func ExampleNewTestEvent() {
	now := time.Date(2030, time.January, 16, 9, 0, 0, 0, time.UTC)
	invoice := map[string]any{"id": "in_1", "object": "invoice", "status": "paid", "amount_paid": 2990, "currency": "brl"}
	ev := stripegw.NewTestEvent("evt_1", stripegw.EventInvoicePaid, invoice).CreatedAt(now)
	req := ev.Request("http://localhost/api/payments/stripe/webhook", "whsec_test", now)
	fmt.Println(req.Method, req.URL.Path, req.Header.Get("Stripe-Signature") != "")
	// Output:
	// POST /api/payments/stripe/webhook true
}
