package mongostore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
)

type paymentDoc struct {
	ID                    docID         `bson:"_id"`
	UserID                docID         `bson:"user_id"`
	PlanID                docID         `bson:"plan_id"`
	SubscriptionID        docID         `bson:"subscription_id"`
	Amount                bson.RawValue `bson:"amount"` // read by moneyCodec
	Currency              string        `bson:"currency"`
	Status                string        `bson:"status"`
	Gateway               string        `bson:"gateway"`
	GatewayPaymentID      string        `bson:"gateway_payment_id"`
	GatewaySubscriptionID string        `bson:"gateway_subscription_id"`
	Reason                string        `bson:"reason"`
	ProcessedAt           time.Time     `bson:"processed_at"`
	RefundedAmount        int64         `bson:"refunded_amount"`
	ReversalReason        string        `bson:"reversal_reason"`
	ReversedAt            time.Time     `bson:"reversed_at"`
	CreatedAt             time.Time     `bson:"created_at"`
	UpdatedAt             time.Time     `bson:"updated_at"`
	Deleted               bool          `bson:"flag_del"`
	Version               int64         `bson:"version"`
	// Pending effects, in the fields (and encoding) subscriptions use: see encodeEffects.
	PendingToken   string     `bson:"pending_token"`
	PendingEffects string     `bson:"pending_effects"`
	PendingDetails []bson.Raw `bson:"pending_details"`
}

func (s *Store) decodePayment(raw bson.Raw) (billing.Payment, error) {
	d, err := unmarshal[paymentDoc](raw)
	if err != nil {
		return billing.Payment{}, err
	}
	pending, err := decodePending(d.PendingToken, d.PendingEffects, d.PendingDetails)
	if err != nil {
		return billing.Payment{}, err
	}
	amount, err := s.money.read("amount", d.Amount, d.Currency)
	return billing.Payment{
		ID: string(d.ID), UserID: string(d.UserID), PlanID: string(d.PlanID), SubscriptionID: string(d.SubscriptionID),
		Amount: amount, Status: billing.PaymentStatus(d.Status),
		Gateway: d.Gateway, GatewayPaymentID: d.GatewayPaymentID, GatewaySubscriptionID: d.GatewaySubscriptionID,
		Reason: d.Reason, ProcessedAt: utc(d.ProcessedAt), RefundedAmount: d.RefundedAmount,
		ReversalReason: d.ReversalReason, ReversedAt: utc(d.ReversedAt), CreatedAt: utc(d.CreatedAt), UpdatedAt: utc(d.UpdatedAt),
		Deleted: d.Deleted, Pending: pending, Version: d.Version,
	}, err
}

// decodePending decodes the pending effects fields of a document (subscriptions and
// payments store them alike); nil when it has none.
func decodePending(token, js string, details []bson.Raw) (*billing.Effects, error) {
	if js == "" && token == "" {
		return nil, nil
	}
	e, err := decodeEffects(js, details)
	if err != nil {
		return nil, fmt.Errorf("pending_effects: %w", err)
	}
	e.Token = token
	return &e, nil
}

// gatewayPaymentKey is the value of the gateway_payment_key field, which carries the unique
// (sparse) index on (gateway, gateway_payment_id). It is only set when the payment has a
// gateway payment id, so payments without one never collide. A single-field sparse index
// works on MongoDB (a compound sparse index would still index payments that only have a
// gateway) and on FerretDB v1, which accepts and ignores sparse but whose SQLite unique
// indexes let any number of documents lack the field.
func gatewayPaymentKey(gateway, gid string) string { return gateway + ":" + gid }

// paymentFields are the fields renewkit owns in a payments document, named as
// billing.ChangedPaymentFields names them; gateway_payment_key and version are written apart.
// Amount and currency are stored as m says.
func paymentFields(m moneyCodec) fieldSet[billing.Payment] {
	return fieldSet[billing.Payment]{
		{billing.FieldUserID, kindRef, false, func(p billing.Payment) any { return p.UserID }},
		{billing.FieldPlanID, kindRef, false, func(p billing.Payment) any { return p.PlanID }},
		{billing.FieldSubscriptionID, kindRef, true, func(p billing.Payment) any { return p.SubscriptionID }},
		{billing.FieldAmount, kindMoney, false, func(p billing.Payment) any { return amountValue{p.Amount.Amount, p.Amount.Currency, m} }},
		{billing.FieldCurrency, kindStr, false, func(p billing.Payment) any { return currencyValue{p.Amount.Currency, m} }},
		{billing.FieldStatus, kindStr, false, func(p billing.Payment) any { return string(p.Status) }},
		{billing.FieldGateway, kindStr, false, func(p billing.Payment) any { return p.Gateway }},
		{billing.FieldGatewayPaymentID, kindStr, true, func(p billing.Payment) any { return p.GatewayPaymentID }},
		{billing.FieldGatewaySubscriptionID, kindStr, true, func(p billing.Payment) any { return p.GatewaySubscriptionID }},
		{billing.FieldReason, kindStr, true, func(p billing.Payment) any { return p.Reason }},
		{billing.FieldProcessedAt, kindTime, true, func(p billing.Payment) any { return p.ProcessedAt }},
		{billing.FieldRefundedAmount, kindInt, true, func(p billing.Payment) any { return p.RefundedAmount }},
		{billing.FieldReversalReason, kindStr, true, func(p billing.Payment) any { return p.ReversalReason }},
		{billing.FieldReversedAt, kindTime, true, func(p billing.Payment) any { return p.ReversedAt }},
		{billing.FieldCreatedAt, kindTime, true, func(p billing.Payment) any { return p.CreatedAt }},
		{billing.FieldUpdatedAt, kindTime, true, func(p billing.Payment) any { return p.UpdatedAt }},
		{billing.FieldDeleted, kindFlag, false, func(p billing.Payment) any { return p.Deleted }},
	}
}

