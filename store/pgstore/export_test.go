package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/renewkit/renewkit/billing"
)

// MigrateTo applies the migrations up to version only, so tests can start from an older
// schema.
func (s *Store) MigrateTo(ctx context.Context, version int) error { return s.migrateTo(ctx, version) }

// Retry exposes the bounded retry of single statements.
func (s *Store) Retry(ctx context.Context, f func() error) error { return s.retry(ctx, f) }

// Query is one statement the store runs, for EXPLAIN.
type Query struct {
	Name string
	SQL  string
	Args []any
}

// JobQueries returns the statements behind the job and console queries, as the jobs issue
// them at now.
func (s *Store) JobQueries(now time.Time) []Query {
	day := 24 * time.Hour
	yes, no := true, false
	live := []billing.SubscriptionStatus{billing.SubscriptionStatusActive, billing.SubscriptionStatusPastDue}
	filters := map[string]billing.SubscriptionFilter{
		"warning":      {Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}, PeriodEndAfter: now, PeriodEndBefore: now.Add(7 * day), WarningDueDays: 7},
		"expire":       {Statuses: live, PeriodEndBefore: now, AutoRenews: &no},
		"expire-grace": {Statuses: live, PeriodEndBefore: now.Add(-3 * day), AutoRenews: &yes},
		"renew":        {Statuses: live, PeriodEndBefore: now.Add(day), AutoRenews: &yes},
		"reconcile":    {Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusInactive}, PeriodEndAfter: now.Add(-10 * day), PeriodEndBefore: now, AutoRenews: &yes},
	}
	var out []Query
	add := func(name, q string, args []any) { out = append(out, Query{name, s.t(q), args}) }
	for name, f := range filters {
		for _, pending := range []bool{false, true} {
			q, args := claimSQL(billing.ClaimParams{Filter: f, Token: "tok", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 100, Pending: pending})
			add(fmt.Sprintf("claim %s (pending %v)", name, pending), q, args)
		}
		q, args := listSQL(f, 100)
		add("list "+name, q, args)
		where, args := filterSQL(f, nil)
		add("count "+name, `SELECT count(*) FROM {schema}.subscriptions WHERE `+where, args)
	}
	q, args := claimSQL(billing.ClaimParams{Filter: filters["warning"], Token: "tok", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 100,
		After: billing.ClaimPosition{PeriodEnd: now.Add(day), ID: "s500"}})
	add("claim warning past a position", q, args)
	q, args = listSQL(billing.SubscriptionFilter{UserIDs: []string{"u1", "u2"}}, 0)
	add("batch users' subscriptions", q, args)
	add("user subscriptions", `SELECT `+subCols+` FROM {schema}.subscriptions WHERE user_id = $1 AND NOT flag_del ORDER BY created_at DESC, id DESC`, []any{"u1"})
	add("extend claims", extendClaimsSQL, []any{"tok", now})
	add("release claims", releaseClaimsSQL, []any{"tok"})
	add("prune claims", pruneClaimsSQL, []any{now.Add(-day), 1000})
	add("prune claim batches", pruneClaimBatchesSQL, []any{now.Add(-day), 1000})
	add("stale payments", staleCandidatesSQL, []any{now.Add(-7 * day), []string{}, 100})
	add("cancel stale payments", staleCancelSQL, []any{[]string{"pay1", "pay2"}, now, "stale", nil})
	add("payments with effects", paymentsWithEffectsSQL, []any{100})
	add("complete payment effects", completePaymentEffectsSQL, []any{"pay1", "tok"})
	add("expired sessions", expiredSQL(100), []any{now.Add(-30 * day), now, nil})
	add("sessions with effects", sessionsWithEffectsSQL, []any{8})
	add("complete session effects", completeSessionEffectsSQL, []any{"tok"})
	add("audit by action", `SELECT `+auditCols+` FROM {schema}.audit_logs WHERE action = $1 AND created_at >= $2 ORDER BY created_at, seq LIMIT 50`, []any{"subscription.expired", now.Add(-day)})
	add("job runs", `SELECT `+runCols+` FROM {schema}.job_runs WHERE job_id = $1 ORDER BY started_at DESC, id DESC LIMIT 20`, []any{"process_expired_subscriptions"})

	// The webhook inbox.
	q, args = claimWebhookSQL(billing.WebhookClaimParams{Token: "tok", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 64})
	add("claim webhook events", q, args)
	q, args = claimWebhookSQL(billing.WebhookClaimParams{Token: "tok", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 1,
		Gateway: billing.GatewayStripe, EventID: "evt_1"})
	add("claim one webhook event", q, args)
	add("renew webhook leases", `UPDATE {schema}.webhook_events SET lease_until = $2
		WHERE lease_token = $1 AND state IN `+pendingSQL+` AND lease_until IS NOT NULL`, []any{"tok", now})
	add("webhook event blocked", blockedSQL, []any{billing.GatewayStripe, "sub_1", now})
	add("wake webhook events", wakeSQL, []any{billing.GatewayStripe, "sub_1", now})
	cursor := billing.WebhookEventCursor(billing.WebhookEvent{Gateway: billing.GatewayStripe, EventID: "evt_50000", ReceivedAt: now.Add(-50000 * time.Second)})
	for name, wq := range map[string]billing.WebhookEventQuery{
		"list webhook events":                      {Limit: 51},
		"list webhook events after a cursor":       {Limit: 51, After: cursor},
		"list dead webhook events":                 {State: billing.WebhookEventStateDead, Limit: 51},
		"list failed stripe events after a cursor": {State: billing.WebhookEventStateFailed, Gateway: billing.GatewayStripe, Limit: 51, After: cursor},
		"list stripe webhook events":               {Gateway: billing.GatewayStripe, Limit: 51},
	} {
		q, args, err := listWebhookSQL(wq)
		if err != nil {
			panic(err)
		}
		add(name, q, args)
	}
	add("list an object's webhook events", objectEventsSQL, []any{billing.GatewayStripe, []string{"sub_1", "sub_2", "in_1"}, 50})
	add("prune notifications", pruneNotificationsSQL, []any{now.Add(-30 * day), 1000})
	add("prune audit entries", pruneAuditSQL, []any{now.Add(-30 * day), 1000})
	add("prune locks", pruneLocksSQL, []any{now.Add(-30 * day), 1000})
	add("prune webhook events", `DELETE FROM {schema}.webhook_events WHERE (gateway, event_id) IN (
		SELECT gateway, event_id FROM {schema}.webhook_events WHERE received_at < $1 AND state IN ('processed', 'ignored', 'dead')
		LIMIT $2 FOR UPDATE SKIP LOCKED)`, []any{now.Add(-30 * day), 1000})

	// The console.
	after := billing.Cursor{CreatedAt: now.Add(-200 * day), ID: "pay50000"}
	for name, sq := range map[string]billing.SubscriptionQuery{
		"console subscriptions":                  {},
		"console subscriptions after a cursor":   {After: billing.Cursor{CreatedAt: now.Add(-400 * day), ID: "s50000"}},
		"console active subscriptions of a plan": {Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}, PlanID: "p1"},
		"console search by email prefix":         {Q: "user123"},
		"console search by gateway id":           {Q: "sub_13"},
	} {
		q, args := searchSQL(sq, 50)
		add(name, q, args)
	}
	for name, pq := range map[string]billing.PaymentQuery{
		"console payments":                     {},
		"console payments after a cursor":      {After: after},
		"console pending payments":             {Status: billing.PaymentStatusPending},
		"console payments of a subscription":   {SubscriptionID: "s7"},
		"console pending payments of a cursor": {Status: billing.PaymentStatusPending, After: after},
	} {
		q, args := paymentsSQL(pq, 50)
		add(name, q, args)
	}
	for name, nq := range map[string]billing.NotificationQuery{
		"console notifications":                   {},
		"console notifications after a cursor":    {After: billing.Cursor{CreatedAt: now.Add(-500 * time.Hour), ID: "n50000"}},
		"console failed notifications":            {Status: billing.NotificationFailed},
		"console expiring notifications":          {Kind: billing.NotificationKindExpiring},
		"console notifications of a subscription": {SubscriptionID: "s7"},
	} {
		q, args := notificationsSQL(nq, 50)
		add(name, q, args)
	}
	add("console entity audit", entityAuditSQL, []any{[]string{"s7", "pay7", "s8"}, 50})
	add("console retry notification", retrySQL, []any{"n7", "tok", now, now.Add(time.Minute)})

	// The batch writes of a job run, at their usual sizes: a batch of 500 records, the
	// outcomes of the eight sends in flight.
	var ids, tokens, keys, statuses, errs []string
	var updated []pgtype.Timestamptz
	changes := make([]billing.SubscriptionChange, 0, 500)
	for i := range 500 {
		id := fmt.Sprintf("s%d", 1+i*97)
		ids, tokens = append(ids, id), append(tokens, "t")
		read := billing.Subscription{ID: id, Status: billing.SubscriptionStatusActive, CurrentPeriodEnd: now}
		changed := read
		changed.ExpirationWarningSent, changed.UpdatedAt = true, now
		changes = append(changes, billing.SubscriptionChange{Read: read, Changed: changed, ClaimToken: "tok",
			Effects: &billing.Effects{Token: "t", Status: billing.SubscriptionStatusActive, PeriodEnd: now}})
	}
	for i := range 8 {
		keys, statuses, errs = append(keys, fmt.Sprintf("n%d", 1+i*1000)), append(statuses, billing.NotificationSent), append(errs, "")
		updated = append(updated, pgtype.Timestamptz{Time: now, Valid: true})
	}
	idx := make([]int, len(changes))
	for i := range idx {
		idx[i] = i
	}
	subSQL, subArgs, err := updateSubsArgs(changes, idx)
	if err != nil {
		panic(err)
	}
	add("batch write: update subscriptions", subSQL, subArgs)
	add("batch write: complete effects", completeEffectsSQL, []any{ids, tokens})
	add("batch write: finish notifications", finishSQL(false, true), []any{"tok", keys, statuses, errs, updated})
	add("batch write: release and finish notifications", finishSQL(true, true), []any{keys[:2], "tok", keys[2:], statuses[2:], errs[2:], updated[2:]})
	add("batch write: release notifications", finishSQL(true, false), []any{keys, "tok"})
	return out
}
