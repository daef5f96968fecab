package paypalgw

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/renewkit/renewkit/billing"
)

// Reversal event types: money that went back to the buyer.
const (
	EventSaleRefunded = "PAYMENT.SALE.REFUNDED"
	EventSaleReversed = "PAYMENT.SALE.REVERSED"
)

// kindReversal: a refund or reversal of a sale. Its value stays clear of the kinds in
// event.go.
const kindReversal eventKind = 64

// refundResource is the resource of PAYMENT.SALE.REFUNDED and PAYMENT.SALE.REVERSED (a v1
// refund: its sale_id names the sale), and the answer of GET /v1/payments/refund/{id}.
type refundResource struct {
	ID     string `json:"id"`
	SaleID string `json:"sale_id"`
	State  string `json:"state"`
	Reason string `json:"reason"`
	Amount struct {
		Total    string `json:"total"`
		Currency string `json:"currency"`
	} `json:"amount"`
	// TotalRefunded is what the sale has had refunded in all, when PayPal says (a v1
	// currency object, like the sale's transaction_fee).
	TotalRefunded struct {
		Value    string `json:"value"`
		Currency string `json:"currency"`
	} `json:"total_refunded_amount"`
}

// refund fetches GET /v1/payments/refund/{id}.
func (c *apiClient) refund(ctx context.Context, id string) (*refundResource, error) {
	if err := checkSubscriptionID(id); err != nil {
		return nil, fmt.Errorf("%w: refund id: %w", ErrMalformedEvent, err)
	}
	raw, err := c.get(ctx, "get refund", "/v1/payments/refund/"+id, fmt.Errorf("%w: refund %s", ErrSaleNotFound, id))
	if err != nil {
		return nil, err
	}
	var r refundResource
	if err := json.Unmarshal(raw, &r); err != nil || r.ID != id {
		return nil, badAnswer("get refund", fmt.Errorf("%w: asked for refund %s", ErrMalformedEvent, id))
	}
	return &r, nil
}

// reversal applies PAYMENT.SALE.REFUNDED and PAYMENT.SALE.REVERSED. The event only names
// the sale: its state is read from the API (refunded: a full refund; partially_refunded: the
// refund's total_refunded_amount, else its amount, is recorded; reversed: a chargeback), and
// the payment is the one renewkit recorded under the sale id. A sale renewkit never recorded
// is ignored.
func (h *handler) reversal(ctx context.Context, ev decodedEvent) (ignored bool, err error) {
	r := ev.Refund
	state, total, currency := strings.ToLower(r.State), r.Amount.Total, r.Amount.Currency
	if h.api != nil {
		s, err := h.api.sale(ctx, r.SaleID)
		if err != nil {
			return false, err
		}
		state, total, currency = strings.ToLower(s.State), s.Amount.Total, s.Amount.Currency
		if state == "partially_refunded" && r.ID != "" {
			if r, err = h.api.refund(ctx, r.ID); err != nil {
				return false, err
			}
			total, currency = r.Amount.Total, r.Amount.Currency
		}
	}
	if state == "partially_refunded" && r.TotalRefunded.Value != "" {
		total, currency = r.TotalRefunded.Value, r.TotalRefunded.Currency
	}
	params := billing.ReversalParams{Gateway: billing.GatewayPayPal, GatewayPaymentIDs: []string{r.SaleID},
		Reason: r.Reason, EventTime: ev.Created, Actor: billing.GatewayPayPal}
	switch {
	case state == "reversed" || ev.Type == EventSaleReversed && state == "refunded":
		params.Kind = billing.ReversalKindChargeback
	case ev.Type == EventSaleRefunded && (state == "refunded" || state == "partially_refunded"):
		amount, err := ParseAmount(strings.TrimPrefix(total, "-"), currency)
		if err != nil {
			return false, badAnswer("get sale", err)
		}
		params.Kind, params.Refunded = billing.ReversalKindRefund, amount
	default:
		h.log.InfoContext(ctx, "paypal reversal ignored: the API does not report the sale refunded or reversed",
			"event_id", ev.ID, "sale_id", r.SaleID, "state", state)
		return true, nil
	}
	_, err = h.core.ProcessReversal(ctx, params)
	if errors.Is(err, billing.ErrUnknownPayment) {
		h.log.InfoContext(ctx, "paypal reversal ignored: renewkit recorded no payment for the sale", "event_id", ev.ID, "sale_id", r.SaleID)
		return true, nil
	}
	return false, err
}
