package memstore

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/renewkit/renewkit/billing"
)

func newPayments() table[billing.Payment] {
	return table[billing.Payment]{
		kind: "payment", rows: map[string]billing.Payment{}, norm: normPayment,
		id:     func(p *billing.Payment) *string { return &p.ID },
		hidden: func(p *billing.Payment) bool { return p.Deleted },
	}
}

func normPayment(p billing.Payment) billing.Payment {
	p.ProcessedAt, p.CreatedAt, p.UpdatedAt, p.ReversedAt = t0(p.ProcessedAt), t0(p.CreatedAt), t0(p.UpdatedAt), t0(p.ReversedAt)
	return p
}

func (s *Store) InsertPayment(ctx context.Context, p *billing.Payment) error {
	return s.update(ctx, func() error {
		if err := s.payments.newID(p); err != nil {
			return err
		}
		if p.GatewayPaymentID != "" {
			if _, ok := s.paymentsByGW[gwKey(p.Gateway, p.GatewayPaymentID)]; ok {
				return conflict("gateway payment", p.GatewayPaymentID)
			}
			s.paymentsByGW[gwKey(p.Gateway, p.GatewayPaymentID)] = p.ID
		}
		s.payments.put(p)
		s.consolePayment(billing.Payment{}, *p, true)
		return nil
	})
}

func (s *Store) GetPayment(ctx context.Context, id string) (billing.Payment, error) {
	return read(ctx, s, func() (billing.Payment, error) {
		return s.payments.get(id)
	})
}

func (s *Store) FindPaymentByGateway(ctx context.Context, gateway, gid string) (billing.Payment, error) {
	return read(ctx, s, func() (billing.Payment, error) {
		if p, ok := s.payments.find(s.paymentsByGW[gwKey(gateway, gid)]); ok && gid != "" {
			return p, nil
		}
		return billing.Payment{}, notFound("gateway payment", gid)
	})
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
		s.payments.rows[id] = next
		s.consolePayment(cur, next, false)
		return nil
	})
}

func (s *Store) CancelStalePayments(ctx context.Context, createdBefore, now time.Time, reason string, limit int) ([]billing.Payment, error) {
	return write(ctx, s, func() ([]billing.Payment, error) {
		var ids []string
		for id, p := range s.payments.rows {
			if !p.Deleted && p.Status == billing.PaymentPending && !p.CreatedAt.After(createdBefore) {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		if limit > 0 && len(ids) > limit {
			ids = ids[:limit]
		}
		out := make([]billing.Payment, 0, len(ids))
		for _, id := range ids {
			p := s.payments.rows[id]
			p.Status, p.Reason, p.UpdatedAt, p.ProcessedAt = billing.PaymentCancelled, reason, t0(now), t0(now)
			p.Version++
			s.payments.rows[id] = p
			out = append(out, p)
		}
		return out, nil
	})
}
