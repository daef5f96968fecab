package smtpnotify

import (
	"testing"
	"time"
)

// TestServer is the in-process SMTP server of server_test.go, for the external test
// package's benchmarks.
type TestServer = testServer

// StartTestServer starts a local SMTP server (no TLS, no auth) that answers each DATA
// this long after the message arrived and counts accepted messages without keeping them.
// It is closed when tb ends.
func StartTestServer(tb testing.TB, dataDelay time.Duration) *TestServer {
	tb.Helper()
	return startServer(tb, withDataDelay(dataDelay), withDiscard())
}
