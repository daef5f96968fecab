package stripegw_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/stripegw"
	"github.com/renewkit/renewkit/gateways/stripegw/stripegwtest"
	"github.com/renewkit/renewkit/store/memstore"
)

// Mount the Stripe webhook handler on a billing core, and post it an event signed the way
// Stripe signs one: it is stored in the inbox and acknowledged at once; a
// billing.InboxWorker applies it.
func ExampleNewWebhookHandler() {
	svc, err := billing.NewService(memstore.New(), billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }),
		billing.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	h, err := stripegw.NewWebhookHandler(svc.Processor(), stripegw.Config{WebhookSecret: "whsec_example"})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /api/payments/stripe/webhook", h)

	ev := stripegwtest.NewEvent("evt_1", "customer.created", map[string]any{"id": "cus_1", "object": "customer"})
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, ev.Request("/api/payments/stripe/webhook", "whsec_example", time.Now()))
	fmt.Print(rec.Code, " ", rec.Body.String())
	// Output: 200 {"event_id":"evt_1","status":"accepted"}
}
