package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/renewkit/renewkit/billing"
)

// A batch of conditional changes is one statement: the changes travel as parallel arrays
// (unnest(…), the array form of FROM (VALUES …), so the statement text and its prepared
// plan are the same for every batch size), and each row of the UPDATE writes a column only
// where its change's bit in m is set, and only while every condition holds:
//
//	UPDATE subscriptions s SET col = CASE WHEN v.m & bit <> 0 THEN v.n_col ELSE s.col END, …
//	FROM unnest($1, $2, …) AS v(id, m, …)
//	WHERE s.id = v.id AND s.status = v.status AND … AND (v.m & bit = 0 OR s.col = v.r_col) …
//	RETURNING s.id
//
// Under READ COMMITTED a row changed by a concurrent writer is re-checked against its new
// version before it is written, so of concurrent changes from one read exactly one applies.

type colKind int

const (
	kText colKind = iota
	kBool
	kInt
	kTime    // required: the zero time is stored as itself
	kOptTime // NULL when zero
	kTexts   // text[]
)

// subColumn is one writable subscription column, named as billing's field names.
type subColumn struct {
	name string
	kind colKind
	get  func(*billing.Subscription) any
}

var subColumns = []subColumn{
	{billing.FieldUserID, kText, func(x *billing.Subscription) any { return x.UserID }},
	{billing.FieldPlanID, kText, func(x *billing.Subscription) any { return x.PlanID }},
	{billing.FieldStatus, kText, func(x *billing.Subscription) any { return string(x.Status) }},
	{billing.FieldBillingCycle, kText, func(x *billing.Subscription) any { return string(x.BillingCycle) }},
	{billing.FieldCurrentPeriodStart, kTime, func(x *billing.Subscription) any { return x.CurrentPeriodStart }},
	{billing.FieldCurrentPeriodEnd, kTime, func(x *billing.Subscription) any { return x.CurrentPeriodEnd }},
	{billing.FieldGateway, kText, func(x *billing.Subscription) any { return x.Gateway }},
	{billing.FieldGatewaySubscriptionID, kText, func(x *billing.Subscription) any { return x.GatewaySubscriptionID }},
	{billing.FieldCancelAtPeriodEnd, kBool, func(x *billing.Subscription) any { return x.CancelAtPeriodEnd }},
	{billing.FieldExpirationWarningSent, kBool, func(x *billing.Subscription) any { return x.ExpirationWarningSent }},
	{billing.FieldExpirationWarningDays, kInt, func(x *billing.Subscription) any { return x.ExpirationWarningDays }},
	{billing.FieldGatewayUpdatedAt, kOptTime, func(x *billing.Subscription) any { return x.GatewayUpdatedAt }},
	{billing.FieldAppliedPayments, kTexts, func(x *billing.Subscription) any { return x.AppliedPayments }},
	{billing.FieldCancelledAt, kOptTime, func(x *billing.Subscription) any { return x.CancelledAt }},
	{billing.FieldCreatedAt, kTime, func(x *billing.Subscription) any { return x.CreatedAt }},
	{billing.FieldUpdatedAt, kTime, func(x *billing.Subscription) any { return x.UpdatedAt }},
	{billing.FieldDeleted, kBool, func(x *billing.Subscription) any { return x.Deleted }},
}

var subColumnBit = func() map[string]int {
	m := make(map[string]int, len(subColumns))
	for i, c := range subColumns {
		m[c.name] = i
	}
	return m
}()

func (k colKind) sqlType() string {
	switch k {
	case kBool:
		return "boolean[]"
	case kInt:
		return "integer[]"
	case kTime, kOptTime:
		return "timestamptz[]"
	}
	return "text[]"
}

// column holds one array parameter of a batch.
type column struct {
	kind  colKind
	texts []string
	bools []bool
	ints  []int32
	times pgtype.FlatArray[pgtype.Timestamptz]
}

func newColumn(k colKind, n int) *column {
	c := &column{kind: k}
	switch k {
	case kBool:
		c.bools = make([]bool, 0, n)
	case kInt:
		c.ints = make([]int32, 0, n)
	case kTime, kOptTime:
		c.times = make(pgtype.FlatArray[pgtype.Timestamptz], 0, n)
	default:
		c.texts = make([]string, 0, n)
	}
	return c
}

