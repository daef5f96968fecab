// Package pgtest gives a test a fresh schema on the PostgreSQL test server named by
// POSTGRES_TEST_URI (scripts/postgres in CI): Schema returns the URI and a new schema name
// and drops the schema when the test is done; DropSchemas is the same drop for tests that
// make their own schemas. pgstore's tests, the scheduler's PostgreSQL replica tests and the
// standalone example's PostgreSQL test use it.
//
// It is internal test support, not for hosts. Without the server a test that calls it is
// skipped locally and fails under CI=true, as testkit.PostgresURI decides. It lives apart
// from internal/testkit so that the packages importing testkit (billing's engine suite
// among them) do not depend on the PostgreSQL driver.
package pgtest
