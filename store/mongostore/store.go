package mongostore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
)

// billing.Store and the optional capabilities mongostore implements (declared in
// billing/store.go).
var (
	_ billing.Store          = (*Store)(nil)
	_ billing.CleanupCounter = (*Store)(nil)
	_ billing.AuditCounter   = (*Store)(nil)
	_ billing.Console        = (*Store)(nil)
	_ billing.SnapshotStore  = (*Store)(nil)
	_ billing.Pruner         = (*Store)(nil)
	_ billing.LockInspector  = (*Store)(nil)
	_ billing.Pinger         = (*Store)(nil)
)

// Store implements billing.Store on a MongoDB database (or a server speaking its wire
// protocol, such as FerretDB). It is safe for concurrent use, and several Stores (replicas)
// may share one database.
type Store struct {
	db  *mongo.Database
	cfg Config

	money         moneyCodec
	paymentFields fieldSet[billing.Payment]

	users, plans, subs, payments, sessions, audit *mongo.Collection
	runs, states, events, locks, notifications    *mongo.Collection
	snapshots                                     *mongo.Collection

	modeMu   sync.Mutex
	mode     ClaimMode // ClaimAuto until known
	pushdown pushdown  // whether the server pushes field filters down; pushdownUnknown until known

	local sync.Map // mutex name -> chan struct{} (cap 1): this Store's goroutines queue here
}

// New returns a store on db. It does no I/O; call EnsureIndexes once at start (it is
// idempotent) and Ping for readiness.
func New(db *mongo.Database, cfg Config) (*Store, error) {
	var errs []error
	if db == nil {
		errs = append(errs, errors.New("missing database: pass client.Database(name) from a connected *mongo.Client"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("mongostore: invalid configuration: %w", err)
	}
	cfg = cfg.withDefaults()
	c := cfg.Collections
	s := &Store{
		db: db, cfg: cfg,
		users: db.Collection(c.Users), plans: db.Collection(c.Plans), subs: db.Collection(c.Subscriptions),
		payments: db.Collection(c.Payments), sessions: db.Collection(c.Sessions), audit: db.Collection(c.Audit),
		runs: db.Collection(c.JobRuns), states: db.Collection(c.JobStates), events: db.Collection(c.WebhookEvents),
		locks: db.Collection(c.Locks), notifications: db.Collection(c.Notifications), snapshots: db.Collection(c.Snapshots),
	}
	s.mode = cfg.ClaimMode
	s.money = cfg.money()
	s.paymentFields = paymentFields(s.money)
	return s, nil
}

// Database returns the database the store works on.
func (s *Store) Database() *mongo.Database { return s.db }

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		return fmt.Errorf("mongostore: ping: %w", err)
	}
	return nil
}

// ClaimMode reports the effective claim mode, asking the server once when the
// configuration says ClaimAuto.
func (s *Store) ClaimMode(ctx context.Context) (ClaimMode, error) {
	s.modeMu.Lock()
	defer s.modeMu.Unlock()
	if s.mode != ClaimAuto {
		return s.mode, nil
	}
	var info bson.M
	err := s.db.Client().Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info)
	if err != nil {
		return ClaimAuto, fmt.Errorf("mongostore: buildInfo (to choose the claim mode; set Config.ClaimMode to skip): %w", err)
	}
	s.mode = ClaimAtomic
	if _, ok := info["ferretdbVersion"]; ok {
		s.mode = ClaimSerialized
	}
	return s.mode, nil
}

// pushdown says whether the server hands an equality filter on a field other than _id to its
// backend (filterPushdown in its explain).
type pushdown int8

const (
	pushdownUnknown pushdown = iota
	pushdownFields           // FerretDB v1 on PostgreSQL
	pushdownIDOnly           // FerretDB v1 on SQLite, or a server whose explain does not say
)

