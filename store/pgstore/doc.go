// Package pgstore implements billing.Store on PostgreSQL with github.com/jackc/pgx/v5.
//
// Create a store with New on a *pgxpool.Pool and bring its schema up to date with Migrate
// before first use; every replica may call Migrate on start. The tables live in one schema
// (Config.Schema, default "renewkit"), so they sit beside the host's own tables. The store
// passes store/storetest and the billing engine suite (billing/billingtest) with -race.
//
// # Example
//
// ExampleNew connects, migrates (creating schema renewkit and its tables, or updating them)
// and backs a billing service with the store; Example reads from it.
//
// # Guarantees
//
//   - Claims are one statement: UPDATE … WHERE id IN (SELECT … ORDER BY current_period_end,
//     id LIMIT n FOR UPDATE SKIP LOCKED) RETURNING …. Concurrent claimers skip each other's
//     rows instead of waiting, and never receive one record twice while its lease is live.
//     DeleteExpiredSessions works the same way, writing the batch's pending effects into
//     each row's pending column (migration 0010; the sessions_pending index lists them by
//     token); CancelStalePayments locks its candidates the
//     same way (SELECT … FOR UPDATE SKIP LOCKED) in a transaction that then cancels only the
//     ones it can decode (an unreadable payment is reported and left pending). No
//     serialized mode is needed: PostgreSQL re-checks a conditional UPDATE's WHERE clause on
//     the newest version of a row a concurrent transaction changed (READ COMMITTED). The
//     same statement lists the claimed ids in subscription_claims (one row per claim), by
//     which ExtendClaims, ReleaseClaims and Prune find a token's records.
//   - Claims, transitions that change no indexed column (the warning) and completions of
//     effects are HOT updates where the page has room: no index of subscriptions names the
//     claim columns or pending_token, and the table keeps half of each page free
//     (fillfactor 50). TestJobWritesAreHOT measures it. A record carries only the token of
//     its pending effects (pending_token); their document (about 1 KB) is in
//     subscription_effects, keyed by id with the token, written by the statement that
//     records the effects and deleted by the one that completes them. The claim of the
//     records with pending effects finds them there and joins each to its document in the
//     same UPDATE; reads take the document whose token the record carries. The outcome of a
//     send is a HOT update of its notification too: no index of notifications names a
//     column the settlement writes and the table keeps half of each page free (migration
//     0013); TestNotificationSettlementsAreHOT measures it. The price: the console's list of
//     notifications by status walks notifications_list newest first and filters on status,
//     so a rare status reads more of that index, up to what the retention prune keeps.
//   - Batch writes are single statements. UpdateSubscriptions and UpdateUsersAccess send the
//     whole batch as parallel array parameters to one UPDATE … FROM unnest(…) (the array form
//     of FROM (VALUES …): one statement text and one prepared plan for every batch size).
//     Each row writes only the columns its change changes (billing.ChangedSubscriptionFields)
//     and only while the stored row still has the read status, period end, claim token and
//     the read value of every column it writes; pending effects go into the same statement. A
//     second read of the ids that did not apply tells ErrConflict from ErrNotFound.
//     InsertAudits is one INSERT … SELECT FROM unnest(…) ON CONFLICT (id) DO NOTHING,
//     ReserveNotifications one INSERT … ON CONFLICT (key) DO UPDATE … WHERE <takeable>,
//     CompleteEffects and FinishNotifications one statement each. InsertSubscriptions
//     (bulk import) uses COPY.
//   - Lease locks are rows of the locks table whose token, the fencing counter, grows with
//     every acquisition (a row outlives its releases).
//   - Errors: a unique violation is ErrConflict, a missing row ErrNotFound, a value its
//     column cannot hold ErrInvalidInput. A serialization failure or deadlock (40001, 40P01)
//     is retried at most Config.MaxRetries times; only single atomic statements are retried,
//     so a failed attempt wrote nothing. Error texts never carry key values.
//   - Times are timestamptz at millisecond precision, returned in UTC. Optional times are
//     NULL when zero; required ones (period bounds, created_at) store the zero time itself,
//     so filters order and compare them as billing.SubscriptionFilter.Match does. Money is
//     bigint minor units plus a char(3) currency. Audit details and run results are plain
//     jsonb (whole numbers read back as int, times as RFC 3339 text); pending effects are
//     jsonb whose audit details keep their Go types (times, whole numbers, flags).
//
// # Migrations
//
// The schema is created by versioned SQL files embedded in the package
// (migrations/NNNN_name.sql), applied in order by a small runner in migrate.go: under a
// session-level advisory lock (pg_advisory_lock, keyed by schema), so replicas starting
// together migrate once; each file in its own transaction together with its row in the
// schema's schema_migrations table (version, name, applied_at); forward-only (a database
// at a newer version than the package knows is an error, never rolled back). Each
// migration is tested from an empty database and from the previous version.
//
// The runner is ours rather than pressly/goose or golang-migrate: both work through
// database/sql drivers (goose would need pgx's stdlib adapter and brings its own
// dependencies; golang-migrate's pgx driver pulls in more still), while the whole job here
// is one advisory lock, one table and a loop over embedded files on the pgx pool the store
// already holds.
//
// # Tables
//
// plans, users, subscriptions, payments, sessions, audit_logs, notifications, job_runs,
// job_states, locks, webhook_events, daily_snapshots, subscription_claims,
// subscription_effects and schema_migrations, with the column names of the
// original application's documents (snake_case, flag_del for soft delete). Indexes cover
// every job, console and webhook inbox query; explain_test.go checks on 100,000 rows per
// table that none plans a sequential scan, except a count matching over a tenth of the
// table, where reading the table is the cheaper plan.
package pgstore
