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

// subDoc is a subscriptions document as read. Fields the seed's documents lack (version,
// expiration_warning_days, claim fields, ...) read as zero values.
type subDoc struct {
	ID                    docID     `bson:"_id"`
	UserID                docID     `bson:"user_id"`
	PlanID                docID     `bson:"plan_id"`
	Status                string    `bson:"status"`
	BillingCycle          string    `bson:"billing_cycle"`
	CurrentPeriodStart    time.Time `bson:"current_period_start"`
	CurrentPeriodEnd      time.Time `bson:"current_period_end"`
	Gateway               string    `bson:"gateway"`
	GatewaySubscriptionID string    `bson:"gateway_subscription_id"`
	CancelAtPeriodEnd     bool      `bson:"cancel_at_period_end"`
	ExpirationWarningSent bool      `bson:"expiration_warning_sent"`
	ExpirationWarningDays int       `bson:"expiration_warning_days"`
	GatewayUpdatedAt      time.Time `bson:"gateway_updated_at"`
	AppliedPayments       []string  `bson:"applied_payments"`
	CancelledAt           time.Time `bson:"cancelled_at"`
	CreatedAt             time.Time `bson:"created_at"`
	UpdatedAt             time.Time `bson:"updated_at"`
	Deleted               bool      `bson:"flag_del"`
	Version               int64     `bson:"version"`
}

func decodeSub(raw bson.Raw) (billing.Subscription, error) {
	var d subDoc
	if err := bson.Unmarshal(raw, &d); err != nil {
		return billing.Subscription{}, err
	}
	return billing.Subscription{
		ID: string(d.ID), UserID: string(d.UserID), PlanID: string(d.PlanID),
		Status: billing.SubscriptionStatus(d.Status), BillingCycle: billing.BillingCycle(d.BillingCycle),
		CurrentPeriodStart: utc(d.CurrentPeriodStart), CurrentPeriodEnd: utc(d.CurrentPeriodEnd),
		Gateway: d.Gateway, GatewaySubscriptionID: d.GatewaySubscriptionID,
		CancelAtPeriodEnd: d.CancelAtPeriodEnd, ExpirationWarningSent: d.ExpirationWarningSent,
		ExpirationWarningDays: d.ExpirationWarningDays, GatewayUpdatedAt: utc(d.GatewayUpdatedAt),
		AppliedPayments: d.AppliedPayments, CancelledAt: utc(d.CancelledAt),
		CreatedAt: utc(d.CreatedAt), UpdatedAt: utc(d.UpdatedAt), Deleted: d.Deleted, Version: d.Version,
	}, nil
}

// decodeSubErr decodes raw, wrapping a failure as a RecordError naming the document.
func (s *Store) decodeSubErr(raw bson.Raw) (billing.Subscription, error) {
	x, err := decodeSub(raw)
	if err != nil {
		return x, malformed(s.cfg.Collections.Subscriptions, raw, err)
	}
	return x, nil
}

// subFields encodes every field renewkit owns; the host's other fields and the claim fields
// are left alone by updates.
func subFields(x billing.Subscription, version int64) *fields {
	f := &fields{}
	f.put("user_id", x.UserID)
	f.put("plan_id", x.PlanID)
	f.put("status", string(x.Status))
	f.put("billing_cycle", string(x.BillingCycle))
	f.time("current_period_start", x.CurrentPeriodStart)
	f.time("current_period_end", x.CurrentPeriodEnd)
	f.put("gateway", x.Gateway)
	f.optStr("gateway_subscription_id", x.GatewaySubscriptionID)
	f.put("cancel_at_period_end", x.CancelAtPeriodEnd)
	f.put("expiration_warning_sent", x.ExpirationWarningSent)
	f.optAny("expiration_warning_days", x.ExpirationWarningDays, x.ExpirationWarningDays == 0)
	f.time("gateway_updated_at", x.GatewayUpdatedAt)
	f.optAny("applied_payments", x.AppliedPayments, len(x.AppliedPayments) == 0)
	f.time("cancelled_at", x.CancelledAt)
	f.time("created_at", x.CreatedAt)
	f.time("updated_at", x.UpdatedAt)
	f.put("flag_del", x.Deleted)
	f.put("version", version)
	return f
}

