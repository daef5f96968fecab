package mongostore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
)

// Conditional writes of named fields
//
// A change names the fields it writes (billing.ChangedSubscriptionFields, ...). One table
// per record type says how each field is stored and matched, so inserts, $set/$unset and
// the "still as read" condition agree. Conditions avoid $or (FerretDB v1 scans the
// collection for a top-level $or and pushes down only an exact _id): an empty value read
// matches a missing or null field with $in, false with $ne: true.

// kind says how a field is stored and matched.
type kind int

const (
	kindStr   kind = iota // string; "" matches "", missing and null
	kindRef               // id reference stored as a string, matched as ObjectID or string
	kindTime              // UTC date at millisecond precision; zero is left out
	kindFlag              // bool; false matches false, missing and null
	kindInt               // int or int64; 0 matches 0, missing and null
	kindStrs              // []string; empty is left out and matches missing, null and []
	kindMoney             // amountValue: stored as Config.Money says (see money.go)
)

// docField is one document field of a record of type T.
type docField[T any] struct {
	name string
	kind kind
	opt  bool // an empty string or 0 is left out of inserts and $unset by updates
	get  func(T) any
}

type fieldSet[T any] []docField[T]

func (fs fieldSet[T]) field(name string) (docField[T], error) {
	for _, f := range fs {
		if f.name == name {
			return f, nil
		}
	}
	return docField[T]{}, fmt.Errorf("mongostore: no document field %q: %w", name, billing.ErrInvalidInput)
}

// encode returns the stored value of f in x; ok is false when the field is left out.
func (f docField[T]) encode(x T) (v any, ok bool) {
	switch v := f.get(x).(type) {
	case string:
		return v, v != "" || !f.opt
	case time.Time:
		return bson.NewDateTimeFromTime(v), !v.IsZero()
	case int:
		return int64(v), v != 0 || !f.opt
	case int64:
		return v, v != 0 || !f.opt
	case []string:
		return v, len(v) > 0
	case amountValue:
		return v.codec.write(v.minor, v.currency), true
	case currencyValue:
		return v.currency, v.currency != "" || !f.opt
	default:
		return v, true
	}
}

// match returns the condition that the stored field still holds f's value in x.
func (f docField[T]) match(x T) any {
	switch v := f.get(x).(type) {
	case string:
		switch {
		case v == "":
			return bson.D{{Key: "$in", Value: bson.A{"", nil}}}
		case f.kind == kindRef:
			return idMatch(v)
		}
		return v
	case time.Time:
		if v.IsZero() {
			return bson.D{{Key: "$in", Value: bson.A{nil}}}
		}
		return bson.NewDateTimeFromTime(v)
	case bool:
		if !v {
			return bson.D{{Key: "$ne", Value: true}}
		}
		return true
	case int, int64:
		n, _ := v.(int64)
		if i, ok := v.(int); ok {
			n = int64(i)
		}
		if n == 0 {
			return bson.D{{Key: "$in", Value: bson.A{int64(0), nil}}}
		}
		return n
	case []string:
		if len(v) == 0 {
			return bson.D{{Key: "$in", Value: bson.A{nil, bson.A{}}}}
		}
		return v
	case amountValue:
		return v.codec.match(v.minor, v.currency)
	case currencyValue:
		return v.match()
	}
	return f.get(x)
}

// doc encodes every field of x for an insert, with references stored as refs says.
func (fs fieldSet[T]) doc(x T, refs References) *fields {
	f := &fields{}
	for _, df := range fs {
		if v, ok := df.encode(x); ok {
			if id, isRef := v.(string); isRef && df.kind == kindRef && id != "" {
				v = refs.value(id)
			}
			f.put(df.name, v)
		}
	}
	return f
}

// cond appends to q, for each name (once), that the stored field still has read's value.
func (fs fieldSet[T]) cond(q bson.D, read T, names ...string) (bson.D, error) {
	for _, n := range names {
		if slices.ContainsFunc(q, func(e bson.E) bool { return e.Key == n }) {
			continue
		}
		f, err := fs.field(n)
		if err != nil {
			return nil, err
		}
		q = append(q, bson.E{Key: n, Value: f.match(read)})
	}
	return q, nil
}

