package stripegw_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/stripegw"
	"github.com/renewkit/renewkit/gateways/stripegw/stripegwtest"
	"github.com/renewkit/renewkit/internal/testkit"
)

// loopbackServer starts an httptest server bound to 127.0.0.1.
func loopbackServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// Against stripe-mock (API 2023-10-16 fixtures): sub_123 is active with a draft, unpaid
// latest invoice, so it is paid only through current_period_start.
func TestRenewalLookupStripeMock(t *testing.T) {
	url := testkit.StripeMockURL(t)
	l, err := stripegw.NewRenewalLookup(stripegw.Config{SecretKey: "sk_test_123", BaseURL: url, MaxNetworkRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	gs, err := l.LookupSubscription(context.Background(), "sub_123")
	if err != nil {
		t.Fatal(err)
	}
	if gs.ID != "sub_123" || gs.Status != billing.SubscriptionStatusActive || gs.PeriodEnd.IsZero() || gs.PaymentID != "" {
		t.Fatalf("lookup %+v", gs)
	}
	if !gs.PeriodEnd.Equal(time.Unix(1234567890, 0)) {
		t.Fatalf("unpaid latest invoice: paid through %v, want current_period_start", gs.PeriodEnd)
	}

	bad, err := stripegw.NewRenewalLookup(stripegw.Config{SecretKey: "not-a-key", BaseURL: url, MaxNetworkRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.LookupSubscription(context.Background(), "sub_123")
	var ae *stripegw.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusUnauthorized || ae.Retryable || !errors.Is(err, stripegw.ErrGatewayRejected) {
		t.Fatalf("bad key: %v (%+v)", err, ae)
	}
	if strings.Contains(err.Error(), "not-a-key") {
		t.Fatal("error text leaks the key")
	}
}

// fakeAPI replays Stripe API answers (2023-10-16 shape) from a map path → object.
func fakeAPI(t testing.TB, objects map[string]any) *httptest.Server {
	return loopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_test")
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer sk_test_") {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"bad key"}}`))
			return
		}
		obj, ok := objects[r.URL.Path]
		switch {
		case !ok:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such object"}}`))
		case obj == nil:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"type":"api_error","message":"try later"}}`))
		default:
			_ = json.NewEncoder(w).Encode(obj)
		}
	}))
}

func TestRenewalLookupMapping(t *testing.T) {
	paid := invoice("in_2", "sub_1", "paid", 2990, p2s, p2e, 1)
	sub := subscription("sub_1", "past_due", true, p2s, p2e, meta)
	sub["latest_invoice"] = paid
	unpaid := subscription("sub_2", "active", false, p2s, p2e, meta)
	unpaid["latest_invoice"] = invoice("in_9", "sub_2", "open", 2990, p2s, p2e, 1)
	srv := fakeAPI(t, map[string]any{"/v1/subscriptions/sub_1": sub, "/v1/subscriptions/sub_2": unpaid, "/v1/subscriptions/sub_down": nil})
	l, err := stripegw.NewRenewalLookup(stripegw.Config{SecretKey: "sk_test_1", BaseURL: srv.URL, MaxNetworkRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	gs, err := l.LookupSubscription(ctx, "sub_1")
	if err != nil {
		t.Fatal(err)
	}
	want := billing.GatewaySubscription{ID: "sub_1", Status: billing.SubscriptionStatusPastDue, PeriodStart: p2s, PeriodEnd: p2e,
		CancelAtPeriodEnd: true, Amount: billing.Money{Amount: 2990, Currency: "BRL"}, PaymentID: "in_2"}
	if gs != want {
		t.Fatalf("got %+v\nwant %+v", gs, want)
	}
	if gs, err = l.LookupSubscription(ctx, "sub_2"); err != nil || !gs.PeriodEnd.Equal(p2s) {
		t.Fatalf("unpaid period: %+v %v", gs, err)
	}
	for id, wantStatus := range map[string]int{"sub_missing": 404, "sub_down": 503} {
		_, err := l.LookupSubscription(ctx, id)
		var ae *stripegw.APIError
		if !errors.As(err, &ae) || ae.StatusCode != wantStatus || ae.Retryable != (wantStatus == 503) || ae.RequestID != "req_test" {
			t.Fatalf("%s: %v %+v", id, err, ae)
		}
	}
}

// Proves: with a SecretKey the API's invoice wins over the body (amount and paid status).
func TestInvoicePaidRefetchedFromAPI(t *testing.T) {
	apiInv := invoice("in_1", "sub_1", "paid", 2990, p1s, p1e, 1)
	notPaid := invoice("in_2", "sub_1", "open", 2990, p2s, p2e, 1)
	sub := subscription("sub_1", "active", false, p1s, p1e, meta)
	srv := fakeAPI(t, map[string]any{
		"/v1/invoices/in_1": apiInv, "/v1/invoices/in_2": notPaid, "/v1/subscriptions/sub_1": sub,
		"/v1/checkout/sessions/cs_1": checkoutSession("cs_1", "sub_1", "in_1", meta),
	})
	e := newEnv(t, stripegw.Config{SecretKey: "sk_test_1", BaseURL: srv.URL, MaxNetworkRetries: -1})
	if code := e.post(lifecycle()[0]); code != 200 {
		t.Fatalf("checkout: %d", code)
	}
	forged := invoice("in_1", "sub_1", "paid", 1, p1s, p3e, 1)
	if code := e.post(stripegwtest.NewEvent("evt_p1", stripegw.EventInvoicePaid, forged)); code != 200 {
		t.Fatalf("invoice.paid: %d", code)
	}
	if p := e.payment("in_1"); p.Amount.Amount != 2990 {
		t.Fatalf("amount %d from the body, want 2990 from the API", p.Amount.Amount)
	}
	if s := e.sub("sub_1"); !s.CurrentPeriodEnd.Equal(p1e) {
		t.Fatalf("period end %v from the body, want %v from the API", s.CurrentPeriodEnd, p1e)
	}
	if code := e.post(stripegwtest.NewEvent("evt_p2", stripegw.EventInvoicePaid, invoice("in_2", "sub_1", "paid", 2990, p2s, p2e, 1))); code != http.StatusInternalServerError {
		t.Fatalf("invoice the API reports open: %d, want 500 (retry)", code)
	}
	// Stripe's objects are readable once their events are sent: one the API does not know
	// is ignored (200, recorded ignored), never answered 4xx/5xx nor retried.
	if code := e.post(stripegwtest.NewEvent("evt_p3", stripegw.EventInvoicePaid, invoice("in_404", "sub_1", "paid", 2990, p2s, p2e, 1))); code != http.StatusOK {
		t.Fatalf("invoice unknown to the API: %d, want 200 ignored", code)
	}
	if ev, err := e.st.GetWebhookEvent(context.Background(), billing.GatewayStripe, "evt_p3"); err != nil || ev.State != billing.WebhookEventStateIgnored {
		t.Fatalf("invoice unknown to the API: event %+v %v, want ignored", ev, err)
	}
	if _, err := e.st.FindPaymentByGateway(context.Background(), billing.GatewayStripe, "in_404"); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("invoice unknown to the API recorded a payment: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	err := stripegw.Config{Tolerance: -1, MaxBodyBytes: -1, BaseURL: "ftp://x", SecretKey: " sk_test_secretvalue "}.Validate()
	if !errors.Is(err, stripegw.ErrInvalidConfig) {
		t.Fatal(err)
	}
	for _, want := range []string{"Tolerance", "MaxBodyBytes", "BaseURL", "SecretKey"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q not reported in %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "secretvalue") {
		t.Fatal("error leaks the secret")
	}
	if _, err := stripegw.NewWebhookHandler(nil, stripegw.Config{}); err == nil || !strings.Contains(err.Error(), "WebhookSecret") || !strings.Contains(err.Error(), "billing service") {
		t.Fatalf("handler without service and secret: %v", err)
	}
	if _, err := stripegw.NewRenewalLookup(stripegw.Config{}); err == nil || !strings.Contains(err.Error(), "SecretKey") {
		t.Fatalf("lookup without key: %v", err)
	}
}
