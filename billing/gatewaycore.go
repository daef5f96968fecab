package billing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
)

// The methods in this file make *PaymentProcessor the whole of what a gateway adapter needs
// from billing (the gateways.Core interface): the webhook inbox, the read-only lookups its
// mapping depends on, and the gateway-specific writes, so the rules and the locks around
// every write live here and an adapter never holds the Store.

// AcceptWebhookEvent stores a verified event in the inbox (see Service.AcceptWebhookEvent).
func (pp *PaymentProcessor) AcceptWebhookEvent(ctx context.Context, ev WebhookEvent) (EventOutcome, error) {
	return pp.s.AcceptWebhookEvent(ctx, ev)
}

// HandleWebhookEvent stores and processes an event in the request (see
// Service.HandleWebhookEvent).
func (pp *PaymentProcessor) HandleWebhookEvent(ctx context.Context, ev WebhookEvent, process func(ctx context.Context) (ignored bool, err error)) (EventOutcome, error) {
	return pp.s.HandleWebhookEvent(ctx, ev, process)
}

// RegisterWebhookProcessor sets how the inbox worker applies the events of gateway (see
// Service.RegisterWebhookProcessor).
func (pp *PaymentProcessor) RegisterWebhookProcessor(gateway string, p WebhookProcessor) error {
	return pp.s.RegisterWebhookProcessor(gateway, p)
}

// VerifyReference checks a reference signed with Config.ReferenceSecret (see
// Service.VerifyReference).
func (pp *PaymentProcessor) VerifyReference(ref string) (Reference, error) {
	return pp.s.VerifyReference(ref)
}

// FindSubscriptionByGateway returns the subscription with the gateway's id, ErrNotFound
// when renewkit has none.
func (pp *PaymentProcessor) FindSubscriptionByGateway(ctx context.Context, gateway, gatewaySubscriptionID string) (Subscription, error) {
	return pp.s.store.FindSubscriptionByGateway(ctx, gateway, gatewaySubscriptionID)
}

// FindPaymentByGateway returns the payment with the gateway's id, ErrNotFound when renewkit
// has none.
func (pp *PaymentProcessor) FindPaymentByGateway(ctx context.Context, gateway, gatewayPaymentID string) (Payment, error) {
	return pp.s.store.FindPaymentByGateway(ctx, gateway, gatewayPaymentID)
}

// GetPlan returns a plan, ErrNotFound when there is none.
func (pp *PaymentProcessor) GetPlan(ctx context.Context, id string) (Plan, error) {
	return pp.s.store.GetPlan(ctx, id)
}

// Clock returns the service's clock: gateway adapters check signature timestamps against it.
func (pp *PaymentProcessor) Clock() Clock { return pp.s.clock }

// Logger returns the service's logger, the default of the gateway adapters'.
func (pp *PaymentProcessor) Logger() *slog.Logger { return pp.s.log }

