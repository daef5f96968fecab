package pgstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/renewkit/renewkit/billing"
)

// subColNames are the columns a subscription is read from, in scanSub's order, before its
// pending effects; optional times are marked with a leading "?".
var subColNames = []string{
	"id", "user_id", "plan_id", "status", "billing_cycle", "current_period_start", "current_period_end",
	"gateway", "gateway_subscription_id", "cancel_at_period_end", "expiration_warning_sent",
	"expiration_warning_days", "?gateway_updated_at", "applied_payments", "?cancelled_at",
	"created_at", "updated_at", "flag_del", "version", "pending_token",
}

// subColsOf is the select list of subColNames, qualified by alias when not empty, followed
// by the pending effects document: the one subscription_effects holds for the record's
// pending_token (see migration 0011), looked up only for records that have one. Without an
// alias the columns are qualified by the table's name, which the lookup needs.
func subColsOf(alias string) string {
	q := alias
	if q == "" {
		q = "{schema}.subscriptions"
	}
	return subColsThen(alias, `CASE WHEN `+q+`.pending_token IS NOT NULL THEN (SELECT e.effects FROM {schema}.subscription_effects AS e
		WHERE e.id = `+q+`.id AND e.token = `+q+`.pending_token) END`)
}

// subColsThen is the select list of subColNames, qualified by alias when not empty,
// followed by effects, the expression of the pending effects document.
func subColsThen(alias, effects string) string {
	if alias != "" {
		alias += "."
	}
	cols := make([]string, len(subColNames), len(subColNames)+1)
	for i, c := range subColNames {
		if opt, ok := strings.CutPrefix(c, "?"); ok {
			cols[i] = z(alias + opt)
		} else {
			cols[i] = alias + c
		}
	}
	return strings.Join(append(cols, effects), ", ")
}

var subCols = subColsOf("")

// subColsNoPending is subCols with the pending effects left unread (SubscriptionFilter's
// OmitPending).
var subColsNoPending = strings.Replace(subColsThen("", "NULL::jsonb"), ", pending_token, ", ", NULL::text, ", 1)

func scanSub(rows pgx.Rows) (billing.Subscription, error) {
	var x billing.Subscription
	var status, cycle string
	var days int32
	var token *string
	var pending []byte
	err := rows.Scan(&x.ID, &x.UserID, &x.PlanID, &status, &cycle, &x.CurrentPeriodStart, &x.CurrentPeriodEnd,
		&x.Gateway, &x.GatewaySubscriptionID, &x.CancelAtPeriodEnd, &x.ExpirationWarningSent,
		&days, &x.GatewayUpdatedAt, &x.AppliedPayments, &x.CancelledAt,
		&x.CreatedAt, &x.UpdatedAt, &x.Deleted, &x.Version, &token, &pending)
	if err != nil {
		return x, err
	}
	x.Status, x.BillingCycle, x.ExpirationWarningDays = billing.SubscriptionStatus(status), billing.Cycle(cycle), int(days)
	x.CurrentPeriodStart, x.CurrentPeriodEnd = t0(x.CurrentPeriodStart), t0(x.CurrentPeriodEnd)
	x.GatewayUpdatedAt, x.CancelledAt, x.CreatedAt, x.UpdatedAt = t0(x.GatewayUpdatedAt), t0(x.CancelledAt), t0(x.CreatedAt), t0(x.UpdatedAt)
	if len(x.AppliedPayments) == 0 {
		x.AppliedPayments = nil
	}
	if token != nil && pending == nil {
		// The record and its document are written and read in one statement each, so only
		// a change made bypassing renewkit leaves a record without its document.
		return x, &billing.RecordError{Collection: "subscriptions", ID: x.ID,
			Err: fmt.Errorf("%w: the record has pending effects but subscription_effects holds no document for their token", billing.ErrMalformedRecord)}
	}
	if x.Pending, err = decodeEffects(pending); err != nil {
		return x, &billing.RecordError{Collection: "subscriptions", ID: x.ID, Err: err}
	}
	return x, nil
}

