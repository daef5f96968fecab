package testkit

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
)

// MongoURI returns MONGODB_TEST_URI for integration tests. Without it the test is skipped
// locally and fails under CI=true: an integration test never silently skips in CI.
func MongoURI(t testing.TB) string {
	t.Helper()
	return getenv(t, "MONGODB_TEST_URI", "run `eval \"$(scripts/ferretdb start)\"` (FerretDB) or point it at a MongoDB")
}

// DBName returns a fresh database name with prefix, within FerretDB's rules
// ([a-zA-Z0-9_-], at most 63 bytes), so each integration test works on its own database.
func DBName(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// PostgresURI returns POSTGRES_TEST_URI for integration tests. Without it the test is
// skipped locally and fails under CI=true: an integration test never silently skips in CI.
func PostgresURI(t testing.TB) string {
	t.Helper()
	return getenv(t, "POSTGRES_TEST_URI", "run `eval \"$(scripts/postgres start)\"` (a throwaway PostgreSQL 15) or point it at a PostgreSQL")
}

// StripeMockURL returns STRIPE_MOCK_URL, the stripe-mock that `scripts/stripe-mock start`
// runs, for the tests that call Stripe's API. Without it the test is skipped locally and
// fails under CI=true.
func StripeMockURL(t testing.TB) string {
	t.Helper()
	return getenv(t, "STRIPE_MOCK_URL", "run `eval \"$(scripts/stripe-mock start)\"` to test against stripe-mock")
}

// getenv returns the variable name, or ends the test as Unavailable, saying how to set it.
func getenv(t testing.TB, name, how string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		Unavailable(t, name+" is not set: "+how)
	}
	return v
}

// Unavailable ends a test that needs something this machine lacks (a server, a tool), saying
// why in msg, which should name how to get it: under CI=true the test fails, so an
// integration test never silently skips in CI; elsewhere it is skipped.
func Unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
