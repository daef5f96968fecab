package mongostore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/renewkit/renewkit/billing"
)

type userDoc struct {
	ID             docID     `bson:"_id"`
	Email          string    `bson:"email"`
	Name           string    `bson:"name"`
	Locale         string    `bson:"locale"`
	TimeZone       string    `bson:"timezone"`
	PlanID         docID     `bson:"plan_id"`
	SubscriptionID docID     `bson:"subscription_id"`
	Status         string    `bson:"subscription_status"`
	AccessUntil    time.Time `bson:"access_until"`
	CreatedAt      time.Time `bson:"created_at"`
	UpdatedAt      time.Time `bson:"updated_at"`
	Deleted        bool      `bson:"flag_del"`
}

func decodeUser(raw bson.Raw) (billing.User, error) {
	d, err := unmarshal[userDoc](raw)
	return billing.User{
		ID: string(d.ID), Email: d.Email, Name: d.Name, Locale: d.Locale, TimeZone: d.TimeZone,
		PlanID: string(d.PlanID), SubscriptionID: string(d.SubscriptionID), Status: billing.SubscriptionStatus(d.Status),
		AccessUntil: utc(d.AccessUntil), CreatedAt: utc(d.CreatedAt), UpdatedAt: utc(d.UpdatedAt), Deleted: d.Deleted,
	}, err
}

// userAccessFields are the fields of a users document renewkit writes.
var userAccessFields = fieldSet[billing.User]{
	{billing.FieldPlanID, kindRef, true, func(u billing.User) any { return u.PlanID }},
	{billing.FieldSubscriptionID, kindRef, true, func(u billing.User) any { return u.SubscriptionID }},
	{"subscription_status", kindStr, true, func(u billing.User) any { return string(u.Status) }},
	{"access_until", kindTime, true, func(u billing.User) any { return u.AccessUntil }},
	{billing.FieldUpdatedAt, kindTime, true, func(u billing.User) any { return u.UpdatedAt }},
}

// userAccessCond names the fields an access change is conditional on.
var userAccessCond = []string{billing.FieldPlanID, billing.FieldSubscriptionID, "subscription_status"}

func (s *Store) InsertUser(ctx context.Context, u *billing.User) error {
	if err := prepareInsert(ctx, &u.ID); err != nil {
		return err
	}
	f := &fields{}
	f.put("email", u.Email)
	f.put("name", u.Name)
	f.optStr("locale", u.Locale)
	f.optStr("timezone", u.TimeZone)
	f.set = append(f.set, userAccessFields.doc(*u, s.cfg.References).set...)
	f.time("created_at", u.CreatedAt)
	f.put("flag_del", u.Deleted)
	if err := insert(ctx, s.users, f.doc(u.ID), "user", u.ID); err != nil {
		return err
	}
	u.AccessUntil, u.CreatedAt, u.UpdatedAt = utc(u.AccessUntil), utc(u.CreatedAt), utc(u.UpdatedAt)
	return nil
}

func (s *Store) GetUser(ctx context.Context, id string) (billing.User, error) {
	if err := ctx.Err(); err != nil {
		return billing.User{}, err
	}
	return findLive(ctx, s.users, id, decodeUser, "user")
}

// ListUsers reads the users with one find on {_id: {$in: ids in both forms}}, or with
// Config.FerretDBIDIndex one find by _id per form (see readEach).
func (s *Store) ListUsers(ctx context.Context, ids []string) ([]billing.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	if s.byEachID(ctx, s.users) {
		return s.listUsersEach(ctx, ids)
	}
	cur, err := s.users.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: idValues(ids)}}}, notDeleted})
	if err != nil {
		return nil, opErr("list users", err)
	}
	return decodeEach(ctx, cur, s.users.Name(), decodeUser)
}

