package paypalgw

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/memstore"
)

// TestSigner is a paypalgwtest.Signer as this package's own tests hold it. They cannot
// import paypalgwtest, which imports this package, so signer_test.go (package
// paypalgw_test, linked into the same test binary) sets NewTestSigner to
// paypalgwtest.NewSigner before any test runs.
type TestSigner struct {
	TestSigning
	CertURL   string // where the signing certificate is served
	ServerURL string // the certificate server's base URL
}

// TestSigning is the part of paypalgwtest.Signer the tests call.
type TestSigning interface {
	Config() Config
	Sign(body []byte, t time.Time) http.Header
	Request(url string, body []byte, t time.Time) *http.Request
	SignWith(body []byte, t time.Time, webhookID, certURL string) http.Header
	CertRequests() int64
	Close()
}

// TestSignerOptions is paypalgwtest.SignerOptions.
type TestSignerOptions struct {
	NotBefore, NotAfter time.Time
	DNSNames            []string
}

// NewTestSigner is paypalgwtest.NewSigner; signer_test.go sets it.
var NewTestSigner func(webhookID string, opts TestSignerOptions) (*TestSigner, error)

type sent struct {
	Kind   billing.NotificationKind
	UserID string
	Amount billing.Money
	Key    string
}

type env struct {
	t      *testing.T
	store  *memstore.Store
	svc    *billing.Service
	clock  *testkit.Clock
	signer *TestSigner
	h      http.Handler
	mu     sync.Mutex
	emails []sent
}

