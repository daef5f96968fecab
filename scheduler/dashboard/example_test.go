package dashboard_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/scheduler"
	"github.com/renewkit/renewkit/scheduler/dashboard"
	"github.com/renewkit/renewkit/store/memstore"
)

// ExampleNew mounts the dashboard, with the operations console and the charts, behind a
// token login. A request without the token is sent to the login form.
func ExampleNew() {
	store := memstore.New()
	svc, err := billing.NewService(store, billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }), billing.Config{})
	if err != nil {
		panic(err)
	}
	sched, err := scheduler.NewScheduler(svc.Jobs(), store, scheduler.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer func() { _ = sched.Shutdown(context.Background()) }()

	token := "s3cret"
	dash, err := dashboard.New(sched, dashboard.Config{
		Authorize:  dashboard.TokenAuthorizer(token),
		LoginToken: token,
		Console:    svc,
		Insights:   svc,
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", dash))

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/admin/", nil))
	fmt.Println(rec.Code, rec.Header().Get("Location"))
	// Output:
	// 303 login
}
