package mongostore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
)

var (
	_ billing.Console       = (*Store)(nil)
	_ billing.SnapshotStore = (*Store)(nil)
)

// Console lists run newest first by (created_at, _id), each served by an index that leads
// with its equality filter and continues with created_at and _id (see EnsureIndexes). A
// cursor selects the documents strictly after it; documents without created_at (written
// by another program) sort after every dated one.
var newestSort = bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}

func afterCursor(c billing.Cursor) bson.E {
	if c.IsZero() {
		return bson.E{}
	}
	id := idValue(c.ID)
	if c.CreatedAt.IsZero() {
		return bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "created_at", Value: nil}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: id}}}},
		}}
	}
	t := bson.NewDateTimeFromTime(c.CreatedAt)
	return bson.E{Key: "$or", Value: bson.A{
		bson.D{{Key: "created_at", Value: bson.D{{Key: "$lt", Value: t}}}},
		bson.D{{Key: "created_at", Value: t}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: id}}}},
		bson.D{{Key: "created_at", Value: nil}},
	}}
}

// findPage reads one page: limit+1 documents tell whether another page follows. Unreadable
// documents are reported as *billing.RecordError next to the page.
func findPage[T any](ctx context.Context, c *mongo.Collection, filter bson.D, limit int, decode func(bson.Raw) (T, error),
	key func(T) billing.Cursor) ([]T, billing.Cursor, error) {
	cur, err := c.Find(ctx, filter, options.Find().SetSort(newestSort).SetLimit(int64(limit+1)))
	if err != nil {
		return nil, billing.Cursor{}, opErr("list "+c.Name(), err)
	}
	defer cur.Close(ctx)
	out := make([]T, 0, min(limit, 16))
	var bad []error
	var next billing.Cursor
	n := 0
	for cur.Next(ctx) {
		n++
		if n > limit {
			if len(out) > 0 {
				next = key(out[len(out)-1])
			}
			break
		}
		v, err := decode(cur.Current)
		if err != nil {
			bad = append(bad, malformed(c.Name(), cur.Current, err))
			continue
		}
		out = append(out, v)
	}
	if err := cur.Err(); err != nil {
		return out, billing.Cursor{}, opErr("list "+c.Name(), err)
	}
	return out, next, errors.Join(bad...)
}

func withCursor(q bson.D, c billing.Cursor) bson.D {
	if e := afterCursor(c); e.Key != "" {
		q = append(q, e)
	}
	return q
}

// pageLimit starts a Console listing: it returns ctx's error, if any, and otherwise the page
// size billing.PageLimit makes of limit.
func pageLimit(ctx context.Context, limit int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return billing.PageLimit(limit)
}

// SearchSubscriptions implements billing.Console. Q is looked up as an _id, a
// gateway_subscription_id (index gateway_subscription_id) and an email prefix in the users
// collection (index email).
func (s *Store) SearchSubscriptions(ctx context.Context, q billing.SubscriptionQuery) ([]billing.Subscription, billing.Cursor, error) {
	limit, err := pageLimit(ctx, q.Limit)
	if err != nil {
		return nil, billing.Cursor{}, err
	}
	f := bson.D{notDeleted}
	if len(q.Statuses) > 0 {
		st := make(bson.A, len(q.Statuses))
		for i, x := range q.Statuses {
			st[i] = string(x)
		}
		f = append(f, bson.E{Key: "status", Value: bson.D{{Key: "$in", Value: st}}})
	}
	if q.Gateway != "" {
		f = append(f, bson.E{Key: "gateway", Value: q.Gateway})
	}
	if q.PlanID != "" {
		f = append(f, bson.E{Key: "plan_id", Value: idMatch(q.PlanID)})
	}
	var and bson.A
	if q.Q != "" {
		users, err := s.usersByEmailPrefix(ctx, q.Q)
		if err != nil {
			return nil, billing.Cursor{}, err
		}
		or := bson.A{bson.D{{Key: "_id", Value: idValue(q.Q)}}, bson.D{{Key: "gateway_subscription_id", Value: q.Q}}}
		if len(users) > 0 {
			or = append(or, bson.D{{Key: "user_id", Value: bson.D{{Key: "$in", Value: idValues(users)}}}})
		}
		and = append(and, bson.D{{Key: "$or", Value: or}})
	}
	if e := afterCursor(q.After); e.Key != "" {
		and = append(and, bson.D{e})
	}
	if len(and) > 0 {
		f = append(f, bson.E{Key: "$and", Value: and})
	}
	return findPage(ctx, s.subs, f, limit, decodeSub, func(x billing.Subscription) billing.Cursor {
		return billing.Cursor{CreatedAt: x.CreatedAt, ID: x.ID}
	})
}

