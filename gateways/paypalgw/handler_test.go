package paypalgw

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

func activated(t testing.TB, id string, updated time.Time) []byte {
	return subscriptionEvent(t, subEvent{EventID: id, Type: EventSubscriptionActivated, Status: "ACTIVE",
		Created: updated.Add(5 * time.Second), Updated: updated, NextBilling: updated.AddDate(0, 1, 0)})
}

// Proves: a delivery signed offline with the certificate at an allowlisted HTTPS URL is
// accepted and applied, and the certificate is fetched once and then cached. ACTIVATED
// alone creates the subscription pending and grants nothing (no charge was recorded); its
// sale activates it.
func TestOfflineSignatureAccepted(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	e := newEnv(t, now, nil)
	e.mustDeliver(activated(t, "WH-1", now.Add(-time.Minute)))
	sub, ok := e.sub()
	if !ok || sub.Status != billing.SubscriptionStatusPending || !sub.CurrentPeriodEnd.IsZero() {
		t.Fatalf("ACTIVATED alone: %+v, want pending without a period", sub)
	}
	if u, _ := e.store.GetUser(context.Background(), testUser); u.HasAccess(now) {
		t.Fatal("ACTIVATED alone granted access")
	}
	e.mustDeliver(saleEvent(t, "WH-S", "SALE-0", now.Add(-time.Minute), "19.90"))
	if sub, _ = e.sub(); sub.Status != billing.SubscriptionStatusActive {
		t.Fatalf("after the sale: %+v", sub)
	}
	u, _ := e.store.GetUser(context.Background(), testUser)
	if !u.HasAccess(now) {
		t.Error("user has no access")
	}
	e.mustDeliver(subscriptionEvent(t, subEvent{EventID: "WH-2", Type: EventSubscriptionUpdated, Status: "ACTIVE",
		Created: now, Updated: now, NextBilling: now.AddDate(0, 2, 0)}))
	if n := e.signer.CertRequests(); n != 1 {
		t.Errorf("certificate fetched %d times, want 1 (cached)", n)
	}
}

// Proves each verification property: the delivery is rejected with 400 before anything is
// stored or any email sent.
func TestRejectedDeliveries(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	body := activated(t, "WH-REJ", now)
	cases := []struct {
		name     string
		property string
		headers  func(e *env) (http.Header, []byte)
		noFetch  bool
	}{
		{"tampered body", "the signature covers the CRC32 of the exact body", func(e *env) (http.Header, []byte) {
			return e.signer.Sign(body, now), bytes.Replace(body, []byte(`"ACTIVE"`), []byte(`"ACTIVF"`), 1)
		}, false},
		{"wrong webhook id", "the signature covers our webhook id", func(e *env) (http.Header, []byte) {
			return e.signer.SignWith(body, now, "OTHERWEBHOOK", e.signer.CertURL), body
		}, false},
		{"stale transmission", "transmission time must be within tolerance of the clock", func(e *env) (http.Header, []byte) {
			return e.signer.Sign(body, now.Add(-DefaultTolerance-time.Second)), body
		}, true},
		{"future transmission", "tolerance applies in both directions", func(e *env) (http.Header, []byte) {
			return e.signer.Sign(body, now.Add(DefaultTolerance+time.Second)), body
		}, true},
		{"cert host not allowlisted", "the certificate is fetched only from allowlisted hosts (no request made)", func(e *env) (http.Header, []byte) {
			u := strings.Replace(e.signer.CertURL, "127.0.0.1", "localhost", 1)
			return e.signer.SignWith(body, now, testWebhookID, u), body
		}, true},
		{"cert over plain http", "the certificate is fetched only over https (no request made)", func(e *env) (http.Header, []byte) {
			u := strings.Replace(e.signer.CertURL, "https://", "http://", 1)
			return e.signer.SignWith(body, now, testWebhookID, u), body
		}, true},
		{"signature from another key", "the signature must verify with the served certificate's key", func(e *env) (http.Header, []byte) {
			other, err := NewTestSigner(testWebhookID, TestSignerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			return other.SignWith(body, now, testWebhookID, e.signer.CertURL), body
		}, false},
		{"unsupported algorithm", "only SHA256withRSA is accepted", func(e *env) (http.Header, []byte) {
			h := e.signer.Sign(body, now)
			h.Set(HeaderAuthAlgo, "SHA1withRSA")
			return h, body
		}, true},
	}
	for _, name := range []string{HeaderTransmissionID, HeaderTransmissionTime, HeaderTransmissionSig, HeaderCertURL, HeaderAuthAlgo} {
		cases = append(cases, struct {
			name     string
			property string
			headers  func(e *env) (http.Header, []byte)
			noFetch  bool
		}{"missing " + name, "every transmission header is required", func(e *env) (http.Header, []byte) {
			h := e.signer.Sign(body, now)
			h.Del(name)
			return h, body
		}, true})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Logf("property: %s", tc.property)
			e := newEnv(t, now, nil)
			h, b := tc.headers(e)
			rec := e.post(b, h)
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("got %d %s, want 400", rec.Code, rec.Body)
			}
			if !strings.Contains(rec.Header().Get("Content-Type"), "application/json") {
				t.Error("error body is not JSON")
			}
			e.assertUntouched("WH-REJ")
			if tc.noFetch && e.signer.CertRequests() != 0 {
				t.Errorf("certificate server saw %d requests, want none", e.signer.CertRequests())
			}
		})
	}
}

