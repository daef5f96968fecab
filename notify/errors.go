package notify

import "errors"

// Sentinel errors. They are wrapped with %w; match them with errors.Is.
var (
	// ErrInvalidConfig: a Config or option is incomplete or malformed. The message says
	// which field and how to fix it.
	ErrInvalidConfig = errors.New("notify: invalid config")
	// ErrUnknownKind: no template exists for the notification kind. Rendering errors wrap
	// billing.ErrUndeliverable too, since retrying cannot help.
	ErrUnknownKind = errors.New("notify: unknown notification kind")
	// ErrTemplate: a template failed to parse or to execute (for example it references a
	// field the view does not have).
	ErrTemplate = errors.New("notify: template error")
	// ErrInvalidSignature: a webhook's signature header is missing, malformed or does not
	// match the body.
	ErrInvalidSignature = errors.New("notify: invalid webhook signature")
	// ErrSignatureExpired: a webhook's timestamp is outside the accepted tolerance
	// (a replay, or clocks far apart).
	ErrSignatureExpired = errors.New("notify: webhook signature timestamp outside tolerance")
	// ErrWebhookStatus: the webhook receiver answered with a non-2xx status. The error is a
	// *WebhookError carrying the status.
	ErrWebhookStatus = errors.New("notify: webhook receiver rejected the notification")
)
