package paypalgw

import (
	"errors"
	"fmt"

	"github.com/renewkit/renewkit/gateways/internal/hookhttp"
)

// Sentinel errors, matched with errors.Is. Every verification failure wraps ErrSignature; the
// webhook handler answers those with 400 and stores nothing.
var (
	// ErrInvalidConfig wraps every problem Config.Validate, NewWebhookHandler and
	// NewRenewalLookup report.
	ErrInvalidConfig = errors.New("paypalgw: invalid configuration")
	// ErrSignature: the delivery is not proven to come from PayPal. The more specific
	// sentinels below are wrapped together with it.
	ErrSignature = errors.New("paypalgw: webhook signature verification failed")
	// ErrMissingHeader: a PAYPAL-* transmission header is absent or empty.
	ErrMissingHeader = errors.New("paypalgw: missing transmission header")
	// ErrBadHeader: a transmission header is malformed (time, signature encoding, lengths).
	ErrBadHeader = errors.New("paypalgw: malformed transmission header")
	// ErrStaleTransmission: PAYPAL-TRANSMISSION-TIME is outside the tolerance of the clock.
	ErrStaleTransmission = errors.New("paypalgw: transmission time outside tolerance")
	// ErrCertURL: PAYPAL-CERT-URL is not https on an allowlisted PayPal host. No request is
	// made to it.
	ErrCertURL = errors.New("paypalgw: certificate URL not allowed")
	// ErrCertificate: the signing certificate could not be used: not PEM, not RSA, chain not
	// trusted, expired or not yet valid at the clock's time.
	ErrCertificate = errors.New("paypalgw: signing certificate rejected")
	// ErrUnsupportedAlgorithm: PAYPAL-AUTH-ALGO is not SHA256withRSA.
	ErrUnsupportedAlgorithm = errors.New("paypalgw: unsupported signature algorithm")
	// ErrMalformedEvent: the verified body is not a PayPal event renewkit can read.
	ErrMalformedEvent = errors.New("paypalgw: malformed event")
	// ErrInvalidAmount: a decimal amount string is not an exact amount in the currency's
	// minor units.
	ErrInvalidAmount = errors.New("paypalgw: invalid amount")
	// ErrInvalidSubscriptionID: a subscription id is empty or has characters PayPal never
	// uses (it is put in an API path).
	ErrInvalidSubscriptionID = errors.New("paypalgw: invalid subscription id")
	// ErrSubscriptionNotFound: the PayPal API does not know the subscription.
	ErrSubscriptionNotFound = errors.New("paypalgw: subscription not found at PayPal")
	// ErrSaleNotFound: the PayPal API does not know the sale.
	ErrSaleNotFound = errors.New("paypalgw: sale not found at PayPal")
	// ErrEarlierEventPending: an event that ends a subscription arrived before charges the
	// gateway says happened earlier; it is answered with a retryable status.
	ErrEarlierEventPending = errors.New("paypalgw: earlier events for this subscription are still pending")
)

// APIError is a failed call to the PayPal REST API.
type APIError struct {
	// Op names the call: "get subscription", "verify webhook signature", "fetch certificate".
	Op string
	// StatusCode is the HTTP status, 0 when no response arrived.
	StatusCode int
	// Name and DebugID come from PayPal's error body when there is one.
	Name    string
	DebugID string
	// Retryable: a later attempt may succeed (no response, 408, 429, 5xx).
	Retryable bool
	Err       error
}

func (e *APIError) Error() string {
	msg := "paypalgw: " + e.Op + " failed"
	if e.StatusCode != 0 {
		msg += fmt.Sprintf(": HTTP %d", e.StatusCode)
	}
	if e.Name != "" {
		msg += " " + e.Name
	}
	if e.DebugID != "" {
		msg += " (debug_id " + e.DebugID + ")"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap exposes the underlying error and, when Retryable, the marker that makes the
// webhook answer 503.
func (e *APIError) Unwrap() []error {
	var errs []error
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	if e.Retryable {
		errs = append(errs, hookhttp.ErrUnavailable)
	}
	return errs
}

func retryableStatus(code int) bool {
	return code == 0 || code == 408 || code == 429 || code >= 500
}
