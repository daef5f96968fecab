package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// filterSeed is a set of subscriptions around the suite's "now" (base) covering every
// dimension SubscriptionFilter selects on, including the boundaries.
func filterSeed() []billing.Subscription {
	warned := func(days int) func(*billing.Subscription) {
		return func(x *billing.Subscription) { x.ExpirationWarningSent, x.ExpirationWarningDays = true, days }
	}
	status := func(st billing.SubscriptionStatus) func(*billing.Subscription) {
		return func(x *billing.Subscription) { x.Status = st }
	}
	user := func(id string) func(*billing.Subscription) {
		return func(x *billing.Subscription) { x.UserID = id }
	}
	in2d := base.Add(2 * day)
	return []billing.Subscription{
		newSub("soon", base.Add(day)),
		newSub("at-after", base),             // exactly PeriodEndAfter: excluded
		newSub("at-before", base.Add(3*day)), // exactly PeriodEndBefore: included
		newSub("beyond", base.Add(3*day+time.Millisecond)),
		newSub("past", base.Add(-time.Hour)),
		newSub("pastdue", in2d, status(billing.SubscriptionStatusPastDue), user("u3")),
		newSub("inactive", in2d, status(billing.SubscriptionStatusInactive)),
		newSub("cancelled", in2d, status(billing.SubscriptionStatusCancelled)),
		newSub("pending", in2d, status(billing.SubscriptionStatusPending)),
		newSub("auto", in2d, autoRenewing(billing.GatewayStripe)),
		newSub("auto-cancelling", in2d, autoRenewing(billing.GatewayPayPal), user("u3"), func(x *billing.Subscription) { x.CancelAtPeriodEnd = true }),
		newSub("manual-gwid", in2d, func(x *billing.Subscription) { x.GatewaySubscriptionID = "gw-manual" }),
		newSub("mp-auto-past", base.Add(-2*day), autoRenewing(billing.GatewayMercadoPago)),
		newSub("warned-seed", in2d, warned(0)), // legacy schema: flag set, offset unknown
		newSub("warned-7", in2d, warned(7)),
		newSub("warned-3", in2d, warned(3)),
		newSub("warned-1", in2d, warned(1)),
		newSub("unwarned-days", in2d, func(x *billing.Subscription) { x.ExpirationWarningDays = 3 }), // flag off wins
		newSub("deleted", base.Add(day), user("u2"), func(x *billing.Subscription) { x.Deleted = true }),
		newSub("other-plan", in2d, status(billing.SubscriptionStatusPending), user("u2"), func(x *billing.Subscription) { x.PlanID = "p2" }),
	}
}

