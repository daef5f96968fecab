package billing_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/memstore"
)

// unreadableInbox is memstore with one webhook event its claims cannot decode, as
// mongostore and pgstore report a stored event of the wrong shape: the event is claimed
// with the others but left out of the result, and a *billing.RecordError names it.
type unreadableInbox struct {
	*memstore.Store
	bad string // the event id of the unreadable event
}

func (s unreadableInbox) ClaimWebhookEvents(ctx context.Context, p billing.WebhookClaimParams) ([]billing.WebhookEvent, error) {
	evs, err := s.Store.ClaimWebhookEvents(ctx, p)
	var bad []error
	evs = slices.DeleteFunc(evs, func(ev billing.WebhookEvent) bool {
		if ev.EventID != s.bad {
			return false
		}
		bad = append(bad, &billing.RecordError{Collection: "webhook_events", ID: billing.WebhookEventKey(ev.Gateway, ev.EventID),
			Err: fmt.Errorf("%w: history is not a list", billing.ErrMalformedRecord)})
		return true
	})
	return evs, errors.Join(append(bad, err)...)
}

// TestInboxWorkerAppliesTheReadableEventsOfAClaimWithAnUnreadableOne proves a failure
// mid-work loses nothing and is retried: when a claim returns events together with a
// *billing.RecordError for one it could not read, the worker applies the readable ones,
// reports the error, and the unreadable event stays in the inbox, pending, to be met again
// once the claim's lease ends.
func TestInboxWorkerAppliesTheReadableEventsOfAClaimWithAnUnreadableOne(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2030, time.March, 10, 9, 0, 0, 0, time.UTC)
	clock := testkit.NewClock(now)
	st := unreadableInbox{Store: memstore.New(), bad: "evt_bad"}
	svc, err := billing.NewService(st, billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }),
		billing.Config{Clock: clock, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var applied []string
	if err := svc.RegisterWebhookProcessor("acme", func(_ context.Context, ev billing.WebhookEvent) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		applied = append(applied, ev.EventID)
		return false, nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"evt_1", "evt_bad", "evt_2"} {
		ev := billing.WebhookEvent{Gateway: "acme", EventID: id, Type: "invoice.paid", OccurredAt: now.Add(time.Duration(i-10) * time.Second),
			Payload: []byte(`{}`)}
		if _, err := svc.AcceptWebhookEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	w, err := billing.NewInboxWorker(svc)
	if err != nil {
		t.Fatal(err)
	}
	n, err := w.RunOnce(ctx)
	var re *billing.RecordError
	if !errors.As(err, &re) || re.ID != billing.WebhookEventKey("acme", "evt_bad") {
		t.Fatalf("RunOnce error %v; want the claim's *billing.RecordError for acme:evt_bad", err)
	}
	slices.Sort(applied)
	if n != 2 || fmt.Sprint(applied) != "[evt_1 evt_2]" {
		t.Fatalf("RunOnce finished %d, applied %v; want 2: evt_1 and evt_2", n, applied)
	}
	for _, id := range []string{"evt_1", "evt_2"} {
		if ev, err := svc.WebhookEvent(ctx, "acme", id); err != nil || ev.State != billing.WebhookEventStateProcessed {
			t.Fatalf("%s: %+v, %v; want processed", id, ev, err)
		}
	}
	if ev, err := svc.WebhookEvent(ctx, "acme", "evt_bad"); err != nil || !ev.State.Pending() {
		t.Fatalf("the unreadable event: %+v, %v; want it still stored and pending", ev, err)
	}
	// Within the lease nothing is claimed; after it the unreadable event is met again.
	if n, err := w.RunOnce(ctx); n != 0 || err != nil {
		t.Fatalf("RunOnce within the lease: %d, %v; want nothing to do", n, err)
	}
	clock.Advance(2 * time.Minute) // past the default one-minute lease
	if n, err := w.RunOnce(ctx); n != 0 || !errors.As(err, &re) {
		t.Fatalf("RunOnce after the lease: %d, %v; want the unreadable event reported again", n, err)
	}
}
