package billing_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify/lognotify"
	"github.com/renewkit/renewkit/store/memstore"
)

// ExampleNewInboxWorker accepts two events of one gateway object in the reverse of the
// gateway's order and drains the inbox: the worker applies them in the gateway's order
// (OccurredAt), through the processor registered for their gateway. A server would call
// Start once and Shutdown when it stops instead of Drain.
func ExampleNewInboxWorker() {
	ctx := context.Background()
	now := time.Date(2030, time.March, 10, 9, 0, 0, 0, time.UTC)
	notifier, err := lognotify.NewNotifier(lognotify.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	svc, err := billing.NewService(memstore.New(), notifier, billing.Config{Clock: fixedClock(now),
		Inbox: billing.InboxConfig{MaxAttempts: 5, Batch: 16}})
	if err != nil {
		panic(err)
	}
	// A gateway package's webhook handler registers its processor; this one prints.
	if err := svc.RegisterWebhookProcessor("acme", func(ctx context.Context, ev billing.WebhookEvent) (bool, error) {
		fmt.Println("applying", ev.EventID, ev.Type)
		return false, nil
	}); err != nil {
		panic(err)
	}
	for _, ev := range []billing.WebhookEvent{
		{Gateway: "acme", EventID: "evt_2", Type: "invoice.paid", ObjectKey: "sub_1", OccurredAt: now.Add(-time.Minute)},
		{Gateway: "acme", EventID: "evt_1", Type: "subscription.created", ObjectKey: "sub_1", OccurredAt: now.Add(-time.Hour)},
	} {
		outcome, err := svc.AcceptWebhookEvent(ctx, ev)
		if err != nil {
			panic(err)
		}
		fmt.Println(ev.EventID, outcome)
	}

	w, err := billing.NewInboxWorker(svc)
	if err != nil {
		panic(err)
	}
	n, err := w.Drain(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("finished", n)
	for _, id := range []string{"evt_1", "evt_2"} {
		ev, err := svc.WebhookEvent(ctx, "acme", id)
		if err != nil {
			panic(err)
		}
		fmt.Println(id, ev.State, ev.Attempts)
	}
	// Output:
	// evt_2 accepted
	// evt_1 accepted
	// applying evt_1 subscription.created
	// applying evt_2 invoice.paid
	// finished 2
	// evt_1 processed 1
	// evt_2 processed 1
}
