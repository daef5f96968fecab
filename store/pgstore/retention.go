package pgstore

import (
	"context"

	"github.com/renewkit/renewkit/billing"
)

// Prune implements billing.Pruner: one DELETE (or, for claims, UPDATE) per kind of at most
// p.Limit rows picked by an indexed subquery; for claims, a second DELETE drops the claim
// batches (subscription_claims) left with nothing to prune. A lock key idle since
// p.LocksBefore (last acquired before it, and released or expired before it) is deleted
// with its fencing counter; the counter restarts at 1 for the key's next acquisition. Rows
// locked by another transaction are skipped (SKIP LOCKED) and taken by a later call.
func (s *Store) Prune(ctx context.Context, p billing.PruneParams) (billing.PruneResult, error) {
	var res billing.PruneResult
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if p.Limit <= 0 {
		return res, invalid("prune needs a positive limit")
	}
	steps := []struct {
		n   *int
		on  bool
		sql string
		arg any
	}{
		{&res.Notifications, !p.NotificationsBefore.IsZero(), pruneNotificationsSQL, rt(p.NotificationsBefore)},
		// Final events only: a pending one (received, failed, parked) is kept until the
		// worker ends it.
		{&res.WebhookEvents, !p.WebhookEventsBefore.IsZero(), `DELETE FROM {schema}.webhook_events WHERE (gateway, event_id) IN (
			SELECT gateway, event_id FROM {schema}.webhook_events WHERE received_at < $1 AND state IN ('processed', 'ignored', 'dead')
			LIMIT $2 FOR UPDATE SKIP LOCKED)`, rt(p.WebhookEventsBefore)},
		{&res.Audit, !p.AuditBefore.IsZero(), pruneAuditSQL, rt(p.AuditBefore)},
		{&res.Locks, !p.LocksBefore.IsZero(), pruneLocksSQL, rt(p.LocksBefore)},
		{&res.Claims, !p.ClaimsBefore.IsZero(), pruneClaimsSQL, rt(p.ClaimsBefore)},
		// The batches left with no claim to prune (not counted: they are bookkeeping).
		{nil, !p.ClaimsBefore.IsZero(), pruneClaimBatchesSQL, rt(p.ClaimsBefore)},
	}
	for _, st := range steps {
		if !st.on {
			continue
		}
		tag, err := s.exec(ctx, s.t(st.sql), st.arg, p.Limit)
		if err != nil {
			return res, s.wrap(err, "pruning")
		}
		if st.n != nil {
			*st.n = int(tag.RowsAffected())
		}
	}
	return res, nil
}

// pruneNotificationsSQL deletes at most $2 notifications created before $1, oldest first
// (through an index that starts with created_at). The picked keys are deleted
// by primary key (= ANY(ARRAY(…))): as "key IN (…)" the planner joins the subquery's rows
// to a sequential scan of the whole table.
const pruneNotificationsSQL = `DELETE FROM {schema}.notifications WHERE key = ANY(ARRAY(
	SELECT key FROM {schema}.notifications WHERE created_at < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED))`

// pruneAuditSQL deletes at most $2 audit entries created before $1, oldest first, by seq
// (as "seq IN (…)" it too was joined to a sequential scan: see pruneNotificationsSQL).
const pruneAuditSQL = `DELETE FROM {schema}.audit_logs WHERE seq = ANY(ARRAY(
	SELECT seq FROM {schema}.audit_logs WHERE created_at < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED))`

// pruneLocksSQL deletes at most $2 lock keys idle since $1, oldest first (through
// locks_acquired), by primary key: as "key IN (…)" the planner joined the picked keys to
// a sequential scan of the table, which holds a key per payment ever locked.
const pruneLocksSQL = `DELETE FROM {schema}.locks WHERE key = ANY(ARRAY(
	SELECT key FROM {schema}.locks WHERE acquired_at < $1 AND (expires_at IS NULL OR expires_at < $1)
	ORDER BY acquired_at LIMIT $2 FOR UPDATE SKIP LOCKED))`

// pruneClaimsSQL clears the claims whose lease ended before $1 on records without pending
// effects, at most $2, found through the claim batches that list them (no index names the
// claim columns: see migration 0008).
const pruneClaimsSQL = `UPDATE {schema}.subscriptions SET claim_token = NULL, claim_until = NULL WHERE id IN (
	SELECT s.id FROM {schema}.subscriptions AS s
	JOIN (SELECT token, unnest(ids) AS id FROM {schema}.subscription_claims WHERE until < $1) AS b
		ON s.id = b.id AND s.claim_token = b.token
	WHERE s.claim_until < $1 AND s.pending_token IS NULL
	LIMIT $2 FOR UPDATE OF s SKIP LOCKED)`

// pruneClaimBatchesSQL deletes, at most $2, the claim batches whose lease ended before $1
// and none of whose records without pending effects still holds the batch's claim.
const pruneClaimBatchesSQL = `DELETE FROM {schema}.subscription_claims WHERE (token, seq) IN (
	SELECT token, seq FROM {schema}.subscription_claims AS c
	WHERE until < $1 AND NOT EXISTS (
		SELECT 1 FROM {schema}.subscriptions AS s
		WHERE s.id = ANY(c.ids) AND s.claim_token = c.token AND s.pending_token IS NULL)
	LIMIT $2 FOR UPDATE SKIP LOCKED)`
