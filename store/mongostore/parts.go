package mongostore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
)

// findOne decodes the first document matching filter with decode, or returns notFound.
func findOne[T any](ctx context.Context, c *mongo.Collection, filter bson.D, decode func(bson.Raw) (T, error), what, id string, opts ...options.Lister[options.FindOneOptions]) (T, error) {
	var zero T
	raw, err := c.FindOne(ctx, filter, opts...).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return zero, notFound(what, id)
	}
	if err != nil {
		return zero, opErr("find "+what, err)
	}
	v, err := decode(raw)
	if err != nil {
		return zero, malformed(c.Name(), raw, err)
	}
	return v, nil
}

// findLive decodes the live (not soft-deleted) document with the billing id, or returns
// notFound. It filters on the exact _id only and checks flag_del here, so FerretDB v1 answers
// without a collection scan.
func findLive[T any](ctx context.Context, c *mongo.Collection, id string, decode func(bson.Raw) (T, error), what string) (T, error) {
	var zero T
	raw, err := c.FindOne(ctx, byID(id)).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return zero, notFound(what, id)
	}
	if err != nil {
		return zero, opErr("find "+what, err)
	}
	if deleted, _ := raw.Lookup("flag_del").BooleanOK(); deleted {
		return zero, notFound(what, id)
	}
	v, err := decode(raw)
	if err != nil {
		return zero, malformed(c.Name(), raw, err)
	}
	return v, nil
}

func insert(ctx context.Context, c *mongo.Collection, doc bson.D, what, id string) error {
	if _, err := c.InsertOne(ctx, doc); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return conflict(what, id)
		}
		return opErr("insert "+what, err)
	}
	return nil
}

func unmarshal[T any](raw bson.Raw) (T, error) {
	var d T
	err := bson.Unmarshal(raw, &d)
	return d, err
}

// --- plans ---

type planDoc struct {
	ID           docID         `bson:"_id"`
	Name         string        `bson:"name"`
	BillingCycle string        `bson:"billing_cycle"`
	Price        bson.RawValue `bson:"price"` // read by moneyCodec
	Currency     string        `bson:"currency"`
	Active       bool          `bson:"active"`
	CreatedAt    time.Time     `bson:"created_at"`
	UpdatedAt    time.Time     `bson:"updated_at"`
	Deleted      bool          `bson:"flag_del"`
}

func (s *Store) decodePlan(raw bson.Raw) (billing.Plan, error) {
	d, err := unmarshal[planDoc](raw)
	if err != nil {
		return billing.Plan{}, err
	}
	price, err := s.money.read("price", d.Price, d.Currency)
	return billing.Plan{
		ID: string(d.ID), Name: d.Name, BillingCycle: billing.Cycle(d.BillingCycle),
		Price: price, Active: d.Active,
		CreatedAt: utc(d.CreatedAt), UpdatedAt: utc(d.UpdatedAt), Deleted: d.Deleted,
	}, err
}

func (s *Store) InsertPlan(ctx context.Context, p *billing.Plan) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.ID == "" {
		p.ID = billing.NewID()
	}
	f := &fields{}
	f.put("name", p.Name)
	f.put("billing_cycle", string(p.BillingCycle))
	f.put("price", s.money.write(p.Price.Amount, p.Price.Currency))
	f.put("currency", p.Price.Currency)
	f.put("active", p.Active)
	f.time("created_at", p.CreatedAt)
	f.time("updated_at", p.UpdatedAt)
	f.put("flag_del", p.Deleted)
	if err := insert(ctx, s.plans, f.doc(p.ID), "plan", p.ID); err != nil {
		return err
	}
	p.CreatedAt, p.UpdatedAt = utc(p.CreatedAt), utc(p.UpdatedAt)
	return nil
}

func (s *Store) GetPlan(ctx context.Context, id string) (billing.Plan, error) {
	if err := ctx.Err(); err != nil {
		return billing.Plan{}, err
	}
	return findLive(ctx, s.plans, id, s.decodePlan, "plan")
}

