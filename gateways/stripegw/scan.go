package stripegw

import "bytes"

// scanEnvelope reads the envelope of a verified body (what decodeEnvelopeJSON reads) in one
// pass without encoding/json, for the shape Stripe sends. It only ever answers ok for a body
// encoding/json decodes to the same envelope: whenever it is not certain it gives up
// (ok=false) and the caller decodes with encoding/json, which also words the error. It gives
// up on malformed JSON, on a field it reads having another type than the plain string or
// integer Stripe sends (an escaped or non-ASCII string, null, an expanded object), on a key
// with an escape or non-ASCII byte or a case variant of a field name where it reads fields
// (encoding/json matches those case-insensitively), on a repeated field, on nesting deeper
// than maxScanDepth, and on anything the envelope checks reject.
func scanEnvelope(body []byte) (envelope, bool) {
	s := jsonScan{b: body}
	var id, object, typ, obj []byte
	var created int64
	ok := s.fields(envelopeFields, func(i int) bool {
		var ok bool
		switch i {
		case 0:
			id, ok = s.plainString()
		case 1:
			object, ok = s.plainString()
		case 2:
			typ, ok = s.plainString()
		case 3:
			created, ok = s.unixSeconds()
		default: // data: an object whose "object" member is kept as it is
			ok = s.fields(dataFields, func(int) bool { obj, ok = s.value(); return ok })
		}
		return ok
	})
	if !ok || !s.end() || len(id) == 0 || len(typ) == 0 || len(id) > 255 || len(typ) > 255 ||
		len(object) > 0 && string(object) != "event" {
		return envelope{}, false
	}
	env := envelope{ID: string(id), Type: string(typ), Created: unix(created)}
	if !handled(env.Type) {
		return env, true
	}
	if len(obj) == 0 || obj[0] != '{' {
		return envelope{}, false
	}
	key, ok := scanObjectKey(env.Type, obj)
	if !ok || key == "" {
		return envelope{}, false
	}
	env.ObjectKey, env.object = key, obj
	return env, true
}

var (
	envelopeFields = []string{"id", "object", "type", "created", "data"}
	dataFields     = []string{"object"}
	invoiceFields  = []string{"id", "subscription", "parent"}
	parentFields   = []string{"subscription_details"}
	subFields      = []string{"subscription"}
	sessionFields  = []string{"id", "subscription"}
	disputeFields  = []string{"id", "charge"}
	idFields       = []string{"id"}
)

// scanObjectKey is objectKey on a data.object scanEnvelope has checked the syntax of,
// reading the same fields, with ok=false where scanEnvelope gives up.
func scanObjectKey(typ string, obj []byte) (string, bool) {
	s := jsonScan{b: obj}
	var id, parent []byte
	var ok bool
	switch typ {
	case EventInvoicePaid, EventInvoicePaymentFailed: // invoiceSubscription(subscription, parent)
		var sub, nested []byte
		ok = s.fields(invoiceFields, func(i int) bool {
			var ok bool
			switch i {
			case 0:
				id, ok = s.plainString()
			case 1:
				sub, ok = s.ref()
			default: // parent: null or {"subscription_details": null or {"subscription": ref}}
				ok = s.null() || s.fields(parentFields, func(int) bool {
					return s.null() || s.fields(subFields, func(int) bool { nested, ok = s.ref(); return ok })
				})
			}
			return ok
		})
		parent = sub
		if len(parent) == 0 {
			parent = nested
		}
	case EventCheckoutSessionCompleted, EventDisputeCreated, EventDisputeClosed:
		names := sessionFields
		if typ != EventCheckoutSessionCompleted {
			names = disputeFields
		}
		ok = s.fields(names, func(i int) bool {
			var ok bool
			if i == 0 {
				id, ok = s.plainString()
			} else {
				parent, ok = s.ref()
			}
			return ok
		})
	default:
		ok = s.fields(idFields, func(int) bool { id, ok = s.plainString(); return ok })
	}
	if !ok || !s.end() || len(id) == 0 {
		return "", false
	}
	if len(parent) > 0 {
		return string(parent), true
	}
	return string(id), true
}

// maxScanDepth bounds the nesting jsonScan follows; deeper bodies go to encoding/json.
const maxScanDepth = 128

// jsonScan checks JSON syntax as encoding/json does and reads the few values scanEnvelope
// needs. Each method leaves i after what it consumed and reports false for input it does
// not accept.
type jsonScan struct {
	b     []byte
	i     int
	depth int
}

func (s *jsonScan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next skips whitespace and returns the next byte (0 at the end).
func (s *jsonScan) next() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *jsonScan) eat(c byte) bool {
	if s.next() == c {
		s.i++
		return true
	}
	return false
}