// listUsersEach is ListUsers by one find {_id: value} per form an id may be stored in, each
// an index lookup on FerretDB v1 on PostgreSQL with Config.FerretDBIDIndex; it returns what
// the find on {_id: {$in: ...}, flag_del: {$ne: true}} would.
func (s *Store) listUsersEach(ctx context.Context, ids []string) ([]billing.User, error) {
	forms := idValues(ids)
	ops := make([]bulkOp, len(forms))
	for k, v := range forms {
		// Keyed by position: an id stored in both forms is two documents, as with $in.
		ops[k] = bulkOp{id: strconv.Itoa(k), idv: v}
	}
	docs := make(map[string]bson.Raw, len(ops))
	if err := s.readEach(ctx, s.users, ops, docs); err != nil {
		return nil, opErr("list users", err)
	}
	live := bson.D{notDeleted}
	var out []billing.User
	var bad []error
	for _, op := range ops {
		raw := docs[op.id]
		if raw == nil || !matches(raw, live) {
			continue
		}
		u, err := decodeUser(raw)
		if err != nil {
			bad = append(bad, malformed(s.users.Name(), raw, err))
			continue
		}
		out = append(out, u)
	}
	return out, errors.Join(bad...)
}

// UpdateUsersAccess writes each change's access fields, and only those, while the user still
// holds the plan, subscription and status the change read; it adds no renewkit field to
// users. See Conditional writes in the package documentation.
func (s *Store) UpdateUsersAccess(ctx context.Context, changes []billing.UserAccessChange) ([]error, error) {
	// Implementation:
	// UpdateUsersAccess writes each change as one UpdateOne of an unordered bulkWrite (at most
	// 48 per command) under the condition flag_del != true and plan_id, subscription_id and
	// subscription_status as read, with a $set/$unset of the changed access fields only: the
	// host's other fields are not written and no renewkit field is added to users. A change not
	// known to have applied (and one with nothing to write) is told by the stored access fields:
	// it applied when they hold its values. In ClaimSerialized mode the writes hold the users
	// write mutex (see bulkApply).
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	errs := make([]error, len(changes))
	names := make([][]string, len(changes))
	var ops, noop []bulkOp
	for i, ch := range changes {
		r := ch.Read
		if r.ID == "" || ch.Changed.ID != "" && ch.Changed.ID != r.ID {
			errs[i] = fmt.Errorf("mongostore: a user access change needs Read.ID (and Changed.ID empty or the same): %w", billing.ErrInvalidInput)
			continue
		}
		op := bulkOp{i: i, id: r.ID, idv: idValue(r.ID)}
		if names[i] = userAccessFields.changed(r, ch.Changed); len(names[i]) == 0 {
			noop = append(noop, op)
			continue
		}
		var err error
		if op.cond, err = userAccessFields.cond(bson.D{notDeleted}, r, userAccessCond...); err != nil {
			errs[i] = err
			continue
		}
		set, err := userAccessFields.set(ch.Changed, names[i])
		if err != nil {
			errs[i] = err
			continue
		}
		op.upd, op.refs = set.update(), set.refs
		ops = append(ops, op)
	}
	classify := func(op bulkOp, doc bson.Raw) error {
		if doc == nil {
			return notFound("user", op.id)
		}
		u, err := decodeUser(doc)
		ch := changes[op.i]
		switch {
		case err != nil:
			return malformed(s.users.Name(), doc, err)
		case u.Deleted:
			return notFound("user", op.id)
		case !userAccessFields.same(u, ch.Changed, names[op.i]) || !userAccessFields.same(u, ch.Read, userAccessCond, names[op.i]...):
			return fmt.Errorf("mongostore: user %q changed since it was read: %w", op.id, billing.ErrConflict)
		}
		return nil
	}
	callErr := s.bulkApply(ctx, s.users, "user", ops, errs, classify)
	if len(noop) > 0 {
		docs, err := s.readDocs(ctx, s.users, noop)
		if err != nil {
			err = opErr("read users", err)
		}
		for _, op := range noop {
			if errs[op.i] = err; err == nil {
				errs[op.i] = classify(op, docs[op.id])
			}
		}
		switch {
		case err == nil:
			callErr = nil // something is known
		case len(ops) == 0 || callErr != nil:
			callErr = err
		}
	}
	return errs, callErr
}
