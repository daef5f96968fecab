package memstore

import (
	"context"
	"sort"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// claimSet is what one claim token holds. recs may still list records the token has lost
// since (taken over, or released by CompleteEffects): readers check r.claimToken. live
// counts the records it does hold; the set is dropped when it reaches zero.
type claimSet struct {
	recs []*subRecord
	live int
}

func (s *Store) ClaimSubscriptions(ctx context.Context, p billing.ClaimParams) ([]billing.Subscription, error) {
	return write(ctx, s, func() ([]billing.Subscription, error) {
		if p.Token == "" || p.Limit <= 0 {
			return nil, invalid("claim needs a token and a positive limit")
		}
		// Oldest period end first, so a partial sweep handles the most urgent records: records
		// with pending effects through their index, the filter's users through theirs, or else
		// only the filter's period-end window, stopping at the limit.
		// Past p.After means after pos in byEnd's order.
		cursor := p.After.ID != ""
		pos := endEntry{end: p.After.PeriodEnd.UnixMilli(), idKey: idPrefix(p.After.ID), id: p.After.ID}
		picked := s.scratch[:0]
		take := func(r *subRecord) bool { // reports whether the limit is reached
			if r.claimToken == p.Token || (r.claimToken != "" && r.claimUntil.After(p.Now)) || (r.sub.Pending != nil) != p.Pending {
				return false
			}
			if cursor && cmpEntries(entryOf(r), pos) <= 0 {
				return false
			}
			picked = append(picked, r)
			return len(picked) == p.Limit
		}
		switch {
		case p.Pending: // few records: through the pending index
			for _, r := range s.pendingRecords(p.Filter) {
				if take(r) {
					break
				}
			}
		case len(p.Filter.UserIDs) > 0:
			for _, r := range s.userRecords(p.Filter) {
				if take(r) {
					break
				}
			}
		default:
			s.sortByEnd()
			entries := s.window(p.Filter)
			if cursor { // start past the position rather than pass over what lies before it
				entries = entries[sort.Search(len(entries), func(i int) bool { return cmpEntries(entries[i], pos) > 0 }):]
			}
			for _, e := range entries {
				if p.Filter.Match(e.r.sub) && take(e.r) {
					break
				}
			}
		}
		if len(picked) == 0 {
			return nil, nil
		}
		until := t0(p.LeaseUntil)
		out := make([]billing.Subscription, len(picked))
		for i, r := range picked {
			s.setClaim(r, p.Token, until)
			out[i] = outSub(r, false)
			picked[i] = nil
		}
		s.scratch = picked[:0]
		return out, nil
	})
}

// ExtendClaims moves the lease of every record token holds, whether or not it has lapsed
// meanwhile, as long as no other token took the record over.
func (s *Store) ExtendClaims(ctx context.Context, token string, until time.Time) error {
	return s.update(ctx, func() error {
		cs := s.claims[token]
		if cs == nil {
			return nil
		}
		until = t0(until)
		held := cs.recs[:0] // drop the records the token lost
		for _, r := range cs.recs {
			if r.claimToken == token {
				r.claimUntil = until
				held = append(held, r)
			}
		}
		clear(cs.recs[len(held):])
		cs.recs = held
		return nil
	})
}

func (s *Store) ReleaseClaims(ctx context.Context, token string) error {
	return s.update(ctx, func() error {
		cs := s.claims[token]
		if cs == nil {
			return nil
		}
		for _, r := range cs.recs {
			if r.claimToken == token {
				r.claimToken, r.claimUntil = "", time.Time{}
			}
		}
		delete(s.claims, token)
		return nil
	})
}

// setClaim leases r to token until until, taking it from any other holder. Caller holds
// s.mu.
func (s *Store) setClaim(r *subRecord, token string, until time.Time) {
	if r.claimToken != token {
		s.dropClaim(r)
		cs := s.claims[token]
		if cs == nil {
			cs = &claimSet{}
			s.claims[token] = cs
		}
		cs.recs = append(cs.recs, r)
		cs.live++
		r.claimToken = token
	}
	r.claimUntil = until
}

// dropClaim releases r's claim, if any. Caller holds s.mu.
func (s *Store) dropClaim(r *subRecord) {
	if r.claimToken == "" {
		return
	}
	if cs := s.claims[r.claimToken]; cs != nil {
		if cs.live--; cs.live <= 0 {
			delete(s.claims, r.claimToken)
		}
	}
	r.claimToken, r.claimUntil = "", time.Time{}
}
