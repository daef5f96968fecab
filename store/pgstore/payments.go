package pgstore

import (
	"cmp"
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
	return listWithEffects(ctx, s, scanPayment, func(p billing.Payment) string { return p.ID }, "payments", paymentsWithEffectsSQL, limit)
}

// listWithEffects runs sql, a list of the records of kind with pending effects ($1 limit, 1
// or more), reporting the unreadable ones next to the others (see collectReadable).
func listWithEffects[T any](ctx context.Context, s *Store, scan func(pgx.Rows) (T, error), id func(T) string, kind, sql string, limit int) ([]T, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	xs, err := collectReadable(ctx, s, scan, id, s.t(sql), max(limit, 1))
	if err != nil && !onlyRecordErrors(err) {
		return nil, s.wrap(err, "listing %s with pending effects", kind)
	}
	return xs, err
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
	return xs, recordErrs(bad)
}

// recordErrs joins the unreadable records' errors, by record id, in id order; nil if none.
func recordErrs(bad map[string]error) error {
	errs := make([]error, 0, len(bad))
	for _, k := range slices.Sorted(maps.Keys(bad)) {
		errs = append(errs, bad[k])
	}
	return joinErrs(errs)
}

// CancelStalePayments cancels up to limit stale pending payments in one transaction that
// first locks the candidates (SELECT … FOR UPDATE SKIP LOCKED: rows another caller holds
// are skipped, so concurrent callers get disjoint payments), decodes them, and cancels only
// the readable ones (UPDATE … RETURNING). An unreadable candidate is left as it is and
// reported as a *billing.RecordError next to the cancelled payments; it takes none of the
// limit's places: the next round of candidates, in the same transaction, passes over it. So
// does a candidate carrying pending effects (they are finished first). effects, when not
// nil, is written into each cancelled row's pending column by the same UPDATE.
func (s *Store) CancelStalePayments(ctx context.Context, createdBefore, now time.Time, reason string, limit int, effects *billing.Effects) ([]billing.Payment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pending, err := encodeEffects(effects)
	if err != nil {
		return nil, fmt.Errorf("pgstore: cancelling stale payments: encoding effects: %w", err)
	}
	var out []billing.Payment
	var bad map[string]error
	err = s.retry(ctx, func() error {
		out, bad = nil, map[string]error{}
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			skip := []string{} // the candidates met so far that are not cancelled (unreadable, or with pending effects), locked by this transaction
			for {
				var want any // NULL: LIMIT ALL
				if limit > 0 {
					if limit-len(out) <= 0 {
						return nil
					}
					want = limit - len(out)
				}
				rows, err := tx.Query(ctx, s.t(staleCandidatesSQL), rt(createdBefore), skip, want)
				if err != nil {
					return err
				}
				var ids []string
				n := 0
				for rows.Next() {
					n++
					p, err := scanPayment(rows)
					if re, ok := err.(*billing.RecordError); ok {
						bad[re.ID] = re
						skip = append(skip, re.ID)
						continue
					}
					if err != nil {
						rows.Close()
						return err
					}
					if p.Pending != nil { // its effects first: cancelling now would lose them
						skip = append(skip, p.ID)
						continue
					}
					ids = append(ids, p.ID)
				}
				rows.Close()
				if err := rows.Err(); err != nil {
					return err
				}
				if len(ids) > 0 {
					rows, err := tx.Query(ctx, s.t(staleCancelSQL), ids, rt(now), reason, jsonbArg(pending))
					if err != nil {
						return err
					}
					got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (billing.Payment, error) { return scanPayment(r.(pgx.Rows)) })
					if err != nil {
						return err
					}
					out = append(out, got...)
				}
				if limit <= 0 || n < want.(int) {
					return nil
				}
			}
		})
	})
	if err != nil {
		return nil, s.wrap(err, "cancelling stale payments")
	}
	// RETURNING has no order: the candidates' order, oldest first.
	slices.SortFunc(out, func(a, b billing.Payment) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, recordErrs(bad)
}

// staleCandidatesSQL locks the next stale payments for CancelStalePayments ($1 created
// before, $2 ids to pass over, $3 limit or NULL for all), skipping rows another caller holds.
var staleCandidatesSQL = `SELECT ` + paymentCols + ` FROM {schema}.payments
	WHERE status = 'pending' AND NOT flag_del AND created_at <= $1 AND id <> ALL($2::text[])
	ORDER BY created_at, id LIMIT $3::bigint FOR UPDATE SKIP LOCKED`

// staleCancelSQL cancels the candidates CancelStalePayments locked and could read ($1 ids,
// $2 now, $3 reason, $4 the pending effects or NULL).
var staleCancelSQL = `UPDATE {schema}.payments SET status = 'cancelled', reason = $3,
		updated_at = $2, processed_at = $2, version = version + 1, pending = $4::jsonb
	WHERE id = ANY($1::text[]) AND status = 'pending' AND NOT flag_del AND pending IS NULL
	RETURNING ` + paymentCols
