// Package storetest is the conformance suite every billing.Store adapter must pass, in the
// manner of watermill's pubsub/tests and River's riverdrivertest. It is an ordinary package
// (not a _test file) so adapters in other modules can import it from their tests.
//
// The suite checks the contract written in billing/store.go, part by part: inserts and reads
// of every record type; ErrNotFound for missing and soft-deleted records; ErrConflict for
// duplicate keys and for changes whose Read no longer matches the stored record; the job
// selection queries (SubscriptionFilter must select exactly what SubscriptionFilter.Match
// selects, including its boundaries: PeriodEndAfter is exclusive, PeriodEndBefore inclusive,
// legacy documents with expiration_warning_sent and no offset); atomic claims (several
// goroutines with different tokens claiming the same due records get each record exactly
// once; a lease that ended is claimable again; ReleaseClaims; ExtendClaims); the cleanup
// queries (a record exactly at the cutoff is included; concurrent callers get disjoint
// records); the batch writes (UpdateSubscriptions and UpdateUsersAccess return one result per
// change, aligned with the batch; a failing change writes nothing while the others apply; a
// change writes only the fields it changes, and conflicts when another writer changed its
// status, period end, claim or one of those fields between read and write; of concurrent
// changes from one read exactly one applies); pending effects (stored with the transition,
// read back equal, claimed apart with ClaimParams.Pending, never replaced by a second
// transition, completed once by their token); audit batches idempotent by id; send-once
// reservations (a key is reserved by one token at a time, taken over after its lease, never
// again once sent or failed, released on a transient failure); run history ordering; job
// state (a stale version conflicts and changes nothing, one of several concurrent writers of
// a version wins); lease locks with fencing tokens; the webhook inbox; time round trips (any
// zone and nanoseconds in, UTC at millisecond precision out); and context cancellation
// (every method fails and writes nothing).
//
// Subtests run in parallel. Those that count, list or claim everything a store holds get a
// fresh, empty store from the caller's constructor each; the others share one more store
// from it and name only records of their own, whose ids carry a prefix of the subtest's
// name (so one database serves them, and a server-backed suite does not pay for a new
// database or schema per subtest). Data sizes are small (hundreds of records) so a slow
// MongoDB-compatible server can run it; Options tunes them.
//
// # Usage
//
// ExampleRun is the whole conformance test of memstore. A store backed by a server
// creates a fresh database (or collection prefix) per call and drops it with t.Cleanup,
// as ExampleRunWithOptions shows for mongostore; calls may come from parallel subtests.
package storetest
