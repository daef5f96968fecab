package memstore

import (
	"cmp"
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/renewkit/renewkit/billing"
)

var (
	_ billing.Console       = (*Store)(nil)
	_ billing.SnapshotStore = (*Store)(nil)
)

// consoleIndex holds the orderings the console's lists read, so a page reads only the
// records it returns (plus those its filters pass over), never every record. The
// orderings run oldest first by (CreatedAt, ID) and are read from the end; records
// inserted in time order (the usual case: created now) are appended and keep them sorted,
// others mark them for a sort by the next reader.
type consoleIndex struct {
	subs       []*subRecord
	subsDirty  bool
	gateways   map[string]struct{} // every gateway name a subscription was inserted with, for Q
	users      []userKey           // by lower-cased email
	usersDirty bool

	payments      []string // payment ids
	paymentsDirty bool
	paymentsBySub map[string]map[string]struct{}

	notes      []string // notification keys
	notesDirty bool
	// lastNote is the creation time and key of notes' last entry while notes is sorted, so
	// an append checks the order without reading the record back.
	lastNote noteKey
	// notesBySub holds the keys of the notifications about each subscription that was not
	// stored when they were reserved (the others' are on their records: subRecord.notes).
	notesBySub map[string][]string

	// auditByEntity holds the audit entries of each entity but the stored subscriptions
	// (each holds its own: subRecord.audit), in insertion (time) order.
	auditByEntity map[string][]*auditRec
	snapshots     map[time.Time]billing.DailySnapshot

	// auditLists and noteLists hand out the first room of the per-entity lists above (and
	// of subRecord.audit), many lists to an allocation.
	auditLists chunks[*auditRec]
	noteLists  chunks[string]
}

// chunks hands out short empty slices carved from shared allocations. A slice has no room
// past its capacity, so appending to it past that moves it to an allocation of its own
// and never writes into its neighbours'.
type chunks[T any] struct {
	free []T
}

// listRoom is the capacity of a list chunks hands out: most entities get an entry or two.
const listRoom = 2

// list returns an empty slice with room for listRoom elements.
func (c *chunks[T]) list() []T {
	if len(c.free) < listRoom {
		c.free = make([]T, 512*listRoom)
	}
	l := c.free[:0:listRoom]
	c.free = c.free[listRoom:]
	return l
}

// add appends v to list, giving an empty list its room from c.
func (c *chunks[T]) add(list []T, v T) []T {
	if list == nil {
		list = c.list()
	}
	return append(list, v)
}

type userKey struct{ email, id string }

type noteKey struct {
	at  time.Time
	key string
}

func (c *consoleIndex) init() {
	if c.gateways == nil {
		c.gateways = map[string]struct{}{}
		c.paymentsBySub = map[string]map[string]struct{}{}
		c.notesBySub = map[string][]string{}
		c.auditByEntity = map[string][]*auditRec{}
		c.snapshots = map[time.Time]billing.DailySnapshot{}
	}
}

// The hooks below are called, under the write lock, by the writes that change what the
// console's orderings hold.

func (s *Store) consoleSub(r *subRecord) {
	s.con.init()
	if n := len(s.con.subs); n > 0 && oldestFirst(s.con.subs[n-1].sub.CreatedAt, r.sub.CreatedAt, s.con.subs[n-1].sub.ID, r.sub.ID) > 0 {
		s.con.subsDirty = true
	}
	s.con.subs = append(s.con.subs, r)
	s.con.gateways[r.sub.Gateway] = struct{}{}
}

func (s *Store) consoleUser(u billing.User) {
	s.con.users = append(s.con.users, userKey{strings.ToLower(u.Email), u.ID})
	s.con.usersDirty = true
}

