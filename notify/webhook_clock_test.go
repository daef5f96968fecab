package notify_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/notify"
)

// TestWebhookClock: the signature timestamp and sent_at are read on WebhookConfig.Clock,
// which wins over the deprecated Now.
func TestWebhookClock(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	clock := testkit.NewClock(testkit.Epoch)
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.VerifyWebhook(secret, r.Header.Get(notify.SignatureHeader), body, clock.Now(), time.Minute); err != nil {
			t.Errorf("VerifyWebhook at the clock's time: %v", err)
		}
		got <- r.Header.Get(notify.SignatureHeader)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	hook, err := notify.NewWebhook(notify.WebhookConfig{URL: srv.URL, Secret: secret, Clock: clock,
		Now: func() time.Time { return time.Unix(0, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := hook.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindExpiring, "en")); err != nil {
		t.Fatal(err)
	}
	if h := <-got; h == "" {
		t.Error("no signature header")
	}
}
