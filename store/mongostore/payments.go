package mongostore

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
)

type paymentDoc struct {
	ID                    docID     `bson:"_id"`
	UserID                docID     `bson:"user_id"`
	PlanID                docID     `bson:"plan_id"`
	SubscriptionID        docID     `bson:"subscription_id"`
	Amount                int64     `bson:"amount"`
	Currency              string    `bson:"currency"`
	Status                string    `bson:"status"`
	Gateway               string    `bson:"gateway"`
	GatewayPaymentID      string    `bson:"gateway_payment_id"`
	GatewaySubscriptionID string    `bson:"gateway_subscription_id"`
	Reason                string    `bson:"reason"`
	ProcessedAt           time.Time `bson:"processed_at"`
	CreatedAt             time.Time `bson:"created_at"`
	UpdatedAt             time.Time `bson:"updated_at"`
	Deleted               bool      `bson:"flag_del"`
	Version               int64     `bson:"version"`
}

func decodePayment(raw bson.Raw) (billing.Payment, error) {
	d, err := unmarshal[paymentDoc](raw)
	return billing.Payment{
		ID: string(d.ID), UserID: string(d.UserID), PlanID: string(d.PlanID), SubscriptionID: string(d.SubscriptionID),
		Amount: billing.Money{Amount: d.Amount, Currency: d.Currency}, Status: billing.PaymentStatus(d.Status),
		Gateway: d.Gateway, GatewayPaymentID: d.GatewayPaymentID, GatewaySubscriptionID: d.GatewaySubscriptionID,
		Reason: d.Reason, ProcessedAt: utc(d.ProcessedAt), CreatedAt: utc(d.CreatedAt), UpdatedAt: utc(d.UpdatedAt),
		Deleted: d.Deleted, Version: d.Version,
	}, err
}

// gatewayPaymentKey is the value of the gateway_payment_key field, which carries the unique
// (sparse) index on (gateway, gateway_payment_id). It is only set when the payment has a
// gateway payment id, so payments without one never collide. A single-field sparse index
// works on MongoDB (a compound sparse index would still index payments that only have a
// gateway) and on FerretDB v1, which accepts and ignores sparse but whose SQLite unique
// indexes let any number of documents lack the field.
func gatewayPaymentKey(gateway, gid string) string { return gateway + ":" + gid }

func paymentFields(p billing.Payment, version int64) *fields {
	f := &fields{}
	f.put("user_id", p.UserID)
	f.put("plan_id", p.PlanID)
	f.optStr("subscription_id", p.SubscriptionID)
	f.put("amount", p.Amount.Amount)
	f.put("currency", p.Amount.Currency)
	f.put("status", string(p.Status))
	f.put("gateway", p.Gateway)
	f.optStr("gateway_payment_id", p.GatewayPaymentID)
	if p.GatewayPaymentID != "" {
		f.put("gateway_payment_key", gatewayPaymentKey(p.Gateway, p.GatewayPaymentID))
	} else {
		f.drop("gateway_payment_key")
	}
	f.optStr("gateway_subscription_id", p.GatewaySubscriptionID)
	f.optStr("reason", p.Reason)
	f.time("processed_at", p.ProcessedAt)
	f.time("created_at", p.CreatedAt)
	f.time("updated_at", p.UpdatedAt)
	f.put("flag_del", p.Deleted)
	f.put("version", version)
	return f
}

func normPayment(p billing.Payment) billing.Payment {
	p.ProcessedAt, p.CreatedAt, p.UpdatedAt = utc(p.ProcessedAt), utc(p.CreatedAt), utc(p.UpdatedAt)
	return p
}

// gatewayTaken reports whether another payment (soft-deleted ones included) has the
// gateway payment id. Documents written by the seed carry no gateway_payment_key, so the
// check reads the two fields; the unique index catches races on renewkit's own documents.
func (s *Store) gatewayTaken(ctx context.Context, gateway, gid, exceptID string) (bool, error) {
	q := bson.D{{Key: "gateway", Value: gateway}, {Key: "gateway_payment_id", Value: gid}}
	if exceptID != "" {
		q = append(q, bson.E{Key: "_id", Value: bson.D{{Key: "$nin", Value: bson.A{idValue(exceptID), exceptID}}}})
	}
	n, err := s.payments.CountDocuments(ctx, q, options.Count().SetLimit(1))
	return n > 0, err
}

func (s *Store) InsertPayment(ctx context.Context, p *billing.Payment) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.ID == "" {
		p.ID = billing.NewID()
	}
	if p.GatewayPaymentID != "" {
		taken, err := s.gatewayTaken(ctx, p.Gateway, p.GatewayPaymentID, "")
		if err != nil {
			return opErr("insert payment", err)
		}
		if taken {
			return conflict("gateway payment", p.GatewayPaymentID)
		}
	}
	if err := insert(ctx, s.payments, paymentFields(*p, p.Version).doc(p.ID), "payment", p.ID); err != nil {
		return err
	}
	*p = normPayment(*p)
	return nil
}

func (s *Store) GetPayment(ctx context.Context, id string) (billing.Payment, error) {
	if err := ctx.Err(); err != nil {
		return billing.Payment{}, err
	}
	return findOne(ctx, s.payments, append(byID(id), notDeleted), decodePayment, "payment", id)
}

func (s *Store) FindPaymentByGateway(ctx context.Context, gateway, gid string) (billing.Payment, error) {
	if err := ctx.Err(); err != nil {
		return billing.Payment{}, err
	}
	if gid == "" {
		return billing.Payment{}, notFound("gateway payment", gid)
	}
	return findOne(ctx, s.payments, bson.D{{Key: "gateway", Value: gateway}, {Key: "gateway_payment_id", Value: gid}, notDeleted},
		decodePayment, "gateway payment", gid)
}

func (s *Store) UpdatePayment(ctx context.Context, p billing.Payment) (billing.Payment, error) {
	if err := ctx.Err(); err != nil {
		return billing.Payment{}, err
	}
	if p.GatewayPaymentID != "" {
		taken, err := s.gatewayTaken(ctx, p.Gateway, p.GatewayPaymentID, p.ID)
		if err != nil {
			return billing.Payment{}, opErr("update payment", err)
		}
		if taken {
			return billing.Payment{}, conflict("gateway payment", p.GatewayPaymentID)
		}
	}
	if err := updateVersioned(ctx, s.payments, "payment", p.ID, p.Version, paymentFields(p, p.Version+1).update()); err != nil {
		return billing.Payment{}, err
	}
	p = normPayment(p)
	p.Version++
	return p, nil
}

// CancelStalePayments cancels in rounds of BatchSize with one updateMany per round.
func (s *Store) CancelStalePayments(ctx context.Context, createdBefore, now time.Time, reason string, limit int) ([]billing.Payment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	due := bson.D{notDeleted, {Key: "status", Value: string(billing.PaymentPending)},
		{Key: "created_at", Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(createdBefore)}}}}
	upd := func(tok string) bson.D {
		n := bson.NewDateTimeFromTime(now)
		return bson.D{
			{Key: "$set", Value: bson.D{
				{Key: "status", Value: string(billing.PaymentCancelled)}, {Key: "reason", Value: reason},
				{Key: "updated_at", Value: n}, {Key: "processed_at", Value: n}, {Key: "sweep_token", Value: tok},
			}},
			{Key: "$inc", Value: bson.D{{Key: "version", Value: int64(1)}}},
		}
	}
	return sweepUpdate(ctx, s, s.payments, "payments", due, upd, limit, decodePayment)
}