// RecordCoveredPayment approves a gateway charge for a period the subscription already
// covers, without changing the subscription's period or status: an older invoice delivered
// late must not end the past_due state a newer failed attempt set (Stripe). p names the
// gateway, the charge (GatewayPaymentID, Amount) and the subscription
// (GatewaySubscriptionID, which must exist: ErrNotFound otherwise).
//
// The payment is found by its gateway id or created pending at the plan's price. A charge of
// another currency, or less than the payment costs, is refused by ProcessApproved
// (ErrChargeMismatch, recorded failed). Otherwise the payment is first marked applied on the
// subscription (Subscription.AppliedPayments, which ProcessApproved honours), under the
// gateway subscription's lock and conditionally on the record read, then approved: stored
// as approved, audited and its payment email sent, the subscription left as it is.
func (pp *PaymentProcessor) RecordCoveredPayment(ctx context.Context, p GatewayPaymentParams) (ProcessResult, error) {
	if p.Gateway == "" || p.GatewayPaymentID == "" || p.GatewaySubscriptionID == "" {
		return ProcessResult{}, fmt.Errorf("%w: gateway, gateway payment id and gateway subscription id are required", ErrInvalidInput)
	}
	pay, err := pp.gatewayPayment(ctx, GatewayPaymentParams{Gateway: p.Gateway, GatewayPaymentID: p.GatewayPaymentID,
		GatewaySubscriptionID: p.GatewaySubscriptionID, Amount: p.Amount}, true)
	if err != nil {
		return ProcessResult{}, err
	}
	approve := ApproveParams{PaymentID: pay.ID, GatewayPaymentID: p.GatewayPaymentID, GatewaySubscriptionID: p.GatewaySubscriptionID,
		Charged: p.Amount, Actor: p.Actor}
	if pay.Status != PaymentStatusApproved && (!strings.EqualFold(p.Amount.Currency, pay.Amount.Currency) || p.Amount.Amount < pay.Amount.Amount) {
		// Refused before it is marked applied: ProcessApproved records it failed.
		approve.GatewaySubscriptionID = ""
		return pp.ProcessApproved(ctx, approve)
	}
	if pay.Status != PaymentStatusApproved {
		err := pp.withKeyLock(ctx, gatewaySubLock(p.Gateway, p.GatewaySubscriptionID), func() error {
			sub, err := pp.s.store.FindSubscriptionByGateway(ctx, p.Gateway, p.GatewaySubscriptionID)
			if err != nil {
				return fmt.Errorf("subscription %s/%s: %w", p.Gateway, p.GatewaySubscriptionID, err)
			}
			if slices.Contains(sub.AppliedPayments, pay.ID) {
				return nil
			}
			next := sub
			next.AppliedPayments = slices.Clone(sub.AppliedPayments)
			next.markApplied(pay.ID)
			next.UpdatedAt = pp.s.now()
			if _, err := UpdateSubscription(ctx, pp.s.store, sub, next); err != nil {
				return fmt.Errorf("recording payment %s on subscription %s: %w", pay.ID, sub.ID, err)
			}
			return nil
		})
		if err != nil {
			return ProcessResult{}, err
		}
	}
	return pp.ProcessApproved(ctx, approve)
}

// LinkParams points a payment the host created before a checkout at the gateway charge
// that pays it.
type LinkParams struct {
	// PaymentID is renewkit's payment (the checkout's metadata names it).
	PaymentID             string
	Gateway               string
	GatewayPaymentID      string
	GatewaySubscriptionID string
	Actor                 string
}

// LinkCheckoutPayment points the host's pending payment at the gateway charge of its
// checkout (Stripe: the session's first invoice), so that charge approves it instead of
// recording a second payment. A payment that is not pending, or already linked, is left
// alone. When the charge is already recorded as another payment, the host's payment is
// cancelled as superseded. An unknown payment is ErrUnknownPayment. The write is
// conditional on the payment read, under the payment's lock.
func (pp *PaymentProcessor) LinkCheckoutPayment(ctx context.Context, p LinkParams) error {
	if p.PaymentID == "" || p.Gateway == "" || p.GatewayPaymentID == "" {
		return fmt.Errorf("%w: payment id, gateway and gateway payment id are required", ErrInvalidInput)
	}
	pay, err := pp.loadPayment(ctx, p.PaymentID)
	if err != nil {
		return err
	}
	if pay.GatewayPaymentID == p.GatewayPaymentID || pay.Status != PaymentStatusPending {
		return nil
	}
	other, err := pp.s.store.FindPaymentByGateway(ctx, p.Gateway, p.GatewayPaymentID)
	switch {
	case err == nil && other.ID != pay.ID:
		_, err = pp.ProcessCancelled(ctx, FailParams{PaymentID: pay.ID,
			Reason: "superseded by " + p.Gateway + " charge " + p.GatewayPaymentID + ", recorded as payment " + other.ID, Actor: p.Actor})
		return err
	case err != nil && !errors.Is(err, ErrNotFound):
		return err
	}
	return pp.withPaymentLock(ctx, pay.ID, func() error {
		read, err := pp.s.store.GetPayment(ctx, pay.ID) // re-read under the lock
		if err != nil {
			return err
		}
		if read.GatewayPaymentID == p.GatewayPaymentID || read.Status != PaymentStatusPending {
			return nil
		}
		next := read
		next.Gateway, next.GatewayPaymentID, next.GatewaySubscriptionID = p.Gateway, p.GatewayPaymentID, p.GatewaySubscriptionID
		next.UpdatedAt = pp.s.now()
		if err := pp.s.store.UpdatePayment(ctx, read, next); err != nil {
			return fmt.Errorf("linking payment %s to %s charge %s: %w", read.ID, p.Gateway, p.GatewayPaymentID, err)
		}
		return nil
	})
}
