package dashboard

import (
	"testing"
	"time"
)

// Proves a session cookie is bound to the token and to its expiry: it works until exp, not
// after, and neither a changed expiry nor another token's cookie passes.
func TestSessionValue(t *testing.T) {
	const token = "a-token-long-enough-for-tests"
	now := time.Unix(1_800_000_000, 0)
	v := sessionValue(token, now.Add(time.Hour))
	if !validSession(token, v, now) {
		t.Fatal("fresh session refused")
	}
	if validSession(token, v, now.Add(time.Hour)) {
		t.Error("expired session accepted")
	}
	if validSession("another-token-long-enough", v, now) {
		t.Error("session accepted under another token")
	}
	forged := "9999999999" + v[len("1800003600"):]
	if validSession(token, forged, now) {
		t.Error("session with an extended expiry accepted")
	}
	for _, bad := range []string{"", ".", "x.y", "1800003600", token} {
		if validSession(token, bad, now) {
			t.Errorf("%q accepted", bad)
		}
	}
}
