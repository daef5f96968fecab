package mercadopagogwtest

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/renewkit/renewkit/gateways/mercadopagogw"
)

// NewRequest builds a signed webhook POST to target (the handler's URL) carrying body,
// as Mercado Pago delivers it: data.id and type in the query string, x-request-id and
// x-signature headers (mercadopagogw.SignRequest). dataID and eventType are usually body's
// data.id and type. It panics on an unparsable target, which is a bug in the test.
func NewRequest(target, secret, eventType, dataID, requestID string, ts time.Time, body []byte) *http.Request {
	u, err := url.Parse(target)
	if err != nil {
		panic(fmt.Sprintf("mercadopagogwtest: NewRequest: bad target: %v", err))
	}
	q := u.Query()
	q.Set("data.id", dataID)
	if eventType != "" {
		q.Set("type", eventType)
	}
	u.RawQuery = q.Encode()
	r, err := http.NewRequest(http.MethodPost, u.String(), strings.NewReader(string(body)))
	if err != nil {
		panic(fmt.Sprintf("mercadopagogwtest: NewRequest: %v", err))
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(mercadopagogw.HeaderRequestID, requestID)
	r.Header.Set(mercadopagogw.HeaderSignature, mercadopagogw.SignRequest(secret, dataID, requestID, ts))
	return r
}
