package mongostore

import (
	"context"
	"errors"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/renewkit/renewkit/billing"
)

type sessionDoc struct {
	ID             docID      `bson:"_id"`
	UserID         docID      `bson:"user_id"`
	ExpiresAt      time.Time  `bson:"expires_at"`
	CreatedAt      time.Time  `bson:"created_at"`
	Deleted        bool       `bson:"flag_del"`
	DeletedAt      time.Time  `bson:"deleted_at"`
	PendingToken   string     `bson:"pending_token"`
	PendingEffects string     `bson:"pending_effects"`
	PendingDetails []bson.Raw `bson:"pending_details"`
}

func decodeSession(raw bson.Raw) (billing.Session, error) {
	d, err := unmarshal[sessionDoc](raw)
	se := billing.Session{
		ID: string(d.ID), UserID: string(d.UserID), ExpiresAt: utc(d.ExpiresAt), CreatedAt: utc(d.CreatedAt),
		Deleted: d.Deleted, DeletedAt: utc(d.DeletedAt),
	}
	if err != nil {
		return se, err
	}
	se.Pending, err = decodePending(d.PendingToken, d.PendingEffects, d.PendingDetails)
	return se, err
}

func (s *Store) InsertSession(ctx context.Context, se *billing.Session) error {
	if err := prepareInsert(ctx, &se.ID); err != nil {
		return err
	}
	f := &fields{}
	f.put("user_id", se.UserID)
	f.time("expires_at", se.ExpiresAt)
	f.time("created_at", se.CreatedAt)
	f.put("flag_del", se.Deleted)
	f.time("deleted_at", se.DeletedAt)
	if se.Pending != nil {
		if err := putEffects(f, "session", se.ID, *se.Pending); err != nil {
			return err
		}
	}
	if err := insert(ctx, s.sessions, f.doc(se.ID), "session", se.ID); err != nil {
		return err
	}
	se.ExpiresAt, se.CreatedAt, se.DeletedAt = utc(se.ExpiresAt), utc(se.CreatedAt), utc(se.DeletedAt)
	return nil
}

func (s *Store) GetSession(ctx context.Context, id string) (billing.Session, error) {
	if err := ctx.Err(); err != nil {
		return billing.Session{}, err
	}
	return findOne(ctx, s.sessions, byID(id), decodeSession, "session", id)
}

// liveSession selects sessions not soft-deleted by flag_del false or missing (not $ne:
// true), so the live_expires_at index skips the deleted ones, which pile up for ever.
var liveSession = bson.E{Key: "flag_del", Value: bson.D{{Key: "$in", Value: bson.A{false, nil}}}}

// hasEffects selects the documents carrying pending effects (the pending_token index).
var hasEffects = bson.E{Key: "pending_token", Value: bson.D{{Key: "$exists", Value: true}}}

// DeleteExpiredSessions soft-deletes with one updateMany over a batch of ids, which also
// $sets the effects (the same for every session); each session is stamped with a sweep
// token so concurrent callers return disjoint sets. A session with pending effects is not a
// candidate.
func (s *Store) DeleteExpiredSessions(ctx context.Context, expiredBefore, now time.Time, limit int, effects *billing.Effects) ([]billing.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pending := &fields{}
	if effects != nil {
		if err := putEffects(pending, "expired sessions", "delete", *effects); err != nil {
			return nil, err
		}
	}
	due := bson.D{liveSession, {Key: "expires_at", Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(expiredBefore)}}},
		{Key: "pending_token", Value: bson.D{{Key: "$exists", Value: false}}}}
	upd := func(tok string) bson.D {
		return bson.D{{Key: "$set", Value: append(bson.D{
			{Key: "flag_del", Value: true}, {Key: "deleted_at", Value: bson.NewDateTimeFromTime(now)}, {Key: "sweep_token", Value: tok},
		}, pending.set...)}}
	}
	return sweepUpdate(ctx, s, s.sessions, "sessions", due, upd, limit, decodeSession)
}

