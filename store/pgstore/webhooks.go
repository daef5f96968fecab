package pgstore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/renewkit/renewkit/billing"
)

// The inbox's states as SQL lists. They are literals, not parameters, so the planner proves
// that a query's state condition implies the partial indexes' (WHERE state IN pending).
const (
	pendingSQL   = `('received', 'failed', 'parked')`
	unappliedSQL = `('received', 'failed')` // what holds later events of an object back
	replayedSQL  = `('failed', 'dead', 'ignored')`
)

// eventKeySQL is billing.WebhookEventKey compared bytewise, as Go compares strings: the
// listing order after received_at, and the expression of the listing indexes.
const eventKeySQL = `((gateway || ':' || event_id) COLLATE "C")`

// eventColsOf lists the columns scanEvent reads, of table alias a ("" for none); payload
// is read only when withPayload is set (NULL in its place otherwise).
func eventColsOf(a string, withPayload bool) string {
	if a != "" {
		a += "."
	}
	payload := "NULL::bytea"
	if withPayload {
		payload = a + "payload"
	}
	return a + "gateway, " + a + "event_id, " + a + "type, " + a + "object_key, " + z(a+"occurred_at") + ", " + payload + ", " +
		a + "state, " + a + "attempts, " + a + "error, " + a + "received_at, " + a + "updated_at, " + z(a+"next_attempt_at") + ", " +
		z(a+"parked_at") + ", " + z(a+"finished_at") + ", " + z(a+"lease_until") + ", coalesce(" + a + "lease_token, ''), " + a + "history"
}

var (
	eventCols     = eventColsOf("", true)
	eventListCols = eventColsOf("", false)
)

// attemptJSON is one entry of the history column. It is the column's own format, kept
// apart from billing.WebhookAttempt's JSON form so the stored data does not follow it.
type attemptJSON struct {
	At       time.Time `json:"at"`
	State    string    `json:"state"`
	Error    string    `json:"error,omitempty"`
	Duration int64     `json:"duration_ns"`
}

func scanEvent(r pgx.Rows) (billing.WebhookEvent, error) {
	var e billing.WebhookEvent
	var state string
	var attempts int32
	var history []byte
	err := r.Scan(&e.Gateway, &e.EventID, &e.Type, &e.ObjectKey, &e.OccurredAt, &e.Payload, &state, &attempts, &e.Error,
		&e.ReceivedAt, &e.UpdatedAt, &e.NextAttemptAt, &e.ParkedAt, &e.FinishedAt, &e.LeaseUntil, &e.LeaseToken, &history)
	if err != nil {
		return e, err
	}
	e.State, e.Attempts = billing.WebhookEventState(state), int(attempts)
	e.OccurredAt, e.ReceivedAt, e.UpdatedAt, e.NextAttemptAt = t0(e.OccurredAt), t0(e.ReceivedAt), t0(e.UpdatedAt), t0(e.NextAttemptAt)
	e.ParkedAt, e.FinishedAt, e.LeaseUntil = t0(e.ParkedAt), t0(e.FinishedAt), t0(e.LeaseUntil)
	if len(history) > 0 {
		var as []attemptJSON
		if err := json.Unmarshal(history, &as); err != nil {
			return e, &billing.RecordError{Collection: "webhook_events", ID: billing.WebhookEventKey(e.Gateway, e.EventID),
				Err: fmt.Errorf("%w: history: %v", billing.ErrMalformedRecord, err)}
		}
		for _, a := range as {
			e.History = append(e.History, billing.WebhookAttempt{At: t0(a.At), State: billing.WebhookEventState(a.State),
				Error: a.Error, Duration: time.Duration(a.Duration)})
		}
	}
	return e, nil
}

