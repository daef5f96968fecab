package billing_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify/lognotify"
	"github.com/renewkit/renewkit/store/memstore"
)

// fixedClock always reads the same instant, so the example's output is stable.
type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

// Example wires the in-memory store, the log notifier and a fixed clock, seeds one
// subscription ending in two days and runs the expiry warning job: the log notifier prints
// the warning it would send and the job returns its JSON result.
func Example() {
	ctx := context.Background()
	now := time.Date(2030, time.March, 10, 9, 0, 0, 0, time.UTC)

	st := memstore.New()
	plan := billing.Plan{ID: "basic", Name: "Basic", BillingCycle: billing.CycleMonthly,
		Price: billing.Money{Amount: 2990, Currency: "BRL"}, Active: true}
	user := billing.User{ID: "ana", Email: "ana@example.com", Name: "Ana", Locale: "en"}
	sub := billing.Subscription{ID: "sub-1", UserID: "ana", PlanID: "basic", Status: billing.SubscriptionStatusActive,
		BillingCycle: billing.CycleMonthly, Gateway: billing.GatewayManual,
		CurrentPeriodStart: now.AddDate(0, -1, 2), CurrentPeriodEnd: now.AddDate(0, 0, 2)}
	for _, err := range []error{st.InsertPlan(ctx, &plan), st.InsertUser(ctx, &user), st.InsertSubscription(ctx, &sub)} {
		if err != nil {
			panic(err)
		}
	}

	// Log lines without timestamps, so the output is deterministic.
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	notifier, err := lognotify.NewNotifier(lognotify.Config{Logger: logger})
	if err != nil {
		panic(err)
	}
	svc, err := billing.NewService(st, notifier, billing.Config{Clock: fixedClock(now), Logger: logger})
	if err != nil {
		panic(err)
	}

	res, err := svc.CheckExpiringSubscriptions(ctx)
	if err != nil {
		panic(err)
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))

	// A second run finds nothing left to warn.
	res, _ = svc.CheckExpiringSubscriptions(ctx)
	out, _ = json.Marshal(res)
	fmt.Println(string(out))
	// Output:
	// level=INFO msg="notification (log notifier: not sent)" kind=expiring key=expiring:sub-1:1899536400000:3 to=ana@example.com locale=en subject="Your subscription expires in 2 days"
	// {"success":true,"total_found":1,"failed":0,"notifications_sent":1}
	// {"success":true,"total_found":0,"failed":0,"notifications_sent":0}
}
