// Package paypalgw connects PayPal subscriptions (github.com/plutov/paypal/v4) to renewkit:
// a webhook handler that verifies deliveries and turns BILLING.SUBSCRIPTION.* and
// PAYMENT.SALE.COMPLETED events into subscription changes through billing's
// PaymentProcessor, and a RenewalLookup for the renew job.
//
// # Configuration
//
// Config needs WebhookID (the id PayPal gave the listener). ClientID and ClientSecret are
// optional for offline verification; when set, every subscription event and every sale is
// checked against the Subscriptions API (GET /v1/billing/subscriptions/{id}) and the status,
// next_billing_time and custom_id come from there, not from the body. Mode picks the live or
// sandbox API; APIBase overrides it (tests point it at a local server). The zero value of
// every other field is a documented default. Validate reports every problem at once and
// never prints the secret; Config.LogValue redacts it from logs.
//
// # Verification
//
// Every delivery is verified on the raw body before anything is parsed or stored; failures
// are answered 400 with a JSON error:
//
//   - The five PAYPAL-* transmission headers are required; PAYPAL-AUTH-ALGO must be
//     SHA256withRSA; PAYPAL-TRANSMISSION-TIME must be within Tolerance (default 5 min) of the
//     billing Service's clock, in both directions (PayPal signs every retry afresh).
//   - PAYPAL-CERT-URL must be https on a host of CertHostAllowlist (default DefaultCertHosts:
//     api.paypal.com, api.sandbox.paypal.com, api-m.paypal.com, api-m.sandbox.paypal.com,
//     port 443); anything else is rejected before any request, in both modes.
//   - VerifyOffline (default): the message "transmission_id|transmission_time|webhook_id|
//     crc32(body) in decimal" is checked as an RSA PKCS#1 v1.5 SHA-256 signature against the
//     certificate downloaded from PAYPAL-CERT-URL. Downloads are cached by URL (bounded,
//     expiring with the certificate or CertCacheTTL), deduplicated while in flight, limited to
//     64 KiB, and redirects must stay on the allowlist. The chain is verified against RootCAs
//     (default: the system roots) at the clock's time, so an expired certificate is rejected.
//   - VerifyOnline: PayPal's POST /v1/notifications/verify-webhook-signature is asked for every
//     delivery (the SDK's VerifyWebhookSignature, OAuth tokens handled by the SDK);
//     verification_status SUCCESS passes. An unreachable API is answered 503 so PayPal retries.
//
// # Events
//
//   - BILLING.SUBSCRIPTION.ACTIVATED, UPDATED, RE-ACTIVATED, SUSPENDED, CANCELLED, EXPIRED:
//     SyncSubscription with the mapped status (ACTIVE active, or past_due while its last
//     charge failed; SUSPENDED past_due; CANCELLED and EXPIRED cancelled, which revokes
//     access), period end billing_info.next_billing_time and event time the resource's
//     update_time / status_update_time (the event's create_time when absent), so an older
//     event delivered late is ignored. An unknown subscription is created from custom_id.
//   - BILLING.SUBSCRIPTION.PAYMENT.FAILED: past_due as above, plus a failed payment keyed by
//     (subscription, billing_info.last_failed_payment.time), recorded with
//     FailGatewayPayment (reason_code as the reason), which sends the payment-failed email
//     once.
//   - PAYMENT.SALE.COMPLETED with billing_agreement_id (the subscription id): a renewal
//     charge applied with ApplyGatewayPayment (sale id as gateway payment id, amount.total
//     converted exactly with ParseAmount; with credentials the period comes from the
//     re-fetched next_billing_time, and the sale's create_time as the charge time). A sale
//     for a subscription not known yet is answered 503 (PayPal redelivers it after the
//     activation). A sale PayPal collected before the subscription ended is recorded
//     without reviving it; a later one makes older status events stale.
//   - Anything else is answered 200 and recorded as ignored.
//
// Deliveries are deduplicated by event id through billing's webhook inbox, and billing
// applies the charges and status changes of one subscription one at a time (a delivery
// that finds its lock held is answered 503). A CANCELLED or EXPIRED event that arrives
// before the charges PayPal counts in billing_info.cycle_executions is answered 503 for up
// to CancelWait (default 6h), so the subscription ends after its charges are applied
// whatever the delivery order.
//
// # custom_id convention
//
// Create PayPal subscriptions with custom_id = CustomID(userID, planID), i.e.
// "user_id:plan_id" with renewkit's ids, so the webhook can create the renewkit subscription
// when PayPal activates it.
//
// # Example
//
//	h, err := paypalgw.NewWebhookHandler(svc, paypalgw.Config{
//		WebhookID:    os.Getenv("PAYPAL_WEBHOOK_ID"),
//		ClientID:     os.Getenv("PAYPAL_CLIENT_ID"),
//		ClientSecret: os.Getenv("PAYPAL_CLIENT_SECRET"),
//		Mode:         paypalgw.ModeSandbox,
//	})
//	if err != nil {
//		return err
//	}
//	mux.Handle("POST /api/payments/paypal/webhook", h)
//
//	lookup, err := paypalgw.NewRenewalLookup(paypalgw.Config{ClientID: id, ClientSecret: secret})
//	// billing.Config{Renewals: map[string]billing.RenewalLookup{billing.GatewayPayPal: lookup}}
//
// # Testing hosts' integrations
//
// NewTestSigner creates a CA, a signing certificate and an HTTPS server on 127.0.0.1 that
// serves it; TestSigner.Config is an offline Config trusting exactly that setup, and
// TestSigner.Sign returns the PAYPAL-* headers for a body, so a host can post signed events
// to its own mounted handler.
package paypalgw
