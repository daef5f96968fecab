// Package renewkit automates the subscription lifecycle of a SaaS backend: it warns
// subscribers before their plan expires, expires lapsed subscriptions and revokes access,
// reconciles renewals with Stripe, Mercado Pago and PayPal, turns their webhooks into
// subscription changes through one gateway-agnostic payment processor, cleans up stale
// sessions and payments, and sends the emails that go with each step.
//
// The module is a set of packages; this root package holds only documentation.
//
//   - billing: domain types, the interfaces adapters implement, the five jobs and the
//     PaymentProcessor (standard library only)
//   - scheduler: runs named jobs on cron schedules (gocron v2) with pause, resume, trigger,
//     run history, catch-up and one run per tick across replicas; the admin HTTP API
//   - notify: email templates (pt-BR, en) and channels: notify/smtpnotify, notify/lognotify
//   - store: store/memstore (in memory), store/mongostore (MongoDB), store/storetest
//   - gateways: gateways/stripegw, gateways/mercadopagogw, gateways/paypalgw; for a host's
//     tests, signed deliveries from gateways/stripegw/stripegwtest,
//     gateways/mercadopagogw/mercadopagogwtest and gateways/paypalgw/paypalgwtest
//   - examples/standalone: everything wired into one server (its own module, so its
//     dependencies stay out of the library's go.mod)
//
// See README.md for the two commands (run, test) and an embedding example.
package renewkit
