package paypalgw

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"testing"
	"time"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }
func errorsIs(err, target error) bool     { return errors.Is(err, target) }

// FuzzVerifyHeaders feeds arbitrary transmission headers and bodies to the header parser,
// the freshness and certificate URL checks and the signature check: no panic, and nothing
// but a validly signed delivery passes.
func FuzzVerifyHeaders(f *testing.F) {
	signer, err := NewTestSigner(testWebhookID, TestSignerOptions{})
	if err != nil {
		f.Fatal(err)
	}
	defer signer.Close()
	chain, err := fetchLeafForFuzz(signer)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	body := []byte(`{"id":"WH-F","event_type":"BILLING.SUBSCRIPTION.ACTIVATED"}`)
	h := signer.Sign(body, now)
	f.Add(h.Get(HeaderTransmissionID), h.Get(HeaderTransmissionTime), h.Get(HeaderTransmissionSig), h.Get(HeaderCertURL), h.Get(HeaderAuthAlgo), body)
	f.Add("", "", "", "", "", []byte{})
	f.Add("a|b", "2025-13-01T00:00:00Z", "!!!", "http://api.paypal.com/x", "SHA256withRSA", []byte("x"))
	f.Add("id", "2016-02-18T20:01:35Z", "AAAA", "https://user@api.paypal.com:443/c", "sha256withrsa", []byte("{}"))
	allow := Config{}.certHosts()
	f.Fuzz(func(t *testing.T, id, tm, sig, certURL, algo string, body []byte) {
		hdr := http.Header{}
		hdr.Set(HeaderTransmissionID, id)
		hdr.Set(HeaderTransmissionTime, tm)
		hdr.Set(HeaderTransmissionSig, sig)
		hdr.Set(HeaderCertURL, certURL)
		hdr.Set(HeaderAuthAlgo, algo)
		tr, err := parseTransmission(hdr)
		if err != nil {
			if !errors.Is(err, ErrSignature) {
				t.Fatalf("parse error does not wrap ErrSignature: %v", err)
			}
			return
		}
		_ = checkFresh(tr, now, DefaultTolerance)
		_ = checkCertURL(tr.CertURL, allow)
		_ = checkSignature(chain, tr, testWebhookID, body)
	})
}

// FuzzDecodeEvent: the decoder never panics, and what it accepts is usable.
func FuzzDecodeEvent(f *testing.F) {
	for _, b := range [][]byte{
		activated(f, "WH-1", t0),
		saleEvent(f, "WH-2", "SALE-1", t0, "19.90"),
		subscriptionEvent(f, subEvent{EventID: "WH-3", Type: EventSubscriptionPaymentFail, Status: "ACTIVE", Created: t0, Updated: t0, LastFailed: t0}),
		[]byte(`{"id":"x","event_type":"PAYMENT.SALE.COMPLETED","resource":null}`),
		[]byte(`{"id":"x","event_type":"BILLING.SUBSCRIPTION.UPDATED","resource":{"id":"../x"}}`),
		[]byte(`[]`), []byte(`null`),
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeEvent(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedEvent) {
				t.Fatalf("error does not wrap ErrMalformedEvent: %v", err)
			}
			return
		}
		if ev.ID == "" || ev.Type == "" {
			t.Fatal("accepted an event without id or type")
		}
		// The object key the acknowledgement stores (read from the envelope) is the
		// object the full decode applies the event to.
		want := ""
		switch {
		case ev.Sub != nil:
			want = ev.Sub.ID
		case ev.Sale != nil:
			want = ev.Sale.BillingAgreementID
		case ev.Refund != nil:
			want = "sale:" + ev.Refund.SaleID
		}
		if ev.ObjectKey != want {
			t.Fatalf("envelope names object %q, the decoded event %q", ev.ObjectKey, want)
		}
		switch ev.Kind {
		case kindSale:
			if ev.Sale == nil || ev.SaleMoney.Validate() != nil || checkSubscriptionID(ev.Sale.BillingAgreementID) != nil {
				t.Fatal("accepted an unusable sale")
			}
		case kindSync, kindPaymentFailed:
			if ev.Sub == nil || checkSubscriptionID(ev.Sub.ID) != nil {
				t.Fatal("accepted an unusable subscription")
			}
			_ = ev.Sub.mappedStatus()
		}
	})
}

// FuzzParseAmount: exact, never negative, and round-trips for accepted values.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"14.55", "0", "1.005", "-1", "1e5", "99999999999999999999", "822.0100", ""} {
		f.Add(s, "USD")
	}
	f.Add("1500", "JPY")
	f.Fuzz(func(t *testing.T, v, cur string) {
		m, err := ParseAmount(v, cur)
		if err != nil {
			if !errors.Is(err, ErrInvalidAmount) {
				t.Fatalf("error does not wrap ErrInvalidAmount: %v", err)
			}
			return
		}
		if m.Amount < 0 || m.Validate() != nil {
			t.Fatalf("accepted %q %q as %+v", v, cur, m)
		}
	})
}

func fetchLeafForFuzz(s *TestSigner) (*x509.Certificate, error) {
	cfg := s.Config()
	c := newCertCache(cfg.httpClient(), cfg.certHosts(), certCacheLimits{size: 1}, time.Now)
	chain, err := c.get(context.Background(), s.CertURL)
	if err != nil {
		return nil, err
	}
	return chain.leaf, nil
}
