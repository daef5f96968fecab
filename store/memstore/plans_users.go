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
		hidden: func(p billing.Plan) bool { return p.Deleted },
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

func newUsers() table[billing.User] {
	return table[billing.User]{
		kind: "user", rows: map[string]billing.User{}, norm: normUser,
		id:     func(u *billing.User) *string { return &u.ID },
		hidden: func(u billing.User) bool { return u.Deleted },
	}
}

func normUser(u billing.User) billing.User {
	u.AccessUntil, u.CreatedAt, u.UpdatedAt = t0(u.AccessUntil), t0(u.CreatedAt), t0(u.UpdatedAt)
	return u
}

func (s *Store) InsertUser(ctx context.Context, u *billing.User) error {
	return s.update(ctx, func() error {
		if err := s.users.insert(u); err != nil {
			return err
		}
		s.consoleUser(*u)
		return nil
	})
}

func (s *Store) GetUser(ctx context.Context, id string) (billing.User, error) {
	return read(ctx, s, func() (billing.User, error) {
		return s.users.get(id)
	})
}

// ListUsers returns each non-deleted user among ids once, in the order of ids.
func (s *Store) ListUsers(ctx context.Context, ids []string) ([]billing.User, error) {
	return read(ctx, s, func() ([]billing.User, error) {
		out := make([]billing.User, 0, len(ids))
		var seen map[string]struct{} // only when ids are many; a short list is checked in place
		if len(ids) > 16 {
			seen = make(map[string]struct{}, len(ids))
		}
		for i, id := range ids {
			u, ok := s.users.rows[id]
			if !ok || u.Deleted {
				continue
			}
			if seen != nil {
				if _, dup := seen[id]; dup {
					continue
				}
				seen[id] = struct{}{}
			} else if containsBefore(ids, i) {
				continue
			}
			out = append(out, u)
		}
		return out, nil
	})
}

// containsBefore reports whether ids[i] occurs in ids[:i].
func containsBefore(ids []string, i int) bool {
	for _, id := range ids[:i] {
		if id == ids[i] {
			return true
		}
	}
	return false
}
