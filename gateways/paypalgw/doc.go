// Package paypalgw connects PayPal subscriptions (github.com/plutov/paypal/v4) to renewkit:
// a webhook handler that verifies deliveries and turns BILLING.SUBSCRIPTION.* and
// PAYMENT.SALE.COMPLETED events into subscription changes through billing's
// PaymentProcessor, and a RenewalLookup for the renew job.
//
// # Configuration
//
// Config needs WebhookID (the id PayPal gave the listener) and, for events to change
// anything, ClientID and ClientSecret: with them every subscription event and every sale is
// read back from the PayPal API before anything changes (see "What is trusted"). Without
// them deliveries are verified offline and acknowledged, but never applied. Mode picks the live or
// sandbox API; BaseURL overrides it (tests point it at a local server). The zero value of
// every other field is a documented default (Logger and Clock: the billing core's).
// Validate reports every problem at once and never prints the secret; Config.LogValue
// redacts it from logs.
//
// # Shared vocabulary
//
// The Config fields every gateway spells the same are BaseURL, HTTPClient (*http.Client),
// MaxBodyBytes, Tolerance, Logger, Clock and ProcessInline; errors are *gateways.APIError
// and the gateways signature sentinels. Earlier names: APIBase (now BaseURL), MaxBody (now MaxBodyBytes), the options WithClock, WithLogger and ProcessInline() (now Config fields), ErrMissingHeader, ErrBadHeader and ErrStaleTransmission (gateways.ErrMissingSignature, ErrMalformedSignature, ErrStaleSignature), APIError.Name and DebugID (Code and RequestID). The old sentinel and type
// names remain as deprecated aliases for one release; renamed Config fields cannot alias, so
// set the new ones. The handler takes the billing core, svc.Processor(), instead of the
// Service.
//
// # Verification
//
// Every delivery is verified on the raw body before anything is parsed or stored; failures
// are answered 400 with a JSON error:
//
//   - The body must be sent as application/json (charset allowed), else 415 before it is
//     read.
//   - The five PAYPAL-* transmission headers are required; PAYPAL-AUTH-ALGO must be
//     SHA256withRSA; PAYPAL-TRANSMISSION-TIME must be within Tolerance (default 5 min) of the
//     billing Service's clock, in both directions (PayPal signs every retry afresh).
//   - PAYPAL-CERT-URL must be https on a host of CertHostAllowlist (default CertHosts():
//     api.paypal.com, api.sandbox.paypal.com, api-m.paypal.com, api-m.sandbox.paypal.com,
//     port 443) with PayPal's certificate path, CertPathPrefix followed by one name
//     (/v1/notifications/certs/CERT-...), and no query or fragment; anything else is
//     rejected before any request, in both modes.
//   - VerifyOffline (default): the message "transmission_id|transmission_time|webhook_id|
//     crc32(body) in decimal" is checked as an RSA PKCS#1 v1.5 SHA-256 signature against the
//     certificate downloaded from PAYPAL-CERT-URL. Downloads run in the delivery's context
//     (at most DefaultHTTPTimeout), at most CertFetchConcurrency at once over all URLs
//     (default 4), deduplicated while in flight, limited to 64 KiB, and redirects must stay on
//     the allowlist. Certificates are cached by URL (bounded, expiring with the certificate or
//     CertCacheTTL); failures are cached for CertFailureTTL (default 1 min), so a URL that does
//     not serve a usable certificate is not fetched for every delivery. The chain is verified
//     against RootCAs (default: the system roots) at the clock's time, so an expired
//     certificate is rejected, and the leaf must carry one of CertSANs (default
//     CertSANs(): messageverificationcerts.paypal.com and its sandbox counterpart, the
//     names PayPal's Java SDK requires of the signer) as a DNS subject alternative name. The signed message
//     covers the body only through its CRC32, and a different body with the same CRC32 is
//     easy to make, so an offline-verified body proves nothing on its own (see "What is
//     trusted").
//   - VerifyOnline: PayPal's POST /v1/notifications/verify-webhook-signature is asked for every
//     delivery (the SDK's VerifyWebhookSignature, OAuth tokens handled by the SDK);
//     verification_status SUCCESS passes. An unreachable API is answered 503 so PayPal retries.
//
// # What is trusted
//
// Without ClientID and ClientSecret, a verified delivery is recorded in the inbox as
// ignored, logged and answered 200; it creates, activates, extends or ends nothing.
//
// With them, a verified event only says what to look at. Trusted from the body: the event
// id (inbox key), event_type, create_time (ordering fallback and CancelWait), the
// subscription id of a BILLING.SUBSCRIPTION.* event and the sale id of PAYMENT.SALE.COMPLETED
// (what to read); for BILLING.SUBSCRIPTION.PAYMENT.FAILED also the failure's time, amount and
// reason_code, which record a failed payment and grant nothing. Read from the API: the
// subscription (GET /v1/billing/subscriptions/{id}: status, next_billing_time,
// last_payment, custom_id, cycle counts) and the sale (GET /v1/payments/sale/{id}: state,
// amount, billing_agreement_id, create_time). A subscription, sale or refund the API
// answers 404 for is ignored with a log line (200; in the inbox: ignored at its first
// attempt, not parked): PayPal's objects are readable once their events are sent, so no
// retry makes one appear.
//
// Never trusted: custom_id and plan_id, which the buyer's browser sets (PayPal's JS SDK:
// subscription.create({plan_id, custom_id})), and every amount in the body. A subscription
// renewkit does not know is created only when custom_id is a reference signed with
// billing.Config.ReferenceSecret (billing.Service.SignReference) and the re-read plan_id
// maps through Config.Plans to the plan the reference names; otherwise the delivery is
// answered 200 "rejected", logged, and nothing changes. It is created pending: status
// events never grant or extend access, only sales do. Every sale's re-read amount and
// currency are compared with the plan's price; a sale of less, or in another currency, is
// recorded as a failed payment with the reason, audited, grants nothing and is answered
// 200 "rejected".
//
// # Events
//
//   - BILLING.SUBSCRIPTION.ACTIVATED, UPDATED, RE-ACTIVATED, SUSPENDED, CANCELLED, EXPIRED:
//     SyncSubscription with the mapped status (ACTIVE active, or past_due while its last
//     charge failed; SUSPENDED past_due; CANCELLED and EXPIRED cancelled, which revokes
//     access), period end billing_info.next_billing_time and event time the resource's
//     update_time / status_update_time (the event's create_time when absent), so an older
//     event delivered late is ignored. The period moves only for an ended subscription
//     (its last period); live periods advance with sales. An unknown subscription is
//     created pending from its signed custom_id and mapped plan_id (see "What is trusted").
//   - BILLING.SUBSCRIPTION.PAYMENT.FAILED: past_due as above, plus a failed payment keyed by
//     (subscription, billing_info.last_failed_payment.time), recorded with
//     FailGatewayPayment (reason_code as the reason), which sends the payment-failed email
//     once.
//   - PAYMENT.SALE.COMPLETED with billing_agreement_id (the subscription id): the sale is
//     read from the API; one it does not report completed for a subscription is ignored.
//     Otherwise a renewal charge applied with ApplyGatewayPayment (sale id as gateway payment
//     id, the API's amount.total converted exactly with ParseAmount, the period from the
//     re-fetched next_billing_time, and the sale's create_time as the charge time). When the
//     API reports the subscription CANCELLED or EXPIRED, that is applied first. A sale for a
//     subscription not known yet is answered 503 (PayPal redelivers it after the
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
// # custom_id and plan map
//
// Create PayPal subscriptions with custom_id = svc.SignReference(billing.Reference{UserID:
// u, PlanID: p}) (at most 127 characters, PayPal's limit) and map every PayPal plan to a
// renewkit plan in Config.Plans, e.g. {"P-5ML4271244454362WXNWU5NQ": "plan-pro"}.
//
// # Mounting
//
// ExampleNewWebhookHandler mounts the handler. ExampleNewRenewalLookup builds the lookup
// the renew job asks, against a local server standing in for the API, and registers it as
// billing.Config{Renewals: map[string]billing.RenewalLookup{billing.GatewayPayPal: lookup}}.
//
// # Testing hosts' integrations
//
// Package paypalgwtest (NewSigner) creates a CA, a signing certificate and an HTTPS server
// on 127.0.0.1 that serves it; Signer.Config is an offline Config trusting exactly that
// setup (add ClientID, ClientSecret and BaseURL for events to be applied), and Signer.Sign
// returns the PAYPAL-* headers for a body, so a host can post signed events to its own
// mounted handler.
package paypalgw