func (s *suite) filterTests() []test {
	yes, no := true, false
	active := []billing.SubscriptionStatus{billing.SubscriptionStatusActive}
	live := []billing.SubscriptionStatus{billing.SubscriptionStatusActive, billing.SubscriptionStatusPastDue}
	window := func(f billing.SubscriptionFilter) billing.SubscriptionFilter {
		f.PeriodEndAfter, f.PeriodEndBefore = base, base.Add(3*day)
		return f
	}
	cases := []struct {
		name string
		f    billing.SubscriptionFilter
		// want, when set, is the expected selection written out by hand (so a bug shared by
		// Match and the store is caught too).
		want []string
	}{
		{name: "Zero", f: billing.SubscriptionFilter{}},
		{name: "SubscriptionStatusActive", f: billing.SubscriptionFilter{Statuses: active}},
		{name: "StatusesActivePastDue", f: billing.SubscriptionFilter{Statuses: live}},
		{name: "SubscriptionStatusInactive", f: billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusInactive}},
			want: []string{"inactive"}},
		{name: "WindowAfterExclusiveBeforeInclusive", f: window(billing.SubscriptionFilter{Statuses: active}),
			want: []string{"soon", "at-before", "auto", "auto-cancelling", "manual-gwid", "warned-seed", "warned-7", "warned-3", "warned-1", "unwarned-days"}},
		{name: "BeforeOnly", f: billing.SubscriptionFilter{PeriodEndBefore: base},
			want: []string{"at-after", "past", "mp-auto-past"}},
		{name: "AfterOnly", f: billing.SubscriptionFilter{PeriodEndAfter: base.Add(3 * day)},
			want: []string{"beyond"}},
		{name: "AutoRenewsTrue", f: billing.SubscriptionFilter{AutoRenews: &yes},
			want: []string{"auto", "mp-auto-past"}},
		{name: "AutoRenewsFalse", f: billing.SubscriptionFilter{AutoRenews: &no}},
		{name: "WarningDue3", f: window(billing.SubscriptionFilter{Statuses: active, WarningDueDays: 3}),
			want: []string{"soon", "at-before", "auto", "auto-cancelling", "manual-gwid", "warned-7", "unwarned-days"}},
		{name: "WarningDue1", f: billing.SubscriptionFilter{Statuses: active, PeriodEndAfter: base, PeriodEndBefore: base.Add(day), WarningDueDays: 1},
			want: []string{"soon"}},
		{name: "WarningDue1AnyEnd", f: billing.SubscriptionFilter{Statuses: active, WarningDueDays: 1}},
		{name: "WarningDue7", f: billing.SubscriptionFilter{WarningDueDays: 7}},
		{name: "ExpireManual", f: billing.SubscriptionFilter{Statuses: live, PeriodEndBefore: base, AutoRenews: &no},
			want: []string{"at-after", "past"}},
		{name: "ExpireAutoAfterGrace", f: billing.SubscriptionFilter{Statuses: live, PeriodEndBefore: base.Add(-day), AutoRenews: &yes},
			want: []string{"mp-auto-past"}},
		{name: "PlanID", f: billing.SubscriptionFilter{PlanID: "p2"}, want: []string{"other-plan"}},
		{name: "PlanIDAndStatus", f: billing.SubscriptionFilter{Statuses: active, PlanID: "p2"}, want: []string{}},
		{name: "RenewWindow", f: billing.SubscriptionFilter{Statuses: live, PeriodEndBefore: base.Add(2 * day), AutoRenews: &yes},
			want: []string{"auto", "mp-auto-past"}},
		{name: "UserIDs", f: billing.SubscriptionFilter{UserIDs: []string{"u2", "u3"}},
			want: []string{"other-plan", "pastdue", "auto-cancelling"}},
		{name: "UserIDsOne", f: billing.SubscriptionFilter{UserIDs: []string{"u2"}}, want: []string{"other-plan"}},
		{name: "UserIDsUnknown", f: billing.SubscriptionFilter{UserIDs: []string{"nobody"}}, want: []string{}},
		{name: "UserIDsAndStatuses", f: billing.SubscriptionFilter{UserIDs: []string{"u2", "u3"}, Statuses: live},
			want: []string{"pastdue", "auto-cancelling"}},
		{name: "UserIDsAndStatusActive", f: billing.SubscriptionFilter{UserIDs: []string{"u3"}, Statuses: active},
			want: []string{"auto-cancelling"}},
		{name: "UserIDsAndWindow", f: window(billing.SubscriptionFilter{UserIDs: []string{"u1", "u3"}, Statuses: live, AutoRenews: &yes}),
			want: []string{"auto"}},
	}
	out := []test{{"MatchAgreesWithHandWrittenExpectations", ownStore, func(ctx context.Context, t *testing.T, _ billing.Store) {
		seed := filterSeed()
		for _, c := range cases {
			if c.want == nil {
				continue
			}
			var got []string
			for _, x := range seed {
				if c.f.Match(x) {
					got = append(got, x.ID)
				}
			}
			equalIDs(t, got, c.want, "SubscriptionFilter.Match for %s", c.name)
		}
	}}}
	for _, c := range cases {
		out = append(out, test{c.name, ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			seed := filterSeed()
			insertSubs(ctx, t, st, seed...)
			// Expected: what Match says about the records as stored.
			var byMatch []string
			for _, x := range seed {
				if x.Deleted {
					continue
				}
				stored, err := st.GetSubscription(ctx, x.ID)
				must(t, err, "GetSubscription(%s)", x.ID)
				if c.f.Match(stored) {
					byMatch = append(byMatch, x.ID)
				}
			}
			if c.want != nil {
				equalIDs(t, byMatch, c.want, "Match over stored records")
			}
			n, err := st.CountSubscriptions(ctx, c.f)
			must(t, err, "CountSubscriptions")
			if n != len(byMatch) {
				t.Fatalf("CountSubscriptions(%+v) = %d, want %d (%v)", c.f, n, len(byMatch), byMatch)
			}
			listed, err := st.ListSubscriptions(ctx, c.f, 1000)
			must(t, err, "ListSubscriptions")
			equalIDs(t, subIDs(listed), byMatch, "ListSubscriptions(%+v) must select what Match selects", c.f)
			for i := 1; i < len(listed); i++ {
				if listed[i].CurrentPeriodEnd.Before(listed[i-1].CurrentPeriodEnd) {
					t.Fatalf("ListSubscriptions is not ordered by period end: %v", subIDs(listed))
				}
			}
			claimed, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{
				Filter: c.f, Token: "filter-" + c.name, Now: base, LeaseUntil: base.Add(time.Minute), Limit: 1000,
			})
			must(t, err, "ClaimSubscriptions")
			equalIDs(t, subIDs(claimed), byMatch, "ClaimSubscriptions(%+v) must select what Match selects", c.f)
		}})
	}
	return out
}

