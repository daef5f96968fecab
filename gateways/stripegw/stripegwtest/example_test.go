package stripegwtest_test

import (
	"fmt"
	"time"

	"github.com/renewkit/renewkit/gateways/stripegw"
	"github.com/renewkit/renewkit/gateways/stripegw/stripegwtest"
)

// ExampleNewEvent builds a signed invoice.paid delivery for a host's test of its
// webhook endpoint.
func ExampleNewEvent() {
	now := time.Date(2030, time.January, 16, 9, 0, 0, 0, time.UTC)
	invoice := map[string]any{"id": "in_1", "object": "invoice", "status": "paid", "amount_paid": 2990, "currency": "brl"}
	ev := stripegwtest.NewEvent("evt_1", stripegw.EventInvoicePaid, invoice).CreatedAt(now)
	req := ev.Request("http://localhost/api/payments/stripe/webhook", "whsec_test", now)
	fmt.Println(req.Method, req.URL.Path, req.Header.Get("Stripe-Signature") != "")
	// Output:
	// POST /api/payments/stripe/webhook true
}
