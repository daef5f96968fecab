package mercadopagogw

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/mercadopago/sdk-go/pkg/payment"
	"github.com/mercadopago/sdk-go/pkg/preapproval"

	"github.com/renewkit/renewkit/billing"
)

// Payment statuses (payment.status) and what the handler does with each.
const (
	paymentApproved    = "approved"     // ProcessApproved / ApplyGatewayPayment
	paymentRejected    = "rejected"     // ProcessFailed, reason status_detail
	paymentCancelled   = "cancelled"    // ProcessCancelled
	paymentRefunded    = "refunded"     // ProcessReversal (full refund)
	paymentChargedBack = "charged_back" // ProcessReversal (chargeback; status_detail reimbursed: dispute won)
)

// subscriptionStatus maps a preapproval's status; an authorized preapproval with a charge
// pending or failing (summarized.pending_charge_quantity > 0) is past_due. Unknown
// statuses map to "" (keep the current one).
func subscriptionStatus(pre *preapproval.Response) billing.SubscriptionStatus {
	st, _ := preapprovalStatus(pre.Status)
	if st == billing.SubscriptionStatusActive && pre.Summarized.PendingChargeQuantity > 0 {
		return billing.SubscriptionStatusPastDue
	}
	return st
}

// Preapproval statuses and renewkit's counterparts.
func preapprovalStatus(s string) (billing.SubscriptionStatus, bool) {
	switch s {
	case "authorized":
		return billing.SubscriptionStatusActive, true
	case "paused":
		return billing.SubscriptionStatusPastDue, true
	case "cancelled":
		return billing.SubscriptionStatusCancelled, true
	case "pending":
		return billing.SubscriptionStatusPending, true
	}
	return "", false
}

// preapprovalPeriod is the period a preapproval has paid for: it ends at next_payment_date
// (the next charge) and starts at the last charge. While a charge is pending or failing
// (summarized.pending_charge_quantity > 0), or the preapproval is paused or not authorized,
// no period is reported, so a late charge never extends access it did not pay for.
func preapprovalPeriod(pre *preapproval.Response) (start, end time.Time) {
	if pre.Status != "authorized" || pre.Summarized.PendingChargeQuantity > 0 {
		return time.Time{}, time.Time{}
	}
	end = pre.NextPaymentDate
	if end.IsZero() {
		return time.Time{}, time.Time{}
	}
	if lc := pre.Summarized.LastChargedDate; !lc.IsZero() && lc.Before(end) {
		start = lc
	}
	return start, end
}

// eventTime is the preapproval's own timestamp: last_modified, else date_created.
func eventTime(pre *preapproval.Response) time.Time {
	if !pre.LastModified.IsZero() {
		return pre.LastModified
	}
	return pre.DateCreated
}

// addFrequency adds n units of Mercado Pago's frequency_type ("months", "days").
func addFrequency(t time.Time, n int, unit string) (time.Time, bool) {
	if n <= 0 || t.IsZero() {
		return time.Time{}, false
	}
	switch unit {
	case "months":
		return billing.AddMonths(t, n), true
	case "days":
		return t.AddDate(0, 0, n), true
	}
	return time.Time{}, false
}

// preapprovalOf returns the preapproval a payment charged for, or "". Mercado Pago puts it in
// point_of_interaction.transaction_data.subscription_id (type "SUBSCRIPTIONS"); integrations
// that create charges themselves often use metadata.preapproval_id.
func preapprovalOf(p *payment.Response) string {
	if id := p.PointOfInteraction.TransactionData.SubscriptionID; id != "" {
		return id
	}
	if id, ok := p.Metadata["preapproval_id"].(string); ok {
		return id
	}
	return ""
}

// chargePeriod is the period a preapproval charge pays for: from its billing date (or
// approval) for one frequency of the preapproval.
func chargePeriod(p *payment.Response, pre *preapproval.Response) (start, end time.Time) {
	start = p.DateApproved
	if bd := p.PointOfInteraction.TransactionData.BillingDate; bd != "" {
		if t, err := time.Parse(time.DateOnly, bd); err == nil {
			start = t
		} else if t, err := time.Parse(time.RFC3339, bd); err == nil {
			start = t
		}
	}
	if start.IsZero() {
		start = p.DateCreated
	}
	end, ok := addFrequency(start, pre.AutoRecurring.Frequency, pre.AutoRecurring.FrequencyType)
	if !ok {
		return time.Time{}, time.Time{}
	}
	return start, end
}

// zeroDecimal lists the ISO 4217 currencies without minor units Mercado Pago charges in.
var zeroDecimal = map[string]bool{"CLP": true, "PYG": true, "JPY": true, "KRW": true, "VND": true}

// toMoney converts a decimal amount in currency to minor units.
func toMoney(amount float64, currency string) (billing.Money, error) {
	currency = strings.ToUpper(currency)
	if math.IsNaN(amount) || math.IsInf(amount, 0) || amount < 0 || amount > 1e13 {
		return billing.Money{}, fmt.Errorf("%w: amount out of range", billing.ErrInvalidAmount)
	}
	scale := 100.0
	if zeroDecimal[currency] {
		scale = 1
	}
	m := billing.Money{Amount: int64(math.Round(amount * scale)), Currency: currency}
	return m, m.Validate()
}
