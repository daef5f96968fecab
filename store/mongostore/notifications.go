package mongostore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
)

type notificationDoc struct {
	Key            string    `bson:"_id"`
	Kind           string    `bson:"kind"`
	SubscriptionID string    `bson:"subscription_id"`
	UserID         string    `bson:"user_id"`
	Status         string    `bson:"status"`
	Error          string    `bson:"error"`
	Token          string    `bson:"token"`
	LeaseUntil     time.Time `bson:"lease_until"`
	CreatedAt      time.Time `bson:"created_at"`
	UpdatedAt      time.Time `bson:"updated_at"`
	Data           string    `bson:"data"` // billing.NotificationData as JSON
}

func decodeNotification(raw bson.Raw) (billing.NotificationRecord, error) {
	d, err := unmarshal[notificationDoc](raw)
	n := billing.NotificationRecord{
		Key: d.Key, Kind: billing.NotificationKind(d.Kind), SubscriptionID: d.SubscriptionID, UserID: d.UserID,
		Status: d.Status, Error: d.Error, Token: d.Token, LeaseUntil: utc(d.LeaseUntil),
		CreatedAt: utc(d.CreatedAt), UpdatedAt: utc(d.UpdatedAt),
	}
	if err == nil && d.Data != "" {
		var data billing.NotificationData
		if jerr := json.Unmarshal([]byte(d.Data), &data); jerr != nil {
			return n, fmt.Errorf("notification %s data: %w", d.Key, jerr)
		}
		n.Data = &data
	}
	return n, err
}

// errNotReserved marks a key another token holds, or one sent or failed.
var errNotReserved = errors.New("not reserved")

// ReserveNotifications implements billing.Store: it reserves each key for token until
// leaseUntil, unless another live reservation or a finished record holds it.
func (s *Store) ReserveNotifications(ctx context.Context, recs []billing.NotificationRecord, token string, now, leaseUntil time.Time) ([]bool, error) {
	// Implementation:
	// ReserveNotifications inserts sending records with unordered insertMany commands (the key
	// is the _id, so a stored key is a duplicate-key error). Keys already stored are reserved by
	// one UpdateOne each, in unordered bulkWrites of at most 48, under the condition status
	// sending and (lease_until <= now or token is ours), setting token and lease_until; a key
	// not known to be reserved is told by its stored status and token. In ClaimSerialized mode
	// the updates hold the notifications write mutex (see bulkApply).
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if token == "" {
		return nil, opErr("reserve notifications", errors.Join(errors.New("reservation without token"), billing.ErrInvalidInput))
	}
	out := make([]bool, len(recs))
	var taken []bulkOp
	lease := bson.NewDateTimeFromTime(leaseUntil)
	for start := 0; start < len(recs); start += s.cfg.BatchSize {
		part := recs[start:min(start+s.cfg.BatchSize, len(recs))]
		docs := make([]any, len(part))
		for i, r := range part {
			if r.Key == "" {
				return nil, opErr("reserve notifications", errors.Join(errors.New("notification without key"), billing.ErrInvalidInput))
			}
			f := &fields{}
			f.put("kind", string(r.Kind))
			f.optStr("subscription_id", r.SubscriptionID)
			f.optStr("user_id", r.UserID)
			f.put("status", billing.NotificationSending)
			f.put("token", token)
			f.put("lease_until", lease)
			f.time("created_at", now)
			if r.Data != nil {
				js, err := json.Marshal(r.Data)
				if err != nil {
					return nil, opErr("reserve notifications", err)
				}
				f.put("data", string(js))
			}
			// The key is the _id as is (never an ObjectID), so uniqueness needs no extra index.
			docs[i] = append(bson.D{{Key: "_id", Value: r.Key}}, f.set...)
		}
		var dup map[int]bool
		if _, err := s.notifications.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false)); err != nil {
			if dup, err = duplicates(err); err != nil {
				return nil, opErr("reserve notifications", err)
			}
		}
		for i, r := range part {
			if !dup[i] {
				out[start+i] = true
				continue
			}
			taken = append(taken, bulkOp{i: start + i, id: r.Key, idv: r.Key,
				cond: bson.D{{Key: "status", Value: billing.NotificationSending}, {Key: "$or", Value: bson.A{
					bson.D{{Key: "lease_until", Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(now)}}}},
					bson.D{{Key: "token", Value: token}},
				}}},
				upd: bson.D{{Key: "$set", Value: bson.D{{Key: "token", Value: token}, {Key: "lease_until", Value: lease}}}},
			})
		}
	}
	errs := make([]error, len(recs))
	err := s.bulkApply(ctx, s.notifications, "notification", taken, errs, func(_ bulkOp, doc bson.Raw) error {
		st, _ := doc.Lookup("status").StringValueOK()
		tok, _ := doc.Lookup("token").StringValueOK()
		if doc == nil || st != billing.NotificationSending || tok != token {
			return errNotReserved
		}
		return nil
	})
	for _, op := range taken {
		switch {
		case errs[op.i] == nil:
			out[op.i] = true
		case err == nil && !errors.Is(errs[op.i], errNotReserved):
			err = errs[op.i]
		}
	}
	if err != nil {
		return out, opErr("reserve notifications", err)
	}
	return out, nil
}

// FinishNotifications records the outcome of notifications reserved with token; a record with
// an empty Status is removed so its key can be reserved again.
func (s *Store) FinishNotifications(ctx context.Context, recs []billing.NotificationRecord, token string) error {
	// Implementation:
	// FinishNotifications writes, in unordered bulkWrites of at most 48 operations, one
	// operation per record under the condition {token, status: sending}: an UpdateOne setting
	// status, error and updated_at and dropping token and lease_until, or for an empty Status a
	// DeleteOne. In ClaimSerialized mode they hold the notifications write mutex.
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := billing.CheckNotificationOutcomes(recs); err != nil {
		return fmt.Errorf("mongostore: %w", err)
	}
	var ops []bulkOp
	for i, r := range recs {
		if r.Key == "" {
			continue
		}
		op := bulkOp{i: i, id: r.Key, idv: r.Key,
			cond: bson.D{{Key: "token", Value: token}, {Key: "status", Value: billing.NotificationSending}}}
		if r.Status != "" {
			f := &fields{}
			f.put("status", r.Status)
			f.optStr("error", r.Error)
			f.time("updated_at", r.UpdatedAt)
			f.drop("token")
			f.drop("lease_until")
			op.upd = f.update()
		}
		ops = append(ops, op)
	}
	errs := make([]error, len(recs))
	if err := s.bulkApply(ctx, s.notifications, "notification", ops, errs, nil); err != nil {
		return err
	}
	return firstErr(errs)
}

func (s *Store) GetNotification(ctx context.Context, key string) (billing.NotificationRecord, error) {
	if err := ctx.Err(); err != nil {
		return billing.NotificationRecord{}, err
	}
	return findOne(ctx, s.notifications, bson.D{{Key: "_id", Value: key}}, decodeNotification, "notification", key)
}
