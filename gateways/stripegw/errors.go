package stripegw

import (
	"errors"

	"github.com/renewkit/renewkit/gateways"
)

// Sentinel errors. Match them with errors.Is. Signature failures wrap the shared
// gateways.ErrMissingSignature, ErrMalformedSignature, ErrSignatureMismatch and
// ErrStaleSignature; API failures are *gateways.APIError.
var (
	// ErrInvalidConfig wraps every problem Config.Validate reports.
	ErrInvalidConfig = errors.New("stripegw: invalid configuration")
	// ErrMalformedEvent: the signed body is not a Stripe event renewkit can read.
	ErrMalformedEvent = errors.New("stripegw: malformed event")
	// ErrStateMismatch: the API disagrees with a signed event about a fact that only moves
	// one way (an invoice.paid whose invoice the API reports unpaid). Retried later.
	ErrStateMismatch = errors.New("stripegw: Stripe API disagrees with the event")
)

// Names of the shared vocabulary this package used to declare itself.
var (
	// Deprecated: use gateways.ErrMissingSignature.
	ErrMissingSignature = gateways.ErrMissingSignature
	// Deprecated: use gateways.ErrMalformedSignature.
	ErrInvalidSignatureHeader = gateways.ErrMalformedSignature
	// Deprecated: use gateways.ErrSignatureMismatch.
	ErrSignatureMismatch = gateways.ErrSignatureMismatch
	// Deprecated: use gateways.ErrStaleSignature.
	ErrTimestampOutsideTolerance = gateways.ErrStaleSignature
	// Deprecated: use gateways.ErrUnavailable.
	ErrGatewayUnavailable = gateways.ErrUnavailable
	// Deprecated: use gateways.ErrRejected.
	ErrGatewayRejected = gateways.ErrRejected
)

// APIError is a failed Stripe API call.
//
// Deprecated: use gateways.APIError (ObjectID is now ID).
type APIError = gateways.APIError