func (s *Store) consolePayment(old, p billing.Payment, inserted bool) {
	s.con.init()
	if inserted {
		if n := len(s.con.payments); n > 0 {
			last := s.payments.rows[s.con.payments[n-1]]
			s.con.paymentsDirty = s.con.paymentsDirty || oldestFirst(last.CreatedAt, p.CreatedAt, last.ID, p.ID) > 0
		}
		s.con.payments = append(s.con.payments, p.ID)
	}
	if !inserted && old.SubscriptionID == p.SubscriptionID {
		return
	}
	if set := s.con.paymentsBySub[old.SubscriptionID]; set != nil && !inserted {
		delete(set, p.ID)
	}
	if p.SubscriptionID != "" {
		set := s.con.paymentsBySub[p.SubscriptionID]
		if set == nil {
			set = map[string]struct{}{}
			s.con.paymentsBySub[p.SubscriptionID] = set
		}
		set[p.ID] = struct{}{}
	}
}

func (s *Store) consoleNote(n billing.NotificationRecord) {
	s.con.init()
	if last := s.con.lastNote; len(s.con.notes) > 0 && !s.con.notesDirty && oldestFirst(last.at, n.CreatedAt, last.key, n.Key) > 0 {
		s.con.notesDirty = true
	}
	s.con.notes = append(s.con.notes, n.Key)
	s.con.lastNote = noteKey{n.CreatedAt, n.Key}
	switch r := s.sub(n.SubscriptionID); {
	case r != nil:
		r.notes = s.con.noteLists.add(r.notes, n.Key)
	case n.SubscriptionID != "":
		s.con.notesBySub[n.SubscriptionID] = s.con.noteLists.add(s.con.notesBySub[n.SubscriptionID], n.Key)
	}
}

// consoleAudit adds a to its entity's list: a subscription's own (one lookup) when a names
// a stored subscription, else the map of the other entities.
func (s *Store) consoleAudit(a *auditRec) {
	if r := s.auditSub(a); r != nil {
		r.audit = s.con.auditLists.add(r.audit, a)
		return
	}
	s.con.init()
	s.con.auditByEntity[a.EntityID] = s.con.auditLists.add(s.con.auditByEntity[a.EntityID], a)
}

// auditSub returns the subscription whose list holds a's entity's entries when a is about
// a stored subscription, else nil. Caller holds s.mu.
func (s *Store) auditSub(a *auditRec) *subRecord {
	if a.EntityType != entitySubscription {
		return nil
	}
	return s.sub(a.EntityID)
}

// entitySubscription is the EntityType of the audit entries about a subscription.
const entitySubscription = "subscription"

func (s *Store) consoleDropAudit(a *auditRec) {
	if r := s.auditSub(a); r != nil {
		if i := slices.Index(r.audit, a); i >= 0 {
			r.audit = slices.Delete(r.audit, i, i+1)
			if len(r.audit) == 0 {
				r.audit = nil
			}
			return
		}
	}
	list := s.con.auditByEntity[a.EntityID]
	if i := slices.Index(list, a); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		delete(s.con.auditByEntity, a.EntityID)
	} else {
		s.con.auditByEntity[a.EntityID] = list
	}
}

func oldestFirst(at, bt time.Time, a, b string) int {
	if c := at.Compare(bt); c != 0 {
		return c
	}
	return cmp.Compare(a, b)
}

// sortConsole re-sorts the orderings inserts extended. Caller holds the write lock.
func (s *Store) sortConsole() {
	s.con.init()
	c := &s.con
	if c.subsDirty {
		slices.SortStableFunc(c.subs, func(a, b *subRecord) int {
			return oldestFirst(a.sub.CreatedAt, b.sub.CreatedAt, a.sub.ID, b.sub.ID)
		})
		c.subsDirty = false
	}
	if c.usersDirty {
		slices.SortFunc(c.users, func(a, b userKey) int { return cmp.Or(cmp.Compare(a.email, b.email), cmp.Compare(a.id, b.id)) })
		c.usersDirty = false
	}
	if c.paymentsDirty {
		slices.SortFunc(c.payments, func(a, b string) int {
			return oldestFirst(s.payments.rows[a].CreatedAt, s.payments.rows[b].CreatedAt, a, b)
		})
		c.paymentsDirty = false
	}
	if c.notesDirty {
		// Keys pruned by retention are dropped here.
		c.notes = slices.DeleteFunc(c.notes, func(k string) bool { _, ok := s.notifications.rows[k]; return !ok })
		slices.SortFunc(c.notes, func(a, b string) int {
			return oldestFirst(s.notifications.rows[a].CreatedAt, s.notifications.rows[b].CreatedAt, a, b)
		})
		c.notes = slices.Compact(c.notes) // a key pruned and reserved again
		c.lastNote = noteKey{}
		if k := len(c.notes); k > 0 {
			c.lastNote = noteKey{s.notifications.rows[c.notes[k-1]].CreatedAt, c.notes[k-1]}
		}
		gone := func(k string) bool { _, ok := s.notifications.rows[k]; return !ok }
		for sub, keys := range c.notesBySub {
			keys = slices.DeleteFunc(keys, gone)
			if len(keys) == 0 {
				delete(c.notesBySub, sub)
			} else {
				c.notesBySub[sub] = keys
			}
		}
		for _, r := range s.subs {
			if len(r.notes) > 0 {
				if r.notes = slices.DeleteFunc(r.notes, gone); len(r.notes) == 0 {
					r.notes = nil
				}
			}
		}
		c.notesDirty = false
	}
}