// Proves: a certificate that expired by the injected clock is rejected (400, nothing stored).
func TestExpiredCertificateRejected(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	e := newEnv(t, now, nil)
	old, err := NewTestSigner(testWebhookID, TestSignerOptions{NotBefore: now.AddDate(-2, 0, 0), NotAfter: now.AddDate(-1, 0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	cfg := old.Config()
	h, err := NewWebhookHandler(e.svc.Processor(), withLogger(cfg, quiet))
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	body := activated(t, "WH-EXP", now)
	if rec := e.post(body, old.Sign(body, now)); rec.Code != http.StatusBadRequest {
		t.Fatalf("got %d, want 400", rec.Code)
	}
	e.assertUntouched("WH-EXP")
	// The same certificate is accepted while the clock is inside its validity.
	e.clock.Set(now.AddDate(-1, -6, 0))
	if rec := e.post(body, old.Sign(body, e.clock.Now())); rec.Code != http.StatusOK {
		t.Fatalf("inside validity: got %d %s", rec.Code, rec.Body)
	}
}

// Proves: non-POST is 405, a body over the limit is 413, malformed JSON (validly signed) is
// 400, unknown event types are 200 and ignored.
func TestHTTPEdges(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	e := newEnv(t, now, nil)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", rec.Code)
	}
	big := bytes.Repeat([]byte("x"), 1<<20+1)
	if rec := e.deliver(big); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("big body: %d", rec.Code)
	}
	if rec := e.deliver([]byte(`{"id": "WH-BAD", "event_type":`)); rec.Code != http.StatusBadRequest {
		t.Errorf("malformed: %d", rec.Code)
	}
	if rec := e.deliver([]byte(`{"id":"WH-X","event_type":"PAYMENT.SALE.COMPLETED","resource":{"id":"S1","state":"completed","billing_agreement_id":"I-1","amount":{"total":"1.005","currency":"USD"}}}`)); rec.Code != http.StatusBadRequest {
		t.Errorf("inexact amount: %d", rec.Code)
	}
	rec = e.deliver([]byte(`{"id":"WH-U","event_type":"CHECKOUT.ORDER.APPROVED","resource":{}}`))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "ignored") {
		t.Errorf("unknown type: %d %s", rec.Code, rec.Body)
	}
}

// Proves: a correctly signed delivery not declared application/json is answered 415 with
// a JSON error, the certificate is not even fetched and nothing is stored; charset is
// allowed.
func TestNonJSONContentTypeRejected(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", ""} {
		t.Run(ct, func(t *testing.T) {
			e := newEnv(t, now, nil)
			body := activated(t, "WH-CT", now)
			hdr := e.signer.Sign(body, now)
			hdr.Set("Content-Type", ct)
			rec := e.post(body, hdr)
			if rec.Code != http.StatusUnsupportedMediaType || !strings.Contains(rec.Body.String(), `"error"`) {
				t.Fatalf("got %d %s, want 415 with a JSON error", rec.Code, rec.Body)
			}
			e.assertUntouched("WH-CT")
			if n := e.signer.CertRequests(); n != 0 {
				t.Errorf("certificate fetched %d times", n)
			}
		})
	}
	e := newEnv(t, now, nil)
	body := activated(t, "WH-CT", now)
	hdr := e.signer.Sign(body, now)
	hdr.Set("Content-Type", "application/json; charset=UTF-8")
	if rec := e.post(body, hdr); rec.Code != http.StatusOK {
		t.Fatalf("application/json; charset=UTF-8: got %d %s, want 200", rec.Code, rec.Body)
	}
}