// PutWebhookEvent stores ev in one INSERT … ON CONFLICT DO NOTHING; on a conflict it reads
// the stored event (a second statement, which sees a row a concurrent insert committed).
func (s *Store) PutWebhookEvent(ctx context.Context, ev billing.WebhookEvent, now time.Time) (billing.WebhookEvent, bool, error) {
	if err := ctx.Err(); err != nil {
		return billing.WebhookEvent{}, false, err
	}
	if ev.Gateway == "" || ev.EventID == "" {
		return billing.WebhookEvent{}, false, invalid("webhook event needs a gateway and an id")
	}
	// A stored event without a payload (recorded before the inbox) that failed, or whose
	// lease ended, takes the redelivery's payload and is due now (PutWebhookEvent's contract).
	got, err := collect(ctx, s, scanEvent, s.t(`INSERT INTO {schema}.webhook_events AS e
			(gateway, event_id, type, object_key, occurred_at, payload, state, attempts, error, received_at, updated_at, next_attempt_at)
		VALUES ($1, $2, $3, $4, $5, $6, 'received', 0, '', $7, $7, $7)
		ON CONFLICT (gateway, event_id) DO UPDATE SET payload = excluded.payload, type = excluded.type,
			object_key = excluded.object_key, occurred_at = excluded.occurred_at, state = 'received',
			next_attempt_at = excluded.next_attempt_at, updated_at = excluded.updated_at, lease_until = NULL, lease_token = NULL
		WHERE coalesce(length(e.payload), 0) = 0 AND coalesce(length(excluded.payload), 0) > 0
			AND (e.state = 'failed' OR e.state = 'received' AND (e.lease_until IS NULL OR e.lease_until <= excluded.updated_at))
		RETURNING `+eventCols), ev.Gateway, ev.EventID, ev.Type, ev.ObjectKey, nt(ev.OccurredAt), ev.Payload, rt(now))
	if err != nil {
		return billing.WebhookEvent{}, false, s.wrap(err, "storing webhook event %q", ev.EventID)
	}
	if len(got) == 1 {
		return got[0], true, nil
	}
	cur, err := s.GetWebhookEvent(ctx, ev.Gateway, ev.EventID)
	return cur, false, err
}

// claimWebhookSQL is the claim statement: one UPDATE of the rows a subquery locks (FOR
// UPDATE SKIP LOCKED: concurrent claimers take different events), or, for an inline
// delivery, of the one event (waiting for a concurrent writer of it, then re-checked).
func claimWebhookSQL(p billing.WebhookClaimParams) (string, []any) {
	args := []any{p.Token, nt(p.LeaseUntil), rt(p.Now)}
	set := `UPDATE {schema}.webhook_events AS e SET attempts = e.attempts + 1, lease_until = $2, lease_token = $1,
			updated_at = $3, woken = false`
	if p.Gateway != "" && p.EventID != "" {
		args = append(args, p.Gateway, p.EventID)
		return set + `
		WHERE e.gateway = $4 AND e.event_id = $5 AND e.state IN ` + pendingSQL + `
			AND (e.lease_until IS NULL OR e.lease_until <= $3)
		RETURNING ` + eventColsOf("e", true), args
	}
	args = append(args, p.Limit)
	return set + `
		WHERE (e.gateway, e.event_id) IN (
			SELECT gateway, event_id FROM {schema}.webhook_events
			WHERE state IN ` + pendingSQL + ` AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)
			ORDER BY occurred_at NULLS FIRST, received_at, gateway, event_id
			LIMIT $4
			FOR UPDATE SKIP LOCKED)
		RETURNING ` + eventColsOf("e", true), args
}

func (s *Store) ClaimWebhookEvents(ctx context.Context, p billing.WebhookClaimParams) ([]billing.WebhookEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p.Token == "" || p.Limit <= 0 {
		return nil, invalid("claiming webhook events needs a token and a positive limit")
	}
	q, args := claimWebhookSQL(p)
	// An unreadable row is claimed with the others (one UPDATE) but not returned: it is
	// reported next to them, and claimable again when the lease ends.
	got, err := collectReadable(ctx, s, scanEvent, func(e billing.WebhookEvent) string { return e.EventID }, s.t(q), args...)
	if err != nil && !onlyRecordErrors(err) {
		return nil, s.wrap(err, "claiming webhook events")
	}
	// RETURNING has no order: the claim order, earliest occurrence first (zero first).
	slices.SortFunc(got, func(a, b billing.WebhookEvent) int {
		return cmp.Or(a.OccurredAt.Compare(b.OccurredAt), a.ReceivedAt.Compare(b.ReceivedAt),
			cmp.Compare(a.Gateway, b.Gateway), cmp.Compare(a.EventID, b.EventID))
	})
	return got, err
}

