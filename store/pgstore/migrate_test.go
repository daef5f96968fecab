package pgstore_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/store/pgstore"
)

func migrated(t *testing.T, s *pgstore.Store) int {
	t.Helper()
	v, err := s.MigratedVersion(context.Background())
	if err != nil {
		t.Fatalf("MigratedVersion: %v", err)
	}
	return v
}

// indexes returns the names of the indexes on the schema's tables.
func indexes(t *testing.T, s *pgstore.Store) map[string]bool {
	t.Helper()
	rows, err := s.Pool().Query(context.Background(), `SELECT indexname FROM pg_indexes WHERE schemaname = $1`, s.Schema())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[n] = true
	}
	return out
}

// TestMigrateFromEmpty proves Migrate builds the whole schema on an empty database,
// records every version, logs what it applied, and is a no-op the second time.
func TestMigrateFromEmpty(t *testing.T) {
	p := pool(t)
	var log bytes.Buffer
	s, err := pgstore.New(p, pgstore.Config{Schema: freshSchema(t, p), Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if v := migrated(t, s); v != 0 {
		t.Fatalf("version before Migrate = %d, want 0", v)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if v := migrated(t, s); v != pgstore.SchemaVersion() || v < 2 {
		t.Fatalf("version after Migrate = %d, want %d", v, pgstore.SchemaVersion())
	}
	if !strings.Contains(log.String(), "applied migration") || !strings.Contains(log.String(), "query_indexes") {
		t.Fatalf("Migrate did not log the migrations it applied:\n%s", log.String())
	}
	if !indexes(t, s)["subscriptions_due"] {
		t.Fatal("the job indexes are missing after Migrate")
	}
	log.Reset()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if !strings.Contains(log.String(), "up to date") || strings.Contains(log.String(), "applied migration") {
		t.Fatalf("second Migrate should apply nothing and say so:\n%s", log.String())
	}
	var n int
	if err := p.QueryRow(ctx, `SELECT count(*) FROM `+s.Table("schema_migrations")).Scan(&n); err != nil || n != pgstore.SchemaVersion() {
		t.Fatalf("schema_migrations holds %d rows (%v), want one per version (%d)", n, err, pgstore.SchemaVersion())
	}
}

// TestMigrateFromPreviousVersion proves each migration applies on a database left at the
// version before it, keeping the data stored there.
func TestMigrateFromPreviousVersion(t *testing.T) {
	p := pool(t)
	ctx := context.Background()
	for v := 1; v < pgstore.SchemaVersion(); v++ {
		s, err := pgstore.New(p, pgstore.Config{Schema: freshSchema(t, p), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.MigrateTo(ctx, v); err != nil {
			t.Fatalf("MigrateTo(%d): %v", v, err)
		}
		if got := migrated(t, s); got != v {
			t.Fatalf("version after MigrateTo(%d) = %d", v, got)
		}
		sub := billing.Subscription{ID: "s1", UserID: "u1", PlanID: "p1", Status: billing.SubscriptionStatusActive,
			CurrentPeriodEnd: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), CreatedAt: time.Now(), UpdatedAt: time.Now()}
		if err := s.InsertSubscription(ctx, &sub); err != nil {
			t.Fatalf("InsertSubscription at version %d: %v", v, err)
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate from version %d: %v", v, err)
		}
		if got := migrated(t, s); got != pgstore.SchemaVersion() {
			t.Fatalf("version after Migrate from %d = %d", v, got)
		}
		if _, err := s.GetSubscription(ctx, "s1"); err != nil {
			t.Fatalf("the subscription stored at version %d is gone after migrating: %v", v, err)
		}
	}
}

// TestMigrateConcurrently proves replicas migrating at once apply each migration once
// (the advisory lock) and all succeed.
func TestMigrateConcurrently(t *testing.T) {
	p := pool(t)
	schema := freshSchema(t, p)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := pgstore.New(newPool(t), pgstore.Config{Schema: schema, Logger: quiet})
			if err == nil {
				err = s.Migrate(context.Background())
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Migrate: %v", err)
	}
	s := storeOn(t, p, schema)
	var n int
	if err := p.QueryRow(context.Background(), `SELECT count(*) FROM `+s.Table("schema_migrations")).Scan(&n); err != nil || n != pgstore.SchemaVersion() {
		t.Fatalf("schema_migrations holds %d rows (%v) after 3 concurrent Migrates, want %d", n, err, pgstore.SchemaVersion())
	}
}

// TestMigrateRefusesNewerSchema proves the runner is forward-only: a schema migrated by a
// newer renewkit is reported, not touched.
func TestMigrateRefusesNewerSchema(t *testing.T) {
	p := pool(t)
	s := newStore(t, p)
	ctx := context.Background()
	if _, err := p.Exec(ctx, `INSERT INTO `+s.Table("schema_migrations")+` (version, name) VALUES ($1, 'from_the_future')`, pgstore.SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	err := s.Migrate(ctx)
	if err == nil || !strings.Contains(err.Error(), "newer than this renewkit") {
		t.Fatalf("Migrate on a newer schema = %v, want an error saying the schema is newer", err)
	}
}

// TestConfigValidate proves bad configuration is reported with how to fix it, joined.
func TestConfigValidate(t *testing.T) {
	_, err := pgstore.New(nil, pgstore.Config{Schema: `bad"name`, MaxRetries: -1})
	if err == nil {
		t.Fatal("New(nil, bad config) succeeded")
	}
	for _, want := range []string{"missing pool", "not a plain identifier", "MaxRetries -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if err := (pgstore.Config{}).Validate(); err != nil {
		t.Fatalf("the zero Config is invalid: %v", err)
	}
}

// TestErrorMapping proves a unique violation is ErrConflict without the key's value in the
// text, a value the column cannot hold ErrInvalidInput, a missing row ErrNotFound.
func TestErrorMapping(t *testing.T) {
	s := newStore(t, pool(t))
	ctx := context.Background()
	p1 := billing.Payment{ID: "p1", Gateway: "stripe", GatewayPaymentID: "pi_secretish", Status: billing.PaymentStatusPending,
		Amount: billing.Money{Amount: 1, Currency: "BRL"}}
	if err := s.InsertPayment(ctx, &p1); err != nil {
		t.Fatal(err)
	}
	p2 := p1
	p2.ID = "p2"
	err := s.InsertPayment(ctx, &p2)
	if !errors.Is(err, billing.ErrConflict) || strings.Contains(err.Error(), "pi_secretish") {
		t.Fatalf("duplicate gateway payment id: %v, want ErrConflict without the id's value", err)
	}
	p3 := billing.Payment{ID: "p3", Status: billing.PaymentStatusPending, Amount: billing.Money{Amount: 1, Currency: "EURO"}}
	if err := s.InsertPayment(ctx, &p3); !errors.Is(err, billing.ErrInvalidInput) {
		t.Fatalf("a four-letter currency: %v, want ErrInvalidInput", err)
	}
	if _, err := s.GetPayment(ctx, "p3"); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("GetPayment of the rejected payment: %v, want ErrNotFound", err)
	}
}

// lapsedAt is the time of the migration tests' records: s1, s2 and s3, active, their period
// ended an hour before it.
var lapsedAt = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// atSchemaWithLapsed returns a store on a fresh schema migrated up to version, holding s1,
// s2 and s3 written by that version's store.
func atSchemaWithLapsed(t *testing.T, version int) (*pgxpool.Pool, *pgstore.Store) {
	t.Helper()
	p := pool(t)
	ctx := context.Background()
	s, err := pgstore.New(p, pgstore.Config{Schema: freshSchema(t, p), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MigrateTo(ctx, version); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"s1", "s2", "s3"} {
		sub := billing.Subscription{ID: id, UserID: "u1", PlanID: "p1", Status: billing.SubscriptionStatusActive,
			CurrentPeriodEnd: lapsedAt.Add(-time.Hour), CreatedAt: lapsedAt, UpdatedAt: lapsedAt}
		if err := s.InsertSubscription(ctx, &sub); err != nil {
			t.Fatal(err)
		}
	}
	return p, s
}

// claimActive claims, for token at lapsedAt, the active records (those with pending effects
// when pending) and returns their ids in order.
func claimActive(t *testing.T, s *pgstore.Store, token string, pending bool) []string {
	t.Helper()
	subs, err := s.ClaimSubscriptions(context.Background(), billing.ClaimParams{Token: token, Now: lapsedAt, LeaseUntil: lapsedAt.Add(time.Hour), Limit: 10, Pending: pending,
		Filter: billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}}})
	if err != nil {
		t.Fatalf("claim %s: %v", token, err)
	}
	var ids []string
	for _, x := range subs {
		ids = append(ids, x.ID)
	}
	return ids
}

// TestMigrateKeepsClaimsAcross0008 proves claims held when migration 0008 runs (written
// into the claim columns by the schema-7 store) are listed in subscription_claims by it,
// so their token still extends and releases them after the upgrade.
func TestMigrateKeepsClaimsAcross0008(t *testing.T) {
	p, s := atSchemaWithLapsed(t, 7)
	ctx := context.Background()
	// The schema-7 store's claims: s1 and s2 held by A, s3 by B, leases live until now+1h.
	if _, err := p.Exec(ctx, `UPDATE `+s.Table("subscriptions")+` SET claim_token = CASE id WHEN 's3' THEN 'B' ELSE 'A' END,
		claim_until = $1`, lapsedAt.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate from 7: %v", err)
	}
	claim := func(token string) []string { return claimActive(t, s, token, false) }
	if got := claim("C"); len(got) != 0 {
		t.Fatalf("C claimed %v while A and B hold every record", got)
	}
	if err := s.ReleaseClaims(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(claim("C"), ","); got != "s1,s2" {
		t.Fatalf("after A released its pre-migration claims, C claimed %q, want s1,s2", got)
	}
	// B's pre-migration claim extends: at now+2h (past its old lease) it still holds s3.
	if err := s.ExtendClaims(ctx, "B", lapsedAt.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	subs, err := s.ClaimSubscriptions(ctx, billing.ClaimParams{Token: "D", Now: lapsedAt.Add(2 * time.Hour), LeaseUntil: lapsedAt.Add(4 * time.Hour), Limit: 10,
		Filter: billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range subs {
		if x.ID == "s3" {
			t.Fatal("D claimed s3 at now+2h: B's pre-migration claim was not extended")
		}
	}
}

// pendingOnRows gives s1 and s2 pending effects on the row, the way the stores before
// migration 0011 kept them (recorded by token eff-<id>), and soft-deletes s2.
func pendingOnRows(t *testing.T, p *pgxpool.Pool, s *pgstore.Store) {
	t.Helper()
	if _, err := p.Exec(context.Background(), `UPDATE `+s.Table("subscriptions")+` SET pending = jsonb_build_object('token', 'eff-' || id, 'status', 'active'),
		flag_del = id = 's2' WHERE id IN ('s1', 's2')`); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateKeepsPendingAcross0009 proves the records left with pending effects when
// migration 0009 runs (written by the schema-8 store, one of them soft-deleted) are listed
// in subscription_effects by it: a claim of records with pending effects still finds the
// live one after the upgrade, and once its effects are completed no claim of pending
// records finds it again while a claim of the others does.
func TestMigrateKeepsPendingAcross0009(t *testing.T) {
	p, s := atSchemaWithLapsed(t, 8)
	ctx := context.Background()
	// The schema-8 store's pending effects (on the row only).
	pendingOnRows(t, p, s)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate from 8: %v", err)
	}
	var listed []string
	if err := p.QueryRow(ctx, `SELECT array_agg(id ORDER BY id) FROM `+s.Table("subscription_effects")).Scan(&listed); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(listed, ","); got != "s1,s2" {
		t.Fatalf("subscription_effects lists %q after the migration, want s1,s2 (the records with pending effects)", got)
	}
	claim := func(token string, pending bool) string { return strings.Join(claimActive(t, s, token, pending), ",") }
	if got := claim("A", true); got != "s1" {
		t.Fatalf("the claim of records with pending effects got %q after the migration, want s1", got)
	}
	if err := s.CompleteEffects(ctx, []billing.EffectsDone{{SubscriptionID: "s1", Token: "eff-s1", ClaimToken: "A"}}); err != nil {
		t.Fatal(err)
	}
	if got := claim("B", true); got != "" {
		t.Fatalf("the claim of records with pending effects got %q after s1's were completed, want none", got)
	}
	if got := claim("C", false); got != "s1,s3" {
		t.Fatalf("the claim of records without pending effects got %q, want s1,s3", got)
	}
}

// TestMigrateKeepsSessionsAcross0010 proves the sessions stored before migration 0010 (by
// the schema-9 store: live, expired, soft-deleted) keep what they were after it, without
// pending effects, and the cleanup's writes work on them: the soft delete records its
// effects, the session is listed with them, and completing them clears them.
func TestMigrateKeepsSessionsAcross0010(t *testing.T) {
	p, s := atSchemaWithLapsed(t, 9)
	ctx := context.Background()
	if _, err := p.Exec(ctx, `INSERT INTO `+s.Table("sessions")+` (id, user_id, expires_at, created_at, flag_del, deleted_at) VALUES
		('se-old', 'u1', $1, $1, false, NULL), ('se-gone', 'u1', $1, $1, true, $1), ('se-live', 'u1', $2, $1, false, NULL)`,
		lapsedAt.AddDate(0, 0, -40), lapsedAt.AddDate(0, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate from 9: %v", err)
	}
	if !indexes(t, s)["sessions_pending"] {
		t.Fatal("sessions_pending is missing after the migration")
	}
	for id, deleted := range map[string]bool{"se-old": false, "se-gone": true, "se-live": false} {
		se, err := s.GetSession(ctx, id)
		if err != nil || se.Deleted != deleted || se.Pending != nil {
			t.Fatalf("session %s after the migration: %+v, %v; want deleted=%v without pending effects", id, se, err, deleted)
		}
	}
	eff := &billing.Effects{Token: "run1", CreatedAt: lapsedAt, Audit: []billing.AuditEntry{{ID: "sessions:run1", Action: billing.AuditSessionsCleaned}}}
	got, err := s.DeleteExpiredSessions(ctx, lapsedAt.AddDate(0, 0, -30), lapsedAt, 10, eff)
	if err != nil || len(got) != 1 || got[0].ID != "se-old" || got[0].Pending == nil || got[0].Pending.Token != "run1" {
		t.Fatalf("DeleteExpiredSessions after the migration: %+v, %v; want se-old with run1's effects", got, err)
	}
	left, err := s.ListSessionsWithEffects(ctx, 10)
	if err != nil || len(left) != 1 || left[0].ID != "se-old" {
		t.Fatalf("ListSessionsWithEffects: %+v, %v; want se-old", left, err)
	}
	if err := s.CompleteSessionEffects(ctx, "run1"); err != nil {
		t.Fatal(err)
	}
	if left, err := s.ListSessionsWithEffects(ctx, 10); err != nil || len(left) != 0 {
		t.Fatalf("ListSessionsWithEffects after completing: %+v, %v; want none", left, err)
	}
}

// TestMigrateMovesPendingAcross0011 proves the pending effects held when migration 0011
// runs (written by the schema-10 store: the document on the row, its id listed in
// subscription_effects, one of them on a soft-deleted record, plus a listed id with none)
// move to subscription_effects with their tokens and nothing else stays listed: readers
// and the claim of records with pending effects still get each document after the upgrade,
// its token still completes it, and a claim of the others finds the records without any.
func TestMigrateMovesPendingAcross0011(t *testing.T) {
	p, s := atSchemaWithLapsed(t, 10)
	ctx := context.Background()
	pendingOnRows(t, p, s)
	if _, err := p.Exec(ctx, `INSERT INTO `+s.Table("subscription_effects")+` (id) VALUES ('s1'), ('s2'), ('s3')`); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate from 10: %v", err)
	}
	docs := func() string {
		var got []string
		if err := p.QueryRow(ctx, `SELECT coalesce(array_agg(id || ':' || token || ':' || (effects->>'token') ORDER BY id), '{}') FROM `+
			s.Table("subscription_effects")).Scan(&got); err != nil {
			t.Fatal(err)
		}
		return strings.Join(got, ",")
	}
	if got := docs(); got != "s1:eff-s1:eff-s1,s2:eff-s2:eff-s2" {
		t.Fatalf("subscription_effects holds %q after the migration, want the documents of s1 and s2 with their tokens", got)
	}
	got, err := s.GetSubscription(ctx, "s1")
	if err != nil || got.Pending == nil || got.Pending.Token != "eff-s1" || got.Pending.Status != billing.SubscriptionStatusActive {
		t.Fatalf("GetSubscription(s1) after the migration: pending %+v, %v; want the effects recorded by eff-s1", got.Pending, err)
	}
	if got, err := s.GetSubscription(ctx, "s3"); err != nil || got.Pending != nil {
		t.Fatalf("GetSubscription(s3) after the migration: pending %+v, %v; want none", got.Pending, err)
	}
	claimed, err := s.ClaimSubscriptions(ctx, billing.ClaimParams{Token: "A", Now: lapsedAt, LeaseUntil: lapsedAt.Add(time.Hour), Limit: 10, Pending: true,
		Filter: billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}}})
	if err != nil || len(claimed) != 1 || claimed[0].ID != "s1" || claimed[0].Pending == nil || claimed[0].Pending.Token != "eff-s1" {
		t.Fatalf("the claim of records with pending effects after the migration: %+v, %v; want s1 with its effects", claimed, err)
	}
	if err := s.CompleteEffects(ctx, []billing.EffectsDone{{SubscriptionID: "s1", Token: "eff-s1", ClaimToken: "A"}}); err != nil {
		t.Fatal(err)
	}
	if got := docs(); got != "s2:eff-s2:eff-s2" {
		t.Fatalf("subscription_effects holds %q after s1's effects were completed, want only s2's", got)
	}
	if got := strings.Join(claimActive(t, s, "B", true), ","); got != "" {
		t.Fatalf("the claim of records with pending effects got %q after s1's were completed, want none", got)
	}
	if got := strings.Join(claimActive(t, s, "C", false), ","); got != "s1,s3" {
		t.Fatalf("the claim of records without pending effects got %q, want s1,s3", got)
	}
}

// TestPendingTokenWithoutDocument proves a record whose pending effects document is gone
// (deleted bypassing renewkit) is reported, never read as a record without effects: a
// read returns ErrMalformedRecord for it, and the claim of records with pending effects
// skips it (so no run sees it as done), while its effects still hold off the transitions
// that record new ones.
func TestPendingTokenWithoutDocument(t *testing.T) {
	s := newStore(t, pool(t))
	ctx := context.Background()
	sub := billing.Subscription{ID: "s1", UserID: "u1", PlanID: "p1", Status: billing.SubscriptionStatusActive,
		CurrentPeriodEnd: lapsedAt.Add(-time.Hour), CreatedAt: lapsedAt, UpdatedAt: lapsedAt,
		Pending: &billing.Effects{Token: "eff", Status: billing.SubscriptionStatusInactive}}
	if err := s.InsertSubscription(ctx, &sub); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetSubscription(ctx, "s1"); err != nil || got.Pending == nil || got.Pending.Token != "eff" {
		t.Fatalf("GetSubscription before: pending %+v, %v; want the effects of eff", got.Pending, err)
	}
	if _, err := s.Pool().Exec(ctx, `DELETE FROM `+s.Table("subscription_effects")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSubscription(ctx, "s1"); !errors.Is(err, billing.ErrMalformedRecord) {
		t.Fatalf("GetSubscription of a record without its document: %v, want ErrMalformedRecord", err)
	}
	if got := claimActive(t, s, "A", true); len(got) != 0 {
		t.Fatalf("the claim of records with pending effects got %v, want none (s1's document is gone)", got)
	}
	changed := sub
	changed.Pending = nil
	changed.ExpirationWarningSent = true
	read := sub
	read.Pending = nil
	errs, err := s.UpdateSubscriptions(ctx, []billing.SubscriptionChange{{Read: read, Changed: changed, Effects: &billing.Effects{Token: "eff2"}}})
	if err != nil || len(errs) != 1 || !errors.Is(errs[0], billing.ErrConflict) {
		t.Fatalf("recording new effects over the ones without a document: %v %v, want ErrConflict", errs, err)
	}
}

// TestNoIndexNamesJobWrittenColumns proves no index of the subscriptions table names, in
// its key, an expression or its predicate, the columns a job writes on every record it
// claims: the claim columns, which every claim changes, and pending_token, which its
// transition and the completion of its effects change. Any of them would make those writes non-HOT.
// It also proves the table leaves room on its pages for new row versions.
func TestNoIndexNamesJobWrittenColumns(t *testing.T) {
	p := pool(t)
	s := newStore(t, p)
	ctx := context.Background()
	rows, err := p.Query(ctx, `SELECT i.relname, a.attname FROM pg_index x
		JOIN pg_class i ON i.oid = x.indexrelid
		JOIN pg_class c ON c.oid = x.indrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
		WHERE n.nspname = $1 AND c.relname = 'subscriptions' AND a.attname IN ('claim_token', 'claim_until', 'pending_token')
			AND (a.attnum = ANY(x.indkey::int2[])
				OR pg_get_expr(x.indexprs, x.indrelid) ~ ('\m' || a.attname || '\M')
				OR pg_get_expr(x.indpred, x.indrelid) ~ ('\m' || a.attname || '\M'))`, s.Schema())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var index, col string
		if err := rows.Scan(&index, &col); err != nil {
			t.Fatal(err)
		}
		t.Errorf("index %s names %s: a job changes it on every record it claims, so that write is not a HOT update", index, col)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var opts []string
	if err := p.QueryRow(ctx, `SELECT coalesce(reloptions, '{}') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = 'subscriptions'`, s.Schema()).Scan(&opts); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(opts, "fillfactor=50") {
		t.Errorf("subscriptions has options %v, want fillfactor=50 (room on each page for the jobs' new row versions)", opts)
	}
}

// TestMigrateSettlesAcross0013 proves a reservation made before migration 0013 (which drops
// notifications_status and leaves room on the notifications pages) is settled by its token
// after it, and that the migration leaves the table as the settlements need it: no index
// naming a column they write, and half of each page free.
func TestMigrateSettlesAcross0013(t *testing.T) {
	p, s := atSchemaWithLapsed(t, 12)
	ctx := context.Background()
	rec := billing.NotificationRecord{Key: "expiring:s1", Kind: billing.NotificationKindExpiring, SubscriptionID: "s1", UserID: "u1",
		Data: &billing.NotificationData{PlanName: "Pro", SubscriptionID: "s1"}}
	if ok, err := s.ReserveNotifications(ctx, []billing.NotificationRecord{rec}, "tok", lapsedAt, lapsedAt.Add(time.Hour)); err != nil || !ok[0] {
		t.Fatalf("reserving at version 12: %v %v", ok, err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate from 12: %v", err)
	}
	rec.Status, rec.UpdatedAt = billing.NotificationSent, lapsedAt
	if err := s.FinishNotifications(ctx, []billing.NotificationRecord{rec}, "tok"); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetNotification(ctx, rec.Key)
	if err != nil || got.Status != billing.NotificationSent || got.Token != "" || got.Data == nil || got.Data.PlanName != "Pro" {
		t.Fatalf("the reservation made at version 12 after settling: %+v %v, want it sent with its data", got, err)
	}
	rows, err := p.Query(ctx, `SELECT i.relname, a.attname FROM pg_index x
		JOIN pg_class i ON i.oid = x.indexrelid
		JOIN pg_class c ON c.oid = x.indrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
		WHERE n.nspname = $1 AND c.relname = 'notifications' AND a.attname IN ('status', 'error', 'token', 'lease_until', 'updated_at')
			AND (a.attnum = ANY(x.indkey::int2[])
				OR pg_get_expr(x.indexprs, x.indrelid) ~ ('\m' || a.attname || '\M')
				OR pg_get_expr(x.indpred, x.indrelid) ~ ('\m' || a.attname || '\M'))`, s.Schema())
	if err != nil {
		t.Fatal(err)
	}
	named, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var index, col string
		err := r.Scan(&index, &col)
		return index + " names " + col, err
	})
	if err != nil || len(named) > 0 {
		t.Errorf("indexes of notifications name columns a settlement writes, so it is not a HOT update: %v %v", named, err)
	}
	var opts []string
	if err := p.QueryRow(ctx, `SELECT coalesce(reloptions, '{}') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = 'notifications'`, s.Schema()).Scan(&opts); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(opts, "fillfactor=50") {
		t.Errorf("notifications has options %v, want fillfactor=50 (room on each page for the settled versions)", opts)
	}
}
