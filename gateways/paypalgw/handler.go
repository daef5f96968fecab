package paypalgw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways"
	"github.com/renewkit/renewkit/gateways/internal/hookhttp"
)

// handler is PayPal's webhook endpoint, built by NewWebhookHandler.
type handler struct {
	core     gateways.Core
	cfg      Config
	verifier verifier
	api      *apiClient // nil without credentials: events are acknowledged, never applied
	clock    billing.Clock
	log      *slog.Logger
	inline   bool

	// trustBodyForTests is set only by this package's tests, which exercise the mapping of
	// events to the processor with signed bodies and no API. Without credentials a host's
	// handler never applies an event: offline verification covers the body only through
	// its CRC32, so a body is not proof of anything that grants access.
	trustBodyForTests bool
}

// NewWebhookHandler returns the handler for PayPal webhook deliveries, applying events
// through core (svc.Processor() of a billing.Service). Mount it at the URL registered in
// PayPal, e.g. mux.Handle("POST /api/payments/paypal/webhook", h).
func NewWebhookHandler(core gateways.Core, cfg Config) (http.Handler, error) {
	var errs []error
	if core == nil {
		errs = append(errs, fmt.Errorf("%w: missing billing service: pass svc.Processor() of billing.NewService(store, notifier, cfg)", ErrInvalidConfig))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	h := &handler{core: core, cfg: cfg, inline: cfg.ProcessInline}
	h.log, h.clock = hookhttp.Defaults(core, cfg.Logger, cfg.Clock)
	if cfg.hasCredentials() {
		api, err := newAPIClient(cfg)
		if err != nil {
			return nil, err
		}
		h.api = api
	}
	allow := cfg.certHosts()
	if cfg.verification() == VerifyOnline {
		h.verifier = &onlineVerifier{webhookID: cfg.WebhookID, allow: allow, client: h.api.sdk}
	} else {
		h.verifier = &offlineVerifier{webhookID: cfg.WebhookID, allow: allow, sans: cfg.certSANs(), roots: cfg.RootCAs, now: h.clock.Now,
			cache: newCertCache(cfg.httpClient(), allow, certCacheLimits{size: cfg.CertCacheSize, ttl: cfg.CertCacheTTL,
				failureTTL: cfg.CertFailureTTL, concurrency: cfg.CertFetchConcurrency}, h.clock.Now)}
	}
	if err := core.RegisterWebhookProcessor(billing.GatewayPayPal, h.processStored); err != nil {
		return nil, err
	}
	return h, nil
}

// processStored applies an event the inbox worker claimed: its payload is the verified body.
func (h *handler) processStored(ctx context.Context, stored billing.WebhookEvent) (bool, error) {
	ev, err := decodeEvent(stored.Payload)
	if err != nil {
		return false, fmt.Errorf("%w: stored paypal event %s: %w", billing.ErrInvalidInput, stored.EventID, err)
	}
	return h.process(ctx, ev)
}

// ServeHTTP verifies, decodes, deduplicates and applies one delivery.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, ok := hookhttp.ReadJSONBody(w, r, h.cfg.MaxBodyBytes)
	if !ok {
		return
	}
	ctx := r.Context()
	if err := h.verify(ctx, r.Header, body); err != nil {
		if errors.Is(err, ErrSignature) {
			h.log.WarnContext(ctx, "paypal webhook rejected: not verified", "error", err)
			hookhttp.Error(w, http.StatusBadRequest, "signature verification failed")
			return
		}
		h.log.ErrorContext(ctx, "paypal webhook could not be verified now; PayPal retries", "error", err)
		hookhttp.Unavailable(w, "signature cannot be verified now; retry later")
		return
	}
	ev, process, err := h.decode(body)
	if err != nil {
		h.log.WarnContext(ctx, "paypal webhook rejected: malformed event", "error", err)
		hookhttp.Error(w, http.StatusBadRequest, "malformed event")
		return
	}
	hookhttp.Deliver(w, r, h.log, h.core, ev, process)
}

// decode reads a verified body into the inbox event and, inline, the processing of its
// decoded resource. Accepting, it reads only the envelope (process is nil): the worker
// decodes the resource when it applies the stored event.
func (h *handler) decode(body []byte) (billing.WebhookEvent, func(context.Context) (bool, error), error) {
	env, err := decodeEnvelope(body)
	if err != nil {
		return billing.WebhookEvent{}, nil, err
	}
	stored := billing.WebhookEvent{Gateway: billing.GatewayPayPal, EventID: env.ID, Type: env.Type,
		ObjectKey: env.ObjectKey, OccurredAt: env.Created, Payload: body}
	if !h.inline {
		return stored, nil, nil
	}
	ev, err := decodeResource(env)
	if err != nil {
		return billing.WebhookEvent{}, nil, err
	}
	return stored, func(ctx context.Context) (bool, error) { return h.process(ctx, ev) }, nil
}