// putGatewayPaymentKey sets or drops gateway_payment_key as p's gateway payment id says.
func putGatewayPaymentKey(f *fields, p billing.Payment) {
	if p.GatewayPaymentID != "" {
		f.put("gateway_payment_key", gatewayPaymentKey(p.Gateway, p.GatewayPaymentID))
	} else {
		f.drop("gateway_payment_key")
	}
}

func normPayment(p billing.Payment) billing.Payment {
	p.ProcessedAt, p.CreatedAt, p.UpdatedAt, p.ReversedAt = utc(p.ProcessedAt), utc(p.CreatedAt), utc(p.UpdatedAt), utc(p.ReversedAt)
	return p
}

// gatewayTaken reports whether another payment (soft-deleted ones included) has the
// gateway payment id. Documents in the legacy schema carry no gateway_payment_key, so the
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
	if err := prepareInsert(ctx, &p.ID); err != nil {
		return err
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
	f := s.paymentFields.doc(*p, s.cfg.References)
	putGatewayPaymentKey(f, *p)
	f.put("version", p.Version)
	if p.Pending != nil {
		if err := putEffects(f, "payment", p.ID, *p.Pending); err != nil {
			return err
		}
	}
	if err := insert(ctx, s.payments, f.doc(p.ID), "payment", p.ID); err != nil {
		return err
	}
	*p = normPayment(*p)
	return nil
}

func (s *Store) GetPayment(ctx context.Context, id string) (billing.Payment, error) {
	if err := ctx.Err(); err != nil {
		return billing.Payment{}, err
	}
	return findLive(ctx, s.payments, id, s.decodePayment, "payment")
}

func (s *Store) FindPaymentByGateway(ctx context.Context, gateway, gid string) (billing.Payment, error) {
	if err := ctx.Err(); err != nil {
		return billing.Payment{}, err
	}
	if gid == "" {
		return billing.Payment{}, notFound("gateway payment", gid)
	}
	return findOne(ctx, s.payments, bson.D{{Key: "gateway", Value: gateway}, {Key: "gateway_payment_id", Value: gid}, notDeleted},
		s.decodePayment, "gateway payment", gid)
}

// UpdatePayment writes the changed fields while the payment still holds its status and every
// written field as read, and bumps its version; otherwise it returns billing.ErrConflict.
func (s *Store) UpdatePayment(ctx context.Context, read, changed billing.Payment) error {
	// Implementation:
	// UpdatePayment writes the changed fields with one UpdateOne under the condition flag_del !=
	// true, status and every written field as read, and $inc version (the store checks the
	// condition in ClaimSerialized mode, under the payments write mutex; see bulkApply).
	if err := ctx.Err(); err != nil {
		return err
	}
	if read.ID == "" || changed.ID != "" && changed.ID != read.ID {
		return fmt.Errorf("mongostore: a payment change needs read.ID (and changed.ID empty or the same): %w", billing.ErrInvalidInput)
	}
	names := billing.ChangedPaymentFields(read, changed)
	cond, err := s.paymentFields.cond(bson.D{notDeleted}, read, append([]string{billing.FieldStatus}, names...)...)
	if err != nil {
		return err
	}
	set, err := s.paymentFields.set(changed, names)
	if err != nil {
		return err
	}
	if slices.Contains(names, billing.FieldGateway) || slices.Contains(names, billing.FieldGatewayPaymentID) {
		putGatewayPaymentKey(set, changed)
		if changed.GatewayPaymentID != "" {
			taken, err := s.gatewayTaken(ctx, changed.Gateway, changed.GatewayPaymentID, read.ID)
			if err != nil {
				return opErr("update payment", err)
			}
			if taken {
				return conflict("gateway payment", changed.GatewayPaymentID)
			}
		}
	}
	if changed.Pending != nil && (read.Pending == nil || read.Pending.Token != changed.Pending.Token) {
		// New pending effects: written with the change, only over none.
		if err := putEffects(set, "payment", read.ID, *changed.Pending); err != nil {
			return err
		}
		cond = append(cond, bson.E{Key: "pending_token", Value: bson.D{{Key: "$exists", Value: false}}})
	}
	op := bulkOp{id: read.ID, idv: idValue(read.ID), cond: cond, refs: set.refs,
		upd: set.update(bson.E{Key: "$inc", Value: bson.D{{Key: "version", Value: int64(1)}}})}
	errs := make([]error, 1)
	if err := s.bulkApply(ctx, s.payments, "payment", []bulkOp{op}, errs, func(op bulkOp, doc bson.Raw) error {
		// Called only when the one write did not apply.
		if deleted, _ := doc.Lookup("flag_del").BooleanOK(); doc == nil || deleted {
			return notFound("payment", op.id)
		}
		return fmt.Errorf("mongostore: payment %q changed since it was read: %w", op.id, billing.ErrConflict)
	}); err != nil {
		return err
	}
	return errs[0]
}

