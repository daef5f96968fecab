package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/renewkit/renewkit/billing"
)

// The console's lists run newest first by (created_at, id), ids compared byte by byte as Go
// compares strings (COLLATE "C"), served by the indexes of migration 0006. Each reads one
// row more than the page to learn whether there is a next one.

// pageSQL is the cursor condition, order and limit of a newest-first list whose id column
// is idCol; args gets the cursor and the limit (one more than the page).
func pageSQL(idCol string, after billing.Cursor, limit int, args *[]any) string {
	id := `(` + idCol + ` COLLATE "C")`
	var b strings.Builder
	if !after.IsZero() {
		*args = append(*args, rt(after.CreatedAt), after.ID)
		fmt.Fprintf(&b, ` AND (created_at, %s) < ($%d, $%d::text COLLATE "C")`, id, len(*args)-1, len(*args))
	}
	*args = append(*args, limit+1)
	fmt.Fprintf(&b, ` ORDER BY created_at DESC, %s DESC LIMIT $%d`, id, len(*args))
	return b.String()
}

// cut trims a page read with one extra row to limit, returning the next cursor.
func cut[T any](xs []T, limit int, cursor func(T) billing.Cursor) ([]T, billing.Cursor) {
	if len(xs) <= limit {
		if xs == nil {
			xs = []T{}
		}
		return xs, billing.Cursor{}
	}
	xs = xs[:limit]
	return xs, cursor(xs[limit-1])
}

// likePrefix is a LIKE pattern matching the strings that start with p.
func likePrefix(p string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(p) + "%"
}

// searchSQL is SearchSubscriptions' statement and arguments.
func searchSQL(q billing.SubscriptionQuery, limit int) (string, []any) {
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	var b strings.Builder
	b.WriteString(`SELECT ` + subCols + ` FROM {schema}.subscriptions WHERE NOT flag_del`)
	if len(q.Statuses) > 0 {
		st := make([]string, len(q.Statuses))
		for i, x := range q.Statuses {
			st[i] = string(x)
		}
		b.WriteString(` AND status = ANY(` + arg(st) + `::text[])`)
	}
	if q.Gateway != "" {
		b.WriteString(` AND gateway = ` + arg(q.Gateway))
	}
	if q.PlanID != "" {
		b.WriteString(` AND plan_id = ` + arg(q.PlanID))
	}
	if q.Q != "" {
		// The candidates: the id, the gateway subscription id, and the subscriptions of up
		// to MaxPageSize users whose email starts with Q in any case, each by its index.
		v, pat := arg(q.Q), arg(likePrefix(strings.ToLower(q.Q)))
		fmt.Fprintf(&b, ` AND id IN (
			SELECT id FROM {schema}.subscriptions WHERE id = %[1]s
			UNION ALL SELECT id FROM {schema}.subscriptions
				WHERE gateway_subscription_id = %[1]s AND NOT flag_del AND gateway_subscription_id <> ''
			UNION ALL SELECT s.id FROM (SELECT id FROM {schema}.users
					WHERE NOT flag_del AND (lower(email) COLLATE "C") LIKE %[2]s
					ORDER BY (lower(email) COLLATE "C") LIMIT %[3]d) AS u
				JOIN {schema}.subscriptions AS s ON s.user_id = u.id AND NOT s.flag_del)`, v, pat, billing.MaxPageSize)
	}
	b.WriteString(pageSQL("id", q.After, limit, &args))
	return b.String(), args
}

// pageLimit checks what every console listing checks first: ctx is live and n a valid page
// limit (billing.PageLimit).
func pageLimit(ctx context.Context, n int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return billing.PageLimit(n)
}

// SearchSubscriptions implements billing.Console in one query.
func (s *Store) SearchSubscriptions(ctx context.Context, q billing.SubscriptionQuery) ([]billing.Subscription, billing.Cursor, error) {
	limit, err := pageLimit(ctx, q.Limit)
	if err != nil {
		return nil, billing.Cursor{}, err
	}
	sql, args := searchSQL(q, limit)
	subs, err := s.scanSubs(ctx, s.t(sql), args...)
	if err != nil {
		return nil, billing.Cursor{}, s.wrap(err, "searching subscriptions")
	}
	out, next := cut(subs, limit, func(x billing.Subscription) billing.Cursor { return billing.Cursor{CreatedAt: x.CreatedAt, ID: x.ID} })
	return out, next, nil
}

