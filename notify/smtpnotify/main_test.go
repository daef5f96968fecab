package smtpnotify

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind: a send, a dial, the
// idle reaper or a test server.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
