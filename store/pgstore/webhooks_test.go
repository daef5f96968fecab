package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/store/pgstore"
)

// TestWebhookEventsFromBeforeTheInbox proves events stored before migration 0004 (inline
// deliveries, without payload) stay readable, listed and counted; the worker does not
// claim them (it has no payload to process), an inline redelivery of a pending one does.
func TestWebhookEventsFromBeforeTheInbox(t *testing.T) {
	p := pool(t)
	ctx := context.Background()
	s, err := pgstore.New(p, pgstore.Config{Schema: freshSchema(t, p), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MigrateTo(ctx, 3); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	if _, err := p.Exec(ctx, `INSERT INTO `+s.Table("webhook_events")+`
		(gateway, event_id, type, state, attempts, error, received_at, updated_at, lease_until) VALUES
		('stripe', 'evt_done', 'invoice.paid', 'processed', 1, '', $1, $1, NULL),
		('stripe', 'evt_failed', 'invoice.paid', 'failed', 2, 'boom', $1, $2, NULL)`, at, at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	f, err := s.GetWebhookEvent(ctx, "stripe", "evt_failed")
	if err != nil {
		t.Fatalf("GetWebhookEvent: %v", err)
	}
	if f.State != billing.WebhookEventStateFailed || f.Attempts != 2 || f.Error != "boom" || !f.ReceivedAt.Equal(at) || !f.UpdatedAt.Equal(at.Add(time.Second)) ||
		f.Payload != nil || f.History != nil || !f.NextAttemptAt.IsZero() || f.ObjectKey != "" {
		t.Fatalf("event stored before the inbox: %+v", f)
	}
	evs, err := s.ListWebhookEvents(ctx, billing.WebhookEventQuery{Limit: 10})
	if err != nil || len(evs) != 2 {
		t.Fatalf("ListWebhookEvents = %d events, %v; want both", len(evs), err)
	}
	stats, err := s.WebhookInboxStats(ctx)
	if err != nil || stats.ByState[billing.WebhookEventStateProcessed] != 1 || stats.ByState[billing.WebhookEventStateFailed] != 1 || !stats.OldestPending.Equal(at) {
		t.Fatalf("WebhookInboxStats = %+v, %v", stats, err)
	}
	now := at.Add(time.Hour)
	got, err := s.ClaimWebhookEvents(ctx, billing.WebhookClaimParams{Token: "W", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 10})
	if err != nil || len(got) != 0 {
		t.Fatalf("the worker claimed %d events without payload (%v), want none", len(got), err)
	}
	got, err = s.ClaimWebhookEvents(ctx, billing.WebhookClaimParams{Token: "I", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 1,
		Gateway: "stripe", EventID: "evt_failed"})
	if err != nil || len(got) != 1 || got[0].Attempts != 3 {
		t.Fatalf("inline claim of the failed event: %+v, %v; want it at attempt 3", got, err)
	}
	if err := s.FinishWebhookEvent(ctx, billing.WebhookFinish{Gateway: "stripe", EventID: "evt_failed", Token: "I", State: billing.WebhookEventStateProcessed,
		Attempts: 3, Now: now, Attempt: billing.WebhookAttempt{At: now, State: billing.WebhookEventStateProcessed, Duration: time.Millisecond}}); err != nil {
		t.Fatalf("FinishWebhookEvent: %v", err)
	}
	if f, err := s.GetWebhookEvent(ctx, "stripe", "evt_failed"); err != nil || f.State != billing.WebhookEventStateProcessed || len(f.History) != 1 || !f.FinishedAt.Equal(now) {
		t.Fatalf("after the inline attempt: %+v, %v", f, err)
	}
}

// TestWebhookHistoryIsCapped proves the history keeps the newest MaxWebhookAttempts
// attempts, oldest first.
func TestWebhookHistoryIsCapped(t *testing.T) {
	s := newStore(t, pool(t))
	ctx := context.Background()
	at := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	if _, _, err := s.PutWebhookEvent(ctx, billing.WebhookEvent{Gateway: "stripe", EventID: "e"}, at); err != nil {
		t.Fatal(err)
	}
	total := billing.MaxWebhookAttempts + 5
	for i := range total {
		now := at.Add(time.Duration(i) * time.Minute)
		got, err := s.ClaimWebhookEvents(ctx, billing.WebhookClaimParams{Token: "T", Now: now, LeaseUntil: now.Add(time.Second), Limit: 1})
		if err != nil || len(got) != 1 {
			t.Fatalf("claim %d: %d events, %v", i, len(got), err)
		}
		if err := s.FinishWebhookEvent(ctx, billing.WebhookFinish{Gateway: "stripe", EventID: "e", Token: "T", State: billing.WebhookEventStateFailed,
			Attempts: got[0].Attempts, Error: "e", Now: now, NextAttemptAt: now,
			Attempt: billing.WebhookAttempt{At: now, State: billing.WebhookEventStateFailed, Error: "e", Duration: time.Duration(i)}}); err != nil {
			t.Fatalf("finish %d: %v", i, err)
		}
	}
	e, err := s.GetWebhookEvent(ctx, "stripe", "e")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.History) != billing.MaxWebhookAttempts || e.Attempts != total {
		t.Fatalf("history of %d entries after %d attempts (attempts %d), want %d", len(e.History), total, e.Attempts, billing.MaxWebhookAttempts)
	}
	for i, a := range e.History {
		if want := total - billing.MaxWebhookAttempts + i; a.Duration != time.Duration(want) || !a.At.Equal(at.Add(time.Duration(want)*time.Minute)) {
			t.Fatalf("history[%d] = %+v, want attempt %d", i, a, want)
		}
	}
}

// TestPruneKeepsPendingWebhookEvents proves retention deletes old final events only.
func TestPruneKeepsPendingWebhookEvents(t *testing.T) {
	s := newStore(t, pool(t))
	ctx := context.Background()
	at := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	states := map[string]billing.WebhookEventState{"processed": billing.WebhookEventStateProcessed, "ignored": billing.WebhookEventStateIgnored, "dead": billing.WebhookEventStateDead,
		"failed": billing.WebhookEventStateFailed, "parked": billing.WebhookEventStateParked}
	for id := range states {
		if _, _, err := s.PutWebhookEvent(ctx, billing.WebhookEvent{Gateway: "stripe", EventID: id}, at); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"received", "recent"} {
		recv := at
		if id == "recent" {
			recv = at.Add(48 * time.Hour)
		}
		if _, _, err := s.PutWebhookEvent(ctx, billing.WebhookEvent{Gateway: "stripe", EventID: id}, recv); err != nil {
			t.Fatal(err)
		}
	}
	claimed, err := s.ClaimWebhookEvents(ctx, billing.WebhookClaimParams{Token: "T", Now: at, LeaseUntil: at.Add(time.Minute), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range claimed {
		state, ok := states[e.EventID]
		if !ok {
			continue
		}
		f := billing.WebhookFinish{Gateway: e.Gateway, EventID: e.EventID, Token: "T", State: state, Attempts: e.Attempts, Now: at,
			NextAttemptAt: at.Add(time.Hour)}
		if state == billing.WebhookEventStateParked {
			f.ParkedAt = at
		}
		if err := s.FinishWebhookEvent(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.Prune(ctx, billing.PruneParams{WebhookEventsBefore: at.Add(24 * time.Hour), Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if res.WebhookEvents != 3 {
		t.Fatalf("pruned %d webhook events, want the 3 final ones", res.WebhookEvents)
	}
	left, err := s.ListWebhookEvents(ctx, billing.WebhookEventQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{}
	for _, e := range left {
		kept[e.EventID] = true
	}
	if len(kept) != 4 || !kept["failed"] || !kept["parked"] || !kept["received"] || !kept["recent"] {
		t.Fatalf("kept %v, want failed, parked, received and recent", kept)
	}
}