// usersByEmailPrefix returns the ids of up to MaxPageSize live users whose email starts with
// prefix, ignoring case.
func (s *Store) usersByEmailPrefix(ctx context.Context, prefix string) ([]string, error) {
	re := bson.Regex{Pattern: "^" + regexp.QuoteMeta(prefix), Options: "i"}
	cur, err := s.users.Find(ctx, bson.D{{Key: "email", Value: re}, notDeleted},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetLimit(billing.MaxPageSize))
	if err != nil {
		return nil, opErr("search users", err)
	}
	defer cur.Close(ctx)
	var ids []string
	for cur.Next(ctx) {
		ids = append(ids, rawID(cur.Current))
	}
	if err := cur.Err(); err != nil {
		return nil, opErr("search users", err)
	}
	return ids, nil
}

// ListPayments implements billing.Console.
func (s *Store) ListPayments(ctx context.Context, q billing.PaymentQuery) ([]billing.Payment, billing.Cursor, error) {
	limit, err := pageLimit(ctx, q.Limit)
	if err != nil {
		return nil, billing.Cursor{}, err
	}
	f := bson.D{notDeleted}
	if q.Status != "" {
		f = append(f, bson.E{Key: "status", Value: string(q.Status)})
	}
	if q.SubscriptionID != "" {
		f = append(f, bson.E{Key: "subscription_id", Value: idMatch(q.SubscriptionID)})
	}
	return findPage(ctx, s.payments, withCursor(f, q.After), limit, s.decodePayment, func(p billing.Payment) billing.Cursor {
		return billing.Cursor{CreatedAt: p.CreatedAt, ID: p.ID}
	})
}

// ListNotifications implements billing.Console.
func (s *Store) ListNotifications(ctx context.Context, q billing.NotificationQuery) ([]billing.NotificationRecord, billing.Cursor, error) {
	limit, err := pageLimit(ctx, q.Limit)
	if err != nil {
		return nil, billing.Cursor{}, err
	}
	f := bson.D{}
	if q.Kind != "" {
		f = append(f, bson.E{Key: "kind", Value: string(q.Kind)})
	}
	if q.Status != "" {
		f = append(f, bson.E{Key: "status", Value: q.Status})
	}
	if q.SubscriptionID != "" {
		f = append(f, bson.E{Key: "subscription_id", Value: q.SubscriptionID})
	}
	// Keys are string _ids (never ObjectIDs): compare the cursor's key as a string.
	if c := q.After; !c.IsZero() {
		t := bson.NewDateTimeFromTime(c.CreatedAt)
		f = append(f, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "created_at", Value: bson.D{{Key: "$lt", Value: t}}}},
			bson.D{{Key: "created_at", Value: t}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: c.ID}}}},
		}})
	}
	return findPage(ctx, s.notifications, f, limit, decodeNotification, func(n billing.NotificationRecord) billing.Cursor {
		return billing.Cursor{CreatedAt: n.CreatedAt, ID: n.Key}
	})
}

