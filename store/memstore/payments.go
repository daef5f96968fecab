package memstore

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/renewkit/renewkit/billing"
)

func normPayment(p billing.Payment) billing.Payment {
	p.ProcessedAt, p.CreatedAt, p.UpdatedAt, p.ReversedAt = t0(p.ProcessedAt), t0(p.CreatedAt), t0(p.UpdatedAt), t0(p.ReversedAt)
	return p
}

func (s *Store) InsertPayment(ctx context.Context, p *billing.Payment) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.ID == "" {
		p.ID = billing.NewID()
	}
	if _, ok := s.payments[p.ID]; ok {
		return conflict("payment", p.ID)
	}
	if p.GatewayPaymentID != "" {
		if _, ok := s.paymentsByGW[gwKey(p.Gateway, p.GatewayPaymentID)]; ok {
			return conflict("gateway payment", p.GatewayPaymentID)
		}
		s.paymentsByGW[gwKey(p.Gateway, p.GatewayPaymentID)] = p.ID
	}
	*p = normPayment(*p)
	s.payments[p.ID] = *p
	s.consolePayment(billing.Payment{}, *p, true)
	return nil
}

func (s *Store) GetPayment(ctx context.Context, id string) (billing.Payment, error) {
	if err := ctx.Err(); err != nil {
		return billing.Payment{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.payments[id]
	if !ok || p.Deleted {
		return billing.Payment{}, notFound("payment", id)
	}
	return p, nil
}

func (s *Store) FindPaymentByGateway(ctx context.Context, gateway, gid string) (billing.Payment, error) {
	if err := ctx.Err(); err != nil {
		return billing.Payment{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.paymentsByGW[gwKey(gateway, gid)]
	if !ok || gid == "" || s.payments[id].Deleted {
		return billing.Payment{}, notFound("gateway payment", gid)
	}
	return s.payments[id], nil
}

// UpdatePayment writes the fields where changed differs from read, conditionally; see
// billing.PaymentStore.
func (s *Store) UpdatePayment(ctx context.Context, read, changed billing.Payment) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	id := read.ID
	if id == "" || (changed.ID != "" && changed.ID != id) {
		return invalid("payment change for %q names payment %q", id, changed.ID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.payments[id]
	if !ok || cur.Deleted {
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
	next := cur
	apply(paymentFields, &next, &read, &changed)
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
	s.payments[id] = next
	s.consolePayment(cur, next, false)
	return nil
}

func (s *Store) CancelStalePayments(ctx context.Context, createdBefore, now time.Time, reason string, limit int) ([]billing.Payment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, p := range s.payments {
		if !p.Deleted && p.Status == billing.PaymentStatusPending && !p.CreatedAt.After(createdBefore) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	out := make([]billing.Payment, 0, len(ids))
	for _, id := range ids {
		p := s.payments[id]
		p.Status, p.Reason, p.UpdatedAt, p.ProcessedAt = billing.PaymentStatusCancelled, reason, t0(now), t0(now)
		p.Version++
		s.payments[id] = p
		out = append(out, p)
	}
	return out, nil
}
