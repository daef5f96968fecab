package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
)

// Lease lock design
//
// Every acquisition of a key inserts a new document {_id: "<key>#<token>", key, token, owner,
// expires_at}; the document with the highest token is the current lease. The unique _id is
// the only arbiter, so two contenders for the same next token cannot both win, on MongoDB
// and on FerretDB v1 alike (FerretDB v1 updates read and rewrite a document without
// re-checking the filter, so findOneAndUpdate({expires_at <= now}) would let two contenders
// take over one expired lease). The fencing token therefore grows with every acquisition
// and survives release, which only marks the current document released. Older documents
// of a key are deleted after a successful acquisition.

type lockDoc struct {
	Key       string    `bson:"key"`
	Owner     string    `bson:"owner"`
	Token     int64     `bson:"token"`
	ExpiresAt time.Time `bson:"expires_at"`
	Released  bool      `bson:"released"`
}

func lockID(key string, token int64) string { return fmt.Sprintf("%s#%019d", key, token) }

func (d lockDoc) lease() billing.Lease {
	return billing.Lease{Key: d.Key, Owner: d.Owner, Token: d.Token, ExpiresAt: utc(d.ExpiresAt)}
}

// currentLock returns the newest lease document of key; found is false when there is none.
func (s *Store) currentLock(ctx context.Context, key string) (lockDoc, bool, error) {
	raw, err := s.locks.FindOne(ctx, bson.D{{Key: "key", Value: key}},
		options.FindOne().SetSort(bson.D{{Key: "token", Value: -1}})).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return lockDoc{}, false, nil
	}
	if err != nil {
		return lockDoc{}, false, err
	}
	d, err := unmarshal[lockDoc](raw)
	if err != nil {
		return lockDoc{}, false, malformed(s.locks.Name(), raw, err)
	}
	return d, true, nil
}

func (s *Store) AcquireLock(ctx context.Context, key, owner string, now time.Time, ttl time.Duration) (billing.Lease, error) {
	if err := ctx.Err(); err != nil {
		return billing.Lease{}, err
	}
	if key == "" || owner == "" || ttl <= 0 {
		return billing.Lease{}, fmt.Errorf("mongostore: lock needs a key, an owner and a positive ttl: %w", billing.ErrInvalidInput)
	}
	cur, found, err := s.currentLock(ctx, key)
	if err != nil {
		return billing.Lease{}, opErr("acquire lock", err)
	}
	if found && !cur.Released && cur.ExpiresAt.After(now) {
		return billing.Lease{}, fmt.Errorf("mongostore: lock %q: %w", key, billing.ErrLockHeld)
	}
	next := lockDoc{Key: key, Owner: owner, Token: cur.Token + 1, ExpiresAt: utc(now.Add(ttl))}
	_, err = s.locks.InsertOne(ctx, bson.D{
		{Key: "_id", Value: lockID(key, next.Token)}, {Key: "key", Value: key}, {Key: "owner", Value: owner},
		{Key: "token", Value: next.Token}, {Key: "expires_at", Value: bson.NewDateTimeFromTime(next.ExpiresAt)},
		{Key: "acquired_at", Value: bson.NewDateTimeFromTime(now)},
	})
	if mongo.IsDuplicateKeyError(err) {
		return billing.Lease{}, fmt.Errorf("mongostore: lock %q: taken concurrently: %w", key, billing.ErrLockHeld)
	}
	if err != nil {
		return billing.Lease{}, opErr("acquire lock", err)
	}
	// A contender that read an older state and whose token was cleaned up could insert a
	// token below the current one; only the highest token holds the lease.
	top, _, err := s.currentLock(ctx, key)
	if err != nil {
		return billing.Lease{}, opErr("acquire lock", err)
	}
	if top.Token != next.Token {
		_, _ = s.locks.DeleteOne(ctx, bson.D{{Key: "_id", Value: lockID(key, next.Token)}})
		return billing.Lease{}, fmt.Errorf("mongostore: lock %q: superseded by token %d: %w", key, top.Token, billing.ErrLockHeld)
	}
	_, _ = s.locks.DeleteMany(ctx, bson.D{{Key: "key", Value: key}, {Key: "token", Value: bson.D{{Key: "$lt", Value: next.Token}}}})
	return next.lease(), nil
}

