package stripegw

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/renewkit/renewkit/billing"
)

const actor = billing.GatewayStripe

// mapStatus maps a Stripe subscription status to renewkit's. An unknown status maps to ""
// (keep the stored status).
func mapStatus(s string) billing.SubscriptionStatus {
	switch s {
	case "active", "trialing":
		return billing.StatusActive
	case "past_due", "unpaid":
		return billing.StatusPastDue
	case "paused":
		// A trial that ended without a payment method: no new period is paid, so access
		// runs out with the paid period (plus grace), as for past_due.
		return billing.StatusPastDue
	case "canceled", "incomplete_expired":
		return billing.StatusCancelled
	case "incomplete":
		return billing.StatusPending
	}
	return ""
}

// apply maps a verified event to the payment processor. It runs inside
// billing.Service.HandleWebhookEvent, at most once to success per event id.
func (h *webhookHandler) apply(ctx context.Context, ev decodedEvent) (ignored bool, err error) {
	switch ev.Type {
	case EventCheckoutSessionCompleted:
		return h.checkoutCompleted(ctx, ev)
	case EventInvoicePaid:
		return h.invoicePaid(ctx, ev)
	case EventInvoicePaymentFailed:
		return h.invoiceFailed(ctx, ev)
	case EventSubscriptionCreated, EventSubscriptionUpdated, EventSubscriptionDeleted:
		return false, h.subscriptionChanged(ctx, ev)
	}
	return true, nil
}

// gatewayErr classifies an API failure for hookhttp.Respond: an object Stripe says does not
// exist (404) is bad input (400); anything else is answered 500 so Stripe retries (a 401
// heals once the operator fixes the key).
func gatewayErr(err error) error {
	var ae *APIError
	if errors.As(err, &ae) && ae.StatusCode == 404 {
		return fmt.Errorf("%w: %w", billing.ErrInvalidInput, err)
	}
	return err
}

// lockTTL bounds how long a crashed delivery blocks the subscription's events.
const lockTTL = time.Minute

