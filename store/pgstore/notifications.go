package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/renewkit/renewkit/billing"
)

var notificationCols = `key, kind, subscription_id, user_id, status, error, coalesce(token, ''), ` + z("lease_until") + `, created_at, ` + z("updated_at") + `, data`

func scanNotification(r pgx.Rows) (billing.NotificationRecord, error) {
	var n billing.NotificationRecord
	var kind string
	var data []byte
	if err := r.Scan(&n.Key, &kind, &n.SubscriptionID, &n.UserID, &n.Status, &n.Error, &n.Token, &n.LeaseUntil, &n.CreatedAt, &n.UpdatedAt, &data); err != nil {
		return n, err
	}
	n.Kind = billing.NotificationKind(kind)
	n.LeaseUntil, n.CreatedAt, n.UpdatedAt = t0(n.LeaseUntil), t0(n.CreatedAt), t0(n.UpdatedAt)
	if len(data) > 0 {
		n.Data = &billing.NotificationData{}
		if err := json.Unmarshal(data, n.Data); err != nil {
			return n, &billing.RecordError{Collection: "notifications", ID: n.Key, Err: fmt.Errorf("%w: data: %v", billing.ErrMalformedRecord, err)}
		}
	}
	return n, nil
}

// encodeNoteData is the jsonb text of a notification's data, NULL when it has none.
func encodeNoteData(d *billing.NotificationData) (pgtype.Text, error) {
	if d == nil {
		return pgtype.Text{}, nil
	}
	x := *d
	x.PeriodStart, x.PeriodEnd = t0(x.PeriodStart), t0(x.PeriodEnd)
	b, err := json.Marshal(x)
	if err != nil {
		return pgtype.Text{}, invalid("notification data cannot be stored: %v", err)
	}
	return pgtype.Text{String: string(b), Valid: true}, nil
}

// ReserveNotifications reserves the keys in one statement: a new key is inserted, a lapsed
// or own reservation taken, anything else left alone, atomically per key.
func (s *Store) ReserveNotifications(ctx context.Context, recs []billing.NotificationRecord, token string, now, leaseUntil time.Time) ([]bool, error) {
	// Implementation:
	// ReserveNotifications reserves the keys in one INSERT … ON CONFLICT (key) DO UPDATE …
	// WHERE <takeable> RETURNING key: a new key is inserted (with its data), a lapsed or own
	// reservation taken (token and lease only), anything else left alone, atomically per key.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if token == "" {
		return nil, invalid("notification reservation needs a token")
	}
	for i := range recs {
		if recs[i].Key == "" {
			return nil, invalid("notification %d of %d has no key", i, len(recs))
		}
	}
	reserved := make([]bool, len(recs))
	if len(recs) == 0 {
		return reserved, nil
	}
	// One row per key: ON CONFLICT DO UPDATE may touch a row once per statement.
	var keys, kinds, subs, users []string
	var data pgtype.FlatArray[pgtype.Text]
	first := map[string]bool{}
	for _, r := range recs {
		if first[r.Key] {
			continue
		}
		first[r.Key] = true
		d, err := encodeNoteData(r.Data)
		if err != nil {
			return nil, err
		}
		keys, kinds, subs, users = append(keys, r.Key), append(kinds, string(r.Kind)), append(subs, r.SubscriptionID), append(users, r.UserID)
		data = append(data, d)
	}
	got, err := collect(ctx, s, func(r pgx.Rows) (string, error) {
		var k string
		return k, r.Scan(&k)
	}, s.t(`INSERT INTO {schema}.notifications AS n (key, kind, subscription_id, user_id, status, token, lease_until, created_at, updated_at, data)
		SELECT key, kind, sub, usr, 'sending', $5, $7, $6, $6, d::jsonb
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $8::text[]) AS v(key, kind, sub, usr, d)
		ON CONFLICT (key) DO UPDATE SET token = excluded.token, lease_until = excluded.lease_until
		WHERE n.status = 'sending' AND (n.token = excluded.token OR n.lease_until IS NULL OR n.lease_until <= $6)
		RETURNING key`), keys, kinds, subs, users, token, rt(now), nt(leaseUntil), data)
	if err != nil {
		return nil, s.wrap(err, "reserving %d notifications", len(keys))
	}
	ok := make(map[string]bool, len(got))
	for _, k := range got {
		ok[k] = true
	}
	for i := range recs {
		reserved[i] = ok[recs[i].Key]
	}
	return reserved, nil
}