// paymentsSQL is ListPayments' statement and arguments.
func paymentsSQL(q billing.PaymentQuery, limit int) (string, []any) {
	var args []any
	var b strings.Builder
	b.WriteString(`SELECT ` + paymentCols + ` FROM {schema}.payments WHERE NOT flag_del`)
	if q.Status != "" {
		args = append(args, string(q.Status))
		fmt.Fprintf(&b, ` AND status = $%d`, len(args))
	}
	if q.SubscriptionID != "" {
		args = append(args, q.SubscriptionID)
		fmt.Fprintf(&b, ` AND subscription_id = $%d`, len(args))
	}
	b.WriteString(pageSQL("id", q.After, limit, &args))
	return b.String(), args
}

// ListPayments implements billing.Console in one query.
func (s *Store) ListPayments(ctx context.Context, q billing.PaymentQuery) ([]billing.Payment, billing.Cursor, error) {
	limit, err := pageLimit(ctx, q.Limit)
	if err != nil {
		return nil, billing.Cursor{}, err
	}
	sql, args := paymentsSQL(q, limit)
	ps, err := collect(ctx, s, scanPayment, s.t(sql), args...)
	if err != nil {
		return nil, billing.Cursor{}, s.wrap(err, "listing payments")
	}
	out, next := cut(ps, limit, func(p billing.Payment) billing.Cursor { return billing.Cursor{CreatedAt: p.CreatedAt, ID: p.ID} })
	return out, next, nil
}

// notificationsSQL is ListNotifications' statement and arguments.
func notificationsSQL(q billing.NotificationQuery, limit int) (string, []any) {
	var args []any
	var b strings.Builder
	b.WriteString(`SELECT ` + notificationCols + ` FROM {schema}.notifications WHERE true`)
	for _, f := range []struct{ col, v string }{{"kind", string(q.Kind)}, {"status", q.Status}, {"subscription_id", q.SubscriptionID}} {
		if f.v != "" {
			args = append(args, f.v)
			fmt.Fprintf(&b, ` AND %s = $%d`, f.col, len(args))
		}
	}
	b.WriteString(pageSQL("key", q.After, limit, &args))
	return b.String(), args
}

// ListNotifications implements billing.Console in one query.
func (s *Store) ListNotifications(ctx context.Context, q billing.NotificationQuery) ([]billing.NotificationRecord, billing.Cursor, error) {
	limit, err := pageLimit(ctx, q.Limit)
	if err != nil {
		return nil, billing.Cursor{}, err
	}
	sql, args := notificationsSQL(q, limit)
	ns, err := collect(ctx, s, scanNotification, s.t(sql), args...)
	if err != nil {
		return nil, billing.Cursor{}, s.wrap(err, "listing notifications")
	}
	out, next := cut(ns, limit, func(n billing.NotificationRecord) billing.Cursor {
		return billing.Cursor{CreatedAt: n.CreatedAt, ID: n.Key}
	})
	return out, next, nil
}

// entityAuditSQL reads the newest $2 entries of each entity by audit_logs_entity, then the
// newest $2 of those.
const entityAuditSQL = `SELECT a.* FROM unnest($1::text[]) AS e(id)
	CROSS JOIN LATERAL (SELECT ` + auditCols + `, seq FROM {schema}.audit_logs WHERE entity_id = e.id
		ORDER BY created_at DESC, seq DESC LIMIT $2) AS a
	ORDER BY a.created_at DESC, a.seq DESC LIMIT $2`

// ListEntityAudit implements billing.Console in one query.
func (s *Store) ListEntityAudit(ctx context.Context, ids []string, limit int) ([]billing.AuditEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit < 1 || limit > billing.MaxPageSize {
		return nil, invalid("audit limit %d: use 1 to %d", limit, billing.MaxPageSize)
	}
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	if len(ids) == 0 {
		return []billing.AuditEntry{}, nil
	}
	got, err := collect(ctx, s, func(r pgx.Rows) (billing.AuditEntry, error) {
		var e billing.AuditEntry
		var details []byte
		var seq int64
		if err := r.Scan(&e.ID, &e.Action, &e.EntityType, &e.EntityID, &e.UserID, &e.Actor, &details, &e.CreatedAt, &seq); err != nil {
			return e, err
		}
		e.CreatedAt = t0(e.CreatedAt)
		var err error
		if e.Details, err = decodeMap(details); err != nil {
			return e, &billing.RecordError{Collection: "audit_logs", ID: e.ID, Err: err}
		}
		return e, nil
	}, s.t(entityAuditSQL), ids, limit)
	if err != nil {
		return nil, s.wrap(err, "listing the audit entries of %d entities", len(ids))
	}
	if got == nil {
		got = []billing.AuditEntry{}
	}
	return got, nil
}

