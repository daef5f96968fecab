// Package memstore is an in-memory billing.Store: every part behind one mutex but the
// webhook inbox, which has its own, safe for concurrent use. It passes store/storetest and
// is the documented test double for hosts, and the store of the standalone server's
// embedded defaults. Data lives as long as the process.
//
// Values cross the API as deep copies (a subscription's pending effects and audit details
// included), so a caller never aliases stored state, and times are kept in UTC at millisecond
// precision, as every store keeps them.
//
// # Example
//
// ExampleNew backs a billing service with the in-memory store.
//
// # Design
//
// The files follow store/storetest's areas: plans_users.go, subscriptions.go, claims.go,
// changes.go (the conditional batch writes of subscriptions, user access and payments),
// payments_sessions.go, records.go (audit, notifications, job runs and state, locks),
// previews.go (the cleanup and audit counts), console.go; webhooks.go holds the inbox,
// which storetest covers in records.go, and retention.go holds Prune. table.go holds what
// every area shares: the one preamble of a call (check ctx, take the lock) and table, the
// generic id-keyed map of the record kinds that are stored whole.
//
// Each batch method (UpdateSubscriptions, CompleteEffects, UpdateUsersAccess, ListUsers,
// InsertAudits, ReserveNotifications, FinishNotifications) takes the mutex once per call,
// so a batch is applied atomically with respect to other callers. Subscriptions are indexed
// four ways besides their id: by period end (a slice sorted lazily, so claims, lists and
// counts read only the window a filter selects), by user (live records only, for
// ListUserSubscriptions and filters with UserIDs), by claim token (ExtendClaims and
// ReleaseClaims touch only the token's records) and by pending effects (claims with
// ClaimParams.Pending). Webhook events still to process (received, failed, parked) are
// indexed in claim order and by gateway object, so claiming, waking, renewing leases and
// the ordering check never read the processed, ignored and dead events retention keeps.
// Conditional writes compare and copy fields through a fixed table
// that mirrors billing.ChangedSubscriptionFields and billing.ChangedPaymentFields (a test
// keeps them in step), so a write allocates no list of field names.
//
// The console's capability (billing.Console, console.go) keeps its own orderings:
// subscriptions, payments and notification keys oldest first by creation (appended in time
// order, sorted by the next reader only after an out-of-order insert, read from the end),
// users by email, payments and notifications by subscription and audit entries by entity,
// so a page or a timeline reads the records it returns and those its filters skip, not
// the whole store (BenchmarkConsoleQueries). A filter that matches few records still walks
// the ordering until it fills a page.
//
// Audit entries keep their details as key and value pairs (a batch's pairs in one
// allocation, a map again only when read), and the entries about a subscription are listed
// on its record: storing one costs one insert into the id set and one lookup of the
// subscription, not a read and a write of a per-entity map.
package memstore