// FinishNotifications settles the reservations token still holds in one statement: a
// record with a Status gets it, one without is deleted (reservable again at once).
func (s *Store) FinishNotifications(ctx context.Context, recs []billing.NotificationRecord, token string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := billing.CheckNotificationOutcomes(recs); err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	if len(recs) == 0 || token == "" {
		return nil
	}
	// The first record of a key settles it (a second finds it no longer sending).
	var release, keys, statuses, errs []string
	var updated pgtype.FlatArray[pgtype.Timestamptz]
	seen := make(map[string]bool, len(recs))
	for _, r := range recs {
		if seen[r.Key] {
			continue
		}
		seen[r.Key] = true
		if r.Status == "" {
			release = append(release, r.Key)
			continue
		}
		keys, statuses, errs = append(keys, r.Key), append(statuses, r.Status), append(errs, r.Error)
		updated = append(updated, nt(r.UpdatedAt))
	}
	var args []any
	switch {
	case len(release) == 0:
		args = []any{token, keys, statuses, errs, updated}
	case len(keys) == 0:
		args = []any{release, token}
	default:
		args = []any{release, token, keys, statuses, errs, updated}
	}
	q := finishSQL(len(release) > 0, len(keys) > 0)
	_, err := s.exec(ctx, s.t(q), args...)
	return s.wrap(err, "finishing %d notifications", len(recs))
}

// finishSQL is FinishNotifications' statement: it releases keys ($1) and settles keys with
// their outcomes (the arrays after the token), or does one of the two; the token follows
// the released keys. The usual call only settles, a release only deletes. The three
// statements are built once (see buildFinishSQL).
func finishSQL(release, settle bool) string {
	switch {
	case !release:
		return finishSettleSQL
	case !settle:
		return finishReleaseSQL
	}
	return finishBothSQL
}

var (
	finishSettleSQL  = buildFinishSQL(false, true)
	finishReleaseSQL = buildFinishSQL(true, false)
	finishBothSQL    = buildFinishSQL(true, true)
)

// buildFinishSQL builds finishSQL's statement.
//
// Each key is looked up by the primary key (n.key = ANY(...)), so the cost of a call stays
// one probe per key. No index names a column the settlement writes (migration 0013), so it
// is a HOT update.
func buildFinishSQL(release, settle bool) string {
	update := `UPDATE {schema}.notifications AS n SET status = v.status, error = v.error, updated_at = v.updated_at,
			token = NULL, lease_until = NULL
		FROM unnest($3::text[], $4::text[], $5::text[], $6::timestamptz[]) AS v(key, status, error, updated_at)
		WHERE n.key = v.key AND n.key = ANY($3::text[]) AND n.status = 'sending' AND n.token = $2`
	del := `DELETE FROM {schema}.notifications WHERE key = ANY($1::text[]) AND status = 'sending' AND token = $2`
	switch {
	case !release:
		return strings.NewReplacer("$2", "$1", "$3", "$2", "$4", "$3", "$5", "$4", "$6", "$5").Replace(update)
	case !settle:
		return del
	}
	return `WITH released AS (` + del + `) ` + update
}

func (s *Store) GetNotification(ctx context.Context, key string) (billing.NotificationRecord, error) {
	return one(ctx, s, scanNotification, "notification", key, s.t(`SELECT `+notificationCols+` FROM {schema}.notifications WHERE key = $1`), key)
}
