package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/renewkit/renewkit/billing"
)

var sessionCols = `id, user_id, expires_at, created_at, flag_del, ` + z("deleted_at")

func scanSession(r pgx.Rows) (billing.Session, error) {
	var x billing.Session
	err := r.Scan(&x.ID, &x.UserID, &x.ExpiresAt, &x.CreatedAt, &x.Deleted, &x.DeletedAt)
	x.ExpiresAt, x.CreatedAt, x.DeletedAt = t0(x.ExpiresAt), t0(x.CreatedAt), t0(x.DeletedAt)
	return x, err
}

func (s *Store) InsertSession(ctx context.Context, x *billing.Session) error {
	if x.ID == "" {
		x.ID = billing.NewID()
	}
	_, err := s.exec(ctx, s.t(`INSERT INTO {schema}.sessions (id, user_id, expires_at, created_at, flag_del, deleted_at)
		VALUES ($1, $2, $3, $4, $5, $6)`), x.ID, x.UserID, rt(x.ExpiresAt), rt(x.CreatedAt), x.Deleted, nt(x.DeletedAt))
	if err != nil {
		return s.wrap(err, "inserting session %q", x.ID)
	}
	x.ExpiresAt, x.CreatedAt, x.DeletedAt = t0(x.ExpiresAt), t0(x.CreatedAt), t0(x.DeletedAt)
	return nil
}

// GetSession returns the session, soft-deleted or not.
func (s *Store) GetSession(ctx context.Context, id string) (billing.Session, error) {
	return one(ctx, s, scanSession, "session", id, s.t(`SELECT `+sessionCols+` FROM {schema}.sessions WHERE id = $1`), id)
}

// DeleteExpiredSessions soft-deletes up to limit expired sessions in one statement
// (FOR UPDATE SKIP LOCKED: concurrent callers get disjoint sessions).
func (s *Store) DeleteExpiredSessions(ctx context.Context, expiredBefore, now time.Time, limit int) ([]billing.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	xs, err := collect(ctx, s, scanSession, s.t(expiredSQL(limit)), rt(expiredBefore), rt(now))
	return xs, s.wrap(err, "deleting expired sessions")
}

// expiredSQL is DeleteExpiredSessions' statement ($1 expired before, $2 now).
func expiredSQL(limit int) string {
	lim := "ALL"
	if limit > 0 {
		lim = fmt.Sprint(limit)
	}
	return `UPDATE {schema}.sessions SET flag_del = true, deleted_at = $2
		WHERE id IN (SELECT id FROM {schema}.sessions WHERE NOT flag_del AND expires_at <= $1
			ORDER BY expires_at, id LIMIT ` + lim + ` FOR UPDATE SKIP LOCKED)
		RETURNING ` + sessionCols
}