// set returns the $set and $unset of the named fields as changed has them. References
// are left to the write (fields.refs), which stores each in the type the document holds.
func (fs fieldSet[T]) set(changed T, names []string) (*fields, error) {
	u := &fields{}
	for _, n := range names {
		f, err := fs.field(n)
		if err != nil {
			return nil, err
		}
		if f.kind == kindRef {
			id, _ := f.get(changed).(string)
			u.refs = append(u.refs, refWrite{name: n, id: id})
			continue
		}
		if v, ok := f.encode(changed); ok {
			u.put(n, v)
		} else {
			u.drop(n)
		}
	}
	return u, nil
}

// changed returns the names of the fields whose stored values differ between a and b.
func (fs fieldSet[T]) changed(a, b T) []string {
	var out []string
	for _, f := range fs {
		if !f.same(a, b) {
			out = append(out, f.name)
		}
	}
	return out
}

// same reports whether a and b store the named fields alike, skipping the except ones.
func (fs fieldSet[T]) same(a, b T, names []string, except ...string) bool {
	for _, f := range fs {
		if slices.Contains(names, f.name) && !slices.Contains(except, f.name) && !f.same(a, b) {
			return false
		}
	}
	return true
}

func (f docField[T]) same(a, b T) bool {
	va, oka := f.encode(a)
	vb, okb := f.encode(b)
	return oka == okb && (!oka || reflect.DeepEqual(va, vb))
}

// Batches
//
// A batch is a list of conditional writes by _id. On MongoDB (ClaimAtomic) the server checks
// each condition: the filter is {_id, <condition>}. FerretDB v1 pushes a filter down to
// SQLite only when it is exactly {_id: value}; any other field makes each update scan and
// decode the whole collection, so a batch would cost O(batch x collection). In
// ClaimSerialized mode on such a server, where every renewkit write to the collection holds
// its write mutex, the store therefore reads each document by _id, checks the condition
// itself (matches) and writes by _id alone. FerretDB v1 on PostgreSQL pushes every scalar
// equality down (any query costs one scan inside PostgreSQL, whose btree indexes FerretDB's
// jsonb containment filter cannot use, and returns only the matching rows), so there the
// filter is {_id, <condition>} as on MongoDB: one scan per write instead of two, the mutex
// still serialising renewkit's writers. Writes by others than renewkit (the host
// application) are not serialised either way: FerretDB v1 does not re-check a filter when
// it writes.

// maxBulkOps bounds the operations of one bulkWrite. FerretDB v1 holds a backend
// connection per statement until the whole command ends and needs one more to write, so a
// bulkWrite of as many statements as its pool has connections waits for ever: 100 on
// SQLite, 50 on PostgreSQL by default.
const maxBulkOps = 48

func (s *Store) bulkSize() int { return min(s.cfg.BatchSize, maxBulkOps) }

// writeMutex names the store mutex every renewkit write to c's documents holds in
// ClaimSerialized mode (see exclusive).
func writeMutex(c *mongo.Collection) string { return "write/" + c.Name() }

// bulkOp is one conditional write of a batch.
type bulkOp struct {
	i    int        // index of the change in the caller's slice
	id   string     // the record's id, as results and errors name it
	idv  any        // the stored _id
	cond bson.D     // what the document must still hold, besides its _id
	upd  bson.D     // the update; nil deletes the document
	refs []refWrite // references to set in the type the document stores them in
}

// refWrite is a reference field a change sets ("" clears it).
type refWrite struct{ name, id string }

// typed returns op with its references resolved against doc, the document as stored: a
// reference keeps the BSON type it has there (ObjectID or string), a cleared one becomes
// null (as the original app writes None), and one written where none is stored (missing
// or null) takes the configured type. The condition on each such field becomes the exact
// stored value, so the type chosen is the type still stored when the write applies. A
// document that no longer holds what op's condition expects keeps that condition, and
// the write fails as a conflict.
func (op bulkOp) typed(doc bson.Raw, refs References) bulkOp {
	if len(op.refs) == 0 || doc == nil {
		return op
	}
	cond := slices.Clone(op.cond)
	var set bson.D
	for _, r := range op.refs {
		stored, err := doc.LookupErr(r.name)
		missing := err != nil
		i := slices.IndexFunc(cond, func(e bson.E) bool { return e.Key == r.name })
		if i >= 0 && !fieldMatches(stored, cond[i].Value) {
			continue // a conflict: the write will not apply
		}
		exact := any(nil)
		switch {
		case missing:
			exact = bson.D{{Key: "$exists", Value: false}}
		case stored.Type != bson.TypeNull && stored.Type != bson.TypeUndefined:
			exact = stored
		}
		if i >= 0 {
			cond[i].Value = exact
		} else {
			cond = append(cond, bson.E{Key: r.name, Value: exact})
		}
		switch {
		case r.id == "" && (missing || exact == nil):
			// Nothing stored and nothing to store.
		case r.id == "":
			set = append(set, bson.E{Key: r.name, Value: nil})
		case stored.Type == bson.TypeObjectID:
			set = append(set, bson.E{Key: r.name, Value: idValue(r.id)})
		case stored.Type == bson.TypeString:
			set = append(set, bson.E{Key: r.name, Value: r.id})
		default:
			set = append(set, bson.E{Key: r.name, Value: refs.value(r.id)})
		}
	}
	op.cond, op.refs = cond, nil
	op.upd = withSet(op.upd, set)
	return op
}

