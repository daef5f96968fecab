package pgstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/renewkit/renewkit/billing"
)

var paymentCols = `id, user_id, plan_id, subscription_id, amount, currency::text, status, gateway, gateway_payment_id,
	gateway_subscription_id, reason, ` + z("processed_at") + `, created_at, updated_at, flag_del, version,
	refunded_amount, reversal_reason, ` + z("reversed_at") + `, pending`

// scanPayment reads a row of paymentCols; a payment whose pending effects cannot be decoded
// is reported as a *billing.RecordError.
func scanPayment(r pgx.Rows) (billing.Payment, error) {
	var p billing.Payment
	var status string
	var pending []byte
	err := r.Scan(&p.ID, &p.UserID, &p.PlanID, &p.SubscriptionID, &p.Amount.Amount, &p.Amount.Currency, &status,
		&p.Gateway, &p.GatewayPaymentID, &p.GatewaySubscriptionID, &p.Reason, &p.ProcessedAt, &p.CreatedAt, &p.UpdatedAt,
		&p.Deleted, &p.Version, &p.RefundedAmount, &p.ReversalReason, &p.ReversedAt, &pending)
	if err != nil {
		return p, err
	}
	p.Status = billing.PaymentStatus(status)
	p.ProcessedAt, p.CreatedAt, p.UpdatedAt, p.ReversedAt = t0(p.ProcessedAt), t0(p.CreatedAt), t0(p.UpdatedAt), t0(p.ReversedAt)
	if p.Pending, err = decodeEffects(pending); err != nil {
		return p, &billing.RecordError{Collection: "payments", ID: p.ID, Err: err}
	}
	return p, nil
}

// jsonbArg is the argument that writes encoded effects to a jsonb column (NULL for none).
func jsonbArg(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// InsertPayment stores p, assigning its ID when empty; ErrConflict on a duplicate id or
// (gateway, gateway_payment_id).
func (s *Store) InsertPayment(ctx context.Context, p *billing.Payment) error {
	if p.ID == "" {
		p.ID = billing.NewID()
	}
	pending, err := encodeEffects(p.Pending)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, s.t(`INSERT INTO {schema}.payments (id, user_id, plan_id, subscription_id, amount, currency,
		status, gateway, gateway_payment_id, gateway_subscription_id, reason, processed_at, created_at, updated_at, flag_del, version,
		refunded_amount, reversal_reason, reversed_at, pending)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20::jsonb)`),
		p.ID, p.UserID, p.PlanID, p.SubscriptionID, p.Amount.Amount, p.Amount.Currency, string(p.Status), p.Gateway,
		p.GatewayPaymentID, p.GatewaySubscriptionID, p.Reason, nt(p.ProcessedAt), rt(p.CreatedAt), rt(p.UpdatedAt), p.Deleted, p.Version,
		p.RefundedAmount, p.ReversalReason, nt(p.ReversedAt), jsonbArg(pending))
	if err != nil {
		return s.wrap(err, "inserting payment %q", p.ID)
	}
	p.ProcessedAt, p.CreatedAt, p.UpdatedAt, p.ReversedAt = t0(p.ProcessedAt), t0(p.CreatedAt), t0(p.UpdatedAt), t0(p.ReversedAt)
	if p.Pending != nil {
		e := normEffects(*p.Pending)
		p.Pending = &e
	}
	return nil
}

func (s *Store) GetPayment(ctx context.Context, id string) (billing.Payment, error) {
	return one(ctx, s, scanPayment, "payment", id, s.t(`SELECT `+paymentCols+` FROM {schema}.payments WHERE id = $1 AND NOT flag_del`), id)
}

func (s *Store) FindPaymentByGateway(ctx context.Context, gateway, gid string) (billing.Payment, error) {
	if gid == "" {
		return billing.Payment{}, notFound("gateway payment", gid)
	}
	return one(ctx, s, scanPayment, "gateway payment", gid, s.t(`SELECT `+paymentCols+` FROM {schema}.payments
		WHERE gateway = $1 AND gateway_payment_id = $2 AND NOT flag_del`), gateway, gid)
}