const (
	testWebhookID = "8PT597110X687430LKGECATA"
	testSubID     = "I-BW452GLLEP1G"
	testUser      = "user-1"
	testPlan      = "plan-pro"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// testRefSecret is billing.Config.ReferenceSecret in these tests; testPayPalPlan is the
// PayPal plan of the fixtures, mapped to testPlan by Config.Plans.
var testRefSecret = []byte("paypal-test-reference-secret-32b")

const testPayPalPlan = "P-5ML4271244454362WXNWU5NQ"

// signedCustomID is the custom_id a host sets: a reference signed with testRefSecret.
func signedCustomID(t testing.TB, userID, planID string) string {
	t.Helper()
	s, err := billing.SignReference(testRefSecret, billing.Reference{UserID: userID, PlanID: planID})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newEnv builds a service on memstore with a fake clock at now, one user and one monthly
// plan, a test signer and the handler (offline verification unless cfg says otherwise).
func newEnv(t *testing.T, now time.Time, mutate func(*Config)) *env {
	t.Helper()
	e := &env{t: t, store: memstore.New(), clock: testkit.NewClock(now)}
	ctx := context.Background()
	if err := e.store.InsertPlan(ctx, &billing.Plan{ID: testPlan, Name: "Pro", BillingCycle: billing.CycleMonthly,
		Price: billing.Money{Amount: 1990, Currency: "USD"}, Active: true}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.InsertUser(ctx, &billing.User{ID: testUser, Email: "john@example.com", Name: "John", Locale: "en"}); err != nil {
		t.Fatal(err)
	}
	notifier := billing.NotifierFunc(func(_ context.Context, n billing.Notification) error {
		e.mu.Lock()
		e.emails = append(e.emails, sent{Kind: n.Kind, UserID: n.To.UserID, Amount: n.Data.Amount, Key: n.Key})
		e.mu.Unlock()
		return nil
	})
	svc, err := billing.NewService(e.store, notifier, billing.Config{Clock: e.clock, ReferenceSecret: testRefSecret})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	signer, err := NewTestSigner(testWebhookID, TestSignerOptions{NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(signer.Close)
	e.signer = signer
	cfg := signer.Config()
	cfg.Plans = map[string]string{testPayPalPlan: testPlan}
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := NewWebhookHandler(svc.Processor(), withLogger(cfg, quiet))
	if err != nil {
		t.Fatal(err)
	}
	// The mapping tests run without an API: they trust the signed body, which a host's
	// handler never does (see newStrictEnv).
	h.(*handler).trustBodyForTests = true
	e.h = h
	return e
}

// newStrictEnv is newEnv with the handler as hosts get it: without credentials it
// acknowledges events and applies none.
func newStrictEnv(t *testing.T, now time.Time, mutate func(*Config)) *env {
	t.Helper()
	e := newEnv(t, now, mutate)
	e.h.(*handler).trustBodyForTests = false
	return e
}

// post delivers body with headers and returns the status.
func (e *env) post(body []byte, hdr http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/api/payments/paypal/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json") // as PayPal sends it; hdr may override
	for k, v := range hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

// deliver signs body at the clock's time and posts it.
func (e *env) deliver(body []byte) *httptest.ResponseRecorder {
	return e.post(body, e.signer.Sign(body, e.clock.Now()))
}

func (e *env) mustDeliver(body []byte) {
	e.t.Helper()
	if rec := e.deliver(body); rec.Code != http.StatusOK {
		e.t.Fatalf("delivery: got %d %s", rec.Code, rec.Body)
	}
}

func (e *env) sub() (billing.Subscription, bool) {
	s, err := e.store.FindSubscriptionByGateway(context.Background(), billing.GatewayPayPal, testSubID)
	if err != nil {
		return billing.Subscription{}, false
	}
	return s, true
}

// assertUntouched proves a rejected delivery stored nothing: no event, no subscription, no
// audit entry, no email.
func (e *env) assertUntouched(eventID string) {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.store.GetWebhookEvent(ctx, billing.GatewayPayPal, eventID); err == nil {
		e.t.Errorf("webhook event %s was stored", eventID)
	}
	if _, ok := e.sub(); ok {
		e.t.Error("a subscription was created")
	}
	if audits, _ := e.store.ListAudit(ctx, billing.AuditFilter{}); len(audits) != 0 {
		e.t.Errorf("%d audit entries written", len(audits))
	}
	if len(e.sortedEmails()) != 0 {
		e.t.Error("an email was sent")
	}
}

func (e *env) sortedEmails() []sent {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := append([]sent(nil), e.emails...)
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Amount.Amount < b.Amount.Amount
	})
	for i := range out {
		out[i].Key = "" // keys hold random ids; kind, recipient and amount identify the email
	}
	return out
}

// fixture renders testdata/name with the replacements.
func fixture(t testing.TB, name string, kv ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer(kv...)
	return []byte(r.Replace(string(b)))
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

type subEvent struct {
	EventID, Type, Status string
	Created, Updated      time.Time
	NextBilling           time.Time
	Cycles                string
	LastPayment           time.Time
	LastFailed            time.Time
	CustomID              string
}

func subscriptionEvent(t testing.TB, ev subEvent) []byte {
	lp, lf := "", ""
	if !ev.LastPayment.IsZero() {
		lp = `"last_payment": {"amount": {"currency_code": "USD", "value": "19.90"}, "time": "` + ts(ev.LastPayment) + `"},`
	}
	if !ev.LastFailed.IsZero() {
		lf = `"last_failed_payment": {"amount": {"currency_code": "USD", "value": "19.90"}, "time": "` + ts(ev.LastFailed) + `", "reason_code": "PAYMENT_DENIED"},`
	}
	nb := ""
	if !ev.NextBilling.IsZero() {
		nb = ts(ev.NextBilling)
	}
	if ev.Cycles == "" {
		ev.Cycles = "0"
	}
	if ev.CustomID == "" {
		ev.CustomID = signedCustomID(t, testUser, testPlan)
	}
	return fixture(t, "event_subscription.json", "{{EVENT_ID}}", ev.EventID, "{{EVENT_TYPE}}", ev.Type, "{{STATUS}}", ev.Status,
		"{{CREATE_TIME}}", ts(ev.Created), "{{UPDATE_TIME}}", ts(ev.Updated), "{{NEXT_BILLING}}", nb, "{{CYCLES}}", ev.Cycles,
		"{{LAST_PAYMENT}}", lp, "{{LAST_FAILED}}", lf, "{{CUSTOM_ID}}", ev.CustomID, "{{SUB_ID}}", testSubID)
}

func saleEvent(t testing.TB, eventID, saleID string, at time.Time, total string) []byte {
	return fixture(t, "event_sale_completed.json", "{{EVENT_ID}}", eventID, "{{SALE_ID}}", saleID,
		"{{CREATE_TIME}}", ts(at), "{{TOTAL}}", total, "{{SUB_ID}}", testSubID)
}

var quiet = slog.New(slog.DiscardHandler)

// withLogger is cfg for an inline handler logging to log, as the tests build it.
func withLogger(cfg Config, log *slog.Logger) Config {
	cfg.Logger, cfg.ProcessInline = log, true
	return cfg
}
