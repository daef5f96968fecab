// Package mongotest opens mongostore stores on a fresh database of the MongoDB test server
// named by MONGODB_TEST_URI (FerretDB in CI, started by scripts/ferretdb), for the tests
// that need several processes' worth of store handles on one database: the scheduler's
// replica tests, the gateways' webhook inbox tests and the standalone example's crash
// tests. Stores opens n of them, each through its own client, and drops the database when
// the test ends.
//
// It is internal test support, not for hosts (they test against store/memstore). Without
// the server a test that calls it is skipped locally and fails under CI=true, as
// testkit.MongoURI decides.
package mongotest
