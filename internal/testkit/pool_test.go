package testkit

import (
	"context"
	"errors"
	"testing"
)

// A pooled value is made once, emptied after each test and handed to the next; one that
// could not be emptied is never handed out again.
func TestPoolReusesOnlyWhatWasEmptied(t *testing.T) {
	var p Pool[*[]int]
	made := 0
	mk := func() *[]int { made++; return &[]int{} }
	empty := func(_ context.Context, x *[]int) error { *x = (*x)[:0]; return nil }
	for range 3 {
		t.Run("uses", func(t *testing.T) {
			x := p.Take(t, mk, empty)
			if len(*x) != 0 {
				t.Fatalf("handed out a value holding %v", *x)
			}
			*x = append(*x, 1)
		})
	}
	if made != 1 || len(p.All()) != 1 {
		t.Fatalf("made %d values (%d known) for three tests in a row, want 1", made, len(p.All()))
	}
	broken := errors.New("cannot empty")
	var fail Pool[*[]int]
	t.Run("reset fails", func(t *testing.T) {
		ft := &fakeTB{TB: t}
		fail.Take(ft, mk, func(context.Context, *[]int) error { return broken })
		ft.runCleanups()
		if !ft.errored {
			t.Fatal("a failed reset did not fail the test")
		}
	})
	t.Run("after", func(t *testing.T) {
		before := made
		fail.Take(t, mk, empty)
		if made != before+1 {
			t.Fatal("a value whose reset failed was handed out again")
		}
	})
}

// fakeTB records Errorf and runs cleanups on demand.
type fakeTB struct {
	testing.TB
	cleanups []func()
	errored  bool
}

func (f *fakeTB) Cleanup(fn func())     { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Errorf(string, ...any) { f.errored = true }
func (f *fakeTB) Helper()               {}
func (f *fakeTB) runCleanups() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}