// consoleLock takes the read lock, or the write lock when an ordering must be re-sorted
// first; it returns the matching unlock.
func (s *Store) consoleLock() func() {
	s.mu.RLock()
	c := &s.con
	if c.gateways != nil && !c.subsDirty && !c.usersDirty && !c.paymentsDirty && !c.notesDirty {
		return s.mu.RUnlock
	}
	s.mu.RUnlock()
	s.mu.Lock()
	s.sortConsole()
	return s.mu.Unlock
}

// consoleRead is the preamble of a console listing: ctx live and the page limit valid, then
// the console's lock (consoleLock), released by unlock.
func (s *Store) consoleRead(ctx context.Context, n int) (limit int, unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	if limit, err = billing.PageLimit(n); err != nil {
		return 0, nil, err
	}
	return limit, s.consoleLock(), nil
}

// page collects up to limit items after the cursor from a newest-first ordering; start
// is the first position after the cursor.
func page[T any](n, limit int, start int, at func(i int) (T, time.Time, string, bool)) ([]T, billing.Cursor) {
	out := make([]T, 0, min(limit, 16))
	var last billing.Cursor
	for i := start; i < n; i++ {
		v, t, id, ok := at(i)
		if !ok {
			continue
		}
		if len(out) == limit {
			return out, last
		}
		out = append(out, v)
		last = billing.Cursor{CreatedAt: t, ID: id}
	}
	return out, billing.Cursor{}
}

// SearchSubscriptions implements billing.Console.
func (s *Store) SearchSubscriptions(ctx context.Context, q billing.SubscriptionQuery) ([]billing.Subscription, billing.Cursor, error) {
	limit, unlock, err := s.consoleRead(ctx, q.Limit)
	if err != nil {
		return nil, billing.Cursor{}, err
	}
	defer unlock()
	if q.Q != "" {
		return s.searchQ(q, limit)
	}
	list := s.con.subs
	at := func(i int) *subRecord { return list[len(list)-1-i] } // newest first
	start := sort.Search(len(list), func(i int) bool {
		return q.After.Before(at(i).sub.CreatedAt, at(i).sub.ID)
	})
	out, next := page(len(list), limit, start, func(i int) (billing.Subscription, time.Time, string, bool) {
		r := at(i)
		if !q.Match(r.sub) {
			return billing.Subscription{}, time.Time{}, "", false
		}
		return outSub(r, false), r.sub.CreatedAt, r.sub.ID, true
	})
	return out, next, nil
}