func (c *column) add(v any) {
	switch c.kind {
	case kBool:
		c.bools = append(c.bools, v.(bool))
	case kInt:
		c.ints = append(c.ints, int32(v.(int)))
	case kTime:
		c.times = append(c.times, pgtype.Timestamptz{Time: rt(v.(time.Time)), Valid: true})
	case kOptTime:
		c.times = append(c.times, nt(v.(time.Time)))
	case kTexts:
		b, _ := json.Marshal(nonNil(v.([]string)))
		c.texts = append(c.texts, string(b))
	default:
		c.texts = append(c.texts, v.(string))
	}
}

func (c *column) arg() any {
	switch c.kind {
	case kBool:
		return c.bools
	case kInt:
		return c.ints
	case kTime, kOptTime:
		return c.times
	}
	return c.texts
}

// textsExpr turns a JSON array text into a text[].
func textsExpr(v string) string {
	return "ARRAY(SELECT jsonb_array_elements_text(" + v + "::jsonb))"
}

// updateSubsSQL returns the batch statement (see the comment at the top of the file) for
// changes that write only the columns whose bits are set in cols: the other columns get no
// parameters, no SET term and no condition, so a batch pays for the columns it writes.
// Statements are built once per column set (batches of one job share theirs).
func updateSubsSQL(cols int32) string {
	if q, ok := updateSubsSQLs.Load(cols); ok {
		return q.(string)
	}
	names := []string{"id", "m", "rs", "re", "ct", "eff"}
	types := []string{"text[]", "integer[]", "text[]", "timestamptz[]", "text[]", "text[]"}
	var sets, conds []string
	for i, c := range subColumns {
		if cols&(1<<i) == 0 {
			continue
		}
		r, n := fmt.Sprintf("r%d", i), fmt.Sprintf("n%d", i)
		names = append(names, r, n)
		types = append(types, c.kind.sqlType(), c.kind.sqlType())
		bit := fmt.Sprintf("%d", 1<<i)
		nv, cmp := "v."+n, "s."+c.name+" = v."+r
		switch c.kind {
		case kTexts:
			nv, cmp = textsExpr("v."+n), "s."+c.name+" = "+textsExpr("v."+r)
		case kTime, kOptTime:
			cmp = "date_trunc('milliseconds', s." + c.name + ") IS NOT DISTINCT FROM v." + r
		}
		sets = append(sets, fmt.Sprintf("%s = CASE WHEN v.m & %s <> 0 THEN %s ELSE s.%s END,\n\t\t", c.name, bit, nv, c.name))
		conds = append(conds, fmt.Sprintf("\n\t\tAND (v.m & %s = 0 OR %s)", bit, cmp))
	}
	params := make([]string, len(names))
	for i := range names {
		params[i] = fmt.Sprintf("$%d::%s", i+1, types[i])
	}
	q := `WITH u AS (UPDATE {schema}.subscriptions AS s SET ` + strings.Join(sets, "") + `pending_token = CASE WHEN v.eff IS NOT NULL THEN v.eff::jsonb->>'token' ELSE s.pending_token END,
		version = s.version + 1
	FROM unnest(` + strings.Join(params, ", ") + `) AS v(` + strings.Join(names, ", ") + `)
	WHERE s.id = v.id AND s.id = ANY($1::text[]) AND NOT s.flag_del AND s.status = v.rs
		AND date_trunc('milliseconds', s.current_period_end) = v.re
		AND (v.ct = '' OR s.claim_token = v.ct)
		AND (v.eff IS NULL OR s.pending_token IS NULL)` + strings.Join(conds, "") + `
	RETURNING s.id, v.eff::jsonb AS eff),
	e AS (` + addEffects(`SELECT id, eff->>'token', eff FROM u WHERE eff IS NOT NULL`) + `)
	SELECT id FROM u`
	updateSubsSQLs.Store(cols, q)
	return q
}

// addEffects is the statement storing the pending effects documents sel selects (id,
// token, document) in subscription_effects (see migrations 0009 and 0011): those of the
// records a statement gives pending effects. A document left there for an id (by a
// completion that did not see it) is replaced.
func addEffects(sel string) string {
	return `INSERT INTO {schema}.subscription_effects (id, token, effects) ` + sel + `
	ON CONFLICT (id) DO UPDATE SET token = excluded.token, effects = excluded.effects`
}