func (s *Store) InsertSubscription(ctx context.Context, x *billing.Subscription) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if x.ID == "" {
		x.ID = billing.NewID()
	}
	if x.GatewaySubscriptionID != "" {
		n, err := s.subs.CountDocuments(ctx, bson.D{
			{Key: "gateway", Value: x.Gateway}, {Key: "gateway_subscription_id", Value: x.GatewaySubscriptionID}, notDeleted,
		}, options.Count().SetLimit(1))
		if err != nil {
			return opErr("insert subscription", err)
		}
		if n > 0 {
			return conflict("gateway subscription", x.GatewaySubscriptionID)
		}
	}
	if _, err := s.subs.InsertOne(ctx, subFields(*x, x.Version).doc(x.ID)); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return conflict("subscription", x.ID)
		}
		return opErr("insert subscription", err)
	}
	*x = normSub(*x)
	return nil
}

// InsertSubscriptions inserts many subscriptions with insertMany in chunks of
// Config.BatchSize (ordered, so the first failure stops the rest). It assigns missing ids
// and does not check gateway subscription ids; it is meant for imports and tests.
func (s *Store) InsertSubscriptions(ctx context.Context, xs []billing.Subscription) error {
	for start := 0; start < len(xs); start += s.cfg.BatchSize {
		chunk := xs[start:min(start+s.cfg.BatchSize, len(xs))]
		docs := make([]any, len(chunk))
		for i := range chunk {
			if chunk[i].ID == "" {
				chunk[i].ID = billing.NewID()
			}
			docs[i] = subFields(chunk[i], chunk[i].Version).doc(chunk[i].ID)
		}
		if _, err := s.subs.InsertMany(ctx, docs); err != nil {
			if mongo.IsDuplicateKeyError(err) {
				return fmt.Errorf("mongostore: insert subscriptions: %w: %v", billing.ErrConflict, err)
			}
			return opErr("insert subscriptions", err)
		}
	}
	return nil
}

func normSub(x billing.Subscription) billing.Subscription {
	x.CurrentPeriodStart, x.CurrentPeriodEnd = utc(x.CurrentPeriodStart), utc(x.CurrentPeriodEnd)
	x.GatewayUpdatedAt, x.CancelledAt = utc(x.GatewayUpdatedAt), utc(x.CancelledAt)
	x.CreatedAt, x.UpdatedAt = utc(x.CreatedAt), utc(x.UpdatedAt)
	if len(x.AppliedPayments) == 0 {
		x.AppliedPayments = nil
	} else {
		x.AppliedPayments = append([]string(nil), x.AppliedPayments...)
	}
	return x
}

func (s *Store) findOneSub(ctx context.Context, filter bson.D, what, id string) (billing.Subscription, error) {
	raw, err := s.subs.FindOne(ctx, filter).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return billing.Subscription{}, notFound(what, id)
	}
	if err != nil {
		return billing.Subscription{}, opErr("find "+what, err)
	}
	return s.decodeSubErr(raw)
}

func (s *Store) GetSubscription(ctx context.Context, id string) (billing.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return billing.Subscription{}, err
	}
	return s.findOneSub(ctx, append(byID(id), notDeleted), "subscription", id)
}

func (s *Store) UpdateSubscription(ctx context.Context, x billing.Subscription) (billing.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return billing.Subscription{}, err
	}
	if err := updateVersioned(ctx, s.subs, "subscription", x.ID, x.Version, subFields(x, x.Version+1).update()); err != nil {
		return billing.Subscription{}, err
	}
	x = normSub(x)
	x.Version++
	return x, nil
}

func (s *Store) FindSubscriptionByGateway(ctx context.Context, gateway, gid string) (billing.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return billing.Subscription{}, err
	}
	if gid == "" {
		return billing.Subscription{}, notFound("gateway subscription", gid)
	}
	return s.findOneSub(ctx, bson.D{{Key: "gateway", Value: gateway}, {Key: "gateway_subscription_id", Value: gid}, notDeleted},
		"gateway subscription", gid)
}

func (s *Store) ListUserSubscriptions(ctx context.Context, userID string) ([]billing.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cur, err := s.subs.Find(ctx, bson.D{{Key: "user_id", Value: idMatch(userID)}, notDeleted},
		findOpts().SetSort(bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}))
	if err != nil {
		return nil, opErr("list user subscriptions", err)
	}
	return decodeAll(ctx, cur, s.decodeSubErr)
}

