// Package gateways holds renewkit's payment gateway adapters, one package each, named so
// they never shadow the SDK they wrap:
//
//   - gateways/stripegw: Stripe (stripe-go v76): webhook handler and renewal lookup
//   - gateways/mercadopagogw: Mercado Pago (sdk-go): webhook handler, preapproval lookup
//   - gateways/paypalgw: PayPal (paypal/v4): webhook handler with online and offline
//     verification, subscription lookup
//
// # The shared contract
//
// A gateway package depends on billing through Core, which *billing.PaymentProcessor
// implements (svc.Processor()): the webhook inbox, the payment and subscription
// transitions, and read-only lookups. No gateway package holds the Store. Each Config spells
// the shared fields the same way: BaseURL, HTTPClient (*http.Client), MaxBodyBytes,
// Tolerance, Logger, Clock and ProcessInline. A failed API call is an *APIError (wrapping
// ErrAPI, then ErrUnavailable or ErrRejected); a rejected signature wraps
// ErrMissingSignature, ErrMalformedSignature, ErrSignatureMismatch or ErrStaleSignature.
//
// Every webhook handler accepts POST only, limits the body to 1 MiB (413), verifies the
// signature on the raw body before parsing (400 and nothing stored on failure), rejects
// malformed JSON with 400, deduplicates by the gateway's event id through the billing
// webhook inbox, and answers 200 "accepted" once the event is stored (5xx only when the
// inbox write fails); with Config.ProcessInline it answers the outcome instead: 200 for
// processed, duplicate and ignored events, 5xx only when a retry can help. Error bodies are
// JSON {"error": "..."}.
package gateways
