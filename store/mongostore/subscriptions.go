package mongostore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
)

// subDoc is a subscriptions document as read. Fields legacy documents lack (version,
// expiration_warning_days, claim fields, ...) read as zero values.
type subDoc struct {
	ID                    docID      `bson:"_id"`
	UserID                docID      `bson:"user_id"`
	PlanID                docID      `bson:"plan_id"`
	Status                string     `bson:"status"`
	BillingCycle          string     `bson:"billing_cycle"`
	CurrentPeriodStart    time.Time  `bson:"current_period_start"`
	CurrentPeriodEnd      time.Time  `bson:"current_period_end"`
	Gateway               string     `bson:"gateway"`
	GatewaySubscriptionID string     `bson:"gateway_subscription_id"`
	CancelAtPeriodEnd     bool       `bson:"cancel_at_period_end"`
	ExpirationWarningSent bool       `bson:"expiration_warning_sent"`
	ExpirationWarningDays int        `bson:"expiration_warning_days"`
	GatewayUpdatedAt      time.Time  `bson:"gateway_updated_at"`
	AppliedPayments       []string   `bson:"applied_payments"`
	CancelledAt           time.Time  `bson:"cancelled_at"`
	CreatedAt             time.Time  `bson:"created_at"`
	UpdatedAt             time.Time  `bson:"updated_at"`
	Deleted               bool       `bson:"flag_del"`
	Version               int64      `bson:"version"`
	PendingToken          string     `bson:"pending_token"`
	PendingEffects        string     `bson:"pending_effects"`
	PendingDetails        []bson.Raw `bson:"pending_details"`
}

