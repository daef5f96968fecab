package memstore

import (
	"context"
	"sort"

	"github.com/renewkit/renewkit/billing"
)

// Prune implements billing.Pruner under one lock (the webhook events under the inbox's
// own, taken inside it).
func (s *Store) Prune(ctx context.Context, p billing.PruneParams) (billing.PruneResult, error) {
	var res billing.PruneResult
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if p.Limit <= 0 {
		return res, invalid("prune needs a positive limit")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !p.NotificationsBefore.IsZero() {
		res.Notifications = pruneMap(s.notifications.rows, p.Limit, func(n billing.NotificationRecord) bool {
			return n.CreatedAt.Before(p.NotificationsBefore)
		})
		if res.Notifications > 0 {
			s.con.notesDirty = true // the console's ordering drops the keys
		}
	}
	if !p.WebhookEventsBefore.IsZero() {
		res.WebhookEvents = s.pruneWebhookEvents(p.WebhookEventsBefore, p.Limit)
	}
	if !p.AuditBefore.IsZero() {
		// s.audit is in CreatedAt order: the old entries are a prefix.
		n := sort.Search(len(s.audit), func(i int) bool { return !s.audit[i].CreatedAt.Before(p.AuditBefore) })
		n = min(n, p.Limit)
		for _, e := range s.audit[:n] {
			delete(s.auditIDs, e.ID)
			s.consoleDropAudit(e)
		}
		s.audit = append(s.audit[:0:0], s.audit[n:]...)
		res.Audit = n
	}
	if !p.LocksBefore.IsZero() {
		for k, st := range s.lockState {
			if res.Locks == p.Limit {
				break
			}
			l, held := s.locks[k]
			if st.acquired.Before(p.LocksBefore) && (!held || l.ExpiresAt.Before(p.LocksBefore)) {
				delete(s.lockState, k)
				delete(s.locks, k)
				res.Locks++
			}
		}
	}
	if !p.ClaimsBefore.IsZero() {
		for token, cs := range s.claims {
			for _, r := range cs.recs {
				if res.Claims == p.Limit {
					return res, nil
				}
				if r.claimToken == token && r.claimUntil.Before(p.ClaimsBefore) && r.sub.Pending == nil {
					s.dropClaim(r)
					res.Claims++
				}
			}
		}
	}
	return res, nil
}

// pruneMap deletes at most limit entries of m for which old is true and returns how many.
func pruneMap[K comparable, V any](m map[K]V, limit int, old func(V) bool) int {
	n := 0
	for k, v := range m {
		if n == limit {
			break
		}
		if old(v) {
			delete(m, k)
			n++
		}
	}
	return n
}
