package memstore

import (
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// Copies of values that hold references (slices, maps, pointers). Every value stored is one
// of these copies and every value returned is another, so no caller aliases stored state.
// Times are normalised on the way in; stored times are normalised already, so copying them
// out again changes nothing.

// copySub returns x with its slices and pending effects copied and its times normalised.
func copySub(x billing.Subscription) billing.Subscription {
	x.CurrentPeriodStart, x.CurrentPeriodEnd = t0(x.CurrentPeriodStart), t0(x.CurrentPeriodEnd)
	x.GatewayUpdatedAt, x.CancelledAt = t0(x.GatewayUpdatedAt), t0(x.CancelledAt)
	x.CreatedAt, x.UpdatedAt = t0(x.CreatedAt), t0(x.UpdatedAt)
	x.AppliedPayments = slices.Clone(x.AppliedPayments)
	x.Pending = copyEffects(x.Pending)
	return x
}

// outSub returns a copy of a stored subscription for a caller: its slices and, unless
// omitPending (then nil), its pending effects copied. Stored times are normalised already.
func outSub(r *subRecord, omitPending bool) billing.Subscription {
	x := &r.sub
	c := *x
	c.AppliedPayments = slices.Clone(x.AppliedPayments)
	switch {
	case omitPending || x.Pending == nil:
		c.Pending = nil
	case r.box != nil:
		c.Pending = r.box.out()
	default:
		c.Pending = copyEffects(x.Pending)
	}
	return c
}

// effectsBox holds a copy of pending effects with room for their access effect and, in
// the usual case of a job's transition, their one notification and one audit entry.
//
// A box holding a stored subscription's effects (subRecord.box, filled by pack) keeps the
// audit entries' details as pairs instead of maps (the entries' Details are nil): entry i's
// are details[i], slices of pairs. Such a box is the store's alone (what leaves the store
// is a copy, see out), so once its effects are cleared it is emptied and reused, its
// pairs' room with it.
type effectsBox struct {
	effects billing.Effects
	access  billing.AccessEffect
	note    [1]billing.Notification
	audit   [1]billing.AuditEntry
	details [][]detail
	pairs   []detail
}

// effectsSlab hands out the boxes of one bulk write's effects, effectsSlabSize to an
// allocation. A chunk lives while any record holds effects in it, or the store keeps one
// of its boxes for reuse.
type effectsSlab struct {
	boxes []effectsBox
}

const effectsSlabSize = 64

// next returns the slab's next (zero) box (n: how many more the caller may ask for, which
// bounds a new chunk).
func (sl *effectsSlab) next(n int) *effectsBox {
	if len(sl.boxes) == 0 {
		sl.boxes = make([]effectsBox, max(1, min(n, effectsSlabSize)))
	}
	box := &sl.boxes[0]
	sl.boxes = sl.boxes[1:]
	return box
}

// maxSpareBoxes bounds the emptied boxes a store keeps for reuse: a few batches' worth.
const maxSpareBoxes = 4096

// packEffects returns, aligned with changes, a box holding a packed copy (see pack) of
// each change's effects, nil for a change without any (and a nil slice when none has
// any). It reads only the changes, so bulk writes call it before they take s.mu. The
// boxes are spares, else new ones from chunks.
func (s *Store) packEffects(changes []billing.SubscriptionChange) []*effectsBox {
	n := 0
	for i := range changes {
		if changes[i].Effects != nil {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	boxes := make([]*effectsBox, len(changes))
	spares := s.takeBoxes(n)
	var slab effectsSlab
	for i := range changes {
		e := changes[i].Effects
		if e == nil {
			continue
		}
		var box *effectsBox
		if len(spares) > 0 {
			box, spares = spares[0], spares[1:]
		} else {
			box = slab.next(n)
		}
		n--
		box.pack(e)
		boxes[i] = box
	}
	return boxes
}

// takeBoxes returns up to n emptied boxes the store kept.
func (s *Store) takeBoxes(n int) []*effectsBox {
	s.boxMu.Lock()
	defer s.boxMu.Unlock()
	k := len(s.spareBoxes)
	n = min(n, k)
	out := slices.Clone(s.spareBoxes[k-n:])
	clear(s.spareBoxes[k-n:])
	s.spareBoxes = s.spareBoxes[:k-n]
	return out
}

// putBox empties box, which no record holds any more, and keeps it for reuse (unless the
// store keeps enough).
func (s *Store) putBox(box *effectsBox) {
	details, pairs := box.details, box.pairs
	clear(details)
	clear(pairs)
	*box = effectsBox{details: details[:0], pairs: pairs[:0]}
	s.boxMu.Lock()
	defer s.boxMu.Unlock()
	if len(s.spareBoxes) < maxSpareBoxes {
		s.spareBoxes = append(s.spareBoxes, box)
	}
}

// pack makes box (empty) a deep copy of e with its times normalised, the audit entries'
// details packed into pairs, and returns its effects.
func (box *effectsBox) pack(e *billing.Effects) *billing.Effects {
	return copyEffectsTo(box, e, true)
}

// out returns a deep copy, for a caller, of the effects pack stored in box, the audit
// entries' details maps again.
func (box *effectsBox) out() *billing.Effects {
	c := copyEffects(&box.effects)
	for i := range c.Audit {
		c.Audit[i].Details = unpackDetails(box.details[i])
	}
	return c
}

// copyEffects returns a deep copy of e with its times normalised, or nil.
func copyEffects(e *billing.Effects) *billing.Effects {
	if e == nil {
		return nil
	}
	// One allocation holds the effects and, usually, all they point at.
	return copyEffectsTo(&effectsBox{}, e, false)
}

// copyEffectsTo makes box (empty) a deep copy of e with its times normalised and returns
// its effects. With packed, the audit entries' details go to box's pairs (see effectsBox)
// instead of copied maps.
func copyEffectsTo(box *effectsBox, e *billing.Effects, packed bool) *billing.Effects {
	box.effects = *e
	c := &box.effects
	c.CreatedAt = t0(e.CreatedAt)
	if e.Access != nil {
		box.access = *e.Access
		c.Access = &box.access
	}
	if e.Notifications != nil {
		c.Notifications = box.note[:0:len(box.note)]
		if len(e.Notifications) > len(box.note) {
			c.Notifications = make([]billing.Notification, 0, len(e.Notifications))
		}
		for _, n := range e.Notifications {
			n.Data.PeriodStart, n.Data.PeriodEnd = t0(n.Data.PeriodStart), t0(n.Data.PeriodEnd)
			c.Notifications = append(c.Notifications, n)
		}
	}
	if e.Audit != nil {
		c.Audit = box.audit[:0:len(box.audit)]
		if len(e.Audit) > len(box.audit) {
			c.Audit = make([]billing.AuditEntry, 0, len(e.Audit))
		}
		for _, a := range e.Audit {
			if packed {
				box.details = append(box.details, packDetails(&box.pairs, a.Details))
				a.CreatedAt, a.Details = t0(a.CreatedAt), nil
			} else {
				a = copyAudit(a)
			}
			c.Audit = append(c.Audit, a)
		}
	}
	return c
}

// copyAudit returns e with its details copied and its time normalised.
func copyAudit(e billing.AuditEntry) billing.AuditEntry {
	e.CreatedAt = t0(e.CreatedAt)
	e.Details = copyDetails(e.Details)
	return e
}

// copyDetails deep-copies a details map: nested maps and slices (JSON-like values, or any
// other map or slice type) are copied too.
func copyDetails(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := maps.Clone(m) // copies the table at once; values holding references are copied below
	for k, v := range c {
		switch v.(type) {
		case nil, string, bool, int, int64, float64, time.Time:
		default:
			c[k] = copyValue(v)
		}
	}
	return c
}

// detail is one key and value of stored audit details. The store keeps details as a list
// of pairs (filled with no hashing, a batch's pairs in one allocation) and makes them a map
// again only when an entry is read.
type detail struct {
	key string
	val any
}

// packDetails appends a deep copy of m's pairs to *buf and returns them as a slice with no
// room past its end, so appending to it never writes into *buf: nil when m is nil, empty
// (not nil) when m is empty.
func packDetails(buf *[]detail, m map[string]any) []detail {
	if m == nil {
		return nil
	}
	if len(m) == 0 {
		return []detail{}
	}
	start := len(*buf)
	for k, v := range m {
		*buf = append(*buf, detail{k, copyValue(v)})
	}
	return (*buf)[start:len(*buf):len(*buf)]
}

// unpackDetails returns a map holding a deep copy of the pairs of d: nil when d is nil.
func unpackDetails(d []detail) map[string]any {
	if d == nil {
		return nil
	}
	m := make(map[string]any, len(d))
	for _, p := range d {
		m[p.key] = copyValue(p.val)
	}
	return m
}

func copyValue(v any) any {
	switch x := v.(type) {
	case nil, string, bool, int, int64, float64, time.Time:
		return v
	case map[string]any:
		return copyDetails(x)
	case []any:
		if x == nil {
			return x
		}
		c := make([]any, len(x))
		for i, e := range x {
			c[i] = copyValue(e)
		}
		return c
	case []string:
		return slices.Clone(x)
	}
	rv := reflect.ValueOf(v)
	if c, ok := copyReflect(rv); ok {
		return c.Interface()
	}
	return v
}

// copyReflect copies maps, slices and pointers of any type; ok is false for values that
// hold no references (or ones it cannot copy, such as channels and funcs).
func copyReflect(v reflect.Value) (reflect.Value, bool) {
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return v, false
		}
		c, ok := copyReflect(v.Elem())
		if !ok {
			return v, false
		}
		out := reflect.New(v.Type()).Elem()
		out.Set(c)
		return out, true
	case reflect.Map:
		if v.IsNil() {
			return v, false
		}
		c := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			c.SetMapIndex(it.Key(), copyElem(it.Value()))
		}
		return c, true
	case reflect.Slice:
		if v.IsNil() {
			return v, false
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			c.Index(i).Set(copyElem(v.Index(i)))
		}
		return c, true
	case reflect.Pointer:
		if v.IsNil() {
			return v, false
		}
		c := reflect.New(v.Type().Elem())
		c.Elem().Set(copyElem(v.Elem()))
		return c, true
	}
	return v, false
}

func copyElem(v reflect.Value) reflect.Value {
	if c, ok := copyReflect(v); ok {
		return c
	}
	return v
}