// updateSubsSQLs caches updateSubsSQL by column set (at most 2^len(subColumns) entries,
// in practice the few sets the engine's transitions write).
var updateSubsSQLs sync.Map

// UpdateSubscriptions applies each change conditionally (see billing.SubscriptionChange) in
// one UPDATE for the whole batch, plus one read of the ids whose change did not apply to
// tell a conflict from a missing record.
func (s *Store) UpdateSubscriptions(ctx context.Context, changes []billing.SubscriptionChange) ([]error, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	errs := make([]error, len(changes))
	// Rounds of changes with distinct ids: a record changed twice in one batch sees its
	// first change applied before the second, as if the changes ran one by one.
	var round []int
	seen := map[string]int{}
	for i := range changes {
		c := &changes[i]
		id := c.Read.ID
		switch {
		case id == "" || (c.Changed.ID != "" && c.Changed.ID != id):
			errs[i] = invalid("subscription change for %q names subscription %q", id, c.Changed.ID)
			continue
		case c.Effects != nil && c.Effects.Token == "":
			errs[i] = invalid("subscription change for %q records effects without a token", id)
			continue
		}
		seen[id]++
		if seen[id] == 1 {
			round = append(round, i)
		}
	}
	done := map[int]bool{}
	for len(round) > 0 {
		if err := s.applySubRound(ctx, changes, round, errs); err != nil {
			return nil, err
		}
		for _, i := range round {
			done[i] = true
		}
		// The next round: each id's next change not yet applied.
		round = round[:0]
		taken := map[string]bool{}
		for i := range changes {
			if done[i] || errs[i] != nil || taken[changes[i].Read.ID] {
				continue
			}
			if seen[changes[i].Read.ID] > 1 {
				taken[changes[i].Read.ID] = true
				round = append(round, i)
			}
		}
	}
	return errs, nil
}

// applySubRound applies the changes at idx (distinct ids) and sets their errs.
func (s *Store) applySubRound(ctx context.Context, changes []billing.SubscriptionChange, idx []int, errs []error) error {
	applied, err := s.updateSubs(ctx, changes, idx)
	if isUniqueViolation(err) && len(idx) > 1 {
		// One change gives a live subscription a gateway id another holds: apply them one
		// at a time, so only that change fails.
		for _, i := range idx {
			if err := s.applySubRound(ctx, changes, []int{i}, errs); err != nil {
				return err
			}
		}
		return nil
	}
	if isUniqueViolation(err) {
		errs[idx[0]] = s.wrap(err, "changing subscription %q", changes[idx[0]].Read.ID)
		return nil
	}
	if err != nil {
		return s.wrap(err, "updating %d subscriptions", len(idx))
	}
	return s.tellMissed(ctx, "subscriptions", "subscription",
		"changed since it was read (its status, period end, claim, pending effects or a field the change writes differs)",
		idx, func(i int) string { return changes[i].Read.ID }, applied, errs)
}

// tellMissed sets errs[i] for each change at idx whose row (id(i)) is not in applied:
// ErrConflict with why when the row is live, ErrNotFound when it is gone or soft-deleted.
func (s *Store) tellMissed(ctx context.Context, table, kind, why string, idx []int, id func(int) string,
	applied map[string]bool, errs []error) error {
	var missed []string
	for _, i := range idx {
		if !applied[id(i)] {
			missed = append(missed, id(i))
		}
	}
	if len(missed) == 0 {
		return nil
	}
	live, err := s.liveIDs(ctx, table, missed)
	if err != nil {
		return err
	}
	for _, i := range idx {
		switch id := id(i); {
		case applied[id]:
		case live[id]:
			errs[i] = conflict(kind, id, why)
		default:
			errs[i] = notFound(kind, id)
		}
	}
	return nil
}

// updateSubs runs the batch statement for the changes at idx and returns the ids it wrote.
func (s *Store) updateSubs(ctx context.Context, changes []billing.SubscriptionChange, idx []int) (map[string]bool, error) {
	q, args, err := updateSubsArgs(changes, idx)
	if err != nil {
		return nil, err
	}
	got, err := collect(ctx, s, func(r pgx.Rows) (string, error) {
		var id string
		return id, r.Scan(&id)
	}, s.t(q), args...)
	if err != nil {
		return nil, err
	}
	applied := make(map[string]bool, len(got))
	for _, id := range got {
		applied[id] = true
	}
	return applied, nil
}

