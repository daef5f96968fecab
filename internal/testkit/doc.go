// Package testkit holds the small test doubles renewkit's own tests share: a settable Clock,
// a recording Notifier that can be told to fail, and fixture builders (Plan, User,
// Subscription, Payment, Session) with Seed to insert them, and HasAccess. For the storm
// and benchmark tests: Shuffled (every event n times, in a seeded order), DeliverAll (serve
// them at once, each must get 200), DrainInbox and PastStuckLeases (wait for the webhook
// inbox to settle), SampleHeap (peak heap), Pool (stores shared
// across tests), and the store adapters' warn-and-expire benchmarks' shared world and
// measuring loop (SweepPlan, SweepSubscriptions, RunSweep, Sweeps; EnvInt reads BENCH_N
// and the like). MongoURI and PostgresURI read the test servers' addresses. It is internal:
// hosts use store/memstore and notify/lognotify as their doubles.
//
// # Example
//
// Example seeds a store, drives billing with the settable clock and makes a send fail.
package testkit
