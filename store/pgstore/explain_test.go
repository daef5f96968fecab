package pgstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestExplainJobQueries proves every job, console and webhook inbox query is served by an
// index: with 100,000 rows in each table (and fresh statistics), no plan has a sequential
// scan (other than of subscription_effects, the short list of the records with pending
// effects), and each batch write of a job run finds its rows by their primary key. The one exception is a count whose filter matches over a tenth of the table (the
// expire job's preview counts 40% of it here), where reading the table is the cheaper
// plan; the test checks that the count really is that large.
func TestExplainJobQueries(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 100,000 rows per table")
	}
	p := pool(t)
	s := newStore(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	now := time.Date(2030, 6, 15, 12, 0, 0, 0, time.UTC)
	const n = 100000
	seed := []string{
		// Period ends spread over a year around now; 80% active, 10% auto-renewing,
		// a few with pending effects.
		`INSERT INTO {subscriptions} (id, user_id, plan_id, status, billing_cycle, current_period_start, current_period_end,
			gateway, gateway_subscription_id, created_at, updated_at, pending_token)
		SELECT 's' || i, 'u' || (i % 50000), 'p' || (i % 5),
			(ARRAY['active','active','active','active','active','active','active','active','inactive','cancelled'])[1 + i % 10],
			'monthly', $1::timestamptz - interval '210 days' + (i % 365) * interval '1 day',
			$1::timestamptz - interval '180 days' + (i % 365) * interval '1 day' + (i % 1440) * interval '1 minute',
			CASE WHEN i % 10 = 3 THEN 'stripe' ELSE 'manual' END,
			CASE WHEN i % 10 = 3 THEN 'sub_' || i ELSE '' END,
			$1::timestamptz - interval '400 days', $1::timestamptz - interval '1 day',
			CASE WHEN i % 1000 = 7 THEN 't' END
		FROM generate_series(1, $2) AS i`,
		`INSERT INTO {payments} (id, user_id, plan_id, subscription_id, amount, currency, status, gateway, gateway_payment_id, created_at, updated_at)
		SELECT 'pay' || i, 'u' || i, 'p1', 's' || (i % 50000), 2990, 'BRL', CASE WHEN i % 50 = 0 THEN 'pending' ELSE 'approved' END,
			'stripe', 'pi_' || i, $1::timestamptz - (i % 400) * interval '1 day', $1::timestamptz
		FROM generate_series(1, $2) AS i`,
		`INSERT INTO {users} (id, email, created_at, updated_at)
		SELECT 'u' || i, 'User' || i || '@example.com', $1::timestamptz, $1::timestamptz
		FROM generate_series(1, $2) AS i`,
		`INSERT INTO {notifications} (key, kind, subscription_id, user_id, status, error, created_at, updated_at)
		SELECT 'n' || i, (ARRAY['expiring','expired','renewed','payment_failed'])[1 + i % 4], 's' || (i % 50000), 'u' || (i % 50000),
			CASE WHEN i % 100 = 0 THEN 'failed' WHEN i % 100 = 1 THEN 'sending' ELSE 'sent' END, '',
			$1::timestamptz - i * interval '1 minute', $1::timestamptz - i * interval '1 minute'
		FROM generate_series(1, $2) AS i`,
		// A third soft-deleted, a few of those carrying the pending effects of their batch.
		`INSERT INTO {sessions} (id, user_id, expires_at, created_at, flag_del, pending)
		SELECT 'se' || i, 'u' || i, $1::timestamptz - interval '200 days' + (i % 365) * interval '1 day', $1::timestamptz - interval '1 year', i % 3 = 0,
			CASE WHEN i % 999 = 3 THEN jsonb_build_object('token', 'tok' || (i % 7)) END
		FROM generate_series(1, $2) AS i`,
		`INSERT INTO {audit_logs} (id, action, entity_type, entity_id, actor, created_at)
		SELECT 'a' || i, (ARRAY['subscription.expired','subscription.renewed','payment.approved','session.cleaned'])[1 + i % 4],
			'subscription', 's' || i, 'renewkit', $1::timestamptz - (i % 1000) * interval '1 hour'
		FROM generate_series(1, $2) AS i`,
		`INSERT INTO {job_runs} (id, job_id, trigger, status, started_at)
		SELECT 'r' || i, (ARRAY['check_expiring_subscriptions','process_expired_subscriptions','renew_subscriptions','cleanup_old_sessions','cleanup_pending_payments'])[1 + i % 5],
			'schedule', 'succeeded', $1::timestamptz - i * interval '1 minute'
		FROM generate_series(1, $2) AS i`,
		// The inbox: one event a second up to now over three gateways and 20,000 objects;
		// 94% final, the rest received, failed or parked (due in the past or the future),
		// a few of them claimed.
		`INSERT INTO {webhook_events} (gateway, event_id, type, object_key, occurred_at, payload, state, attempts, error,
			received_at, updated_at, next_attempt_at, finished_at, lease_until, lease_token, history)
		SELECT (ARRAY['stripe','paypal','mercadopago'])[1 + i % 3], 'evt_' || i, 'invoice.paid', 'sub_' || (i % 20000),
			$1::timestamptz - ($2 - i) * interval '1 second' - interval '2 seconds', '\x7b7d'::bytea, st, 1, '',
			$1::timestamptz - ($2 - i) * interval '1 second', $1::timestamptz - ($2 - i) * interval '1 second',
			CASE WHEN st IN ('received', 'failed', 'parked') THEN $1::timestamptz + (i % 7 - 3) * interval '1 hour' END,
			CASE WHEN st IN ('processed', 'ignored', 'dead') THEN $1::timestamptz - ($2 - i) * interval '1 second' END,
			CASE WHEN i % 500 = 3 THEN $1::timestamptz + interval '1 minute' END,
			CASE WHEN i % 500 = 3 THEN 'tok' || (i % 7) END,
			'[{"at": "2030-01-01T00:00:00Z", "state": "processed", "duration_ns": 1000}]'::jsonb
		FROM generate_series(1, $2) AS i,
			LATERAL (SELECT CASE WHEN i % 100 < 90 THEN 'processed' WHEN i % 100 < 93 THEN 'ignored' WHEN i % 100 = 93 THEN 'dead'
				WHEN i % 100 < 96 THEN 'received' WHEN i % 100 < 98 THEN 'failed' ELSE 'parked' END AS st) AS s`,
		// Lock keys, one per payment a webhook or charge locked (billing's payment locks),
		// acquired over the last 400 days, a few held now.
		`INSERT INTO {locks} (key, owner, token, expires_at, acquired_at)
		SELECT 'payment:pay' || i, CASE WHEN i % 1000 = 7 THEN 'replica' ELSE '' END, 1 + i % 3,
			CASE WHEN i % 1000 = 7 THEN $1::timestamptz + interval '1 minute' END, $1::timestamptz - (i % 400) * interval '1 day'
		FROM generate_series(1, $2) AS i`,
		// Claim batches (one row per claim statement): a day of runs left by crashed
		// replicas, one record each, leases spread over the last day.
		`INSERT INTO {subscription_claims} (token, ids, until)
		SELECT 'tok' || (i % 1000), ARRAY['s' || i], $1::timestamptz - (i % 1440) * interval '1 minute'
		FROM generate_series(1, $2) AS i`,
	}
	for _, q := range seed {
		for _, table := range []string{"subscriptions", "payments", "users", "notifications", "sessions", "audit_logs", "job_runs", "webhook_events", "subscription_claims", "locks"} {
			q = strings.ReplaceAll(q, "{"+table+"}", s.Table(table))
		}
		if _, err := p.Exec(ctx, q, now, n); err != nil {
			t.Fatalf("seeding: %v\n%s", err, q)
		}
	}
	// The documents of the pending effects are in subscription_effects (migrations 0009, 0011).
	if _, err := p.Exec(ctx, `INSERT INTO `+s.Table("subscription_effects")+` (id, token, effects)
		SELECT id, pending_token, jsonb_build_object('token', pending_token) FROM `+s.Table("subscriptions")+` WHERE pending_token IS NOT NULL`); err != nil {
		t.Fatalf("seeding: %v", err)
	}
	// VACUUM ANALYZE, as autovacuum would after a load: statistics and the visibility map.
	if _, err := p.Exec(ctx, "VACUUM ANALYZE "+s.Table("subscriptions")+", "+s.Table("payments")+", "+s.Table("sessions")+", "+s.Table("users")+", "+s.Table("notifications")+", "+
		s.Table("audit_logs")+", "+s.Table("job_runs")+", "+s.Table("webhook_events")+", "+s.Table("subscription_claims")+", "+s.Table("subscription_effects")+", "+s.Table("locks")); err != nil {
		t.Fatal(err)
	}
	for _, q := range s.JobQueries(now) {
		rows, err := p.Query(ctx, "EXPLAIN "+q.SQL, q.Args...)
		if err != nil {
			t.Fatalf("%s: EXPLAIN: %v", q.Name, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: EXPLAIN: %v", q.Name, err)
		}
		plan := strings.Join(lines, "\n")
		// subscription_effects lists only the records with pending effects (100 of the
		// 100,000 here, few by design: see migration 0009), so a plan may read it whole.
		scans := strings.Contains(strings.ReplaceAll(plan, "Seq Scan on subscription_effects ", ""), "Seq Scan")
		if scans && strings.HasPrefix(q.Name, "count ") {
			var matched int
			if err := p.QueryRow(ctx, q.SQL, q.Args...).Scan(&matched); err != nil {
				t.Fatal(err)
			}
			if matched > n/10 {
				t.Logf("%s reads the table: it counts %d of %d rows", q.Name, matched, n)
				continue
			}
		}
		switch {
		case scans:
			t.Errorf("%s plans a sequential scan on %d rows:\n%s", q.Name, n, plan)
		case strings.HasPrefix(q.Name, "batch write") && !strings.Contains(plan, "_pkey"):
			// A batch write names its rows: it finds each by its key, so its cost follows
			// the batch, not the table or the in-flight records.
			t.Errorf("%s does not look its rows up by key:\n%s", q.Name, plan)
		default:
			t.Logf("%s:\n%s", q.Name, plan)
		}
	}
}