// searchQ answers a query with Q: the candidates are found by id, gateway id and email,
// then ordered and paged like a list.
func (s *Store) searchQ(q billing.SubscriptionQuery, limit int) ([]billing.Subscription, billing.Cursor, error) {
	found := map[string]*subRecord{}
	if r, ok := s.subs[q.Q]; ok {
		found[r.sub.ID] = r
	}
	gateways := []string{billing.GatewayStripe, billing.GatewayMercadoPago, billing.GatewayPayPal} // and any other seen
	for gw := range s.con.gateways {
		gateways = append(gateways, gw)
	}
	for _, gw := range gateways {
		if id, ok := s.subsByGW[gwKey(gw, q.Q)]; ok {
			if r := s.subs[id]; r != nil {
				found[id] = r
			}
		}
	}
	prefix := strings.ToLower(q.Q)
	users := s.con.users
	for i, n := sort.Search(len(users), func(i int) bool { return users[i].email >= prefix }), 0; i < len(users) && n < billing.MaxPageSize; i, n = i+1, n+1 {
		if !strings.HasPrefix(users[i].email, prefix) {
			break
		}
		for _, r := range s.byUser[users[i].id] {
			found[r.sub.ID] = r
		}
	}
	list := make([]*subRecord, 0, len(found))
	for _, r := range found {
		if q.Match(r.sub) && q.After.Before(r.sub.CreatedAt, r.sub.ID) {
			list = append(list, r)
		}
	}
	slices.SortFunc(list, func(a, b *subRecord) int { return oldestFirst(b.sub.CreatedAt, a.sub.CreatedAt, b.sub.ID, a.sub.ID) })
	out, next := page(len(list), limit, 0, func(i int) (billing.Subscription, time.Time, string, bool) {
		return outSub(list[i], false), list[i].sub.CreatedAt, list[i].sub.ID, true
	})
	return out, next, nil
}

// ListPayments implements billing.Console.
func (s *Store) ListPayments(ctx context.Context, q billing.PaymentQuery) ([]billing.Payment, billing.Cursor, error) {
	limit, unlock, err := s.consoleRead(ctx, q.Limit)
	if err != nil {
		return nil, billing.Cursor{}, err
	}
	defer unlock()
	ids := s.con.payments
	if q.SubscriptionID != "" {
		ids = make([]string, 0, len(s.con.paymentsBySub[q.SubscriptionID]))
		for id := range s.con.paymentsBySub[q.SubscriptionID] {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, func(a, b string) int {
			return oldestFirst(s.payments.rows[a].CreatedAt, s.payments.rows[b].CreatedAt, a, b)
		})
	}
	id := func(i int) string { return ids[len(ids)-1-i] } // newest first
	start := sort.Search(len(ids), func(i int) bool { return q.After.Before(s.payments.rows[id(i)].CreatedAt, id(i)) })
	out, next := page(len(ids), limit, start, func(i int) (billing.Payment, time.Time, string, bool) {
		p := s.payments.out(s.payments.rows[id(i)])
		return p, p.CreatedAt, p.ID, q.Match(p)
	})
	return out, next, nil
}

// ListNotifications implements billing.Console.
func (s *Store) ListNotifications(ctx context.Context, q billing.NotificationQuery) ([]billing.NotificationRecord, billing.Cursor, error) {
	limit, unlock, err := s.consoleRead(ctx, q.Limit)
	if err != nil {
		return nil, billing.Cursor{}, err
	}
	defer unlock()
	keys := s.con.notes
	if q.SubscriptionID != "" {
		keys = slices.Clone(s.con.notesBySub[q.SubscriptionID])
		if r := s.subs[q.SubscriptionID]; r != nil {
			keys = append(keys, r.notes...)
		}
		slices.SortFunc(keys, func(a, b string) int {
			return oldestFirst(s.notifications.rows[a].CreatedAt, s.notifications.rows[b].CreatedAt, a, b)
		})
		keys = slices.Compact(keys) // a key released or pruned, then reserved again
	}
	key := func(i int) string { return keys[len(keys)-1-i] } // newest first
	start := sort.Search(len(keys), func(i int) bool { return q.After.Before(s.notifications.rows[key(i)].CreatedAt, key(i)) })
	out, next := page(len(keys), limit, start, func(i int) (billing.NotificationRecord, time.Time, string, bool) {
		n, ok := s.notifications.rows[key(i)]
		return copyNote(n), n.CreatedAt, n.Key, ok && q.Match(n)
	})
	return out, next, nil
}

