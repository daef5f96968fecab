package memstore

import (
	"context"
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

// newSessions holds the sessions; a soft-deleted one is still found by id.
func newSessions() table[billing.Session] {
	return table[billing.Session]{
		kind: "session", rows: map[string]billing.Session{}, norm: normSession,
		id: func(se *billing.Session) *string { return &se.ID },
	}
}

func normSession(se billing.Session) billing.Session {
	se.ExpiresAt, se.CreatedAt, se.DeletedAt = t0(se.ExpiresAt), t0(se.CreatedAt), t0(se.DeletedAt)
	return se
}

func (s *Store) InsertSession(ctx context.Context, se *billing.Session) error {
	return s.update(ctx, func() error {
		return s.sessions.insert(se)
	})
}

func (s *Store) GetSession(ctx context.Context, id string) (billing.Session, error) {
	return read(ctx, s, func() (billing.Session, error) {
		return s.sessions.get(id)
	})
}

func (s *Store) DeleteExpiredSessions(ctx context.Context, expiredBefore, now time.Time, limit int) ([]billing.Session, error) {
	return write(ctx, s, func() ([]billing.Session, error) {
		var ids []string
		for id, se := range s.sessions.rows {
			if !se.Deleted && !se.ExpiresAt.After(expiredBefore) {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		if limit > 0 && len(ids) > limit {
			ids = ids[:limit]
		}
		out := make([]billing.Session, 0, len(ids))
		for _, id := range ids {
			se := s.sessions.rows[id]
			se.Deleted, se.DeletedAt = true, t0(now)
			s.sessions.rows[id] = se
			out = append(out, se)
		}
		return out, nil
	})
}