// pushesFieldFilters reports whether the server pushes an equality filter on a field other
// than _id down to its backend, asked once by explaining such a find on c: FerretDB v1 on
// PostgreSQL does (a query by any scalar field costs one scan inside PostgreSQL and returns
// only the matching documents), on SQLite it does not (anything but {_id: value} makes
// FerretDB decode the whole collection). The answer is kept once the collection exists (the
// explain of a missing collection says nothing); an error reads as no.
func (s *Store) pushesFieldFilters(ctx context.Context, c *mongo.Collection) bool {
	s.modeMu.Lock()
	known := s.pushdown
	s.modeMu.Unlock()
	if known != pushdownUnknown {
		return known == pushdownFields
	}
	var res struct {
		QueryPlanner   bson.Raw `bson:"queryPlanner"`
		FilterPushdown bool     `bson:"filterPushdown"`
	}
	cmd := bson.D{{Key: "explain", Value: bson.D{{Key: "find", Value: c.Name()},
		{Key: "filter", Value: bson.D{{Key: "write_token", Value: "pushdown-probe"}}}}},
		{Key: "verbosity", Value: "queryPlanner"}}
	if err := s.db.RunCommand(ctx, cmd).Decode(&res); err != nil {
		return false
	}
	if !res.FilterPushdown && len(res.QueryPlanner) <= 5 {
		return false // an empty plan: the collection does not exist yet
	}
	known = pushdownIDOnly
	if res.FilterPushdown {
		known = pushdownFields
	}
	s.modeMu.Lock()
	s.pushdown = known
	s.modeMu.Unlock()
	return known == pushdownFields
}

// byEachID reports whether the documents of a batch on c go one _id at a time rather than
// in one statement: Config.FerretDBIDIndex on a server that pushes field filters down.
func (s *Store) byEachID(ctx context.Context, c *mongo.Collection) bool {
	return s.cfg.FerretDBIDIndex && s.pushesFieldFilters(ctx, c)
}

// exclusive runs fn while holding the store-level mutex name when the claim mode is
// ClaimSerialized, and directly otherwise.
func (s *Store) exclusive(ctx context.Context, name string, fn func() error) error {
	mode, err := s.ClaimMode(ctx)
	if err != nil {
		return err
	}
	if mode != ClaimSerialized {
		return fn()
	}
	// Goroutines of this Store take turns locally first, so only one of them at a time
	// polls the shared lease.
	v, _ := s.local.LoadOrStore(name, make(chan struct{}, 1))
	turn := v.(chan struct{})
	select {
	case turn <- struct{}{}:
		defer func() { <-turn }()
	case <-ctx.Done():
		return fmt.Errorf("mongostore: waiting for %s: %w", name, ctx.Err())
	}
	key := "mongostore.mutex/" + name
	owner := newToken()
	backoff := 2 * time.Millisecond
	var lease billing.Lease
	for {
		lease, err = s.acquireMutex(ctx, key, owner, time.Now(), s.cfg.MutexTTL)
		if err == nil {
			break
		}
		if !errors.Is(err, billing.ErrLockHeld) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mongostore: waiting for %s: %w", key, ctx.Err())
		case <-time.After(backoff + jitter(backoff)):
		}
		backoff = min(backoff*2, 100*time.Millisecond)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = s.releaseMutex(rctx, lease) // on failure the lease expires after MutexTTL
	}()
	return fn()
}

func jitter(d time.Duration) time.Duration {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(d)+1))
	if err != nil {
		return 0
	}
	return time.Duration(n.Int64())
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// --- errors ---

func notFound(kind, id string) error {
	return fmt.Errorf("mongostore: %s %q: %w", kind, id, billing.ErrNotFound)
}

func conflict(kind, id string) error {
	return fmt.Errorf("mongostore: %s %q: %w", kind, id, billing.ErrConflict)
}

func opErr(op string, err error) error {
	return fmt.Errorf("mongostore: %s: %w", op, err)
}

// --- ids ---

