package mongostore

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/renewkit/renewkit/billing"
)

type planDoc struct {
	ID           docID         `bson:"_id"`
	Name         string        `bson:"name"`
	BillingCycle string        `bson:"billing_cycle"`
	Price        bson.RawValue `bson:"price"` // read by moneyCodec
	Currency     string        `bson:"currency"`
	Active       bool          `bson:"active"`
	CreatedAt    time.Time     `bson:"created_at"`
	UpdatedAt    time.Time     `bson:"updated_at"`
	Deleted      bool          `bson:"flag_del"`
}

func (s *Store) decodePlan(raw bson.Raw) (billing.Plan, error) {
	d, err := unmarshal[planDoc](raw)
	if err != nil {
		return billing.Plan{}, err
	}
	price, err := s.money.read("price", d.Price, d.Currency)
	return billing.Plan{
		ID: string(d.ID), Name: d.Name, BillingCycle: billing.Cycle(d.BillingCycle),
		Price: price, Active: d.Active,
		CreatedAt: utc(d.CreatedAt), UpdatedAt: utc(d.UpdatedAt), Deleted: d.Deleted,
	}, err
}

func (s *Store) InsertPlan(ctx context.Context, p *billing.Plan) error {
	if err := prepareInsert(ctx, &p.ID); err != nil {
		return err
	}
	f := &fields{}
	f.put("name", p.Name)
	f.put("billing_cycle", string(p.BillingCycle))
	f.put("price", s.money.write(p.Price.Amount, p.Price.Currency))
	f.put("currency", p.Price.Currency)
	f.put("active", p.Active)
	f.time("created_at", p.CreatedAt)
	f.time("updated_at", p.UpdatedAt)
	f.put("flag_del", p.Deleted)
	if err := insert(ctx, s.plans, f.doc(p.ID), "plan", p.ID); err != nil {
		return err
	}
	p.CreatedAt, p.UpdatedAt = utc(p.CreatedAt), utc(p.UpdatedAt)
	return nil
}

func (s *Store) GetPlan(ctx context.Context, id string) (billing.Plan, error) {
	if err := ctx.Err(); err != nil {
		return billing.Plan{}, err
	}
	return findLive(ctx, s.plans, id, s.decodePlan, "plan")
}

// ListPlans returns the live plans. A plan that does not decode (a price the configured
// Config.Money cannot read, say) is left out and reported as a *billing.RecordError, several
// joined, next to the plans it read; callers read the others, and GetPlan reports that
// plan alone.
func (s *Store) ListPlans(ctx context.Context) ([]billing.Plan, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cur, err := s.plans.Find(ctx, bson.D{notDeleted}, findOpts().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, opErr("list plans", err)
	}
	out, err := decodeEach(ctx, cur, s.plans.Name(), s.decodePlan)
	var rec *billing.RecordError
	if err != nil && !errors.As(err, &rec) {
		return nil, opErr("list plans", err)
	}
	// Ids stored as ObjectIDs and as strings sort apart on the server; order as strings.
	sortBy(out, func(p billing.Plan) string { return p.ID })
	return out, err
}
