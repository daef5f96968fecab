package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/renewkit/renewkit/billing"
)

var sessionCols = `id, user_id, expires_at, created_at, flag_del, ` + z("deleted_at") + `, pending`

// scanSession reads a row of sessionCols; a session whose pending effects cannot be decoded
// is reported as a *billing.RecordError.
func scanSession(r pgx.Rows) (billing.Session, error) {
	var x billing.Session
	var pending []byte
	if err := r.Scan(&x.ID, &x.UserID, &x.ExpiresAt, &x.CreatedAt, &x.Deleted, &x.DeletedAt, &pending); err != nil {
		return x, err
	}
	x.ExpiresAt, x.CreatedAt, x.DeletedAt = t0(x.ExpiresAt), t0(x.CreatedAt), t0(x.DeletedAt)
	var err error
	if x.Pending, err = decodeEffects(pending); err != nil {
		return x, &billing.RecordError{Collection: "sessions", ID: x.ID, Err: err}
	}
	return x, nil
}

func (s *Store) InsertSession(ctx context.Context, x *billing.Session) error {
	if x.ID == "" {
		x.ID = billing.NewID()
	}
	pending, err := encodeEffects(x.Pending)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, s.t(`INSERT INTO {schema}.sessions (id, user_id, expires_at, created_at, flag_del, deleted_at, pending)
		VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)`), x.ID, x.UserID, rt(x.ExpiresAt), rt(x.CreatedAt), x.Deleted, nt(x.DeletedAt), jsonbArg(pending))
	if err != nil {
		return s.wrap(err, "inserting session %q", x.ID)
	}
	x.ExpiresAt, x.CreatedAt, x.DeletedAt = t0(x.ExpiresAt), t0(x.CreatedAt), t0(x.DeletedAt)
	if x.Pending != nil {
		e := normEffects(*x.Pending)
		x.Pending = &e
	}
	return nil
}

// GetSession returns the session, soft-deleted or not.
func (s *Store) GetSession(ctx context.Context, id string) (billing.Session, error) {
	return one(ctx, s, scanSession, "session", id, s.t(`SELECT `+sessionCols+` FROM {schema}.sessions WHERE id = $1`), id)
}

// DeleteExpiredSessions soft-deletes up to limit expired sessions without pending effects in
// one statement (FOR UPDATE SKIP LOCKED: concurrent callers get disjoint sessions), which
// also writes effects, when not nil, into each row's pending column.
func (s *Store) DeleteExpiredSessions(ctx context.Context, expiredBefore, now time.Time, limit int, effects *billing.Effects) ([]billing.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pending, err := encodeEffects(effects)
	if err != nil {
		return nil, fmt.Errorf("pgstore: deleting expired sessions: encoding effects: %w", err)
	}
	xs, err := collect(ctx, s, scanSession, s.t(expiredSQL(limit)), rt(expiredBefore), rt(now), jsonbArg(pending))
	return xs, s.wrap(err, "deleting expired sessions")
}

// expiredSQL is DeleteExpiredSessions' statement ($1 expired before, $2 now, $3 the pending
// effects or NULL).
func expiredSQL(limit int) string {
	lim := "ALL"
	if limit > 0 {
		lim = fmt.Sprint(limit)
	}
	return `UPDATE {schema}.sessions SET flag_del = true, deleted_at = $2, pending = $3::jsonb
		WHERE id IN (SELECT id FROM {schema}.sessions WHERE NOT flag_del AND expires_at <= $1 AND pending IS NULL
			ORDER BY expires_at, id LIMIT ` + lim + ` FOR UPDATE SKIP LOCKED)
		RETURNING ` + sessionCols
}

// sessionToken is the token of a session's pending effects, as the sessions_pending index
// orders it.
const sessionToken = `(pending->>'token') COLLATE "C"`

// sessionsWithEffectsSQL lists the sessions carrying the pending effects of the $1 smallest
// tokens, in (token, id) order (the sessions_pending index).
var sessionsWithEffectsSQL = `SELECT ` + sessionCols + ` FROM {schema}.sessions
	WHERE pending IS NOT NULL AND ` + sessionToken + ` IN (
		SELECT DISTINCT ` + sessionToken + ` AS token FROM {schema}.sessions WHERE pending IS NOT NULL ORDER BY token LIMIT $1)
	ORDER BY ` + sessionToken + `, id COLLATE "C"`

// completeSessionEffectsSQL clears the pending effects token $1 recorded on sessions.
const completeSessionEffectsSQL = `UPDATE {schema}.sessions SET pending = NULL WHERE pending IS NOT NULL AND ` + sessionToken + ` = $1`

// ListSessionsWithEffects returns the sessions carrying the pending effects of up to limit
// tokens, whole; see billing.SessionStore.
func (s *Store) ListSessionsWithEffects(ctx context.Context, limit int) ([]billing.Session, error) {
	return listWithEffects(ctx, s, scanSession, func(x billing.Session) string { return x.ID }, "sessions", sessionsWithEffectsSQL, limit)
}

// CompleteSessionEffects clears the pending effects token recorded on sessions; see
// billing.SessionStore.
func (s *Store) CompleteSessionEffects(ctx context.Context, token string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := s.exec(ctx, s.t(completeSessionEffectsSQL), token)
	return s.wrap(err, "completing the effects of the sessions of %q", token)
}
