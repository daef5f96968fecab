package mongostore_test

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/store/mongostore"
)

// Three replicas (three clients, three stores) claim the same 10,000 due subscriptions at
// once: every one is claimed exactly once.
//
// FerretDB v1 rewrites one document per collection scan (about 100 ms per document at 10,000
// documents on this machine), so 10,000 claims take tens of minutes there: on FerretDB the
// test claims 1,000 unless CLAIM_N says otherwise; on MongoDB it claims 10,000.
func TestClaimsThreeReplicas(t *testing.T) {
	const replicas, limit = 3, 100
	cfg := mongostore.Config{BatchSize: 100}
	ctx, db, seed := freshStore(t, cfg, 15*time.Minute)
	n := 10_000
	if mode, err := seed.ClaimMode(ctx); err != nil {
		t.Fatal(err)
	} else if mode == mongostore.ClaimSerialized {
		n = 1_000
	}
	if v, err := strconv.Atoi(os.Getenv("CLAIM_N")); err == nil && v > 0 {
		n = v
	}

	now := time.Date(2031, 3, 1, 12, 0, 0, 0, time.UTC)
	subs := make([]billing.Subscription, n)
	for i := range subs {
		subs[i] = billing.Subscription{
			ID: fmt.Sprintf("sub-%05d", i), UserID: "u1", PlanID: "p1", Status: billing.SubscriptionStatusActive,
			BillingCycle: billing.CycleMonthly, Gateway: billing.GatewayManual,
			CurrentPeriodStart: now.AddDate(0, -1, 0), CurrentPeriodEnd: now.Add(-time.Duration(i+1) * time.Minute),
			CreatedAt: now.AddDate(0, -1, 0), UpdatedAt: now.AddDate(0, -1, 0),
		}
	}
	start := time.Now()
	if err := seed.InsertSubscriptions(ctx, subs); err != nil {
		t.Fatalf("InsertSubscriptions: %v", err)
	}
	t.Logf("inserted %d subscriptions in %v", n, time.Since(start))

	filter := billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}, PeriodEndBefore: now}
	var mu sync.Mutex
	claimedBy := map[string]int{}
	perReplica := make([]int, replicas)
	var wg sync.WaitGroup
	errs := make(chan error, replicas)
	start = time.Now()
	for r := range replicas {
		st := newStore(t, newClient(t).Database(db.Name()), cfg) // the same database through its own client
		wg.Add(1)
		go func() {
			defer wg.Done()
			token := fmt.Sprintf("replica-%d", r)
			for {
				batch, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{
					Filter: filter, Token: token, Now: now, LeaseUntil: now.Add(time.Hour), Limit: limit,
				})
				if err != nil {
					errs <- fmt.Errorf("replica %d: %w", r, err)
					return
				}
				mu.Lock()
				for _, x := range batch {
					claimedBy[x.ID]++
				}
				perReplica[r] += len(batch)
				mu.Unlock()

				if len(batch) < limit {
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("claimed in %v; per replica %v", time.Since(start), perReplica)
	if len(claimedBy) != n {
		t.Fatalf("%d distinct subscriptions claimed, want %d", len(claimedBy), n)
	}
	for id, k := range claimedBy {
		if k != 1 {
			t.Fatalf("subscription %s claimed %d times", id, k)
		}
	}
	// Everything is held: nothing is claimable by a fourth run before the lease ends...
	left, err := seed.ClaimSubscriptions(ctx, billing.ClaimParams{Filter: filter, Token: "late", Now: now, LeaseUntil: now.Add(time.Hour), Limit: 10})
	if err != nil || len(left) != 0 {
		t.Fatalf("claim while all are leased: %d records, %v; want none", len(left), err)
	}
	// ...and after it ended (a crashed run), they are claimable again, most urgent first.
	later := now.Add(2 * time.Hour)
	again, err := seed.ClaimSubscriptions(ctx, billing.ClaimParams{Filter: filter, Token: "late", Now: later, LeaseUntil: later.Add(time.Hour), Limit: 10})
	if err != nil || len(again) != 10 {
		t.Fatalf("claim after the leases ended: %d records, %v; want 10", len(again), err)
	}
	if again[0].ID != fmt.Sprintf("sub-%05d", n-1) {
		t.Fatalf("first reclaimed record %s, want the oldest period end sub-%05d", again[0].ID, n-1)
	}
	// ReleaseClaims frees a token's records at once.
	if err := seed.ReleaseClaims(ctx, "replica-0"); err != nil {
		t.Fatal(err)
	}
	cnt, err := seed.CountSubscriptions(ctx, filter)
	if err != nil || cnt != n {
		t.Fatalf("CountSubscriptions = %d, %v; want %d", cnt, err, n)
	}
}

// Records with string ids and ObjectIDs share one period end. MongoDB sorts strings
// before ObjectIDs and $gt compares within one type, so claims walking by position from a
// string id must still reach the ObjectIDs at that end, and from an ObjectID must not
// return the strings again: every record once, strings first.
func TestClaimPositionMixedIDTypes(t *testing.T) {
	ctx, _, st := freshStore(t, mongostore.Config{}, time.Minute)
	end := time.Date(2031, 3, 1, 0, 0, 0, 0, time.UTC)
	ids := []string{"sub-a", "sub-b", "sub-c", "00000000000000000000000a", "00000000000000000000000b", "00000000000000000000000c"}
	for _, id := range ids {
		s := billing.Subscription{ID: id, UserID: "u1", PlanID: "p1", Status: billing.SubscriptionStatusActive,
			BillingCycle: billing.CycleMonthly, Gateway: billing.GatewayManual,
			CurrentPeriodStart: end.AddDate(0, -1, 0), CurrentPeriodEnd: end, CreatedAt: end, UpdatedAt: end}
		if err := st.InsertSubscription(ctx, &s); err != nil {
			t.Fatal(err)
		}
	}
	var walked []string
	var after billing.ClaimPosition
	for len(walked) <= len(ids) {
		got, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Token: "walk", Now: end, LeaseUntil: end.Add(time.Hour), Limit: 2, After: after,
			Filter: billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.ReleaseClaims(ctx, "walk"); err != nil {
			t.Fatal(err)
		}
		for _, x := range got {
			walked = append(walked, x.ID)
		}
		if len(got) < 2 {
			break
		}
		after = billing.ClaimPosition{PeriodEnd: end, ID: got[len(got)-1].ID}
	}
	if fmt.Sprint(walked) != fmt.Sprint(ids) {
		t.Fatalf("walk by position returned %v, want %v", walked, ids)
	}
}