func (s *Store) RenewWebhookLeases(ctx context.Context, token string, until time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if token == "" {
		return 0, invalid("renewing webhook leases needs a token")
	}
	tag, err := s.exec(ctx, s.t(`UPDATE {schema}.webhook_events SET lease_until = $2
		WHERE lease_token = $1 AND state IN `+pendingSQL+` AND lease_until IS NOT NULL`), token, nt(until))
	if err != nil {
		return 0, s.wrap(err, "renewing webhook leases")
	}
	return int(tag.RowsAffected()), nil
}

// finishWebhookSQL writes an attempt's outcome in one UPDATE conditional on the claim. A
// parked (or put back, received) outcome of an event woken during its attempt is due at once; the attempt is
// appended to the history, of which the newest $11 entries are kept.
const finishWebhookSQL = `UPDATE {schema}.webhook_events SET state = $4::text, attempts = $5, error = $6, updated_at = $7::timestamptz,
		lease_until = NULL, lease_token = NULL, parked_at = $8::timestamptz,
		next_attempt_at = CASE WHEN NOT $9::boolean THEN NULL WHEN $4::text IN ('parked', 'received') AND woken THEN $7::timestamptz ELSE $10::timestamptz END,
		finished_at = CASE WHEN $9::boolean THEN NULL ELSE $7::timestamptz END,
		woken = false,
		history = CASE WHEN $12::jsonb IS NULL THEN history ELSE (
			SELECT jsonb_agg(h.a ORDER BY h.i) FROM (
				SELECT a, i FROM jsonb_array_elements(coalesce(history, '[]'::jsonb) || jsonb_build_array($12::jsonb))
					WITH ORDINALITY AS x(a, i)
				ORDER BY i DESC LIMIT $11::integer) AS h) END
	WHERE gateway = $1 AND event_id = $2 AND lease_token = $3 AND lease_until IS NOT NULL AND state IN ` + pendingSQL

func (s *Store) FinishWebhookEvent(ctx context.Context, f billing.WebhookFinish) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.Token == "" {
		return invalid("finishing a webhook event needs its claim token")
	}
	var attempt []byte
	if !f.Attempt.At.IsZero() {
		var err error
		attempt, err = json.Marshal(attemptJSON{At: t0(f.Attempt.At), State: string(f.Attempt.State), Error: f.Attempt.Error,
			Duration: int64(f.Attempt.Duration)})
		if err != nil {
			return invalid("webhook attempt cannot be stored: %v", err)
		}
	}
	pending := f.State.Pending()
	tag, err := s.exec(ctx, s.t(finishWebhookSQL), f.Gateway, f.EventID, f.Token, string(f.State), f.Attempts, f.Error, rt(f.Now),
		nt(f.ParkedAt), pending, rt(f.NextAttemptAt), billing.MaxWebhookAttempts, attempt)
	if err != nil {
		return s.wrap(err, "finishing webhook event %q", f.EventID)
	}
	if tag.RowsAffected() == 0 {
		if _, err := s.GetWebhookEvent(ctx, f.Gateway, f.EventID); err != nil {
			return err
		}
		return conflict("webhook event", f.Gateway+"/"+f.EventID, "is not claimed with this token (lease lost)")
	}
	return nil
}

// blockedSQL finds an earlier received or failed event of the same gateway object.
const blockedSQL = `SELECT EXISTS (SELECT 1 FROM {schema}.webhook_events
	WHERE gateway = $1 AND object_key = $2 AND state IN ` + unappliedSQL + ` AND occurred_at < $3)`