// ListEntityAudit implements billing.Console (index entity_created_seq).
func (s *Store) ListEntityAudit(ctx context.Context, ids []string, limit int) ([]billing.AuditEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit < 1 || limit > billing.MaxPageSize {
		return nil, opErr("list entity audit", fmt.Errorf("%w: limit %d: use 1 to %d", billing.ErrInvalidInput, limit, billing.MaxPageSize))
	}
	if len(ids) == 0 {
		return nil, nil
	}
	in := make(bson.A, len(ids))
	for i, id := range ids {
		in[i] = id
	}
	cur, err := s.audit.Find(ctx, bson.D{{Key: "entity_id", Value: bson.D{{Key: "$in", Value: in}}}},
		options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}, {Key: "seq", Value: -1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, opErr("list entity audit", err)
	}
	return decodeEach(ctx, cur, s.audit.Name(), decodeAudit)
}

// RetryNotification implements billing.Console with one conditional update on
// {_id: key, status: failed}.
func (s *Store) RetryNotification(ctx context.Context, key, token string, now, leaseUntil time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if key == "" || token == "" {
		return false, opErr("retry notification", fmt.Errorf("%w: need a key and a token", billing.ErrInvalidInput))
	}
	f := &fields{}
	f.put("status", billing.NotificationSending)
	f.put("token", token)
	f.put("lease_until", bson.NewDateTimeFromTime(leaseUntil))
	f.time("updated_at", now)
	f.drop("error")
	res, err := s.notifications.UpdateOne(ctx, bson.D{{Key: "_id", Value: key}, {Key: "status", Value: billing.NotificationFailed}}, f.update())
	if err != nil {
		return false, opErr("retry notification", err)
	}
	if res.MatchedCount == 1 {
		return true, nil
	}
	if _, err := s.GetNotification(ctx, key); err != nil {
		return false, err
	}
	return false, nil
}

type snapshotDoc struct {
	Day      time.Time        `bson:"_id"`
	ByStatus map[string]int   `bson:"by_status"`
	MRR      map[string]int64 `bson:"mrr"`
	Taken    time.Time        `bson:"taken_at"`
}

// PutDailySnapshot implements billing.SnapshotStore: one document per day, its _id the
// day's midnight UTC.
func (s *Store) PutDailySnapshot(ctx context.Context, snap billing.DailySnapshot) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if snap.Day.IsZero() {
		return opErr("put snapshot", fmt.Errorf("%w: snapshot without a day", billing.ErrInvalidInput))
	}
	d := snapshotDoc{Day: billing.SnapshotDay(snap.Day), ByStatus: map[string]int{}, MRR: map[string]int64{}, Taken: utc(snap.Taken)}
	for k, v := range snap.ByStatus {
		d.ByStatus[string(k)] = v
	}
	for k, v := range snap.MRR {
		d.MRR[k] = v
	}
	_, err := s.snapshots.ReplaceOne(ctx, bson.D{{Key: "_id", Value: d.Day}}, d, options.Replace().SetUpsert(true))
	if err != nil {
		return opErr("put snapshot", err)
	}
	return nil
}

// ListDailySnapshots implements billing.SnapshotStore (a range on _id).
func (s *Store) ListDailySnapshots(ctx context.Context, since time.Time) ([]billing.DailySnapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cur, err := s.snapshots.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: billing.SnapshotDay(since)}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, opErr("list snapshots", err)
	}
	return decodeEach(ctx, cur, s.snapshots.Name(), func(raw bson.Raw) (billing.DailySnapshot, error) {
		d, err := unmarshal[snapshotDoc](raw)
		out := billing.DailySnapshot{Day: d.Day.UTC(), ByStatus: map[billing.SubscriptionStatus]int{}, MRR: map[string]int64{}, Taken: utc(d.Taken)}
		for k, v := range d.ByStatus {
			out.ByStatus[billing.SubscriptionStatus(k)] = v
		}
		for k, v := range d.MRR {
			out.MRR[k] = v
		}
		return out, err
	})
}
