package mercadopagogw

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/internal/hookhttp"
)

// replay copies a delivered request, as an attacker who captured it would resend it: the
// same query string and the same signed headers, with body in place of the original.
func replay(r *http.Request, body []byte) *http.Request {
	c := r.Clone(r.Context())
	c.Body = io.NopCloser(bytes.NewReader(body))
	c.ContentLength = int64(len(body))
	return c
}

// TestOldSignatureReplayedRejected proves the default configuration has a replay window
// (15 minutes): a genuine signature captured in 2026 and replayed years later is answered
// 400, nothing reaches the inbox, the API is not asked and the payment stays pending; a
// signature 14 minutes old is still accepted.
func TestOldSignatureReplayedRejected(t *testing.T) {
	for _, tc := range []struct {
		name string
		age  time.Duration
		code int
	}{
		{"replayed four years later", 4 * 365 * 24 * time.Hour, http.StatusBadRequest},
		{"16 minutes old", 16 * time.Minute, http.StatusBadRequest},
		{"16 minutes in the future", -16 * time.Minute, http.StatusBadRequest},
		{"14 minutes old", 14 * time.Minute, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t) // Tolerance left at its zero value: the default applies
			p := e.pendingCheckout("approved", "accredited")
			r := NewSignedRequest("http://127.0.0.1/hook", testSecret, TypePayment, "1312345678", "req-old", t0,
				notif(t, 1101, TypePayment, "payment.created", "1312345678"))
			e.clock.Set(t0.Add(tc.age))
			w := e.serve(r)
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.code, w.Body)
			}
			if tc.code == http.StatusOK {
				if got := e.payment(p.ID); got.Status != billing.PaymentStatusApproved {
					t.Fatalf("fresh signature not applied: %+v", got)
				}
				return
			}
			if !strings.Contains(w.Body.String(), ErrStaleSignature.Error()) {
				t.Errorf("answer %s does not say the signature is stale", w.Body)
			}
			assertUntouched(t, e, p, "1101")
		})
	}
}

// TestReplayWithNewBodyIDIsDuplicate proves the inbox key comes from signed material: a
// captured delivery resent with the same signed headers but a different (unsigned) body id
// is answered 200 "duplicate", without asking the API, sending email or changing the
// payment.
func TestReplayWithNewBodyIDIsDuplicate(t *testing.T) {
	e := newEnv(t)
	p := e.pendingCheckout("approved", "accredited")
	r := NewSignedRequest("http://127.0.0.1/hook", testSecret, TypePayment, "1312345678", "req-1", e.clock.Now(),
		notif(t, 1201, TypePayment, "payment.created", "1312345678"))
	captured := replay(r, notif(t, 1201, TypePayment, "payment.created", "1312345678"))
	if w := e.serve(r); w.Code != http.StatusOK || w.Header().Get(hookhttp.OutcomeHeader) != string(billing.EventOutcomeProcessed) {
		t.Fatalf("genuine: %d %s", w.Code, w.Body)
	}
	before, mails, calls := e.payment(p.ID), len(e.mails()), e.mp.calls.Load()
	for _, id := range []int64{1202, 999999999, 1201} {
		w := e.serve(replay(captured, notif(t, id, TypePayment, "payment.created", "1312345678")))
		if w.Code != http.StatusOK || w.Header().Get(hookhttp.OutcomeHeader) != string(billing.EventOutcomeDuplicate) {
			t.Fatalf("replay with body id %d: %d outcome %q, want 200 duplicate", id, w.Code, w.Header().Get(hookhttp.OutcomeHeader))
		}
	}
	if after := e.payment(p.ID); after.Version != before.Version || len(e.mails()) != mails || e.mp.calls.Load() != calls {
		t.Fatalf("replays changed something: %+v, %d emails, %d API calls", after, len(e.mails()), e.mp.calls.Load())
	}
	for _, k := range e.inboxKeys() {
		if strings.Contains(k, "1202") || strings.Contains(k, "999999999") {
			t.Errorf("inbox key %q built from the unsigned body id", k)
		}
	}
}