func (s *Store) WebhookEventBlocked(ctx context.Context, ev billing.WebhookEvent) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if ev.ObjectKey == "" || ev.OccurredAt.IsZero() {
		return false, nil
	}
	var blocked bool
	err := s.retry(ctx, func() error {
		return s.pool.QueryRow(ctx, s.t(blockedSQL), ev.Gateway, ev.ObjectKey, rt(ev.OccurredAt)).Scan(&blocked)
	})
	if err != nil {
		return false, s.wrap(err, "checking the order of webhook event %q", ev.EventID)
	}
	return blocked, nil
}

// wakeSQL, in one statement, marks the object's claimed pending events woken and makes its
// parked events due at $3, returning for each row it changed whether it was a parked event
// made due. The rows are locked in key order first (concurrent wake-ups do not deadlock),
// and what a row was is read from its locked, newest version.
const wakeSQL = `WITH o AS (
		SELECT gateway, event_id, (state IN ('parked', 'received') AND next_attempt_at > $3) AS due,
			coalesce(lease_until > $3, false) AS claimed
		FROM {schema}.webhook_events
		WHERE gateway = $1 AND object_key = $2 AND state IN ` + pendingSQL + `
			AND (lease_until > $3 OR (state IN ('parked', 'received') AND next_attempt_at > $3))
		ORDER BY event_id
		FOR UPDATE)
	UPDATE {schema}.webhook_events AS e SET woken = e.woken OR o.claimed,
		next_attempt_at = CASE WHEN o.due THEN $3 ELSE e.next_attempt_at END
	FROM o WHERE e.gateway = o.gateway AND e.event_id = o.event_id
	RETURNING o.due`

func (s *Store) WakeWebhookEvents(ctx context.Context, gateway, objectKey string, now time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if objectKey == "" {
		return 0, nil
	}
	due, err := collect(ctx, s, func(r pgx.Rows) (bool, error) {
		var b bool
		return b, r.Scan(&b)
	}, s.t(wakeSQL), gateway, objectKey, rt(now))
	if err != nil {
		return 0, s.wrap(err, "waking webhook events of %q", objectKey)
	}
	n := 0
	for _, d := range due {
		if d {
			n++
		}
	}
	return n, nil
}

func (s *Store) ReplayWebhookEvent(ctx context.Context, gateway, eventID string, now time.Time) (billing.WebhookEvent, error) {
	if err := ctx.Err(); err != nil {
		return billing.WebhookEvent{}, err
	}
	got, err := collect(ctx, s, scanEvent, s.t(`UPDATE {schema}.webhook_events SET state = 'received', next_attempt_at = $3,
			updated_at = $3, finished_at = NULL, parked_at = NULL, lease_until = NULL, lease_token = NULL, woken = false
		WHERE gateway = $1 AND event_id = $2 AND state IN `+replayedSQL+`
		RETURNING `+eventCols), gateway, eventID, rt(now))
	if err != nil {
		return billing.WebhookEvent{}, s.wrap(err, "replaying webhook event %q", eventID)
	}
	if len(got) == 1 {
		return got[0], nil
	}
	cur, err := s.GetWebhookEvent(ctx, gateway, eventID)
	if err != nil {
		return billing.WebhookEvent{}, err
	}
	return billing.WebhookEvent{}, fmt.Errorf("pgstore: webhook event %s/%s is %s; only failed, dead or ignored events are replayed: %w",
		gateway, eventID, cur.State, billing.ErrInvalidTransition)
}

func (s *Store) GetWebhookEvent(ctx context.Context, gateway, eventID string) (billing.WebhookEvent, error) {
	if err := ctx.Err(); err != nil {
		return billing.WebhookEvent{}, err
	}
	return one(ctx, s, scanEvent, "webhook event", eventID,
		s.t(`SELECT `+eventCols+` FROM {schema}.webhook_events WHERE gateway = $1 AND event_id = $2`), gateway, eventID)
}

