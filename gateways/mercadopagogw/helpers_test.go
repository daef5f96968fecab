package mercadopagogw

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/memstore"
)

const (
	testToken  = "TEST-0000000000000000-000000-00000000000000000000000000000000-000000000"
	testSecret = "whsec-test-5f2b9c1a7e"
	preID      = "2c9380848d6f7e2b018d7a1b2c3d04e5"
)

// fakeMP replays Mercado Pago API answers (built from the documented shapes in testdata/)
// on a local server.
type fakeMP struct {
	t            *testing.T
	srv          *httptest.Server
	mu           sync.Mutex
	payments     map[string][]byte
	preapprovals map[string][]byte
	down         atomic.Bool
	calls        atomic.Int64
}

func newFakeMP(t *testing.T) *fakeMP {
	f := &fakeMP{t: t, payments: map[string][]byte{}, preapprovals: map[string][]byte{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve)) // binds 127.0.0.1
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeMP) serve(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"message":"invalid access token","error":"unauthorized","status":401,"cause":[]}`))
		return
	}
	if f.down.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"message":"service unavailable","error":"internal_error","status":503,"cause":[]}`))
		return
	}
	var body []byte
	f.mu.Lock()
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/payments/"):
		body = f.payments[strings.TrimPrefix(r.URL.Path, "/v1/payments/")]
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/preapproval/"):
		body = f.preapprovals[strings.ToLower(strings.TrimPrefix(r.URL.Path, "/preapproval/"))]
	}
	f.mu.Unlock()
	if body == nil {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message":"resource not found","error":"not_found","status":404,"cause":[]}`))
		return
	}
	_, _ = w.Write(body)
}

