// Package mongostore implements billing.Store on MongoDB with the official driver
// (go.mongodb.org/mongo-driver/v2). It works on an existing database of the seed
// application: collection names default to the seed's (users, plans, subscriptions,
// payments, sessions, audit_logs) plus renewkit's (job_runs, job_states, webhook_events,
// locks, notifications), and documents keep the seed's snake_case fields (user_id,
// current_period_end, expiration_warning_sent, flag_del, ...).
//
// # Documents
//
// Billing ids of 24 lowercase hex digits are stored as ObjectIDs (as the seed does), other
// ids as strings; both read back as strings. References (user_id, plan_id) are strings and
// are matched in either form. Money is amount (int64 minor units) plus currency. Times are
// UTC BSON dates (millisecond precision). Fields the seed's documents lack (version,
// expiration_warning_days, claim fields) read as zero values; a missing version is version 0
// for the optimistic check. Updates $set renewkit's fields and leave the host's others alone.
// A document that does not decode fails alone: ClaimSubscriptions returns the others plus a
// *billing.RecordError (wrapping billing.ErrMalformedRecord) naming it.
//
// # Claims, sweeps and locks without transactions
//
// ClaimSubscriptions works in rounds of Config.BatchSize: find the ids of the most urgent
// claimable records, updateMany({_id: {$in: ids}, <filter>, <claimable>}) to set claim_token
// and claim_until, then read back the documents carrying the token. Expired claims are taken
// again by comparing claim_until with the caller's now (no TTL index). The payment and
// session sweeps work the same way. The lease lock (locks collection) is arbitrated by
// unique _ids only: every acquisition inserts "<key>#<token>", the highest token is the
// holder, and the token (fencing counter) keeps growing across releases.
//
// FerretDB v1 has no transactions, no partial or TTL indexes, and its updates read, then
// rewrite, each document without re-checking the filter; ClaimMode (auto-detected from
// buildInfo) therefore serializes claim and sweep rounds on FerretDB with a short store-level
// lease. Its version checks are best effort under concurrent writers of one record; MongoDB's
// are atomic. Job states are the exception: the scheduler's replicas write them
// concurrently (a pause against a finished run's failure streak), so PutJobState runs its
// version check and write under the same kind of store-level mutex there, one per job.
// Creating a job state relies on its unique _id (the job id) on both servers: of two
// writers at version 0, one inserts and the other gets billing.ErrConflict. Keep BatchSize small there: FerretDB also rewrites one document per collection
// scan.
//
// # Example
//
//	client, err := mongo.Connect(options.Client().ApplyURI(os.Getenv("MONGODB_URI")))
//	...
//	st, err := mongostore.New(client.Database("app"), mongostore.Config{})
//	if err != nil { ... }
//	if err := st.EnsureIndexes(ctx); err != nil { ... }
//	svc, err := billing.NewService(st, notifier, billing.Config{})
//
// # Tests
//
// The tests (the store/storetest conformance suite plus replica claims, lease lock, seed
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
