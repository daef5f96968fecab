package stripegwtest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/renewkit/renewkit/gateways/stripegw"
)

// Event is a Stripe event for a test or benchmark to deliver to a stripegw handler
// (ExampleNewEvent). The object is any JSON-marshalable value (a map, a stripe-go type, a
// struct).
type Event struct {
	ID         string
	Type       string
	Created    time.Time
	APIVersion string
	Object     any
}

// NewEvent returns an event of type typ carrying object, created now, in the API version
// stripe-go v76 speaks.
func NewEvent(id, typ string, object any) *Event {
	return &Event{ID: id, Type: typ, Created: time.Now(), APIVersion: stripe.APIVersion, Object: object}
}

// CreatedAt sets the event's created time (Stripe's clock: what ordering compares).
func (e *Event) CreatedAt(t time.Time) *Event { e.Created = t; return e }

// WithAPIVersion sets api_version.
func (e *Event) WithAPIVersion(v string) *Event { e.APIVersion = v; return e }

// Payload returns the event's JSON body. It panics if Object cannot be marshalled, which is
// a bug in the test.
func (e *Event) Payload() []byte {
	b, err := json.Marshal(map[string]any{
		"id": e.ID, "object": "event", "type": e.Type, "created": e.Created.Unix(), "api_version": e.APIVersion,
		"livemode": false, "pending_webhooks": 1, "request": map[string]any{"id": nil, "idempotency_key": nil},
		"data": map[string]any{"object": e.Object},
	})
	if err != nil {
		panic("stripegwtest: Event object cannot be marshalled: " + err.Error())
	}
	return b
}

// Sign returns the payload and its Stripe-Signature header, signed with secret at signedAt.
func (e *Event) Sign(secret string, signedAt time.Time) (payload []byte, header string) {
	payload = e.Payload()
	return payload, stripegw.SignPayload(secret, payload, signedAt)
}

// Request returns a signed POST of the event to url.
func (e *Event) Request(url, secret string, signedAt time.Time) *http.Request {
	payload, header := e.Sign(secret, signedAt)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		panic("stripegwtest: Event.Request: " + err.Error())
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(stripegw.SignatureHeader, header)
	return req
}
