// Package mercadopagogw connects renewkit to Mercado Pago (github.com/mercadopago/sdk-go):
// a webhook handler that turns payment and preapproval notifications into subscription
// changes through billing's PaymentProcessor, and a RenewalLookup over preapprovals for the
// renew job.
//
// # Configuration
//
// Config needs the application's AccessToken and, for the handler, the WebhookSecret (Your
// integrations > Webhooks > secret signature). Optional: Tolerance (reject signatures whose
// ts is further than this from the Service's clock, either way; default DefaultTolerance,
// 15 minutes, and the check cannot be turned off), AcceptLegacyIPN,
// BaseURL and HTTPClient (tests point them at a local server: sdk-go has no base URL option,
// so the package rewrites its requests), Timeout, MaxBodyBytes, Logger and Clock (default:
// the billing core's), ProcessInline. Validate joins every problem and never echoes a
// secret.
//
// # Shared vocabulary
//
// The Config fields every gateway spells the same are BaseURL, HTTPClient (*http.Client),
// MaxBodyBytes, Tolerance, Logger, Clock and ProcessInline; errors are *gateways.APIError
// and the gateways signature sentinels. Earlier names: MaxBody (now MaxBodyBytes), HTTPClient of type Doer (now *http.Client), the options WithClock, WithLogger and ProcessInline() (now Config fields), ErrInvalidSignature (gateways.ErrSignatureMismatch), ErrAPI (gateways.ErrAPI). The old sentinel and type
// names remain as deprecated aliases for one release; renamed Config fields cannot alias, so
// set the new ones. The handler takes the billing core, svc.Processor(), instead of the
// Service.
//
// # Mounting
//
// ExampleNewWebhookHandler mounts the handler. ExampleNewRenewalLookup builds the lookup
// the renew job asks, against a local server standing in for the API, and registers it as
// billing.Config{Renewals: map[string]billing.RenewalLookup{billing.GatewayMercadoPago: lookup}}.
//
// # Objects the API does not show yet
//
// Right after its notification a payment may not be visible at the API yet, so a 404 is
// not final here: the *gateways.APIError wraps billing.ErrNotFound and the inbox parks the
// event on its normal backoff (1 min, 5 min, ...), applies it once the API shows it, and
// ends it ignored ("unknown object", with a log line) after InboxConfig.ParkWait (72 h by
// default). The first delivery is answered 200 "accepted"; with ProcessInline a parked
// event is answered 503 so Mercado Pago redelivers it.
//
// Subscribe the application to the "Payments" and "Plans and subscriptions" topics.
//
// # Signature
//
// Mercado Pago sends x-signature: ts=<ts>,v1=<hex> and x-request-id. v1 is the hex
// HMAC-SHA256, keyed with the webhook secret, of the manifest
//
//	id:<data.id from the query string>;request-id:<x-request-id>;ts:<ts>;
//
// where a part whose value is absent is left out, as documented. The documentation asks for
// an alphanumeric data.id in lower case while the SDKs sign it as received; both are
// accepted. Comparison is constant-time. ts must be within Tolerance of the clock, so a
// captured notification cannot be replayed later. Only data.id from the query string is
// signed, so the body's data.id must equal it and the handler acts on the signed one. A
// request that fails verification is answered 400 before the body is parsed; nothing is
// stored.
// SignRequest signs as Mercado Pago does; package mercadopagogwtest builds whole signed
// requests for hosts' tests (mercadopagogwtest.NewRequest).
//
// # What the handler does
//
// POST only (405), Content-Type application/json (charset allowed; else 415 before the body
// is read), body up to 1 MiB (413), signature, then JSON (400 when malformed). Each
// notification is deduplicated through the billing webhook inbox by a key built from what
// the signature covers: "<type>:<data.id>:<ts>:<x-request-id>" (an x-request-id that is long
// or not [A-Za-z0-9_-] is replaced by its hash). The body's id is not signed and is not
// used, so a captured notification resent with another id is a duplicate and cannot occupy
// the key of a notification Mercado Pago sends later. A redelivery Mercado Pago signs afresh
// is a new key: it is read from the API again, and applying the same state twice changes
// nothing.
//
// Trusted from the body: nothing that decides an outcome. The type (which must match the
// query string's) selects which object is read, and data.id must equal the signed data.id
// of the query string; amounts, statuses, external_reference and periods are read from the
// payment or preapproval at the API.
//
// payment, approved: a charge of a preapproval (point_of_interaction.transaction_data.
// subscription_id, or metadata.preapproval_id) goes to ApplyGatewayPayment with the amount
// (transaction_amount in minor units, currency_id) and the period it pays for (billing_date
// plus the preapproval's frequency) and the charge time (date_approved). Any other payment
// approves the renewkit payment whose id is its external_reference with ProcessApproved,
// once the charged amount and currency cover the renewkit payment's (else 400). rejected:
// ProcessFailed with "rejected: <status_detail>" as the reason; a rejected preapproval
// charge is recorded with FailGatewayPayment as a failed payment of the subscription, which
// keeps its status (the preapproval's decides it).
// cancelled: ProcessCancelled. refunded and charged_back: ProcessCancelled for a payment
// still pending; for an approved one they are logged for an operator and ignored (renewkit
// has no refund transition). pending, in_process, authorized, in_mediation: ignored; a later
// notification brings the outcome. A payment without external_reference is not renewkit's
// and is ignored. For a charge of a preapproval Mercado Pago reports cancelled, the
// cancellation is applied first; an approved charge made before it is then recorded (its
// period kept, its payment email sent) without reviving the subscription or the access, so
// a late notification never brings an ended subscription back; a rejected one is ignored.
//
// subscription_preapproval: SyncSubscription with authorized → active (past_due while a
// charge is pending or failing), paused → past_due, cancelled → cancelled (access revoked),
// pending → pending, and last_modified as the event time, so older reads never move the
// subscription back. An authorized preapproval with no charge applied yet stays pending: its
// first charge activates it. The period moves with the charges, not with next_payment_date:
// a preapproval notification and its charge's arrive together in either order, and taking
// both would extend the period twice. The renew job's RenewalLookup does read
// next_payment_date.
//
// Other types are answered 200 and recorded as ignored. Legacy IPN (?topic=payment&id=...,
// unsigned, any Content-Type: it carries nothing in a JSON body) is refused with 400 unless
// Config.AcceptLegacyIPN is set; then the payment is read from the API and deduplicated by
// topic, id and the status read.
//
// Answers follow gateways/internal/hookhttp: 200 for processed, ignored and duplicate; 409
// while another delivery processes the same notification; 503 with Retry-After when the
// payment or preapproval is not visible at the API yet (404, inline only: see above), the API does not answer (or
// answers 408, 429, 5xx), or the subscription it needs is not there yet; 500 when the store
// fails or the API refuses the access token; 400 for input no retry fixes.
//
// # external_reference and what is trusted
//
// A preapproval renewkit should turn into a subscription carries external_reference =
// svc.SignReference(billing.Reference{UserID: u, PlanID: p}), a reference signed with
// billing.Config.ReferenceSecret; renewkit creates the subscription (pending, until a charge
// is applied) from the first notification that arrives, and only when the preapproval's
// preapproval_plan_id maps to that plan through Config.Plans (or, without a plan, its
// auto_recurring amount and currency cover the plan's price). A hand-written "user:plan",
// an edited or foreign reference, or another plan is answered 200 "rejected" and changes
// nothing. A one-off (Checkout Pro or Checkout API) payment carries the id of the pending
// payment the host created (or a signed reference naming it). Trusted from the body: only
// the topic and the signed data.id; the payment or preapproval (status, amount, currency,
// external_reference, plan, period) is read from the API. Every approved charge's amount
// and currency are compared with the payment or plan price: less, or another currency,
// records the payment failed with the reason, grants nothing and is answered 200
// "rejected".
//
// # Renewal lookup
//
// RenewalLookup.LookupSubscription reads the preapproval: status as above, period from the
// last charge to next_payment_date, no period while a charge is pending or failing or the
// preapproval is not authorized, amount from auto_recurring. Errors are *APIError carrying
// the HTTP status and whether a retry can help.
package mercadopagogw
