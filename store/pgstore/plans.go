package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/renewkit/renewkit/billing"
)

const planCols = `id, name, billing_cycle, price_amount, price_currency::text, active, created_at, updated_at, flag_del`

func scanPlan(r pgx.Rows) (billing.Plan, error) {
	var p billing.Plan
	var cycle string
	err := r.Scan(&p.ID, &p.Name, &cycle, &p.Price.Amount, &p.Price.Currency, &p.Active, &p.CreatedAt, &p.UpdatedAt, &p.Deleted)
	p.BillingCycle, p.CreatedAt, p.UpdatedAt = billing.Cycle(cycle), t0(p.CreatedAt), t0(p.UpdatedAt)
	return p, err
}

// InsertPlan stores p, assigning its ID when empty; ErrConflict on a duplicate id.
func (s *Store) InsertPlan(ctx context.Context, p *billing.Plan) error {
	if p.ID == "" {
		p.ID = billing.NewID()
	}
	_, err := s.exec(ctx, s.t(`INSERT INTO {schema}.plans (id, name, billing_cycle, price_amount, price_currency, active, created_at, updated_at, flag_del)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`),
		p.ID, p.Name, string(p.BillingCycle), p.Price.Amount, p.Price.Currency, p.Active, rt(p.CreatedAt), rt(p.UpdatedAt), p.Deleted)
	if err != nil {
		return s.wrap(err, "inserting plan %q", p.ID)
	}
	p.CreatedAt, p.UpdatedAt = t0(p.CreatedAt), t0(p.UpdatedAt)
	return nil
}

func (s *Store) GetPlan(ctx context.Context, id string) (billing.Plan, error) {
	return one(ctx, s, scanPlan, "plan", id, s.t(`SELECT `+planCols+` FROM {schema}.plans WHERE id = $1 AND NOT flag_del`), id)
}

// ListPlans returns the live plans by id.
func (s *Store) ListPlans(ctx context.Context) ([]billing.Plan, error) {
	ps, err := collect(ctx, s, scanPlan, s.t(`SELECT `+planCols+` FROM {schema}.plans WHERE NOT flag_del ORDER BY id`))
	if ps == nil && err == nil {
		ps = []billing.Plan{}
	}
	return ps, s.wrap(err, "listing plans")
}
