package stripegw

import (
	"errors"
	"fmt"

	"github.com/renewkit/renewkit/gateways/internal/hookhttp"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrInvalidConfig wraps every problem Config.Validate reports.
	ErrInvalidConfig = errors.New("stripegw: invalid configuration")
	// ErrMissingSignature: the request has no Stripe-Signature header.
	ErrMissingSignature = errors.New("stripegw: missing Stripe-Signature header")
	// ErrInvalidSignatureHeader: the Stripe-Signature header cannot be parsed (no t=, a bad
	// timestamp, no v1 signature).
	ErrInvalidSignatureHeader = errors.New("stripegw: malformed Stripe-Signature header")
	// ErrSignatureMismatch: no v1 signature in the header matches the body and the webhook
	// secret (a tampered body or the wrong secret).
	ErrSignatureMismatch = errors.New("stripegw: signature does not match the body")
	// ErrTimestampOutsideTolerance: the signed timestamp is further from the clock than the
	// configured tolerance (a replayed or delayed delivery).
	ErrTimestampOutsideTolerance = errors.New("stripegw: signature timestamp outside tolerance")
	// ErrMalformedEvent: the signed body is not a Stripe event renewkit can read.
	ErrMalformedEvent = errors.New("stripegw: malformed event")
	// ErrGatewayUnavailable is wrapped by APIError when a retry can help (network error,
	// 429, 5xx, 409 lock contention).
	ErrGatewayUnavailable = errors.New("stripegw: Stripe API unavailable")
	// ErrGatewayRejected is wrapped by APIError when Stripe refused the request and the same
	// request will fail again (4xx other than 409 and 429).
	ErrGatewayRejected = errors.New("stripegw: Stripe API rejected the request")
	// ErrStateMismatch: the API disagrees with a signed event about a fact that only moves
	// one way (an invoice.paid whose invoice the API reports unpaid). Retried later.
	ErrStateMismatch = errors.New("stripegw: Stripe API disagrees with the event")
)

// APIError is a failed Stripe API call. It carries the HTTP status (0 for a network
// error), Stripe's error code and request id, and whether retrying can help. It wraps
// ErrGatewayUnavailable or ErrGatewayRejected, and the SDK's error.
type APIError struct {
	// Op names the call ("retrieve subscription").
	Op string
	// ObjectID is the Stripe id asked about.
	ObjectID string
	// StatusCode is the HTTP status of the answer, 0 when none arrived.
	StatusCode int
	// Code is Stripe's error code ("resource_missing"), when it sent one.
	Code string
	// RequestID is Stripe's request id, for support tickets.
	RequestID string
	// Retryable reports whether the same call may succeed later.
	Retryable bool
	// Err is the underlying error (a *stripe.Error or a transport error).
	Err error
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("stripegw: %s %s: ", e.Op, e.ObjectID)
	if e.StatusCode == 0 {
		s += "no answer"
	} else {
		s += fmt.Sprintf("HTTP %d", e.StatusCode)
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
	return s
}

// Unwrap exposes the retryability sentinel and the underlying error.
func (e *APIError) Unwrap() []error {
	if e.Retryable {
		return []error{ErrGatewayUnavailable, hookhttp.ErrUnavailable, e.Err}
	}
	return []error{ErrGatewayRejected, e.Err}
}
