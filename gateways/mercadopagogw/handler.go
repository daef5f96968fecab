package mercadopagogw

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mercadopago/sdk-go/pkg/payment"
	"github.com/mercadopago/sdk-go/pkg/preapproval"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways"
	"github.com/renewkit/renewkit/gateways/internal/hookhttp"
)

const actor = billing.GatewayMercadoPago

type handler struct {
	core   gateways.Core
	cfg    Config
	api    *api
	clock  billing.Clock
	log    *slog.Logger
	inline bool
}

// NewWebhookHandler returns the handler for Mercado Pago notifications. Mount it on the
// notification URL configured in Your integrations (ExampleNewWebhookHandler).
//
// It verifies x-signature before parsing anything, deduplicates by notification id through
// core's webhook inbox (svc.Processor() of a billing.Service), reads the payment or
// preapproval from the API and applies it through core. See the package documentation for
// the mapping.
func NewWebhookHandler(core gateways.Core, cfg Config) (http.Handler, error) {
	var errs []error
	if core == nil {
		errs = append(errs, fmt.Errorf("%w: nil billing core: pass svc.Processor() of your billing.Service (billing.NewService(store, notifier, cfg))", ErrInvalidConfig))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if cfg.WebhookSecret == "" {
		errs = append(errs, fmt.Errorf("%w: WebhookSecret is empty: copy the secret signature from Your integrations > Webhooks", ErrInvalidConfig))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	a, err := newAPI(cfg)
	if err != nil {
		return nil, err
	}
	h := &handler{core: core, cfg: cfg, api: a, inline: cfg.ProcessInline}
	h.log, h.clock = hookhttp.Defaults(core, cfg.Logger, cfg.Clock)
	if err := core.RegisterWebhookProcessor(billing.GatewayMercadoPago, h.processStored); err != nil {
		return nil, err
	}
	return h, nil
}

// storedNotification is the inbox payload of a verified notification: what processing
// reads, the ids from the signed query string.
type storedNotification struct {
	Type   string `json:"type"`
	DataID string `json:"data_id"`
}

// processStored applies a notification the inbox worker claimed.
func (h *handler) processStored(ctx context.Context, stored billing.WebhookEvent) (bool, error) {
	var n storedNotification
	if err := json.Unmarshal(stored.Payload, &n); err != nil || n.Type == "" {
		return false, fmt.Errorf("%w: stored mercadopago notification %s is not readable", billing.ErrInvalidInput, stored.EventID)
	}
	return h.process(n.Type, n.DataID)(ctx)
}

// process returns how a notification of typ about dataID is applied: the payment or
// preapproval is read from the API.
func (h *handler) process(typ, dataID string) func(context.Context) (bool, error) {
	switch typ {
	case TypePayment:
		return func(ctx context.Context) (bool, error) {
			pay, err := h.api.getPayment(ctx, dataID)
			if err != nil {
				return false, err
			}
			return h.applyPayment(ctx, pay)
		}
	case TypePreapproval:
		return func(ctx context.Context) (bool, error) { return h.syncPreapproval(ctx, dataID) }
	}
	return func(ctx context.Context) (bool, error) {
		h.log.DebugContext(ctx, "mercadopago notification type ignored", "type", typ, "data_id", dataID)
		return true, nil
	}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if isLegacyIPN(r, q) {
		// IPN carries its notification in the query string, with any Content-Type.
		if _, ok := hookhttp.ReadBody(w, r, h.cfg.MaxBodyBytes); ok {
			h.serveIPN(w, r, q)
		}
		return
	}
	body, ok := hookhttp.ReadJSONBody(w, r, h.cfg.MaxBodyBytes)
	if !ok {
		return
	}
	dataID := q.Get("data.id")
	sig, err := h.verify(r, dataID)
	if err != nil {
		h.log.WarnContext(r.Context(), "mercadopago webhook rejected: signature", "reason", err.Error(),
			"request_id", truncate(r.Header.Get(HeaderRequestID)))
		hookhttp.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	n, err := decodeNotification(body)
	if err == nil {
		err = checkQuery(n, dataID, q.Get("type"))
	}
	if err != nil {
		h.log.WarnContext(r.Context(), "mercadopago webhook rejected: malformed", "reason", err.Error())
		hookhttp.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	payload, _ := json.Marshal(storedNotification{Type: n.Type, DataID: dataID})
	// Mercado Pago sends no event time; the signed ts orders notifications of one object.
	occurred, _ := sig.Time()
	ev := billing.WebhookEvent{Gateway: billing.GatewayMercadoPago, EventID: inboxKey(n.Type, dataID, sig, r.Header.Get(HeaderRequestID)),
		Type: n.Type, ObjectKey: n.Type + ":" + dataID, OccurredAt: occurred, Payload: payload}
	var process func(context.Context) (bool, error) // nil: accept into the inbox
	if h.inline {
		process = h.process(n.Type, dataID)
	}
	hookhttp.Deliver(w, r, h.log, h.core, ev, process)
}

// verify checks x-signature against data.id from the query string and x-request-id, then
// the timestamp tolerance, and returns the verified signature.
func (h *handler) verify(r *http.Request, dataID string) (signature, error) {
	sig, err := parseSignature(r.Header.Get(HeaderSignature))
	if err != nil {
		return signature{}, err
	}
	if err := verifySignature(h.cfg.WebhookSecret, sig, dataID, r.Header.Get(HeaderRequestID)); err != nil {
		return signature{}, err
	}
	if err := checkTolerance(sig, h.clock.Now(), h.cfg.Tolerance); err != nil {
		return signature{}, err
	}
	return sig, nil
}

// checkQuery ties the body to what was signed: the signature covers data.id from the query
// string only, so the body's data.id must be the same, and the ids the handler acts on come
// from the query.
func checkQuery(n notification, dataID, queryType string) error {
	if n.Data.ID != "" && !strings.EqualFold(string(n.Data.ID), dataID) {
		return fmt.Errorf("%w: data.id in the body differs from data.id in the signed query string", ErrMalformedNotification)
	}
	if queryType != "" && queryType != n.Type {
		return fmt.Errorf("%w: type in the body differs from type in the query string", ErrMalformedNotification)
	}
	if n.Type == TypePayment && !digits(dataID) {
		return fmt.Errorf("%w: payment data.id is not a number", ErrMalformedNotification)
	}
	return nil
}

func digits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// isLegacyIPN: an unsigned notification in the IPN format, ?topic=<topic>&id=<id>.
func isLegacyIPN(r *http.Request, q url.Values) bool {
	return r.Header.Get(HeaderSignature) == "" && q.Get("topic") != "" && q.Get("id") != "" && q.Get("data.id") == ""
}

// serveIPN handles an IPN notification. Nothing in it is trusted: the payment is read from
// the API, and the inbox key includes the status read, so a payment's later status change
// (notified with the same topic and id) is processed too.
func (h *handler) serveIPN(w http.ResponseWriter, r *http.Request, q url.Values) {
	if !h.cfg.AcceptLegacyIPN {
		h.log.WarnContext(r.Context(), "mercadopago IPN rejected: AcceptLegacyIPN is off; configure Webhooks with a secret signature instead")
		hookhttp.Error(w, http.StatusBadRequest, ErrLegacyIPNDisabled.Error())
		return
	}
	topic, id := q.Get("topic"), q.Get("id")
	if topic != TypePayment {
		eventID := "ipn" + eventIDSeparator + truncate(topic) + eventIDSeparator + truncate(id)
		h.log.DebugContext(r.Context(), "mercadopago IPN topic ignored", "topic", truncate(topic))
		hookhttp.Respond(w, r, h.log, billing.GatewayMercadoPago, eventID, billing.EventOutcomeIgnored, nil)
		return
	}
	if !digits(id) {
		hookhttp.Error(w, http.StatusBadRequest, fmt.Sprintf("%v: payment id is not a number", ErrMalformedNotification))
		return
	}
	pay, err := h.api.getPayment(r.Context(), id)
	eventID := "ipn" + eventIDSeparator + TypePayment + eventIDSeparator + id
	if err != nil {
		hookhttp.Respond(w, r, h.log, billing.GatewayMercadoPago, eventID, billing.EventOutcomeFailed, err)
		return
	}
	eventID += eventIDSeparator + pay.Status
	ev := billing.WebhookEvent{Gateway: billing.GatewayMercadoPago, EventID: eventID, Type: TypePayment}
	outcome, err := h.core.HandleWebhookEvent(r.Context(), ev, func(ctx context.Context) (bool, error) {
		return h.applyPayment(ctx, pay)
	})
	hookhttp.Respond(w, r, h.log, ev.Gateway, ev.EventID, outcome, err)
}

// applyPayment maps a payment read from the API to the processor. It reports ignored for
// statuses renewkit waits on and for payments that are not renewkit's.
func (h *handler) applyPayment(ctx context.Context, pay *payment.Response) (bool, error) {
	gwID := strconv.Itoa(pay.ID)
	preID := preapprovalOf(pay)
	log := h.log.With("payment_id", gwID, "status", pay.Status)
	switch pay.Status {
	case paymentApproved:
		if pay.TransactionAmountRefunded > 0 {
			return h.partialRefund(ctx, pay)
		}
		if preID != "" {
			return h.applyCharge(ctx, pay, preID)
		}
		return h.approveCheckout(ctx, pay)
	case paymentRejected:
		if preID != "" {
			return h.failCharge(ctx, pay, preID)
		}
		if pay.ExternalReference == "" {
			log.DebugContext(ctx, "mercadopago payment without external_reference ignored")
			return true, nil
		}
		_, err := h.core.ProcessFailed(ctx, billing.FailParams{PaymentID: pay.ExternalReference, GatewayPaymentID: gwID,
			Reason: failReason(pay), Actor: actor})
		return false, err
	case paymentRefunded, paymentChargedBack:
		return h.reversal(ctx, pay)
	case paymentCancelled:
		if preID != "" || pay.ExternalReference == "" {
			log.InfoContext(ctx, "mercadopago payment reversal not applied automatically", "preapproval_id", preID)
			return true, nil
		}
		_, err := h.core.ProcessCancelled(ctx, billing.FailParams{PaymentID: pay.ExternalReference, GatewayPaymentID: gwID,
			Reason: failReason(pay), Actor: actor})
		if errors.Is(err, billing.ErrInvalidTransition) {
			// A refund or chargeback of an approved payment: renewkit has no transition for
			// it; an operator decides whether to revoke access.
			log.WarnContext(ctx, "mercadopago reversal of a payment renewkit approved; handle it manually", "error", err)
			return true, nil
		}
		return false, err
	default:
		// pending, in_process, authorized, in_mediation: not final; a later notification
		// brings the outcome.
		log.DebugContext(ctx, "mercadopago payment not final; waiting")
		return true, nil
	}
}

func failReason(pay *payment.Response) string {
	if pay.StatusDetail != "" {
		return pay.Status + ": " + pay.StatusDetail
	}
	return pay.Status
}

// approveCheckout approves the renewkit payment named by external_reference after checking
// that Mercado Pago charged at least its amount in its currency.
func (h *handler) approveCheckout(ctx context.Context, pay *payment.Response) (bool, error) {
	ref := pay.ExternalReference
	if ref == "" {
		h.log.DebugContext(ctx, "mercadopago payment without external_reference ignored", "payment_id", pay.ID)
		return true, nil
	}
	if strings.HasPrefix(ref, "rk") && !strings.Contains(ref, ":") {
		// A signed reference naming the renewkit payment (the other accepted form).
		r, err := h.core.VerifyReference(ref)
		if err != nil || r.PaymentID == "" {
			return false, fmt.Errorf("mercadopago payment %d: external_reference names no payment: %w", pay.ID, errors.Join(err, billing.ErrBadReference))
		}
		ref = r.PaymentID
	}
	charged, err := toMoney(pay.TransactionAmount, pay.CurrencyID)
	if err != nil {
		return false, err
	}
	_, err = h.core.ProcessApproved(ctx, billing.ApproveParams{PaymentID: ref, GatewayPaymentID: strconv.Itoa(pay.ID),
		Charged: charged, Actor: actor})
	return false, err
}

// applyCharge applies a preapproval's approved charge, paid at date_approved. A charge made
// before Mercado Pago ended the preapproval (its last_modified) is recorded and may extend
// the period, but does not revive the subscription: a late or replayed notification never
// brings an ended subscription back.
func (h *handler) applyCharge(ctx context.Context, pay *payment.Response, preID string) (bool, error) {
	pre, known, err := h.chargeContext(ctx, preID)
	if err != nil || !known {
		return !known && err == nil, err
	}
	amount, err := toMoney(pay.TransactionAmount, pay.CurrencyID)
	if err != nil {
		return false, err
	}
	paidAt := pay.DateApproved
	if paidAt.IsZero() {
		paidAt = pay.DateCreated
	}
	start, end := chargePeriod(pay, pre)
	_, err = h.core.ApplyGatewayPayment(ctx, billing.GatewayPaymentParams{
		Gateway: billing.GatewayMercadoPago, GatewayPaymentID: strconv.Itoa(pay.ID), GatewaySubscriptionID: pre.ID,
		Amount: amount, PeriodStart: start, PeriodEnd: end, PaidAt: paidAt, Actor: actor,
	})
	return false, err
}

// failCharge records a preapproval's rejected charge as a failed payment of the
// subscription (the payment-failed email goes out once); the subscription's status follows
// the preapproval, not single charges. A rejected charge of a cancelled preapproval is
// ignored: there is nothing left for the subscriber to fix.
func (h *handler) failCharge(ctx context.Context, pay *payment.Response, preID string) (bool, error) {
	pre, known, err := h.chargeContext(ctx, preID)
	if err != nil || !known {
		return !known && err == nil, err
	}
	if pre.Status == "cancelled" {
		h.log.InfoContext(ctx, "mercadopago rejected charge of a cancelled preapproval ignored", "payment_id", pay.ID, "preapproval_id", pre.ID)
		return true, nil
	}
	amount, err := toMoney(pay.TransactionAmount, pay.CurrencyID)
	if err != nil {
		return false, err
	}
	_, err = h.core.FailGatewayPayment(ctx, billing.GatewayPaymentParams{
		Gateway: billing.GatewayMercadoPago, GatewayPaymentID: strconv.Itoa(pay.ID), GatewaySubscriptionID: pre.ID,
		Amount: amount, Actor: actor,
	}, failReason(pay))
	return false, err
}

// chargeContext reads the preapproval a charge belongs to and makes sure renewkit has its
// subscription, in the preapproval's state: one not known yet is created from the
// "<user_id>:<plan_id>" external_reference (pending until a charge is applied), and a
// cancelled preapproval is ended first, so its charges are judged against the time it
// ended whatever order the notifications arrive in. known is false (and the charge
// ignored) when the preapproval is not renewkit's.
func (h *handler) chargeContext(ctx context.Context, preID string) (*preapproval.Response, bool, error) {
	pre, err := h.api.getPreapproval(ctx, preID)
	if err != nil {
		return nil, false, err
	}
	_, err = h.core.FindSubscriptionByGateway(ctx, billing.GatewayMercadoPago, pre.ID)
	if err == nil && pre.Status != "cancelled" {
		return pre, true, nil
	}
	if err != nil && !errors.Is(err, billing.ErrNotFound) {
		return nil, false, err
	}
	ignored, err := h.applyPreapproval(ctx, pre)
	return pre, !ignored && err == nil, err
}

// syncPreapproval reads a preapproval and applies it with applyPreapproval.
func (h *handler) syncPreapproval(ctx context.Context, id string) (bool, error) {
	pre, err := h.api.getPreapproval(ctx, id)
	if err != nil {
		return false, err
	}
	return h.applyPreapproval(ctx, pre)
}

// applyPreapproval applies a preapproval's status with SyncSubscription. The period is left
// to the charges (payment notifications carry the period each one pays for) and to the
// renew job's RenewalLookup: a preapproval notification and its charge's arrive together in
// either order, and taking next_payment_date here as well would make the charge extend the
// subscription a second time. ignored: the preapproval is not renewkit's.
func (h *handler) applyPreapproval(ctx context.Context, pre *preapproval.Response) (bool, error) {
	var sub *billing.Subscription
	switch s, err := h.core.FindSubscriptionByGateway(ctx, billing.GatewayMercadoPago, pre.ID); {
	case err == nil:
		sub = &s
	case !errors.Is(err, billing.ErrNotFound):
		return false, err
	}
	params := syncParams(pre)
	if sub == nil {
		if pre.ExternalReference == "" {
			h.log.InfoContext(ctx, "mercadopago preapproval without external_reference ignored", "preapproval_id", pre.ID)
			return true, nil
		}
		var err error
		if params.UserID, params.PlanID, err = h.bind(ctx, pre); err != nil {
			return false, err
		}
	}
	if params.Status == "" {
		h.log.WarnContext(ctx, "mercadopago preapproval status unknown; status kept", "preapproval_id", pre.ID, "status", truncate(pre.Status))
	}
	params.PeriodStart, params.PeriodEnd = time.Time{}, time.Time{}
	if params.Status.Live() && (sub == nil || sub.CurrentPeriodEnd.IsZero()) {
		// Authorized, but no charge applied yet: the first charge activates it.
		params.Status = billing.SubscriptionStatusPending
	}
	_, err := h.core.SyncSubscription(ctx, params)
	return false, err
}

// bind returns the user and plan of a preapproval renewkit does not know yet. Its
// external_reference must be a reference signed with billing.Config.ReferenceSecret
// (billing.Service.SignReference), and what the preapproval charges must be that plan: its
// preapproval_plan_id mapped to it by Config.Plans, or, for a preapproval without a plan,
// auto_recurring in the plan's currency and at least its price. Anything else is refused
// with an error wrapping billing.ErrBadReference or billing.ErrChargeMismatch (answered
// 200 "rejected", nothing changed).
func (h *handler) bind(ctx context.Context, pre *preapproval.Response) (userID, planID string, err error) {
	ref, err := h.core.VerifyReference(pre.ExternalReference)
	if err != nil {
		return "", "", fmt.Errorf("mercadopago preapproval %s: external_reference: %w", pre.ID, err)
	}
	if pre.PreapprovalPlanID != "" {
		if mapped, ok := h.cfg.Plans[pre.PreapprovalPlanID]; !ok || mapped != ref.PlanID {
			return "", "", fmt.Errorf("%w: mercadopago preapproval %s is for plan %.40q, which Config.Plans does not map to plan %.40q",
				billing.ErrChargeMismatch, pre.ID, pre.PreapprovalPlanID, ref.PlanID)
		}
		return ref.UserID, ref.PlanID, nil
	}
	plan, err := h.core.GetPlan(ctx, ref.PlanID)
	if err != nil {
		return "", "", fmt.Errorf("plan %s of preapproval %s: %w", ref.PlanID, pre.ID, err)
	}
	charged, err := toMoney(pre.AutoRecurring.TransactionAmount, pre.AutoRecurring.CurrencyID)
	if err != nil || charged.Currency != plan.Price.Currency || charged.Amount < plan.Price.Amount {
		return "", "", fmt.Errorf("%w: mercadopago preapproval %s charges %d %s, plan %s costs %d %s", billing.ErrChargeMismatch,
			pre.ID, charged.Amount, charged.Currency, plan.ID, plan.Price.Amount, plan.Price.Currency)
	}
	return ref.UserID, ref.PlanID, nil
}

// syncParams maps a preapproval to SyncParams, with the paid period from
// preapprovalPeriod.
func syncParams(pre *preapproval.Response) billing.SyncParams {
	start, end := preapprovalPeriod(pre)
	p := billing.SyncParams{
		Gateway: billing.GatewayMercadoPago, GatewaySubscriptionID: pre.ID, Status: subscriptionStatus(pre),
		PeriodStart: start, PeriodEnd: end, EventTime: eventTime(pre), Actor: actor,
		// A preapproval with an end date charges no more once next_payment_date reaches it.
		CancelAtPeriodEnd: pre.Status == "authorized" && !pre.AutoRecurring.EndDate.IsZero() &&
			!pre.NextPaymentDate.IsZero() && !pre.AutoRecurring.EndDate.After(pre.NextPaymentDate),
	}
	return p
}