// TestGuessedIDCannotTakeGenuineSlot proves a replay carrying a guessed future notification
// id does not take the inbox slot of the genuine notification with that id: the genuine one
// is processed afterwards and approves the payment.
func TestGuessedIDCannotTakeGenuineSlot(t *testing.T) {
	e := newEnv(t)
	p := e.pendingCheckout("in_process", "pending_contingency")
	first := NewSignedRequest("http://127.0.0.1/hook", testSecret, TypePayment, "1312345678", "req-1", e.clock.Now(),
		notif(t, 1301, TypePayment, "payment.created", "1312345678"))
	captured := replay(first, nil)
	if w := e.serve(first); w.Code != http.StatusOK {
		t.Fatalf("first: %d %s", w.Code, w.Body)
	}
	// The attacker resends it claiming the id Mercado Pago will give the next notification.
	if w := e.serve(replay(captured, notif(t, 1302, TypePayment, "payment.updated", "1312345678"))); w.Code != http.StatusOK {
		t.Fatalf("replay: %d %s", w.Code, w.Body)
	}
	if got := e.payment(p.ID); got.Status != billing.PaymentStatusPending {
		t.Fatalf("replay changed the payment: %+v", got)
	}
	// Mercado Pago approves the payment and sends notification 1302, signed afresh.
	e.clock.Set(t0.Add(time.Minute))
	e.mp.putPayment(checkoutID, checkoutPayment(t, "approved", "accredited", p.ID))
	genuine := NewSignedRequest("http://127.0.0.1/hook", testSecret, TypePayment, "1312345678", "req-2", e.clock.Now(),
		notif(t, 1302, TypePayment, "payment.updated", "1312345678"))
	w := e.serve(genuine)
	if w.Code != http.StatusOK || w.Header().Get(hookhttp.OutcomeHeader) != string(billing.EventOutcomeProcessed) {
		t.Fatalf("genuine 1302: %d outcome %q, want processed", w.Code, w.Header().Get(hookhttp.OutcomeHeader))
	}
	if got := e.payment(p.ID); got.Status != billing.PaymentStatusApproved {
		t.Fatalf("genuine notification not applied: %+v", got)
	}
}

// TestInboxKeyFromSignedMaterial proves the key names the signed data.id and the type, and
// changes with the signed request (x-request-id, ts), never with the body id.
func TestInboxKeyFromSignedMaterial(t *testing.T) {
	e := newEnv(t)
	e.mp.putPreapproval(preapprovalState(t, "pending", 0, time.Time{}, t0))
	for _, req := range []string{"req-a", "req-b"} {
		r := NewSignedRequest("http://127.0.0.1/hook", testSecret, TypePreapproval, preID, req, e.clock.Now(),
			notif(t, 1401, TypePreapproval, "updated", preID))
		if w := e.serve(r); w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", req, w.Code, w.Body)
		}
	}
	keys := e.inboxKeys()
	if len(keys) != 2 || keys[0] == keys[1] {
		t.Fatalf("keys %q, want two distinct keys for two signed deliveries", keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, TypePreapproval+":"+preID+":") || strings.Contains(k, "1401") {
			t.Errorf("key %q: want %s:%s:<signed request> without the body id", k, TypePreapproval, preID)
		}
	}
	if ev := e.lastEvent(); ev.State != billing.WebhookEventStateProcessed {
		t.Errorf("event %+v", ev)
	}
}

// TestNonJSONContentTypeRejected proves a correctly signed Webhooks notification that is
// not declared application/json is answered 415 with a JSON error: nothing reaches the
// inbox, the API is not asked, the payment stays pending. charset is allowed, and legacy
// IPN (query-string notifications, no JSON body) is not subject to the check.
func TestNonJSONContentTypeRejected(t *testing.T) {
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", ""} {
		t.Run(ct, func(t *testing.T) {
			e := newEnv(t)
			p := e.pendingCheckout("approved", "accredited")
			r := NewSignedRequest("http://127.0.0.1/hook", testSecret, TypePayment, "1312345678", "req-1", e.clock.Now(),
				notif(t, 1501, TypePayment, "payment.created", "1312345678"))
			r.Header.Set("Content-Type", ct)
			w := e.serve(r)
			if w.Code != http.StatusUnsupportedMediaType || !strings.Contains(w.Body.String(), `"error"`) {
				t.Fatalf("status %d %s, want 415 with a JSON error", w.Code, w.Body)
			}
			assertUntouched(t, e, p, "1501")
		})
	}
	e := newEnv(t, func(c *Config) { c.AcceptLegacyIPN = true })
	e.pendingCheckout("approved", "accredited")
	r := NewSignedRequest("http://127.0.0.1/hook", testSecret, TypePayment, "1312345678", "req-1", e.clock.Now(),
		notif(t, 1502, TypePayment, "payment.created", "1312345678"))
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	if w := e.serve(r); w.Code != http.StatusOK {
		t.Fatalf("charset: %d %s", w.Code, w.Body)
	}
	ipn := replay(r, nil)
	ipn.URL.RawQuery = "topic=payment&id=1312345678"
	ipn.Header = http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	if w := e.serve(ipn); w.Code != http.StatusOK {
		t.Fatalf("IPN: %d %s", w.Code, w.Body)
	}
	if keys := e.inboxKeys(); !slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, "ipn:") }) {
		t.Fatalf("IPN did not reach the inbox: %q", keys)
	}
}