func fixture(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func setPath(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

func (f *fakeMP) putPayment(id int64, m map[string]any) {
	m["id"] = id
	b, _ := json.Marshal(m)
	f.mu.Lock()
	f.payments[strconv.FormatInt(id, 10)] = b
	f.mu.Unlock()
}

func (f *fakeMP) putPreapproval(m map[string]any) {
	b, _ := json.Marshal(m)
	f.mu.Lock()
	f.preapprovals[m["id"].(string)] = b
	f.mu.Unlock()
}

// checkoutPayment is an approved Checkout Pro payment for renewkit payment ref.
func checkoutPayment(t *testing.T, status, detail, ref string) map[string]any {
	m := fixture(t, "payment_checkout.json")
	m["status"], m["status_detail"], m["external_reference"] = status, detail, ref
	return m
}

// chargePayment is a charge of preapproval preID billed on billingDate.
func chargePayment(t *testing.T, status, detail, billingDate string, approved time.Time) map[string]any {
	m := fixture(t, "payment_subscription.json")
	m["status"], m["status_detail"], m["external_reference"] = status, detail, signedRef(t, "u1", "premium")
	setPath(m, "point_of_interaction.transaction_data.subscription_id", preID)
	setPath(m, "point_of_interaction.transaction_data.billing_date", billingDate)
	m["date_created"] = approved.Format(time.RFC3339Nano)
	m["date_approved"] = approved.Format(time.RFC3339Nano)
	if status != paymentApproved {
		m["date_approved"] = nil
	}
	return m
}

// keyStore records every inbox key the handler begins, so tests can prove that nothing
// reached the inbox, or which key a delivery used.
type keyStore struct {
	*memstore.Store
	mu   sync.Mutex
	keys []string
}

func (k *keyStore) PutWebhookEvent(ctx context.Context, ev billing.WebhookEvent, now time.Time) (billing.WebhookEvent, bool, error) {
	k.mu.Lock()
	k.keys = append(k.keys, ev.EventID)
	k.mu.Unlock()
	return k.Store.PutWebhookEvent(ctx, ev, now)
}

type env struct {
	t     *testing.T
	st    *memstore.Store
	inbox *keyStore
	svc   *billing.Service
	clock *testkit.Clock
	mp    *fakeMP
	h     http.Handler
	cfg   Config
	mu    sync.Mutex
	sent  []billing.Notification
	reqN  atomic.Int64
}

var t0 = time.Date(2026, 1, 15, 13, 6, 0, 0, time.UTC)

func newEnv(t *testing.T, mutate ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t, st: memstore.New(), clock: testkit.NewClock(t0), mp: newFakeMP(t)}
	notifier := billing.NotifierFunc(func(_ context.Context, n billing.Notification) error {
		e.mu.Lock()
		e.sent = append(e.sent, n)
		e.mu.Unlock()
		return nil
	})
	e.inbox = &keyStore{Store: e.st}
	svc, err := billing.NewService(e.inbox, notifier, billing.Config{Clock: e.clock, Logger: slog.New(slog.DiscardHandler), ReferenceSecret: refSecret})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	ctx := context.Background()
	if err := e.st.InsertPlan(ctx, &billing.Plan{ID: "premium", Name: "Premium", BillingCycle: billing.CycleMonthly,
		Price: billing.Money{Amount: 4990, Currency: "BRL"}, Active: true, CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.InsertUser(ctx, &billing.User{ID: "u1", Email: "joao.silva@example.com", Name: "João Silva",
		Locale: "pt-BR", TimeZone: "America/Sao_Paulo", CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	e.cfg = Config{AccessToken: testToken, WebhookSecret: testSecret, BaseURL: e.mp.srv.URL}
	for _, m := range mutate {
		m(&e.cfg)
	}
	e.cfg.Logger, e.cfg.ProcessInline = slog.New(slog.DiscardHandler), true
	h, err := NewWebhookHandler(svc.Processor(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	return e
}

// pendingPayment stores a renewkit checkout payment waiting for Mercado Pago.
func (e *env) pendingPayment() billing.Payment {
	e.t.Helper()
	p := billing.Payment{ID: billing.NewID(), UserID: "u1", PlanID: "premium", Amount: billing.Money{Amount: 4990, Currency: "BRL"},
		Status: billing.PaymentStatusPending, Gateway: billing.GatewayMercadoPago, CreatedAt: t0, UpdatedAt: t0}
	if err := e.st.InsertPayment(context.Background(), &p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// pendingCheckout stores a pending renewkit payment and has the fake API hold its Checkout
// Pro payment in Mercado Pago's status and status_detail.
func (e *env) pendingCheckout(status, detail string) billing.Payment {
	e.t.Helper()
	p := e.pendingPayment()
	e.mp.putPayment(checkoutID, checkoutPayment(e.t, status, detail, p.ID))
	return p
}

// notif builds a Webhooks notification body from the documented fixture.
func notif(t *testing.T, id int64, typ, action, dataID string) []byte {
	name := "notification_payment.json"
	if typ == TypePreapproval {
		name = "notification_preapproval.json"
	}
	m := fixture(t, name)
	m["id"], m["type"], m["action"] = id, typ, action
	setPath(m, "data.id", dataID)
	b, _ := json.Marshal(m)
	return b
}

// deliverPayment delivers the notification id of the given action (payment.created,
// payment.updated) about the Mercado Pago payment checkoutID.
func (e *env) deliverPayment(id int64, action string) *httptest.ResponseRecorder {
	return e.deliver(TypePayment, "1312345678", notif(e.t, id, TypePayment, action, "1312345678"))
}

// deliver posts body signed for dataID, as Mercado Pago does, and returns the answer.
func (e *env) deliver(typ, dataID string, body []byte) *httptest.ResponseRecorder {
	reqID := "req-" + strconv.FormatInt(e.reqN.Add(1), 10)
	r := NewSignedRequest("http://127.0.0.1/api/payments/mercadopago/webhook", testSecret, typ, dataID, reqID, e.clock.Now(), body)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func (e *env) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func (e *env) payment(id string) billing.Payment {
	e.t.Helper()
	p, err := e.st.GetPayment(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// inboxKeys lists the inbox keys begun so far, in order (a key once per delivery that
// reached the inbox).
func (e *env) inboxKeys() []string {
	e.inbox.mu.Lock()
	defer e.inbox.mu.Unlock()
	return append([]string(nil), e.inbox.keys...)
}

// lastEvent is the inbox record of the last delivery that reached the inbox.
func (e *env) lastEvent() billing.WebhookEvent {
	e.t.Helper()
	keys := e.inboxKeys()
	if len(keys) == 0 {
		e.t.Fatal("no delivery reached the inbox")
	}
	ev, err := e.event(keys[len(keys)-1])
	if err != nil {
		e.t.Fatal(err)
	}
	return ev
}

func (e *env) event(id string) (billing.WebhookEvent, error) {
	return e.st.GetWebhookEvent(context.Background(), billing.GatewayMercadoPago, id)
}

func (e *env) mails() []billing.Notification {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]billing.Notification(nil), e.sent...)
}

func kinds(ns []billing.Notification) []billing.NotificationKind {
	var ks []billing.NotificationKind
	for _, n := range ns {
		ks = append(ks, n.Kind)
	}
	return ks
}

func hexSign(secret, manifest string) string { return hex.EncodeToString(sign(secret, manifest)) }

// NewSignedRequest is mercadopagogwtest.NewRequest, the request builder hosts use. This
// package's tests cannot import mercadopagogwtest, which imports this package, so
// request_test.go (package mercadopagogw_test, linked into the same test binary) sets it
// before any test runs.
var NewSignedRequest func(target, secret, eventType, dataID, requestID string, ts time.Time, body []byte) *http.Request

// preOpts describes a preapproval's state at the API.
type preOpts struct {
	status       string
	pending      int
	charged      int
	next         time.Time
	lastCharged  time.Time
	lastModified time.Time
}

func preapprovalFrom(t *testing.T, o preOpts) map[string]any {
	m := fixture(t, "preapproval.json")
	m["id"], m["status"], m["external_reference"] = preID, o.status, signedRef(t, "u1", "premium")
	m["last_modified"] = o.lastModified.Format(time.RFC3339Nano)
	m["next_payment_date"] = nil
	if !o.next.IsZero() {
		m["next_payment_date"] = o.next.Format(time.RFC3339Nano)
	}
	setPath(m, "summarized.pending_charge_quantity", o.pending)
	setPath(m, "summarized.charged_quantity", o.charged)
	setPath(m, "summarized.last_charged_date", nil)
	if !o.lastCharged.IsZero() {
		setPath(m, "summarized.last_charged_date", o.lastCharged.Format(time.RFC3339Nano))
	}
	return m
}

func preapprovalState(t *testing.T, status string, pending int, next, lastModified time.Time) map[string]any {
	return preapprovalFrom(t, preOpts{status: status, pending: pending, next: next, lastModified: lastModified})
}

// refSecret is billing.Config.ReferenceSecret in these tests.
var refSecret = []byte("mercadopago-test-reference-secret")

// signedRef is the external_reference a host gives a preapproval.
func signedRef(t testing.TB, userID, planID string) string {
	t.Helper()
	s, err := billing.SignReference(refSecret, billing.Reference{UserID: userID, PlanID: planID})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