// withClears returns op with each reference it clears written as null in its update, when
// its condition holds that field to a value read (not empty): the condition already says
// the stored value is the one read, in whichever type, and a cleared reference becomes
// null whatever its type was (see typed), so no read of the document is needed for it.
// Only a reference set to an id needs the stored document, for the type to keep.
func (op bulkOp) withClears() bulkOp {
	var set bson.D
	var rest []refWrite
	for _, r := range op.refs {
		i := slices.IndexFunc(op.cond, func(e bson.E) bool { return e.Key == r.name })
		if r.id != "" || i < 0 || matchesEmpty(op.cond[i].Value) {
			rest = append(rest, r)
			continue
		}
		set = append(set, bson.E{Key: r.name, Value: nil})
	}
	if len(set) == 0 {
		return op
	}
	op.refs = rest
	op.upd = withSet(op.upd, set)
	return op
}

// matchesEmpty reports whether a field condition from docField.match accepts an empty
// value ("", missing or null).
func matchesEmpty(v any) bool {
	d, ok := v.(bson.D)
	if !ok || len(d) != 1 || d[0].Key != "$in" {
		return false
	}
	in, _ := d[0].Value.(bson.A)
	return slices.ContainsFunc(in, func(x any) bool { return x == nil || x == "" })
}

// withSet returns upd with the fields of set added to its $set.
func withSet(upd, set bson.D) bson.D {
	if len(set) == 0 {
		return upd
	}
	out := slices.Clone(upd)
	for i, e := range out {
		if e.Key == "$set" {
			out[i].Value = append(slices.Clone(e.Value.(bson.D)), set...)
			return out
		}
	}
	return append(bson.D{{Key: "$set", Value: set}}, out...)
}

func (op bulkOp) model(withCond bool) mongo.WriteModel {
	filter := bson.D{{Key: "_id", Value: op.idv}}
	if withCond {
		filter = append(filter, op.cond...)
	}
	if op.upd == nil {
		return mongo.NewDeleteOneModel().SetFilter(filter)
	}
	return mongo.NewUpdateOneModel().SetFilter(filter).SetUpdate(op.upd)
}

