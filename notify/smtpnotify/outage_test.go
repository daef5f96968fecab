package smtpnotify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"sync/atomic"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/notify"
	"github.com/renewkit/renewkit/store/memstore"
)

// TestOutageCostsSecondsAndLosesNothing: an SMTP server answering 421 to every message
// during a warning run over 1,000 due subscriptions. Proves a failure in the middle of work
// loses nothing and is retried: the run stops within 10 s (the notifier's circuit breaker,
// not 1,000 retry budgets) with success false, no notification is recorded sent, and once
// the server recovers every warning goes out exactly once.
func TestOutageCostsSecondsAndLosesNothing(t *testing.T) {
	const due = 1000
	var down atomic.Bool
	down.Store(true)
	srv := startServer(t)
	srv.OnMail = func(string) error {
		if down.Load() {
			return &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 3, 2}, Message: "service not available"}
		}
		return nil
	}
	renderer, err := notify.NewRenderer(notify.Config{FrontendURL: "https://app.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	n, err := New(Config{Host: srv.Host, Port: srv.Port, From: "noreply@acme.example", TLSPolicy: TLSNone,
		HELO: "client.test", Renderer: renderer, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })

	st := memstore.New()
	records := []any{testkit.Plan("basic", billing.CycleMonthly, 2990)}
	for i := range due {
		uid, sid := fmt.Sprintf("u%04d", i), fmt.Sprintf("s%04d", i)
		end := testkit.Epoch.Add(testkit.Day + time.Duration(i)*time.Minute)
		records = append(records, testkit.UserWithAccess(uid, "basic", sid, end), testkit.Subscription(sid, uid, "basic", end))
	}
	testkit.Seed(t, st, records...)
	svc, err := billing.NewService(st, n, billing.Config{Clock: testkit.NewClock(testkit.Epoch), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	res, err := svc.CheckExpiringSubscriptions(ctx)
	t.Logf("run during the outage: %v, %d SMTP transactions attempted", time.Since(start), srv.MailCalls.Load())
	if ctx.Err() != nil {
		t.Fatalf("the run during the outage did not end within 10 s: %+v", res)
	}
	if !errors.Is(err, billing.ErrNotifierUnavailable) || res.Success {
		t.Fatalf("run during the outage: %+v, %v; want success false with ErrNotifierUnavailable", res, err)
	}
	if res.NotificationsSent != 0 || srv.Accepted.Load() != 0 {
		t.Fatalf("run during the outage sent %d (server accepted %d)", res.NotificationsSent, srv.Accepted.Load())
	}
	for i := range due {
		sub, err := st.GetSubscription(context.Background(), fmt.Sprintf("s%04d", i))
		if err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("expiring:%s:%d:3", sub.ID, sub.CurrentPeriodEnd.UnixMilli())
		if rec, err := st.GetNotification(context.Background(), key); err == nil && rec.Status != billing.NotificationSending {
			t.Fatalf("%s recorded %s during the outage", key, rec.Status)
		}
	}

	down.Store(false)
	for range 3 { // each run finishes what the previous left pending; the breaker never trips now
		if res, err := svc.CheckExpiringSubscriptions(context.Background()); err != nil {
			t.Fatalf("run after recovery: %+v, %v", res, err)
		}
	}
	keys := map[string]int{}
	for _, m := range srv.Messages() {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		keys[msg.Header.Get("X-Renewkit-Key")]++
	}
	if len(keys) != due {
		t.Fatalf("%d distinct warnings after recovery, want %d", len(keys), due)
	}
	for k, c := range keys {
		if c != 1 {
			t.Fatalf("%s delivered %d times, want once", k, c)
		}
	}
}