// retrySQL reserves a failed record and reports whether the key exists and whether it was
// reserved, in one statement.
const retrySQL = `WITH u AS (UPDATE {schema}.notifications SET status = 'sending', error = '', token = $2, lease_until = $4, updated_at = $3
		WHERE key = $1 AND status = 'failed' RETURNING key)
	SELECT EXISTS (SELECT 1 FROM {schema}.notifications WHERE key = $1), EXISTS (SELECT 1 FROM u)`

// RetryNotification implements billing.Console in one statement.
func (s *Store) RetryNotification(ctx context.Context, key, token string, now, leaseUntil time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if key == "" || token == "" {
		return false, invalid("retrying a notification needs its key and a token")
	}
	var found, reserved bool
	err := s.retry(ctx, func() error {
		return s.pool.QueryRow(ctx, s.t(retrySQL), key, token, nt(now), nt(leaseUntil)).Scan(&found, &reserved)
	})
	if err != nil {
		return false, s.wrap(err, "retrying notification %q", key)
	}
	if !found && !reserved {
		return false, notFound("notification", key)
	}
	return reserved, nil
}

// PutDailySnapshot implements billing.SnapshotStore in one upsert.
func (s *Store) PutDailySnapshot(ctx context.Context, snap billing.DailySnapshot) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if snap.Day.IsZero() {
		return invalid("snapshot without a day")
	}
	byStatus, err := json.Marshal(nonNilMap(snap.ByStatus))
	if err != nil {
		return invalid("snapshot counts cannot be stored: %v", err)
	}
	mrr, err := json.Marshal(nonNilMap(snap.MRR))
	if err != nil {
		return invalid("snapshot MRR cannot be stored: %v", err)
	}
	_, err = s.exec(ctx, s.t(`INSERT INTO {schema}.daily_snapshots (day, by_status, mrr, taken_at) VALUES ($1, $2::jsonb, $3::jsonb, $4)
		ON CONFLICT (day) DO UPDATE SET by_status = excluded.by_status, mrr = excluded.mrr, taken_at = excluded.taken_at`),
		billing.SnapshotDay(snap.Day), string(byStatus), string(mrr), rt(snap.Taken))
	return s.wrap(err, "storing the snapshot of %s", billing.SnapshotDay(snap.Day).Format(time.DateOnly))
}

func nonNilMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return m
}

// ListDailySnapshots implements billing.SnapshotStore in one query.
func (s *Store) ListDailySnapshots(ctx context.Context, since time.Time) ([]billing.DailySnapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	day := billing.SnapshotDay(since)
	got, err := collect(ctx, s, func(r pgx.Rows) (billing.DailySnapshot, error) {
		var x billing.DailySnapshot
		var byStatus, mrr []byte
		if err := r.Scan(&x.Day, &byStatus, &mrr, &x.Taken); err != nil {
			return x, err
		}
		x.Day, x.Taken = billing.SnapshotDay(x.Day), t0(x.Taken)
		x.ByStatus, x.MRR = map[billing.SubscriptionStatus]int{}, map[string]int64{}
		if err := json.Unmarshal(byStatus, &x.ByStatus); err != nil {
			return x, &billing.RecordError{Collection: "daily_snapshots", ID: x.Day.Format(time.DateOnly), Err: fmt.Errorf("%w: by_status: %v", billing.ErrMalformedRecord, err)}
		}
		if err := json.Unmarshal(mrr, &x.MRR); err != nil {
			return x, &billing.RecordError{Collection: "daily_snapshots", ID: x.Day.Format(time.DateOnly), Err: fmt.Errorf("%w: mrr: %v", billing.ErrMalformedRecord, err)}
		}
		return x, nil
	}, s.t(`SELECT day, by_status, mrr, taken_at FROM {schema}.daily_snapshots WHERE day >= $1 ORDER BY day`), day)
	if err != nil {
		return nil, s.wrap(err, "listing daily snapshots")
	}
	return got, nil
}