// chunks splits ops into bulkWrites of at most size operations, none naming one document
// twice, so the result of each operation can be read from its document.
func chunks(ops []bulkOp, size int) [][]bulkOp {
	var out [][]bulkOp
	var cur []bulkOp
	seen := map[string]bool{}
	for _, op := range ops {
		if len(cur) == size || seen[op.id] {
			out = append(out, cur)
			cur, seen = nil, map[string]bool{}
		}
		cur = append(cur, op)
		seen[op.id] = true
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// bulkApply runs ops as unordered bulkWrites on c, each under c's write mutex, and sets
// errs[op.i] for the ops that did not apply. A write error is the op's result (a duplicate
// key is ErrConflict). When not every op is known to have applied, classify decides from the
// document as stored afterwards (nil when missing): nil when the op applied, its error
// otherwise; without classify such ops are skipped silently. A chunk that fails as a whole
// sets its ops' errors; the returned error says that every chunk failed (nothing is known).
func (s *Store) bulkApply(ctx context.Context, c *mongo.Collection, what string, ops []bulkOp, errs []error,
	classify func(op bulkOp, doc bson.Raw) error) error {
	if len(ops) == 0 {
		return nil
	}
	mode, err := s.ClaimMode(ctx)
	if err != nil {
		return err
	}
	// checked: the store checks each condition on the document it read (FerretDB v1 on
	// SQLite); withCond: the server does, from the filter.
	checked := mode == ClaimSerialized && !s.pushesFieldFilters(ctx, c)
	withCond := !checked
	group := !s.byEachID(ctx, c)
	ops = slices.Clone(ops)
	for k := range ops {
		ops[k] = ops[k].withClears()
	}
	var failed []error
	parts := chunks(ops, s.bulkSize())
	for _, part := range parts {
		err := s.exclusive(ctx, writeMutex(c), func() error {
			send := part
			var docs map[string]bson.Raw
			if checked || slices.ContainsFunc(part, func(op bulkOp) bool { return len(op.refs) > 0 }) {
				var err error
				if docs, err = s.readDocs(ctx, c, part); err != nil {
					return err
				}
				send = make([]bulkOp, len(part))
				for k, op := range part {
					send[k] = op.typed(docs[op.id], s.cfg.References)
				}
			}
			if docs != nil {
				// What no longer holds its condition as read is told now, not written (an
				// update of only references that conflict would be empty).
				part, send = send, nil
				for _, op := range part {
					if doc := docs[op.id]; doc != nil && matches(doc, op.cond) {
						send = append(send, op)
					} else if classify != nil {
						errs[op.i] = classify(op, doc)
					}
				}
				if len(send) == 0 {
					return nil
				}
			}
			unsure, n, retry, err := bulkWrite(ctx, c, what, send, withCond, group, errs)
			if err == nil && len(retry) > 0 {
				// The error names a group or the whole command, not the op that failed, and
				// other ops may have applied before it: each goes again alone, so only the one
				// that fails is a failure (a write that applied already no longer matches its
				// condition, or sets what it set) and the others are told by their documents.
				var again []bulkOp
				again, err = writeEach(ctx, c, what, retry, withCond, errs)
				unsure, n = append(unsure, again...), -1
			}
			if err != nil || classify == nil || len(unsure) == 0 || len(unsure) == len(send) && n == int64(len(send)) {
				return err
			}
			if docs, err = s.readDocs(ctx, c, unsure); err != nil {
				return err
			}
			for _, op := range unsure {
				errs[op.i] = classify(op, docs[op.id])
			}
			return nil
		})
		if err != nil {
			err = opErr("write "+what+"s", err)
			failed = append(failed, err)
			for _, op := range part {
				errs[op.i] = err
			}
		}
	}
	if len(failed) == len(parts) {
		return failed[0]
	}
	return nil
}

// bulkWrite sends ops as one unordered bulkWrite, filtered on _id and, withCond, on their
// conditions. It sets errs for the ops that failed with a write error and returns the others
// with the number of documents matched or deleted. With withCond and group, ops that make
// the same write (see sameWrites) go as one updateMany or deleteMany on {_id: {$in: ...}}
// (see groupModel): on FerretDB v1 on PostgreSQL that is one scan of the collection for all
// of them instead of one each. The ops of such a group that hit a write error are returned
// apart (retry), their errs untouched: the error does not say which of them failed nor
// whether the others applied.
func bulkWrite(ctx context.Context, c *mongo.Collection, what string, ops []bulkOp, withCond, group bool, errs []error) (rest []bulkOp, n int64, retry []bulkOp, err error) {
	groups := sameWrites(ops, withCond && group)
	models := make([]mongo.WriteModel, len(groups))
	for k, g := range groups {
		models[k] = groupModel(g, withCond)
	}
	res, err := c.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	var bwe mongo.BulkWriteException
	switch {
	case err == nil:
		return ops, res.MatchedCount + res.DeletedCount, nil, nil
	case errors.As(err, &bwe) && bwe.WriteConcernError == nil && len(bwe.WriteErrors) > 0:
	case len(ops) > 1 && opFailure(err):
		// FerretDB v1 on PostgreSQL answers a write that breaks a unique index with an error
		// of the whole command, not a write error of the op.
		return nil, 0, ops, nil
	default:
		return nil, 0, nil, err
	}
	for k, g := range groups {
		i := slices.IndexFunc(bwe.WriteErrors, func(we mongo.BulkWriteError) bool { return we.Index == k })
		if i >= 0 && len(g) > 1 {
			retry = append(retry, g...)
			continue
		}
		for _, op := range g {
			switch {
			case i < 0:
				rest = append(rest, op)
			case mongo.IsDuplicateKeyError(bwe.WriteErrors[i].WriteError):
				errs[op.i] = fmt.Errorf("mongostore: %s %q: duplicate key: %w", what, op.id, billing.ErrConflict)
			default:
				errs[op.i] = opErr("write "+what+" "+strconv.Quote(op.id), bwe.WriteErrors[i].WriteError)
			}
		}
	}
	return rest, res.MatchedCount + res.DeletedCount, retry, nil
}

// opFailure reports whether err, the error of a whole write command, is the server refusing
// what it was asked (which one op alone may cause) rather than the command not getting
// through: not a network error, a timeout or the context ending.
func opFailure(err error) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && !mongo.IsNetworkError(err) && !mongo.IsTimeout(err) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// writeEach sends each of ops as a bulkWrite of its own (see bulkWrite), so that a write
// error or a failed command is the result of that op alone, and returns the ops that got
// neither. It stops at an error that is not a refusal of the op (see opFailure).
func writeEach(ctx context.Context, c *mongo.Collection, what string, ops []bulkOp, withCond bool, errs []error) ([]bulkOp, error) {
	var rest []bulkOp
	for _, op := range ops {
		ok, _, _, err := bulkWrite(ctx, c, what, []bulkOp{op}, withCond, false, errs)
		switch {
		case err == nil:
			rest = append(rest, ok...)
		case !opFailure(err):
			return nil, err
		case mongo.IsDuplicateKeyError(err):
			errs[op.i] = fmt.Errorf("mongostore: %s %q: duplicate key: %w", what, op.id, billing.ErrConflict)
		default:
			errs[op.i] = opErr("write "+what+" "+strconv.Quote(op.id), err)
		}
	}
	return rest, nil
}

// scopeFields are token fields whose equality selects a handful of documents (one claim's,
// one reservation's): a condition on one of them lets FerretDB v1 on PostgreSQL read only
// those documents.
var scopeFields = []string{"claim_token", "token"}

// scopeValue returns the token e selects when e is an equality on a scope field.
func scopeValue(e bson.E) (string, bool) {
	v, ok := e.Value.(string)
	return v, ok && v != "" && slices.Contains(scopeFields, e.Key)
}

// sameWrites splits ops into groups in their order. With withCond, updates that make the
// same write share a group: under the same scope (see scopeValue), or none, and, when a
// condition has an operator key ($or), under the same condition. Deletes share a group
// when they have the same scoped condition. Every other op is a group of its own.
func sameWrites(ops []bulkOp, withCond bool) [][]bulkOp {
	var groups [][]bulkOp
	at := map[string]int{}
	for _, op := range ops {
		key, ok := writeKey(op)
		if !withCond || !ok {
			groups = append(groups, []bulkOp{op})
			continue
		}
		if k, ok := at[key]; ok {
			groups[k] = append(groups[k], op)
			continue
		}
		at[key] = len(groups)
		groups = append(groups, []bulkOp{op})
	}
	return groups
}

// writeKey returns what ops of one group of sameWrites share, or false for an op that
// goes alone.
func writeKey(op bulkOp) (string, bool) {
	scope := ""
	for _, e := range op.cond {
		if v, ok := scopeValue(e); ok {
			scope = e.Key + "=" + v
			break
		}
	}
	var cond []byte
	if op.upd == nil || slices.ContainsFunc(op.cond, func(e bson.E) bool { return strings.HasPrefix(e.Key, "$") }) {
		if scope == "" {
			return "", false
		}
		var err error
		if cond, err = bson.Marshal(op.cond); err != nil {
			return "", false
		}
	}
	upd, err := bson.Marshal(bson.D{{Key: "u", Value: op.upd}})
	if err != nil {
		return "", false
	}
	return scope + "\x00" + string(cond) + "\x00" + string(upd), true
}

// groupModel returns the write of a group from sameWrites: {_id: {$in: ...}} with the
// conditions every op of the group shares and, when some differ, an $or of each op's _id
// with the rest of its condition. On FerretDB v1 on PostgreSQL the shared equalities are
// pushed down (a scope reads only its documents) and the group costs one scan of the
// collection instead of one per op.
func groupModel(g []bulkOp, withCond bool) mongo.WriteModel {
	if len(g) == 1 {
		return g[0].model(withCond)
	}
	in := make(bson.A, len(g))
	for k, op := range g {
		in[k] = op.idv
	}
	shared, rests := splitConds(g)
	filter := append(bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: in}}}}, shared...)
	if slices.ContainsFunc(rests, func(r bson.D) bool { return len(r) > 0 }) {
		or := make(bson.A, len(g))
		for k, op := range g {
			or[k] = append(bson.D{{Key: "_id", Value: op.idv}}, rests[k]...)
		}
		filter = append(filter, bson.E{Key: "$or", Value: or})
	}
	if g[0].upd == nil {
		return mongo.NewDeleteManyModel().SetFilter(filter)
	}
	return mongo.NewUpdateManyModel().SetFilter(filter).SetUpdate(g[0].upd)
}

