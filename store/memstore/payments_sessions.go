package memstore

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/renewkit/renewkit/billing"
)

func newPayments() table[billing.Payment] {
	return table[billing.Payment]{
		kind: "payment", rows: map[string]billing.Payment{}, norm: normPayment,
		id:     func(p *billing.Payment) *string { return &p.ID },
		hidden: func(p billing.Payment) bool { return p.Deleted },
		clone:  clonePayment,
	}
}

// normPayment returns p with its times normalised and its pending effects copied.
func normPayment(p billing.Payment) billing.Payment {
	p.ProcessedAt, p.CreatedAt, p.UpdatedAt, p.ReversedAt = t0(p.ProcessedAt), t0(p.CreatedAt), t0(p.UpdatedAt), t0(p.ReversedAt)
	p.Pending = copyEffects(p.Pending)
	return p
}

// clonePayment returns a stored payment with its pending effects copied.
func clonePayment(p billing.Payment) billing.Payment {
	p.Pending = copyEffects(p.Pending)
	return p
}

// newPaymentEffects reports whether the change from read to changed records new pending
// effects (see billing.PaymentStore.UpdatePayment).
func newPaymentEffects(read, changed *billing.Payment) bool {
	return changed.Pending != nil && (read.Pending == nil || read.Pending.Token != changed.Pending.Token)
}

func (s *Store) CompletePaymentEffects(ctx context.Context, id, token string) error {
	return s.update(ctx, func() error {
		if p, ok := s.payments.find(id); ok && p.Pending != nil && p.Pending.Token == token {
			p.Pending = nil
			s.payments.rows[id] = p
		}
		return nil
	})
}

func (s *Store) ListPaymentsWithEffects(ctx context.Context, limit int) ([]billing.Payment, error) {
	return read(ctx, s, func() ([]billing.Payment, error) {
		var ids []string
		for id, p := range s.payments.rows {
			if !p.Deleted && p.Pending != nil {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		out := make([]billing.Payment, 0, min(len(ids), max(limit, 1)))
		for _, id := range ids[:min(len(ids), max(limit, 1))] {
			out = append(out, s.payments.out(s.payments.rows[id]))
		}
		return out, nil
	})
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

// stalePayment selects the payments CancelStalePayments cancels: live, pending and created
// at or before createdBefore.
func stalePayment(createdBefore time.Time) func(*billing.Payment) bool {
	return func(p *billing.Payment) bool {
		return !p.Deleted && p.Status == billing.PaymentStatusPending && !p.CreatedAt.After(createdBefore)
	}
}

func (s *Store) CancelStalePayments(ctx context.Context, createdBefore, now time.Time, reason string, limit int, effects *billing.Effects) ([]billing.Payment, error) {
	stale := stalePayment(createdBefore)
	return write(ctx, s, func() ([]billing.Payment, error) {
		return s.payments.sweep(func(p *billing.Payment) bool { return p.Pending == nil && stale(p) }, limit, func(p *billing.Payment) {
			p.Status, p.Reason, p.UpdatedAt, p.ProcessedAt = billing.PaymentStatusCancelled, reason, t0(now), t0(now)
			p.Pending = copyEffects(effects)
			p.Version++
		}), nil
	})
}

// newSessions holds the sessions; a soft-deleted one is still found by id.
func newSessions() table[billing.Session] {
	return table[billing.Session]{
		kind: "session", rows: map[string]billing.Session{}, norm: normSession,
		id:    func(se *billing.Session) *string { return &se.ID },
		clone: cloneSession,
	}
}

// normSession returns se with its times normalised and its pending effects copied.
func normSession(se billing.Session) billing.Session {
	se.ExpiresAt, se.CreatedAt, se.DeletedAt = t0(se.ExpiresAt), t0(se.CreatedAt), t0(se.DeletedAt)
	se.Pending = copyEffects(se.Pending)
	return se
}

// cloneSession returns a stored session with its pending effects copied.
func cloneSession(se billing.Session) billing.Session {
	se.Pending = copyEffects(se.Pending)
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

// expiredSession selects the sessions DeleteExpiredSessions deletes: live and expired at or
// before expiredBefore.
func expiredSession(expiredBefore time.Time) func(*billing.Session) bool {
	return func(se *billing.Session) bool { return !se.Deleted && !se.ExpiresAt.After(expiredBefore) }
}

func (s *Store) DeleteExpiredSessions(ctx context.Context, expiredBefore, now time.Time, limit int, effects *billing.Effects) ([]billing.Session, error) {
	expired := expiredSession(expiredBefore)
	return write(ctx, s, func() ([]billing.Session, error) {
		return s.sessions.sweep(func(se *billing.Session) bool { return se.Pending == nil && expired(se) }, limit, func(se *billing.Session) {
			se.Deleted, se.DeletedAt = true, t0(now)
			se.Pending = copyEffects(effects)
		}), nil
	})
}

func (s *Store) ListSessionsWithEffects(ctx context.Context, limit int) ([]billing.Session, error) {
	return read(ctx, s, func() ([]billing.Session, error) {
		byToken := map[string][]string{}
		for id, se := range s.sessions.rows {
			if se.Pending != nil {
				byToken[se.Pending.Token] = append(byToken[se.Pending.Token], id)
			}
		}
		tokens := slices.Sorted(maps.Keys(byToken))
		var out []billing.Session
		for _, tok := range tokens[:min(len(tokens), max(limit, 1))] {
			slices.Sort(byToken[tok])
			for _, id := range byToken[tok] {
				out = append(out, s.sessions.out(s.sessions.rows[id]))
			}
		}
		return out, nil
	})
}

func (s *Store) CompleteSessionEffects(ctx context.Context, token string) error {
	return s.update(ctx, func() error {
		for id, se := range s.sessions.rows {
			if se.Pending != nil && se.Pending.Token == token {
				se.Pending = nil
				s.sessions.rows[id] = se
			}
		}
		return nil
	})
}
