package mercadopagogw_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/mercadopagogw"
	"github.com/renewkit/renewkit/gateways/mercadopagogw/mercadopagogwtest"
	"github.com/renewkit/renewkit/store/memstore"
)

// Mount the Mercado Pago webhook handler on a billing core, and post it a notification
// signed the way Mercado Pago signs one: it is stored in the inbox and acknowledged at
// once; a billing.InboxWorker reads the payment from the API and applies it.
func ExampleNewWebhookHandler() {
	svc, err := billing.NewService(memstore.New(), billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }),
		billing.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	h, err := mercadopagogw.NewWebhookHandler(svc.Processor(), mercadopagogw.Config{
		AccessToken: "APP_USR-example", WebhookSecret: "example-secret"})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /api/payments/mercadopago/webhook", h)

	body := `{"id":1,"type":"payment","action":"payment.created","data":{"id":"1312345678"}}`
	req := mercadopagogwtest.NewRequest("http://127.0.0.1/api/payments/mercadopago/webhook", "example-secret",
		"payment", "1312345678", "req-1", time.Now(), []byte(body))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	fmt.Println(rec.Code, strings.Contains(rec.Body.String(), `"status":"accepted"`))
	// Output: 200 true
}
