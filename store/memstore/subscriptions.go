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

type subRecord struct {
	sub billing.Subscription // normalised; owns its slices and pending effects
	// box holds sub.Pending when a bulk write recorded it (its audit details packed, see
	// effectsBox), nil when sub.Pending is nil or a plain copy (InsertSubscription's).
	box        *effectsBox
	claimToken string
	claimUntil time.Time
	// audit holds the audit entries about this subscription (EntityType "subscription"),
	// in insertion (time) order, for the console.
	audit []*auditRec
	// notes holds the keys of the notifications about this subscription reserved since it
	// was stored, for the console (keys released or pruned since may linger until the
	// console's next sort).
	notes []string
}

// endEntry is a record's place in byEnd: a copy of its sort key (the period end in Unix
// milliseconds, stored times being whole milliseconds; the id, with its first 8 bytes as a
// number) next to it, so sorting reads no record and rarely an id.
type endEntry struct {
	end   int64
	idKey uint64
	id    string
	r     *subRecord
}

func entryOf(r *subRecord) endEntry {
	return endEntry{end: r.sub.CurrentPeriodEnd.UnixMilli(), idKey: idPrefix(r.sub.ID), id: r.sub.ID, r: r}
}

// idPrefix packs the first 8 bytes of id (zero-padded) big-endian, so ordering prefixes
// orders ids unless the prefixes are equal.
func idPrefix(id string) uint64 {
	var k uint64
	for i := range 8 {
		k <<= 8
		if i < len(id) {
			k |= uint64(id[i])
		}
	}
	return k
}

func cmpEntries(a, b endEntry) int {
	if c := cmp.Compare(a.end, b.end); c != 0 {
		return c
	}
	if c := cmp.Compare(a.idKey, b.idKey); c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}

func (s *Store) InsertSubscription(ctx context.Context, x *billing.Subscription) error {
	return s.update(ctx, func() error {
		if x.ID == "" {
			x.ID = billing.NewID()
		}
		if _, ok := s.subs[x.ID]; ok {
			return conflict("subscription", x.ID)
		}
		if x.GatewaySubscriptionID != "" && s.liveByGateway(x.Gateway, x.GatewaySubscriptionID) != nil {
			return conflict("gateway subscription", x.GatewaySubscriptionID)
		}
		*x = copySub(*x)
		r := &subRecord{sub: copySub(*x)}
		s.subs[x.ID] = r
		e := entryOf(r)
		// Records inserted in period-end order keep byEnd sorted.
		if n := len(s.byEnd); n > 0 && !s.byEndDirty && cmpEntries(s.byEnd[n-1], e) > 0 {
			s.byEndDirty = true
		}
		s.byEnd = append(s.byEnd, e)
		if r.sub.Pending != nil {
			s.pending[r.sub.ID] = r
		}
		s.indexUser(r, billing.Subscription{Deleted: true}) // a deleted prev: not indexed yet
		s.indexGateway(x.ID, billing.Subscription{}, r.sub)
		s.consoleSub(r)
		return nil
	})
}

func (s *Store) GetSubscription(ctx context.Context, id string) (billing.Subscription, error) {
	return read(ctx, s, func() (billing.Subscription, error) {
		r, ok := s.subs[id]
		if !ok || r.sub.Deleted {
			return billing.Subscription{}, notFound("subscription", id)
		}
		return outSub(r, false), nil
	})
}

func (s *Store) FindSubscriptionByGateway(ctx context.Context, gateway, gid string) (billing.Subscription, error) {
	return read(ctx, s, func() (billing.Subscription, error) {
		if r := s.liveByGateway(gateway, gid); r != nil && gid != "" {
			return outSub(r, false), nil
		}
		return billing.Subscription{}, notFound("gateway subscription", gid)
	})
}

