package mercadopagogw

import (
	"bytes"
	"encoding/json"
	"testing"
)

// flexStringReference is what encoding/json reads from a JSON value: a string's value, a
// number's text, "" for null; ok=false for anything else.
func flexStringReference(raw []byte) (string, bool) {
	if !json.Valid(raw) {
		return "", false
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return "", false
	}
	switch v := v.(type) {
	case nil:
		return "", true
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	}
	return "", false
}

// checkFlexString decodes {"id": raw} as a notification id and compares it with
// encoding/json's own reading of raw.
func checkFlexString(t *testing.T, raw []byte) {
	t.Helper()
	want, ok := flexStringReference(raw)
	if !ok && json.Valid(raw) {
		// A well-formed value that is not an id (bool, object, array): refused.
		var n struct{ ID flexString }
		if err := json.Unmarshal(append(append([]byte(`{"ID":`), raw...), '}'), &n); err == nil {
			t.Fatalf("id %s: read as %q; want a type error", raw, n.ID)
		}
		return
	}
	if !ok {
		return // not JSON: encoding/json rejects the body before flexString sees it
	}
	var n struct{ ID flexString }
	if err := json.Unmarshal(append(append([]byte(`{"ID":`), raw...), '}'), &n); err != nil || string(n.ID) != want {
		t.Fatalf("id %s: read as %q, %v; want %q as encoding/json reads it", raw, n.ID, err, want)
	}
}

// TestFlexStringReadsIDsAsEncodingJSON: a notification id, string or number, is read as
// encoding/json reads it, also with escapes, non-ASCII and invalid UTF-8, and a value that
// is not an id is refused.
func TestFlexStringReadsIDsAsEncodingJSON(t *testing.T) {
	for _, raw := range []string{
		`"1312345678"`, `1312345678`, `-12`, `1.5e3`, `0`, `null`, `""`, `"abc-DEF_1"`,
		`"a\"b"`, `"a\\b"`, `"\u0041\u00e9"`, `"é"`, "\"\xff\"", `"a/b"`, `"a\/b"`, `" spaced "`,
		`true`, `false`, `{}`, `[]`, `["1"]`, `{"id":"1"}`,
	} {
		checkFlexString(t, []byte(raw))
	}
}

// FuzzFlexString: whatever an attacker puts in an id, flexString reads what encoding/json
// reads, or refuses it.
func FuzzFlexString(f *testing.F) {
	for _, s := range []string{`"1312345678"`, `42`, `"a\"b"`, "\"\xff\"", `null`, `true`, `"\u00e9"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(checkFlexString)
}

// BenchmarkDecodeNotification decodes a documented payment notification, as the handler
// does for every delivery before it is acknowledged.
//
//	go test -run '^$' -bench DecodeNotification -count 5 ./gateways/mercadopagogw
func BenchmarkDecodeNotification(b *testing.B) {
	body := []byte(`{"id":12345,"live_mode":true,"type":"payment","date_created":"2015-03-25T10:04:58.396-04:00","user_id":44444,"api_version":"v1","action":"payment.created","data":{"id":"999999999"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeNotification(body); err != nil {
			b.Fatal(err)
		}
	}
}