// isOIDHex reports whether id is 24 lowercase hex digits, the form billing.NewID returns
// and bson.ObjectID.Hex prints. Such ids are stored as ObjectIDs, as in the legacy schema.
func isOIDHex(id string) bool {
	if len(id) != 24 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// idValue is the _id stored for a billing id.
func idValue(id string) any {
	if isOIDHex(id) {
		oid, err := bson.ObjectIDFromHex(id)
		if err == nil {
			return oid
		}
	}
	return id
}

// idMatch matches a reference stored either as an ObjectID or as a string.
func idMatch(id string) any {
	if isOIDHex(id) {
		oid, _ := bson.ObjectIDFromHex(id)
		return bson.D{{Key: "$in", Value: bson.A{oid, id}}}
	}
	return id
}

// idValues lists each id in both forms it may be stored in, for $in (see idMatch).
func idValues(ids []string) bson.A {
	in := make(bson.A, 0, 2*len(ids))
	for _, id := range ids {
		if isOIDHex(id) {
			oid, _ := bson.ObjectIDFromHex(id)
			in = append(in, oid)
		}
		in = append(in, id)
	}
	return in
}

// byID matches a record by its billing id: a 24-hex id as the ObjectID the original
// application and renewkit store, any other id as a string. An exact _id match lets FerretDB push the filter
// down to SQLite instead of scanning the collection.
func byID(id string) bson.D { return bson.D{{Key: "_id", Value: idValue(id)}} }

// docID reads an _id or reference stored as an ObjectID or a string.
type docID string

// UnmarshalBSONValue implements bson.ValueUnmarshaler.
func (d *docID) UnmarshalBSONValue(typ byte, data []byte) error {
	rv := bson.RawValue{Type: bson.Type(typ), Value: data}
	switch rv.Type {
	case bson.TypeObjectID:
		*d = docID(rv.ObjectID().Hex())
	case bson.TypeString:
		*d = docID(rv.StringValue())
	case bson.TypeNull, bson.TypeUndefined:
		*d = ""
	case bson.TypeInt32, bson.TypeInt64:
		*d = docID(fmt.Sprint(rv.AsInt64()))
	default:
		return fmt.Errorf("id of BSON type %s, want objectId or string", rv.Type)
	}
	return nil
}

// malformed reports a document that does not decode.
func malformed(collection string, raw bson.Raw, err error) *billing.RecordError {
	return &billing.RecordError{Collection: collection, ID: rawID(raw), Err: fmt.Errorf("%w: %v", billing.ErrMalformedRecord, err)}
}

// rawID renders the _id of a raw document for error messages.
func rawID(raw bson.Raw) string {
	v, err := raw.LookupErr("_id")
	if err != nil {
		return "<no _id>"
	}
	return rawValueID(v)
}

// rawValueID renders a stored _id as the billing id it reads as.
func rawValueID(v bson.RawValue) string {
	var d docID
	if err := d.UnmarshalBSONValue(byte(v.Type), v.Value); err != nil {
		return v.String()
	}
	return string(d)
}

// --- encoding ---

// fields builds the $set and $unset parts of an update, and insert documents: empty
// optional values are left out (unset), so documents follow the legacy schema.
type fields struct {
	set, unset bson.D
	refs       []refWrite // references, resolved against the stored document (bulkOp.typed)
}

func (f *fields) put(k string, v any) { f.set = append(f.set, bson.E{Key: k, Value: v}) }

func (f *fields) drop(k string) { f.unset = append(f.unset, bson.E{Key: k, Value: ""}) }

func (f *fields) optStr(k, v string) {
	if v == "" {
		f.drop(k)
		return
	}
	f.put(k, v)
}

// time stores t as a UTC BSON date at millisecond precision; zero drops the field.
func (f *fields) time(k string, t time.Time) {
	if t.IsZero() {
		f.drop(k)
		return
	}
	f.put(k, bson.NewDateTimeFromTime(t))
}

func (f *fields) optAny(k string, v any, empty bool) {
	if empty {
		f.drop(k)
		return
	}
	f.put(k, v)
}

// doc returns an insert document with _id first.
func (f *fields) doc(id string) bson.D {
	d := make(bson.D, 0, len(f.set)+1)
	d = append(d, bson.E{Key: "_id", Value: idValue(id)})
	return append(d, f.set...)
}

// update returns {$set: ..., $unset: ...} with empty parts left out.
func (f *fields) update(extra ...bson.E) bson.D {
	u := bson.D{}
	if len(f.set) > 0 {
		u = append(u, bson.E{Key: "$set", Value: f.set})
	}
	if len(f.unset) > 0 {
		u = append(u, bson.E{Key: "$unset", Value: f.unset})
	}
	return append(u, extra...)
}

// --- decoding ---

// decodeEach decodes every document of cur with decode, closing it. Documents that do not
// decode are reported as *billing.RecordError (joined) next to the others.
func decodeEach[T any](ctx context.Context, cur *mongo.Cursor, collection string, decode func(bson.Raw) (T, error)) ([]T, error) {
	defer cur.Close(ctx)
	var out []T
	var bad []error
	for cur.Next(ctx) {
		v, err := decode(cur.Current)
		if err != nil {
			bad = append(bad, malformed(collection, cur.Current, err))
			continue
		}
		out = append(out, v)
	}
	if err := cur.Err(); err != nil {
		return out, err
	}
	return out, errors.Join(bad...)
}

// decodeAll decodes every document of cur with decode, closing it.
func decodeAll[T any](ctx context.Context, cur *mongo.Cursor, decode func(bson.Raw) (T, error)) ([]T, error) {
	defer cur.Close(ctx)
	var out []T
	for cur.Next(ctx) {
		v, err := decode(cur.Current)
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, cur.Err()
}

func utc(t time.Time) time.Time { return billing.TruncateTime(t) }

// anyMap converts a stored sub-document to the plain Go values billing uses: int32 and
// int64 become int, dates time.Time in UTC, documents map[string]any, arrays []any.
func anyMap(raw bson.Raw) (map[string]any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	elems, err := raw.Elements()
	if err != nil {
		return nil, err
	}
	if len(elems) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(elems))
	for _, e := range elems {
		v, err := anyValue(e.Value())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Key(), err)
		}
		out[e.Key()] = v
	}
	return out, nil
}

