package paypalgwtest_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/paypalgw"
	"github.com/renewkit/renewkit/gateways/paypalgw/paypalgwtest"
	"github.com/renewkit/renewkit/store/memstore"
)

// A host's test signs a delivery with a Signer and posts it to its PayPal webhook handler,
// configured with the Signer's Config: the handler verifies the signature offline,
// fetching the test certificate from the Signer's server once, and accepts the event.
func ExampleNewSigner() {
	signer, err := paypalgwtest.NewSigner("WH-HOST-TEST", paypalgwtest.SignerOptions{})
	if err != nil {
		panic(err)
	}
	defer signer.Close()
	svc, err := billing.NewService(memstore.New(), billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }),
		billing.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	h, err := paypalgw.NewWebhookHandler(svc.Processor(), signer.Config())
	if err != nil {
		panic(err)
	}

	body := []byte(`{"id":"WH-7","event_type":"BILLING.PLAN.CREATED","create_time":"2025-01-01T00:00:00Z","resource_type":"plan","resource":{"id":"P-1"}}`)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, signer.Request("/webhook", body, time.Now()))
	fmt.Print(rec.Code, " ", rec.Body.String())
	fmt.Println("certificate fetches:", signer.CertRequests())

	// A body changed after signing is refused: the forged body goes with the original's
	// signature headers.
	forged := signer.Request("/webhook", bytes.Replace(body, []byte("P-1"), []byte("P-2"), 1), time.Now())
	for k, v := range signer.Sign(body, time.Now()) {
		forged.Header[k] = v
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, forged)
	fmt.Println(rec.Code)
	// Output:
	// 200 {"event_id":"WH-7","status":"accepted"}
	// certificate fetches: 1
	// 400
}
