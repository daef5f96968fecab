package stripegw

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// scanSeeds are bodies of the shapes Stripe sends and near misses of them.
var scanSeeds = []string{
	`{"id":"evt_1","object":"event","type":"invoice.paid","created":1893499200,"data":{"object":{"id":"in_1","subscription":"sub_1","status":"paid","lines":{"data":[{"period":{"start":1,"end":2}}]}}}}`,
	`{"id":"evt_2","type":"invoice.payment_failed","data":{"object":{"id":"in_2","subscription":null,"parent":{"type":"subscription_details","subscription_details":{"subscription":"sub_1","metadata":{}}}}}}`,
	`{"id":"evt_2","type":"invoice.payment_failed","data":{"object":{"id":"in_2","parent":{"subscription_details":{"subscription":{"id":"sub_1"}}}}}}`,
	`{"id":"evt_2","type":"invoice.paid","data":{"object":{"id":"in_2","parent":null}}}`,
	`{"id":"evt_2","type":"invoice.paid","data":{"object":{"id":"in_2","parent":{"subscription_details":null}}}}`,
	` {"id":"evt_3" , "type" : "customer.subscription.updated","created":0,"data":{"previous_attributes":{"status":"active"},"object":{"id":"sub_1","metadata":{"ünï":"x\u00e9","\"k":[1,-2.5e+3,true,false,null]}}}} ` + "\n",
	`{"id":"evt_5","type":"checkout.session.completed","created":1893499200,"data":{"object":{"id":"cs_1","subscription":"sub_1"}}}`,
	`{"id":"evt_6","type":"checkout.session.completed","data":{"object":{"id":"cs_2","subscription":null}}}`,
	`{"id":"evt_7","type":"charge.refunded","data":{"object":{"id":"ch_1"}}}`,
	`{"id":"evt_9","type":"charge.dispute.created","data":{"object":{"id":"dp_1","charge":"ch_1"}}}`,
	`{"id":"evt_9","type":"charge.dispute.closed","data":{"object":{"id":"dp_1","charge":{"id":"ch_1"}}}}`,
	`{"id":"evt_u","type":"product.created","data":{"object":"whatever"}}`,
	`{"id":"evt_u","type":"product.created"}`,
	// Near misses: each is read by encoding/json differently from a naive scan, or rejected.
	`{"id":"evt_1","ID":"evt_2","type":"invoice.paid","data":{"object":{"id":"in_1"}}}`,
	`{"id":"evt_1","id":"evt_2","type":"invoice.paid","data":{"object":{"id":"in_1"}}}`,
	`{"\u0069d":"evt_1","type":"invoice.paid","data":{"object":{"id":"in_1"}}}`,
	`{"id":"evt_\u0031","type":"invoice.paid","data":{"object":{"id":"in_1"}}}`,
	`{"id":"evt_1","type":"invoice.paid","data":{"object":{"Id":"in_1","id":"in_2"}}}`,
	`{"id":"evt_1","type":"invoice.paid","data":{"Object":{"id":"in_1"}}}`,
	`{"id":"evt_1","type":"invoice.paid","data":{"object":{"id":"in_1"}}}x`,
	`{"id":"evt_1","type":"invoice.paid","data":{"object":{"id":"in_1"}}`,
	`{"id":"evt_1","type":"invoice.paid","data":{"object":{"id":"in_1",}}}`,
	`{"id":"evt_1","type":"product.created","data":{"object":{"id":01}}}`,
	`{"id":"evt_1","type":"product.created","data":{"object":"a` + "\x01" + `"}}`,
	`{"id":"evt_1","type":"product.created","data":{"object":"\x"}}`,
	`{"id":"evt_1","type":"product.created","data":"x"}`,
	`{"id":"evt_1","type":"product.created","data":null}`,
	`{"id":"evt_1","type":"product.created","created":1.5}`,
	`{"id":"evt_1","type":"product.created","created":-1}`,
	`{"id":"evt_1","type":"product.created","created":253402300800}`,
	`{"id":"evt_1","type":"product.created","created":"1"}`,
	`{"id":"evt_1","object":"list","type":"product.created"}`,
	`{"id":null,"type":"product.created"}`,
	`{"id":"","type":"invoice.paid"}`,
	`{"id":"evt_1","type":"invoice.paid","data":{"object":{"id":""}}}`,
	`{"id":"evt_1","type":"invoice.paid","data":{"object":{"subscription":"sub_1"}}}`,
	`{"id":"evt_1","type":"invoice.paid","data":{"object":{"id":"in_1","subscription":7}}}`,
	`{"id":"evt_1","type":"invoice.paid","data":{"object":[]}}`,
	`{"id":"evt_1","type":"product.created","data":{"object":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}}`,
	`[]`, `null`, `{`, ``, `"x"`,
}