// ListPlans returns the live plans. A plan that does not decode (a price the configured
// Config.Money cannot read, say) is left out and reported as a *billing.RecordError, several
// joined, next to the plans it read; callers read the others, and GetPlan reports that
// plan alone.
func (s *Store) ListPlans(ctx context.Context) ([]billing.Plan, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cur, err := s.plans.Find(ctx, bson.D{notDeleted}, findOpts().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, opErr("list plans", err)
	}
	out, err := decodeEach(ctx, cur, s.plans.Name(), s.decodePlan)
	var rec *billing.RecordError
	if err != nil && !errors.As(err, &rec) {
		return nil, opErr("list plans", err)
	}
	// Ids stored as ObjectIDs and as strings sort apart on the server; order as strings.
	sortBy(out, func(p billing.Plan) string { return p.ID })
	return out, err
}

// --- users ---

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
	if err := ctx.Err(); err != nil {
		return err
	}
	if u.ID == "" {
		u.ID = billing.NewID()
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

// ListUsers reads the users with one find on {_id: {$in: ids in both forms}}.
func (s *Store) ListUsers(ctx context.Context, ids []string) ([]billing.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	cur, err := s.users.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: idValues(ids)}}}, notDeleted})
	if err != nil {
		return nil, opErr("list users", err)
	}
	return decodeEach(ctx, cur, s.users.Name(), decodeUser)
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

// --- sessions ---

type sessionDoc struct {
	ID        docID     `bson:"_id"`
	UserID    docID     `bson:"user_id"`
	ExpiresAt time.Time `bson:"expires_at"`
	CreatedAt time.Time `bson:"created_at"`
	Deleted   bool      `bson:"flag_del"`
	DeletedAt time.Time `bson:"deleted_at"`
}

func decodeSession(raw bson.Raw) (billing.Session, error) {
	d, err := unmarshal[sessionDoc](raw)
	return billing.Session{
		ID: string(d.ID), UserID: string(d.UserID), ExpiresAt: utc(d.ExpiresAt), CreatedAt: utc(d.CreatedAt),
		Deleted: d.Deleted, DeletedAt: utc(d.DeletedAt),
	}, err
}

func (s *Store) InsertSession(ctx context.Context, se *billing.Session) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if se.ID == "" {
		se.ID = billing.NewID()
	}
	f := &fields{}
	f.put("user_id", se.UserID)
	f.time("expires_at", se.ExpiresAt)
	f.time("created_at", se.CreatedAt)
	f.put("flag_del", se.Deleted)
	f.time("deleted_at", se.DeletedAt)
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

// DeleteExpiredSessions soft-deletes with one updateMany over a batch of ids; each session
// is stamped with a sweep token so concurrent callers return disjoint sets.
// liveSession selects sessions not soft-deleted by flag_del false or missing (not $ne:
// true), so the live_expires_at index skips the deleted ones, which pile up for ever.
var liveSession = bson.E{Key: "flag_del", Value: bson.D{{Key: "$in", Value: bson.A{false, nil}}}}

func (s *Store) DeleteExpiredSessions(ctx context.Context, expiredBefore, now time.Time, limit int) ([]billing.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	due := bson.D{liveSession, {Key: "expires_at", Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(expiredBefore)}}}}
	upd := func(tok string) bson.D {
		return bson.D{{Key: "$set", Value: bson.D{
			{Key: "flag_del", Value: true}, {Key: "deleted_at", Value: bson.NewDateTimeFromTime(now)}, {Key: "sweep_token", Value: tok},
		}}}
	}
	return sweepUpdate(ctx, s, s.sessions, "sessions", due, upd, limit, decodeSession)
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

// --- audit ---

type auditDoc struct {
	ID         docID     `bson:"_id"`
	Action     string    `bson:"action"`
	EntityType string    `bson:"entity_type"`
	EntityID   string    `bson:"entity_id"`
	UserID     docID     `bson:"user_id"`
	Actor      string    `bson:"actor"`
	Details    bson.Raw  `bson:"details"`
	CreatedAt  time.Time `bson:"created_at"`
}

