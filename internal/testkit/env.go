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
	uri := os.Getenv("MONGODB_TEST_URI")
	if uri == "" {
		msg := "MONGODB_TEST_URI is not set: run `eval \"$(scripts/ferretdb start)\"` (FerretDB) or point it at a MongoDB"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return uri
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
	uri := os.Getenv("POSTGRES_TEST_URI")
	if uri == "" {
		msg := "POSTGRES_TEST_URI is not set: run `eval \"$(scripts/postgres start)\"` (a throwaway PostgreSQL 15) or point it at a PostgreSQL"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return uri
}
