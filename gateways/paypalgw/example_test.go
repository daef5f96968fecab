package paypalgw_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/paypalgw"
	"github.com/renewkit/renewkit/gateways/paypalgw/paypalgwtest"
	"github.com/renewkit/renewkit/store/memstore"
)

// Mount the PayPal webhook handler on a billing core, and post it an event signed with a
// test certificate (paypalgwtest.NewSigner) the way PayPal signs one: it is verified,
// stored in the inbox and acknowledged at once. A host sets ClientID and ClientSecret so
// that a billing.InboxWorker reads the subscription from the PayPal API and applies it.
func ExampleNewWebhookHandler() {
	now := time.Now()
	signer, err := paypalgwtest.NewSigner("WH-LISTENER-1", paypalgwtest.SignerOptions{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)})
	if err != nil {
		panic(err)
	}
	defer signer.Close()
	svc, err := billing.NewService(memstore.New(), billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }),
		billing.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	cfg := signer.Config() // in production: paypalgw.Config{WebhookID: ..., ClientID: ..., ClientSecret: ...}
	h, err := paypalgw.NewWebhookHandler(svc.Processor(), cfg)
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /api/payments/paypal/webhook", h)

	body := []byte(`{"id":"WH-1","event_type":"BILLING.PLAN.CREATED","create_time":"2025-01-01T00:00:00Z","resource_type":"plan","resource":{"id":"P-1"}}`)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, signer.Request("/api/payments/paypal/webhook", body, now))
	fmt.Print(rec.Code, " ", rec.Body.String())
	// Output: 200 {"event_id":"WH-1","status":"accepted"}
}