func decodeAudit(raw bson.Raw) (billing.AuditEntry, error) {
	d, err := unmarshal[auditDoc](raw)
	if err != nil {
		return billing.AuditEntry{}, err
	}
	details, err := anyMap(d.Details)
	return billing.AuditEntry{
		ID: string(d.ID), Action: d.Action, EntityType: d.EntityType, EntityID: d.EntityID, UserID: string(d.UserID),
		Actor: d.Actor, Details: details, CreatedAt: utc(d.CreatedAt),
	}, err
}

func (s *Store) InsertAudit(ctx context.Context, e *billing.AuditEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if e.ID == "" {
		e.ID = billing.NewID()
	}
	if err := insert(ctx, s.audit, auditFields(*e), "audit entry", e.ID); err != nil {
		return err
	}
	e.CreatedAt = utc(e.CreatedAt)
	return nil
}

func auditFields(e billing.AuditEntry) bson.D {
	f := &fields{}
	f.put("action", e.Action)
	f.put("entity_type", e.EntityType)
	f.put("entity_id", e.EntityID)
	f.optStr("user_id", e.UserID)
	f.put("actor", e.Actor)
	f.optAny("details", e.Details, len(e.Details) == 0)
	f.time("created_at", e.CreatedAt)
	f.put("seq", bson.NewObjectID()) // insertion order among equal created_at
	return f.doc(e.ID)
}

// InsertAudits inserts the entries with unordered insertMany commands of at most BatchSize
// documents; an entry whose _id is stored already (a duplicate key) is skipped.
func (s *Store) InsertAudits(ctx context.Context, entries []billing.AuditEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for start := 0; start < len(entries); start += s.cfg.BatchSize {
		part := entries[start:min(start+s.cfg.BatchSize, len(entries))]
		docs := make([]any, len(part))
		for i, e := range part {
			if e.ID == "" {
				e.ID = billing.NewID()
			}
			docs[i] = auditFields(e)
		}
		if _, err := s.audit.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false)); err != nil {
			if _, err := duplicates(err); err != nil {
				return opErr("insert audit entries", err)
			}
		}
	}
	return nil
}

// duplicates returns the indexes of the documents an unordered insertMany or bulkWrite
// failed on with a duplicate key, and err itself when it holds anything else.
func duplicates(err error) (map[int]bool, error) {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return nil, err
	}
	dup := map[int]bool{}
	for _, we := range bwe.WriteErrors {
		if !mongo.IsDuplicateKeyError(we.WriteError) {
			return nil, err
		}
		dup[we.Index] = true
	}
	return dup, nil
}

func auditQuery(f billing.AuditFilter) bson.D {
	q := bson.D{}
	if f.Action != "" {
		q = append(q, bson.E{Key: "action", Value: f.Action})
	}
	if f.EntityID != "" {
		q = append(q, bson.E{Key: "entity_id", Value: f.EntityID})
	}
	if !f.Since.IsZero() {
		q = append(q, bson.E{Key: "created_at", Value: bson.D{{Key: "$gte", Value: bson.NewDateTimeFromTime(f.Since)}}})
	}
	return q
}

// CountAudit implements billing.AuditCounter: matching entries, counted by the server.
func (s *Store) CountAudit(ctx context.Context, f billing.AuditFilter) (int, error) {
	n, err := s.audit.CountDocuments(ctx, auditQuery(f))
	if err != nil {
		return 0, opErr("count audit", err)
	}
	return int(n), nil
}

func (s *Store) ListAudit(ctx context.Context, f billing.AuditFilter) ([]billing.AuditEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	q := auditQuery(f)
	o := findOpts().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "seq", Value: 1}})
	if f.Limit > 0 {
		o.SetLimit(int64(f.Limit))
	}
	cur, err := s.audit.Find(ctx, q, o)
	if err != nil {
		return nil, opErr("list audit", err)
	}
	out, err := decodeAll(ctx, cur, decodeAudit)
	if err != nil {
		return nil, opErr("list audit", err)
	}
	return out, nil
}

// --- notifications ---

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

// --- job runs ---

type runDoc struct {
	ID           docID     `bson:"_id"`
	JobID        string    `bson:"job_id"`
	Trigger      string    `bson:"trigger"`
	Status       string    `bson:"status"`
	StartedAt    time.Time `bson:"started_at"`
	FinishedAt   time.Time `bson:"finished_at"`
	DurationMS   int64     `bson:"duration_ms"`
	Result       bson.Raw  `bson:"result"`
	Error        string    `bson:"error"`
	Replica      string    `bson:"replica"`
	ScheduledFor time.Time `bson:"scheduled_for"`
}

