package mercadopagogw

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/renewkit/renewkit/gateways/internal/hookhttp"
)

// Notification types renewkit acts on.
const (
	TypePayment      = "payment"
	TypePreapproval  = "subscription_preapproval"
	maxIDLength      = 128
	maxFieldLength   = 256
	eventIDSeparator = ":"
)

// notification is the body of a Webhooks notification:
//
//	{"id": 12345, "live_mode": true, "type": "payment", "date_created": "...",
//	 "user_id": 44444, "api_version": "v1", "action": "payment.created",
//	 "data": {"id": "999999999"}}
//
// Only the type and data.id are read from it (data.id must equal the signed one in the
// query string); states are always read from the API. Its id is not signed and not used.
type notification struct {
	ID       flexString `json:"id"`
	Type     string     `json:"type"`
	Entity   string     `json:"entity"`
	Action   string     `json:"action"`
	LiveMode bool       `json:"live_mode"`
	Data     struct {
		ID flexString `json:"id"`
	} `json:"data"`
}

// flexString accepts a JSON string or number (Mercado Pago sends ids as both).
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	// encoding/json hands over one well-formed value: an id (a plain ASCII string or a
	// number) is its own text, without decoding it a second time.
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*f = ""
	case plainString(b):
		*f = flexString(b[1 : len(b)-1])
	case len(b) > 0 && b[0] == '"':
		var s string // escapes or non-ASCII: decoded as encoding/json does
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
	case len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9'):
		*f = flexString(b)
	default:
		// encoding/json adds the field name to this error.
		return &json.UnmarshalTypeError{Value: "non-id", Type: reflect.TypeFor[flexString]()}
	}
	return nil
}

// plainString reports whether b is a JSON string of printable ASCII without escapes, whose
// value is the bytes between the quotes.
func plainString(b []byte) bool {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return false
	}
	for _, c := range b[1 : len(b)-1] {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// decodeNotification parses and validates a notification body.
func decodeNotification(body []byte) (notification, error) {
	var n notification
	if len(bytes.TrimSpace(body)) == 0 {
		return n, fmt.Errorf("%w: empty body", ErrMalformedNotification)
	}
	if err := json.Unmarshal(body, &n); err != nil {
		return notification{}, fmt.Errorf("%w: %v", ErrMalformedNotification, hookhttp.JSONProblem(err))
	}
	if n.Type == "" {
		n.Type = n.Entity
	}
	if n.Type == "" {
		return notification{}, fmt.Errorf("%w: no type", ErrMalformedNotification)
	}
	for _, f := range [...]struct{ name, v string }{{"type", n.Type}, {"action", n.Action}} {
		if len(f.v) > maxFieldLength || !printable(f.v) {
			return notification{}, fmt.Errorf("%w: bad %s", ErrMalformedNotification, f.name)
		}
	}
	for _, f := range [...]struct{ name, v string }{{"id", string(n.ID)}, {"data.id", string(n.Data.ID)}} {
		if f.v != "" && !validID(f.v) {
			return notification{}, fmt.Errorf("%w: bad %s", ErrMalformedNotification, f.name)
		}
	}
	if (n.Type == TypePayment || n.Type == TypePreapproval) && n.Data.ID == "" {
		return notification{}, fmt.Errorf("%w: %s without data.id", ErrMalformedNotification, n.Type)
	}
	return n, nil
}

// inboxKey is the webhook inbox key of a verified notification:
// "<type>:<data.id>:<ts>:<x-request-id>". Apart from the type (which must agree between
// query string and body, and only selects what is read from the API), every part is covered
// by the signature, so a captured delivery resent with another body id is the same key (a
// duplicate), and a resend cannot occupy the key of a notification Mercado Pago has not
// sent yet. The body's own id is never used: it is not signed. data.id is lower-cased (both
// cases verify) and an x-request-id that is long or has characters outside [A-Za-z0-9_-] is
// replaced by the hex SHA-256 of it, so keys stay short and printable.
func inboxKey(typ, dataID string, sig signature, requestID string) string {
	if !validID(requestID) || len(requestID) > 64 {
		sum := sha256.Sum256([]byte(requestID))
		requestID = "sha256-" + hex.EncodeToString(sum[:16])
	}
	return typ + eventIDSeparator + strings.ToLower(dataID) + eventIDSeparator + sig.TS + eventIDSeparator + requestID
}

// validID accepts the identifiers Mercado Pago uses: digits, or letters, digits, '-' and '_'.
func validID(s string) bool {
	if s == "" || len(s) > maxIDLength {
		return false
	}
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			return false
		}
	}
	return true
}
