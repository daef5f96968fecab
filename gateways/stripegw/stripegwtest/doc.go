// Package stripegwtest builds signed Stripe webhook deliveries for tests and benchmarks of a
// host that mounts a stripegw handler, as net/http/httptest does for HTTP servers.
//
// NewEvent wraps any object (an invoice, a subscription, a checkout session; a map, a
// stripe-go type or a struct) in a Stripe event envelope. Event.Request returns it as a POST
// signed the way Stripe signs deliveries (stripegw.SignPayload), ready for the handler's
// ServeHTTP; Event.Sign returns the payload and its Stripe-Signature header for a test that
// sends them itself. ExampleNewEvent shows a delivery end to end.
//
// Nothing here belongs in production code: the events say whatever the test says.
package stripegwtest
