package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify"
	"github.com/renewkit/renewkit/notify/lognotify"
)

// ExampleNewRenderer builds the renderer of renewkit's emails and mounts its preview pages,
// which show every email in every locale with sample data.
func ExampleNewRenderer() {
	r, err := notify.NewRenderer(notify.Config{
		FrontendURL:  "https://app.example.com",
		ProductName:  "Acme",
		SupportEmail: "help@acme.com",
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/emails/", http.StripPrefix("/admin/emails", r.PreviewHandler()))

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/admin/emails/en/expiring/text", nil))
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	// Output:
	// 200 text/plain; charset=utf-8
}

// ExampleNewFanOutNotifier sends every notification through two channels: email and a webhook
// (for example a WhatsApp bridge). billing.NewService takes the FanOut as its notifier.
func ExampleNewFanOutNotifier() {
	bridge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer bridge.Close()

	logger := slog.New(slog.DiscardHandler)
	email, err := lognotify.NewNotifier(lognotify.Config{Logger: logger}) // smtpnotify.New in production
	if err != nil {
		panic(err)
	}
	hook, err := notify.NewWebhook(notify.WebhookConfig{URL: bridge.URL, Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		panic(err)
	}
	fan, err := notify.NewFanOutNotifier(notify.FanOutConfig{Logger: logger, Channels: []notify.Channel{
		{Name: "email", Notifier: email},
		{Name: "whatsapp", Notifier: hook},
	}})
	if err != nil {
		panic(err)
	}
	if err := fan.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindExpiring, "en")); err != nil {
		panic(err)
	}
	fmt.Println(len(email.Sent()), "email")
	// Output:
	// 1 email
}

// ExampleNewWebhook posts each notification, signed, to a receiver of the host's (an SMS or
// WhatsApp bridge). The receiver checks the signature on the raw body with VerifyWebhook
// before it decodes anything.
func ExampleNewWebhook() {
	secret := []byte("0123456789abcdef0123456789abcdef")
	bridge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.VerifyWebhook(secret, r.Header.Get(notify.SignatureHeader), body, time.Now(), 0); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var p notify.WebhookPayload
		if err := json.Unmarshal(body, &p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Println("bridge got", p.Kind, "for", p.To.Email)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer bridge.Close()

	hook, err := notify.NewWebhook(notify.WebhookConfig{URL: bridge.URL, Secret: secret, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	if err := hook.Notify(context.Background(), notify.SampleNotification(billing.NotificationKindExpiring, "en")); err != nil {
		panic(err)
	}
	// Output:
	// bridge got expiring for jane.doe@example.com
}