func (s *Store) ListUserSubscriptions(ctx context.Context, userID string) ([]billing.Subscription, error) {
	return read(ctx, s, func() ([]billing.Subscription, error) {
		list := s.byUser[userID]
		if len(list) == 0 {
			return nil, nil
		}
		out := make([]billing.Subscription, len(list))
		for i, r := range list {
			out[i] = outSub(r, false)
		}
		slices.SortFunc(out, func(a, b billing.Subscription) int {
			if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(b.ID, a.ID)
		})
		return out, nil
	})
}

// ListSubscriptions reads the filter's users through the per-user index, or else only the
// filter's period-end window, in period-end order.
func (s *Store) ListSubscriptions(ctx context.Context, f billing.SubscriptionFilter, limit int) ([]billing.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var picked []*subRecord
	if len(f.UserIDs) > 0 {
		s.mu.RLock()
		defer s.mu.RUnlock()
		picked = s.userRecords(f)
		if limit > 0 && len(picked) > limit {
			picked = picked[:limit]
		}
	} else {
		s.rlockSorted()
		defer s.mu.RUnlock()
		for _, e := range s.window(f) {
			if f.Match(e.r.sub) {
				picked = append(picked, e.r)
				if len(picked) == limit {
					break
				}
			}
		}
	}
	if len(picked) == 0 {
		return nil, nil
	}
	out := make([]billing.Subscription, len(picked))
	for i, r := range picked {
		out[i] = outSub(r, f.OmitPending)
	}
	return out, nil
}

func (s *Store) CountSubscriptions(ctx context.Context, f billing.SubscriptionFilter) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if len(f.UserIDs) > 0 {
		s.mu.RLock()
		defer s.mu.RUnlock()
		return len(s.userRecords(f)), nil
	}
	s.rlockSorted()
	defer s.mu.RUnlock()
	n := 0
	for _, e := range s.window(f) {
		if f.Match(e.r.sub) {
			n++
		}
	}
	return n, nil
}

func (s *Store) CountSubscriptionsByStatus(ctx context.Context) (map[billing.SubscriptionStatus]int, error) {
	return read(ctx, s, func() (map[billing.SubscriptionStatus]int, error) {
		out := map[billing.SubscriptionStatus]int{}
		for _, r := range s.subs {
			if !r.sub.Deleted {
				out[r.sub.Status]++
			}
		}
		return out, nil
	})
}

// --- indexes ---

// sub returns the stored record of subscription id (soft-deleted ones included), or nil:
// from the small pending index when it carries effects (the records a batch's effects
// are about), else from subs. Caller holds s.mu.
func (s *Store) sub(id string) *subRecord {
	if r := s.pending[id]; r != nil {
		return r
	}
	return s.subs[id]
}

// cmpByEnd orders records as byEnd does: by period end, then id.
func cmpByEnd(a, b *subRecord) int {
	if c := a.sub.CurrentPeriodEnd.Compare(b.sub.CurrentPeriodEnd); c != 0 {
		return c
	}
	return strings.Compare(a.sub.ID, b.sub.ID)
}

// sortByEnd sorts byEnd when it is dirty. Caller holds s.mu for writing.
func (s *Store) sortByEnd() {
	if !s.byEndDirty {
		return
	}
	if s.byEndStale {
		for i := range s.byEnd {
			s.byEnd[i].end = s.byEnd[i].r.sub.CurrentPeriodEnd.UnixMilli()
		}
		s.byEndStale = false
	}
	slices.SortFunc(s.byEnd, cmpEntries)
	s.byEndDirty = false
}

// rlockSorted takes s.mu for reading with byEnd sorted.
func (s *Store) rlockSorted() {
	for {
		s.mu.RLock()
		if !s.byEndDirty {
			return
		}
		s.mu.RUnlock()
		s.mu.Lock()
		s.sortByEnd()
		s.mu.Unlock()
	}
}

