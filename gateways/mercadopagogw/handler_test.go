package mercadopagogw

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/internal/hookhttp"
)

const checkoutID = 1312345678

// TestValidSignatureApprovesCheckout proves a correctly signed payment notification is
// accepted and the payment read from the API approves the renewkit payment named by
// external_reference: subscription created, welcome and payment emails sent.
func TestValidSignatureApprovesCheckout(t *testing.T) {
	e := newEnv(t)
	p := e.pendingCheckout("approved", "accredited")
	w := e.deliverPayment(1001, "payment.created")
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	got := e.payment(p.ID)
	if got.Status != billing.PaymentStatusApproved || got.GatewayPaymentID != "1312345678" || got.SubscriptionID == "" {
		t.Fatalf("payment %+v", got)
	}
	if ks := kinds(e.mails()); len(ks) != 2 {
		t.Fatalf("emails %v, want payment_successful and welcome", ks)
	}
	if ev := e.lastEvent(); ev.State != billing.WebhookEventStateProcessed {
		t.Fatalf("event %+v", ev)
	}
	if w.Header().Get(hookhttp.OutcomeHeader) != string(billing.EventOutcomeProcessed) {
		t.Fatalf("outcome header %q", w.Header().Get(hookhttp.OutcomeHeader))
	}
}

// TestSignatureRejected: every request whose x-signature does not prove Mercado Pago sent
// this data.id and x-request-id is answered 400 before anything is parsed, stored or
// fetched. Each case names the property it proves.
func TestSignatureRejected(t *testing.T) {
	body := notif(t, 2001, TypePayment, "payment.updated", "1312345678")
	target := "http://127.0.0.1/hook"
	cases := []struct {
		name    string
		tol     time.Duration
		request func(now time.Time) *http.Request
	}{
		{"tampered data.id: signature made for another payment", 0, func(now time.Time) *http.Request {
			r := NewSignedRequest(target, testSecret, TypePayment, "1312345678", "req-1", now, body)
			r.Header.Set(HeaderSignature, SignRequest(testSecret, "999", "req-1", now))
			return r
		}},
		{"tampered x-request-id: header changed after signing", 0, func(now time.Time) *http.Request {
			r := NewSignedRequest(target, testSecret, TypePayment, "1312345678", "req-1", now, body)
			r.Header.Set(HeaderRequestID, "req-2")
			return r
		}},
		{"tampered ts: timestamp changed after signing", 0, func(now time.Time) *http.Request {
			r := NewSignedRequest(target, testSecret, TypePayment, "1312345678", "req-1", now, body)
			sig, _ := parseSignature(r.Header.Get(HeaderSignature))
			r.Header.Set(HeaderSignature, "ts=1,v1="+sig.V1[0])
			return r
		}},
		{"wrong secret: signed with another application's secret", 0, func(now time.Time) *http.Request {
			return NewSignedRequest(target, "another-secret", TypePayment, "1312345678", "req-1", now, body)
		}},
		{"missing header: unsigned request", 0, func(now time.Time) *http.Request {
			r := NewSignedRequest(target, testSecret, TypePayment, "1312345678", "req-1", now, body)
			r.Header.Del(HeaderSignature)
			return r
		}},
		{"malformed header: v1 not a hex SHA-256", 0, func(now time.Time) *http.Request {
			r := NewSignedRequest(target, testSecret, TypePayment, "1312345678", "req-1", now, body)
			r.Header.Set(HeaderSignature, "ts=1,v1=zz")
			return r
		}},
		{"stale timestamp: valid signature older than the tolerance", 5 * time.Minute, func(now time.Time) *http.Request {
			return NewSignedRequest(target, testSecret, TypePayment, "1312345678", "req-1", now.Add(-6*time.Minute), body)
		}},
		{"future timestamp: valid signature beyond the tolerance", 5 * time.Minute, func(now time.Time) *http.Request {
			return NewSignedRequest(target, testSecret, TypePayment, "1312345678", "req-1", now.Add(6*time.Minute), body)
		}},
		{"body data.id differs from the signed query data.id", 0, func(now time.Time) *http.Request {
			other := notif(t, 2001, TypePayment, "payment.updated", "777")
			return NewSignedRequest(target, testSecret, TypePayment, "1312345678", "req-1", now, other)
		}},
		{"data.id only in the body: nothing signed it", 0, func(now time.Time) *http.Request {
			r := NewSignedRequest(target, testSecret, TypePayment, "1312345678", "req-1", now, body)
			r.URL.RawQuery = ""
			r.Header.Set(HeaderSignature, SignRequest(testSecret, "", "req-1", now))
			return r
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Tolerance = tc.tol })
			p := e.pendingCheckout("approved", "accredited")
			w := e.serve(tc.request(e.clock.Now()))
			if w.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", w.Code, w.Body)
			}
			if !strings.Contains(w.Header().Get("Content-Type"), "application/json") {
				t.Fatalf("error body is not JSON")
			}
			assertUntouched(t, e, p, "2001")
		})
	}
}

