package memstore

import (
	"context"
	"sort"

	"github.com/renewkit/renewkit/billing"
)

func normPlan(p billing.Plan) billing.Plan {
	p.CreatedAt, p.UpdatedAt = t0(p.CreatedAt), t0(p.UpdatedAt)
	return p
}

func (s *Store) InsertPlan(ctx context.Context, p *billing.Plan) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.ID == "" {
		p.ID = billing.NewID()
	}
	if _, ok := s.plans[p.ID]; ok {
		return conflict("plan", p.ID)
	}
	*p = normPlan(*p)
	s.plans[p.ID] = *p
	return nil
}

func (s *Store) GetPlan(ctx context.Context, id string) (billing.Plan, error) {
	if err := ctx.Err(); err != nil {
		return billing.Plan{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.plans[id]
	if !ok || p.Deleted {
		return billing.Plan{}, notFound("plan", id)
	}
	return p, nil
}

func (s *Store) ListPlans(ctx context.Context) ([]billing.Plan, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]billing.Plan, 0, len(s.plans))
	for _, p := range s.plans {
		if !p.Deleted {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
