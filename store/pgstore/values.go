package pgstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/renewkit/renewkit/billing"
)

// Times are stored truncated to the millisecond in timestamptz columns. Optional times are
// NULL when zero; required ones (period bounds, created_at, ...) hold the zero time itself
// (0001-01-01 UTC) so they order and compare like the zero value does in Go. Reads coalesce
// NULL to that zero time, so every column scans into a time.Time.

// zeroTS is the SQL zero time, for coalescing optional time columns in reads.
const zeroTS = `'0001-01-01 00:00:00+00'::timestamptz`

// z wraps an optional time column for reading.
func z(col string) string { return "coalesce(" + col + ", " + zeroTS + ")" }

var t0 = billing.TruncateTime

// nt is an optional time argument: NULL when zero.
func nt(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: t0(t), Valid: true}
}

// rt is a required time argument (the zero time is stored as itself).
func rt(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}.UTC()
	}
	return t0(t)
}

// nonNil keeps a text[] column NOT NULL: nil becomes the empty array.
func nonNil(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

// --- JSON values: audit details and run results ---

// encodeMap stores a details or result map as plain JSON for jsonb (NULL when empty), so
// hosts query it with the usual operators.
func encodeMap(m map[string]any) ([]byte, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, invalid("value cannot be stored as JSON: %v", err)
	}
	return b, nil
}

// decodeMap reads a plain JSON map back: whole numbers come back as int, other numbers as
// float64, times as their RFC 3339 text.
func decodeMap(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", billing.ErrMalformedRecord, err)
	}
	for k, v := range m {
		m[k] = numbers(v)
	}
	return m, nil
}

// numbers turns json.Number values inside v into int64 or float64.
func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil && int64(int(i)) == i {
			return int(i)
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}

// --- pending effects ---

// typed is one audit detail of pending effects with its Go type kept, so the entries a
// later run inserts are the ones the transition recorded (times stay time.Time, whole
// numbers stay whole).
type typed struct {
	T string          `json:"t"`
	V json.RawMessage `json:"v"`
}

// pendingDoc is the jsonb form of billing.Effects: the effects themselves, their audit
// entries' details moved into typed form, aligned with Audit.
type pendingDoc struct {
	*billing.Effects
	AuditDetails []map[string]typed `json:"audit_details,omitempty"`
}

func encodeTyped(v any) (typed, error) {
	var kind string
	switch x := v.(type) {
	case time.Time:
		kind, v = "time", t0(x)
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		kind = "int"
	case float32, float64:
		kind = "float"
	case bool:
		kind = "bool"
	case string:
		kind = "string"
	case billing.SubscriptionStatus, billing.PaymentStatus, billing.Cycle, billing.NotificationKind:
		kind, v = "string", fmt.Sprint(x)
	default:
		kind = "json"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return typed{}, err
	}
	return typed{T: kind, V: b}, nil
}

func (t typed) decode() (any, error) {
	switch t.T {
	case "time":
		var x time.Time
		err := json.Unmarshal(t.V, &x)
		return t0(x), err
	case "int":
		var x int
		err := json.Unmarshal(t.V, &x)
		return x, err
	case "float":
		var x float64
		err := json.Unmarshal(t.V, &x)
		return x, err
	case "bool":
		var x bool
		err := json.Unmarshal(t.V, &x)
		return x, err
	case "string":
		var x string
		err := json.Unmarshal(t.V, &x)
		return x, err
	}
	d := json.NewDecoder(bytes.NewReader(t.V))
	d.UseNumber()
	var x any
	err := d.Decode(&x)
	return numbers(x), err
}

// normEffects returns a copy of e with its times in UTC at millisecond precision, sharing
// nothing with e that encoding could change.
func normEffects(e billing.Effects) billing.Effects {
	e.PeriodEnd, e.CreatedAt = t0(e.PeriodEnd), t0(e.CreatedAt)
	if e.Notifications != nil {
		ns := make([]billing.Notification, len(e.Notifications))
		copy(ns, e.Notifications)
		for i := range ns {
			ns[i].Data.PeriodStart, ns[i].Data.PeriodEnd = t0(ns[i].Data.PeriodStart), t0(ns[i].Data.PeriodEnd)
		}
		e.Notifications = ns
	}
	if e.Audit != nil {
		as := make([]billing.AuditEntry, len(e.Audit))
		copy(as, e.Audit)
		for i := range as {
			as[i].CreatedAt = t0(as[i].CreatedAt)
		}
		e.Audit = as
	}
	return e
}

// encodeEffects returns the jsonb text of e, or nil for none.
func encodeEffects(e *billing.Effects) ([]byte, error) {
	if e == nil {
		return nil, nil
	}
	n := normEffects(*e)
	doc := pendingDoc{Effects: &n}
	if len(n.Audit) > 0 {
		doc.AuditDetails = make([]map[string]typed, len(n.Audit))
		for i := range n.Audit {
			if len(n.Audit[i].Details) == 0 {
				continue
			}
			m := make(map[string]typed, len(n.Audit[i].Details))
			for k, v := range n.Audit[i].Details {
				tv, err := encodeTyped(v)
				if err != nil {
					return nil, invalid("pending audit detail %q cannot be stored: %v", k, err)
				}
				m[k] = tv
			}
			doc.AuditDetails[i] = m
			n.Audit[i].Details = nil
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, invalid("pending effects cannot be stored: %v", err)
	}
	return b, nil
}

func decodeEffects(b []byte) (*billing.Effects, error) {
	if len(b) == 0 {
		return nil, nil
	}
	e := &billing.Effects{}
	doc := pendingDoc{Effects: e}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: pending effects: %v", billing.ErrMalformedRecord, err)
	}
	for i := range e.Audit {
		if i >= len(doc.AuditDetails) || len(doc.AuditDetails[i]) == 0 {
			continue
		}
		e.Audit[i].Details = make(map[string]any, len(doc.AuditDetails[i]))
		for k, tv := range doc.AuditDetails[i] {
			v, err := tv.decode()
			if err != nil {
				return nil, fmt.Errorf("%w: pending audit detail %q: %v", billing.ErrMalformedRecord, k, err)
			}
			e.Audit[i].Details[k] = v
		}
	}
	*e = normEffects(*e)
	return e, nil
}
