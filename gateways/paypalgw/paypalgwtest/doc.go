// Package paypalgwtest signs PayPal webhook deliveries for tests of a host that mounts a
// paypalgw handler, as net/http/httptest does for HTTP servers.
//
// A Signer plays PayPal's side of offline verification: it issues its own signing
// certificate from a test CA, serves it over TLS on 127.0.0.1, and signs bodies into the
// PAYPAL-* transmission headers (paypalgw.SignedMessage is what it signs); Signer.Request
// returns a signed delivery ready for the handler's ServeHTTP. Signer.Config
// returns a paypalgw.Config that trusts exactly that CA, server and certificate name, so a
// test exercises the handler's real verification path without reaching PayPal. Options set
// the certificate's validity and names, to test expired or misnamed certificates.
// ExampleNewSigner shows a delivery end to end.
//
// Nothing here belongs in production code: a Signer's certificate is trusted only by the
// Config it returns.
package paypalgwtest
