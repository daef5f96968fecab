package dashboard_test

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/scheduler"
	"github.com/renewkit/renewkit/scheduler/dashboard"
	"github.com/renewkit/renewkit/store/memstore"
)

// secretPayload marks the payloads: no page may show it.
const secretPayload = "maria.souza@example.com SECRET"

// newInboxEnv is a memstore with subscription s-0 (Stripe sub_gw0), an inbox holding a
// failed and a processed event of sub_gw0, 26 ignored Mercado Pago events (two pages), and
// the dashboard under /admin with the inbox pages; authorize decides every request.
func newInboxEnv(t *testing.T, authorize scheduler.Authorizer) (*env, *billing.Service, *memstore.Store) {
	t.Helper()
	st := memstore.New()
	now := time.Now().UTC()
	sub := testkit.Subscription("s-0", "u-0", "p", now.Add(48*time.Hour))
	sub.Gateway, sub.GatewaySubscriptionID = billing.GatewayStripe, "sub_gw0"
	testkit.Seed(t, st, testkit.Plan("p", billing.CycleMonthly, 1000), testkit.UserWithAccess("u-0", "p", "s-0", now.Add(48*time.Hour)), sub)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := billing.NewService(st, testkit.NewNotifier(), billing.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	deliver := func(gateway, id, object string, perr error) {
		t.Helper()
		ev := billing.WebhookEvent{Gateway: gateway, EventID: id, Type: "invoice.paid", ObjectKey: object, Payload: []byte(secretPayload)}
		_, err := svc.HandleWebhookEvent(ctx, ev, func(context.Context) (bool, error) { return perr != nil && errors.Is(perr, errIgnore), failOrNil(perr) })
		if perr != nil && !errors.Is(perr, errIgnore) && err == nil {
			t.Fatalf("delivering %s: want the processing error", id)
		}
	}
	deliver(billing.GatewayStripe, "evt_failed", "sub_gw0", errors.New("gateway timeout"))
	deliver(billing.GatewayStripe, "evt_done", "sub_gw0", nil)
	for i := range 26 {
		deliver(billing.GatewayMercadoPago, fmt.Sprintf("payment/%02d", i), fmt.Sprintf("payment:%d", i), errIgnore)
	}
	s, err := scheduler.NewScheduler(svc.Jobs(), st, scheduler.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	h, err := dashboard.New(s, dashboard.Config{Authorize: authorize, LoginToken: token, Logger: quiet, Console: svc, Inbox: svc})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{t: t, s: s, srv: srv, prefix: "/admin"}, svc, st
}

var errIgnore = errors.New("ignore it")

func failOrNil(err error) error {
	if errors.Is(err, errIgnore) {
		return nil
	}
	return err
}

func TestInboxPagesRender(t *testing.T) {
	e, _, _ := newInboxEnv(t, dashboard.TokenAuthorizer(token))
	auth := bearer(token)
	mpEvent := "/inbox/mercadopago/" + url.PathEscape("payment/07") // a slash inside an event id
	pages := []struct {
		path string
		code int
		want []string
		not  []string
	}{
		{"/", 200, []string{`inbox" id="nav-inbox"`}, nil},
		{"/inbox", 200, []string{"all 28", "failed 1", "processed 1", "ignored 26", `data-event="payment/00"`, `id="next"`}, nil},
		{"/inbox?status=failed", 200, []string{`data-event="evt_failed"`, "gateway timeout"}, []string{`data-event="evt_done"`, `id="next"`}},
		{"/inbox?gateway=stripe", 200, []string{`data-event="evt_failed"`, `data-event="evt_done"`}, []string{`data-event="payment/`}},
		{"/inbox?status=lost", 400, []string{`role="alert"`, "lost"}, nil},
		{"/inbox?cursor=garbage", 400, []string{"malformed cursor"}, nil},
		{"/inbox/stripe/evt_failed", 200, []string{`data-state="failed"`, `id="replay"`, "gateway timeout", `id="attempts"`, "sub_gw0"}, nil},
		{"/inbox/stripe/evt_done", 200, []string{`data-state="processed"`}, []string{`id="replay"`}},
		{mpEvent, 200, []string{`data-state="ignored"`, `id="replay"`, `href="../../`}, []string{`href="../../../`}},
		{"/inbox/stripe/evt_none", 404, nil, nil},
		{"/inbox/stripe/evt_failed/replay", 200, []string{`id="replay-confirm"`, "audited under your name"}, nil},
		{"/subscriptions/s-0", 200, []string{`data-source="webhook" data-what="invoice.paid"`, "evt_failed", "evt_done", `class="event-link"`}, []string{"payment/"}},
	}
	for _, p := range pages {
		r := e.do("GET", p.path, nil, auth)
		if r.code != p.code {
			t.Errorf("GET %s: %d, want %d", p.path, r.code, p.code)
			continue
		}
		for _, w := range p.want {
			if !strings.Contains(r.body, w) {
				t.Errorf("GET %s lacks %q", p.path, w)
			}
		}
		for _, w := range append(p.not, "SECRET", "ZgotmplZ", "<no value>", "template:") {
			if strings.Contains(r.body, w) {
				t.Errorf("GET %s contains %q", p.path, w)
			}
		}
	}
	// The 25-event pages join into the whole inbox, each event once.
	seen := map[string]int{}
	next := "/inbox"
	for pages := 0; next != ""; pages++ {
		if pages > 3 {
			t.Fatal("paging did not end")
		}
		r := e.do("GET", next, nil, auth)
		for _, part := range strings.Split(r.body, `data-event="`)[1:] {
			seen[part[:strings.Index(part, `"`)]]++
		}
		next = ""
		if m := nextLink.FindStringSubmatch(r.body); m != nil {
			next = "/inbox" + html.UnescapeString(m[1])
		}
	}
	if len(seen) != 28 {
		t.Errorf("paging listed %d distinct events, want 28", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("paging listed %s %d times", id, n)
		}
	}
}

var nextLink = regexp.MustCompile(`href="([^"]*)" id="next"`)

func TestInboxPagesAuthMatrix(t *testing.T) {
	forbidden := func(*http.Request) error { return fmt.Errorf("%w: operator is a viewer", scheduler.ErrForbidden) }
	open, _, _ := newInboxEnv(t, dashboard.TokenAuthorizer(token))
	viewer, _, _ := newInboxEnv(t, forbidden)
	confirm := url.Values{"confirm": {"yes"}}
	routes := []struct {
		method, path string
		form         url.Values
		ok           int
	}{
		{"GET", "/inbox", nil, 200},
		{"GET", "/inbox/stripe/evt_failed", nil, 200},
		{"GET", "/inbox/stripe/evt_failed/replay", nil, 200},
		{"POST", "/inbox/stripe/evt_failed/replay", confirm, http.StatusSeeOther},
	}
	for _, rt := range routes {
		anon := http.StatusSeeOther // a GET without credentials goes to the login form
		if rt.method == "POST" {
			anon = http.StatusUnauthorized
		}
		if r := open.do(rt.method, rt.path, rt.form); r.code != anon || (anon == http.StatusSeeOther && !strings.HasSuffix(r.location(), "/admin/login")) {
			t.Errorf("%s %s without credentials: %d to %q, want %d", rt.method, rt.path, r.code, r.location(), anon)
		}
		if r := open.do(rt.method, rt.path, rt.form, bearer("wrong-token")); r.code != anon {
			t.Errorf("%s %s with a wrong token: %d, want %d", rt.method, rt.path, r.code, anon)
		}
		if r := open.do(rt.method, rt.path, rt.form, cookie("1.00")); rt.method == "POST" && r.code != http.StatusUnauthorized {
			t.Errorf("%s %s with a forged session: %d, want 401", rt.method, rt.path, r.code)
		}
		if r := viewer.do(rt.method, rt.path, rt.form, bearer(token)); r.code != http.StatusForbidden {
			t.Errorf("%s %s as a viewer: %d, want 403", rt.method, rt.path, r.code)
		}
		if r := open.do(rt.method, rt.path, rt.form, bearer(token)); r.code != rt.ok {
			t.Errorf("%s %s as an admin: %d, want %d", rt.method, rt.path, r.code, rt.ok)
		}
	}
}

func TestInboxReplayNeedsConfirmationSameOriginAndNamesTheOperator(t *testing.T) {
	e, _, st := newInboxEnv(t, dashboard.TokenAuthorizer(token))
	ctx := context.Background()
	op := operatorCookie(t, e, "Maria Souza")
	state := func(id string) billing.WebhookEventState {
		t.Helper()
		ev, err := st.GetWebhookEvent(ctx, billing.GatewayStripe, id)
		if err != nil {
			t.Fatal(err)
		}
		return ev.State
	}
	path := "/inbox/stripe/evt_failed/replay"
	if r := e.do("POST", path, url.Values{}, op...); r.code != http.StatusBadRequest {
		t.Fatalf("replay without confirmation: %d, want 400", r.code)
	}
	confirm := url.Values{"confirm": {"yes"}}
	if r := e.do("POST", path, confirm, append(op, header("Sec-Fetch-Site", "cross-site"))...); r.code != http.StatusForbidden {
		t.Fatalf("cross-site replay: %d, want 403", r.code)
	}
	if r := e.do("POST", path, confirm, append(op, header("Origin", "https://evil.example"))...); r.code != http.StatusForbidden {
		t.Fatalf("replay from another origin: %d, want 403", r.code)
	}
	if got := state("evt_failed"); got != billing.WebhookEventStateFailed {
		t.Fatalf("a refused replay changed the event to %s", got)
	}
	for _, m := range []string{"GET", "POST"} {
		if r := e.do(m, "/inbox/stripe/evt_done/replay", confirm, op...); r.code != http.StatusConflict {
			t.Errorf("%s replay of a processed event: %d, want 409", m, r.code)
		}
	}
	if r := e.do("POST", "/inbox/stripe/evt_none/replay", confirm, op...); r.code != http.StatusNotFound {
		t.Errorf("replay of an unknown event: %d, want 404", r.code)
	}
	r := e.do("POST", path, confirm, op...)
	if r.code != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/admin/inbox/stripe/evt_failed?flash=") {
		t.Fatalf("replay: %d to %q", r.code, r.location())
	}
	if got := state("evt_failed"); got != billing.WebhookEventStateReceived {
		t.Fatalf("after the replay the event is %s, want received", got)
	}
	if r := e.do("POST", path, confirm, op...); r.code != http.StatusConflict {
		t.Fatalf("replaying a received event: %d, want 409", r.code)
	}
	audit, _ := st.ListAudit(ctx, billing.AuditFilter{Action: billing.AuditWebhookReplayed})
	if len(audit) != 1 || audit[0].Actor != "Maria Souza" || audit[0].EntityID != "stripe:evt_failed" || audit[0].Details["previous_state"] != "failed" {
		t.Fatalf("audit %+v, want one replay by Maria Souza of stripe:evt_failed", audit)
	}
}