// end reports whether only whitespace is left.
func (s *jsonScan) end() bool { return s.next() == 0 && s.i == len(s.b) }

func (s *jsonScan) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// null consumes a null.
func (s *jsonScan) null() bool { return s.next() == 'n' && s.literal("null") }

// value consumes one value and returns its bytes.
func (s *jsonScan) value() ([]byte, bool) {
	c := s.next()
	start, ok := s.i, false
	switch {
	case c == '{':
		ok = s.object(func([]byte, bool) bool { _, ok := s.value(); return ok })
	case c == '[':
		ok = s.array()
	case c == '"':
		_, _, ok = s.str()
	case c == 't':
		ok = s.literal("true")
	case c == 'f':
		ok = s.literal("false")
	case c == 'n':
		ok = s.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		ok = s.number()
	}
	return s.b[start:s.i], ok
}

func (s *jsonScan) array() bool {
	if s.depth++; s.depth > maxScanDepth || !s.eat('[') {
		return false
	}
	defer func() { s.depth-- }()
	if s.eat(']') {
		return true
	}
	for {
		if _, ok := s.value(); !ok {
			return false
		}
		if s.eat(']') {
			return true
		}
		if !s.eat(',') {
			return false
		}
	}
}

// object consumes an object, calling member with each key (its bytes between the quotes,
// and whether it is plain: printable ASCII without escapes), which consumes the value.
func (s *jsonScan) object(member func(key []byte, plain bool) bool) bool {
	if s.depth++; s.depth > maxScanDepth || !s.eat('{') {
		return false
	}
	defer func() { s.depth-- }()
	if s.eat('}') {
		return true
	}
	for {
		if s.next() != '"' {
			return false
		}
		key, plain, ok := s.str()
		if !ok || !s.eat(':') || !member(key, plain) {
			return false
		}
		if s.eat('}') {
			return true
		}
		if !s.eat(',') {
			return false
		}
	}
}

// fields consumes an object, calling read(i) to consume the value of the field names[i]
// (at most 8 names). It fails on a repeated field, and on a key that is not plain or that
// is a case variant of a name: encoding/json would match those to the field.
func (s *jsonScan) fields(names []string, read func(i int) bool) bool {
	var seen uint8
	return s.object(func(key []byte, plain bool) bool {
		if !plain {
			return false
		}
		for i, name := range names {
			if string(key) == name {
				if seen&(1<<i) != 0 {
					return false
				}
				seen |= 1 << i
				return read(i)
			}
			if len(key) == len(name) && bytes.EqualFold(key, []byte(name)) {
				return false
			}
		}
		_, ok := s.value()
		return ok
	})
}

// str consumes a string and returns its bytes between the quotes and whether they are
// plain (printable ASCII, no escapes): then they are the string's value.
func (s *jsonScan) str() (raw []byte, plain, ok bool) {
	if !s.eat('"') {
		return nil, false, false
	}
	start := s.i
	plain = true
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], plain, true
		case c < 0x20:
			return nil, false, false
		case c == '\\':
			plain = false
			if s.i+1 >= len(s.b) {
				return nil, false, false
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if len(s.b)-s.i < 6 || !hex4(s.b[s.i+2:s.i+6]) {
					return nil, false, false
				}
				s.i += 6
			default:
				return nil, false, false
			}
		default:
			if c >= 0x7f {
				plain = false
			}
			s.i++
		}
	}
	return nil, false, false
}

func hex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// number consumes a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScan) number() bool {
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.digits() == 0:
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

func (s *jsonScan) digits() int {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}

// plainString consumes a plain string and returns its value.
func (s *jsonScan) plainString() ([]byte, bool) {
	if s.next() != '"' {
		return nil, false
	}
	raw, plain, ok := s.str()
	return raw, ok && plain
}

// ref consumes what a ref field decodes from without its own JSON decode: a plain string
// or null ("").
func (s *jsonScan) ref() ([]byte, bool) {
	if s.null() {
		return nil, true
	}
	return s.plainString()
}

// unixSeconds consumes an integer of 0 to maxUnixSeconds written as digits only.
func (s *jsonScan) unixSeconds() (int64, bool) {
	c := s.next()
	if c < '0' || c > '9' {
		return 0, false
	}
	start := s.i
	if !s.number() || s.i-start > 12 {
		return 0, false
	}
	var n int64
	for _, d := range s.b[start:s.i] {
		if d < '0' || d > '9' {
			return 0, false // a fraction or an exponent
		}
		n = n*10 + int64(d-'0')
	}
	return n, n <= maxUnixSeconds
}
