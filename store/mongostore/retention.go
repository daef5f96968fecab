package mongostore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
)

// Prune implements billing.Pruner, in batches of at most p.Limit per kind. See Indexes and
// retention in the package documentation.
//
// A lock key idle for p.LocksBefore loses its fencing counter with its document: an
// acquisition that read the old token before the deletion and another that read none
// after it could both win. That needs two contenders for a key nobody took for a day to
// race the pruning within milliseconds; every write renewkit makes under a lock is
// conditional anyway.
func (s *Store) Prune(ctx context.Context, p billing.PruneParams) (billing.PruneResult, error) {
	// Implementation:
	// Prune implements billing.Pruner. Each kind is one indexed find of at most p.Limit ids
	// followed by one deleteMany (or, for claims, conditional updates) on those ids that
	// repeats the condition, under the collection's write mutex in ClaimSerialized mode. No TTL
	// index is used: FerretDB v1 has none, and the conditions (a lock key idle and not held, a
	// claim without pending effects) are more than a TTL index can say.
	var res billing.PruneResult
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if p.Limit <= 0 {
		return res, opErr("prune", billing.ErrInvalidInput)
	}
	before := func(t time.Time) bson.D {
		return bson.D{{Key: "$lt", Value: bson.NewDateTimeFromTime(t)}}
	}
	var err error
	steps := []struct {
		n      *int
		c      *mongo.Collection
		at     time.Time
		filter func() bson.D
	}{
		{&res.Notifications, s.notifications, p.NotificationsBefore, func() bson.D {
			return bson.D{{Key: "created_at", Value: before(p.NotificationsBefore)}}
		}},
		{&res.WebhookEvents, s.events, p.WebhookEventsBefore, func() bson.D {
			// Final events only: a pending one (received, failed, parked) is kept until
			// the worker ends it.
			return bson.D{{Key: "received_at", Value: before(p.WebhookEventsBefore)},
				{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{string(billing.WebhookEventStateProcessed), string(billing.WebhookEventStateIgnored), string(billing.WebhookEventStateDead)}}}}}
		}},
		{&res.Audit, s.audit, p.AuditBefore, func() bson.D {
			return bson.D{{Key: "created_at", Value: before(p.AuditBefore)}}
		}},
		{&res.Locks, s.locks, p.LocksBefore, func() bson.D {
			return bson.D{{Key: "acquired_at", Value: before(p.LocksBefore)}, {Key: "expires_at", Value: before(p.LocksBefore)}}
		}},
	}
	for _, st := range steps {
		if st.at.IsZero() {
			continue
		}
		if *st.n, err = s.pruneDocs(ctx, st.c, st.filter(), p.Limit); err != nil {
			return res, err
		}
	}
	if !p.ClaimsBefore.IsZero() {
		res.Claims, err = s.pruneClaims(ctx, p.ClaimsBefore, p.Limit)
	}
	return res, err
}

// lapsedIDs returns the _ids of at most limit documents of c matching filter.
func lapsedIDs(ctx context.Context, c *mongo.Collection, filter bson.D, limit int) (bson.A, error) {
	cur, err := c.Find(ctx, filter, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	var ids bson.A
	for cur.Next(ctx) {
		id := cur.Current.Lookup("_id")
		ids = append(ids, bson.RawValue{Type: id.Type, Value: slices.Clone(id.Value)})
	}
	return ids, cur.Err()
}

// pruneDocs deletes at most limit documents of c matching filter.
func (s *Store) pruneDocs(ctx context.Context, c *mongo.Collection, filter bson.D, limit int) (int, error) {
	ids, err := lapsedIDs(ctx, c, filter, limit)
	if err != nil || len(ids) == 0 {
		return 0, wrapOp("prune "+c.Name(), err)
	}
	var n int64
	err = s.exclusive(ctx, writeMutex(c), func() error {
		res, err := c.DeleteMany(ctx, append(bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, filter...))
		if err == nil {
			n = res.DeletedCount
		}
		return err
	})
	return int(n), wrapOp("prune "+c.Name(), err)
}

// pruneClaims removes claim_token and claim_until from at most limit subscriptions whose
// claim lapsed before t and that carry no pending effects, as conditional writes by id
// (see bulkApply).
func (s *Store) pruneClaims(ctx context.Context, t time.Time, limit int) (int, error) {
	cond := bson.D{
		{Key: "claim_until", Value: bson.D{{Key: "$lt", Value: bson.NewDateTimeFromTime(t)}}},
		{Key: "pending_token", Value: bson.D{{Key: "$exists", Value: false}}},
	}
	ids, err := lapsedIDs(ctx, s.subs, cond, limit)
	if err != nil || len(ids) == 0 {
		return 0, wrapOp("prune claims", err)
	}
	unset := bson.D{{Key: "$unset", Value: bson.D{{Key: "claim_token", Value: ""}, {Key: "claim_until", Value: ""}}}}
	ops := make([]bulkOp, len(ids))
	for i, id := range ids {
		raw := id.(bson.RawValue)
		ops[i] = bulkOp{i: i, id: rawValueID(raw), idv: raw, cond: cond, upd: unset}
	}
	errs := make([]error, len(ops))
	classify := func(op bulkOp, doc bson.Raw) error {
		if doc == nil {
			return notFound("subscription", op.id)
		}
		if _, err := doc.LookupErr("claim_token"); err == nil {
			return fmt.Errorf("mongostore: subscription %q claimed or pending again: %w", op.id, billing.ErrConflict)
		}
		return nil
	}
	if err := s.bulkApply(ctx, s.subs, "subscription", ops, errs, classify); err != nil {
		return 0, err
	}
	n := 0
	for _, e := range errs {
		if e == nil {
			n++
		}
	}
	return n, nil
}

func wrapOp(op string, err error) error {
	if err == nil {
		return nil
	}
	return opErr(op, err)
}
