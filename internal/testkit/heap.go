package testkit

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// SampleHeap records the largest HeapInuse seen into peak, sampling every 5 ms until stop
// is called (stop waits for the sampler to end). Benchmarks use it to report peak heap.
func SampleHeap(peak *atomic.Uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			for {
				p := peak.Load()
				if ms.HeapInuse <= p || peak.CompareAndSwap(p, ms.HeapInuse) {
					break
				}
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
