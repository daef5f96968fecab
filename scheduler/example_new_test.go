package scheduler_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/scheduler"
	"github.com/renewkit/renewkit/store/memstore"
)

// ExampleNewScheduler runs billing's five jobs in the business's time zone and alerts the
// operators by email when a job fails. The scheduler is the one component that takes a
// clockwork clock, because it arms timers; a fake one keeps the example from waiting.
func ExampleNewScheduler() {
	ctx := context.Background()
	store := memstore.New()
	notifier := billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil })
	svc, err := billing.NewService(store, notifier, billing.Config{})
	if err != nil {
		panic(err)
	}
	sp, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		panic(err)
	}
	s, err := scheduler.NewScheduler(svc.Jobs(), store, scheduler.Config{
		Location: sp,
		Alerts:   &scheduler.Alerts{Notifier: notifier, To: billing.Recipient{Email: "ops@example.com"}},
		Clock:    clockwork.NewFakeClock(),
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	if err := s.Start(ctx); err != nil {
		panic(err)
	}
	defer func() { _ = s.Shutdown(context.Background()) }()
	jobs, _ := s.List(ctx)
	fmt.Println(len(jobs), "jobs scheduled")
	// Output:
	// 5 jobs scheduled
}

// The jobs API behind the host's own admin check: the Authorizer answers
// ErrUnauthenticated (401) or ErrForbidden (403), or nil to let the request in.
func ExampleAdminHandler_authorize() {
	store := memstore.New()
	svc, _ := billing.NewService(store, billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }), billing.Config{})
	s, _ := scheduler.NewScheduler(svc.Jobs(), store, scheduler.Config{Logger: slog.New(slog.DiscardHandler)})
	defer func() { _ = s.Shutdown(context.Background()) }()

	admin, err := scheduler.AdminHandler(s, scheduler.AdminOptions{
		Authorize: func(r *http.Request) error {
			switch r.Header.Get("X-User-Role") { // stands for the host's session lookup
			case "":
				return scheduler.ErrUnauthenticated
			case "admin":
				return nil
			}
			return scheduler.ErrForbidden
		},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/admin/jobs/", http.StripPrefix("/api/admin/jobs", admin))
	for _, role := range []string{"", "member", "admin"} {
		req := httptest.NewRequest(http.MethodGet, "/api/admin/jobs/", nil)
		if role != "" {
			req.Header.Set("X-User-Role", role)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		fmt.Println(rec.Code)
	}
	// Output:
	// 401
	// 403
	// 200
}

// ExampleConsoleHandler mounts the operations console's API beside the jobs API; the more
// specific pattern wins.
func ExampleConsoleHandler() {
	store := memstore.New()
	svc, _ := billing.NewService(store, billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }), billing.Config{})
	authorize := scheduler.BearerToken("s3cret")
	console, err := scheduler.ConsoleHandler(svc, scheduler.ConsoleOptions{Authorize: authorize})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/admin/", http.StripPrefix("/api/admin", console))

	req := httptest.NewRequest(http.MethodGet, "/api/admin/subscriptions", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	fmt.Println(rec.Code)
	// Output:
	// 200
}