// Proves: a second delivery of a processed event is answered 200 "duplicate" and changes
// nothing.
func TestDuplicateDelivery(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	e := newEnv(t, now, nil)
	e.mustDeliver(activated(t, "WH-1", now.Add(-time.Hour)))
	e.mustDeliver(saleEvent(t, "WH-2", "SALE1", now.Add(-time.Minute), "19.90"))
	before, _ := e.sub()
	emails := e.sortedEmails()
	rec := e.deliver(saleEvent(t, "WH-2", "SALE1", now.Add(-time.Minute), "19.90"))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "duplicate") {
		t.Fatalf("duplicate: %d %s", rec.Code, rec.Body)
	}
	after, _ := e.sub()
	if !reflect.DeepEqual(before, after) || !reflect.DeepEqual(emails, e.sortedEmails()) {
		t.Error("duplicate delivery changed state")
	}
	// The same sale under another event id (PayPal resending) extends once too.
	e.mustDeliver(saleEvent(t, "WH-3", "SALE1", now.Add(-time.Minute), "19.90"))
	if again, _ := e.sub(); !again.CurrentPeriodEnd.Equal(before.CurrentPeriodEnd) {
		t.Error("the same sale extended twice")
	}
	pay, err := e.store.FindPaymentByGateway(context.Background(), billing.GatewayPayPal, "SALE1")
	if err != nil || pay.Status != billing.PaymentStatusApproved || pay.Amount != (billing.Money{Amount: 1990, Currency: "USD"}) {
		t.Errorf("payment: %+v %v", pay, err)
	}
}

// Proves: an older UPDATED delivered after a newer one does not move the subscription back.
func TestOutOfOrderUpdates(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	e := newEnv(t, now, nil)
	e.mustDeliver(activated(t, "WH-1", now.Add(-48*time.Hour)))
	e.mustDeliver(saleEvent(t, "WH-S", "SALE-0", now.Add(-47*time.Hour), "19.90"))
	paid, _ := e.sub()
	newer := subscriptionEvent(t, subEvent{EventID: "WH-3", Type: EventSubscriptionSuspended, Status: "SUSPENDED",
		Created: now.Add(-time.Hour), Updated: now.Add(-time.Hour), NextBilling: now.AddDate(0, 3, 0)})
	older := subscriptionEvent(t, subEvent{EventID: "WH-2", Type: EventSubscriptionUpdated, Status: "ACTIVE",
		Created: now.Add(-2 * time.Hour), Updated: now.Add(-2 * time.Hour), NextBilling: now.AddDate(0, 2, 0)})
	e.mustDeliver(newer)
	e.mustDeliver(older)
	sub, _ := e.sub()
	// Status events never move a live period (only sales do).
	if sub.Status != billing.SubscriptionStatusPastDue || !sub.CurrentPeriodEnd.Equal(paid.CurrentPeriodEnd) {
		t.Fatalf("older event moved the subscription: %s %s", sub.Status, sub.CurrentPeriodEnd)
	}
}