// CompletePaymentEffects clears the payment's pending effects when they are still the ones
// token recorded.
func (s *Store) CompletePaymentEffects(ctx context.Context, id, token string) error {
	// Implementation:
	// CompletePaymentEffects removes pending_token, pending_effects and pending_details with
	// one UpdateOne conditional on pending_token, under the payments write mutex in
	// ClaimSerialized mode (bulkApply).
	if err := ctx.Err(); err != nil {
		return err
	}
	op := bulkOp{id: id, idv: idValue(id), cond: bson.D{{Key: "pending_token", Value: token}},
		upd: bson.D{{Key: "$unset", Value: bson.D{
			{Key: "pending_token", Value: ""}, {Key: "pending_effects", Value: ""}, {Key: "pending_details", Value: ""}}}}}
	errs := make([]error, 1)
	if err := s.bulkApply(ctx, s.payments, "payment", []bulkOp{op}, errs, nil); err != nil {
		return err
	}
	return errs[0]
}

// ListPaymentsWithEffects returns up to limit live payments with pending effects (the
// pending_token index) in _id order. Unreadable documents are reported as
// *billing.RecordError next to the others.
func (s *Store) ListPaymentsWithEffects(ctx context.Context, limit int) ([]billing.Payment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cur, err := s.payments.Find(ctx, bson.D{{Key: "pending_token", Value: bson.D{{Key: "$exists", Value: true}}}, notDeleted},
		findOpts().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(max(limit, 1))))
	if err != nil {
		return nil, opErr("list payments with pending effects", err)
	}
	return decodeEach(ctx, cur, s.payments.Name(), s.decodePayment)
}

// CancelStalePayments cancels pending payments created before createdBefore, in rounds of
// Config.BatchSize. A candidate that does not decode is left as it is and reported.
func (s *Store) CancelStalePayments(ctx context.Context, createdBefore, now time.Time, reason string, limit int, effects *billing.Effects) ([]billing.Payment, error) {
	// Implementation:
	// CancelStalePayments cancels in rounds of BatchSize with one updateMany per round, under the
	// payments write mutex in ClaimSerialized mode. Each round decodes the candidates first: one
	// that does not decode is left as it is and reported. The effects, the same for every
	// payment, are $set by that updateMany; a payment with pending effects is not a candidate.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pending := &fields{}
	if effects != nil {
		if err := putEffects(pending, "stale payments", "cancel", *effects); err != nil {
			return nil, err
		}
	}
	due := bson.D{notDeleted, {Key: "status", Value: string(billing.PaymentStatusPending)},
		{Key: "created_at", Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(createdBefore)}}},
		{Key: "pending_token", Value: bson.D{{Key: "$exists", Value: false}}}}
	upd := func(tok string) bson.D {
		n := bson.NewDateTimeFromTime(now)
		return bson.D{
			{Key: "$set", Value: append(bson.D{
				{Key: "status", Value: string(billing.PaymentStatusCancelled)}, {Key: "reason", Value: reason},
				{Key: "updated_at", Value: n}, {Key: "processed_at", Value: n}, {Key: "sweep_token", Value: tok},
			}, pending.set...)},
			{Key: "$inc", Value: bson.D{{Key: "version", Value: int64(1)}}},
		}
	}
	return sweepUpdate(ctx, s, s.payments, "payments", due, upd, limit, s.decodePayment)
}

// CountStalePayments implements billing.CleanupCounter.
func (s *Store) CountStalePayments(ctx context.Context, t time.Time) (int, error) {
	n, err := s.payments.CountDocuments(ctx, bson.D{notDeleted, {Key: "status", Value: string(billing.PaymentStatusPending)},
		{Key: "created_at", Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(t)}}}})
	if err != nil {
		return 0, opErr("count stale payments", err)
	}
	return int(n), nil
}