// assertUntouched: no webhook event recorded, the payment as stored before, no email, and
// the API never asked.
func assertUntouched(t *testing.T, e *env, before billing.Payment, eventID string) {
	t.Helper()
	if _, err := e.event(eventID); !errors.Is(err, billing.ErrNotFound) {
		t.Errorf("webhook event recorded: %v", err)
	}
	if keys := e.inboxKeys(); len(keys) != 0 {
		t.Errorf("deliveries reached the inbox: %v", keys)
	}
	if got := e.payment(before.ID); got.Status != before.Status || got.Version != before.Version {
		t.Errorf("payment changed: %+v", got)
	}
	if m := e.mails(); len(m) != 0 {
		t.Errorf("emails sent: %v", kinds(m))
	}
	if n := e.mp.calls.Load(); n != 0 {
		t.Errorf("API called %d times", n)
	}
}

// TestSignatureVariants proves the accepted forms: data.id lower-cased by the signer (as
// the docs ask for alphanumeric ids), ts in seconds (older docs), and a fresh ts within the
// tolerance.
func TestSignatureVariants(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Tolerance = 5 * time.Minute })
	e.mp.putPreapproval(preapprovalState(t, "pending", 0, time.Time{}, t0))
	id := "2C9380848D6F7E2B018D7A1B2C3D04E5"
	now := e.clock.Now()
	body := notif(t, 3001, TypePreapproval, "created", id)

	r := NewSignedRequest("http://127.0.0.1/hook", testSecret, TypePreapproval, id, "req-1", now, body)
	r.Header.Set(HeaderSignature, SignRequest(testSecret, strings.ToLower(id), "req-1", now.Add(-4*time.Minute)))
	if w := e.serve(r); w.Code != http.StatusOK {
		t.Fatalf("lower-cased id: %d %s", w.Code, w.Body)
	}
	ts := "1768482000" // seconds
	r = NewSignedRequest("http://127.0.0.1/hook", testSecret, TypePreapproval, id, "req-2", now, notif(t, 3002, TypePreapproval, "updated", id))
	r.Header.Set(HeaderSignature, "ts="+ts+",v1="+hexSign(testSecret, Manifest(id, "req-2", ts)))
	e.clock.Set(time.Unix(1768482000, 0).Add(time.Minute))
	if w := e.serve(r); w.Code != http.StatusOK {
		t.Fatalf("ts in seconds: %d %s", w.Code, w.Body)
	}
}

// TestBodyTooLarge proves a body over 1 MiB is refused with 413 before verification.
func TestBodyTooLarge(t *testing.T) {
	e := newEnv(t)
	big := append([]byte(`{"type":"payment","pad":"`), bytes.Repeat([]byte("a"), hookhttp.MaxBody)...)
	big = append(big, `"}`...)
	w := e.deliver(TypePayment, "1", big)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d", w.Code)
	}
}

