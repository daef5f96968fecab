package memstore

import (
	"context"
	"fmt"

	"github.com/renewkit/renewkit/billing"
)

// UpdateSubscriptions applies every change under one lock; see billing.SubscriptionChange.
// The changes' effects are copied before the lock is taken.
func (s *Store) UpdateSubscriptions(ctx context.Context, changes []billing.SubscriptionChange) ([]error, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	boxes := s.packEffects(changes)
	return write(ctx, s, func() ([]error, error) {
		errs := make([]error, len(changes))
		for i := range changes {
			var box *effectsBox
			if boxes != nil {
				box = boxes[i]
			}
			if errs[i] = s.updateSubscription(&changes[i], box); errs[i] != nil && box != nil {
				s.putBox(box) // not stored
			}
		}
		return errs, nil
	})
}

// updateSubscription applies one change, its effects (if any) packed in box. Caller holds
// s.mu.
func (s *Store) updateSubscription(c *billing.SubscriptionChange, box *effectsBox) error {
	id := c.Read.ID
	if id == "" || (c.Changed.ID != "" && c.Changed.ID != id) {
		return invalid("subscription change for %q names subscription %q", id, c.Changed.ID)
	}
	if c.Effects != nil && c.Effects.Token == "" {
		return invalid("subscription change for %q records effects without a token", id)
	}
	r, ok := s.subs[id]
	if !ok || r.sub.Deleted {
		return notFound("subscription", id)
	}
	cur := &r.sub
	switch {
	case cur.Status != c.Read.Status:
		return changedSince(id, fmt.Sprintf("status %s, read %s", cur.Status, c.Read.Status))
	case !cur.CurrentPeriodEnd.Equal(t0(c.Read.CurrentPeriodEnd)):
		return changedSince(id, "its period end moved")
	case c.ClaimToken != "" && r.claimToken != c.ClaimToken:
		return changedSince(id, "it is no longer claimed by the writer")
	case c.Effects != nil && cur.Pending != nil:
		return changedSince(id, "it carries pending effects")
	}
	ok, writes := writable(subFields, cur, &c.Read, &c.Changed)
	if !ok {
		return changedSince(id, "a field the change writes differs from the one read")
	}
	prev := *cur
	if writes {
		apply(subFields, cur, &c.Read, &c.Changed)
	}
	if c.Effects != nil {
		r.box = box
		cur.Pending = &box.effects
		s.pending[id] = r
	}
	cur.Version++
	if writes {
		s.reindex(r, prev)
	}
	return nil
}

func changedSince(id, why string) error {
	return fmt.Errorf("memstore: subscription %q changed since it was read (%s): %w", id, why, billing.ErrConflict)
}

// reindex brings the indexes in line with r after it changed from prev. Caller holds s.mu.
func (s *Store) reindex(r *subRecord, prev billing.Subscription) {
	cur := &r.sub
	if !prev.CurrentPeriodEnd.Equal(cur.CurrentPeriodEnd) {
		s.byEndDirty, s.byEndStale = true, true
	}
	if prev.UserID != cur.UserID || prev.Deleted != cur.Deleted {
		s.indexUser(r, prev)
	}
	if prev.Gateway != cur.Gateway || prev.GatewaySubscriptionID != cur.GatewaySubscriptionID || prev.Deleted != cur.Deleted {
		s.indexGateway(cur.ID, prev, *cur)
	}
}

// CompleteEffects clears the matching pending effects and releases their records' claims
// under one lock.
func (s *Store) CompleteEffects(ctx context.Context, done []billing.EffectsDone) error {
	return s.update(ctx, func() error {
		for _, d := range done {
			r, ok := s.pending[d.SubscriptionID] // a record without effects has none to clear
			if !ok || r.sub.Pending.Token != d.Token {
				continue
			}
			r.sub.Pending = nil
			if r.box != nil {
				s.putBox(r.box)
				r.box = nil
			}
			delete(s.pending, d.SubscriptionID)
			s.dropClaim(r)
		}
		return nil
	})
}

// UpdateUsersAccess applies each change under one lock; see billing.UserStore.
func (s *Store) UpdateUsersAccess(ctx context.Context, changes []billing.UserAccessChange) ([]error, error) {
	return applyEach(ctx, s, changes, s.updateUserAccess)
}

// updateUserAccess applies one change. Caller holds s.mu.
func (s *Store) updateUserAccess(c *billing.UserAccessChange) error {
	id := c.Read.ID
	if id == "" || (c.Changed.ID != "" && c.Changed.ID != id) {
		return invalid("user access change for %q names user %q", id, c.Changed.ID)
	}
	cur, ok := s.users.find(id)
	if !ok {
		return notFound("user", id)
	}
	if cur.PlanID != c.Read.PlanID || cur.SubscriptionID != c.Read.SubscriptionID || cur.Status != c.Read.Status {
		return conflict("user", id)
	}
	r, w := &c.Read, &c.Changed
	if r.PlanID != w.PlanID {
		cur.PlanID = w.PlanID
	}
	if r.SubscriptionID != w.SubscriptionID {
		cur.SubscriptionID = w.SubscriptionID
	}
	if r.Status != w.Status {
		cur.Status = w.Status
	}
	if !sameTime(r.AccessUntil, w.AccessUntil) {
		cur.AccessUntil = t0(w.AccessUntil)
	}
	if !sameTime(r.UpdatedAt, w.UpdatedAt) {
		cur.UpdatedAt = t0(w.UpdatedAt)
	}
	s.users.rows[id] = cur
	return nil
}

// UpdatePayment writes the fields where changed differs from read, conditionally; see
// billing.PaymentStore.
func (s *Store) UpdatePayment(ctx context.Context, read, changed billing.Payment) error {
	return s.update(ctx, func() error {
		id := read.ID
		if id == "" || (changed.ID != "" && changed.ID != id) {
			return invalid("payment change for %q names payment %q", id, changed.ID)
		}
		cur, ok := s.payments.find(id)
		if !ok {
			return notFound("payment", id)
		}
		if cur.Status != read.Status {
			return fmt.Errorf("memstore: payment %q changed since it was read (status %s, read %s): %w",
				id, cur.Status, read.Status, billing.ErrConflict)
		}
		if ok, _ := writable(paymentFields, &cur, &read, &changed); !ok {
			return fmt.Errorf("memstore: payment %q changed since it was read (a field the change writes differs from the one read): %w",
				id, billing.ErrConflict)
		}
		effects := newPaymentEffects(&read, &changed)
		if effects && cur.Pending != nil {
			return fmt.Errorf("memstore: payment %q carries pending effects: %w", id, billing.ErrConflict)
		}
		next := cur
		apply(paymentFields, &next, &read, &changed)
		if effects {
			next.Pending = copyEffects(changed.Pending)
		}
		if next.Gateway != cur.Gateway || next.GatewayPaymentID != cur.GatewayPaymentID {
			newKey := gwKey(next.Gateway, next.GatewayPaymentID)
			if next.GatewayPaymentID != "" {
				if other, ok := s.paymentsByGW[newKey]; ok && other != id {
					return conflict("gateway payment", next.GatewayPaymentID)
				}
			}
			if oldKey := gwKey(cur.Gateway, cur.GatewayPaymentID); cur.GatewayPaymentID != "" && s.paymentsByGW[oldKey] == id {
				delete(s.paymentsByGW, oldKey)
			}
			if next.GatewayPaymentID != "" {
				s.paymentsByGW[newKey] = id
			}
		}
		next.Version++
		s.payments.rows[id] = next
		s.consolePayment(cur, next, false)
		return nil
	})
}