// listWebhookSQL is the listing statement of q, without payloads, in (received_at,
// billing.WebhookEventKey) order; a cursor is a row comparison on the listing index.
func listWebhookSQL(q billing.WebhookEventQuery) (string, []any, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if q.State != "" {
		where = append(where, "state = "+arg(string(q.State)))
	}
	if q.Gateway != "" {
		where = append(where, "gateway = "+arg(q.Gateway))
	}
	if q.After != "" {
		at, key, err := billing.ParseWebhookEventCursor(q.After)
		if err != nil {
			return "", nil, err
		}
		where = append(where, "(received_at, "+eventKeySQL+") > ("+arg(rt(at))+", "+arg(key)+")")
	}
	sql := `SELECT ` + eventListCols + ` FROM {schema}.webhook_events`
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	sql += ` ORDER BY received_at, ` + eventKeySQL + ` LIMIT ` + arg(q.Limit)
	return sql, args, nil
}

func (s *Store) ListWebhookEvents(ctx context.Context, q billing.WebhookEventQuery) ([]billing.WebhookEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Limit <= 0 {
		return nil, invalid("listing webhook events needs a positive limit")
	}
	sql, args, err := listWebhookSQL(q)
	if err != nil {
		return nil, err
	}
	got, err := collect(ctx, s, scanEvent, s.t(sql), args...)
	if err != nil {
		return nil, s.wrap(err, "listing webhook events")
	}
	return got, nil
}

// WebhookInboxStats counts the events per state in one GROUP BY, with the oldest
// received_at of each state for the oldest pending event.
func (s *Store) WebhookInboxStats(ctx context.Context) (billing.WebhookInboxStats, error) {
	st := billing.WebhookInboxStats{ByState: map[billing.WebhookEventState]int{}}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	type row struct {
		state  billing.WebhookEventState
		n      int64
		oldest time.Time
	}
	rows, err := collect(ctx, s, func(r pgx.Rows) (row, error) {
		var x row
		var state string
		err := r.Scan(&state, &x.n, &x.oldest)
		x.state = billing.WebhookEventState(state)
		return x, err
	}, s.t(`SELECT state, count(*), min(received_at) FROM {schema}.webhook_events GROUP BY state`))
	if err != nil {
		return st, s.wrap(err, "counting the webhook inbox")
	}
	for _, x := range rows {
		st.ByState[x.state] = int(x.n)
		if x.state.Pending() && (st.OldestPending.IsZero() || x.oldest.Before(st.OldestPending)) {
			st.OldestPending = t0(x.oldest)
		}
	}
	return st, nil
}

// objectEventsSQL lists an object's events for the timeline, served by
// webhook_events_object_received.
var objectEventsSQL = `SELECT ` + eventListCols + ` FROM {schema}.webhook_events
	WHERE gateway = $1 AND object_key = ANY($2::text[])
	ORDER BY received_at DESC, (event_id COLLATE "C") DESC LIMIT $3`

// ListObjectWebhookEvents implements billing.WebhookEventStore.
func (s *Store) ListObjectWebhookEvents(ctx context.Context, gateway string, objectKeys []string, limit int) ([]billing.WebhookEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if gateway == "" || limit < 1 || limit > billing.MaxPageSize || len(objectKeys) > billing.MaxPageSize {
		return nil, invalid("listing an object's webhook events needs a gateway, a limit of 1 to %d and at most %d keys",
			billing.MaxPageSize, billing.MaxPageSize)
	}
	if len(objectKeys) == 0 {
		return []billing.WebhookEvent{}, nil
	}
	got, err := collect(ctx, s, scanEvent, s.t(objectEventsSQL), gateway, objectKeys, limit)
	if err != nil {
		return nil, s.wrap(err, "listing an object's webhook events")
	}
	if got == nil {
		got = []billing.WebhookEvent{}
	}
	return got, nil
}
