package billing_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify/lognotify"
	"github.com/renewkit/renewkit/store/memstore"
)

// ExampleNewService configures a warning ladder: a subscription ending in six days gets the
// 7-day warning now, and the 3-day and 1-day ones on later runs.
func ExampleNewService() {
	ctx := context.Background()
	now := time.Date(2030, time.March, 10, 9, 0, 0, 0, time.UTC)
	st := memstore.New()
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(st.InsertPlan(ctx, &billing.Plan{ID: "basic", Name: "Basic", Active: true, BillingCycle: billing.CycleMonthly,
		Price: billing.Money{Amount: 2990, Currency: "BRL"}}))
	must(st.InsertUser(ctx, &billing.User{ID: "ana", Email: "ana@example.com", Name: "Ana", Locale: "en"}))
	// Ends in six days: due for the 7-day warning only.
	must(st.InsertSubscription(ctx, &billing.Subscription{ID: "sub-1", UserID: "ana", PlanID: "basic",
		Status: billing.SubscriptionStatusActive, Gateway: billing.GatewayManual, BillingCycle: billing.CycleMonthly,
		CurrentPeriodStart: now.AddDate(0, -1, 6), CurrentPeriodEnd: now.AddDate(0, 0, 6)}))

	notifier, err := lognotify.NewNotifier(lognotify.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	svc, err := billing.NewService(st, notifier, billing.Config{
		WarningDays: []int{7, 3, 1},
		Clock:       fixedClock(now),
	})
	if err != nil {
		panic(err)
	}
	res, err := svc.CheckExpiringSubscriptions(ctx)
	if err != nil {
		panic(err)
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	fmt.Println(notifier.Sent()[0].Key)
	// Output:
	// {"success":true,"total_found":1,"failed":0,"notifications_sent":1}
	// expiring:sub-1:1899882000000:7
}