// scanSubs reads rows of subCols; a record whose pending effects cannot be decoded is
// reported as a *billing.RecordError next to the others.
func (s *Store) scanSubs(ctx context.Context, sql string, args ...any) ([]billing.Subscription, error) {
	return collectReadable(ctx, s, scanSub, func(x billing.Subscription) string { return x.ID }, sql, args...)
}

// subInsertCols are the columns InsertSubscription and InsertSubscriptions write, in
// subArgs' order, then pending_token for records with pending effects, whose document goes
// into subscription_effects. (A record without them is written the way every schema version
// holds it.)
var subInsertCols = []string{"id", "user_id", "plan_id", "status", "billing_cycle",
	"current_period_start", "current_period_end", "gateway", "gateway_subscription_id", "cancel_at_period_end",
	"expiration_warning_sent", "expiration_warning_days", "gateway_updated_at", "applied_payments", "cancelled_at",
	"created_at", "updated_at", "flag_del", "version"}

var insertSubSQL = `INSERT INTO {schema}.subscriptions (` + strings.Join(subInsertCols, ", ") + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`

// insertSubWithEffectsSQL inserts a record with pending effects: its token ($20) and
// document ($21).
var insertSubWithEffectsSQL = `WITH i AS (INSERT INTO {schema}.subscriptions (` + strings.Join(subInsertCols, ", ") + `, pending_token)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) RETURNING id, pending_token) ` +
	addEffects(`SELECT id, pending_token, $21::jsonb FROM i`)

// effectsToken is the token of e, nil for no effects.
func effectsToken(e *billing.Effects) *string {
	if e == nil {
		return nil
	}
	return &e.Token
}

// subArgs are x's values of subInsertCols.
func subArgs(x *billing.Subscription) []any {
	return []any{x.ID, x.UserID, x.PlanID, string(x.Status), string(x.BillingCycle),
		rt(x.CurrentPeriodStart), rt(x.CurrentPeriodEnd), x.Gateway, x.GatewaySubscriptionID, x.CancelAtPeriodEnd,
		x.ExpirationWarningSent, x.ExpirationWarningDays, nt(x.GatewayUpdatedAt), nonNil(x.AppliedPayments), nt(x.CancelledAt),
		rt(x.CreatedAt), rt(x.UpdatedAt), x.Deleted, x.Version}
}

// normSub is x as the store gives it back.
func normSub(x billing.Subscription) billing.Subscription {
	x.CurrentPeriodStart, x.CurrentPeriodEnd = t0(x.CurrentPeriodStart), t0(x.CurrentPeriodEnd)
	x.GatewayUpdatedAt, x.CancelledAt, x.CreatedAt, x.UpdatedAt = t0(x.GatewayUpdatedAt), t0(x.CancelledAt), t0(x.CreatedAt), t0(x.UpdatedAt)
	x.AppliedPayments = slices.Clone(x.AppliedPayments)
	if x.Pending != nil {
		e := normEffects(*x.Pending)
		x.Pending = &e
	}
	return x
}

// InsertSubscription stores x, assigning its ID when empty. ErrConflict for a duplicate id
// or a gateway subscription id a live subscription holds already.
func (s *Store) InsertSubscription(ctx context.Context, x *billing.Subscription) error {
	if x.ID == "" {
		x.ID = billing.NewID()
	}
	pending, err := encodeEffects(x.Pending)
	if err != nil {
		return err
	}
	q, args := insertSubSQL, subArgs(x)
	if pending != nil {
		q, args = insertSubWithEffectsSQL, append(args, x.Pending.Token, string(pending))
	}
	if _, err := s.exec(ctx, s.t(q), args...); err != nil {
		return s.wrap(err, "inserting subscription %q", x.ID)
	}
	*x = normSub(*x)
	return nil
}

// InsertSubscriptions stores many subscriptions with one COPY, each carrying its ID (hosts
// importing records and benchmarks seeding them). Nothing is stored when one fails.
func (s *Store) InsertSubscriptions(ctx context.Context, subs []billing.Subscription) error {
	if len(subs) == 0 {
		return ctx.Err()
	}
	rows := make([][]any, len(subs))
	var ids, tokens, docs []string
	for i := range subs {
		if subs[i].ID == "" {
			return invalid("subscription %d of %d has no id: InsertSubscriptions stores records that carry their id", i, len(subs))
		}
		pending, err := encodeEffects(subs[i].Pending)
		if err != nil {
			return err
		}
		rows[i] = subArgs(&subs[i])
		if pending != nil {
			ids, tokens, docs = append(ids, subs[i].ID), append(tokens, subs[i].Pending.Token), append(docs, string(pending))
		}
	}
	cols := subInsertCols
	if len(ids) > 0 {
		cols = append(slices.Clip(cols), "pending_token")
		for i := range subs {
			rows[i] = append(rows[i], effectsToken(subs[i].Pending))
		}
	}
	// The records and the documents of their pending effects, in one transaction.
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{s.cfg.Schema, "subscriptions"}, cols, pgx.CopyFromRows(rows)); err != nil || len(ids) == 0 {
			return err
		}
		_, err := tx.Exec(ctx, s.t(addEffects(`SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])`)), ids, tokens, docs)
		return err
	})
	return s.wrap(err, "copying %d subscriptions", len(subs))
}

func (s *Store) GetSubscription(ctx context.Context, id string) (billing.Subscription, error) {
	subs, err := s.scanSubs(ctx, s.t(`SELECT `+subCols+` FROM {schema}.subscriptions WHERE id = $1 AND NOT flag_del`), id)
	if err != nil {
		return billing.Subscription{}, s.wrap(err, "reading subscription %q", id)
	}
	if len(subs) == 0 {
		return billing.Subscription{}, notFound("subscription", id)
	}
	return subs[0], nil
}

func (s *Store) FindSubscriptionByGateway(ctx context.Context, gateway, gid string) (billing.Subscription, error) {
	if gid == "" {
		return billing.Subscription{}, notFound("gateway subscription", gid)
	}
	subs, err := s.scanSubs(ctx, s.t(`SELECT `+subCols+` FROM {schema}.subscriptions
		WHERE gateway = $1 AND gateway_subscription_id = $2 AND NOT flag_del ORDER BY id LIMIT 1`), gateway, gid)
	if err != nil {
		return billing.Subscription{}, s.wrap(err, "reading gateway subscription %q", gid)
	}
	if len(subs) == 0 {
		return billing.Subscription{}, notFound("gateway subscription", gid)
	}
	return subs[0], nil
}

func (s *Store) ListUserSubscriptions(ctx context.Context, userID string) ([]billing.Subscription, error) {
	subs, err := s.scanSubs(ctx, s.t(`SELECT `+subCols+` FROM {schema}.subscriptions
		WHERE user_id = $1 AND NOT flag_del ORDER BY created_at DESC, id DESC`), userID)
	return subs, s.wrapList(err, "listing the subscriptions of user %q", userID)
}

// wrapList wraps a whole-call failure and passes record errors through as they are.
func (s *Store) wrapList(err error, format string, args ...any) error {
	if err == nil || onlyRecordErrors(err) {
		return err
	}
	return s.wrap(err, format, args...)
}

// filterSQL returns the WHERE conditions selecting f's records (soft-deleted ones never)
// with their arguments appended to args. It agrees with billing.SubscriptionFilter.Match.
func filterSQL(f billing.SubscriptionFilter, args []any) (string, []any) {
	conds := []string{"NOT flag_del"}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if len(f.Statuses) > 0 {
		st := make([]string, len(f.Statuses))
		for i, x := range f.Statuses {
			st[i] = string(x)
		}
		if len(st) == 1 {
			conds = append(conds, "status = "+arg(st[0]))
		} else {
			conds = append(conds, "status = ANY("+arg(st)+"::text[])")
		}
	}
	if !f.PeriodEndAfter.IsZero() {
		conds = append(conds, "current_period_end > "+arg(f.PeriodEndAfter))
	}
	if !f.PeriodEndBefore.IsZero() {
		conds = append(conds, "current_period_end <= "+arg(f.PeriodEndBefore))
	}
	if f.AutoRenews != nil {
		renews := "(gateway_subscription_id <> '' AND gateway <> '" + billing.GatewayManual + "' AND NOT cancel_at_period_end)"
		if *f.AutoRenews {
			conds = append(conds, renews)
		} else {
			conds = append(conds, "NOT "+renews)
		}
	}
	if f.WarningDueDays > 0 {
		d := arg(f.WarningDueDays)
		conds = append(conds, "(NOT expiration_warning_sent OR (expiration_warning_days > 0 AND expiration_warning_days > "+d+"))")
	}
	if f.PlanID != "" {
		conds = append(conds, "plan_id = "+arg(f.PlanID))
	}
	if len(f.UserIDs) > 0 {
		conds = append(conds, "user_id = ANY("+arg(f.UserIDs)+"::text[])")
	}
	return strings.Join(conds, " AND "), args
}

// listSQL is ListSubscriptions' query.
func listSQL(f billing.SubscriptionFilter, limit int) (string, []any) {
	where, args := filterSQL(f, nil)
	cols := subCols
	if f.OmitPending {
		cols = subColsNoPending
	}
	q := `SELECT ` + cols + ` FROM {schema}.subscriptions WHERE ` + where + ` ORDER BY current_period_end, id`
	if limit > 0 {
		args = append(args, limit)
		q += fmt.Sprintf(" LIMIT $%d", len(args))
	}
	return q, args
}

func (s *Store) ListSubscriptions(ctx context.Context, f billing.SubscriptionFilter, limit int) ([]billing.Subscription, error) {
	q, args := listSQL(f, limit)
	subs, err := s.scanSubs(ctx, s.t(q), args...)
	return subs, s.wrapList(err, "listing subscriptions")
}

func (s *Store) CountSubscriptions(ctx context.Context, f billing.SubscriptionFilter) (int, error) {
	where, args := filterSQL(f, nil)
	var n int
	err := s.retry(ctx, func() error {
		return s.pool.QueryRow(ctx, s.t(`SELECT count(*) FROM {schema}.subscriptions WHERE `+where), args...).Scan(&n)
	})
	return n, s.wrap(err, "counting subscriptions")
}

func (s *Store) CountSubscriptionsByStatus(ctx context.Context) (map[billing.SubscriptionStatus]int, error) {
	type row struct {
		status string
		n      int
	}
	rows, err := collect(ctx, s, func(r pgx.Rows) (row, error) {
		var x row
		return x, r.Scan(&x.status, &x.n)
	}, s.t(`SELECT status, count(*) FROM {schema}.subscriptions WHERE NOT flag_del GROUP BY status`))
	if err != nil {
		return nil, s.wrap(err, "counting subscriptions by status")
	}
	out := map[billing.SubscriptionStatus]int{}
	for _, r := range rows {
		out[billing.SubscriptionStatus(r.status)] = r.n
	}
	return out, nil
}

// --- claims ---

// ClaimSubscriptions leases up to p.Limit matching records to p.Token in one statement, most
// urgent first. Rows another claimer holds are skipped, never waited for, so concurrent
// claimers never receive one record twice while its lease is live.
func (s *Store) ClaimSubscriptions(ctx context.Context, p billing.ClaimParams) ([]billing.Subscription, error) {
	// Implementation:
	// ClaimSubscriptions leases up to p.Limit matching records to p.Token in one statement:
	// UPDATE … WHERE id IN (SELECT … ORDER BY current_period_end, id LIMIT n FOR UPDATE SKIP
	// LOCKED) RETURNING …. Rows another claimer has locked are skipped, never waited for, and
	// the inner SELECT re-checks its conditions on the newest row version, so concurrent
	// claimers never receive one record twice while its lease is live.
	if p.Token == "" || p.Limit <= 0 {
		return nil, invalid("claim needs a token and a positive limit")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	q, args := claimSQL(p)
	subs, err := s.scanSubs(ctx, s.t(q), args...)
	if err != nil && !onlyRecordErrors(err) {
		return nil, s.wrap(err, "claiming subscriptions")
	}
	slices.SortFunc(subs, func(a, b billing.Subscription) int {
		if c := a.CurrentPeriodEnd.Compare(b.CurrentPeriodEnd); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return subs, err
}

// claimSQL is ClaimSubscriptions' statement.
func claimSQL(p billing.ClaimParams) (string, []any) {
	args := []any{p.Token, nt(p.LeaseUntil), rt(p.Now), p.Limit}
	where, args := filterSQL(p.Filter, args)
	// Records with pending effects carry their token; their documents are in
	// subscription_effects (see migration 0011).
	from, join, returning := "", "", subColsThen("s", "NULL::jsonb")
	if p.Pending {
		// Few records carry pending effects, and no index names pending_token (see migrations
		// 0009 and 0011): they are found through subscription_effects, by primary key. The UPDATE
		// joins each to its document: a record whose effects were recorded after this
		// statement began is re-checked on its newest version, whose token the document
		// this statement sees does not carry, so it is skipped rather than returned without
		// its document.
		where += " AND pending_token IS NOT NULL AND id IN (SELECT id FROM {schema}.subscription_effects)"
		from, join, returning = `
		FROM {schema}.subscription_effects AS e`, `
			AND e.id = s.id AND e.token = s.pending_token`, subColsThen("s", "e.effects")
	} else {
		where += " AND pending_token IS NULL"
	}
	if p.After.ID != "" { // a range start for the (…, current_period_end, id) indexes
		args = append(args, rt(p.After.PeriodEnd), p.After.ID)
		where += fmt.Sprintf(" AND (current_period_end, id) > ($%d, $%d)", len(args)-1, len(args))
	}
	// The claimed ids are listed in subscription_claims (see migration 0008) by the same
	// statement: no index names the claim columns, so claiming is a HOT update.
	q := `WITH c AS (UPDATE {schema}.subscriptions AS s SET claim_token = $1, claim_until = $2` + from + `
		WHERE s.id IN (
			SELECT id FROM {schema}.subscriptions
			WHERE ` + where + `
				AND (claim_token IS NULL OR (claim_token <> $1 AND (claim_until IS NULL OR claim_until <= $3)))
			ORDER BY current_period_end, id
			LIMIT $4
			FOR UPDATE SKIP LOCKED)` + join + `
		RETURNING ` + returning + `),
	b AS (INSERT INTO {schema}.subscription_claims (token, ids, until)
		SELECT $1, array_agg(c.id), $2 FROM c HAVING count(*) > 0)
	SELECT * FROM c`
	return q, args
}

// extendClaimsSQL moves the lease of token's batches and of the records they list that
// token still holds.
const extendClaimsSQL = `WITH b AS (UPDATE {schema}.subscription_claims SET until = $2 WHERE token = $1 RETURNING ids)
	UPDATE {schema}.subscriptions SET claim_until = $2
	WHERE id IN (SELECT unnest(ids) FROM b) AND claim_token = $1`

// releaseClaimsSQL drops token's batches and the claims of the records they list that
// token still holds.
const releaseClaimsSQL = `WITH b AS (DELETE FROM {schema}.subscription_claims WHERE token = $1 RETURNING ids)
	UPDATE {schema}.subscriptions SET claim_token = NULL, claim_until = NULL
	WHERE id IN (SELECT unnest(ids) FROM b) AND claim_token = $1`

// ExtendClaims moves the lease of every record token holds to until.
func (s *Store) ExtendClaims(ctx context.Context, token string, until time.Time) error {
	if token == "" {
		return ctx.Err()
	}
	_, err := s.exec(ctx, s.t(extendClaimsSQL), token, nt(until))
	return s.wrap(err, "extending claims")
}

// ReleaseClaims drops every claim token holds.
func (s *Store) ReleaseClaims(ctx context.Context, token string) error {
	if token == "" {
		return ctx.Err()
	}
	_, err := s.exec(ctx, s.t(releaseClaimsSQL), token)
	return s.wrap(err, "releasing claims")
}
