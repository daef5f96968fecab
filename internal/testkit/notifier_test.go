package testkit_test

import (
	"context"
	"errors"
	"testing"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

// Proves: FailWith fails every delivery with exactly the error given (recorded as failed,
// nothing sent) until Heal, and then deliveries go through again.
func TestNotifierFailWith(t *testing.T) {
	ctx := context.Background()
	n := testkit.NewNotifier()
	down := errors.New("smtp: 421 service not available")
	n.FailWith(down)
	a := billing.Notification{Kind: billing.NotificationKindExpired, Key: "a"}
	for range 2 {
		if err := n.Notify(ctx, a); err != down {
			t.Fatalf("Notify = %v, want the FailWith error itself", err)
		}
	}
	if len(n.Sent()) != 0 || len(n.Failed()) != 2 || n.Attempts() != 2 {
		t.Fatalf("sent %d, failed %d, attempts %d: want 0, 2, 2", len(n.Sent()), len(n.Failed()), n.Attempts())
	}
	n.Heal()
	if err := n.Notify(ctx, a); err != nil {
		t.Fatalf("after Heal: %v", err)
	}
	if got := n.Sent(); len(got) != 1 || got[0].Key != "a" {
		t.Fatalf("sent %+v after Heal, want a", got)
	}
}