// splitConds returns the condition entries every op of g holds alike (in g[0]'s order) and,
// per op, the entries of its condition that are not among them.
func splitConds(g []bulkOp) (shared bson.D, rests []bson.D) {
	enc := func(e bson.E) string {
		b, err := bson.Marshal(bson.D{e})
		if err != nil {
			return "\x00" + e.Key // matches nothing else: kept per op
		}
		return string(b)
	}
	keys := make([]map[string]bool, len(g))
	for k, op := range g {
		keys[k] = make(map[string]bool, len(op.cond))
		for _, e := range op.cond {
			keys[k][enc(e)] = true
		}
	}
	common := map[string]bool{}
	for _, e := range g[0].cond {
		key := enc(e)
		if !slices.ContainsFunc(keys[1:], func(m map[string]bool) bool { return !m[key] }) {
			common[key] = true
			shared = append(shared, e)
		}
	}
	rests = make([]bson.D, len(g))
	for k, op := range g {
		for _, e := range op.cond {
			if !common[enc(e)] {
				rests[k] = append(rests[k], e)
			}
		}
	}
	return shared, rests
}

// readDocs returns the stored documents of ops by op.id: one find {_id: {$in: ...}} on
// MongoDB; in ClaimSerialized mode a find by exact _id per document (concurrently), which
// FerretDB v1 on SQLite answers without a collection scan. On PostgreSQL, where each such
// find is a scan of the whole table, ops whose conditions share a scope (one claim_token,
// one reservation token: see sharedScope) are read with one find by it, and only the
// documents it does not return (no longer held: conflicts, deletions) one by one; with
// Config.FerretDBIDIndex every document is read by its _id (an index lookup).
func (s *Store) readDocs(ctx context.Context, c *mongo.Collection, ops []bulkOp) (map[string]bson.Raw, error) {
	mode, err := s.ClaimMode(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bson.Raw, len(ops))
	in := make(bson.A, len(ops))
	for k, op := range ops {
		in[k] = op.idv
	}
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: in}}}}
	scope, scoped := sharedScope(ops)
	if mode == ClaimSerialized && (!(scoped && s.pushesFieldFilters(ctx, c)) || s.byEachID(ctx, c)) {
		return out, s.readEach(ctx, c, ops, out)
	}
	if mode == ClaimSerialized {
		filter = append(bson.D{scope}, filter...)
	}
	cur, err := c.Find(ctx, filter)
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		out[rawID(cur.Current)] = slices.Clone(cur.Current)
	}
	if err := cur.Err(); err != nil || mode != ClaimSerialized {
		return out, err
	}
	var rest []bulkOp
	for _, op := range ops {
		if out[op.id] == nil {
			rest = append(rest, op)
		}
	}
	return out, s.readEach(ctx, c, rest, out)
}