// withSubscriptionLock runs f holding a store lock on the Stripe subscription, so the
// events of one subscription are applied one at a time across goroutines and replicas:
// the checks below (is this period covered, is this invoice paid) and the writes that
// follow them are not interleaved with another event's. A lock held for long is answered
// with billing.ErrConflict (503, Stripe retries).
func (h *webhookHandler) withSubscriptionLock(ctx context.Context, subID string, f func() error) error {
	key, owner := "stripegw:subscription:"+subID, billing.NewID()
	wait := 2 * time.Millisecond
	deadline := time.Now().Add(3 * time.Second)
	for {
		lease, err := h.store.AcquireLock(ctx, key, owner, h.clock.Now(), lockTTL)
		if err == nil {
			defer func() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				if err := h.store.ReleaseLock(rctx, lease); err != nil {
					h.log.WarnContext(ctx, "releasing stripe subscription lock failed; it expires", "subscription", subID, "error", err)
				}
			}()
			return f()
		}
		if !errors.Is(err, billing.ErrLockHeld) {
			return fmt.Errorf("locking stripe subscription %s: %w", subID, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: stripe subscription %s is being processed by another delivery", billing.ErrConflict, subID)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// findSubscription returns the stored subscription, ok=false when there is none.
func (h *webhookHandler) findSubscription(ctx context.Context, subID string) (billing.Subscription, bool, error) {
	sub, err := h.store.FindSubscriptionByGateway(ctx, billing.GatewayStripe, subID)
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
			return gatewayErr(err)
		}
		s = fetched
	}
	status := mapStatus(s.Status)
	if ev.Type == EventSubscriptionDeleted {
		status = billing.StatusCancelled
	}
	return h.withSubscriptionLock(ctx, s.ID, func() error {
		p := billing.SyncParams{
			Gateway: billing.GatewayStripe, GatewaySubscriptionID: s.ID, Status: status,
			CancelAtPeriodEnd: s.CancelAtPeriodEnd, EventTime: ev.Created, Actor: actor,
		}
		ps, pe := s.period()
		switch {
		case status == billing.StatusCancelled:
			p.PeriodStart, p.PeriodEnd = ps, pe
		case s.latest != nil && s.latest.isPaid() && s.latest.subscriptionID() == s.ID:
			if err := h.applyPaidInvoice(ctx, s.latest); err != nil && !errors.Is(err, billing.ErrNotFound) {
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
		if found || status == billing.StatusCancelled {
			_, err = h.pp.SyncSubscription(ctx, p)
			return err
		}
		p.UserID, p.PlanID = s.Metadata["user_id"], s.Metadata["plan_id"]
		_, err = h.pp.SyncSubscription(ctx, p)
		return err
	})
}

// invoicePaid records a paid invoice of a subscription: the first payment or a renewal.
func (h *webhookHandler) invoicePaid(ctx context.Context, ev decodedEvent) (bool, error) {
	inv := ev.Invoice
	if h.api != nil {
		fetched, err := h.api.invoice(ctx, inv.ID)
		if err != nil {
			return false, gatewayErr(err)
		}
		if !fetched.isPaid() {
			return false, fmt.Errorf("%w: invoice %s is %q at the API", ErrStateMismatch, inv.ID, fetched.Status)
		}
		inv = fetched
	}
	subID := inv.subscriptionID()
	if subID == "" {
		return true, nil // a one-off invoice: not a subscription payment
	}
	return false, h.withSubscriptionLock(ctx, subID, func() error { return h.applyPaidInvoice(ctx, inv) })
}

// applyPaidInvoice records inv as an approved payment (gateway payment id = invoice id,
// amount_paid and currency) for the period of its subscription line. Call it holding the
// subscription lock. A period the subscription already covers (an invoice delivered late, or
// one the subscription events already recorded) is recorded without moving the period or
// the status; see recordCoveredPayment.
func (h *webhookHandler) applyPaidInvoice(ctx context.Context, inv *wireInvoice) error {
	subID := inv.subscriptionID()
	ps, pe := inv.period()
	if pe.IsZero() && h.api != nil {
		// The subscription line is beyond the first page of lines: take the period from
		// the subscription when this invoice is its latest.
		s, err := h.api.subscription(ctx, subID)
		if err != nil {
			return gatewayErr(err)
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
	if found && !pe.IsZero() && !billing.TruncateTime(pe).After(cur.CurrentPeriodEnd) {
		return h.recordCoveredPayment(ctx, cur, inv.ID, amount)
	}
	_, err = h.pp.ApplyGatewayPayment(ctx, billing.GatewayPaymentParams{
		Gateway: billing.GatewayStripe, GatewayPaymentID: inv.ID, GatewaySubscriptionID: subID,
		Amount: amount, PeriodStart: ps, PeriodEnd: pe, Actor: actor,
	})
	return err
}

// recordCoveredPayment approves the payment of an invoice whose period the subscription
// already covers, without extending it or changing its status.
//
// billing.ProcessApproved extends a subscription by one cycle when the stated period does
// not go past the current end. To record the payment alone, the payment is marked as
// applied on the subscription first (Subscription.AppliedPayments, which ProcessApproved
// honours), then approved: it is stored as approved, audited and its payment email sent,
// and the subscription is left as it is. See the package documentation for the billing
// change that would make this unnecessary.
func (h *webhookHandler) recordCoveredPayment(ctx context.Context, sub billing.Subscription, invoiceID string, amount billing.Money) error {
	pay, err := h.ensurePayment(ctx, sub, invoiceID, amount)
	if err != nil {
		return err
	}
	if pay.Status != billing.PaymentApproved && !slices.Contains(sub.AppliedPayments, pay.ID) {
		sub.AppliedPayments = append(slices.Clone(sub.AppliedPayments), pay.ID)
		if n := len(sub.AppliedPayments); n > billing.MaxAppliedPayments {
			sub.AppliedPayments = sub.AppliedPayments[n-billing.MaxAppliedPayments:]
		}
		sub.UpdatedAt = billing.TruncateTime(h.clock.Now())
		if _, err := h.store.UpdateSubscription(ctx, sub); err != nil {
			return fmt.Errorf("recording invoice %s on subscription %s: %w", invoiceID, sub.ID, err)
		}
	}
	_, err = h.pp.ProcessApproved(ctx, billing.ApproveParams{
		PaymentID: pay.ID, GatewayPaymentID: invoiceID, GatewaySubscriptionID: sub.GatewaySubscriptionID, Actor: actor,
	})
	return err
}

// ensurePayment returns the payment with gateway id gatewayPaymentID, inserting it as
// pending for sub when there is none.
func (h *webhookHandler) ensurePayment(ctx context.Context, sub billing.Subscription, gatewayPaymentID string, amount billing.Money) (billing.Payment, error) {
	pay, err := h.store.FindPaymentByGateway(ctx, billing.GatewayStripe, gatewayPaymentID)
	if err == nil || !errors.Is(err, billing.ErrNotFound) {
		return pay, err
	}
	if err := amount.Validate(); err != nil {
		return billing.Payment{}, err
	}
	now := billing.TruncateTime(h.clock.Now())
	pay = billing.Payment{
		ID: billing.NewID(), UserID: sub.UserID, PlanID: sub.PlanID, SubscriptionID: sub.ID, Amount: amount,
		Status: billing.PaymentPending, Gateway: billing.GatewayStripe, GatewayPaymentID: gatewayPaymentID,
		GatewaySubscriptionID: sub.GatewaySubscriptionID, CreatedAt: now, UpdatedAt: now,
	}
	err = h.store.InsertPayment(ctx, &pay)
	if errors.Is(err, billing.ErrConflict) {
		return h.store.FindPaymentByGateway(ctx, billing.GatewayStripe, gatewayPaymentID)
	}
	return pay, err
}

// invoiceFailed records a failed collection attempt and marks the subscription past_due.
//
// Each attempt is its own failed payment (gateway payment id "<invoice id>/attempt-<n>"),
// distinct from the approved payment a later successful retry of the same invoice records
// under the invoice id, so the payment-failed email goes out once per attempt whatever
// order the events arrive in. The subscription moves to past_due (with a SecretKey: to the
// status the API reports) unless the invoice is already recorded as paid, and never before
// it has a paid period.
func (h *webhookHandler) invoiceFailed(ctx context.Context, ev decodedEvent) (bool, error) {
	inv := ev.Invoice
	var fetchedSub *wireSubscription
	if h.api != nil {
		fetched, err := h.api.invoice(ctx, inv.ID)
		if err != nil {
			return false, gatewayErr(err)
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
			return false, gatewayErr(err)
		}
		fetchedSub = s
	}
	return false, h.withSubscriptionLock(ctx, subID, func() error {
		sub, found, err := h.findSubscription(ctx, subID)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("stripe subscription %s of failed invoice %s: %w", subID, inv.ID, billing.ErrNotFound)
		}
		attempt := max(inv.AttemptCount, 1)
		pay, err := h.ensurePayment(ctx, sub, fmt.Sprintf("%s/attempt-%d", inv.ID, attempt),
			billing.Money{Amount: inv.AmountDue, Currency: currency(inv.Currency)})
		if err != nil {
			return err
		}
		if pay.Status == billing.PaymentPending || pay.Status == billing.PaymentFailed {
			if _, err := h.pp.ProcessFailed(ctx, billing.FailParams{PaymentID: pay.ID, Reason: failureReason(inv, attempt), Actor: actor}); err != nil {
				return err
			}
		}
		if paid, err := h.store.FindPaymentByGateway(ctx, billing.GatewayStripe, inv.ID); err == nil && paid.Status == billing.PaymentApproved {
			return nil // a retry of this invoice already succeeded
		} else if err != nil && !errors.Is(err, billing.ErrNotFound) {
			return err
		}
		if sub.CurrentPeriodEnd.IsZero() {
			return nil // never paid: stays pending
		}
		p := billing.SyncParams{
			Gateway: billing.GatewayStripe, GatewaySubscriptionID: subID, Status: billing.StatusPastDue,
			CancelAtPeriodEnd: sub.CancelAtPeriodEnd, EventTime: ev.Created, Actor: actor,
		}
		if fetchedSub != nil {
			if st := mapStatus(fetchedSub.Status); st != "" {
				p.Status = st
			}
			p.CancelAtPeriodEnd = fetchedSub.CancelAtPeriodEnd
		}
		_, err = h.pp.SyncSubscription(ctx, p)
		return err
	})
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
			return false, gatewayErr(err)
		}
		s = fetched
	}
	paymentID := s.Metadata["payment_id"]
	switch s.Mode {
	case "payment":
		if paymentID == "" || s.PaymentStatus != "paid" {
			return true, nil
		}
		gid := string(s.PaymentIntent)
		if gid == "" {
			gid = s.ID
		}
		_, err := h.pp.ApplyGatewayPayment(ctx, billing.GatewayPaymentParams{
			Gateway: billing.GatewayStripe, GatewayPaymentID: gid, PaymentID: paymentID, Actor: actor,
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
	if h.api != nil {
		fs, err := h.api.subscription(ctx, subID)
		if err != nil {
			return false, gatewayErr(err)
		}
		latest = fs.latest
	}
	return false, h.withSubscriptionLock(ctx, subID, func() error {
		_, found, err := h.findSubscription(ctx, subID)
		if err != nil {
			return err
		}
		if !found {
			userID := s.Metadata["user_id"]
			if userID == "" {
				userID = s.ClientReferenceID
			}
			planID := s.Metadata["plan_id"]
			if userID == "" || planID == "" {
				return fmt.Errorf("%w: checkout session %s names no user (metadata user_id or client_reference_id) or no plan (metadata plan_id)",
					billing.ErrInvalidInput, s.ID)
			}
			if _, err := h.pp.SyncSubscription(ctx, billing.SyncParams{
				Gateway: billing.GatewayStripe, GatewaySubscriptionID: subID, EventTime: ev.Created,
				UserID: userID, PlanID: planID, Actor: actor,
			}); err != nil {
				return err
			}
		}
		if paymentID != "" && s.Invoice != "" {
			if err := h.linkPayment(ctx, paymentID, string(s.Invoice), subID); err != nil {
				return err
			}
		}
		if latest != nil && latest.isPaid() && latest.subscriptionID() == subID {
			return h.applyPaidInvoice(ctx, latest)
		}
		return nil
	})
}

// linkPayment points the host's pending payment at the session's first invoice, so the
// invoice's payment approves it instead of recording a second payment. When the invoice is
// already recorded as another payment, the host's payment is cancelled as superseded.
func (h *webhookHandler) linkPayment(ctx context.Context, paymentID, invoiceID, subID string) error {
	pay, err := h.store.GetPayment(ctx, paymentID)
	if errors.Is(err, billing.ErrNotFound) {
		return fmt.Errorf("%w %q (checkout metadata payment_id)", billing.ErrUnknownPayment, paymentID)
	}
	if err != nil {
		return err
	}
	if pay.GatewayPaymentID == invoiceID || pay.Status != billing.PaymentPending {
		return nil
	}
	other, err := h.store.FindPaymentByGateway(ctx, billing.GatewayStripe, invoiceID)
	switch {
	case err == nil && other.ID != pay.ID:
		_, err = h.pp.ProcessCancelled(ctx, billing.FailParams{PaymentID: pay.ID,
			Reason: "superseded by Stripe invoice " + invoiceID + ", recorded as payment " + other.ID, Actor: actor})
		return err
	case err != nil && !errors.Is(err, billing.ErrNotFound):
		return err
	}
	pay.Gateway, pay.GatewayPaymentID, pay.GatewaySubscriptionID = billing.GatewayStripe, invoiceID, subID
	pay.UpdatedAt = billing.TruncateTime(h.clock.Now())
	if _, err := h.store.UpdatePayment(ctx, pay); err != nil {
		return fmt.Errorf("linking payment %s to Stripe invoice %s: %w", pay.ID, invoiceID, err)
	}
	return nil
}
