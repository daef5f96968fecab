package testkit

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Pool recycles what is expensive to make for a test and cheap to empty (a database with
// its indexes, a migrated schema), so that parallel tests that each need an empty one make
// about one per parallel slot instead of one each. The zero value is ready to use.
type Pool[T any] struct {
	mu   sync.Mutex
	free []T
	all  []T
}

// Take returns a free value, or a new one from make when none is free. When t ends, reset
// empties the value and it goes back to the pool; a value reset fails on is not handed out
// again (the test fails).
func (p *Pool[T]) Take(t testing.TB, make func() T, reset func(context.Context, T) error) T {
	t.Helper()
	p.mu.Lock()
	var x T
	n := len(p.free)
	if n > 0 {
		x, p.free = p.free[n-1], p.free[:n-1]
	}
	p.mu.Unlock()
	if n == 0 {
		x = make()
		p.mu.Lock()
		p.all = append(p.all, x)
		p.mu.Unlock()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := reset(ctx, x); err != nil {
			t.Errorf("testkit: emptying a pooled value for the next test: %v", err)
			return
		}
		p.mu.Lock()
		p.free = append(p.free, x)
		p.mu.Unlock()
	})
	return x
}

// All returns every value the pool has made, for the caller to drop when its tests end.
func (p *Pool[T]) All() []T {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]T(nil), p.all...)
}