// window returns the part of the sorted byEnd inside f's period-end bounds. Caller holds
// s.mu with byEnd sorted.
func (s *Store) window(f billing.SubscriptionFilter) []endEntry {
	lo, hi := 0, len(s.byEnd)
	// A whole-millisecond end is after t exactly when its Unix milliseconds exceed t's
	// (UnixMilli rounds down).
	if after := f.PeriodEndAfter; !after.IsZero() {
		ms := after.UnixMilli()
		lo = sort.Search(hi, func(i int) bool { return s.byEnd[i].end > ms })
	}
	if before := f.PeriodEndBefore; !before.IsZero() {
		ms := before.UnixMilli()
		hi = lo + sort.Search(hi-lo, func(i int) bool { return s.byEnd[lo+i].end > ms })
	}
	return s.byEnd[lo:hi]
}

// pendingRecords returns the records with pending effects that match f, in period-end
// order. Caller holds s.mu.
func (s *Store) pendingRecords(f billing.SubscriptionFilter) []*subRecord {
	var out []*subRecord
	for _, r := range s.pending {
		if f.Match(r.sub) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, cmpByEnd)
	return out
}

// userRecords returns the records of f.UserIDs that match f, each once, in period-end
// order. Caller holds s.mu (byEnd need not be sorted).
func (s *Store) userRecords(f billing.SubscriptionFilter) []*subRecord {
	users := f.UserIDs
	f.UserIDs = nil // every record read below belongs to one of users
	var out []*subRecord
	for _, uid := range users {
		for _, r := range s.byUser[uid] {
			if f.Match(r.sub) {
				out = append(out, r)
			}
		}
	}
	slices.SortFunc(out, cmpByEnd)
	return slices.Compact(out) // a user named twice
}

// indexUser moves r in byUser after its user or deletion flag changed from prev's. Only
// live records are indexed. Caller holds s.mu.
func (s *Store) indexUser(r *subRecord, prev billing.Subscription) {
	if !prev.Deleted {
		list := s.byUser[prev.UserID]
		if i := slices.Index(list, r); i >= 0 {
			list = slices.Delete(list, i, i+1)
			if len(list) == 0 {
				delete(s.byUser, prev.UserID)
			} else {
				s.byUser[prev.UserID] = list
			}
		}
	}
	if !r.sub.Deleted {
		s.byUser[r.sub.UserID] = append(s.byUser[r.sub.UserID], r)
	}
}

// liveByGateway returns a live subscription with the gateway id, or nil. Caller holds s.mu.
func (s *Store) liveByGateway(gateway, gid string) *subRecord {
	if gid == "" {
		return nil
	}
	if id, ok := s.subsByGW[gwKey(gateway, gid)]; ok {
		if r := s.subs[id]; r != nil && !r.sub.Deleted && r.sub.Gateway == gateway && r.sub.GatewaySubscriptionID == gid {
			return r
		}
	}
	return nil
}

// indexGateway keeps subsByGW pointing, for every gateway id some live subscription holds,
// at one of them, after subscription id changed from prev to cur. Caller holds s.mu.
func (s *Store) indexGateway(id string, prev, cur billing.Subscription) {
	oldKey, newKey := "", ""
	if prev.GatewaySubscriptionID != "" && !prev.Deleted {
		oldKey = gwKey(prev.Gateway, prev.GatewaySubscriptionID)
	}
	if cur.GatewaySubscriptionID != "" && !cur.Deleted {
		newKey = gwKey(cur.Gateway, cur.GatewaySubscriptionID)
	}
	if oldKey == newKey {
		return
	}
	if oldKey != "" && s.subsByGW[oldKey] == id {
		delete(s.subsByGW, oldKey)
		// Rare (the gateway id changed or the record was deleted): hand the key to another
		// live holder, if an update ever made two.
		for oid, r := range s.subs {
			if oid != id && !r.sub.Deleted && r.sub.GatewaySubscriptionID != "" && gwKey(r.sub.Gateway, r.sub.GatewaySubscriptionID) == oldKey {
				s.subsByGW[oldKey] = oid
				break
			}
		}
	}
	if newKey != "" && s.liveByGateway(cur.Gateway, cur.GatewaySubscriptionID) == nil {
		s.subsByGW[newKey] = id
	}
}
