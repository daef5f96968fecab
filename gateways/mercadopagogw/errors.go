package mercadopagogw

import (
	"errors"
	"net/http"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways"
)

// Sentinel errors, matched with errors.Is. Signature failures wrap the shared
// gateways.ErrMissingSignature, ErrMalformedSignature, ErrSignatureMismatch and
// ErrStaleSignature; API failures are *gateways.APIError.
var (
	// ErrInvalidConfig: Config.Validate found a problem.
	ErrInvalidConfig = errors.New("mercadopagogw: invalid configuration")
	// ErrMalformedNotification: the body or query string is not a Mercado Pago notification.
	ErrMalformedNotification = errors.New("mercadopagogw: malformed notification")
	// ErrLegacyIPNDisabled: an unsigned IPN (?topic=&id=) arrived and Config.AcceptLegacyIPN
	// is off.
	ErrLegacyIPNDisabled = errors.New("mercadopagogw: legacy IPN notifications are not accepted")
)

// Names of the shared vocabulary this package used to declare itself.
var (
	// Deprecated: use gateways.ErrMissingSignature.
	ErrMissingSignature = gateways.ErrMissingSignature
	// Deprecated: use gateways.ErrMalformedSignature.
	ErrMalformedSignature = gateways.ErrMalformedSignature
	// Deprecated: use gateways.ErrSignatureMismatch.
	ErrInvalidSignature = gateways.ErrSignatureMismatch
	// Deprecated: use gateways.ErrStaleSignature.
	ErrStaleSignature = gateways.ErrStaleSignature
	// Deprecated: use gateways.ErrAPI.
	ErrAPI = gateways.ErrAPI
)

// APIError is a failed call to the Mercado Pago API.
//
// Deprecated: use gateways.APIError.
type APIError = gateways.APIError

// apiErr builds the *gateways.APIError of a call. A 404 also wraps billing.ErrNotFound:
// right after its notification a payment may not be visible at the API yet, so the inbox
// parks the event and retries it on its backoff.
func apiErr(op, id string, status int, err error) *gateways.APIError {
	if status == http.StatusNotFound && err == nil {
		err = billing.ErrNotFound
	}
	return &gateways.APIError{Gateway: billing.GatewayMercadoPago, Op: op, ID: id, StatusCode: status,
		Retryable: gateways.RetryableStatus(status), Err: err}
}
