package scheduler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify"
	"github.com/renewkit/renewkit/scheduler"
	"github.com/renewkit/renewkit/store/memstore"
)

func Example() {
	ctx := context.Background()
	sp, _ := time.LoadLocation("America/Sao_Paulo")
	clock := clockwork.NewFakeClockAt(time.Date(2025, 10, 19, 10, 0, 0, 0, sp))
	store := memstore.New()
	svc, _ := billing.NewService(store, billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }),
		billing.Config{Clock: clock})

	s, err := scheduler.NewScheduler(svc.Jobs(), store, scheduler.Config{Location: sp, Clock: clock, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	jobs, _ := s.List(ctx)
	for _, j := range jobs {
		fmt.Println(j.ID, j.NextRun.Format(time.RFC3339), j.Trigger)
	}
	run, _ := s.Trigger(ctx, billing.JobCheckExpiring)
	fmt.Println(run.Status, run.Trigger, run.Result["total_found"])
	_ = s.Shutdown(ctx)
	// Output:
	// check_expiring_subscriptions 2025-10-20T09:00:00-03:00 cron[day_of_week='*', hour='9', minute='0']
	// process_expired_subscriptions 2025-10-20T00:30:00-03:00 cron[day_of_week='*', hour='0', minute='30']
	// renew_subscriptions 2025-10-20T02:00:00-03:00 cron[day_of_week='*', hour='2', minute='0']
	// cleanup_old_sessions 2025-10-26T03:00:00-03:00 cron[day_of_week='sun', hour='3', minute='0']
	// cleanup_pending_payments 2025-11-01T04:00:00-03:00 cron[day='1', day_of_week='*', hour='4', minute='0']
	// succeeded manual 0
}

func ExampleAdminHandler() {
	store := memstore.New()
	svc, _ := billing.NewService(store, billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }), billing.Config{})
	s, _ := scheduler.NewScheduler(svc.Jobs(), store, scheduler.Config{Logger: slog.New(slog.DiscardHandler)})
	defer s.Shutdown(context.Background())

	admin, err := scheduler.AdminHandler(s, scheduler.AdminOptions{Authorize: scheduler.BearerToken("s3cret")})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/admin/jobs/", http.StripPrefix("/api/admin/jobs", admin))

	for _, token := range []string{"", "s3cret"} {
		req := httptest.NewRequest("POST", "/api/admin/jobs/renew_subscriptions/pause", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		fmt.Println(rec.Code)
	}
	// Output:
	// 401
	// 200
}

// An SMTP outage trips billing's circuit breaker; the alert skips the email notifier the
// jobs send through (Alerts.Notifier) and reaches the operators' signed webhook, one of
// Alerts.Channels, at the first such run.
func ExampleConfig_alerts() {
	ctx := context.Background()
	secret := []byte("0123456789abcdef0123456789abcdef")
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.VerifyWebhook(secret, r.Header.Get(notify.SignatureHeader), body, time.Now(), 0); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var p notify.WebhookPayload
		_ = json.Unmarshal(body, &p)
		fmt.Println("webhook:", p.Kind, p.Data.JobID, strings.SplitN(p.Key, ":", 4)[2])
	}))
	defer hook.Close()
	webhook, err := notify.NewWebhook(notify.WebhookConfig{URL: hook.URL, Secret: secret})
	if err != nil {
		panic(err)
	}
	email := billing.NotifierFunc(func(context.Context, billing.Notification) error {
		fmt.Println("email: tried")
		return errors.New("smtp: 421 service not available")
	})
	job := billing.Job{ID: billing.JobCheckExpiring, Schedule: "0 9 * * *", Run: func(context.Context) (billing.Result, error) {
		// What billing returns when its breaker trips.
		return nil, fmt.Errorf("%w: 5 consecutive transient failures", billing.ErrNotifierUnavailable)
	}}
	s, err := scheduler.NewScheduler([]billing.Job{job}, memstore.New(), scheduler.Config{
		Logger: slog.New(slog.DiscardHandler),
		Alerts: &scheduler.Alerts{
			Notifier: email,
			To:       billing.Recipient{Email: "ops@example.com"},
			Channels: []scheduler.AlertChannel{{Name: "webhook", Notifier: webhook}},
		},
	})
	if err != nil {
		panic(err)
	}
	defer s.Shutdown(ctx)
	run, _ := s.Trigger(ctx, billing.JobCheckExpiring)
	fmt.Println(run.Status)
	// Output:
	// webhook: operator_alert check_expiring_subscriptions notifier_unavailable
	// failed
}
