// Package mongostore implements billing.Store on MongoDB with the official driver
// (go.mongodb.org/mongo-driver/v2). It works on an existing database of the original
// application: collection names default to the legacy schema's (users, plans, subscriptions,
// payments, sessions, audit_logs) plus renewkit's (job_runs, job_states, webhook_events,
// locks, notifications, daily_snapshots), and documents keep its snake_case fields (user_id,
// current_period_end, expiration_warning_sent, flag_del, ...).
//
// # Documents
//
// Billing ids of 24 lowercase hex digits are stored as ObjectIDs (as the original app
// does), other ids as strings; both read back as strings. References (user_id, plan_id,
// subscription_id) are matched in either form and keep the BSON type they are stored in:
// when renewkit changes one, an ObjectID stays an ObjectID and a string stays a string, and
// a cleared one becomes null (as the app writes None); the write is conditional on the exact
// stored value, so the type chosen is the one still stored. A reference renewkit writes where
// none is stored (a new document, a missing or null field) follows Config.References:
// strings by default, as the app writes its subscriptions, or ObjectIDs. Times are UTC BSON
// dates (millisecond precision). Fields legacy documents lack (version,
// expiration_warning_days, claim fields) read as zero values. A document that does not decode
// fails alone: reads return the others plus a *billing.RecordError (wrapping
// billing.ErrMalformedRecord) naming it, and sweeps leave it unchanged.
//
// # Money
//
// A plan's price and a payment's amount are one number next to a currency field. With the
// default Config.Money, MoneyMinorUnits, the number is an integer of minor units (4990 for
// 49.90): int32, int64, and whole doubles or decimal128s read; a fractional one (49.9) is a
// malformed record, never truncated. With MoneyMajorUnits, as the original Python app
// stores them, the number is major units (a double 49.9, an int 29, or a decimal128),
// rounded to the nearest minor unit, halves away from zero; a double counts as the shortest
// decimal that reads back as it, so 49.9 is 4990 and float noise (0.1+0.2, ±1e-9) rounds
// away. The minor unit follows ISO 4217: 2 digits, but 0 for JPY, CLP, KRW, VND and the
// other zero-decimal currencies, 3 for KWD, BHD, JOD, OMR, TND, IQD, LYD. renewkit writes a
// changed or new price or amount in the configured shape (int64, or a double such as 49.9),
// and never rewrites one it did not change; the condition on an amount matches every stored
// value that reads as it. Config.DefaultCurrency ("BRL" for the original app) is the
// currency of documents without one; it is not written into them. ListPlans leaves out a
// plan it cannot read and reports it as a *billing.RecordError next to the others.
//
// renewkit adds its own fields to subscriptions (version, claim_token, claim_until,
// write_token, and while effects are pending pending_token and pending_effects, the
// billing.Effects as a JSON string) and to payments (version, gateway_payment_key,
// sweep_token, and the same pending fields). To sessions it writes flag_del and deleted_at
// when it soft-deletes one, and adds sweep_token and, until the cleanup's audit entry is
// written, the pending fields. To users it writes only the access fields (plan_id, subscription_id,
// subscription_status, access_until, updated_at), and only when access changes.
//
// # Conditional writes
//
// A change writes only the fields it changes ($set, or $unset for an empty optional value)
// and only while the document still holds what the writer read: for subscriptions the
// status, current_period_end and every written field, for payments the status and every
// written field, for users plan_id, subscription_id and subscription_status. An empty value
// read matches a missing or null field. Conditions use no top-level $or ($in: ["", null] and
// $ne: true instead), except where identical writes to several documents go as one
// updateMany (MongoDB, FerretDB v1 on PostgreSQL): {_id: {$in}, <shared conditions>, $or:
// [{_id, <the rest of each one's>}]}. A cleared reference is written as null under the
// condition that the field still holds the value read, without reading the document
// first; only a reference set to an id reads it, to keep the type stored. UpdateSubscriptions, UpdateUsersAccess, CompleteEffects and the
// notification reservations are unordered bulkWrites of at most 48 operations (FerretDB v1
// holds a backend connection per statement until the command ends: a bulkWrite of as many
// statements as its pool has connections never finishes); when not every operation is known to
// have applied, the documents are read back to tell which did (a per-change write_token on
// subscriptions, the stored access fields on users, status and token on notifications).
//
// # Claims, sweeps and locks without transactions
//
// ClaimSubscriptions works in rounds of Config.BatchSize: find the ids of the most urgent
// claimable records, updateMany({_id: {$in: ids}, <filter>, <claimable>}) to set claim_token
// and claim_until, then read back the documents carrying the token. Expired claims are taken
// again by comparing claim_until with the caller's now (no TTL index). The payment and
// session sweeps work the same way, decoding each candidate before they change it. The
// lease lock (locks collection) is arbitrated by unique _ids only: every acquisition inserts
// "<key>#<token>", the highest token is the holder, and the token (fencing counter) keeps
// growing across releases.
//
// # Indexes and retention
//
// EnsureIndexes creates an index for every query the jobs, the processor and the pruning
// make; TestJobQueriesUseIndexes records each query of a full run and checks it (with
// explain on MongoDB, by its shape on FerretDB v1, whose planner scans for anything but
// _id). Claims come back in index order (status, current_period_end, _id), and the session
// sweep selects flag_del false or missing so its index skips soft-deleted sessions.
// The console's lists (billing.Console) run newest first on indexes that lead with their
// filter and end with (created_at, _id); its search by email uses an index on the users'
// email (the only index renewkit adds to the host's users), and daily snapshots
// (billing.SnapshotStore) are one document a day keyed by the day. A notification record
// keeps the data it rendered as a JSON string in its data field.
// Prune (billing.Pruner, run by the cleanup_old_sessions job) deletes notification
// records, webhook events and audit entries past billing.Config.Retention, lock keys idle
// for a day, and claim fields whose lease ended an hour ago, in batches by indexed
// queries; no TTL index is used (FerretDB v1 has none).
//
// # FerretDB v1
//
// FerretDB v1 has no transactions, no partial or TTL indexes, and its updates read, then
// rewrite, the whole document without re-checking the filter, so two concurrent updates of
// one document can both "win" and one can undo the other's fields. It also pushes a filter
// down to its backend only when the filter is exactly {_id: value}: any other field makes
// an update scan and decode the whole collection (SQLite backend). The PostgreSQL backend
// (FerretDB v1's production one) pushes equality filters down, but loses updates the same
// way. Measured with two clients in lockstep, 500 rounds, v1.24.2 on PostgreSQL 15 (on
// SQLite): {_id, n: k} -> {$set: {n: k+1}} was won by both clients in 470 rounds (294),
// $set of different fields of one document undid the other's in 425 of 1000 writes (167),
// and 432 of 1000 concurrent $inc were lost (36). So
// ClaimSerialized is needed on both backends.
//
// The PostgreSQL backend pushes a scalar equality or $ne down as a jsonb containment
// (_jsonb->'field' @> value), which the btree expression indexes FerretDB creates cannot
// serve: every query there, by _id too, is a sequential scan of the table inside
// PostgreSQL (EXPLAIN shows "Seq Scan ... Filter: ((_jsonb -> '_id'::text) @> ...)"), cheap
// per row but growing with the collection; $in, ranges, $exists and $or are evaluated by
// FerretDB on every row the pushed-down part returns. mongostore asks once, by explain
// (filterPushdown), whether the server pushes field equalities down, and on PostgreSQL it
// lets the server check write conditions as on MongoDB ({_id, <condition>}, one scan per
// write instead of a read and a write), reads the documents of a batch that share a claim or
// reservation token with one find by that token, sends identical writes (finished
// notifications, access taken away from a batch's users) as one updateMany per bulkWrite,
// completes the effects of a batch held by one claim (billing.EffectsDone.ClaimToken) with
// one updateMany by that claim, and claims by status equality so lapsed subscriptions are
// not read. What remains per record is one scan of the collection per distinct document
// write (a transition, a notification record, a user's access granted): no filter shape
// reaches PostgreSQL as anything but @>. An index in PostgreSQL that serves @> on _id makes
// each of them an index lookup: IndexFerretDBPostgreSQL creates a GIN (jsonb_path_ops)
// index on (_jsonb->'_id') for every collection of the database, given a database/sql
// connection to FerretDB's PostgreSQL database. FerretDB does not know of these indexes and
// leaves them alone; they go with their table.
//
// What v1.24.2 hands to PostgreSQL (read from its PostgreSQL backend and handlers): of a
// filter's top-level entries, only a field (not $and, $or, $nor, $comment) equal to a
// string, ObjectID, date, boolean, int32, int64 or double, directly or by $eq, becomes
// _jsonb->'field' @> value, and a $ne of such a value NOT (field present, @> value, same
// type); nothing else is pushed down: no $in, $nin, $gt, $gte, $lt, $lte, $exists or $type,
// no null, document or array value, and no dotted path in find, count or aggregate (unless
// FerretDB runs with its nested pushdown enabled). A find's limit is pushed down only
// without a filter, a sort or a skip, and only $natural sorts are. So PostgreSQL returns,
// and FerretDB decodes, every document the pushed-down part matches, and a sorted find sorts
// them all in Go: {_id: {$in: ids}, flag_del: {$ne: true}} returns every live document of
// the collection, {_id: {$in: ids}, token: t} every document carrying t. With
// Config.FerretDBIDIndex (set it once IndexFerretDBPostgreSQL has run) the store sends such
// statements one _id at a time instead, where each returns its document only: the claim
// rounds' stamps, ListUsers, the reads of a batch's documents before writing, and identical
// writes to several documents (finished notifications, access taken away), which it
// otherwise merges into one updateMany. The claims' candidate finds stay as they are: their
// period-end range and claim order cannot reach PostgreSQL, so each reads every
// subscription of the status it claims; so does the read of a batch's users' other
// subscriptions ({user_id: {$in: ...}}): by one user_id each, PostgreSQL scanned the table
// once per user (no index serves user_id), which cost more than FerretDB decoding it once.
//
// ClaimMode (auto-detected from buildInfo) is ClaimSerialized on FerretDB, and then:
//
//   - every write renewkit makes to a collection's documents holds one store-level mutex
//     (a document in the locks collection, "mongostore.mutex/write/<collection>#<n>",
//     taken with one insert and one find and deleted on release) per
//     collection: for subscriptions the claim rounds, UpdateSubscriptions, CompleteEffects,
//     ExtendClaims and ReleaseClaims; for payments UpdatePayment and CancelStalePayments;
//     likewise sessions sweeps, users access changes and notification reservations;
//   - on SQLite, conditional writes by id read each document by its exact _id, check the
//     condition in the store, and write with the filter {_id} alone (on PostgreSQL the
//     filter carries the condition, see above). Writes by the host application are not
//     serialised; FerretDB offers no way to.
//
// On MongoDB (ClaimAtomic) no mutex is taken and the server checks every condition
// atomically. Job states are written under a per-job mutex in ClaimSerialized mode
// (PutJobState); creating one relies on its unique _id on both servers. Keep BatchSize
// small on FerretDB: its updates still cost time that grows with the collection.
//
// # Example
//
// ExampleNew connects, creates the indexes and backs a billing service with the store.
//
// # Tests
//
// The tests (the store/storetest conformance suite plus replica claims, lease lock, legacy
// documents, malformed documents) need a server in MONGODB_TEST_URI; without it they skip,
// and fail under CI=true. Each test uses a fresh database.
//
//	eval "$(scripts/ferretdb start)"     # FerretDB v1.24.2 on 127.0.0.1, SQLite in a temp dir
//	go test -race ./store/mongostore
//	scripts/ferretdb stop
//
// Against a real MongoDB (a replica set or a standalone server):
//
//	MONGODB_TEST_URI=mongodb://localhost:27017 go test -race ./store/mongostore
//
// Benchmarks (not in CI): scripts/bench-mongo, or
// BENCH_N=2000 go test -run '^$' -bench . -benchtime 1x ./store/mongostore.
package mongostore
