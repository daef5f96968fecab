package mercadopagogw

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/internal/hookhttp"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrInvalidConfig: Config.Validate found a problem.
	ErrInvalidConfig = errors.New("mercadopagogw: invalid configuration")
	// ErrMissingSignature: the request has no x-signature header.
	ErrMissingSignature = errors.New("mercadopagogw: missing x-signature header")
	// ErrMalformedSignature: the x-signature header is not "ts=<ts>,v1=<hex>".
	ErrMalformedSignature = errors.New("mercadopagogw: malformed x-signature header")
	// ErrInvalidSignature: no v1 hash matches the manifest signed with the webhook secret.
	ErrInvalidSignature = errors.New("mercadopagogw: signature does not match")
	// ErrStaleSignature: the signature's ts is further from the clock than Config.Tolerance.
	ErrStaleSignature = errors.New("mercadopagogw: signature timestamp outside tolerance")
	// ErrMalformedNotification: the body or query string is not a Mercado Pago notification.
	ErrMalformedNotification = errors.New("mercadopagogw: malformed notification")
	// ErrLegacyIPNDisabled: an unsigned IPN (?topic=&id=) arrived and Config.AcceptLegacyIPN
	// is off.
	ErrLegacyIPNDisabled = errors.New("mercadopagogw: legacy IPN notifications are not accepted")
	// ErrAPI is wrapped by every *APIError.
	ErrAPI = errors.New("mercadopagogw: api request failed")
)

// APIError is a failed call to the Mercado Pago API. It wraps ErrAPI, and billing.ErrNotFound
// for a 404 (a webhook answers 503 so Mercado Pago retries once the resource is visible).
type APIError struct {
	// Op is what was asked: "get payment", "get preapproval".
	Op string
	// ID of the resource asked for.
	ID string
	// StatusCode is the HTTP status Mercado Pago answered; 0 when no answer arrived
	// (transport error, timeout).
	StatusCode int
	// Retryable: a later attempt may succeed (no answer, 408, 429, 5xx).
	Retryable bool
	// Err is the transport error when StatusCode is 0.
	Err error
}

func (e *APIError) Error() string {
	if e.StatusCode == 0 {
		return fmt.Sprintf("mercadopagogw: %s %s: %v", e.Op, e.ID, e.Err)
	}
	return fmt.Sprintf("mercadopagogw: %s %s: HTTP %d %s", e.Op, e.ID, e.StatusCode, http.StatusText(e.StatusCode))
}

// Unwrap exposes ErrAPI, billing.ErrNotFound for a 404, and the transport error.
func (e *APIError) Unwrap() []error {
	errs := []error{ErrAPI}
	if e.StatusCode == http.StatusNotFound {
		errs = append(errs, billing.ErrNotFound)
	}
	if e.Retryable {
		errs = append(errs, hookhttp.ErrUnavailable)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

func retryableStatus(code int) bool {
	return code == 0 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}