func decodeRun(raw bson.Raw) (billing.JobRun, error) {
	d, err := unmarshal[runDoc](raw)
	if err != nil {
		return billing.JobRun{}, err
	}
	res, err := anyMap(d.Result)
	return billing.JobRun{
		ID: string(d.ID), JobID: d.JobID, Trigger: billing.RunTrigger(d.Trigger), Status: billing.RunStatus(d.Status),
		StartedAt: utc(d.StartedAt), FinishedAt: utc(d.FinishedAt), DurationMS: d.DurationMS, Result: res,
		Error: d.Error, Replica: d.Replica, ScheduledFor: utc(d.ScheduledFor),
	}, err
}

func runFields(r billing.JobRun) *fields {
	f := &fields{}
	f.put("job_id", r.JobID)
	f.put("trigger", string(r.Trigger))
	f.put("status", string(r.Status))
	f.time("started_at", r.StartedAt)
	f.time("finished_at", r.FinishedAt)
	f.put("duration_ms", r.DurationMS)
	f.optAny("result", r.Result, len(r.Result) == 0)
	f.optStr("error", r.Error)
	f.optStr("replica", r.Replica)
	f.time("scheduled_for", r.ScheduledFor)
	return f
}

func (s *Store) InsertJobRun(ctx context.Context, r *billing.JobRun) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.ID == "" {
		r.ID = billing.NewID()
	}
	if err := insert(ctx, s.runs, runFields(*r).doc(r.ID), "job run", r.ID); err != nil {
		return err
	}
	r.StartedAt, r.FinishedAt, r.ScheduledFor = utc(r.StartedAt), utc(r.FinishedAt), utc(r.ScheduledFor)
	return nil
}

func (s *Store) UpdateJobRun(ctx context.Context, r billing.JobRun) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	res, err := s.runs.UpdateOne(ctx, byID(r.ID), runFields(r).update())
	if err != nil {
		return opErr("update job run", err)
	}
	if res.MatchedCount == 0 {
		return notFound("job run", r.ID)
	}
	return nil
}

func (s *Store) ListJobRuns(ctx context.Context, f billing.JobRunFilter) ([]billing.JobRun, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	q := bson.D{}
	if f.JobID != "" {
		q = append(q, bson.E{Key: "job_id", Value: f.JobID})
	}
	if !f.Since.IsZero() {
		q = append(q, bson.E{Key: "started_at", Value: bson.D{{Key: "$gte", Value: bson.NewDateTimeFromTime(f.Since)}}})
	}
	o := findOpts().SetSort(bson.D{{Key: "started_at", Value: -1}, {Key: "_id", Value: -1}})
	if f.Limit > 0 {
		o.SetLimit(int64(f.Limit))
	}
	cur, err := s.runs.Find(ctx, q, o)
	if err != nil {
		return nil, opErr("list job runs", err)
	}
	out, err := decodeAll(ctx, cur, decodeRun)
	if err != nil {
		return nil, opErr("list job runs", err)
	}
	return out, nil
}

func (s *Store) DeleteJobRunsBefore(ctx context.Context, t time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	res, err := s.runs.DeleteMany(ctx, bson.D{{Key: "started_at", Value: bson.D{{Key: "$lt", Value: bson.NewDateTimeFromTime(t)}}}})
	if err != nil {
		return 0, opErr("delete job runs", err)
	}
	return int(res.DeletedCount), nil
}

// --- job state ---

type stateDoc struct {
	JobID                string    `bson:"_id"`
	Paused               bool      `bson:"paused"`
	PausedAt             time.Time `bson:"paused_at"`
	ConsecutiveFailures  int       `bson:"consecutive_failures"`
	LastScheduledSuccess time.Time `bson:"last_scheduled_success"`
	Alerts               []string  `bson:"alerts"`
	UpdatedAt            time.Time `bson:"updated_at"`
	Version              int64     `bson:"version"` // missing in documents written before versions: 0
}

