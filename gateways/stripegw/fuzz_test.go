package stripegw

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/memstore"
)

var fuzzNow = time.Date(2030, 1, 10, 12, 0, 0, 0, time.UTC)

func FuzzParseSignatureHeader(f *testing.F) {
	payload := []byte(`{"id":"evt_1","type":"invoice.paid"}`)
	good := SignPayload("whsec_f", payload, fuzzNow)
	for _, s := range []string{
		good, good + ",v1=" + string(bytes.Repeat([]byte("ab"), 32)), good + ",v0=abc", "t=1,v1=", "t=,v1=00", "v1=00",
		"t=1893499200", "t=1893499200,v1=zz", "t=-5,v1=00", "t=99999999999999999999,v1=00", "t=1,t=2,v1=00",
		",,,", "=", "t==1,v1=00", "", "t=1893499200,v1=00,v1=0",
	} {
		f.Add(s, payload)
	}
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		sh, err := parseSignatureHeader(header)
		if err == nil && (sh.Timestamp.IsZero() || len(sh.Signatures) == 0) {
			t.Fatalf("accepted %q without timestamp or signature", header)
		}
		verr := verifySignature(body, header, "whsec_f", fuzzNow, DefaultTolerance)
		if err != nil && verr == nil {
			t.Fatalf("verify accepted a header the parser rejects: %q", header)
		}
		if verr == nil && !bytes.Equal(body, payload) && header == good {
			t.Fatalf("signature of another body accepted")
		}
	})
}

func FuzzDecodeEvent(f *testing.F) {
	seeds := []string{
		`{"id":"evt_1","object":"event","type":"invoice.paid","created":1893499200,"data":{"object":{"id":"in_1","subscription":"sub_1","status":"paid","amount_paid":2990,"currency":"brl","lines":{"data":[{"type":"subscription","period":{"start":1893499200,"end":1896177600}}]}}}}`,
		`{"id":"evt_2","type":"invoice.payment_failed","created":1893499200,"data":{"object":{"id":"in_2","parent":{"subscription_details":{"subscription":{"id":"sub_1"}}},"amount_due":10,"currency":"usd","attempt_count":3,"lines":{"data":[{"parent":{"type":"subscription_item_details","subscription_item_details":{"subscription":"sub_1","proration":false}},"period":{"start":1,"end":2}}]}}}}`,
		`{"id":"evt_3","type":"customer.subscription.updated","created":1893499200,"data":{"object":{"id":"sub_1","status":"past_due","cancel_at_period_end":true,"current_period_start":1893499200,"current_period_end":1896177600,"metadata":{"user_id":"u1","plan_id":"pro"}}}}`,
		`{"id":"evt_4","type":"customer.subscription.deleted","created":1893499200,"data":{"object":{"id":"sub_1","status":"canceled","items":{"data":[{"current_period_start":1,"current_period_end":2}]}}}}`,
		`{"id":"evt_5","type":"checkout.session.completed","created":1893499200,"data":{"object":{"id":"cs_1","mode":"subscription","subscription":"sub_1","invoice":"in_1","metadata":{"user_id":"u1","plan_id":"pro","payment_id":"p1"}}}}`,
		`{"id":"evt_6","type":"checkout.session.completed","data":{"object":{"id":"cs_2","mode":"payment","payment_status":"paid","metadata":{"payment_id":"p1"}}}}`,
		`{"id":"evt_7","type":"charge.refunded","data":{"object":{"id":"ch_1"}}}`,
		`{"id":"evt_11","type":"customer.subscription.updated","data":{"object":{"id":"sub_1","charge":5,"parent":"x","subscription":[]}}}`,
		`{"id":"evt_12","type":"checkout.session.completed","data":{"object":{"id":"cs_1","parent":7}}}`,
		`{"id":"evt_9","type":"charge.dispute.created","data":{"object":{"id":"dp_1","charge":{"id":"ch_1"}}}}`,
		`{"id":"evt_10","type":"invoice.paid","data":{"object":{"id":"in_3","subscription":"sub_\u00e9\"x"}}}`,
		`{"id":"evt_8","type":"invoice.paid","data":{"object":null}}`,
		`{"id":"","type":""}`, `[]`, `{`, `{"id":"e","type":"invoice.paid","data":{"object":{"id":"in","subscription":7}}}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	st := memstore.New()
	svc, err := billing.NewService(st, testkit.NewNotifier(), billing.Config{Clock: testkit.NewClock(fuzzNow), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	testkit.Seed(f, st, testkit.Plan("pro", billing.CycleMonthly, 2990), testkit.User("u1"))
	h, err := NewWebhookHandler(svc.Processor(), Config{WebhookSecret: "whsec_f", ProcessInline: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := decodeEvent(body)
		if err == nil {
			if ev.ID == "" || ev.Type == "" {
				t.Fatal("decoded an event without id or type")
			}
			// The object key the acknowledgement stores (read from the envelope) is the
			// object the full decode applies the event to.
			env, eerr := decodeEnvelope(body)
			if eerr != nil || env.ID != ev.ID || env.Type != ev.Type || !env.Created.Equal(ev.Created) {
				t.Fatalf("envelope %+v (%v) of a decodable event %+v", env, eerr, ev)
			}
			if want := decodedObjectKey(ev); env.ObjectKey != want {
				t.Fatalf("envelope names object %q, the decoded event %q", env.ObjectKey, want)
			}
			switch {
			case ev.Invoice != nil:
				ev.Invoice.period()
			case ev.Sub != nil:
				ev.Sub.period()
				toGatewaySubscription(ev.Sub)
				_ = mapStatus(ev.Sub.Status)
			}
		}
		req := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
		req.Header.Set(SignatureHeader, SignPayload("whsec_f", body, fuzzNow))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 400, 409, 413, 500, 503:
		default:
			t.Fatalf("status %d for %q", rec.Code, body)
		}
		if err != nil && rec.Code != 400 && rec.Code != 413 {
			t.Fatalf("undecodable body answered %d", rec.Code)
		}
	})
}

// decodedObjectKey is the object of a fully decoded event, from its typed structs.
func decodedObjectKey(ev decodedEvent) string {
	switch {
	case ev.Sub != nil:
		return ev.Sub.ID
	case ev.Invoice != nil:
		return firstNonEmpty(ev.Invoice.subscriptionID(), ev.Invoice.ID)
	case ev.Session != nil:
		return firstNonEmpty(string(ev.Session.Subscription), ev.Session.ID)
	case ev.Dispute != nil:
		return firstNonEmpty(string(ev.Dispute.Charge), ev.Dispute.ID)
	case ev.Charge != nil:
		return ev.Charge.ID
	}
	return ""
}

// Proves: an id sent as a JSON string reads as encoding/json reads the string, escapes and
// invalid UTF-8 included (the unescaped fast path changes nothing).
func FuzzRefMatchesJSONString(f *testing.F) {
	for _, s := range []string{`"sub_1"`, `"sub_\u00e9"`, `"a\"b"`, `"\ud800"`, "\"\xff\xfe\"", `""`, `"\/x"`, "\"caf\xc3\xa9\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want string
		if json.Unmarshal(b, &want) != nil {
			return
		}
		var got struct {
			R ref `json:"r"`
		}
		if err := json.Unmarshal([]byte(`{"r":`+string(b)+`}`), &got); err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		if string(got.R) != want {
			t.Fatalf("%q: ref %q, json %q", b, got.R, want)
		}
	})
}
