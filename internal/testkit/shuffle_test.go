package testkit_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/renewkit/renewkit/internal/testkit"
)

// TestShuffledHoldsEachItemTimesTimes proves every item is there exactly times times, the
// input is left alone, and the order is rng's: the same seed gives the same order, which
// is not the input's.
func TestShuffledHoldsEachItemTimesTimes(t *testing.T) {
	items := []string{"a", "b", "c", "d"}
	got := testkit.Shuffled(rand.New(rand.NewPCG(1, 2)), items, 5)
	if len(got) != 20 {
		t.Fatalf("%d items, want 20", len(got))
	}
	for _, it := range items {
		if n := len(slices.DeleteFunc(slices.Clone(got), func(s string) bool { return s != it })); n != 5 {
			t.Errorf("%q %d times, want 5", it, n)
		}
	}
	if !slices.Equal(items, []string{"a", "b", "c", "d"}) {
		t.Fatalf("input changed: %q", items)
	}
	again := testkit.Shuffled(rand.New(rand.NewPCG(1, 2)), items, 5)
	if !slices.Equal(got, again) {
		t.Fatalf("same seed, other order:\n%q\n%q", got, again)
	}
	if slices.IsSorted(got) {
		t.Fatalf("not shuffled: %q", got)
	}
}