// paymentColumn is one writable payment column.
type paymentColumn struct {
	name string
	kind colKind
	get  func(*billing.Payment) any
}

var paymentColumns = []paymentColumn{
	{billing.FieldUserID, kText, func(p *billing.Payment) any { return p.UserID }},
	{billing.FieldPlanID, kText, func(p *billing.Payment) any { return p.PlanID }},
	{billing.FieldSubscriptionID, kText, func(p *billing.Payment) any { return p.SubscriptionID }},
	{billing.FieldAmount, kInt, func(p *billing.Payment) any { return p.Amount.Amount }},
	{billing.FieldCurrency, kText, func(p *billing.Payment) any { return p.Amount.Currency }},
	{billing.FieldStatus, kText, func(p *billing.Payment) any { return string(p.Status) }},
	{billing.FieldGateway, kText, func(p *billing.Payment) any { return p.Gateway }},
	{billing.FieldGatewayPaymentID, kText, func(p *billing.Payment) any { return p.GatewayPaymentID }},
	{billing.FieldGatewaySubscriptionID, kText, func(p *billing.Payment) any { return p.GatewaySubscriptionID }},
	{billing.FieldReason, kText, func(p *billing.Payment) any { return p.Reason }},
	{billing.FieldProcessedAt, kOptTime, func(p *billing.Payment) any { return p.ProcessedAt }},
	{billing.FieldCreatedAt, kTime, func(p *billing.Payment) any { return p.CreatedAt }},
	{billing.FieldUpdatedAt, kTime, func(p *billing.Payment) any { return p.UpdatedAt }},
	{billing.FieldDeleted, kBool, func(p *billing.Payment) any { return p.Deleted }},
	{billing.FieldRefundedAmount, kInt, func(p *billing.Payment) any { return p.RefundedAmount }},
	{billing.FieldReversalReason, kText, func(p *billing.Payment) any { return p.ReversalReason }},
	{billing.FieldReversedAt, kOptTime, func(p *billing.Payment) any { return p.ReversedAt }},
}

// UpdatePayment writes the fields where changed differs from read in one conditional
// UPDATE; see billing.PaymentStore.
func (s *Store) UpdatePayment(ctx context.Context, read, changed billing.Payment) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	id := read.ID
	if id == "" || (changed.ID != "" && changed.ID != id) {
		return invalid("payment change for %q names payment %q", id, changed.ID)
	}
	write := map[string]bool{}
	for _, f := range billing.ChangedPaymentFields(read, changed) {
		write[f] = true
	}
	args := []any{id, string(read.Status)}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	sets := []string{"version = version + 1"}
	conds := []string{"id = $1", "NOT flag_del", "status = $2"}
	for _, c := range paymentColumns {
		if !write[c.name] {
			continue
		}
		col := c.name
		if col == billing.FieldAmount {
			col = "amount"
		}
		conv := func(v any) any {
			switch c.kind {
			case kOptTime:
				return nt(v.(time.Time))
			case kTime:
				return rt(v.(time.Time))
			}
			return v
		}
		sets = append(sets, col+" = "+arg(conv(c.get(&changed))))
		switch c.kind {
		case kTime, kOptTime:
			conds = append(conds, "date_trunc('milliseconds', "+col+") IS NOT DISTINCT FROM "+arg(conv(c.get(&read))))
		case kText:
			conds = append(conds, col+"::text = "+arg(c.get(&read)))
		default:
			conds = append(conds, col+" = "+arg(c.get(&read)))
		}
	}
	if changed.Pending != nil && (read.Pending == nil || read.Pending.Token != changed.Pending.Token) {
		// New pending effects: written with the change, only over none.
		pending, err := encodeEffects(changed.Pending)
		if err != nil {
			return err
		}
		sets = append(sets, "pending = "+arg(jsonbArg(pending))+"::jsonb")
		conds = append(conds, "pending IS NULL")
	}
	tag, err := s.exec(ctx, s.t(`UPDATE {schema}.payments SET `+strings.Join(sets, ", ")+` WHERE `+strings.Join(conds, " AND ")), args...)
	if err != nil {
		return s.wrap(err, "updating payment %q", id)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	live, err := s.liveIDs(ctx, "payments", []string{id})
	if err != nil {
		return err
	}
	if !live[id] {
		return notFound("payment", id)
	}
	return conflict("payment", id, "changed since it was read (its status or a field the change writes differs, or it carries pending effects)")
}

