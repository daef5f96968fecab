package stripegw

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways"
)

const actor = billing.GatewayStripe

// mapStatus maps a Stripe subscription status to renewkit's. An unknown status maps to ""
// (keep the stored status).
func mapStatus(s string) billing.SubscriptionStatus {
	switch s {
	case "active", "trialing":
		return billing.SubscriptionStatusActive
	case "past_due", "unpaid":
		return billing.SubscriptionStatusPastDue
	case "paused":
		// A trial that ended without a payment method: no new period is paid, so access
		// runs out with the paid period (plus grace), as for past_due.
		return billing.SubscriptionStatusPastDue
	case "canceled", "incomplete_expired":
		return billing.SubscriptionStatusCancelled
	case "incomplete":
		return billing.SubscriptionStatusPending
	}
	return ""
}

// apply maps a verified event to the payment processor. It runs inside the inbox (the
// worker, or HandleWebhookEvent inline), at most once to success per event id.
//
// An object the Stripe API answers 404 for is ignored with a log line: renewkit asked about
// the id a signed event names, Stripe's objects are readable as soon as their events are
// sent, and no retry makes one exist.
func (h *webhookHandler) apply(ctx context.Context, ev decodedEvent) (ignored bool, err error) {
	ignored, err = h.route(ctx, ev)
	var ae *gateways.APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound {
		h.log.WarnContext(ctx, "stripe event ignored: the Stripe API does not know the object it names",
			"event_id", ev.ID, "event_type", ev.Type, "op", ae.Op, "object_id", ae.ID, "request_id", ae.RequestID)
		return true, nil
	}
	return ignored, err
}

func (h *webhookHandler) route(ctx context.Context, ev decodedEvent) (ignored bool, err error) {
	switch ev.Type {
	case EventCheckoutSessionCompleted:
		return h.checkoutCompleted(ctx, ev)
	case EventInvoicePaid:
		return h.invoicePaid(ctx, ev)
	case EventInvoicePaymentFailed:
		return h.invoiceFailed(ctx, ev)
	case EventSubscriptionCreated, EventSubscriptionUpdated, EventSubscriptionDeleted:
		return false, h.subscriptionChanged(ctx, ev)
	case EventChargeRefunded, EventDisputeCreated, EventDisputeClosed:
		return h.reversal(ctx, ev)
	}
	return true, nil
}

// findSubscription returns the stored subscription, ok=false when there is none.
func (h *webhookHandler) findSubscription(ctx context.Context, subID string) (billing.Subscription, bool, error) {
	sub, err := h.core.FindSubscriptionByGateway(ctx, billing.GatewayStripe, subID)
	if errors.Is(err, billing.ErrNotFound) {
		return billing.Subscription{}, false, nil
	}
	if err != nil {
		return billing.Subscription{}, false, err
	}
	return sub, true, nil
}

// subscriptionChanged applies customer.subscription.created/updated/deleted.
//
// Status, cancel_at_period_end and the event time are synced. The period is synced only
// when it is known to be paid or no longer matters: for an ended subscription (access is
// revoked anyway; its last period keeps emails and state the same whatever order events
// arrive in), and, with a SecretKey, when the API reports the latest invoice paid (that
// invoice is recorded first, as invoice.paid would). Stripe moves current_period_* when a
// period starts, before it is paid, so syncing it from the body would grant an unpaid
// period. Periods otherwise advance through invoice.paid.
func (h *webhookHandler) subscriptionChanged(ctx context.Context, ev decodedEvent) error {
	s := ev.Sub
	if h.api != nil {
		fetched, err := h.api.subscription(ctx, s.ID)
		if err != nil {
			return err
		}
		s = fetched
	}
	status := mapStatus(s.Status)
	if ev.Type == EventSubscriptionDeleted {
		status = billing.SubscriptionStatusCancelled
	}
	p := billing.SyncParams{
		Gateway: billing.GatewayStripe, GatewaySubscriptionID: s.ID, Status: status,
		CancelAtPeriodEnd: s.CancelAtPeriodEnd, EventTime: ev.Created, Actor: actor,
	}
	ps, pe := s.period()
	switch {
	case status == billing.SubscriptionStatusCancelled:
		p.PeriodStart, p.PeriodEnd = ps, pe
	case s.latest != nil && s.latest.isPaid() && s.latest.subscriptionID() == s.ID:
		if err := h.applyPaidInvoice(ctx, s.latest, time.Time{}); err != nil && !errors.Is(err, billing.ErrNotFound) {
			return err
		}
		if _, le := s.latest.period(); le.Equal(pe) {
			p.PeriodStart, p.PeriodEnd = ps, pe
		}
	}
	cur, found, err := h.findSubscription(ctx, s.ID)
	if err != nil {
		return err
	}
	if status.Live() && p.PeriodEnd.IsZero() && (!found || cur.CurrentPeriodEnd.IsZero()) {
		// No paid period yet: stay pending until invoice.paid brings one, so the
		// expiry job never sees an active subscription without a period.
		p.Status = ""
	}
	if found || status == billing.SubscriptionStatusCancelled {
		_, err = h.core.SyncSubscription(ctx, p)
		return err
	}
	if p.UserID, p.PlanID, err = h.bind(s, s.Metadata[MetadataReference]); err != nil {
		return err
	}
	_, err = h.core.SyncSubscription(ctx, p)
	return err
}