// verify checks the transmission headers, freshness and signature, in that order.
func (h *handler) verify(ctx context.Context, hdr http.Header, body []byte) error {
	tr, err := parseTransmission(hdr)
	if err != nil {
		return err
	}
	if err := checkFresh(tr, h.clock.Now(), h.cfg.tolerance()); err != nil {
		return err
	}
	return h.verifier.verify(ctx, tr, hdr, body)
}

// process applies one event. billing applies the charges and status changes of one
// subscription one at a time (its lock per gateway subscription: a delivery that finds it
// held is answered 503 and PayPal retries), and a sale passes its time, so a charge and a
// cancellation never interleave and a late sale does not revive an ended subscription.
//
// A subscription the PayPal API answers 404 for is ignored with a log line: renewkit asked
// about the id the event names, and no redelivery makes it exist.
//
// Without API credentials an event is acknowledged (recorded as ignored, with a log line)
// and changes nothing: the signature PayPal sends covers the body only through its CRC32,
// so a different body with the same CRC32 carries a genuine signature.
func (h *handler) process(ctx context.Context, ev decodedEvent) (ignored bool, err error) {
	if ev.Kind != kindIgnore && h.api == nil && !h.trustBodyForTests {
		h.log.WarnContext(ctx, "paypal event acknowledged, not applied: set ClientID and ClientSecret so renewkit reads the state from the PayPal API",
			"event_id", ev.ID, "event_type", ev.Type)
		return true, nil
	}
	switch ev.Kind {
	case kindSync:
		err = h.sync(ctx, ev)
	case kindPaymentFailed:
		err = h.paymentFailed(ctx, ev)
	case kindSale:
		ignored, err = h.sale(ctx, ev)
		if ignored && err == nil {
			return true, nil
		}
	case kindReversal:
		if ignored, err = h.reversal(ctx, ev); ignored && err == nil {
			return true, nil
		}
	default:
		h.log.DebugContext(ctx, "paypal event ignored", "event_id", ev.ID, "event_type", ev.Type)
		return true, nil
	}
	if errors.Is(err, ErrSubscriptionNotFound) || errors.Is(err, ErrSaleNotFound) {
		h.log.WarnContext(ctx, "paypal event ignored: the PayPal API does not know what it names", "event_id", ev.ID,
			"event_type", ev.Type, "error", err)
		return true, nil
	}
	return false, err
}

// state returns the subscription as the API reports it when credentials are configured,
// else (only in this package's tests) as the verified event body carries it.
func (h *handler) state(ctx context.Context, id string, fromBody *subscriptionState) (*subscriptionState, error) {
	if h.api == nil {
		if fromBody == nil {
			return nil, nil
		}
		return fromBody, nil
	}
	return h.api.subscription(ctx, id)
}

func (h *handler) syncParams(st *subscriptionState, fallback time.Time) billing.SyncParams {
	p := billing.SyncParams{
		Gateway: billing.GatewayPayPal, GatewaySubscriptionID: st.ID, Status: st.mappedStatus(),
		PeriodEnd: st.BillingInfo.NextBillingTime.Time, EventTime: st.eventTime(fallback), Actor: billing.GatewayPayPal,
	}
	if lp := st.BillingInfo.LastPayment.Time.Time; !lp.IsZero() && lp.Before(p.PeriodEnd) {
		p.PeriodStart = lp
	}
	return p
}

// bind returns the user and plan of a PayPal subscription renewkit does not know yet. Its
// custom_id, which the buyer's browser sets (PayPal's JS SDK), must be a reference signed
// with billing.Config.ReferenceSecret (billing.Service.SignReference), and its plan_id must
// map (Config.Plans) to the plan the reference names. Anything else is refused: the error
// wraps billing.ErrBadReference or billing.ErrChargeMismatch and the delivery is answered
// 200 "rejected" with nothing changed.
func (h *handler) bind(st *subscriptionState) (userID, planID string, err error) {
	ref, err := h.core.VerifyReference(st.CustomID)
	if err != nil {
		return "", "", fmt.Errorf("paypal subscription %s: custom_id: %w", st.ID, err)
	}
	if mapped, ok := h.cfg.Plans[st.PlanID]; !ok || mapped != ref.PlanID {
		return "", "", fmt.Errorf("%w: paypal subscription %s is for PayPal plan %.40q, which Config.Plans does not map to plan %.40q",
			billing.ErrChargeMismatch, st.ID, st.PlanID, ref.PlanID)
	}
	return ref.UserID, ref.PlanID, nil
}