// completePaymentEffectsSQL clears payment $1's pending effects when token $2 recorded them.
const completePaymentEffectsSQL = `UPDATE {schema}.payments SET pending = NULL WHERE id = $1 AND pending->>'token' = $2`

// paymentsWithEffectsSQL lists up to $1 live payments with pending effects, in id order.
var paymentsWithEffectsSQL = `SELECT ` + paymentCols + ` FROM {schema}.payments WHERE NOT flag_del AND pending IS NOT NULL
	ORDER BY id COLLATE "C" LIMIT $1`

// CompletePaymentEffects clears the payment's pending effects when they are still the ones
// token recorded; see billing.PaymentStore.
func (s *Store) CompletePaymentEffects(ctx context.Context, id, token string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := s.exec(ctx, s.t(completePaymentEffectsSQL), id, token)
	return s.wrap(err, "completing the effects of payment %q", id)
}

// ListPaymentsWithEffects returns up to limit live payments with pending effects in id
// order (the payments_pending index); see billing.PaymentStore.
func (s *Store) ListPaymentsWithEffects(ctx context.Context, limit int) ([]billing.Payment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ps, err := collectReadable(ctx, s, scanPayment, func(p billing.Payment) string { return p.ID },
		s.t(paymentsWithEffectsSQL), max(limit, 1))
	if err != nil && !onlyRecordErrors(err) {
		return nil, s.wrap(err, "listing payments with pending effects")
	}
	return ps, err
}

// collectReadable is collect for rows scan may report as a *billing.RecordError (a record it
// cannot decode): those are left out and reported, joined, next to the others (id tells
// the records read).
func collectReadable[T any](ctx context.Context, s *Store, scan func(pgx.Rows) (T, error), id func(T) string, sql string, args ...any) ([]T, error) {
	bad := map[string]error{} // by record: a retried statement meets the same rows again
	xs, err := collect(ctx, s, func(rows pgx.Rows) (T, error) {
		x, err := scan(rows)
		if re, ok := err.(*billing.RecordError); ok {
			bad[re.ID] = re
			var zero T
			return zero, nil
		}
		return x, err
	}, sql, args...)
	if err != nil {
		return nil, err
	}
	if len(bad) == 0 {
		return xs, nil
	}
	if xs = slices.DeleteFunc(xs, func(x T) bool { return id(x) == "" }); len(xs) == 0 {
		xs = nil
	}
	errs := make([]error, 0, len(bad))
	for _, k := range slices.Sorted(maps.Keys(bad)) {
		errs = append(errs, bad[k])
	}
	return xs, joinErrs(errs)
}

// CancelStalePayments cancels up to limit stale pending payments in one statement; rows
// another caller is cancelling are skipped (FOR UPDATE SKIP LOCKED), so concurrent callers
// get disjoint payments.
func (s *Store) CancelStalePayments(ctx context.Context, createdBefore, now time.Time, reason string, limit int) ([]billing.Payment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ps, err := collect(ctx, s, scanPayment, s.t(staleSQL(limit)), rt(createdBefore), rt(now), reason)
	return ps, s.wrap(err, "cancelling stale payments")
}

// staleSQL is CancelStalePayments' statement ($1 created before, $2 now, $3 reason).
func staleSQL(limit int) string {
	lim := "ALL"
	if limit > 0 {
		lim = fmt.Sprint(limit)
	}
	return `UPDATE {schema}.payments SET status = 'cancelled', reason = $3,
			updated_at = $2, processed_at = $2, version = version + 1
		WHERE id IN (SELECT id FROM {schema}.payments
			WHERE status = 'pending' AND NOT flag_del AND created_at <= $1
			ORDER BY created_at, id LIMIT ` + lim + ` FOR UPDATE SKIP LOCKED)
		RETURNING ` + paymentCols
}
