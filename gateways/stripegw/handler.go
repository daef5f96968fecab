package stripegw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways"
	"github.com/renewkit/renewkit/gateways/internal/hookhttp"
)

// SignatureHeader is the header Stripe signs deliveries in.
const SignatureHeader = "Stripe-Signature"

type webhookHandler struct {
	core      gateways.Core
	secret    string
	tolerance time.Duration
	maxBody   int64
	clock     billing.Clock
	log       *slog.Logger
	api       *api // nil without a SecretKey: the signed body is trusted
	prices    map[string]string
	inline    bool
}

// NewWebhookHandler returns the handler for Stripe's webhook endpoint, applying events
// through core (svc.Processor() of a billing.Service). Mount it at the URL registered in the
// Stripe dashboard (ExampleNewWebhookHandler).
//
// cfg.WebhookSecret is required. With cfg.SecretKey the handler re-fetches the invoice,
// subscription or checkout session an event names and acts on the API's answer.
func NewWebhookHandler(core gateways.Core, cfg Config) (http.Handler, error) {
	var errs []error
	if core == nil {
		errs = append(errs, fmt.Errorf("%w: missing billing service: pass svc.Processor() of billing.NewService(store, notifier, cfg)", ErrInvalidConfig))
	}
	if cfg.WebhookSecret == "" {
		errs = append(errs, fmt.Errorf("%w: WebhookSecret is empty: copy the endpoint's signing secret (whsec_...) from the Stripe dashboard or `stripe listen`", ErrInvalidConfig))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	h := &webhookHandler{
		core: core, secret: cfg.WebhookSecret, prices: cfg.Prices,
		tolerance: cfg.Tolerance, maxBody: cfg.MaxBodyBytes, inline: cfg.ProcessInline,
	}
	h.log, h.clock = hookhttp.Defaults(core, cfg.Logger, cfg.Clock)
	if cfg.SecretKey != "" {
		h.api = newAPI(cfg, h.log)
	}
	if err := core.RegisterWebhookProcessor(billing.GatewayStripe, h.processStored); err != nil {
		return nil, err
	}
	return h, nil
}

// processStored applies an event the inbox worker claimed: its payload is the verified body.
func (h *webhookHandler) processStored(ctx context.Context, stored billing.WebhookEvent) (bool, error) {
	ev, err := decodeEvent(stored.Payload)
	if err != nil {
		return false, fmt.Errorf("%w: stored stripe event %s: %w", billing.ErrInvalidInput, stored.EventID, err)
	}
	return h.apply(ctx, ev)
}

func (h *webhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, ok := hookhttp.ReadJSONBody(w, r, h.maxBody)
	if !ok {
		return
	}
	ctx := r.Context()
	if err := verifySignature(body, r.Header.Get(SignatureHeader), h.secret, h.clock.Now(), h.tolerance); err != nil {
		// The header and body are not logged: they carry the signature.
		h.log.WarnContext(ctx, "stripe webhook rejected", "reason", err.Error(), "remote_addr", r.RemoteAddr)
		hookhttp.Error(w, http.StatusBadRequest, signatureReason(err))
		return
	}
	ev, process, err := h.decode(body)
	if err != nil {
		h.log.WarnContext(ctx, "stripe webhook rejected", "reason", err.Error())
		hookhttp.Error(w, http.StatusBadRequest, ErrMalformedEvent.Error())
		return
	}
	hookhttp.Deliver(w, r, h.log, h.core, ev, process)
}

// decode reads a verified body into the inbox event and, inline, the processing of its
// decoded object. Accepting, it reads only the envelope (process is nil): the worker
// decodes the object when it applies the stored event.
func (h *webhookHandler) decode(body []byte) (billing.WebhookEvent, func(context.Context) (bool, error), error) {
	env, err := decodeEnvelope(body)
	if err != nil {
		return billing.WebhookEvent{}, nil, err
	}
	stored := billing.WebhookEvent{Gateway: billing.GatewayStripe, EventID: env.ID, Type: env.Type,
		ObjectKey: env.ObjectKey, OccurredAt: env.Created, Payload: body}
	if !h.inline {
		return stored, nil, nil
	}
	ev, err := decodeObject(env)
	if err != nil {
		return billing.WebhookEvent{}, nil, err
	}
	return stored, func(ctx context.Context) (bool, error) { return h.apply(ctx, ev) }, nil
}

// signatureReason is the public answer for a rejected signature; it names the check that
// failed and nothing from the request.
func signatureReason(err error) string {
	switch {
	case errors.Is(err, gateways.ErrMissingSignature):
		return "stripegw: missing " + SignatureHeader + " header"
	case errors.Is(err, gateways.ErrMalformedSignature):
		return "stripegw: malformed " + SignatureHeader + " header"
	case errors.Is(err, gateways.ErrStaleSignature):
		return "stripegw: signature timestamp outside tolerance"
	}
	return "stripegw: signature does not match the body"
}
