package hookhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways"
)

// MaxBody is the largest webhook body accepted (1 MiB).
const MaxBody = 1 << 20

// ReadBody reads the whole body up to limit bytes. On failure it has already answered (405
// for a method other than POST, 413 for a body over the limit, 400 otherwise) and returns
// ok=false.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		Error(w, http.StatusMethodNotAllowed, "method not allowed: use POST")
		return nil, false
	}
	if limit <= 0 {
		limit = MaxBody
	}
	// One buffer sized for the declared length (ReadFrom wants MinRead spare bytes to
	// find the end), grown only when the length is unknown or wrong.
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(min(r.ContentLength, limit)) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	body := buf.Bytes()
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			Error(w, http.StatusRequestEntityTooLarge, "body too large")
			return nil, false
		}
		Error(w, http.StatusBadRequest, "could not read body")
		return nil, false
	}
	return body, true
}

// ReadJSONBody is ReadBody for a webhook that must be JSON: after the method check it
// answers 415 (with a JSON error, before the body is read) unless the Content-Type is
// application/json. Parameters such as charset are allowed. Gateways send their webhooks as
// JSON; anything else is not a delivery, whatever its signature, and nothing is stored.
func ReadJSONBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	if r.Method != http.MethodPost {
		return ReadBody(w, r, limit)
	}
	if !IsJSON(r.Header.Get("Content-Type")) {
		w.Header().Set("Accept", "application/json")
		Error(w, http.StatusUnsupportedMediaType, "unsupported content type: webhooks must be sent as application/json")
		return nil, false
	}
	return ReadBody(w, r, limit)
}

// IsJSON reports whether a Content-Type header value names application/json (any case,
// with or without parameters such as charset).
func IsJSON(contentType string) bool {
	if strings.EqualFold(contentType, "application/json") {
		return true // what the gateways send, without parsing
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// JSON writes v with status.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Error writes {"error": msg} with status.
func Error(w http.ResponseWriter, status int, msg string) {
	JSON(w, status, map[string]string{"error": msg})
}

// OutcomeHeader carries the processing outcome (processed, ignored, duplicate, in_progress,
// failed) on every answer to a delivery that got past verification, for logs and metrics.
const OutcomeHeader = "X-Webhook-Outcome"

// Unavailable answers 503 with Retry-After: 60, for a failure a redelivery can get past.
func Unavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "60")
	Error(w, http.StatusServiceUnavailable, msg)
}

// answer is the body of a 2xx answer to a delivery.
type answer struct {
	EventID string `json:"event_id"`
	Status  string `json:"status"`
}

// Respond answers a delivery after billing.Service.HandleWebhookEvent or
// AcceptWebhookEvent: 200 for accepted, processed, ignored and duplicate events; 409 with Retry-After while another delivery processes the
// same event; 400 when the event is bad input a retry cannot fix (billing.Permanent); 503
// when it refers to a record that does not exist yet (a retry can help once the creating
// event arrives) or the gateway's API is unavailable (gateways.ErrUnavailable); 500 for the
// rest.
// The error text goes to the log, not to the gateway.
func Respond(w http.ResponseWriter, r *http.Request, log *slog.Logger, gateway, eventID string, outcome billing.EventOutcome, err error) {
	w.Header().Set(OutcomeHeader, string(outcome))
	if err == nil {
		switch outcome {
		case billing.EventOutcomeInProgress:
			w.Header().Set("Retry-After", "30")
			Error(w, http.StatusConflict, "event is being processed by another delivery")
		default:
			JSON(w, http.StatusOK, answer{EventID: eventID, Status: string(outcome)})
		}
		return
	}
	switch {
	case billing.Permanent(err):
		log.WarnContext(r.Context(), "webhook event rejected", "gateway", gateway, "event_id", eventID, "error", err)
		Error(w, http.StatusBadRequest, "event cannot be applied: "+publicReason(err))
	case errors.Is(err, billing.ErrNotFound), errors.Is(err, billing.ErrConflict):
		log.InfoContext(r.Context(), "webhook event deferred; the gateway retries", "gateway", gateway, "event_id", eventID, "error", err)
		Unavailable(w, "event cannot be applied yet; retry later")
	case errors.Is(err, gateways.ErrUnavailable):
		log.WarnContext(r.Context(), "webhook event deferred: gateway API unavailable; the gateway retries", "gateway", gateway, "event_id", eventID, "error", err)
		Unavailable(w, "gateway API unavailable; retry later")
	default:
		log.ErrorContext(r.Context(), "webhook event failed", "gateway", gateway, "event_id", eventID, "error", err)
		Error(w, http.StatusInternalServerError, "temporary failure; retry later")
	}
}

// Deliver hands a verified event to core and answers the gateway. With a nil process it
// stores ev in the inbox (AcceptWebhookEvent) and answers 200 {"status":"accepted"} (or
// "duplicate" for an event already stored, writing nothing), 500 only when the inbox write
// failed; the inbox worker applies the event with the processor the gateway registered.
// With process (the inline mode), it processes the event in the request
// (HandleWebhookEvent) and answers as Respond does.
func Deliver(w http.ResponseWriter, r *http.Request, log *slog.Logger, core gateways.Core, ev billing.WebhookEvent, process func(context.Context) (bool, error)) {
	var outcome billing.EventOutcome
	var err error
	if process == nil {
		outcome, err = core.AcceptWebhookEvent(r.Context(), ev)
	} else {
		outcome, err = core.HandleWebhookEvent(r.Context(), ev, process)
	}
	Respond(w, r, log, ev.Gateway, ev.EventID, outcome, err)
}

// JSONProblem describes a decoding error without echoing the body: the byte offset of a
// syntax error or the field of a type mismatch.
func JSONProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type", typ.Field)
	}
	return "invalid JSON"
}

// publicReason names the sentinel behind a permanent error without echoing input.
func publicReason(err error) string {
	for _, e := range []error{billing.ErrUnknownPayment, billing.ErrUnknownPlan, billing.ErrInvalidAmount, billing.ErrInvalidTransition, billing.ErrInvalidInput} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "invalid event"
}
