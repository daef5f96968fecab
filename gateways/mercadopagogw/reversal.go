package mercadopagogw

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/mercadopago/sdk-go/pkg/payment"

	"github.com/renewkit/renewkit/billing"
)

// statusDetailReimbursed is the status_detail of a charged_back payment whose chargeback
// Mercado Pago covered (the dispute was decided for the seller).
const statusDetailReimbursed = "reimbursed"

// reversal applies a refunded or charged_back payment, as read from the API, through
// billing's ProcessReversal. The payment is the one renewkit recorded under the Mercado Pago
// payment id when it approved it; external_reference is not used, so a payment someone else
// refunded never touches a renewkit payment it names. A payment renewkit never approved is
// ignored.
func (h *handler) reversal(ctx context.Context, pay *payment.Response) (bool, error) {
	gwID := strconv.Itoa(pay.ID)
	params := billing.ReversalParams{Gateway: billing.GatewayMercadoPago, GatewayPaymentIDs: []string{gwID},
		Reason: pay.StatusDetail, EventTime: pay.DateLastUpdated, Actor: actor}
	switch {
	case pay.Status == paymentChargedBack && pay.StatusDetail == statusDetailReimbursed:
		params.Kind = billing.ReversalKindDisputeWon
	case pay.Status == paymentChargedBack:
		params.Kind = billing.ReversalKindChargeback
	default: // refunded, or approved with part of it refunded
		refunded := pay.TransactionAmountRefunded
		if pay.Status == paymentRefunded && refunded <= 0 {
			refunded = pay.TransactionAmount
		}
		amount, err := toMoney(refunded, pay.CurrencyID)
		if err != nil {
			return false, fmt.Errorf("refund of mercadopago payment %s: %w", gwID, err)
		}
		params.Kind, params.Refunded = billing.ReversalKindRefund, amount
	}
	_, err := h.core.ProcessReversal(ctx, params)
	if errors.Is(err, billing.ErrUnknownPayment) {
		h.log.InfoContext(ctx, "mercadopago reversal ignored: renewkit approved no payment with this id", "payment_id", gwID, "status", pay.Status)
		return true, nil
	}
	return false, err
}

// partialRefund applies an approved payment with part of its amount refunded: the approval
// first (as for any approved payment), then the refunded amount is recorded.
func (h *handler) partialRefund(ctx context.Context, pay *payment.Response) (bool, error) {
	var ignored bool
	var err error
	if preID := preapprovalOf(pay); preID != "" {
		ignored, err = h.applyCharge(ctx, pay, preID)
	} else {
		ignored, err = h.approveCheckout(ctx, pay)
	}
	if err != nil || ignored {
		return ignored, err
	}
	_, err = h.reversal(ctx, pay)
	return false, err
}