// TestMethodNotAllowed proves only POST is served.
func TestMethodNotAllowed(t *testing.T) {
	e := newEnv(t)
	w := e.serve(httptest.NewRequest(http.MethodGet, "/hook?data.id=1&type=payment", nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != http.MethodPost {
		t.Fatalf("status %d allow %q", w.Code, w.Header().Get("Allow"))
	}
}

// TestMalformedJSON proves a correctly signed but undecodable body is 400 and not stored.
func TestMalformedJSON(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":             `{"type":"payment",`,
		"no type":              `{"id":5,"data":{"id":"1312345678"}}`,
		"payment, no data.id":  `{"id":5,"type":"payment","data":{}}`,
		"id of the wrong type": `{"id":{"x":1},"type":"payment","data":{"id":"1312345678"}}`,
		"non-numeric payment":  `{"id":5,"type":"payment","data":{"id":"abc"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			p := e.pendingPayment()
			dataID := "1312345678"
			if strings.Contains(body, `"abc"`) {
				dataID = "abc"
			}
			w := e.deliver(TypePayment, dataID, []byte(body))
			if w.Code != http.StatusBadRequest {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			assertUntouched(t, e, p, "5")
		})
	}
}

// TestNeverTrustBody proves the status comes from the API: the body claims approved, the
// API says rejected, and the payment fails with Mercado Pago's status_detail.
func TestNeverTrustBody(t *testing.T) {
	e := newEnv(t)
	p := e.pendingCheckout("rejected", "cc_rejected_insufficient_amount")
	body := []byte(`{"id":4001,"type":"payment","action":"payment.updated","status":"approved","data":{"id":"1312345678","status":"approved"}}`)
	if w := e.deliver(TypePayment, "1312345678", body); w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	got := e.payment(p.ID)
	if got.Status != billing.PaymentStatusFailed || got.Reason != "rejected: cc_rejected_insufficient_amount" {
		t.Fatalf("payment %+v", got)
	}
	if ks := kinds(e.mails()); len(ks) != 1 || ks[0] != billing.NotificationKindPaymentFailed {
		t.Fatalf("emails %v", ks)
	}
}

// TestDuplicateDelivery proves a second delivery of the same signed notification is 200
// "duplicate" and changes nothing: same payment version, no extra email, no extra API
// call. A redelivery signed afresh (another x-request-id and ts) is a new inbox key; it is
// read from the API again and, the processor being idempotent, changes nothing either.
func TestDuplicateDelivery(t *testing.T) {
	e := newEnv(t)
	p := e.pendingCheckout("approved", "accredited")
	body := notif(t, 5001, TypePayment, "payment.created", "1312345678")
	r := NewSignedRequest("http://127.0.0.1/hook", testSecret, TypePayment, "1312345678", "req-1", e.clock.Now(), body)
	again := replay(r, body)
	if w := e.serve(r); w.Code != http.StatusOK {
		t.Fatalf("first: %d", w.Code)
	}
	before, mails, calls := e.payment(p.ID), len(e.mails()), e.mp.calls.Load()
	w := e.serve(again)
	if w.Code != http.StatusOK || w.Header().Get(hookhttp.OutcomeHeader) != string(billing.EventOutcomeDuplicate) {
		t.Fatalf("second: %d %s", w.Code, w.Header().Get(hookhttp.OutcomeHeader))
	}
	if after := e.payment(p.ID); after.Version != before.Version || len(e.mails()) != mails || e.mp.calls.Load() != calls {
		t.Fatalf("duplicate changed something: %+v, %d emails, %d calls", after, len(e.mails()), e.mp.calls.Load())
	}
	e.clock.Set(t0.Add(time.Hour))
	if w := e.deliver(TypePayment, "1312345678", body); w.Code != http.StatusOK {
		t.Fatalf("re-signed redelivery: %d %s", w.Code, w.Body)
	}
	if after := e.payment(p.ID); after.Status != billing.PaymentStatusApproved || after.SubscriptionID != before.SubscriptionID || len(e.mails()) != mails {
		t.Fatalf("re-signed redelivery changed something: %+v, %d emails", after, len(e.mails()))
	}
}

// TestAPIDownThenRetry proves an API outage answers 503 (Mercado Pago retries), records the
// event as failed with nothing applied, and the retry after recovery processes it.
func TestAPIDownThenRetry(t *testing.T) {
	e := newEnv(t)
	p := e.pendingCheckout("approved", "accredited")
	e.mp.down.Store(true)
	body := notif(t, 6001, TypePayment, "payment.created", "1312345678")
	r := NewSignedRequest("http://127.0.0.1/hook", testSecret, TypePayment, "1312345678", "req-1", e.clock.Now(), body)
	retry := replay(r, body)
	if w := e.serve(r); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("down: %d %s, want 503 with Retry-After", w.Code, w.Body)
	}
	if ev := e.lastEvent(); ev.State != billing.WebhookEventStateFailed {
		t.Fatalf("event %+v", ev)
	}
	if got := e.payment(p.ID); got.Status != billing.PaymentStatusPending {
		t.Fatalf("payment %+v", got)
	}
	e.mp.down.Store(false)
	if w := e.serve(retry); w.Code != http.StatusOK {
		t.Fatalf("retry: %d %s", w.Code, w.Body)
	}
	if got := e.payment(p.ID); got.Status != billing.PaymentStatusApproved {
		t.Fatalf("payment %+v", got)
	}
	if ev := e.lastEvent(); ev.State != billing.WebhookEventStateProcessed || ev.Attempts != 2 {
		t.Fatalf("event %+v", ev)
	}
}

// TestPaymentNotVisibleYet proves a payment the API does not know (404) is answered 503 so
// Mercado Pago retries, rather than dropped.
func TestPaymentNotVisibleYet(t *testing.T) {
	e := newEnv(t)
	w := e.deliver(TypePayment, "42", notif(t, 6101, TypePayment, "payment.created", "42"))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d", w.Code)
	}
}

// TestUnknownTypeIgnored proves other topics are answered 200 and recorded as ignored.
func TestUnknownTypeIgnored(t *testing.T) {
	e := newEnv(t)
	w := e.deliver("merchant_order", "9999", []byte(`{"id":7001,"type":"merchant_order","action":"created","data":{"id":"9999"}}`))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	if ev := e.lastEvent(); ev.State != billing.WebhookEventStateIgnored {
		t.Fatalf("event %+v", ev)
	}
}

// TestAmountMismatch proves an approved payment that charged less than the renewkit
// payment grants nothing: it is answered 200 "rejected" (a retry cannot fix it) and the
// payment is recorded as failed with the reason.
func TestAmountMismatch(t *testing.T) {
	e := newEnv(t)
	p := e.pendingPayment()
	m := checkoutPayment(t, "approved", "accredited", p.ID)
	m["transaction_amount"] = 1.0
	e.mp.putPayment(checkoutID, m)
	w := e.deliverPayment(8001, "payment.created")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"rejected"`) {
		t.Fatalf("status %d %s, want 200 rejected", w.Code, w.Body)
	}
	if got := e.payment(p.ID); got.Status != billing.PaymentStatusFailed || !strings.Contains(got.Reason, "charge mismatch") {
		t.Fatalf("payment %+v, want failed with a charge mismatch reason", got)
	}
}

// TestStatusMapping proves the table of payment statuses: cancelled cancels, refunded and
// charged_back of an approved payment reverse it, pending and in_process wait.
func TestStatusMapping(t *testing.T) {
	cases := []struct {
		status  string
		prior   billing.PaymentStatus
		want    billing.PaymentStatus
		outcome billing.EventOutcome
	}{
		{"cancelled", billing.PaymentStatusPending, billing.PaymentStatusCancelled, billing.EventOutcomeProcessed},
		{"refunded", billing.PaymentStatusApproved, billing.PaymentStatusRefunded, billing.EventOutcomeProcessed},
		{"charged_back", billing.PaymentStatusApproved, billing.PaymentStatusChargedBack, billing.EventOutcomeProcessed},
		{"pending", billing.PaymentStatusPending, billing.PaymentStatusPending, billing.EventOutcomeIgnored},
		{"in_process", billing.PaymentStatusPending, billing.PaymentStatusPending, billing.EventOutcomeIgnored},
		{"authorized", billing.PaymentStatusPending, billing.PaymentStatusPending, billing.EventOutcomeIgnored},
	}
	for _, tc := range cases {
		t.Run(tc.status, func(t *testing.T) {
			e := newEnv(t)
			p := e.pendingPayment()
			if tc.prior == billing.PaymentStatusApproved {
				if _, err := e.svc.Processor().ProcessApproved(context.Background(), billing.ApproveParams{PaymentID: p.ID, GatewayPaymentID: "1312345678"}); err != nil {
					t.Fatal(err)
				}
			}
			e.mp.putPayment(checkoutID, checkoutPayment(t, tc.status, "by_collector", p.ID))
			w := e.deliverPayment(9001, "payment.updated")
			if w.Code != http.StatusOK || w.Header().Get(hookhttp.OutcomeHeader) != string(tc.outcome) {
				t.Fatalf("status %d outcome %q", w.Code, w.Header().Get(hookhttp.OutcomeHeader))
			}
			if got := e.payment(p.ID); got.Status != tc.want {
				t.Fatalf("payment %s, want %s", got.Status, tc.want)
			}
		})
	}
}

// TestLegacyIPN proves unsigned IPN is refused unless enabled (nothing fetched or stored),
// and when enabled the payment is read from the API; a later status of the same payment is
// processed again.
func TestLegacyIPN(t *testing.T) {
	ipn := func() *http.Request {
		return httptest.NewRequest(http.MethodPost, "/hook?topic=payment&id=1312345678", strings.NewReader(`{"resource":"x","topic":"payment"}`))
	}
	t.Run("disabled", func(t *testing.T) {
		e := newEnv(t)
		p := e.pendingPayment()
		if w := e.serve(ipn()); w.Code != http.StatusBadRequest {
			t.Fatalf("status %d", w.Code)
		}
		assertUntouched(t, e, p, "ipn:payment:1312345678:approved")
	})
	t.Run("enabled", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.AcceptLegacyIPN = true })
		p := e.pendingCheckout("in_process", "pending_contingency")
		if w := e.serve(ipn()); w.Code != http.StatusOK {
			t.Fatalf("status %d %s", w.Code, w.Body)
		}
		if got := e.payment(p.ID); got.Status != billing.PaymentStatusPending {
			t.Fatalf("payment %+v", got)
		}
		e.mp.putPayment(checkoutID, checkoutPayment(t, "approved", "accredited", p.ID))
		if w := e.serve(ipn()); w.Code != http.StatusOK {
			t.Fatalf("status %d %s", w.Code, w.Body)
		}
		if got := e.payment(p.ID); got.Status != billing.PaymentStatusApproved {
			t.Fatalf("payment %+v", got)
		}
		w := e.serve(httptest.NewRequest(http.MethodPost, "/hook?topic=merchant_order&id=55", nil))
		if w.Code != http.StatusOK {
			t.Fatalf("merchant_order: %d", w.Code)
		}
	})
}

// TestNewWebhookHandlerValidation proves configuration problems are reported together and
// never echo the secrets.
func TestNewWebhookHandlerValidation(t *testing.T) {
	_, err := NewWebhookHandler(nil, Config{BaseURL: "ftp://x", Tolerance: -1})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"billing.Service", "AccessToken", "WebhookSecret", "BaseURL", "Tolerance"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
	e := newEnv(t)
	_, err = NewWebhookHandler(e.svc.Processor(), Config{AccessToken: "APP_USR-secret-token", WebhookSecret: "s3cr3t", Timeout: -1})
	if err == nil || strings.Contains(err.Error(), "APP_USR-secret-token") || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("err %v", err)
	}
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("not ErrInvalidConfig: %v", err)
	}
}

func TestConfigLogValueHidesSecrets(t *testing.T) {
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("cfg", "cfg", Config{AccessToken: "APP_USR-SECRET", WebhookSecret: "SECRET"})
	if strings.Contains(b.String(), "SECRET") || !strings.Contains(b.String(), "access_token=true") {
		t.Fatalf("logged %s", b.String())
	}
}
