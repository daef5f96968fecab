package stripegw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/internal/hookhttp"
)

// SignatureHeader is the header Stripe signs deliveries in.
const SignatureHeader = "Stripe-Signature"

type webhookHandler struct {
	svc       *billing.Service
	pp        *billing.PaymentProcessor
	store     billing.Store
	secret    string
	tolerance time.Duration
	maxBody   int64
	clock     billing.Clock
	log       *slog.Logger
	api       *api // nil without a SecretKey: the signed body is trusted
	prices    map[string]string
}

// NewWebhookHandler returns the handler for Stripe's webhook endpoint. Mount it at the URL
// registered in the Stripe dashboard:
//
//	mux.Handle("POST /api/payments/stripe/webhook", h)
//
// cfg.WebhookSecret is required. With cfg.SecretKey the handler re-fetches the invoice,
// subscription or checkout session an event names and acts on the API's answer.
func NewWebhookHandler(svc *billing.Service, cfg Config, opts ...Option) (http.Handler, error) {
	var errs []error
	if svc == nil {
		errs = append(errs, fmt.Errorf("%w: missing billing service: pass billing.NewService(store, notifier, cfg)", ErrInvalidConfig))
	}
	if cfg.WebhookSecret == "" {
		errs = append(errs, fmt.Errorf("%w: WebhookSecret is empty: copy the endpoint's signing secret (whsec_...) from the Stripe dashboard or `stripe listen`", ErrInvalidConfig))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	o, err := hookhttp.ApplyOptions(svc, ErrInvalidConfig, opts)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	h := &webhookHandler{
		svc: svc, pp: svc.Processor(), store: svc.Store(), secret: cfg.WebhookSecret, prices: cfg.Prices,
		tolerance: cfg.Tolerance, maxBody: cfg.MaxBodyBytes, clock: o.Clock, log: o.Log,
	}
	if cfg.SecretKey != "" {
		h.api = newAPI(cfg, h.log)
	}
	return h, nil
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
	ev, err := decodeEvent(body)
	if err != nil {
		h.log.WarnContext(ctx, "stripe webhook rejected", "reason", err.Error())
		hookhttp.Error(w, http.StatusBadRequest, ErrMalformedEvent.Error())
		return
	}
	outcome, err := h.svc.HandleWebhookEvent(ctx, billing.WebhookEvent{
		Gateway: billing.GatewayStripe, EventID: ev.ID, Type: ev.Type,
	}, func(ctx context.Context) (bool, error) { return h.apply(ctx, ev) })
	switch outcome {
	case billing.OutcomeIgnored:
		h.log.DebugContext(ctx, "stripe event ignored", "event_id", ev.ID, "type", ev.Type)
	case billing.OutcomeProcessed:
		h.log.InfoContext(ctx, "stripe event processed", "event_id", ev.ID, "type", ev.Type)
	}
	hookhttp.Respond(w, r, h.log, billing.GatewayStripe, ev.ID, outcome, err)
}

// signatureReason is the public answer for a rejected signature; it names the check that
// failed and nothing from the request.
func signatureReason(err error) string {
	for _, e := range []error{ErrMissingSignature, ErrInvalidSignatureHeader, ErrTimestampOutsideTolerance, ErrSignatureMismatch} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return ErrSignatureMismatch.Error()
}