// checkCurrent returns ErrLockLost unless l is the newest lease of its key.
func (s *Store) checkCurrent(ctx context.Context, l billing.Lease) (lockDoc, error) {
	cur, found, err := s.currentLock(ctx, l.Key)
	if err != nil {
		return lockDoc{}, opErr("lock", err)
	}
	if !found || cur.Token != l.Token || cur.Owner != l.Owner || cur.Released {
		return lockDoc{}, fmt.Errorf("mongostore: lock %q (token %d): %w", l.Key, l.Token, billing.ErrLockLost)
	}
	return cur, nil
}

func (s *Store) RenewLock(ctx context.Context, l billing.Lease, now time.Time, ttl time.Duration) (billing.Lease, error) {
	if err := ctx.Err(); err != nil {
		return billing.Lease{}, err
	}
	if ttl <= 0 {
		return billing.Lease{}, fmt.Errorf("mongostore: renew needs a positive ttl: %w", billing.ErrInvalidInput)
	}
	cur, err := s.checkCurrent(ctx, l)
	if err != nil {
		return billing.Lease{}, err
	}
	if !cur.ExpiresAt.After(now) {
		return billing.Lease{}, fmt.Errorf("mongostore: lock %q (token %d) expired at %v: %w", l.Key, l.Token, cur.ExpiresAt, billing.ErrLockLost)
	}
	until := utc(now.Add(ttl))
	res, err := s.locks.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: lockID(l.Key, l.Token)}, {Key: "owner", Value: l.Owner}, {Key: "released", Value: bson.D{{Key: "$ne", Value: true}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expires_at", Value: bson.NewDateTimeFromTime(until)}}}})
	if err != nil {
		return billing.Lease{}, opErr("renew lock", err)
	}
	if res.MatchedCount == 0 {
		return billing.Lease{}, fmt.Errorf("mongostore: lock %q (token %d): %w", l.Key, l.Token, billing.ErrLockLost)
	}
	// A contender may have taken over between the check and the write.
	if _, err := s.checkCurrent(ctx, l); err != nil {
		return billing.Lease{}, err
	}
	cur.ExpiresAt = until
	return cur.lease(), nil
}

func (s *Store) ReleaseLock(ctx context.Context, l billing.Lease) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := s.checkCurrent(ctx, l); err != nil {
		return err
	}
	res, err := s.locks.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: lockID(l.Key, l.Token)}, {Key: "owner", Value: l.Owner}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "released", Value: true}, {Key: "expires_at", Value: bson.NewDateTimeFromTime(time.Unix(0, 0))}}}})
	if err != nil {
		return opErr("release lock", err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("mongostore: lock %q (token %d): %w", l.Key, l.Token, billing.ErrLockLost)
	}
	return nil
}

// CurrentLease returns the live lease of key at now (the newest acquisition, neither
// released nor expired), if any, without taking it (billing.LockInspector).
func (s *Store) CurrentLease(ctx context.Context, key string, now time.Time) (billing.Lease, bool, error) {
	if err := ctx.Err(); err != nil {
		return billing.Lease{}, false, err
	}
	cur, found, err := s.currentLock(ctx, key)
	if err != nil {
		return billing.Lease{}, false, opErr("read lock", err)
	}
	if !found || cur.Released || !cur.ExpiresAt.After(now) {
		return billing.Lease{}, false, nil
	}
	return cur.lease(), true, nil
}

// Store mutex
//
// The store-level mutex of ClaimSerialized mode (see exclusive) needs mutual exclusion, not
// a fencing token that grows across acquisitions, so it takes fewer round trips than a
// lease: acquiring inserts the document {_id: "<key>#<token>"}, token 1 when the key is
// free, and then reads every document of the key; it holds when its own is the newest and
// no other is live (neither released nor expired). Releasing deletes the document, so a
// free key has none and the free path is one insert and one find, and release one delete
// (a lease takes six). Two contenders cannot both hold: each reads after its insert, so the
// later of the two reads sees the other's document. The unique _id settles two inserts of
// one token, and a key left with documents that are not live (a holder that died, or a
// Store that releases by marking) is taken over with a token above them all, whose older
// documents are then removed, so that a Store reading only the newest document, as
// AcquireLock does, sees the holder.

