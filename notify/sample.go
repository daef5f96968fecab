package notify

import (
	"time"

	"github.com/renewkit/renewkit/billing"
)

// SampleData returns fixed, realistic data for a kind in a locale: what the preview
// handler shows, what NewRenderer renders to prove the templates, and what golden tests
// compare. pt-BR samples are in BRL and America/Sao_Paulo; others in USD and
// America/New_York.
func SampleData(kind billing.NotificationKind, locale string) Data {
	n := SampleNotification(kind, locale)
	return Data{Name: n.To.Name, Email: n.To.Email, TimeZone: n.To.TimeZone, NotificationData: n.Data}
}

// SampleNotification is SampleData as a whole notification, with a recipient and a key.
func SampleNotification(kind billing.NotificationKind, locale string) billing.Notification {
	loc, ok := canonicalLocale(locale)
	if !ok {
		loc = LocalePtBR
	}
	to := billing.Recipient{UserID: "user_123", Email: "joao.silva@example.com", Name: "João Silva",
		Locale: LocalePtBR, TimeZone: "America/Sao_Paulo"}
	price := billing.Money{Amount: 4990, Currency: "BRL"}
	plan := "Premium"
	if loc == LocaleEn {
		to = billing.Recipient{UserID: "user_123", Email: "jane.doe@example.com", Name: "Jane Doe",
			Locale: LocaleEn, TimeZone: "America/New_York"}
		price = billing.Money{Amount: 4990, Currency: "USD"}
	}
	start := time.Date(2026, time.February, 18, 17, 30, 0, 0, time.UTC)
	end := time.Date(2026, time.March, 18, 17, 30, 0, 0, time.UTC)
	d := billing.NotificationData{
		PlanName:       plan,
		SubscriptionID: "sub_8f3a2c",
		Amount:         price,
		PeriodStart:    start,
		PeriodEnd:      end,
		Gateway:        billing.GatewayStripe,
	}
	switch kind {
	case billing.NotificationKindExpiring:
		d.DaysRemaining = 3
		d.Gateway = billing.GatewayManual
	case billing.NotificationKindRenewalUpcoming:
		d.DaysRemaining = 3
	case billing.NotificationKindExpired:
		d.PeriodStart, d.PeriodEnd = start.AddDate(0, -1, 0), start
		d.Gateway = billing.GatewayManual
	case billing.NotificationKindRenewed:
		d.PeriodStart, d.PeriodEnd = end, end.AddDate(0, 1, 0)
	case billing.NotificationKindPaymentSuccessful, billing.NotificationKindWelcome:
		d.PaymentID = "pay_51c9e0"
		d.Gateway = billing.GatewayMercadoPago
	case billing.NotificationKindPaymentFailed:
		d.PaymentID = "pay_51c9e0"
		d.Reason = "card_declined"
		if loc == LocalePtBR {
			d.Reason = "cartão recusado"
		}
	case billing.NotificationKindPaymentReversed:
		d.PaymentID = "pay_51c9e0"
		d.Reason = string(billing.PaymentStatusRefunded)
		d.PeriodEnd = start.AddDate(0, 0, 9)
	case billing.NotificationKindOperatorAlert:
		to = billing.Recipient{Email: "ops@example.com", Name: "Ops", Locale: loc, TimeZone: to.TimeZone}
		d = billing.NotificationData{
			JobID:            "renew_subscriptions",
			RunID:            "run_20260318_0200",
			Error:            "stripe: request timed out after 30s",
			ConsecutiveFails: 3,
		}
	}
	return billing.Notification{
		Kind: kind,
		Key:  string(kind) + ":sample:" + loc,
		To:   to,
		Data: d,
	}
}
