package paypalgw

import (
	"errors"
	"fmt"

	"github.com/renewkit/renewkit/gateways"
)

// Sentinel errors, matched with errors.Is. Every verification failure wraps ErrSignature and
// one of the shared gateways.ErrMissingSignature, ErrMalformedSignature,
// ErrSignatureMismatch (an untrusted certificate or URL included) and ErrStaleSignature;
// the webhook handler answers those with 400 and stores nothing. API failures are
// *gateways.APIError.
var (
	// ErrInvalidConfig wraps every problem Config.Validate, NewWebhookHandler and
	// NewRenewalLookup report.
	ErrInvalidConfig = errors.New("paypalgw: invalid configuration")
	// ErrSignature: the delivery is not proven to come from PayPal. A shared signature
	// sentinel, and ErrCertURL, ErrCertificate or ErrUnsupportedAlgorithm where they apply,
	// are wrapped together with it.
	ErrSignature = errors.New("paypalgw: webhook signature verification failed")
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

// Names of the shared vocabulary this package used to declare itself.
var (
	// Deprecated: use gateways.ErrMissingSignature.
	ErrMissingHeader = gateways.ErrMissingSignature
	// Deprecated: use gateways.ErrMalformedSignature.
	ErrBadHeader = gateways.ErrMalformedSignature
	// Deprecated: use gateways.ErrStaleSignature.
	ErrStaleTransmission = gateways.ErrStaleSignature
)

// APIError is a failed call to the PayPal REST API.
//
// Deprecated: use gateways.APIError (Name is now Code, DebugID is now RequestID).
type APIError = gateways.APIError

// sigError is a verification failure: its text is the specific sentinel's and the detail,
// and it wraps ErrSignature, the shared sentinel and the specific one.
type sigError struct {
	msg  string
	errs []error
}

func (e *sigError) Error() string   { return e.msg }
func (e *sigError) Unwrap() []error { return e.errs }

// sigErr builds a verification failure of kind specific (a shared gateways sentinel, or
// ErrCertURL, ErrCertificate, ErrUnsupportedAlgorithm) with a detail.
func sigErr(specific error, format string, args ...any) error {
	errs := []error{ErrSignature}
	switch specific {
	case ErrCertURL, ErrCertificate:
		errs = append(errs, gateways.ErrSignatureMismatch)
	case ErrUnsupportedAlgorithm:
		errs = append(errs, gateways.ErrMalformedSignature)
	}
	errs = append(errs, specific)
	return &sigError{msg: specific.Error() + ": " + fmt.Sprintf(format, args...), errs: errs}
}