// updateSubsArgs returns the statement and parameters of the changes at idx, which it
// sorts by id (so concurrent batches lock shared rows in the same order): only the columns
// some change of the batch writes travel.
func updateSubsArgs(changes []billing.SubscriptionChange, idx []int) (string, []any, error) {
	sort.Slice(idx, func(a, b int) bool { return changes[idx[a]].Read.ID < changes[idx[b]].Read.ID })
	n := len(idx)
	ids, masks := make([]string, 0, n), make([]int32, 0, n)
	rs, re := make([]string, 0, n), make(pgtype.FlatArray[pgtype.Timestamptz], 0, n)
	cts, effs := make([]string, 0, n), make(pgtype.FlatArray[pgtype.Text], 0, n)
	var union int32
	for _, i := range idx {
		c := &changes[i]
		var mask int32
		for _, f := range billing.ChangedSubscriptionFields(c.Read, c.Changed) {
			if b, ok := subColumnBit[f]; ok {
				mask |= 1 << b
			}
		}
		eff, err := encodeEffects(c.Effects)
		if err != nil {
			return "", nil, err
		}
		union |= mask
		ids, masks = append(ids, c.Read.ID), append(masks, mask)
		rs, re = append(rs, string(c.Read.Status)), append(re, pgtype.Timestamptz{Time: rt(c.Read.CurrentPeriodEnd), Valid: true})
		cts, effs = append(cts, c.ClaimToken), append(effs, pgtype.Text{String: string(eff), Valid: eff != nil})
	}
	args := []any{ids, masks, rs, re, cts, effs}
	for j, col := range subColumns {
		if union&(1<<j) == 0 {
			continue
		}
		read, changed := newColumn(col.kind, n), newColumn(col.kind, n)
		for _, i := range idx {
			read.add(col.get(&changes[i].Read))
			changed.add(col.get(&changes[i].Changed))
		}
		args = append(args, read.arg(), changed.arg())
	}
	return updateSubsSQL(union), args, nil
}

// liveIDs returns which of ids name a live (not soft-deleted) record of table.
func (s *Store) liveIDs(ctx context.Context, table string, ids []string) (map[string]bool, error) {
	got, err := collect(ctx, s, func(r pgx.Rows) (string, error) {
		var id string
		return id, r.Scan(&id)
	}, s.t(`SELECT id FROM {schema}.`+table+` WHERE id = ANY($1) AND NOT flag_del`), ids)
	if err != nil {
		return nil, s.wrap(err, "reading %s", table)
	}
	live := make(map[string]bool, len(got))
	for _, id := range got {
		live[id] = true
	}
	return live, nil
}

// completeEffectsSQL clears the effects of the ids ($1) still recorded by their tokens
// ($2), looking each id up by the primary key, and deletes the documents of those it
// cleared from subscription_effects. (A record without effects has no token to match; a
// separate "pending_token IS NOT NULL" would make the planner expect one row and rescan the
// batch for each record.)
const completeEffectsSQL = `WITH c AS (UPDATE {schema}.subscriptions AS s SET pending_token = NULL, claim_token = NULL, claim_until = NULL
		FROM unnest($1::text[], $2::text[]) AS d(id, token)
		WHERE s.id = d.id AND s.id = ANY($1::text[]) AND s.pending_token = d.token
		RETURNING s.id)
	DELETE FROM {schema}.subscription_effects WHERE id = ANY(ARRAY(SELECT id FROM c))`

// CompleteEffects clears, in one statement, the pending effects still recorded by each
// given token, releasing the record's claim in the same write.
func (s *Store) CompleteEffects(ctx context.Context, done []billing.EffectsDone) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(done) == 0 {
		return nil
	}
	ids, tokens := make([]string, len(done)), make([]string, len(done))
	for i, d := range done {
		ids[i], tokens[i] = d.SubscriptionID, d.Token
	}
	_, err := s.exec(ctx, s.t(completeEffectsSQL), ids, tokens)
	return s.wrap(err, "completing the effects of %d subscriptions", len(done))
}