func decodeSub(raw bson.Raw) (billing.Subscription, error) {
	var d subDoc
	if err := bson.Unmarshal(raw, &d); err != nil {
		return billing.Subscription{}, err
	}
	pending, err := decodePending(d.PendingToken, d.PendingEffects, d.PendingDetails)
	if err != nil {
		return billing.Subscription{}, err
	}
	return billing.Subscription{
		ID: string(d.ID), UserID: string(d.UserID), PlanID: string(d.PlanID),
		Status: billing.SubscriptionStatus(d.Status), BillingCycle: billing.Cycle(d.BillingCycle),
		CurrentPeriodStart: utc(d.CurrentPeriodStart), CurrentPeriodEnd: utc(d.CurrentPeriodEnd),
		Gateway: d.Gateway, GatewaySubscriptionID: d.GatewaySubscriptionID,
		CancelAtPeriodEnd: d.CancelAtPeriodEnd, ExpirationWarningSent: d.ExpirationWarningSent,
		ExpirationWarningDays: d.ExpirationWarningDays, GatewayUpdatedAt: utc(d.GatewayUpdatedAt),
		AppliedPayments: d.AppliedPayments, CancelledAt: utc(d.CancelledAt),
		CreatedAt: utc(d.CreatedAt), UpdatedAt: utc(d.UpdatedAt), Deleted: d.Deleted, Pending: pending, Version: d.Version,
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

// subscriptionFields are the fields renewkit owns in a subscriptions document, named as
// billing.ChangedSubscriptionFields names them. Pending effects, version and claim fields
// are written apart.
var subscriptionFields = fieldSet[billing.Subscription]{
	{billing.FieldUserID, kindRef, false, func(x billing.Subscription) any { return x.UserID }},
	{billing.FieldPlanID, kindRef, false, func(x billing.Subscription) any { return x.PlanID }},
	{billing.FieldStatus, kindStr, false, func(x billing.Subscription) any { return string(x.Status) }},
	{billing.FieldBillingCycle, kindStr, false, func(x billing.Subscription) any { return string(x.BillingCycle) }},
	{billing.FieldCurrentPeriodStart, kindTime, true, func(x billing.Subscription) any { return x.CurrentPeriodStart }},
	{billing.FieldCurrentPeriodEnd, kindTime, true, func(x billing.Subscription) any { return x.CurrentPeriodEnd }},
	{billing.FieldGateway, kindStr, false, func(x billing.Subscription) any { return x.Gateway }},
	{billing.FieldGatewaySubscriptionID, kindStr, true, func(x billing.Subscription) any { return x.GatewaySubscriptionID }},
	{billing.FieldCancelAtPeriodEnd, kindFlag, false, func(x billing.Subscription) any { return x.CancelAtPeriodEnd }},
	{billing.FieldExpirationWarningSent, kindFlag, false, func(x billing.Subscription) any { return x.ExpirationWarningSent }},
	{billing.FieldExpirationWarningDays, kindInt, true, func(x billing.Subscription) any { return x.ExpirationWarningDays }},
	{billing.FieldGatewayUpdatedAt, kindTime, true, func(x billing.Subscription) any { return x.GatewayUpdatedAt }},
	{billing.FieldAppliedPayments, kindStrs, true, func(x billing.Subscription) any { return x.AppliedPayments }},
	{billing.FieldCancelledAt, kindTime, true, func(x billing.Subscription) any { return x.CancelledAt }},
	{billing.FieldCreatedAt, kindTime, true, func(x billing.Subscription) any { return x.CreatedAt }},
	{billing.FieldUpdatedAt, kindTime, true, func(x billing.Subscription) any { return x.UpdatedAt }},
	{billing.FieldDeleted, kindFlag, false, func(x billing.Subscription) any { return x.Deleted }},
}

// newSubFields encodes a new document: every field renewkit owns (empty optional ones left
// out), the version and, when x carries pending effects (a record created with what remains
// to do after its creation), those, in the same insert.
func (s *Store) newSubFields(x billing.Subscription) (*fields, error) {
	f := subscriptionFields.doc(x, s.cfg.References)
	f.put("version", x.Version)
	if x.Pending != nil {
		if err := putEffects(f, "subscription", x.ID, *x.Pending); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// putEffects sets the pending effects fields of the record (kind "subscription" or
// "payment") id to e.
func putEffects(f *fields, kind, id string, e billing.Effects) error {
	js, details, err := encodeEffects(e)
	if err != nil {
		return fmt.Errorf("mongostore: %s %q: encoding effects: %w", kind, id, err)
	}
	f.put("pending_token", e.Token)
	f.put("pending_effects", js)
	f.optAny("pending_details", details, details == nil)
	return nil
}

func (s *Store) InsertSubscription(ctx context.Context, x *billing.Subscription) error {
	if err := prepareInsert(ctx, &x.ID); err != nil {
		return err
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
	f, err := s.newSubFields(*x)
	if err != nil {
		return err
	}
	if err := insert(ctx, s.subs, f.doc(x.ID), "subscription", x.ID); err != nil {
		return err
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
			f, err := s.newSubFields(chunk[i])
			if err != nil {
				return err
			}
			docs[i] = f.doc(chunk[i].ID)
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
	return findLive(ctx, s.subs, id, decodeSub, "subscription")
}

// UpdateSubscriptions writes each change while the subscription still holds its status,
// period end and every written field as read, under the caller's claim, and bumps its
// version. A change reports ErrNotFound when the subscription is gone or soft-deleted and
// ErrConflict when it changed meanwhile. See Conditional writes in the package documentation.
func (s *Store) UpdateSubscriptions(ctx context.Context, changes []billing.SubscriptionChange) ([]error, error) {
	// Implementation:
	// UpdateSubscriptions writes each change as one UpdateOne of an unordered bulkWrite (at
	// most 48 per command) under the condition flag_del != true, status, current_period_end and
	// every written field as read, claim_token, no pending_token; it $sets/$unsets the changed
	// fields, pending_token and pending_effects, a per-change write_token, and $inc version. A
	// change not known to have applied is told by its document afterwards: carrying its
	// write_token, it applied; gone or soft-deleted, ErrNotFound; otherwise ErrConflict. On
	// MongoDB the server checks the condition; in ClaimSerialized mode the store does, under the
	// subscriptions write mutex (see bulkApply).
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	errs := make([]error, len(changes))
	tokens := make([]string, len(changes))
	batch := newToken()
	var ops []bulkOp
	for i, ch := range changes {
		tokens[i] = batch + "." + strconv.Itoa(i)
		op, err := subChange(ch, tokens[i])
		if err != nil {
			errs[i] = err
			continue
		}
		op.i = i
		ops = append(ops, op)
	}
	classify := func(op bulkOp, doc bson.Raw) error {
		if doc == nil {
			return notFound("subscription", op.id)
		}
		if tok, _ := doc.Lookup("write_token").StringValueOK(); tok == tokens[op.i] {
			return nil
		}
		if deleted, _ := doc.Lookup("flag_del").BooleanOK(); deleted {
			return notFound("subscription", op.id)
		}
		return fmt.Errorf("mongostore: subscription %q changed since it was read: %w", op.id, billing.ErrConflict)
	}
	return errs, s.bulkApply(ctx, s.subs, "subscription", ops, errs, classify)
}

// subChange returns the conditional write of one change.
func subChange(ch billing.SubscriptionChange, writeToken string) (bulkOp, error) {
	r := ch.Read
	if r.ID == "" || ch.Changed.ID != "" && ch.Changed.ID != r.ID {
		return bulkOp{}, fmt.Errorf("mongostore: a subscription change needs Read.ID (and Changed.ID empty or the same): %w", billing.ErrInvalidInput)
	}
	names := billing.ChangedSubscriptionFields(r, ch.Changed)
	cond, err := subscriptionFields.cond(bson.D{notDeleted}, r,
		append([]string{billing.FieldStatus, billing.FieldCurrentPeriodEnd}, names...)...)
	if err != nil {
		return bulkOp{}, err
	}
	if ch.ClaimToken != "" {
		cond = append(cond, bson.E{Key: "claim_token", Value: ch.ClaimToken})
	}
	set, err := subscriptionFields.set(ch.Changed, names)
	if err != nil {
		return bulkOp{}, err
	}
	set.put("write_token", writeToken)
	if ch.Effects != nil {
		if err := putEffects(set, "subscription", r.ID, *ch.Effects); err != nil {
			return bulkOp{}, err
		}
		cond = append(cond, bson.E{Key: "pending_token", Value: bson.D{{Key: "$exists", Value: false}}})
	}
	return bulkOp{id: r.ID, idv: idValue(r.ID), cond: cond, refs: set.refs,
		upd: set.update(bson.E{Key: "$inc", Value: bson.D{{Key: "version", Value: int64(1)}}})}, nil
}

// CompleteEffects clears the pending effects and the claim of each subscription whose pending
// token is the given one.
func (s *Store) CompleteEffects(ctx context.Context, done []billing.EffectsDone) error {
	// Implementation:
	// CompleteEffects removes pending_token, pending_effects and the claim fields of each
	// subscription whose pending_token is the given one, under the subscriptions write mutex
	// in ClaimSerialized mode. On a server that checks write conditions itself (MongoDB,
	// FerretDB v1 on PostgreSQL), the completions that share a ClaimToken go as one
	// updateMany per Config.BatchSize of them (see completeHeld). The others, the ones of a
	// group that matched fewer documents than it names, and every completion on FerretDB v1
	// on SQLite go as unordered bulkWrites of UpdateOne (at most 48 each).
	if err := ctx.Err(); err != nil {
		return err
	}
	mode, err := s.ClaimMode(ctx)
	if err != nil {
		return err
	}
	grouped := mode != ClaimSerialized || s.pushesFieldFilters(ctx, s.subs)
	var each []bulkOp
	held := map[string][]bulkOp{}
	var claims []string // held's keys, in the order first met
	for i, d := range done {
		if d.SubscriptionID == "" {
			continue
		}
		op := bulkOp{i: i, id: d.SubscriptionID, idv: idValue(d.SubscriptionID),
			cond: bson.D{{Key: "pending_token", Value: d.Token}}, upd: completeUpdate}
		if !grouped || d.ClaimToken == "" {
			each = append(each, op)
			continue
		}
		if _, ok := held[d.ClaimToken]; !ok {
			claims = append(claims, d.ClaimToken)
		}
		held[d.ClaimToken] = append(held[d.ClaimToken], op)
	}
	for _, claim := range claims {
		for part := range slices.Chunk(held[claim], s.cfg.BatchSize) {
			if len(part) == 1 {
				each = append(each, part...)
				continue
			}
			all, err := s.completeHeld(ctx, claim, part)
			if err != nil {
				return opErr("complete effects", err)
			}
			if !all {
				// Some are no longer held by the claim (taken over after the lease ended), or
				// are gone, or carry other effects: each is completed alone, by its _id;
				// the ones just completed no longer match.
				each = append(each, part...)
			}
		}
	}
	errs := make([]error, len(done))
	if err := s.bulkApply(ctx, s.subs, "subscription", each, errs, nil); err != nil {
		return err
	}
	return firstErr(errs)
}

// completeUpdate clears a record's pending effects and its claim.
var completeUpdate = bson.D{{Key: "$unset", Value: bson.D{
	{Key: "pending_token", Value: ""}, {Key: "pending_effects", Value: ""}, {Key: "pending_details", Value: ""},
	{Key: "claim_token", Value: ""}, {Key: "claim_until", Value: ""},
}}}

// completeHeld completes ops (each conditioned on its pending_token) of records held by
// claim as one group write (see groupModel): one updateMany {_id: {$in: ...}, claim_token:
// claim, $or: [{_id, pending_token} ...]}, under the subscriptions write mutex in
// ClaimSerialized mode. FerretDB v1 on PostgreSQL pushes the claim_token equality down: the
// batch costs one scan of the table, returning only the claim's documents, instead of one
// scan per record. It reports whether every op's document matched.
func (s *Store) completeHeld(ctx context.Context, claim string, ops []bulkOp) (bool, error) {
	held := make([]bulkOp, len(ops))
	ids := make(map[string]struct{}, len(ops))
	for k, op := range ops {
		op.cond = append(bson.D{{Key: "claim_token", Value: claim}}, op.cond...)
		held[k] = op
		ids[op.id] = struct{}{}
	}
	var matched int64
	err := s.exclusive(ctx, writeMutex(s.subs), func() error {
		res, err := s.subs.BulkWrite(ctx, []mongo.WriteModel{groupModel(held, true)})
		if err == nil {
			matched = res.MatchedCount
		}
		return err
	})
	return err == nil && matched == int64(len(ids)), err
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
func subFilter(f billing.SubscriptionFilter, extra ...bson.D) bson.D {
	q := bson.D{notDeleted}
	var and bson.A
	for _, x := range extra {
		and = append(and, x)
	}
	switch {
	case len(f.Statuses) == 1:
		// An equality rather than $in of one: FerretDB v1 on PostgreSQL pushes it down, so a
		// claim reads the subscriptions of that status only, not every one that ever lapsed.
		q = append(q, bson.E{Key: "status", Value: string(f.Statuses[0])})
	case len(f.Statuses) > 1:
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
	if len(f.UserIDs) > 0 {
		q = append(q, bson.E{Key: "user_id", Value: bson.D{{Key: "$in", Value: idValues(f.UserIDs)}}})
	}
	if len(and) > 0 {
		q = append(q, bson.E{Key: "$and", Value: and})
	}
	return q
}

// pastPosition matches the records past after in claimSort's order: a later period end,
// or the same end and a greater _id. MongoDB orders string ids before ObjectIDs and $gt
// compares within one type, so a position with a string id also keeps every ObjectID at
// its end.
func pastPosition(after billing.ClaimPosition) bson.D {
	end := bson.NewDateTimeFromTime(after.PeriodEnd)
	id := idValue(after.ID)
	or := bson.A{
		bson.D{{Key: "current_period_end", Value: bson.D{{Key: "$gt", Value: end}}}},
		bson.D{{Key: "current_period_end", Value: end}, {Key: "_id", Value: bson.D{{Key: "$gt", Value: id}}}},
	}
	if _, oid := id.(bson.ObjectID); !oid {
		or = append(or, bson.D{{Key: "current_period_end", Value: end}, {Key: "_id", Value: bson.D{{Key: "$type", Value: "objectId"}}}})
	}
	return bson.D{{Key: "$or", Value: or}}
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

// ClaimSubscriptions claims up to p.Limit records in rounds of at most Config.BatchSize,
// most urgent first; replicas sharing the database never claim one record twice. See Claims,
// sweeps and locks without transactions in the package documentation.
//
// Malformed documents (a field of the wrong BSON type) are claimed like the others and count
// toward p.Limit, but are not returned: each is reported as a *billing.RecordError wrapping
// billing.ErrMalformedRecord (several joined with errors.Join) next to the records that
// decoded. They stay held by the token until ReleaseClaims or the lease ends, so one sweep
// meets each once and goes on with the rest.
func (s *Store) ClaimSubscriptions(ctx context.Context, p billing.ClaimParams) ([]billing.Subscription, error) {
	// Implementation:
	// ClaimSubscriptions claims up to p.Limit records in rounds of at most Config.BatchSize:
	// find the ids of the most urgent claimable records, updateMany({_id: {$in: ids},
	// <filter>, <claimable>}) to stamp claim_token and claim_until (with
	// Config.FerretDBIDIndex, UpdateOne({_id: id, <filter>, <claimable>}) each), then read
	// back the ones that carry the token. On MongoDB the updateMany filter is the arbiter; in
	// ClaimSerialized mode (FerretDB v1) the rounds also run under a store-level mutex.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p.Token == "" || p.Limit <= 0 {
		return nil, fmt.Errorf("mongostore: claim needs a token and a positive limit: %w", billing.ErrInvalidInput)
	}
	var past []bson.D
	if p.After.ID != "" {
		past = append(past, pastPosition(p.After))
	}
	cond := append(subFilter(p.Filter, past...), bson.E{Key: "pending_token", Value: bson.D{{Key: "$exists", Value: p.Pending}}})
	cond = append(cond, claimable(p.Token, p.Now)...)
	var out []billing.Subscription
	var bad []error
	for round := 0; len(out)+len(bad) < p.Limit; round++ {
		want := min(p.Limit-len(out)-len(bad), s.cfg.BatchSize)
		var n int
		err := s.exclusive(ctx, writeMutex(s.subs), func() error {
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
			if err := s.stamp(ctx, ids, inIDs, cond, upd); err != nil {
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

// stamp applies a claim round's update to the candidates ids (inIDs, their $in) that still
// match cond: one updateMany, or with Config.FerretDBIDIndex one UpdateOne by _id each, in
// unordered bulkWrites of at most maxBulkOps (FerretDB v1 on PostgreSQL would otherwise
// return every document cond's pushed-down part matches, not just the candidates).
func (s *Store) stamp(ctx context.Context, ids bson.A, inIDs bson.E, cond, upd bson.D) error {
	if !s.byEachID(ctx, s.subs) {
		_, err := s.subs.UpdateMany(ctx, append(bson.D{inIDs}, cond...), upd)
		return err
	}
	for part := range slices.Chunk(ids, maxBulkOps) {
		models := make([]mongo.WriteModel, len(part))
		for k, id := range part {
			models[k] = mongo.NewUpdateOneModel().SetFilter(append(bson.D{{Key: "_id", Value: id}}, cond...)).SetUpdate(upd)
		}
		if _, err := s.subs.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) ReleaseClaims(ctx context.Context, token string) error {
	unset := bson.D{{Key: "$unset", Value: bson.D{{Key: "claim_token", Value: ""}, {Key: "claim_until", Value: ""}}}}
	return s.updateClaims(ctx, "release claims", token, unset)
}

func (s *Store) ExtendClaims(ctx context.Context, token string, until time.Time) error {
	set := bson.D{{Key: "$set", Value: bson.D{{Key: "claim_until", Value: bson.NewDateTimeFromTime(until)}}}}
	return s.updateClaims(ctx, "extend claims", token, set)
}

// updateClaims applies upd to every record token holds, under the subscriptions write mutex
// in ClaimSerialized mode.
func (s *Store) updateClaims(ctx context.Context, op, token string, upd bson.D) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if token == "" {
		return nil
	}
	err := s.exclusive(ctx, writeMutex(s.subs), func() error {
		_, err := s.subs.UpdateMany(ctx, bson.D{{Key: "claim_token", Value: token}}, upd)
		return err
	})
	if err != nil {
		return opErr(op, err)
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

// ListSubscriptions returns matching records, oldest period end first, without claiming
// them. Unreadable documents are reported as *billing.RecordError next to the others.
func (s *Store) ListSubscriptions(ctx context.Context, f billing.SubscriptionFilter, limit int) ([]billing.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	opts := findOpts().SetSort(claimSort)
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	if f.OmitPending {
		opts.SetProjection(withoutPending)
	}
	cur, err := s.subs.Find(ctx, subFilter(f), opts)
	if err != nil {
		return nil, opErr("list subscriptions", err)
	}
	return decodeEach(ctx, cur, s.subs.Name(), decodeSub)
}

// withoutPending leaves the pending effects out of a read (billing.SubscriptionFilter's
// OmitPending).
var withoutPending = bson.D{{Key: "pending_token", Value: 0}, {Key: "pending_effects", Value: 0}, {Key: "pending_details", Value: 0}}

// Pending effects are stored as pending_token (queried: claims with and without pending
// effects, CompleteEffects), pending_effects, the billing.Effects as a JSON string (so their
// shape follows billing's JSON tags), and pending_details, the audit entries' details as
// BSON documents (aligned with Effects.Audit), so their values keep their types (times,
// whole numbers) as audit_logs documents do.

func encodeEffects(e billing.Effects) (js string, details bson.A, err error) {
	audit := make([]billing.AuditEntry, len(e.Audit))
	for i, a := range e.Audit {
		if len(a.Details) > 0 {
			if details == nil {
				details = make(bson.A, len(e.Audit))
			}
			details[i] = a.Details
		}
		a.Details = nil
		audit[i] = a
	}
	e.Audit = audit
	b, err := json.Marshal(e)
	return string(b), details, err
}

func decodeEffects(js string, details []bson.Raw) (billing.Effects, error) {
	var e billing.Effects
	if js != "" {
		if err := json.Unmarshal([]byte(js), &e); err != nil {
			return e, err
		}
	}
	for i := range e.Audit {
		if i < len(details) {
			m, err := anyMap(details[i])
			if err != nil {
				return e, fmt.Errorf("pending_details: %w", err)
			}
			e.Audit[i].Details = m
		}
	}
	utcTimes(reflect.ValueOf(&e).Elem())
	return e, nil
}

var timeType = reflect.TypeFor[time.Time]()

// utcTimes sets every time.Time reachable from v (settable) to UTC at millisecond
// precision, as the store returns times.
func utcTimes(v reflect.Value) {
	switch {
	case v.Type() == timeType:
		v.Set(reflect.ValueOf(utc(v.Interface().(time.Time))))
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			if v.Field(i).CanSet() {
				utcTimes(v.Field(i))
			}
		}
	case v.Kind() == reflect.Slice || v.Kind() == reflect.Array:
		for i := range v.Len() {
			utcTimes(v.Index(i))
		}
	case v.Kind() == reflect.Pointer && !v.IsNil():
		utcTimes(v.Elem())
	}
}