// subFilter translates f into a query that agrees with billing.SubscriptionFilter.Match.
func subFilter(f billing.SubscriptionFilter) bson.D {
	q := bson.D{notDeleted}
	var and bson.A
	if len(f.Statuses) > 0 {
		st := make(bson.A, len(f.Statuses))
		for i, x := range f.Statuses {
			st[i] = string(x)
		}
		q = append(q, bson.E{Key: "status", Value: bson.D{{Key: "$in", Value: st}}})
	}
	if !f.PeriodEndAfter.IsZero() || !f.PeriodEndBefore.IsZero() {
		r := bson.D{}
		if !f.PeriodEndAfter.IsZero() {
			r = append(r, bson.E{Key: "$gt", Value: bson.NewDateTimeFromTime(f.PeriodEndAfter)})
		}
		if !f.PeriodEndBefore.IsZero() {
			r = append(r, bson.E{Key: "$lte", Value: bson.NewDateTimeFromTime(f.PeriodEndBefore)})
		}
		q = append(q, bson.E{Key: "current_period_end", Value: r})
	}
	if f.AutoRenews != nil {
		if *f.AutoRenews {
			q = append(q,
				bson.E{Key: "gateway_subscription_id", Value: bson.D{{Key: "$exists", Value: true}, {Key: "$nin", Value: bson.A{"", nil}}}},
				bson.E{Key: "gateway", Value: bson.D{{Key: "$ne", Value: billing.GatewayManual}}},
				bson.E{Key: "cancel_at_period_end", Value: bson.D{{Key: "$ne", Value: true}}},
			)
		} else {
			and = append(and, bson.D{{Key: "$or", Value: bson.A{
				bson.D{{Key: "gateway_subscription_id", Value: bson.D{{Key: "$exists", Value: false}}}},
				bson.D{{Key: "gateway_subscription_id", Value: bson.D{{Key: "$in", Value: bson.A{"", nil}}}}},
				bson.D{{Key: "gateway", Value: billing.GatewayManual}},
				bson.D{{Key: "cancel_at_period_end", Value: true}},
			}}})
		}
	}
	if f.WarningDueDays > 0 {
		and = append(and, bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "expiration_warning_sent", Value: bson.D{{Key: "$ne", Value: true}}}},
			bson.D{{Key: "expiration_warning_days", Value: bson.D{{Key: "$gt", Value: f.WarningDueDays}}}},
		}}})
	}
	if f.PlanID != "" {
		q = append(q, bson.E{Key: "plan_id", Value: idMatch(f.PlanID)})
	}
	if len(and) > 0 {
		q = append(q, bson.E{Key: "$and", Value: and})
	}
	return q
}

// claimable matches records no live lease holds and that token does not hold already.
func claimable(token string, now time.Time) bson.D {
	return bson.D{
		{Key: "claim_token", Value: bson.D{{Key: "$ne", Value: token}}},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: "claim_until", Value: bson.D{{Key: "$exists", Value: false}}}},
			bson.D{{Key: "claim_until", Value: nil}},
			bson.D{{Key: "claim_until", Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(now)}}}},
		}},
	}
}

var claimSort = bson.D{{Key: "current_period_end", Value: 1}, {Key: "_id", Value: 1}}

// ClaimSubscriptions claims up to p.Limit records in rounds of at most Config.BatchSize:
// find the ids of the most urgent claimable records, updateMany({_id: {$in: ids},
// <filter>, <claimable>}) to stamp claim_token and claim_until, then read back the ones
// that carry the token. On MongoDB the updateMany filter is the arbiter; in
// ClaimSerialized mode (FerretDB v1) the rounds also run under a store-level mutex.
//
// Malformed documents (a field of the wrong BSON type) are claimed like the others and count
// toward p.Limit, but are not returned: each is reported as a *billing.RecordError wrapping
// billing.ErrMalformedRecord (several joined with errors.Join) next to the records that
// decoded. They stay held by the token until ReleaseClaims or the lease ends, so one sweep
// meets each once and goes on with the rest.
func (s *Store) ClaimSubscriptions(ctx context.Context, p billing.ClaimParams) ([]billing.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p.Token == "" || p.Limit <= 0 {
		return nil, fmt.Errorf("mongostore: claim needs a token and a positive limit: %w", billing.ErrInvalidInput)
	}
	base := subFilter(p.Filter)
	cond := append(append(bson.D{}, base...), claimable(p.Token, p.Now)...)
	var out []billing.Subscription
	var bad []error
	for round := 0; len(out)+len(bad) < p.Limit; round++ {
		want := min(p.Limit-len(out)-len(bad), s.cfg.BatchSize)
		var n int
		err := s.exclusive(ctx, "claim/"+s.cfg.Collections.Subscriptions, func() error {
			cur, err := s.subs.Find(ctx, cond, findOpts().SetSort(claimSort).SetLimit(int64(want)).
				SetProjection(bson.D{{Key: "_id", Value: 1}}))
			if err != nil {
				return err
			}
			var ids bson.A
			for cur.Next(ctx) {
				ids = append(ids, cur.Current.Lookup("_id"))
			}
			if err := cur.Err(); err != nil {
				cur.Close(ctx)
				return err
			}
			cur.Close(ctx)
			n = len(ids)
			if n == 0 {
				return nil
			}
			inIDs := bson.E{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}
			upd := bson.D{{Key: "$set", Value: bson.D{
				{Key: "claim_token", Value: p.Token},
				{Key: "claim_until", Value: bson.NewDateTimeFromTime(p.LeaseUntil)},
			}}}
			if _, err := s.subs.UpdateMany(ctx, append(bson.D{inIDs}, cond...), upd); err != nil {
				return err
			}
			cur, err = s.subs.Find(ctx, bson.D{inIDs, {Key: "claim_token", Value: p.Token}}, findOpts().SetSort(claimSort))
			if err != nil {
				return err
			}
			defer cur.Close(ctx)
			for cur.Next(ctx) {
				x, err := s.decodeSubErr(cur.Current)
				var re *billing.RecordError
				switch {
				case errors.As(err, &re):
					bad = append(bad, re)
				case err != nil:
					return err
				default:
					out = append(out, x)
				}
			}
			return cur.Err()
		})
		if err != nil {
			return out, opErr("claim subscriptions", err)
		}
		if n < want || round > 1000 {
			break // nothing more is claimable
		}
	}
	if len(bad) > 0 {
		return out, errors.Join(bad...)
	}
	return out, nil
}

