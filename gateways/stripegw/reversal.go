package stripegw

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/stripe/stripe-go/v76"

	"github.com/renewkit/renewkit/billing"
)

// Reversal event types: money that went back to the buyer.
const (
	EventChargeRefunded = "charge.refunded"
	EventDisputeCreated = "charge.dispute.created"
	EventDisputeClosed  = "charge.dispute.closed"
)

// wireCharge is the part of a charge renewkit reads.
type wireCharge struct {
	ID             string `json:"id"`
	Object         string `json:"object"`
	Amount         int64  `json:"amount"`
	AmountRefunded int64  `json:"amount_refunded"`
	Currency       string `json:"currency"`
	Refunded       bool   `json:"refunded"`
	Invoice        ref    `json:"invoice"`
	PaymentIntent  ref    `json:"payment_intent"`
	Created        int64  `json:"created"`
}

// wireDispute is the part of a dispute renewkit reads.
type wireDispute struct {
	ID            string `json:"id"`
	Object        string `json:"object"`
	Charge        ref    `json:"charge"`
	PaymentIntent ref    `json:"payment_intent"`
	Amount        int64  `json:"amount"`
	Currency      string `json:"currency"`
	Status        string `json:"status"`
	Reason        string `json:"reason"`
	Created       int64  `json:"created"`
}

func reversalEvent(typ string) bool {
	return typ == EventChargeRefunded || typ == EventDisputeCreated || typ == EventDisputeClosed
}

// decodeReversal decodes the charge or dispute of a reversal event into ev and returns its id.
func decodeReversal(ev *decodedEvent, obj []byte) (string, error) {
	if ev.Type == EventChargeRefunded {
		ev.Charge = new(wireCharge)
		err := json.Unmarshal(obj, ev.Charge)
		return ev.Charge.ID, err
	}
	ev.Dispute = new(wireDispute)
	err := json.Unmarshal(obj, ev.Dispute)
	return ev.Dispute.ID, err
}

func (a *api) charge(ctx context.Context, id string) (*wireCharge, error) {
	p := &stripe.ChargeParams{}
	p.Context = ctx
	c, err := a.c.Charges.Get(id, p)
	if err != nil {
		return nil, apiError("retrieve charge", id, err)
	}
	w := &wireCharge{ID: c.ID, Object: c.Object, Amount: c.Amount, AmountRefunded: c.AmountRefunded,
		Currency: string(c.Currency), Refunded: c.Refunded, Created: c.Created}
	if c.Invoice != nil {
		w.Invoice = ref(c.Invoice.ID)
	}
	if c.PaymentIntent != nil {
		w.PaymentIntent = ref(c.PaymentIntent.ID)
	}
	return w, nil
}

func (a *api) dispute(ctx context.Context, id string) (*wireDispute, error) {
	p := &stripe.DisputeParams{}
	p.Context = ctx
	d, err := a.c.Disputes.Get(id, p)
	if err != nil {
		return nil, apiError("retrieve dispute", id, err)
	}
	w := &wireDispute{ID: d.ID, Object: d.Object, Amount: d.Amount, Currency: string(d.Currency),
		Status: string(d.Status), Reason: string(d.Reason), Created: d.Created}
	if d.Charge != nil {
		w.Charge = ref(d.Charge.ID)
	}
	if d.PaymentIntent != nil {
		w.PaymentIntent = ref(d.PaymentIntent.ID)
	}
	return w, nil
}

// disputeKind maps a dispute's status to what it means for the payment: funds withdrawn
// (needs_response, under_review, lost) is a chargeback, won gives them back. Inquiries
// (warning_*) withdraw nothing and a dispute closed because the charge was refunded is the
// refund's business: both are ignored.
func disputeKind(status string) (billing.ReversalKind, bool) {
	switch status {
	case "needs_response", "under_review", "lost":
		return billing.ReversalKindChargeback, true
	case "won":
		return billing.ReversalKindDisputeWon, true
	}
	return "", false
}

// reversal applies charge.refunded and charge.dispute.created/closed. With a SecretKey the
// charge (and the dispute) are read from the API and the body only names them: the amount
// refunded and the dispute status come from Stripe. The payment is the one renewkit recorded
// under the charge's invoice (a subscription charge), else its payment intent or the charge
// itself (a Checkout payment). A charge renewkit never recorded is ignored.
func (h *webhookHandler) reversal(ctx context.Context, ev decodedEvent) (bool, error) {
	ch, d := ev.Charge, ev.Dispute
	var err error
	if d != nil {
		if h.api != nil {
			if d, err = h.api.dispute(ctx, d.ID); err != nil {
				return false, err
			}
		}
		ch = &wireCharge{ID: string(d.Charge), PaymentIntent: d.PaymentIntent, Currency: d.Currency}
	}
	if h.api != nil && ch.ID != "" {
		if ch, err = h.api.charge(ctx, ch.ID); err != nil {
			return false, err
		}
	}
	params := billing.ReversalParams{Gateway: billing.GatewayStripe, EventTime: ev.Created, Actor: actor,
		GatewayPaymentIDs: []string{string(ch.Invoice), string(ch.PaymentIntent), ch.ID}}
	log := h.log.With("event_id", ev.ID, "type", ev.Type, "charge", ch.ID)
	if d == nil {
		if ch.AmountRefunded <= 0 {
			log.InfoContext(ctx, "stripe refund ignored: the charge reports nothing refunded")
			return true, nil
		}
		params.Kind, params.Refunded = billing.ReversalKindRefund, billing.Money{Amount: ch.AmountRefunded, Currency: currency(ch.Currency)}
	} else {
		kind, ok := disputeKind(d.Status)
		if !ok || ev.Type == EventDisputeClosed && kind == billing.ReversalKindChargeback && d.Status != "lost" {
			log.InfoContext(ctx, "stripe dispute ignored: no funds withdrawn or returned", "dispute", d.ID, "status", d.Status)
			return true, nil
		}
		params.Kind, params.Reason = kind, d.Reason
	}
	_, err = h.core.ProcessReversal(ctx, params)
	if errors.Is(err, billing.ErrUnknownPayment) {
		log.InfoContext(ctx, "stripe reversal ignored: renewkit recorded no payment for the charge")
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s of charge %s: %w", params.Kind, ch.ID, err)
	}
	return false, nil
}
