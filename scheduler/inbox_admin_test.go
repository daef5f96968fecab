package scheduler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/scheduler"
	"github.com/renewkit/renewkit/store/memstore"
)

// Proves: the inbox admin API is closed without credentials (401) and to non-admins (403);
// it lists events by status and gateway with a cursor, shows one event's attempts and
// errors, replays a dead event (and refuses a processed one with 409), and reports stats.
func TestInboxAdmin(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := testkit.NewClock(t0)
	st := memstore.New()
	svc, err := billing.NewService(st, testkit.NewNotifier(), billing.Config{Clock: clock, Logger: slog.New(slog.DiscardHandler),
		Inbox: billing.InboxConfig{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.RegisterWebhookProcessor("stripe", func(_ context.Context, ev billing.WebhookEvent) (bool, error) {
		if ev.Type == "bad" {
			return false, errors.New("gateway said no: secret=do-not-show")
		}
		return false, nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		typ := "ok"
		if i%2 == 0 {
			typ = "bad"
		}
		if _, err := svc.AcceptWebhookEvent(ctx, billing.WebhookEvent{Gateway: "stripe", EventID: fmt.Sprint("evt_", i), Type: typ, Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
	}
	w, err := billing.NewInboxWorker(svc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := scheduler.InboxAdminHandler(svc, scheduler.InboxOptions{Authorize: hostAuth, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, token string) (int, map[string]any) {
		t.Helper()
		req := httptest.NewRequest(method, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s %s: not JSON: %s", method, path, rec.Body)
		}
		if strings.Contains(rec.Body.String(), "payload") {
			t.Fatalf("%s %s: payload exposed: %s", method, path, rec.Body)
		}
		return rec.Code, body
	}
	if code, _ := do("GET", "/events", ""); code != 401 {
		t.Fatalf("no credentials: %d", code)
	}
	if code, _ := do("GET", "/events", viewerToken); code != 403 {
		t.Fatalf("viewer: %d", code)
	}
	if code, _ := do("POST", "/events/stripe/evt_0/replay", ""); code != 401 {
		t.Fatalf("replay without credentials: %d", code)
	}
	code, body := do("GET", "/events?status=dead&gateway=stripe&limit=2", adminToken)
	evs, _ := body["events"].([]any)
	if code != 200 || len(evs) != 2 || body["next_cursor"] == "" {
		t.Fatalf("dead page 1: %d %v", code, body)
	}
	code, body = do("GET", "/events?status=dead&gateway=stripe&limit=2&cursor="+body["next_cursor"].(string), adminToken)
	evs2, _ := body["events"].([]any)
	if code != 200 || len(evs2) != 1 || body["next_cursor"] != "" || evs2[0].(map[string]any)["event_id"] != "evt_4" {
		t.Fatalf("dead page 2: %d %v", code, body)
	}
	for _, q := range []string{"status=nope", "limit=-1", "limit=x", "cursor=%21%21"} {
		if code, _ := do("GET", "/events?"+q, adminToken); code != 400 {
			t.Fatalf("%s: %d, want 400", q, code)
		}
	}
	code, body = do("GET", "/events/stripe/evt_0", adminToken)
	hist, _ := body["history"].([]any)
	if code != 200 || body["state"] != "dead" || len(hist) != 1 || !strings.Contains(body["error"].(string), "gateway said no") {
		t.Fatalf("one event: %d %v", code, body)
	}
	if code, _ := do("GET", "/events/stripe/nope", adminToken); code != 404 {
		t.Fatalf("unknown event: %d", code)
	}
	if code, _ := do("POST", "/events/stripe/evt_1/replay", adminToken); code != 409 {
		t.Fatalf("replay of a processed event: %d, want 409", code)
	}
	if code, _ := do("GET", "/events/stripe/evt_0/replay", adminToken); code != 405 {
		t.Fatalf("GET replay: %d, want 405", code)
	}
	code, body = do("POST", "/events/stripe/evt_0/replay", adminToken)
	if code != 200 || body["state"] != "received" {
		t.Fatalf("replay: %d %v", code, body)
	}
	code, body = do("GET", "/stats", adminToken)
	by, _ := body["by_state"].(map[string]any)
	if code != 200 || by["dead"] != 2.0 || by["processed"] != 2.0 || by["received"] != 1.0 || body["oldest_pending_age_seconds"] != 5.0 {
		t.Fatalf("stats: %d %v", code, body)
	}
}