// bound is syncParams for a subscription that may not be known yet: an unknown one gets
// the user and plan of its verified reference (see bind), so SyncSubscription creates it.
func (h *handler) bound(ctx context.Context, st *subscriptionState, fallback time.Time) (billing.SyncParams, bool, error) {
	p := h.syncParams(st, fallback)
	cur, err := h.core.FindSubscriptionByGateway(ctx, billing.GatewayPayPal, st.ID)
	switch {
	case err == nil:
		if p.Status != billing.SubscriptionStatusCancelled {
			// Periods advance with sales only (PAYMENT.SALE.COMPLETED, read from the
			// API) and the renew job's lookup: a status event is no proof of payment.
			p.PeriodStart, p.PeriodEnd = time.Time{}, time.Time{}
			if p.Status.Live() && cur.CurrentPeriodEnd.IsZero() {
				p.Status = "" // no charge applied yet: stays pending
			}
		}
		return p, true, nil
	case !errors.Is(err, billing.ErrNotFound):
		return p, false, err
	}
	if p.UserID, p.PlanID, err = h.bind(st); err != nil {
		return p, false, err
	}
	return p, false, nil
}

// sync applies a BILLING.SUBSCRIPTION.* event.
func (h *handler) sync(ctx context.Context, ev decodedEvent) error {
	st, err := h.state(ctx, ev.Sub.ID, ev.Sub)
	if err != nil {
		return err
	}
	if mappedStatus := st.mappedStatus(); mappedStatus == billing.SubscriptionStatusCancelled {
		if err := h.checkCaughtUp(ctx, st, ev); err != nil {
			return err
		}
	}
	p, _, err := h.bound(ctx, st, ev.Created)
	if err != nil {
		return err
	}
	_, err = h.core.SyncSubscription(ctx, p)
	return err
}

