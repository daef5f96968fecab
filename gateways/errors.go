package gateways

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors shared by every gateway package. Match them with errors.Is; each gateway
// wraps them with its own detail (which header, which check).
var (
	// ErrMissingSignature: the delivery carries no signature (Stripe-Signature, x-signature,
	// a PAYPAL-* transmission header).
	ErrMissingSignature = errors.New("gateways: missing signature")
	// ErrMalformedSignature: the signature header cannot be parsed.
	ErrMalformedSignature = errors.New("gateways: malformed signature")
	// ErrSignatureMismatch: the signature does not match the body and the configured secret
	// (a tampered body, the wrong secret, an untrusted certificate).
	ErrSignatureMismatch = errors.New("gateways: signature does not match")
	// ErrStaleSignature: the signed time is further from the clock than Config.Tolerance (a
	// replayed or delayed delivery).
	ErrStaleSignature = errors.New("gateways: signature timestamp outside tolerance")

	// ErrAPI is wrapped by every *APIError.
	ErrAPI = errors.New("gateways: gateway API call failed")
	// ErrUnavailable is wrapped by an *APIError whose call may succeed later (no answer,
	// 408, 429, 5xx): a webhook answers it 503 and the inbox retries it on its backoff.
	ErrUnavailable = errors.New("gateways: gateway API unavailable")
	// ErrRejected is wrapped by an *APIError the same call will meet again (4xx other than
	// the retryable ones): a bad key, an unknown object.
	ErrRejected = errors.New("gateways: gateway API rejected the request")
)

// APIError is a failed call to a gateway's API. It wraps ErrAPI, then ErrUnavailable when
// Retryable or ErrRejected when not, then Err. Secrets never appear in it.
type APIError struct {
	// Gateway is billing.GatewayStripe, GatewayMercadoPago or GatewayPayPal.
	Gateway string
	// Op names the call ("get payment", "retrieve subscription").
	Op string
	// ID is the gateway's id of the object asked about, when there is one.
	ID string
	// StatusCode is the HTTP status of the answer, 0 when none arrived.
	StatusCode int
	// Code is the gateway's error code (Stripe's "resource_missing", PayPal's error name),
	// when it sent one.
	Code string
	// RequestID is the gateway's id of the request, for its support (Stripe's Request-Id,
	// PayPal's debug_id), when it sent one.
	RequestID string
	// Retryable reports whether the same call may succeed later.
	Retryable bool
	// Err is the underlying error (the SDK's, a transport error), or nil. Its text is part
	// of Error(), so a gateway package puts an answer's own message here only when it cannot
	// echo a secret (Stripe's "Invalid API Key provided: ..." does: stripegw keeps it
	// reachable through errors.As but out of the text).
	Err error
}

func (e *APIError) Error() string {
	s := e.Gateway + ": " + e.Op
	if e.ID != "" {
		s += " " + e.ID
	}
	if e.StatusCode == 0 {
		s += ": no answer"
	} else {
		s += fmt.Sprintf(": HTTP %d", e.StatusCode)
		if t := http.StatusText(e.StatusCode); t != "" && e.Code == "" {
			s += " " + t
		}
	}
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.RequestID != "" {
		s += " (request " + e.RequestID + ")"
	}
	if e.Retryable {
		s += ", retryable"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap exposes ErrAPI, ErrUnavailable or ErrRejected, and Err.
func (e *APIError) Unwrap() []error {
	errs := []error{ErrAPI, ErrRejected}
	if e.Retryable {
		errs[1] = ErrUnavailable
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// NotFound reports whether err is an *APIError for an object the gateway says does not
// exist (HTTP 404). Each gateway package documents what its handler does with one.
func NotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound
}

// RetryableStatus reports whether a call whose answer had this HTTP status (0: none
// arrived) may succeed later: a timeout (408), a rate limit (429) or a server error (5xx).
// It is what APIError.Retryable is for PayPal's and Mercado Pago's REST APIs; Stripe's
// rules differ (its 409 is a lock timeout), so stripegw keeps its own.
func RetryableStatus(code int) bool {
	return code == 0 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}
