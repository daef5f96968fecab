package mercadopagogw

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseSignature(t *testing.T) {
	v1 := strings.Repeat("ab", 32)
	cases := []struct {
		header string
		want   error
		ts     string
		n      int
	}{
		{"ts=1704908010,v1=" + v1, nil, "1704908010", 1},
		{" ts = 1704908010 , v1 = " + strings.ToUpper(v1) + " ", nil, "1704908010", 1},
		{"v1=" + v1 + ",ts=1742505638683,v2=ignored", nil, "1742505638683", 1},
		{"ts=1,v1=" + v1 + ",v1=" + strings.Repeat("cd", 32), nil, "1", 2},
		{"", ErrMissingSignature, "", 0},
		{"ts=1", ErrMalformedSignature, "", 0},
		{"v1=" + v1, ErrMalformedSignature, "", 0},
		{"ts=abc,v1=" + v1, ErrMalformedSignature, "", 0},
		{"ts=-5,v1=" + v1, ErrMalformedSignature, "", 0},
		{"ts=1,ts=2,v1=" + v1, ErrMalformedSignature, "", 0},
		{"ts=1,v1=abc", ErrMalformedSignature, "", 0},
		{"ts=1,v1=" + strings.Repeat("zz", 32), ErrMalformedSignature, "", 0},
		{strings.Repeat("x", 2000), ErrMalformedSignature, "", 0},
	}
	for _, tc := range cases {
		sig, err := parseSignature(tc.header)
		if !errors.Is(err, tc.want) || (err == nil && (sig.TS != tc.ts || len(sig.V1) != tc.n)) {
			t.Errorf("parseSignature(%.40q) = %+v, %v; want ts %q, %d v1, %v", tc.header, sig, err, tc.ts, tc.n, tc.want)
		}
	}
}

// TestManifest proves the documented template and that absent parts are left out.
func TestManifest(t *testing.T) {
	for _, tc := range []struct{ id, req, ts, want string }{
		{"123", "req", "1", "id:123;request-id:req;ts:1;"},
		{"", "req", "1", "request-id:req;ts:1;"},
		{"123", "", "1", "id:123;ts:1;"},
		{"", "", "1", "ts:1;"},
	} {
		if got := Manifest(tc.id, tc.req, tc.ts); got != tc.want {
			t.Errorf("Manifest(%q,%q,%q) = %q, want %q", tc.id, tc.req, tc.ts, got, tc.want)
		}
	}
}

// TestSignRequestRoundTrip proves SignRequest produces what the verifier accepts, in
// milliseconds, and only for the same id, request id and secret.
func TestSignRequestRoundTrip(t *testing.T) {
	ts := time.UnixMilli(1742505638683)
	sig, err := parseSignature(SignRequest("s", "123", "req", ts))
	if err != nil || sig.TS != "1742505638683" {
		t.Fatalf("%+v %v", sig, err)
	}
	if got, _ := sig.Time(); !got.Equal(ts) {
		t.Fatalf("time %v", got)
	}
	if err := verifySignature("s", sig, "123", "req"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][3]string{{"x", "123", "req"}, {"s", "124", "req"}, {"s", "123", "reqx"}} {
		if err := verifySignature(bad[0], sig, bad[1], bad[2]); !errors.Is(err, ErrInvalidSignature) {
			t.Errorf("%v accepted", bad)
		}
	}
	if err := checkTolerance(sig, ts.Add(time.Minute), 30*time.Second); !errors.Is(err, ErrStaleSignature) {
		t.Errorf("stale accepted: %v", err)
	}
	if err := checkTolerance(sig, ts.Add(time.Hour), 0); !errors.Is(err, ErrStaleSignature) {
		t.Errorf("tolerance 0 does not apply DefaultTolerance: %v", err)
	}
	if err := checkTolerance(sig, ts.Add(DefaultTolerance-time.Second), 0); err != nil {
		t.Errorf("within DefaultTolerance: %v", err)
	}
}

func FuzzParseSignature(f *testing.F) {
	for _, s := range []string{
		"ts=1704908010,v1=618c85345248dd820d5fd456117c2ab2ef8eda45a0282ff693eac24131a5e839",
		"ts=1742505638683,v1=" + strings.Repeat("0", 64) + ",v1=" + strings.Repeat("f", 64),
		"v1=,ts=", "ts=1,v1=zz", ",,,=,=", "ts==1,v1==", " ts = 9 ", "ts=99999999999999999999,v1=" + strings.Repeat("a", 64),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		sig, err := parseSignature(header)
		if err != nil {
			if sig.TS != "" || sig.V1 != nil {
				t.Fatalf("error with a partial result: %+v", sig)
			}
			return
		}
		if sig.TS == "" || len(sig.V1) == 0 {
			t.Fatalf("accepted without ts or v1: %q", header)
		}
		if _, err := sig.Time(); err != nil {
			t.Fatalf("accepted an unusable ts: %v", err)
		}
		for _, v := range sig.V1 {
			if len(v) != 64 {
				t.Fatalf("v1 %q", v)
			}
		}
		_ = verifySignature("secret", sig, "123", "req")
	})
}

func FuzzDecodeNotification(f *testing.F) {
	for _, s := range []string{
		`{"id":12345678901,"live_mode":true,"type":"payment","date_created":"2026-01-15T10:00:05.000-03:00","user_id":448876418,"api_version":"v1","action":"payment.updated","data":{"id":"1312345678"}}`,
		`{"id":12345678999,"action":"updated","application_id":1,"data":{"id":"2c9380848d6f7e2b018d7a1b2c3d04e5"},"date":"2026-01-15T13:05:04Z","entity":"preapproval","type":"subscription_preapproval","version":3}`,
		`{"type":"payment","data":{"id":1312345678}}`, `{"entity":"preapproval","data":{"id":null}}`,
		`{"id":"x","type":"merchant_order"}`, `{"id":1e999}`, `[]`, `null`, `{"type":"\u0000"}`, ``, `{"data":{"id":{}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := decodeNotification(body)
		if err != nil {
			if !errors.Is(err, ErrMalformedNotification) {
				t.Fatalf("error not ErrMalformedNotification: %v", err)
			}
			return
		}
		if n.Type == "" {
			t.Fatal("accepted without a type")
		}
		if (n.Type == TypePayment || n.Type == TypePreapproval) && !validID(string(n.Data.ID)) {
			t.Fatalf("accepted %s with data.id %q", n.Type, n.Data.ID)
		}
		sig := signature{TS: "1768482000000"}
		for _, req := range []string{"req-1", strings.Repeat("x", 300), "a b|c"} {
			if id := inboxKey(n.Type, string(n.Data.ID), sig, req); id == "" || len(id) > maxFieldLength+maxIDLength+20+71+3 || !printable(id) {
				t.Fatalf("inbox key %q", id)
			}
		}
	})
}
