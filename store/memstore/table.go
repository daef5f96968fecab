package memstore

import (
	"context"
	"sort"
	"sync"

	"github.com/renewkit/renewkit/billing"
)

// Every exported method runs as one critical section of the Store's mutex (the webhook
// inbox's, of its own lock: webhooks.go), started only while ctx is live: read, write and
// update below are that preamble, written once.

// read runs f under the read lock unless ctx is done.
func read[R any](ctx context.Context, s *Store, f func() (R, error)) (R, error) {
	return locked(ctx, s.mu.RLocker(), f)
}

// write runs f under the write lock unless ctx is done.
func write[R any](ctx context.Context, s *Store, f func() (R, error)) (R, error) {
	return locked(ctx, &s.mu, f)
}

// locked runs f holding l unless ctx is done: the preamble of every critical section, the
// inbox's (hookRead, hookWrite) included.
func locked[R any](ctx context.Context, l sync.Locker, f func() (R, error)) (R, error) {
	if err := ctx.Err(); err != nil {
		var zero R
		return zero, err
	}
	l.Lock()
	defer l.Unlock()
	return f()
}

// update is write for a critical section with no result but its error.
func (s *Store) update(ctx context.Context, f func() error) error {
	_, err := write(ctx, s, func() (struct{}, error) { return struct{}{}, f() })
	return err
}

// applyEach applies every change of a batch under one write lock and returns one result per
// change, aligned with changes.
func applyEach[T any](ctx context.Context, s *Store, changes []T, apply func(*T) error) ([]error, error) {
	return write(ctx, s, func() ([]error, error) {
		errs := make([]error, len(changes))
		for i := range changes {
			errs[i] = apply(&changes[i])
		}
		return errs, nil
	})
}

// table holds one kind of record by id. It takes no lock: the Store's mutex guards it, and
// every method expects the caller to hold it.
type table[T any] struct {
	kind string // names the kind in errors: "plan"
	rows map[string]T
	id   func(*T) *string
	// hidden reports a soft-deleted row, stored but not found; nil when the kind has none.
	// It takes the row by value: a pointer to find's copy would move that copy to the heap.
	hidden func(T) bool
	// norm returns the stored form of a value coming in: its times normalised, its
	// references copied; nil for a kind that put never stores.
	norm func(T) T
	// clone copies a stored value going out; nil when the kind holds no references.
	clone func(T) T
}

// find returns the stored row of id, if it is there and not soft-deleted; the row is the
// store's own (not a copy).
func (t *table[T]) find(id string) (T, bool) {
	x, ok := t.rows[id]
	if !ok || (t.hidden != nil && t.hidden(x)) {
		var zero T
		return zero, false
	}
	return x, true
}

// get returns a copy of the row of id, or ErrNotFound.
func (t *table[T]) get(id string) (T, error) {
	x, ok := t.find(id)
	if !ok {
		return x, notFound(t.kind, id)
	}
	return t.out(x), nil
}

// out returns a copy of the stored x for a caller.
func (t *table[T]) out(x T) T {
	if t.clone != nil {
		return t.clone(x)
	}
	return x
}

// insert stores the normalised *x under its id, assigning one when it is empty, and writes
// the stored form back to *x; ErrConflict when the id is stored already.
func (t *table[T]) insert(x *T) error {
	if err := t.newID(x); err != nil {
		return err
	}
	t.put(x)
	return nil
}

// newID assigns *x an id when it has none; ErrConflict when its id is stored already.
func (t *table[T]) newID(x *T) error {
	id := t.id(x)
	if *id == "" {
		*id = billing.NewID()
	}
	if _, ok := t.rows[*id]; ok {
		return conflict(t.kind, *id)
	}
	return nil
}

// put stores the normalised *x under its id, replacing any row there, and writes the stored
// form back to *x.
func (t *table[T]) put(x *T) {
	if t.norm != nil {
		*x = t.norm(*x)
	}
	t.rows[*t.id(x)] = t.out(*x)
}

// count returns how many rows match selects.
func (t *table[T]) count(match func(*T) bool) int {
	n := 0
	for _, x := range t.rows {
		if match(&x) {
			n++
		}
	}
	return n
}

// sweep changes the rows match selects, at most limit of them (every one when limit is not
// positive) in id order, and returns copies of them as changed.
func (t *table[T]) sweep(match func(*T) bool, limit int, change func(*T)) []T {
	var ids []string
	for id, x := range t.rows {
		if match(&x) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	out := make([]T, 0, len(ids))
	for _, id := range ids {
		x := t.rows[id]
		change(&x)
		t.rows[id] = x
		out = append(out, t.out(x))
	}
	return out
}
