package mercadopagogwtest_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/mercadopagogw"
	"github.com/renewkit/renewkit/gateways/mercadopagogw/mercadopagogwtest"
	"github.com/renewkit/renewkit/store/memstore"
)

// A host's test posts a notification signed with its webhook secret to its Mercado Pago
// handler: it is verified and accepted into the inbox. Signed with another secret, the same
// notification is refused before its body is read.
func ExampleNewRequest() {
	svc, err := billing.NewService(memstore.New(), billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }),
		billing.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	h, err := mercadopagogw.NewWebhookHandler(svc.Processor(), mercadopagogw.Config{
		AccessToken: "APP_USR-host-test", WebhookSecret: "host-secret"})
	if err != nil {
		panic(err)
	}

	body := []byte(`{"id":7,"type":"payment","action":"payment.created","data":{"id":"1312345678"}}`)
	for _, secret := range []string{"host-secret", "another-secret"} {
		req := mercadopagogwtest.NewRequest("http://127.0.0.1/webhook", secret, mercadopagogw.TypePayment,
			"1312345678", "req-"+secret, time.Now(), body)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(secret, rec.Code)
	}
	// Output:
	// host-secret 200
	// another-secret 400
}
