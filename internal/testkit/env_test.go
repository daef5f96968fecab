package testkit_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/renewkit/renewkit/internal/testkit"
)

// stopRecorder records how a helper ended a test; like testing.T, Fatal and Skip stop the
// goroutine.
type stopRecorder struct {
	testing.TB
	fatal, skip string
}

func (r *stopRecorder) Helper()           {}
func (r *stopRecorder) Fatal(args ...any) { r.fatal = fmt.Sprint(args...); runtime.Goexit() }
func (r *stopRecorder) Skip(args ...any)  { r.skip = fmt.Sprint(args...); runtime.Goexit() }

func unavailableUnder(t *testing.T, ci string) *stopRecorder {
	t.Setenv("CI", ci)
	r := &stopRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		testkit.Unavailable(r, "promtool not installed")
	}()
	<-done
	return r
}

// TestUnavailableFailsUnderCI proves a missing server or tool fails the test under CI=true
// and skips it elsewhere, with the message either way.
func TestUnavailableFailsUnderCI(t *testing.T) {
	if r := unavailableUnder(t, "true"); r.fatal != "promtool not installed" || r.skip != "" {
		t.Errorf("CI=true: fatal %q skip %q, want a failure", r.fatal, r.skip)
	}
	if r := unavailableUnder(t, ""); r.skip != "promtool not installed" || r.fatal != "" {
		t.Errorf("CI unset: fatal %q skip %q, want a skip", r.fatal, r.skip)
	}
}
