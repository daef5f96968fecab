package testkit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/memstore"
)

// Example seeds a store with fixtures, drives billing with the settable clock and makes the
// first send fail. Seed needs a testing.TB, so the body is a test's.
func Example() {
	test := func(t *testing.T) {
		clock := testkit.NewClock(testkit.Epoch)
		notifier := testkit.NewNotifier()
		st := memstore.New()
		testkit.Seed(t, st,
			testkit.Plan("basic", billing.CycleMonthly, 2990),
			testkit.User("ana"),
			testkit.Subscription("s1", "ana", "basic", clock.Now().Add(3*24*time.Hour)),
		)
		svc, err := billing.NewService(st, notifier, billing.Config{Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		notifier.FailNext(1) // the first send fails with ErrTransient
		res, _ := svc.CheckExpiringSubscriptions(context.Background())
		fmt.Println(res.Found(), res.Failures())
	}
	_ = test
}
