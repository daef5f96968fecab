package testkit_test

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renewkit/renewkit/internal/testkit"
)

// TestSampleHeapSeesAnAllocationWhileItRuns proves the sampler reports a heap at least as
// large as a 64 MB buffer held while it runs, and that stop waits for it to end.
func TestSampleHeapSeesAnAllocationWhileItRuns(t *testing.T) {
	var peak atomic.Uint64
	stop := testkit.SampleHeap(&peak)
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	time.Sleep(30 * time.Millisecond)
	runtime.KeepAlive(buf)
	stop()
	if got := peak.Load(); got < 64<<20 {
		t.Fatalf("peak heap %d bytes, want at least the 64 MB held while sampling", got)
	}
	// After stop, a larger heap must go unseen: a sampler still running would raise peak.
	after := peak.Load()
	bigger := make([]byte, after+64<<20)
	for i := range bigger {
		bigger[i] = byte(i)
	}
	time.Sleep(30 * time.Millisecond)
	runtime.KeepAlive(bigger)
	if peak.Load() != after {
		t.Fatal("the sampler still ran after stop")
	}
}