func (s *Store) ReleaseClaims(ctx context.Context, token string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if token == "" {
		return nil
	}
	_, err := s.subs.UpdateMany(ctx, bson.D{{Key: "claim_token", Value: token}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "claim_token", Value: ""}, {Key: "claim_until", Value: ""}}}})
	if err != nil {
		return opErr("release claims", err)
	}
	return nil
}

func (s *Store) CountSubscriptions(ctx context.Context, f billing.SubscriptionFilter) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n, err := s.subs.CountDocuments(ctx, subFilter(f))
	if err != nil {
		return 0, opErr("count subscriptions", err)
	}
	return int(n), nil
}

func (s *Store) CountSubscriptionsByStatus(ctx context.Context) (map[billing.SubscriptionStatus]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cur, err := s.subs.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: bson.D{notDeleted}}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$status"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	})
	if err != nil {
		return nil, opErr("count subscriptions by status", err)
	}
	defer cur.Close(ctx)
	out := map[billing.SubscriptionStatus]int{}
	for cur.Next(ctx) {
		var row struct {
			Status any   `bson:"_id"`
			N      int64 `bson:"n"`
		}
		if err := cur.Decode(&row); err != nil {
			return nil, opErr("count subscriptions by status", err)
		}
		st, _ := row.Status.(string)
		out[billing.SubscriptionStatus(st)] += int(row.N)
	}
	if err := cur.Err(); err != nil {
		return nil, opErr("count subscriptions by status", err)
	}
	return out, nil
}

// ListSubscriptions implements billing.SubscriptionLister (job previews): matching records,
// oldest period end first, without claiming them. An unreadable document stops the listing
// with its *billing.RecordError.
func (s *Store) ListSubscriptions(ctx context.Context, f billing.SubscriptionFilter, limit int) ([]billing.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	opts := findOpts().SetSort(claimSort)
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.subs.Find(ctx, subFilter(f), opts)
	if err != nil {
		return nil, opErr("list subscriptions", err)
	}
	return decodeAll(ctx, cur, s.decodeSubErr)
}

// updateVersioned applies update to the record id of kind when its stored version is version
// (a missing version field counts as 0). A record at another version is ErrConflict, a missing
// one ErrNotFound.
func updateVersioned(ctx context.Context, c *mongo.Collection, kind, id string, version int64, update bson.D) error {
	res, err := c.UpdateOne(ctx, append(byID(id), versionIs(version)), update)
	if mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("mongostore: %s %q: duplicate key: %w", kind, id, billing.ErrConflict)
	}
	if err != nil {
		return opErr("update "+kind, err)
	}
	if res.MatchedCount > 0 {
		return nil
	}
	n, err := c.CountDocuments(ctx, byID(id), options.Count().SetLimit(1))
	if err != nil {
		return opErr("update "+kind, err)
	}
	if n == 0 {
		return notFound(kind, id)
	}
	return fmt.Errorf("mongostore: %s %q changed since version %d was read: %w", kind, id, version, billing.ErrConflict)
}
