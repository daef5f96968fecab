package memstore

import (
	"context"
	"sort"

	"github.com/renewkit/renewkit/billing"
)

func newPlans() table[billing.Plan] {
	return table[billing.Plan]{
		kind: "plan", rows: map[string]billing.Plan{}, norm: normPlan,
		id:     func(p *billing.Plan) *string { return &p.ID },
		hidden: func(p *billing.Plan) bool { return p.Deleted },
	}
}

func normPlan(p billing.Plan) billing.Plan {
	p.CreatedAt, p.UpdatedAt = t0(p.CreatedAt), t0(p.UpdatedAt)
	return p
}

func (s *Store) InsertPlan(ctx context.Context, p *billing.Plan) error {
	return s.update(ctx, func() error {
		return s.plans.insert(p)
	})
}

func (s *Store) GetPlan(ctx context.Context, id string) (billing.Plan, error) {
	return read(ctx, s, func() (billing.Plan, error) {
		return s.plans.get(id)
	})
}

func (s *Store) ListPlans(ctx context.Context) ([]billing.Plan, error) {
	return read(ctx, s, func() ([]billing.Plan, error) {
		out := make([]billing.Plan, 0, len(s.plans.rows))
		for _, p := range s.plans.rows {
			if !p.Deleted {
				out = append(out, p)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
		return out, nil
	})
}