// sharedScope returns the equality on a scope field (scopeFields) that every op of ops
// carries in its condition, if they share one.
func sharedScope(ops []bulkOp) (bson.E, bool) {
	if len(ops) == 0 {
		return bson.E{}, false
	}
	for _, e := range ops[0].cond {
		v, ok := scopeValue(e)
		if !ok {
			continue
		}
		holds := func(op bulkOp) bool {
			return slices.ContainsFunc(op.cond, func(f bson.E) bool { w, ok := f.Value.(string); return ok && f.Key == e.Key && w == v })
		}
		if !slices.ContainsFunc(ops[1:], func(op bulkOp) bool { return !holds(op) }) {
			return e, true
		}
	}
	return bson.E{}, false
}

// readEach adds the stored documents of ops to out, read by exact _id (concurrently).
func (s *Store) readEach(ctx context.Context, c *mongo.Collection, ops []bulkOp, out map[string]bson.Raw) error {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	sem := make(chan struct{}, 8)
	for _, op := range ops {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			raw, err := c.FindOne(ctx, bson.D{{Key: "_id", Value: op.idv}}).Raw()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				out[op.id] = raw
			case !errors.Is(err, mongo.ErrNoDocuments) && firstErr == nil:
				firstErr = err
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// firstErr returns the first error of errs that is not nil.
func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Evaluating conditions

// matches reports whether doc satisfies cond as MongoDB would, for the forms renewkit's
// conditions use: equality, $in, $ne, $exists, $lte, $lt, $gte, $gt on top-level fields,
// and $or.
func matches(doc bson.Raw, cond bson.D) bool {
	for _, e := range cond {
		if e.Key == "$or" {
			alts, _ := e.Value.(bson.A)
			if !slices.ContainsFunc(alts, func(alt any) bool { d, _ := alt.(bson.D); return matches(doc, d) }) {
				return false
			}
			continue
		}
		if !fieldMatches(doc.Lookup(e.Key), e.Value) {
			return false
		}
	}
	return true
}

func fieldMatches(v bson.RawValue, want any) bool {
	ops, ok := want.(bson.D)
	if !ok || len(ops) == 0 || !strings.HasPrefix(ops[0].Key, "$") {
		return equalsValue(v, want)
	}
	for _, op := range ops {
		var ok bool
		switch op.Key {
		case "$in":
			alts, _ := op.Value.(bson.A)
			ok = slices.ContainsFunc(alts, func(x any) bool { return equalsValue(v, x) })
		case "$ne":
			ok = !equalsValue(v, op.Value)
		case "$exists":
			ok = (v.Type != 0) == (op.Value == true)
		case "$lte", "$lt", "$gte", "$gt":
			c, comparable := compareValues(v, rawValue(op.Value))
			switch op.Key {
			case "$lte":
				ok = comparable && c <= 0
			case "$lt":
				ok = comparable && c < 0
			case "$gte":
				ok = comparable && c >= 0
			case "$gt":
				ok = comparable && c > 0
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// equalsValue is MongoDB's {field: want}: null matches a missing or null field, and a stored
// array matches when it equals want or one of its elements does.
func equalsValue(v bson.RawValue, want any) bool {
	w := rawValue(want)
	switch {
	case w.Type == bson.TypeNull:
		return v.Type == 0 || v.Type == bson.TypeNull
	case v.Type == 0:
		return false
	case sameValue(v, w):
		return true
	case v.Type == bson.TypeArray && w.Type != bson.TypeArray:
		vals, _ := v.Array().Values()
		return slices.ContainsFunc(vals, func(x bson.RawValue) bool { return sameValue(x, w) })
	}
	return false
}

func rawValue(x any) bson.RawValue {
	if x == nil {
		return bson.RawValue{Type: bson.TypeNull}
	}
	t, b, err := bson.MarshalValue(x)
	if err != nil {
		return bson.RawValue{}
	}
	return bson.RawValue{Type: t, Value: b}
}

func isNumber(t bson.Type) bool {
	return t == bson.TypeInt32 || t == bson.TypeInt64 || t == bson.TypeDouble || t == bson.TypeDecimal128
}

func sameValue(a, b bson.RawValue) bool {
	if c, ok := compareValues(a, b); ok && (isNumber(a.Type) || a.Type == bson.TypeDateTime) {
		return c == 0
	}
	if a.Type == bson.TypeArray && b.Type == bson.TypeArray {
		av, _ := a.Array().Values()
		bv, _ := b.Array().Values()
		return slices.EqualFunc(av, bv, sameValue)
	}
	return a.Type == b.Type && bytes.Equal(a.Value, b.Value)
}

// compareValues orders two numbers, two dates or two strings; ok is false for other pairs.
func compareValues(a, b bson.RawValue) (c int, ok bool) {
	switch {
	case isNumber(a.Type) && isNumber(b.Type):
		return cmp.Compare(number(a), number(b)), true
	case a.Type == bson.TypeDateTime && b.Type == bson.TypeDateTime:
		return cmp.Compare(a.DateTime(), b.DateTime()), true
	case a.Type == bson.TypeString && b.Type == bson.TypeString:
		return cmp.Compare(a.StringValue(), b.StringValue()), true
	}
	return 0, false
}

func number(v bson.RawValue) float64 {
	switch v.Type {
	case bson.TypeDouble:
		return v.Double()
	case bson.TypeDecimal128:
		x, _ := strconv.ParseFloat(v.Decimal128().String(), 64)
		return x
	}
	return float64(v.AsInt64())
}
