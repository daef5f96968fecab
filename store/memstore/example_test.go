package memstore_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify/lognotify"
	"github.com/renewkit/renewkit/store/memstore"
)

// ExampleNew backs a billing service with the in-memory store, for development and tests.
func ExampleNew() {
	ctx := context.Background()
	st := memstore.New()
	notifier, err := lognotify.NewNotifier(lognotify.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	svc, err := billing.NewService(st, notifier, billing.Config{})
	if err != nil {
		panic(err)
	}
	plan := billing.Plan{ID: "basic", Name: "Basic", BillingCycle: billing.CycleMonthly,
		Price: billing.Money{Amount: 2990, Currency: "BRL"}, Active: true}
	if err := st.InsertPlan(ctx, &plan); err != nil {
		panic(err)
	}
	res, err := svc.CheckExpiringSubscriptions(ctx)
	if err != nil {
		panic(err)
	}
	got, _ := st.GetPlan(ctx, "basic")
	fmt.Println(got.Name, res.Found())
	// Output:
	// Basic 0
}
