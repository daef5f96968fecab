package billing

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// This file holds the types of the operations console's reads: the queries of the
// optional Console store capability (store.go), their cursor, and the daily snapshots.

// MaxPageSize bounds the Limit of a console query; DefaultPageSize is used for Limit 0.
const (
	MaxPageSize     = 200
	DefaultPageSize = 50
)

// Cursor is the position after the last record of a page. Console lists run newest first,
// by (CreatedAt, ID) descending; a cursor names the last record returned, and the next
// page starts strictly after it.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// IsZero reports whether c is the start of a list.
func (c Cursor) IsZero() bool { return c.ID == "" && c.CreatedAt.IsZero() }

// Before reports whether a record created at t with id comes after c in a newest-first
// list (the zero cursor lets every record through).
func (c Cursor) Before(t time.Time, id string) bool {
	if c.IsZero() {
		return true
	}
	t = TruncateTime(t)
	ct := TruncateTime(c.CreatedAt)
	return t.Before(ct) || (t.Equal(ct) && id < c.ID)
}

// String encodes the cursor as an opaque token for URLs; the zero cursor is "".
func (c Cursor) String() string {
	if c.IsZero() {
		return ""
	}
	ms := int64(0)
	if !c.CreatedAt.IsZero() {
		ms = c.CreatedAt.UnixMilli()
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(ms, 10) + ":" + c.ID))
}

// ParseCursor decodes a token made by Cursor.String; "" is the zero cursor. A token that
// is not one reports ErrInvalidInput.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, fmt.Errorf("%w: cursor is not a token this API returned", ErrInvalidInput)
	}
	msText, id, ok := strings.Cut(string(b), ":")
	ms, perr := strconv.ParseInt(msText, 10, 64)
	if !ok || perr != nil || id == "" {
		return Cursor{}, fmt.Errorf("%w: cursor is not a token this API returned", ErrInvalidInput)
	}
	c := Cursor{ID: id}
	if ms != 0 {
		c.CreatedAt = time.UnixMilli(ms).UTC()
	}
	return c, nil
}

// PageLimit returns the effective page size for a query's Limit, or ErrInvalidInput for a
// negative one or one above MaxPageSize.
func PageLimit(limit int) (int, error) {
	switch {
	case limit == 0:
		return DefaultPageSize, nil
	case limit < 0 || limit > MaxPageSize:
		return 0, fmt.Errorf("%w: limit %d: use 1 to %d", ErrInvalidInput, limit, MaxPageSize)
	}
	return limit, nil
}

// SubscriptionQuery selects subscriptions for the console; zero fields do not filter.
// Soft-deleted subscriptions are never returned.
type SubscriptionQuery struct {
	Statuses []SubscriptionStatus
	Gateway  string
	PlanID   string
	// Q matches a subscription id, a gateway subscription id (exactly) or the email of the
	// subscription's user (case-insensitive prefix; at most MaxPageSize users are matched).
	Q     string
	After Cursor
	Limit int // 0: DefaultPageSize; at most MaxPageSize
}

// Match reports whether s passes the filters other than Q and After.
func (q SubscriptionQuery) Match(s Subscription) bool {
	if s.Deleted {
		return false
	}
	if len(q.Statuses) > 0 {
		ok := false
		for _, st := range q.Statuses {
			ok = ok || s.Status == st
		}
		if !ok {
			return false
		}
	}
	return (q.Gateway == "" || s.Gateway == q.Gateway) && (q.PlanID == "" || s.PlanID == q.PlanID)
}

// PaymentQuery selects payments for the console; zero fields do not filter.
type PaymentQuery struct {
	Status         PaymentStatus
	SubscriptionID string
	After          Cursor
	Limit          int
}

// Match reports whether p passes the filters other than After.
func (q PaymentQuery) Match(p Payment) bool {
	return !p.Deleted && (q.Status == "" || p.Status == q.Status) &&
		(q.SubscriptionID == "" || p.SubscriptionID == q.SubscriptionID)
}

// NotificationQuery selects notification records for the console (the email log); zero
// fields do not filter. Key is the cursor's ID.
type NotificationQuery struct {
	Kind           NotificationKind
	Status         string
	SubscriptionID string
	After          Cursor
	Limit          int
}

// Match reports whether n passes the filters other than After.
func (q NotificationQuery) Match(n NotificationRecord) bool {
	return (q.Kind == "" || n.Kind == q.Kind) && (q.Status == "" || n.Status == q.Status) &&
		(q.SubscriptionID == "" || n.SubscriptionID == q.SubscriptionID)
}

// DailySnapshot is one day's subscription figures, for the console's charts: one small
// record per day (UTC), replaced when taken again the same day.
type DailySnapshot struct {
	Day      time.Time                  `json:"day"` // midnight UTC
	ByStatus map[SubscriptionStatus]int `json:"by_status"`
	// MRR by currency in minor units, as Analytics.MRR.
	MRR   map[string]int64 `json:"mrr"`
	Taken time.Time        `json:"taken_at"`
}

// SnapshotDay returns the UTC day t falls on, at midnight.
func SnapshotDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