// lifecycle returns the events of a realistic subscription: activation, two charges, a
// failed charge, the recovery charge and the cancellation.
func lifecycle(t testing.TB) (events [][]byte, now time.Time) {
	s1, s2 := t0.Add(time.Minute), t0.AddDate(0, 1, 0).Add(time.Minute)
	fail := t0.AddDate(0, 2, 0)
	s3 := fail.AddDate(0, 0, 3)
	cancel := fail.AddDate(0, 0, 10)
	events = [][]byte{
		subscriptionEvent(t, subEvent{EventID: "WH-ACT", Type: EventSubscriptionActivated, Status: "ACTIVE",
			Created: t0.Add(10 * time.Second), Updated: t0.Add(5 * time.Second), NextBilling: t0.AddDate(0, 1, 0)}),
		saleEvent(t, "WH-S1", "SALE-1", s1, "19.90"),
		saleEvent(t, "WH-S2", "SALE-2", s2, "19.90"),
		subscriptionEvent(t, subEvent{EventID: "WH-FAIL", Type: EventSubscriptionPaymentFail, Status: "ACTIVE",
			Created: fail.Add(time.Hour), Updated: fail.Add(time.Hour), NextBilling: fail.AddDate(0, 0, 3), Cycles: "2",
			LastPayment: s2, LastFailed: fail}),
		saleEvent(t, "WH-S3", "SALE-3", s3, "19.90"),
		subscriptionEvent(t, subEvent{EventID: "WH-CAN", Type: EventSubscriptionCancelled, Status: "CANCELLED",
			Created: cancel.Add(5 * time.Second), Updated: cancel, Cycles: "3", LastPayment: s3}),
	}
	return events, cancel.Add(time.Hour)
}

type snapshot struct {
	Status             billing.SubscriptionStatus
	PeriodStart, End   time.Time
	Applied            int
	UserPlan           string
	UserStatus         billing.SubscriptionStatus
	AccessUntil        time.Time
	Payments           map[string]billing.PaymentStatus
	Emails             []sent
	SubscriptionsCount int
}

// inOrder delivers events once each, in order, to a fresh env and returns where they end:
// what a shuffled, repeated delivery must end in too.
func inOrder(t *testing.T, events [][]byte, now time.Time) snapshot {
	t.Helper()
	e := newEnv(t, now, nil)
	for _, ev := range events {
		e.mustDeliver(ev)
	}
	return e.snapshot()
}

func (e *env) snapshot() snapshot {
	e.t.Helper()
	return snapshotOf(e.t, e.store, e.sortedEmails())
}

// snapshotOf is the snapshot of st, with emails the sorted emails sent.
func snapshotOf(t *testing.T, st billing.Store, emails []sent) snapshot {
	t.Helper()
	ctx := context.Background()
	sub, err := st.FindSubscriptionByGateway(ctx, billing.GatewayPayPal, testSubID)
	if err != nil {
		t.Fatal("no subscription")
	}
	u, _ := st.GetUser(ctx, testUser)
	subs, _ := st.ListUserSubscriptions(ctx, testUser)
	s := snapshot{Status: sub.Status, PeriodStart: sub.CurrentPeriodStart, End: sub.CurrentPeriodEnd, Applied: len(sub.AppliedPayments),
		UserPlan: u.PlanID, UserStatus: u.Status, AccessUntil: u.AccessUntil, Payments: map[string]billing.PaymentStatus{},
		Emails: emails, SubscriptionsCount: len(subs)}
	for _, id := range []string{"SALE-1", "SALE-2", "SALE-3", "failed:" + testSubID + ":" + itoa(t0.AddDate(0, 2, 0).UnixMilli())} {
		if p, err := st.FindPaymentByGateway(ctx, billing.GatewayPayPal, id); err == nil {
			s.Payments[id] = p.Status
		}
	}
	return s
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// Proves: the lifecycle delivered five times per event, shuffled and concurrently (each
// delivery retried until PayPal would see a 2xx), ends in the same state and the same
// emails as one in-order delivery of each.
func TestLifecycleShuffledConcurrentMatchesInOrder(t *testing.T) {
	events, now := lifecycle(t)
	want := inOrder(t, events, now)
	if want.Status != billing.SubscriptionStatusCancelled || want.Applied != 3 || len(want.Emails) != 6 {
		t.Fatalf("in-order lifecycle: %+v", want)
	}
	for round := range 3 {
		e := newEnv(t, now, nil)
		deliveries := testkit.Shuffled(rand.New(rand.NewPCG(uint64(round), 7)), events, 5)
		var wg sync.WaitGroup
		var failures atomic.Int64
		for _, d := range deliveries {
			wg.Go(func() {
				for attempt := 0; ; attempt++ {
					rec := e.deliver(d)
					if rec.Code == http.StatusOK {
						return
					}
					if rec.Code != http.StatusServiceUnavailable && rec.Code != http.StatusConflict || attempt > 2000 {
						t.Errorf("delivery answered %d %s", rec.Code, rec.Body)
						failures.Add(1)
						return
					}
					time.Sleep(time.Millisecond)
				}
			})
		}
		wg.Wait()
		if failures.Load() > 0 {
			t.FailNow()
		}
		if got := e.snapshot(); !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d:\n got %+v\nwant %+v", round, got, want)
		}
	}
}

