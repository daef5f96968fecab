package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/store/memstore"
)

// runOnce loads the demo data into memory, runs the five jobs once in schedule order and
// prints each result as JSON. It uses no configuration: no store, SMTP or
// gateway is contacted.
func runOnce(ctx context.Context, stdout, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st := memstore.New()
	clock := billing.SystemClock()
	summary, err := loadDemo(ctx, st, clock.Now())
	if err != nil {
		fmt.Fprintf(stderr, "standalone: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, summary)
	var sent []billing.Notification
	notifier := billing.NotifierFunc(func(_ context.Context, n billing.Notification) error {
		sent = append(sent, n)
		return nil
	})
	svc, err := billing.NewService(st, notifier, billing.Config{
		Clock: clock, Logger: log,
		Renewals: map[string]billing.RenewalLookup{demoGateway: demoLookup{store: st, clock: clock}},
	})
	if err != nil {
		fmt.Fprintf(stderr, "standalone: %v\n", err)
		return 1
	}
	for _, job := range svc.Jobs() {
		res, err := job.Run(ctx)
		out, _ := json.Marshal(res)
		fmt.Fprintf(stdout, "%-31s %s\n", job.ID, out)
		if err != nil {
			fmt.Fprintf(stderr, "standalone: %s: %v\n", job.ID, err)
			return 1
		}
	}
	for _, n := range sent {
		fmt.Fprintf(stdout, "email %-18s to %s\n", n.Kind, n.To.Email)
	}
	return 0
}