// ListSessionsWithEffects reads the sessions with pending effects in (pending_token, _id)
// order (the pending_token index) and stops at the first document of the limit+1-th token.
// Unreadable documents are reported as *billing.RecordError next to the others.
func (s *Store) ListSessionsWithEffects(ctx context.Context, limit int) ([]billing.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cur, err := s.sessions.Find(ctx, bson.D{hasEffects},
		findOpts().SetSort(bson.D{{Key: "pending_token", Value: 1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return nil, opErr("list sessions with pending effects", err)
	}
	defer cur.Close(ctx)
	var out []billing.Session
	var bad []error
	tokens, last := 0, ""
	for cur.Next(ctx) {
		if tok, _ := cur.Current.Lookup("pending_token").StringValueOK(); tokens == 0 || tok != last {
			if tokens == max(limit, 1) {
				break
			}
			tokens, last = tokens+1, tok
		}
		se, err := decodeSession(cur.Current)
		if err != nil {
			bad = append(bad, malformed(s.sessions.Name(), cur.Current, err))
			continue
		}
		out = append(out, se)
	}
	if err := cur.Err(); err != nil {
		return out, opErr("list sessions with pending effects", err)
	}
	return out, errors.Join(bad...)
}

// CompleteSessionEffects removes pending_token, pending_effects and pending_details from the
// sessions whose pending_token is token, with one updateMany.
func (s *Store) CompleteSessionEffects(ctx context.Context, token string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := s.sessions.UpdateMany(ctx, bson.D{{Key: "pending_token", Value: token}}, bson.D{{Key: "$unset", Value: bson.D{
		{Key: "pending_token", Value: ""}, {Key: "pending_effects", Value: ""}, {Key: "pending_details", Value: ""}}}})
	if err != nil {
		return opErr("complete session effects", err)
	}
	return nil
}

// sweepUpdate moves up to limit documents matching due with upd in rounds of BatchSize and
// returns them as changed. Each round reads the candidates and decodes them first: one that
// does not decode is not changed but reported as a *billing.RecordError (joined) next to
// the documents returned, once per call. The update stamps a fresh token and re-checks due;
// the round runs under c's write mutex in ClaimSerialized mode, so each document is
// returned by one caller only.
func sweepUpdate[T any](ctx context.Context, s *Store, c *mongo.Collection, name string, due bson.D,
	upd func(token string) bson.D, limit int, decode func(bson.Raw) (T, error)) ([]T, error) {
	var out []T
	var bad []error
	var badIDs bson.A
	for {
		want := s.cfg.BatchSize
		if limit > 0 {
			want = min(want, limit-len(out))
		}
		if want <= 0 {
			break
		}
		var n int
		err := s.exclusive(ctx, writeMutex(c), func() error {
			q := due
			if len(badIDs) > 0 {
				q = append(bson.D{{Key: "_id", Value: bson.D{{Key: "$nin", Value: badIDs}}}}, due...)
			}
			cur, err := c.Find(ctx, q, findOpts().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(want)))
			if err != nil {
				return err
			}
			var ids bson.A
			for cur.Next(ctx) {
				n++
				id := cur.Current.Lookup("_id")
				id.Value = slices.Clone(id.Value)
				if _, err := decode(cur.Current); err != nil {
					bad = append(bad, malformed(c.Name(), cur.Current, err))
					badIDs = append(badIDs, id)
					continue
				}
				ids = append(ids, id)
			}
			cur.Close(ctx)
			if err := cur.Err(); err != nil {
				return err
			}
			if len(ids) == 0 {
				return nil
			}
			tok := newToken()
			inIDs := bson.E{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}
			if _, err := c.UpdateMany(ctx, append(bson.D{inIDs}, due...), upd(tok)); err != nil {
				return err
			}
			cur, err = c.Find(ctx, bson.D{inIDs, {Key: "sweep_token", Value: tok}}, findOpts().SetSort(bson.D{{Key: "_id", Value: 1}}))
			if err != nil {
				return err
			}
			got, err := decodeEach(ctx, cur, c.Name(), decode)
			out = append(out, got...)
			return err
		})
		if err != nil {
			return out, errors.Join(append(bad, opErr("sweep "+name, err))...)
		}
		if n < want {
			break
		}
	}
	return out, errors.Join(bad...)
}

// CountExpiredSessions implements billing.CleanupCounter.
func (s *Store) CountExpiredSessions(ctx context.Context, t time.Time) (int, error) {
	n, err := s.sessions.CountDocuments(ctx, bson.D{liveSession, {Key: "expires_at", Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(t)}}}})
	if err != nil {
		return 0, opErr("count expired sessions", err)
	}
	return int(n), nil
}