// apiServer replays PayPal's documented responses: OAuth token, subscription details and
// verify-webhook-signature.
type apiServer struct {
	*httptest.Server
	verifyStatus string
	subStatus    string
	nextBilling  time.Time
	updated      time.Time
	verifyCalls  atomic.Int64
	subCalls     atomic.Int64
	lastVerify   atomic.Value
}

func newAPIServer(t *testing.T) *apiServer {
	a := &apiServer{verifyStatus: "SUCCESS", subStatus: "ACTIVE"}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/oauth2/token":
			if id, secret, ok := r.BasicAuth(); !ok || id != "client-id" || secret != "client-secret" {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
				return
			}
			_, _ = w.Write(fixture(t, "oauth_token.json"))
		case r.Header.Get("Authorization") != "Bearer A21AAFEpH4PsADK7qSS7pSRsgzfENtu-Q1ysgEDVDESseMHBYXVJYE8ovjj68elIDy8nF26AwPhfXTIeWAZHSLIsQkSYz9ifg":
			w.WriteHeader(http.StatusUnauthorized)
		case r.Method == http.MethodPost && r.URL.Path == "/v1/notifications/verify-webhook-signature":
			a.verifyCalls.Add(1)
			b, _ := io.ReadAll(r.Body)
			a.lastVerify.Store(string(b))
			_, _ = w.Write(fixture(t, "verify_"+strings.ToLower(a.verifyStatus)+".json"))
		case r.Method == http.MethodGet && r.URL.Path == "/v1/billing/subscriptions/"+testSubID:
			a.subCalls.Add(1)
			_, _ = w.Write(fixture(t, "subscription_details.json", "{{SUB_ID}}", testSubID, "{{STATUS}}", a.subStatus,
				"{{NEXT_BILLING}}", ts(a.nextBilling), "{{UPDATE_TIME}}", ts(a.updated), "{{CUSTOM_ID}}", signedCustomID(t, testUser, testPlan)))
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/billing/subscriptions/I-BROKEN"):
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"name":"INTERNAL_SERVER_ERROR","message":"An internal server error occurred.","debug_id":"90957fca61718"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write(fixture(t, "error_not_found.json"))
		}
	}))
	t.Cleanup(a.Close)
	return a
}

// Proves: online verification asks PayPal's API (SUCCESS accepted, FAILURE rejected with
// 400 and nothing stored), and with credentials the subscription state comes from the API,
// not from the body.
func TestOnlineVerificationAndRefetch(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	api := newAPIServer(t)
	api.nextBilling, api.updated = now.AddDate(0, 1, 0), now.Add(-time.Minute)
	e := newEnv(t, now, func(c *Config) {
		c.Verification, c.ClientID, c.ClientSecret, c.BaseURL = VerifyOnline, "client-id", "client-secret", api.URL
		c.CertHostAllowlist = nil // the default PayPal hosts; online mode never fetches it
	})
	body := subscriptionEvent(t, subEvent{EventID: "WH-ON", Type: EventSubscriptionActivated, Status: "SUSPENDED",
		Created: now, Updated: now, NextBilling: now.AddDate(5, 0, 0)})
	hdr := e.signer.SignWith(body, now, testWebhookID, "https://api-m.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42")

	api.verifyStatus = "FAILURE"
	if rec := e.post(body, hdr); rec.Code != http.StatusBadRequest {
		t.Fatalf("FAILURE: got %d %s", rec.Code, rec.Body)
	}
	e.assertUntouched("WH-ON")

	api.verifyStatus = "SUCCESS"
	if rec := e.post(body, hdr); rec.Code != http.StatusOK {
		t.Fatalf("SUCCESS: got %d %s", rec.Code, rec.Body)
	}
	var sent map[string]any
	_ = json.Unmarshal([]byte(api.lastVerify.Load().(string)), &sent)
	if sent["webhook_id"] != testWebhookID || sent["transmission_id"] != hdr.Get(HeaderTransmissionID) || sent["webhook_event"] == nil {
		t.Errorf("verify request: %v", sent)
	}
	sub, _ := e.sub()
	// Created pending (no charge yet), at the API's update_time, not the body's.
	if sub.Status != billing.SubscriptionStatusPending || !sub.GatewayUpdatedAt.Equal(now.Add(-time.Minute)) {
		t.Errorf("state not taken from the API: %s %s", sub.Status, sub.GatewayUpdatedAt)
	}
	if api.subCalls.Load() != 1 || e.signer.CertRequests() != 0 {
		t.Errorf("subscription fetched %d times, certs %d", api.subCalls.Load(), e.signer.CertRequests())
	}
}