// FuzzScanEnvelopeMatchesJSON proves the hand-rolled envelope scan is as strict as
// encoding/json: whatever body it reads, encoding/json reads too, to the same envelope, so
// a bad envelope still falls through to the strict decode, is answered 400 and stores
// nothing.
func FuzzScanEnvelopeMatchesJSON(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Add(benchBody(0))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := scanEnvelope(body)
		if !ok {
			return
		}
		want, err := decodeEnvelopeJSON(body)
		if err != nil {
			t.Fatalf("scan read %q, encoding/json rejects it: %v", body, err)
		}
		if got.ID != want.ID || got.Type != want.Type || got.ObjectKey != want.ObjectKey || !got.Created.Equal(want.Created) ||
			!bytes.Equal(got.object, want.object) {
			t.Fatalf("%q: scan read %+v, encoding/json %+v", body, got, want)
		}
	})
}

// TestScanEnvelopeReadsStripeShapes proves the scan is what the acknowledgement runs on
// the bodies Stripe sends (it does not give everything up to encoding/json), and that the
// near misses it gives up still get decodeEnvelope's verdict: accepted only as
// encoding/json reads them, otherwise a malformed-event error.
func TestScanEnvelopeReadsStripeShapes(t *testing.T) {
	for _, body := range append([]string{string(benchBody(7))}, scanSeeds[:12]...) {
		if _, ok := scanEnvelope([]byte(body)); !ok {
			if _, err := decodeEnvelopeJSON([]byte(body)); err == nil && !strings.Contains(body, `"charge":{`) && !strings.Contains(body, `"subscription":{`) {
				t.Errorf("scan gave up a plain Stripe body encoding/json reads: %s", body)
			}
		}
	}
	for _, body := range []string{
		`{"id":"evt_1","type":"invoice.paid","data":{"object":{"id":"in_1"}}}x`,
		`{"id":"evt_1","type":"invoice.paid","data":{"object":{"id":"in_1",}}}`,
		`{"id":"evt_1","type":"product.created","data":"x"}`,
		`{"id":"evt_1","type":"invoice.paid","data":{"object":{"id":"in_1","subscription":7}}}`,
		`{"id":"evt_1","object":"list","type":"product.created"}`,
	} {
		if env, err := decodeEnvelope([]byte(body)); !errors.Is(err, ErrMalformedEvent) {
			t.Errorf("%s: decoded %+v, %v; want ErrMalformedEvent", body, env, err)
		}
	}
	// Case variants and escapes name the field for encoding/json: the scan leaves them to it.
	for body, id := range map[string]string{
		`{"id":"evt_1","ID":"evt_2","type":"product.created"}`:                          "evt_2",
		`{"\u0069d":"evt_3","type":"product.created"}`:                                  "evt_3",
		`{"id":"evt_\u0034","type":"product.created"}`:                                  "evt_4",
		`{"id":"evt_5","type":"invoice.paid","data":{"object":{"Id":"x","id":"in_5"}}}`: "evt_5",
		`{"id":"evt_6","type":"invoice.paid","data":{"Object":{"id":"in_6"}}}`:          "evt_6",
	} {
		if _, ok := scanEnvelope([]byte(body)); ok {
			t.Errorf("scan read %s; it must leave case variants and escapes to encoding/json", body)
		}
		if env, err := decodeEnvelope([]byte(body)); err != nil || env.ID != id {
			t.Errorf("%s: %+v, %v; want id %s", body, env, err, id)
		}
	}
}
