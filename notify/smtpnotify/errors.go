package smtpnotify

import (
	"errors"
	"fmt"

	"github.com/renewkit/renewkit/billing"
)

// Sentinel errors.
var (
	// ErrInvalidConfig: Config.Validate found a problem; the message says how to fix it.
	ErrInvalidConfig = errors.New("smtpnotify: invalid config")
	// ErrClosed: Notify was called after Shutdown or Close.
	ErrClosed = errors.New("smtpnotify: notifier is shut down")
)

// SendError is a failed delivery. Permanent errors (a 5xx reply to MAIL, RCPT or DATA, or
// an address that cannot be used) wrap billing.ErrUndeliverable: jobs stop retrying that
// recipient. Transient ones (4xx, dropped connections, timeouts) were already retried
// with backoff inside Notify, Attempts times.
type SendError struct {
	// Op is where it failed: "dial" (connect, TLS, EHLO, AUTH), "send" (MAIL, RCPT,
	// DATA) or "message" (building the message).
	Op string
	// Code is the SMTP reply code, 0 when there was no reply (network error, timeout).
	Code int
	// EnhancedCode is the RFC 3463 status ("5.1.1") when the server sent one.
	EnhancedCode string
	// Permanent reports a failure that retrying cannot fix.
	Permanent bool
	// Attempts is how many times delivery was tried.
	Attempts int
	// Err is the underlying error.
	Err error
}

func (e *SendError) Error() string {
	kind := "transient"
	if e.Permanent {
		kind = "permanent"
	}
	code := ""
	if e.Code != 0 {
		code = fmt.Sprintf(" (SMTP %d)", e.Code)
	}
	return fmt.Sprintf("smtpnotify: %s failed%s, %s, after %d attempt(s): %v", e.Op, code, kind, e.Attempts, e.Err)
}

// Unwrap returns the underlying error and, for permanent failures, billing.ErrUndeliverable.
func (e *SendError) Unwrap() []error {
	if e.Permanent {
		return []error{e.Err, billing.ErrUndeliverable}
	}
	return []error{e.Err}
}
