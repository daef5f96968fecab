// Package gateways holds renewkit's payment gateway adapters, one package each, named so
// they never shadow the SDK they wrap:
//
//   - gateways/stripegw: Stripe (stripe-go v76): webhook handler and renewal lookup
//   - gateways/mercadopagogw: Mercado Pago (sdk-go): webhook handler, preapproval lookup
//   - gateways/paypalgw: PayPal (paypal/v4): webhook handler with online and offline
//     verification, subscription lookup
//
// Every webhook handler accepts POST only, limits the body to 1 MiB (413), verifies the
// signature on the raw body before parsing (400 and nothing stored on failure), rejects
// malformed JSON with 400, deduplicates by the gateway's event id through the billing
// webhook inbox, answers 200 for processed, duplicate and ignored events, and 5xx only when a
// retry can help (store or gateway unavailable, an event that arrived before the one it
// depends on). Error bodies are JSON {"error": "..."}.
package gateways