// MetadataReference is the metadata key (on a Checkout Session or a subscription) that
// carries the reference renewkit signed (billing.Service.SignReference); a Checkout
// Session's client_reference_id may carry it instead.
const MetadataReference = "renewkit_reference"

// bind returns the user and plan of a Stripe subscription renewkit does not know yet, from
// the first non-empty reference: it must verify with billing.Config.ReferenceSecret, and
// the subscription's prices must map (Config.Prices) to the plan it names. A reference
// that does not verify, or a price for another plan, is refused: the error wraps
// billing.ErrBadReference or billing.ErrChargeMismatch, the event is answered 200
// "rejected" and nothing changes.
func (h *webhookHandler) bind(s *wireSubscription, refs ...string) (userID, planID string, err error) {
	var ref billing.Reference
	err = fmt.Errorf("%w: no reference (client_reference_id or metadata %s)", billing.ErrBadReference, MetadataReference)
	for _, r := range refs {
		if r != "" {
			ref, err = h.core.VerifyReference(r)
			break
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("stripe subscription: %w", err)
	}
	if s == nil || (len(s.Items.Data) == 0 && h.api == nil) {
		return ref.UserID, ref.PlanID, nil // the signed body names no prices; invoices are still checked
	}
	if len(s.Items.Data) == 0 {
		return "", "", fmt.Errorf("%w: stripe subscription %s lists no prices", billing.ErrChargeMismatch, s.ID)
	}
	for _, it := range s.Items.Data {
		if mapped, ok := h.prices[it.Price.ID]; !ok || mapped != ref.PlanID {
			return "", "", fmt.Errorf("%w: stripe subscription %s has price %.60q, which Config.Prices does not map to plan %.40q",
				billing.ErrChargeMismatch, s.ID, it.Price.ID, ref.PlanID)
		}
	}
	return ref.UserID, ref.PlanID, nil
}

// invoicePaid records a paid invoice of a subscription: the first payment or a renewal.
func (h *webhookHandler) invoicePaid(ctx context.Context, ev decodedEvent) (bool, error) {
	inv := ev.Invoice
	if h.api != nil {
		fetched, err := h.api.invoice(ctx, inv.ID)
		if err != nil {
			return false, err
		}
		if !fetched.isPaid() {
			return false, fmt.Errorf("%w: invoice %s is %q at the API", ErrStateMismatch, inv.ID, fetched.Status)
		}
		inv = fetched
	}
	if inv.subscriptionID() == "" {
		return true, nil // a one-off invoice: not a subscription payment
	}
	return false, h.applyPaidInvoice(ctx, inv, ev.Created)
}

// applyPaidInvoice records inv as an approved payment (gateway payment id = invoice id,
// amount_paid and currency) for the period of its subscription line, paid at
// status_transitions.paid_at (else at fallbackPaidAt, the invoice.paid event's time).
// billing never adds a cycle to a stated period: a period the subscription already covers
// (an invoice delivered late, or one a subscription event already recorded) is recorded
// without moving, and a charge from before the subscription ended does not revive it.
func (h *webhookHandler) applyPaidInvoice(ctx context.Context, inv *wireInvoice, fallbackPaidAt time.Time) error {
	subID := inv.subscriptionID()
	ps, pe := inv.period()
	if pe.IsZero() && h.api != nil {
		// The subscription line is beyond the first page of lines: take the period from
		// the subscription when this invoice is its latest.
		s, err := h.api.subscription(ctx, subID)
		if err != nil {
			return err
		}
		if string(s.LatestInvoice) == inv.ID {
			ps, pe = s.period()
		}
	}
	amount := billing.Money{Amount: inv.AmountPaid, Currency: currency(inv.Currency)}
	cur, found, err := h.findSubscription(ctx, subID)
	if err != nil {
		return err
	}
	if found && cur.Status == billing.SubscriptionStatusPastDue && !pe.IsZero() && !billing.TruncateTime(pe).After(cur.CurrentPeriodEnd) {
		return h.recordCoveredPayment(ctx, cur, inv.ID, amount)
	}
	paidAt := inv.paidAt()
	if paidAt.IsZero() {
		paidAt = fallbackPaidAt
	}
	_, err = h.core.ApplyGatewayPayment(ctx, billing.GatewayPaymentParams{
		Gateway: billing.GatewayStripe, GatewayPaymentID: inv.ID, GatewaySubscriptionID: subID,
		Amount: amount, PeriodStart: ps, PeriodEnd: pe, PaidAt: paidAt, Actor: actor,
	})
	return err
}

// recordCoveredPayment approves the payment of an invoice whose period a past_due
// subscription already covers, without changing its period or status
// (billing's RecordCoveredPayment): an older invoice delivered late must not end the
// past_due state a newer failed attempt set.
func (h *webhookHandler) recordCoveredPayment(ctx context.Context, sub billing.Subscription, invoiceID string, amount billing.Money) error {
	_, err := h.core.RecordCoveredPayment(ctx, billing.GatewayPaymentParams{
		Gateway: billing.GatewayStripe, GatewayPaymentID: invoiceID, GatewaySubscriptionID: sub.GatewaySubscriptionID,
		Amount: amount, Actor: actor,
	})
	return err
}

// invoiceFailed records a failed collection attempt and marks the subscription past_due.
//
// Each attempt is its own failed payment (gateway payment id "<invoice id>/attempt-<n>"),
// distinct from the approved payment a later successful retry of the same invoice records
// under the invoice id, so the payment-failed email goes out once per attempt whatever
// order the events arrive in. The subscription moves to past_due (with a SecretKey: to the
// status the API reports) unless the invoice is already recorded as paid, and never before
// it has a paid period. A retry paid after this check is not undone: its charge time is
// newer than this event, so the past_due sync is stale.
func (h *webhookHandler) invoiceFailed(ctx context.Context, ev decodedEvent) (bool, error) {
	inv := ev.Invoice
	var fetchedSub *wireSubscription
	if h.api != nil {
		fetched, err := h.api.invoice(ctx, inv.ID)
		if err != nil {
			return false, err
		}
		fetched.AttemptCount = max(fetched.AttemptCount, inv.AttemptCount)
		inv = fetched
	}
	subID := inv.subscriptionID()
	if subID == "" {
		return true, nil
	}
	if h.api != nil {
		s, err := h.api.subscription(ctx, subID)
		if err != nil {
			return false, err
		}
		fetchedSub = s
	}
	sub, found, err := h.findSubscription(ctx, subID)
	if err != nil {
		return false, err
	}
	if !found {
		return false, fmt.Errorf("stripe subscription %s of failed invoice %s: %w", subID, inv.ID, billing.ErrNotFound)
	}
	attempt := max(inv.AttemptCount, 1)
	_, err = h.core.FailGatewayPayment(ctx, billing.GatewayPaymentParams{
		Gateway: billing.GatewayStripe, GatewayPaymentID: fmt.Sprintf("%s/attempt-%d", inv.ID, attempt),
		GatewaySubscriptionID: subID, Amount: billing.Money{Amount: inv.AmountDue, Currency: currency(inv.Currency)}, Actor: actor,
	}, failureReason(inv, attempt))
	if err != nil && !errors.Is(err, billing.ErrInvalidTransition) { // cancelled meanwhile: settled
		return false, err
	}
	if paid, err := h.core.FindPaymentByGateway(ctx, billing.GatewayStripe, inv.ID); err == nil && paid.Status == billing.PaymentStatusApproved {
		return false, nil // a retry of this invoice already succeeded
	} else if err != nil && !errors.Is(err, billing.ErrNotFound) {
		return false, err
	}
	if sub.CurrentPeriodEnd.IsZero() {
		return false, nil // never paid: stays pending
	}
	p := billing.SyncParams{
		Gateway: billing.GatewayStripe, GatewaySubscriptionID: subID, Status: billing.SubscriptionStatusPastDue,
		CancelAtPeriodEnd: sub.CancelAtPeriodEnd, EventTime: ev.Created, Actor: actor,
	}
	if fetchedSub != nil {
		if st := mapStatus(fetchedSub.Status); st != "" {
			p.Status = st
		}
		p.CancelAtPeriodEnd = fetchedSub.CancelAtPeriodEnd
	}
	_, err = h.core.SyncSubscription(ctx, p)
	return false, err
}

// failureReason says why the charge failed, from the payment intent's decline code when
// the API was asked; never card details.
func failureReason(inv *wireInvoice, attempt int64) string {
	switch {
	case inv.failureCode != "" && inv.failureMessage != "":
		return fmt.Sprintf("%s: %s (attempt %d)", inv.failureCode, inv.failureMessage, attempt)
	case inv.failureCode != "":
		return fmt.Sprintf("%s (attempt %d)", inv.failureCode, attempt)
	}
	return fmt.Sprintf("Stripe could not collect invoice %s (attempt %d)", inv.ID, attempt)
}

// checkoutCompleted handles checkout.session.completed.
//
// mode=subscription creates (or links) the subscription from metadata user_id (or
// client_reference_id) and plan_id, as pending until its first invoice is paid. A
// metadata payment_id names a payment the host created before redirecting to Checkout:
// it is linked to the session's first invoice, so that invoice's invoice.paid approves it
// (with a SecretKey, the first invoice is applied at once when the API reports it paid).
// mode=payment approves the payment named by metadata payment_id when the session is paid.
func (h *webhookHandler) checkoutCompleted(ctx context.Context, ev decodedEvent) (bool, error) {
	s := ev.Session
	if h.api != nil {
		fetched, err := h.api.checkoutSession(ctx, s.ID)
		if err != nil {
			return false, err
		}
		s = fetched
	}
	paymentID := s.Metadata["payment_id"]
	switch s.Mode {
	case "payment":
		if paymentID == "" {
			// A payment bound by a signed reference (client_reference_id works on Payment
			// Links) names the renewkit payment too; an unsigned one is refused.
			if r := firstNonEmpty(s.ClientReferenceID, s.Metadata[MetadataReference]); r != "" {
				ref, err := h.core.VerifyReference(r)
				if err != nil {
					return false, fmt.Errorf("checkout session %s: %w", s.ID, err)
				}
				paymentID = ref.PaymentID
			}
		}
		if paymentID == "" || s.PaymentStatus != "paid" {
			return true, nil
		}
		gid := string(s.PaymentIntent)
		if gid == "" {
			gid = s.ID
		}
		_, err := h.core.ApplyGatewayPayment(ctx, billing.GatewayPaymentParams{
			Gateway: billing.GatewayStripe, GatewayPaymentID: gid, PaymentID: paymentID, Actor: actor,
			Amount: billing.Money{Amount: s.AmountTotal, Currency: currency(s.Currency)},
		})
		return false, err
	case "subscription":
	default:
		return true, nil
	}
	subID := string(s.Subscription)
	if subID == "" {
		return false, fmt.Errorf("%w: checkout session %s has mode subscription and no subscription", billing.ErrInvalidInput, s.ID)
	}
	var latest *wireInvoice
	var fetched *wireSubscription
	if h.api != nil {
		fs, err := h.api.subscription(ctx, subID)
		if err != nil {
			return false, err
		}
		latest, fetched = fs.latest, fs
	}
	_, found, err := h.findSubscription(ctx, subID)
	if err != nil {
		return false, err
	}
	if !found {
		userID, planID, err := h.bind(fetched, s.ClientReferenceID, s.Metadata[MetadataReference])
		if err != nil {
			return false, fmt.Errorf("checkout session %s: %w", s.ID, err)
		}
		if _, err := h.core.SyncSubscription(ctx, billing.SyncParams{
			Gateway: billing.GatewayStripe, GatewaySubscriptionID: subID, EventTime: ev.Created,
			UserID: userID, PlanID: planID, Actor: actor,
		}); err != nil {
			return false, err
		}
	}
	if paymentID != "" && s.Invoice != "" {
		if err := h.linkPayment(ctx, paymentID, string(s.Invoice), subID); err != nil {
			return false, err
		}
	}
	if latest != nil && latest.isPaid() && latest.subscriptionID() == subID {
		return false, h.applyPaidInvoice(ctx, latest, time.Time{})
	}
	return false, nil
}

// linkPayment points the host's pending payment at the session's first invoice, so the
// invoice's payment approves it instead of recording a second payment (billing's
// LinkCheckoutPayment; a payment already recorded for the invoice supersedes it).
func (h *webhookHandler) linkPayment(ctx context.Context, paymentID, invoiceID, subID string) error {
	err := h.core.LinkCheckoutPayment(ctx, billing.LinkParams{PaymentID: paymentID, Gateway: billing.GatewayStripe,
		GatewayPaymentID: invoiceID, GatewaySubscriptionID: subID, Actor: actor})
	if err != nil {
		return fmt.Errorf("checkout metadata payment_id: %w", err)
	}
	return nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
