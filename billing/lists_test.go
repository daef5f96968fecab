package billing_test

import (
	"testing"

	"github.com/renewkit/renewkit/billing"
)

// freshEachCall fails unless a caller who changes the slice list returns leaves the next
// call's result unchanged.
func freshEachCall[T comparable](t *testing.T, name string, list func() []T, poison T, wantLen int) {
	t.Helper()
	want := list()
	if len(want) != wantLen {
		t.Fatalf("%s: %d entries, want %d", name, len(want), wantLen)
	}
	mine := list()
	mine[0] = poison
	if got := list(); got[0] != want[0] {
		t.Errorf("%s()[0] = %v after a caller changed its copy, want %v", name, got[0], want[0])
	}
}

// TestListsAreFreshCopies proves that a caller who changes a list billing returns cannot
// change it for anyone else: every call returns a new slice with the same contents.
func TestListsAreFreshCopies(t *testing.T) {
	freshEachCall(t, "AllNotificationKinds", billing.AllNotificationKinds, "changed", 9)
	freshEachCall(t, "AllWebhookEventStates", billing.AllWebhookEventStates, "changed", 6)
	freshEachCall(t, "RerunJobIDs", billing.RerunJobIDs, "changed", 3)
	freshEachCall(t, "AllCancellationSources", billing.AllCancellationSources, "changed", 4)
}
