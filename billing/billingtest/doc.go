// Package billingtest is the billing engine suite for store adapters: it runs billing's
// jobs and payment processor against a store and checks the behaviour that depends on the
// store being right under concurrency: a payment, a webhook or the host application
// changing a record while a job works on it, several runs on one batch, leases running
// out, failures in the middle of work (a crash at every write an approval, a failure or a
// reversal makes).
//
// A third party that implements billing.Store runs it from a Test function next to
// store/storetest's conformance suite: Run with a function that returns a fresh, empty
// store for each test, or RunWithOptions to write to the database the way the host
// application would (Options.HostWrite), to open a second handle as another process would
// (Options.Replica), or to scale the record counts and the time limit. memstore, mongostore
// and pgstore run it this way.
//
// # Example
//
// ExampleRun is the engine test of a store adapter, here memstore.
//
// # Design
//
// memstore serialises everything behind one mutex, so it passes the suite trivially; a
// store proves these properties only by passing the suite itself, against its real server
// (CI runs mongostore on FerretDB and pgstore on PostgreSQL). Each test builds its own
// world (a store from newStore, a settable clock, a recording notifier) and wraps the store
// where it needs a fault at a given moment: a crash at the n-th write, a failed audit write,
// a host write between a claim and the job's write.
package billingtest