func decodeState(raw bson.Raw) (billing.JobState, error) {
	d, err := unmarshal[stateDoc](raw)
	return billing.JobState{
		JobID: d.JobID, Paused: d.Paused, PausedAt: utc(d.PausedAt), ConsecutiveFailures: d.ConsecutiveFailures,
		LastScheduledSuccess: utc(d.LastScheduledSuccess), Alerts: d.Alerts, UpdatedAt: utc(d.UpdatedAt),
		Version: d.Version,
	}, err
}

func (s *Store) GetJobState(ctx context.Context, jobID string) (billing.JobState, error) {
	if err := ctx.Err(); err != nil {
		return billing.JobState{}, err
	}
	st, err := findOne(ctx, s.states, bson.D{{Key: "_id", Value: jobID}}, decodeState, "job state", jobID)
	if errors.Is(err, billing.ErrNotFound) {
		return billing.JobState{JobID: jobID}, nil
	}
	return st, err
}

// PutJobState stores st when the stored version is st.Version (0: none stored) and writes
// version st.Version+1; otherwise it returns billing.ErrConflict. Of two writers racing on
// one version, one wins.
func (s *Store) PutJobState(ctx context.Context, st billing.JobState) error {
	// Implementation:
	// PutJobState replaces the document {_id: job id} when its version is st.Version (a
	// missing field is version 0) and writes version st.Version+1. For version 0 the replace
	// upserts: when a document with another version exists, the filter misses and the insert
	// collides with it on _id, which is reported as ErrConflict; of two writers racing to
	// create the document the unique _id lets one win. On MongoDB the filter is checked
	// atomically with the write. FerretDB v1 reads, then rewrites, without re-checking it, so
	// in ClaimSerialized mode the check and write run under the store-level mutex
	// "job_state/<job id>" (as claim rounds do), which serialises the writers of all Stores in
	// that mode.
	if err := ctx.Err(); err != nil {
		return err
	}
	if st.JobID == "" {
		return opErr("put job state", errors.Join(errors.New("job state without job id"), billing.ErrInvalidInput))
	}
	f := &fields{}
	f.put("paused", st.Paused)
	f.time("paused_at", st.PausedAt)
	f.put("consecutive_failures", st.ConsecutiveFailures)
	f.time("last_scheduled_success", st.LastScheduledSuccess)
	f.optAny("alerts", st.Alerts, len(st.Alerts) == 0)
	f.time("updated_at", st.UpdatedAt)
	f.put("version", st.Version+1)
	doc := append(bson.D{{Key: "_id", Value: st.JobID}}, f.set...)
	filter := bson.D{{Key: "_id", Value: st.JobID}, versionIs(st.Version)}
	stale := func() error {
		return fmt.Errorf("mongostore: job state %q changed since version %d was read: %w", st.JobID, st.Version, billing.ErrConflict)
	}
	return s.exclusive(ctx, "job_state/"+st.JobID, func() error {
		res, err := s.states.ReplaceOne(ctx, filter, doc, options.Replace().SetUpsert(st.Version == 0))
		switch {
		case mongo.IsDuplicateKeyError(err):
			return stale()
		case err != nil:
			return opErr("put job state", err)
		case res.MatchedCount == 0 && res.UpsertedCount == 0:
			return stale()
		}
		return nil
	})
}

// CountExpiredSessions implements billing.CleanupCounter.
func (s *Store) CountExpiredSessions(ctx context.Context, t time.Time) (int, error) {
	n, err := s.sessions.CountDocuments(ctx, bson.D{liveSession, {Key: "expires_at", Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(t)}}}})
	if err != nil {
		return 0, opErr("count expired sessions", err)
	}
	return int(n), nil
}

// CountStalePayments implements billing.CleanupCounter.
func (s *Store) CountStalePayments(ctx context.Context, t time.Time) (int, error) {
	n, err := s.payments.CountDocuments(ctx, bson.D{notDeleted, {Key: "status", Value: string(billing.PaymentStatusPending)},
		{Key: "created_at", Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(t)}}}})
	if err != nil {
		return 0, opErr("count stale payments", err)
	}
	return int(n), nil
}
