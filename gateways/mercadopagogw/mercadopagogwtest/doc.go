// Package mercadopagogwtest builds signed Mercado Pago webhook notifications for tests of a
// host that mounts a mercadopagogw handler, as net/http/httptest does for HTTP servers.
//
// NewRequest returns a POST shaped as Mercado Pago delivers one: data.id and type in the
// query string, the x-request-id header and an x-signature header signed with the webhook
// secret (mercadopagogw.SignRequest, over mercadopagogw.Manifest), ready for the handler's
// ServeHTTP. ExampleNewRequest shows a delivery accepted and a wrong secret refused.
//
// Nothing here belongs in production code: the notifications say whatever the test says.
package mercadopagogwtest