func anyValue(v bson.RawValue) (any, error) {
	switch v.Type {
	case bson.TypeInt32:
		return int(v.Int32()), nil
	case bson.TypeInt64:
		return int(v.Int64()), nil
	case bson.TypeDouble:
		return v.Double(), nil
	case bson.TypeString:
		return v.StringValue(), nil
	case bson.TypeBoolean:
		return v.Boolean(), nil
	case bson.TypeNull, bson.TypeUndefined:
		return nil, nil
	case bson.TypeDateTime:
		return utc(v.Time()), nil
	case bson.TypeObjectID:
		return v.ObjectID().Hex(), nil
	case bson.TypeEmbeddedDocument:
		return anyMap(v.Document())
	case bson.TypeArray:
		vals, err := v.Array().Values()
		if err != nil {
			return nil, err
		}
		out := make([]any, len(vals))
		for i, x := range vals {
			if out[i], err = anyValue(x); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	var x any
	if err := v.Unmarshal(&x); err != nil {
		return nil, err
	}
	return x, nil
}

// --- query helpers ---

func findOpts() *options.FindOptionsBuilder { return options.Find() }

// notDeleted matches documents without flag_del: true (missing counts as live, as in the
// legacy schema).
var notDeleted = bson.E{Key: "flag_del", Value: bson.D{{Key: "$ne", Value: true}}}

// versionIs matches a stored version, treating a missing field as version 0 (with $in
// rather than $or, which FerretDB v1 answers with a collection scan).
func versionIs(v int64) bson.E {
	if v == 0 {
		return bson.E{Key: "version", Value: bson.D{{Key: "$in", Value: bson.A{int64(0), nil}}}}
	}
	return bson.E{Key: "version", Value: v}
}