// Proves: the renewal lookup maps the subscription details and types API errors.
func TestRenewalLookup(t *testing.T) {
	api := newAPIServer(t)
	api.nextBilling, api.updated = t0.AddDate(0, 2, 0), t0
	l, err := NewRenewalLookup(Config{ClientID: "client-id", ClientSecret: "client-secret", BaseURL: api.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	gs, err := l.LookupSubscription(ctx, testSubID)
	if err != nil {
		t.Fatal(err)
	}
	want := billing.GatewaySubscription{ID: testSubID, Status: billing.SubscriptionStatusActive, PeriodStart: time.Date(2025, 2, 1, 0, 0, 5, 0, time.UTC),
		PeriodEnd: t0.AddDate(0, 2, 0), Amount: billing.Money{Amount: 1990, Currency: "USD"}}
	if gs != want {
		t.Errorf("got %+v\nwant %+v", gs, want)
	}
	api.subStatus = "CANCELLED"
	if gs, _ := l.LookupSubscription(ctx, testSubID); gs.Status != billing.SubscriptionStatusCancelled || !gs.CancelAtPeriodEnd {
		t.Errorf("cancelled: %+v", gs)
	}
	var aerr *APIError
	if _, err := l.LookupSubscription(ctx, "I-UNKNOWN"); !errorsAs(err, &aerr) || aerr.StatusCode != 404 || aerr.Retryable || !errorsIs(err, ErrSubscriptionNotFound) {
		t.Errorf("404: %v", err)
	}
	if _, err := l.LookupSubscription(ctx, "I-BROKEN"); !errorsAs(err, &aerr) || aerr.StatusCode != 500 || !aerr.Retryable || aerr.RequestID != "90957fca61718" {
		t.Errorf("500: %v", err)
	}
	if _, err := l.LookupSubscription(ctx, "../../v1/oauth2/token"); !errorsIs(err, ErrInvalidSubscriptionID) {
		t.Errorf("path injection: %v", err)
	}
	if _, err := NewRenewalLookup(Config{}); err == nil {
		t.Error("lookup without credentials accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{ClientSecret: "s3cr3t-value", Mode: "prod", Verification: VerifyOnline, Tolerance: -1}.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"WebhookID", "ClientID and ClientSecret", "Mode", "Verification online", "Tolerance"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Error("secret in error text")
	}
	if err := (Config{WebhookID: "W"}).Validate(); err != nil {
		t.Errorf("zero config with webhook id: %v", err)
	}
}

func TestParseAmount(t *testing.T) {
	for _, tc := range []struct {
		v, cur string
		want   int64
		ok     bool
	}{
		{"14.55", "USD", 1455, true}, {"21", "usd", 2100, true}, {"0.5", "EUR", 50, true}, {"822.0100", "CZK", 82201, true},
		{"1500", "JPY", 1500, true}, {"1500.00", "JPY", 1500, true}, {"1.005", "USD", 0, false}, {"-1.00", "USD", 0, false},
		{"1e3", "USD", 0, false}, {"", "USD", 0, false}, {".5", "USD", 0, false}, {"1.", "USD", 0, false}, {" 1", "USD", 0, false},
		{"1.50", "US", 0, false}, {"92233720368547758.08", "USD", 0, false}, {"92233720368547758.07", "USD", 9223372036854775807, true},
		{"15.5", "JPY", 0, false},
	} {
		m, err := ParseAmount(tc.v, tc.cur)
		if (err == nil) != tc.ok || (tc.ok && m.Amount != tc.want) {
			t.Errorf("ParseAmount(%q, %q) = %v, %v", tc.v, tc.cur, m, err)
		}
	}
}