// acquireMutex takes the store mutex key for owner until now+ttl, or returns
// billing.ErrLockHeld.
func (s *Store) acquireMutex(ctx context.Context, key, owner string, now time.Time, ttl time.Duration) (billing.Lease, error) {
	next := int64(1)
	for range 3 {
		l, ok, top, err := s.tryMutex(ctx, key, owner, next, now, ttl)
		if err != nil || ok {
			return l, err
		}
		next = top + 1
	}
	return billing.Lease{}, fmt.Errorf("mongostore: mutex %q: contended: %w", key, billing.ErrLockHeld)
}

// tryMutex is one attempt of acquireMutex with token next. It returns the lease when it
// holds; otherwise billing.ErrLockHeld when another acquisition is live, or, when none is,
// not ok and the highest token of the key, for the next attempt to go above.
func (s *Store) tryMutex(ctx context.Context, key, owner string, next int64, now time.Time, ttl time.Duration) (l billing.Lease, ok bool, top int64, err error) {
	mine := lockDoc{Key: key, Owner: owner, Token: next, ExpiresAt: utc(now.Add(ttl))}
	_, err = s.locks.InsertOne(ctx, bson.D{
		{Key: "_id", Value: lockID(key, next)}, {Key: "key", Value: key}, {Key: "owner", Value: owner},
		{Key: "token", Value: next}, {Key: "expires_at", Value: bson.NewDateTimeFromTime(mine.ExpiresAt)},
		{Key: "acquired_at", Value: bson.NewDateTimeFromTime(now)},
	})
	inserted := err == nil
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return billing.Lease{}, false, 0, opErr("acquire mutex", err)
	}
	docs, err := s.keyLocks(ctx, key)
	if err != nil {
		if inserted {
			s.dropMutex(ctx, mine)
		}
		return billing.Lease{}, false, 0, opErr("acquire mutex", err)
	}
	var stale []any
	held := false
	for _, d := range docs {
		top = max(top, d.Token)
		switch {
		case inserted && d.Token == next && d.Owner == owner:
		case !d.Released && d.ExpiresAt.After(now):
			held = true
		default:
			stale = append(stale, lockID(d.Key, d.Token))
		}
	}
	if inserted && !held && top == next {
		if len(stale) > 0 {
			_, _ = s.locks.DeleteMany(ctx, bson.D{{Key: "key", Value: key}, {Key: "_id", Value: bson.D{{Key: "$in", Value: stale}}}})
		}
		return mine.lease(), true, top, nil
	}
	if inserted {
		s.dropMutex(ctx, mine)
	}
	if held {
		return billing.Lease{}, false, top, fmt.Errorf("mongostore: mutex %q: %w", key, billing.ErrLockHeld)
	}
	return billing.Lease{}, false, top, nil
}

// keyLocks reads every lock document of key.
func (s *Store) keyLocks(ctx context.Context, key string) ([]lockDoc, error) {
	cur, err := s.locks.Find(ctx, bson.D{{Key: "key", Value: key}})
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	var out []lockDoc
	for cur.Next(ctx) {
		d, err := unmarshal[lockDoc](cur.Current)
		if err != nil {
			return nil, malformed(s.locks.Name(), cur.Current, err)
		}
		out = append(out, d)
	}
	return out, cur.Err()
}

// releaseMutex frees a store mutex taken with acquireMutex.
func (s *Store) releaseMutex(ctx context.Context, l billing.Lease) error {
	_, err := s.locks.DeleteOne(ctx, bson.D{{Key: "_id", Value: lockID(l.Key, l.Token)}, {Key: "owner", Value: l.Owner}})
	if err != nil {
		return opErr("release mutex", err)
	}
	return nil
}

// dropMutex removes an acquisition that does not hold, best effort: left behind, it is
// not live once it expires.
func (s *Store) dropMutex(ctx context.Context, d lockDoc) {
	_ = s.releaseMutex(ctx, d.lease())
}
