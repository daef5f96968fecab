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
//   - billing/billingtest: the engine suite (jobs and processor, with their races) every
//     store runs
//   - scheduler: runs named jobs on cron schedules (gocron v2) with pause, resume, trigger,
//     run history, catch-up and one run per tick across replicas; the admin HTTP APIs (jobs,
//     webhook inbox, console); scheduler/dashboard: the web dashboard and operations console
//   - notify: email templates (pt-BR, en) and channels (FanOut, the signed Webhook):
//     notify/smtpnotify, notify/lognotify; notify/notifytest, the suite a transport passes
//   - store: store/memstore (in memory), store/mongostore (MongoDB, the legacy schema),
//     store/pgstore (PostgreSQL), store/storetest (the contract suite every store passes)
//   - gateways: gateways/stripegw, gateways/mercadopagogw, gateways/paypalgw; for a host's
//     tests, signed deliveries from gateways/stripegw/stripegwtest,
//     gateways/mercadopagogw/mercadopagogwtest and gateways/paypalgw/paypalgwtest
//   - examples/embedding: the README's embedding example as a complete, tested program
//   - examples/standalone: everything wired into one server (its own module, so its
//     dependencies stay out of the library's go.mod)
//
// See README.md for the two commands (run, test) and an embedding example.
package renewkit
