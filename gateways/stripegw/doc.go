// Package stripegw is renewkit's Stripe adapter (stripe-go v76): a webhook handler that
// turns Stripe events into billing.PaymentProcessor calls, and a RenewalLookup over the
// Subscriptions API for billing's renew job. The package is named so it never shadows the
// SDK's stripe package.
//
// # Configuration
//
// Config holds the secrets, the API endpoint and the handler's limits; each field documents
// its default. The handler needs WebhookSecret, RenewalLookup needs SecretKey.
// Secrets never appear in errors or logs; neither do signatures or bodies.
//
// # Shared vocabulary
//
// The Config fields every gateway spells the same are BaseURL, HTTPClient (*http.Client),
// MaxBodyBytes, Tolerance, Logger, Clock and ProcessInline; errors are *gateways.APIError
// and the gateways signature sentinels. Earlier names: BackendURL (now BaseURL), DefaultBackendURL (DefaultBaseURL), the options WithClock, WithLogger and ProcessInline() (now Config fields), ErrInvalidSignatureHeader (gateways.ErrMalformedSignature), ErrTimestampOutsideTolerance (gateways.ErrStaleSignature), ErrGatewayUnavailable and ErrGatewayRejected (gateways.ErrUnavailable, ErrRejected), APIError.ObjectID (ID). The old sentinel and type
// names remain as deprecated aliases for one release; renamed Config fields cannot alias, so
// set the new ones. The handler takes the billing core, svc.Processor(), instead of the
// Service.
//
// # Mounting
//
// ExampleNewWebhookHandler mounts the handler. ExampleNewRenewalLookup builds the lookup
// the renew job asks, against a local server standing in for the API, and registers it as
// billing.Config{Renewals: map[string]billing.RenewalLookup{billing.GatewayStripe: lookup}}.
//
// # Objects the API does not know
//
// With a SecretKey, an object the Stripe API answers 404 for is ignored with a log line
// (inline: 200 "ignored"; in the inbox: ignored at its first attempt). Stripe's objects are
// readable as soon as their events are sent, so no retry can make one appear; this is the
// inbox worker's "ignored", not "parked".
//
// # Verification
//
// A body not sent as application/json (a charset parameter is allowed) is answered 415
// before it is read; nothing is recorded. The Stripe-Signature header is checked on the raw body before anything is parsed or
// stored: the signed timestamp must be within Tolerance of the injected clock (either
// direction; stripe-go's own tolerance check calls time.Since, so it is disabled and this
// check replaces it), then the HMAC-SHA256 is checked by stripe-go's
// webhook.ValidatePayloadIgnoringTolerance. Missing header, malformed header, stale or
// future timestamp, wrong secret and tampered body are all answered 400 with nothing
// recorded. By default only the envelope is read next (id, type, created, and the id of
// the object whose events are applied in order; malformed: 400), the verified body is
// stored in the inbox and answered 200 "accepted"; the inbox worker decodes the object when
// it applies the event (an object renewkit cannot read fails, is retried on the backoff and
// ends dead, replayable from the admin API). With ProcessInline the whole event is decoded
// (malformed: 400), deduplicated by event id through
// billing.Service.HandleWebhookEvent and applied; hookhttp.Respond maps the outcome
// (200 processed, duplicate or ignored; 503 when the subscription does not exist yet,
// another delivery holds it or the API is unavailable; 400 for input a retry cannot fix,
// such as an object the API reports missing; 500 otherwise).
//
// # Events
//
//	checkout.session.completed     mode=subscription: create the subscription (pending) from
//	                               the signed reference in client_reference_id (or metadata
//	                               renewkit_reference); link metadata payment_id to the first
//	                               invoice. mode=payment: approve metadata payment_id (or the
//	                               reference's payment id) when paid, if amount_total and
//	                               currency cover the payment.
//	invoice.paid                   approve a payment (gateway payment id = invoice id,
//	                               amount_paid, currency) for the period of the invoice's
//	                               subscription line (lines.data[].period), not
//	                               invoice.period_start/end (the period that just ended).
//	invoice.payment_failed         a failed payment per attempt ("<invoice>/attempt-<n>",
//	                               billing.FailGatewayPayment: the payment-failed email
//	                               once); subscription past_due.
//	customer.subscription.created  status, cancel_at_period_end, event time (created: from
//	customer.subscription.updated  metadata renewkit_reference when unknown).
//	customer.subscription.deleted  cancelled: access revoked, expired email.
//	anything else                  200, recorded as ignored, logged at debug.
//
// Status mapping: active, trialing → active; past_due, unpaid, paused → past_due; canceled,
// incomplete_expired → cancelled; incomplete → pending.
//
// Periods advance only with money: through invoice.paid, or through a subscription event
// when (with a SecretKey) the API reports the latest invoice paid, in which case that
// invoice is recorded first. Stripe moves current_period_* when a period opens, before it is
// collected, so taking it from the body would grant an unpaid period. An ended
// subscription takes its last period (access is revoked anyway).
//
// Ordering: billing applies the charges and status changes of one subscription one at a
// time (its lock per gateway subscription; a delivery that finds it held is answered 503),
// subscription changes compare the event's created time with the newest applied
// (billing.SyncParams.EventTime), and a charge passes its time (status_transitions.paid_at,
// else the invoice.paid event's created) so an older status event is recognised as stale
// and a charge from before the subscription ended does not revive it. An invoice whose
// period the subscription already covers is recorded without extending it (a past_due
// subscription also keeps its status), a payment_failed for an invoice already paid does
// not set past_due, and events for a subscription that does not exist yet are answered 503
// so Stripe redelivers them after the creating event.
//
// # Trusting the body
//
// With a SecretKey the handler re-fetches what an event names (the invoice for invoice.*,
// the subscription for customer.subscription.* and payment_failed, the session and its
// subscription for checkout) and acts on the API's answer: amounts and statuses in the
// body are not used.
//
// Never trusted on their own: client_reference_id (a buyer sets it on Payment Links),
// metadata, price ids and amounts. A subscription renewkit does not know is created only
// from a reference signed with billing.Config.ReferenceSecret (billing.Service.SignReference)
// whose plan every price of the subscription's items maps to (Config.Prices; with a
// SecretKey the items are re-read); otherwise the event is answered 200 "rejected", logged,
// and nothing changes. Every paid invoice (amount_paid, currency) and one-off Checkout
// (amount_total, currency) is compared with the payment's amount (the plan's price for
// invoices): less, or another currency, records the payment failed with the reason, grants
// nothing and is answered 200 "rejected". A zero-amount invoice (a free trial) therefore
// grants nothing either. Fetched objects are rendered in the API version stripe-go v76 pins
// (2023-10-16) whatever the endpoint's version. Without a SecretKey the signed body is
// trusted; that is the mode for tests and for deployments that cannot reach the API.
//
// # API versions
//
// webhook.ConstructEvent rejects events whose api_version is not 2023-10-16. This package
// accepts any version (the equivalent of IgnoreAPIVersionMismatch) because it decodes only
// these fields, with its own structs, and reads each where every version since 2020-08-27
// puts it: event id, type, created, data.object; invoice id, status, paid, amount_paid,
// amount_due, currency, attempt_count, status_transitions.paid_at, subscription,
// lines.data[].type, .proration, .period.start/.end; subscription id, status, cancel_at_period_end,
// current_period_start/end, metadata, latest_invoice; checkout session id, mode,
// payment_status, subscription, invoice, payment_intent, client_reference_id, metadata.
// Version 2025-03-31.basil moved three of them, and the decoder reads the new places too:
// invoice.subscription → invoice.parent.subscription_details.subscription; a line's
// type/subscription/proration → line.parent.subscription_item_details; a subscription's
// current_period_* → items.data[].current_period_*. A field that is absent decodes as
// empty, which is handled as "not stated" (no period: the plan's cycle applies).
//
// # Testing
//
// SignPayload signs a payload as Stripe does; package stripegwtest builds whole signed
// deliveries for hosts' tests (stripegwtest.NewEvent). The package's tests run the
// RenewalLookup against stripe-mock v0.180.0 (scripts/stripe-mock start; STRIPE_MOCK_URL),
// skipping without it unless CI=true. Fuzz targets: FuzzParseSignatureHeader and
// FuzzDecodeEvent.
package stripegw
