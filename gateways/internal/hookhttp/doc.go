// Package hookhttp holds the HTTP plumbing the gateway webhook handlers share: the body
// limit and method check (ReadBody, ReadJSONBody), JSON answers (JSON, Error, Unavailable),
// and the mapping from a processing outcome to a status code and the X-Webhook-Outcome
// header (Respond, Deliver). Defaults fills a handler's nil logger and clock from its core.
//
// It is internal to renewkit's gateways: a host never imports it, but reaches it through
// the handlers that stripegw, paypalgw and mercadopagogw return, so every gateway answers
// the same way: 405 with Allow for a method other than POST, 413 for a body over MaxBody,
// 415 for a body that is not JSON, 4xx for bad input, and 5xx only where the gateway's retry
// can help.
package hookhttp