// dueSubs returns n active subscriptions that ended before base.
func dueSubs(n int) []billing.Subscription {
	out := make([]billing.Subscription, n)
	for i := range out {
		out[i] = newSub(fmt.Sprintf("due-%04d", i), base.Add(-time.Duration(i+1)*time.Minute))
	}
	return out
}

func claim(ctx context.Context, t *testing.T, st billing.Store, token string, now time.Time, lease time.Duration, limit int) []string {
	t.Helper()
	got, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{
		Filter: billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}},
		Token:  token, Now: now, LeaseUntil: now.Add(lease), Limit: limit,
	})
	must(t, err, "ClaimSubscriptions(token %s)", token)
	if len(got) > limit {
		t.Fatalf("ClaimSubscriptions returned %d records, over its limit %d", len(got), limit)
	}
	return subIDs(got)
}

func disjoint(t *testing.T, sets ...[]string) []string {
	t.Helper()
	seen := map[string]int{}
	var all []string
	for i, set := range sets {
		for _, id := range set {
			if j, ok := seen[id]; ok {
				t.Fatalf("record %s returned twice (sets %d and %d)", id, j, i)
			}
			seen[id] = i
			all = append(all, id)
		}
	}
	return all
}

func (s *suite) claimTests() []test {
	return []test{
		{"LimitAndExclusive", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			seed := dueSubs(10)
			insertSubs(ctx, t, st, seed...)
			a := claim(ctx, t, st, "A", base, time.Hour, 4)
			if len(a) != 4 {
				t.Fatalf("claim with limit 4 over 10 records returned %d", len(a))
			}
			b := claim(ctx, t, st, "B", base, time.Hour, 100)
			if len(b) != 6 {
				t.Fatalf("second token got %d records, want the 6 unclaimed ones", len(b))
			}
			equalIDs(t, disjoint(t, a, b), subIDs(seed), "two tokens together claim every record once")
			if c := claim(ctx, t, st, "C", base, time.Hour, 100); len(c) != 0 {
				t.Fatalf("third token claimed %v while every lease is live", c)
			}
		}},
		{"TokenNeverGetsItsOwnClaimsAgain", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			seed := dueSubs(10)
			insertSubs(ctx, t, st, seed...)
			first := claim(ctx, t, st, "A", base, time.Hour, 4)
			second := claim(ctx, t, st, "A", base, time.Hour, 4)
			third := claim(ctx, t, st, "A", base, time.Hour, 4)
			if len(first) != 4 || len(second) != 4 || len(third) != 2 {
				t.Fatalf("batches of 4 over 10 records: got %d, %d, %d; want 4, 4, 2", len(first), len(second), len(third))
			}
			equalIDs(t, disjoint(t, first, second, third), subIDs(seed), "a token's batches cover every record once")
			if more := claim(ctx, t, st, "A", base, time.Hour, 4); len(more) != 0 {
				t.Fatalf("token re-got its own claims: %v", more)
			}
		}},
		{"ExpiredLeaseIsClaimable", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			seed := dueSubs(5)
			insertSubs(ctx, t, st, seed...)
			a := claim(ctx, t, st, "A", base, time.Minute, 10)
			if len(a) != 5 {
				t.Fatalf("A claimed %d of 5", len(a))
			}
			if b := claim(ctx, t, st, "B", base.Add(time.Minute-time.Millisecond), time.Minute, 10); len(b) != 0 {
				t.Fatalf("B claimed %v 1ms before A's lease ends", b)
			}
			// A lease that ended at Now is over.
			b := claim(ctx, t, st, "B", base.Add(time.Minute), time.Minute, 10)
			equalIDs(t, b, subIDs(seed), "B takes every record once A's lease has ended")
		}},
		{"ReleaseClaims", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			seed := dueSubs(6)
			insertSubs(ctx, t, st, seed...)
			a := claim(ctx, t, st, "A", base, time.Hour, 3)
			b := claim(ctx, t, st, "B", base, time.Hour, 3)
			disjoint(t, a, b)
			if c := claim(ctx, t, st, "C", base, time.Hour, 10); len(c) != 0 {
				t.Fatalf("C claimed %v while A and B hold everything", c)
			}
			must(t, st.ReleaseClaims(ctx, "A"), "ReleaseClaims(A)")
			c := claim(ctx, t, st, "C", base, time.Hour, 10)
			equalIDs(t, c, a, "after A releases, exactly A's records are claimable (B's stay held)")
			must(t, st.ReleaseClaims(ctx, "no-such-token"), "ReleaseClaims(unknown token)")
			// Releasing changes no record.
			for _, x := range seed {
				got, err := st.GetSubscription(ctx, x.ID)
				must(t, err, "GetSubscription")
				equal(t, got, x, "record %s after claims and releases", x.ID)
			}
		}},
		{"ClaimedRecordIsCurrent", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			insertSubs(ctx, t, st, dueSubs(1)...)
			got, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Token: "A", Now: base, LeaseUntil: base.Add(time.Hour), Limit: 1})
			must(t, err, "ClaimSubscriptions")
			if len(got) != 1 {
				t.Fatalf("claimed %d records, want 1", len(got))
			}
			stored, err := st.GetSubscription(ctx, got[0].ID)
			must(t, err, "GetSubscription")
			equal(t, got[0], stored, "a claimed record equals the stored one (same version)")
			// Jobs update what they claimed: the claim must not make the copy stale.
			changed := got[0]
			changed.Status = billing.SubscriptionStatusInactive
			_, err = billing.UpdateSubscription(ctx, st, got[0], changed)
			must(t, err, "UpdateSubscription(claimed record)")
			upd, err := st.GetSubscription(ctx, got[0].ID)
			must(t, err, "GetSubscription")
			if upd.Status != billing.SubscriptionStatusInactive {
				t.Fatalf("update of a claimed record not stored: %+v", upd)
			}
		}},
		{"ConcurrentClaimsEachRecordOnce", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			seed := dueSubs(s.opts.ClaimRecords)
			insertSubs(ctx, t, st, seed...)
			n, batch := s.opts.Goroutines, s.opts.ClaimBatch
			got := make([][]string, n)
			errs := make([]error, n)
			runConcurrently(n, func(i int) {
				token := fmt.Sprintf("worker-%d", i)
				for {
					b, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{
						Filter: billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}, PeriodEndBefore: base},
						Token:  token, Now: base, LeaseUntil: base.Add(time.Hour), Limit: batch,
					})
					if err != nil {
						errs[i] = err
						return
					}
					if len(b) == 0 {
						return
					}
					if len(b) > batch {
						errs[i] = fmt.Errorf("batch of %d over limit %d", len(b), batch)
						return
					}
					got[i] = append(got[i], subIDs(b)...)
				}
			})
			for i, err := range errs {
				must(t, err, "worker %d", i)
			}
			equalIDs(t, disjoint(t, got...), subIDs(seed), "%d concurrent workers together claim each of %d records exactly once", n, len(seed))
		}},
		{"ExtendClaims", ownStore, s.testExtendClaims},
		{"ConcurrentReleaseAndClaim", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			// Workers that release after each batch (as a finishing run does) still never
			// hand one record to two live holders at once.
			seed := dueSubs(s.opts.ClaimRecords / 5)
			insertSubs(ctx, t, st, seed...)
			var mu sync.Mutex
			holder := map[string]string{}
			var fail error
			runConcurrently(s.opts.Goroutines, func(i int) {
				for round := 0; round < 3; round++ {
					token := fmt.Sprintf("w%d-r%d", i, round)
					b, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Token: token, Now: base, LeaseUntil: base.Add(time.Hour), Limit: s.opts.ClaimBatch})
					mu.Lock()
					if err != nil && fail == nil {
						fail = err
					}
					for _, x := range b {
						if h, ok := holder[x.ID]; ok && fail == nil {
							fail = fmt.Errorf("record %s claimed by %s while %s holds it", x.ID, token, h)
						}
						holder[x.ID] = token
					}
					mu.Unlock()
					mu.Lock()
					for _, x := range b {
						delete(holder, x.ID)
					}
					mu.Unlock()
					if err := st.ReleaseClaims(ctx, token); err != nil {
						mu.Lock()
						fail = err
						mu.Unlock()
					}
				}
			})
			must(t, fail, "concurrent claim and release")
		}},
	}
}