func copyNote(n billing.NotificationRecord) billing.NotificationRecord {
	if n.Data != nil {
		d := *n.Data
		n.Data = &d
	}
	return n
}

// ListEntityAudit implements billing.Console.
func (s *Store) ListEntityAudit(ctx context.Context, ids []string, limit int) ([]billing.AuditEntry, error) {
	return read(ctx, s, func() ([]billing.AuditEntry, error) {
		if limit < 1 || limit > billing.MaxPageSize {
			return nil, invalid("audit limit %d: use 1 to %d", limit, billing.MaxPageSize)
		}
		var all []*auditRec
		for _, id := range slices.Compact(slices.Sorted(slices.Values(ids))) {
			all = append(all, s.entityAudit(id, limit)...)
		}
		slices.SortStableFunc(all, func(a, b *auditRec) int { return b.CreatedAt.Compare(a.CreatedAt) })
		out := make([]billing.AuditEntry, 0, min(limit, len(all)))
		for _, a := range all[:min(limit, len(all))] {
			out = append(out, a.out())
		}
		return out, nil
	})
}

// entityAudit returns the last limit entries of entity id in insertion order: those its
// subscription holds and those of the other entities of that id (entries whose EntityType
// is not a subscription's). Caller holds s.mu.
func (s *Store) entityAudit(id string, limit int) []*auditRec {
	other := s.con.auditByEntity[id]
	other = other[max(0, len(other)-limit):]
	r := s.subs[id]
	if r == nil || len(r.audit) == 0 {
		return other
	}
	own := r.audit[max(0, len(r.audit)-limit):]
	if len(other) == 0 {
		return own
	}
	both := slices.Concat(own, other)
	slices.SortFunc(both, func(a, b *auditRec) int { return cmp.Compare(a.seq, b.seq) })
	return both[max(0, len(both)-limit):]
}

// RetryNotification implements billing.Console.
func (s *Store) RetryNotification(ctx context.Context, key, token string, now, leaseUntil time.Time) (bool, error) {
	return write(ctx, s, func() (bool, error) {
		if key == "" || token == "" {
			return false, invalid("retrying a notification needs its key and a token")
		}
		n, ok := s.notifications.rows[key]
		if !ok {
			return false, notFound("notification", key)
		}
		if n.Status != billing.NotificationFailed {
			return false, nil
		}
		n.Status, n.Error, n.Token, n.LeaseUntil, n.UpdatedAt = billing.NotificationSending, "", token, t0(leaseUntil), t0(now)
		s.notifications.rows[key] = n
		return true, nil
	})
}

// PutDailySnapshot implements billing.SnapshotStore.
func (s *Store) PutDailySnapshot(ctx context.Context, snap billing.DailySnapshot) error {
	return s.update(ctx, func() error {
		if snap.Day.IsZero() {
			return invalid("snapshot without a day")
		}
		snap.Day, snap.Taken = billing.SnapshotDay(snap.Day), t0(snap.Taken)
		snap = copySnapshot(snap)
		s.con.init()
		s.con.snapshots[snap.Day] = snap
		return nil
	})
}

// ListDailySnapshots implements billing.SnapshotStore.
func (s *Store) ListDailySnapshots(ctx context.Context, since time.Time) ([]billing.DailySnapshot, error) {
	return read(ctx, s, func() ([]billing.DailySnapshot, error) {
		since = billing.SnapshotDay(since)
		var out []billing.DailySnapshot
		for day, snap := range s.con.snapshots {
			if !day.Before(since) {
				out = append(out, copySnapshot(snap))
			}
		}
		slices.SortFunc(out, func(a, b billing.DailySnapshot) int { return a.Day.Compare(b.Day) })
		return out, nil
	})
}

func copySnapshot(s billing.DailySnapshot) billing.DailySnapshot {
	byStatus := make(map[billing.SubscriptionStatus]int, len(s.ByStatus))
	for k, v := range s.ByStatus {
		byStatus[k] = v
	}
	mrr := make(map[string]int64, len(s.MRR))
	for k, v := range s.MRR {
		mrr[k] = v
	}
	s.ByStatus, s.MRR = byStatus, mrr
	return s
}