// checkCaughtUp defers an event that ends the subscription while charges PayPal reports
// (regular cycles completed) have not all been applied here. billing records a late sale
// of an ended subscription without reviving it, but a sale whose period is not stated (no
// credentials, or no next_billing_time once ended) then gets a cycle from now instead of
// from the paid period's end, so late sales do not add up; and a subscription first known
// as ended never had the access and the expired email its charges would have given.
func (h *handler) checkCaughtUp(ctx context.Context, st *subscriptionState, ev decodedEvent) error {
	wait := h.cfg.cancelWait()
	if wait < 0 || ev.Created.IsZero() || h.clock.Now().Sub(ev.Created) > wait {
		return nil
	}
	need := min(st.regularCyclesCompleted(), billing.MaxAppliedPayments)
	if need == 0 {
		return nil
	}
	sub, err := h.core.FindSubscriptionByGateway(ctx, billing.GatewayPayPal, st.ID)
	if errors.Is(err, billing.ErrNotFound) {
		// The activation and the charges are still on their way: creating the
		// subscription as ended now would leave them nothing to apply to.
		return fmt.Errorf("%w: %s is not known yet and PayPal reports %d charges: %w", ErrEarlierEventPending, st.ID, need, billing.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if sub.Status == billing.SubscriptionStatusCancelled || len(sub.AppliedPayments) >= need {
		return nil
	}
	return fmt.Errorf("%w: %s has %d of %d charges applied: %w", ErrEarlierEventPending, st.ID, len(sub.AppliedPayments), need, billing.ErrConflict)
}

// paymentFailed marks the subscription past due and records a failed payment (a pending
// payment moved to failed by the processor, which sends the payment-failed email).
func (h *handler) paymentFailed(ctx context.Context, ev decodedEvent) error {
	st, err := h.state(ctx, ev.Sub.ID, ev.Sub)
	if err != nil {
		return err
	}
	p, known, err := h.bound(ctx, st, ev.Created)
	if err != nil {
		return err
	}
	if known && (p.Status == billing.SubscriptionStatusActive || p.Status == "") {
		p.Status = billing.SubscriptionStatusPastDue
	}
	// Use the event's own failure when the API shows a later state.
	failure := ev.Sub.BillingInfo.LastFailedPayment
	if failure.Time.IsZero() {
		failure = st.BillingInfo.LastFailedPayment
	}
	if failure.Time.After(st.BillingInfo.LastPayment.Time.Time) || st.BillingInfo.LastPayment.Time.IsZero() {
		if _, err := h.core.SyncSubscription(ctx, p); err != nil {
			return err
		}
	}
	gwID := "failed:" + st.ID + ":" + ev.ID
	if !failure.Time.IsZero() {
		gwID = fmt.Sprintf("failed:%s:%d", st.ID, failure.Time.UnixMilli())
	}
	money, err := h.failedAmount(ctx, st.ID, failure.Amount, st.BillingInfo.OutstandingBalance)
	if err != nil {
		return err
	}
	reason := failure.ReasonCode
	if reason == "" {
		reason = "PAYMENT_FAILED"
	}
	_, err = h.core.FailGatewayPayment(ctx, billing.GatewayPaymentParams{Gateway: billing.GatewayPayPal, GatewayPaymentID: gwID,
		GatewaySubscriptionID: st.ID, Amount: money, Actor: billing.GatewayPayPal}, reason)
	return err
}

// failedAmount is the first of amounts that parses, else the price of the subscription's plan.
func (h *handler) failedAmount(ctx context.Context, subID string, amounts ...ppMoney) (billing.Money, error) {
	for _, a := range amounts {
		if m, err := ParseAmount(a.Value, a.Currency); err == nil {
			return m, nil
		}
	}
	sub, err := h.core.FindSubscriptionByGateway(ctx, billing.GatewayPayPal, subID)
	if err != nil {
		return billing.Money{}, fmt.Errorf("subscription %s: %w", subID, err)
	}
	plan, err := h.core.GetPlan(ctx, sub.PlanID)
	if err != nil {
		return billing.Money{}, fmt.Errorf("plan of subscription %s: %w", sub.ID, err)
	}
	return plan.Price, nil
}

// sale applies PAYMENT.SALE.COMPLETED: a renewal charge of the subscription in
// billing_agreement_id, paid at the sale's create_time. The sale is read from the PayPal
// API (GET /v1/payments/sale/{id}), and its state, amount, subscription and time come from
// there, not from the body; one the API does not report completed for a subscription is
// ignored. When the API reports the subscription ended, the end is applied first, so the
// charge is judged against it: a sale from before PayPal ended the subscription is recorded
// without reviving it. A later one advances the subscription's gateway time, so an older
// status event delivered late (a payment failure this sale recovered from) is recognised as
// stale.
func (h *handler) sale(ctx context.Context, ev decodedEvent) (ignored bool, err error) {
	s, money := ev.Sale, ev.SaleMoney
	if h.api != nil {
		if s, err = h.api.sale(ctx, ev.Sale.ID); err != nil {
			return false, err
		}
		if !strings.EqualFold(s.State, "completed") || checkSubscriptionID(s.BillingAgreementID) != nil {
			h.log.InfoContext(ctx, "paypal sale ignored: the API does not report a completed subscription charge",
				"event_id", ev.ID, "sale_id", s.ID, "state", s.State)
			return true, nil
		}
		if money, err = ParseAmount(s.Amount.Total, s.Amount.Currency); err != nil {
			return false, badAnswer("get sale", err)
		}
		if s.BillingAgreementID != ev.Sale.BillingAgreementID {
			h.log.WarnContext(ctx, "paypal sale: the event names another subscription than the API; using the API's",
				"event_id", ev.ID, "sale_id", s.ID)
		}
	}
	subID := s.BillingAgreementID
	saleTime := s.CreateTime.Time
	if saleTime.IsZero() {
		saleTime = ev.Created
	}
	params := billing.GatewayPaymentParams{Gateway: billing.GatewayPayPal, GatewayPaymentID: s.ID,
		GatewaySubscriptionID: subID, Amount: money, PaidAt: saleTime, Actor: billing.GatewayPayPal}
	st, err := h.state(ctx, subID, nil)
	if err != nil {
		return false, err
	}
	if st != nil { // the API's period, and the subscription created from it when unknown
		params.PeriodEnd = st.BillingInfo.NextBillingTime.Time
		if lp := st.BillingInfo.LastPayment.Time.Time; !lp.IsZero() && lp.Before(params.PeriodEnd) {
			params.PeriodStart = lp
		}
	}
	if st != nil {
		// Unknown: created from its verified reference (refused otherwise). Ended at
		// PayPal: that is applied before the charge, whatever order the events come in.
		p, known, berr := h.bound(ctx, st, ev.Created)
		switch {
		case berr != nil:
			err = berr
		case !known || p.Status == billing.SubscriptionStatusCancelled:
			_, err = h.core.SyncSubscription(ctx, p)
		}
	}
	if billing.Refused(err) {
		return false, err
	}
	if err != nil {
		// Without the subscription the charge has no owner yet: PayPal redelivers it after
		// BILLING.SUBSCRIPTION.ACTIVATED created it (503).
		return false, fmt.Errorf("sale %s for subscription %s: %w", s.ID, subID, err)
	}
	_, err = h.core.ApplyGatewayPayment(ctx, params)
	return false, err
}
