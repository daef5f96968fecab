package memstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

var base = time.Date(2030, time.June, 15, 12, 0, 0, 0, time.UTC)

// scan is the reference: every stored record, checked with Match, in period-end order.
func scan(st *Store, f billing.SubscriptionFilter) []string {
	st.mu.RLock()
	defer st.mu.RUnlock()
	var recs []*subRecord
	for _, r := range st.subs {
		if f.Match(r.sub) {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b *subRecord) int { // not cmpByEnd: this checks it
		if c := a.sub.CurrentPeriodEnd.Compare(b.sub.CurrentPeriodEnd); c != 0 {
			return c
		}
		return strings.Compare(a.sub.ID, b.sub.ID)
	})
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.sub.ID
	}
	return out
}

func idsOf(xs []billing.Subscription) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.ID
	}
	return out
}

// TestIndexesAgreeWithScan moves records between users, period ends and deletion at
// random and checks that every indexed read agrees with a scan of all records.
func TestIndexesAgreeWithScan(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	st := New()
	const n = 300
	users := []string{"u0", "u1", "u2", "u3", "u4", "u5"}
	end := func() time.Time { return base.Add(time.Duration(rng.IntN(20)-10) * time.Hour) }
	for i := range n {
		x := billing.Subscription{ID: fmt.Sprintf("s%03d", i), UserID: users[rng.IntN(len(users))], Status: billing.SubscriptionStatusActive,
			CurrentPeriodEnd: end(), CreatedAt: base.Add(-time.Duration(rng.IntN(100)) * time.Hour), Deleted: rng.IntN(20) == 0}
		if err := st.InsertSubscription(ctx, &x); err != nil {
			t.Fatal(err)
		}
	}
	statuses := []billing.SubscriptionStatus{billing.SubscriptionStatusActive, billing.SubscriptionStatusInactive}
	for round := range 40 {
		// A batch of random changes.
		var changes []billing.SubscriptionChange
		for range 30 {
			read, err := st.GetSubscription(ctx, fmt.Sprintf("s%03d", rng.IntN(n)))
			if err != nil {
				continue // soft-deleted
			}
			changed := read
			switch rng.IntN(4) {
			case 0:
				changed.UserID = users[rng.IntN(len(users))]
			case 1:
				changed.CurrentPeriodEnd = end()
			case 2:
				changed.Status = statuses[rng.IntN(2)]
			case 3:
				changed.Deleted = rng.IntN(10) == 0
			}
			c := billing.SubscriptionChange{Read: read, Changed: changed}
			if rng.IntN(4) == 0 {
				c.Effects = &billing.Effects{Token: fmt.Sprintf("e%d", round)}
			}
			changes = append(changes, c)
		}
		var done []billing.EffectsDone
		for range 10 {
			done = append(done, billing.EffectsDone{SubscriptionID: fmt.Sprintf("s%03d", rng.IntN(n)), Token: fmt.Sprintf("e%d", rng.IntN(round+1))})
		}
		if err := st.CompleteEffects(ctx, done); err != nil {
			t.Fatal(err)
		}
		errs, err := st.UpdateSubscriptions(ctx, changes)
		if err != nil {
			t.Fatal(err)
		}
		_ = errs // a record changed twice in one batch conflicts the second time
		after, before := end(), end()
		if after.After(before) {
			after, before = before, after
		}
		uids := []string{users[rng.IntN(len(users))], users[rng.IntN(len(users))]}
		filters := []billing.SubscriptionFilter{
			{},
			{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}},
			{PeriodEndAfter: after, PeriodEndBefore: before},
			{PeriodEndBefore: before},
			{PeriodEndAfter: after},
			{UserIDs: uids},
			{UserIDs: uids, PeriodEndBefore: before, Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}},
		}
		for _, f := range filters {
			want := scan(st, f)
			got, err := st.ListSubscriptions(ctx, f, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(idsOf(got), want) {
				t.Fatalf("round %d: ListSubscriptions(%+v) = %v, want %v", round, f, idsOf(got), want)
			}
			if lim, err := st.ListSubscriptions(ctx, f, 3); err != nil || !slices.Equal(idsOf(lim), want[:min(3, len(want))]) {
				t.Fatalf("round %d: ListSubscriptions(%+v, 3) = %v, %v; want %v", round, f, idsOf(lim), err, want[:min(3, len(want))])
			}
			if c, err := st.CountSubscriptions(ctx, f); err != nil || c != len(want) {
				t.Fatalf("round %d: CountSubscriptions(%+v) = %d, %v; want %d", round, f, c, err, len(want))
			}
		}
		for _, u := range users {
			want := scan(st, billing.SubscriptionFilter{UserIDs: []string{u}})
			got, err := st.ListUserSubscriptions(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			gotIDs := idsOf(got)
			sort.Strings(gotIDs)
			sort.Strings(want)
			if !slices.Equal(gotIDs, want) {
				t.Fatalf("round %d: ListUserSubscriptions(%s) = %v, want %v", round, u, gotIDs, want)
			}
			for i := 1; i < len(got); i++ {
				if got[i].CreatedAt.After(got[i-1].CreatedAt) {
					t.Fatalf("ListUserSubscriptions(%s) not newest first", u)
				}
			}
		}
		// Claims through every path agree with the scan too.
		f := filters[rng.IntN(len(filters))]
		token := fmt.Sprintf("t%d", round)
		pending := rng.IntN(2) == 0
		claimed, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Filter: f, Token: token, Now: base, LeaseUntil: base.Add(time.Minute), Limit: 1000, Pending: pending})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, id := range scan(st, f) {
			if (st.subs[id].sub.Pending != nil) == pending {
				want = append(want, id)
			}
		}
		if !slices.Equal(idsOf(claimed), want) {
			t.Fatalf("round %d: ClaimSubscriptions(%+v, pending %v) = %v, want %v", round, f, pending, idsOf(claimed), want)
		}
		npending := 0
		for _, r := range st.subs {
			if r.sub.Pending != nil {
				npending++
				if st.pending[r.sub.ID] != r {
					t.Fatalf("round %d: %s carries effects but is not in the pending index", round, r.sub.ID)
				}
			}
		}
		if npending != len(st.pending) {
			t.Fatalf("round %d: pending index holds %d records, %d carry effects", round, len(st.pending), npending)
		}
		if err := st.ReleaseClaims(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
}

// TestClaimIndex: ExtendClaims and ReleaseClaims act on exactly the records a token still
// holds, after takeovers and CompleteEffects.
func TestClaimIndex(t *testing.T) {
	ctx := context.Background()
	st := New()
	for i := range 6 {
		x := billing.Subscription{ID: fmt.Sprintf("s%d", i), UserID: "u", Status: billing.SubscriptionStatusActive, CurrentPeriodEnd: base.Add(time.Duration(i) * time.Minute)}
		if i < 2 {
			x.Pending = &billing.Effects{Token: "e"}
		}
		if err := st.InsertSubscription(ctx, &x); err != nil {
			t.Fatal(err)
		}
	}
	claim := func(token string, now time.Time, pending bool) []string {
		t.Helper()
		got, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Token: token, Now: now, LeaseUntil: now.Add(time.Minute), Limit: 10, Pending: pending})
		if err != nil {
			t.Fatal(err)
		}
		return idsOf(got)
	}
	if got := claim("A", base, true); !slices.Equal(got, []string{"s0", "s1"}) {
		t.Fatalf("pending claim = %v, want s0 s1", got)
	}
	if got := claim("A", base, false); !slices.Equal(got, []string{"s2", "s3", "s4", "s5"}) {
		t.Fatalf("claim without pending = %v, want s2..s5", got)
	}
	// s0's effects are done: its claim goes with them.
	if err := st.CompleteEffects(ctx, []billing.EffectsDone{{SubscriptionID: "s0", Token: "e"}, {SubscriptionID: "s1", Token: "other"}, {SubscriptionID: "nope", Token: "e"}}); err != nil {
		t.Fatal(err)
	}
	// A's lease lapses; B takes everything claimable.
	if got := claim("B", base.Add(time.Minute), false); !slices.Equal(got, []string{"s0", "s2", "s3", "s4", "s5"}) {
		t.Fatalf("B's claim after A's lease = %v", got)
	}
	// A extends what it still holds (s1 only); B's records keep B's lease.
	if err := st.ExtendClaims(ctx, "A", base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"s0": "B", "s1": "A", "s2": "B", "s5": "B"} {
		if r := st.subs[id]; r.claimToken != want {
			t.Fatalf("%s held by %q, want %q", id, r.claimToken, want)
		}
	}
	if r := st.subs["s1"]; !r.claimUntil.Equal(base.Add(time.Hour)) {
		t.Fatalf("A's extended lease = %v", r.claimUntil)
	}
	if r := st.subs["s2"]; !r.claimUntil.Equal(base.Add(2 * time.Minute)) {
		t.Fatalf("A's extension moved B's lease: %v", r.claimUntil)
	}
	if err := st.ReleaseClaims(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	if r := st.subs["s1"]; r.claimToken != "" || st.subs["s2"].claimToken != "B" {
		t.Fatal("ReleaseClaims(A) released the wrong records")
	}
	if _, ok := st.claims["A"]; ok {
		t.Fatal("a released token's claim set was kept")
	}
	if err := st.ReleaseClaims(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	if len(st.claims) != 0 {
		t.Fatalf("claim sets left after every token released: %v", st.claims)
	}
}

// TestPendingNeverAliased: effects stored, claimed, read and listed are copies.
func TestPendingNeverAliased(t *testing.T) {
	ctx := context.Background()
	st := New()
	x := billing.Subscription{ID: "s1", UserID: "u1", Status: billing.SubscriptionStatusActive, CurrentPeriodEnd: base}
	if err := st.InsertSubscription(ctx, &x); err != nil {
		t.Fatal(err)
	}
	read, _ := st.GetSubscription(ctx, "s1")
	brt := time.FixedZone("BRT", -3*3600)
	eff := &billing.Effects{
		Token:         "tok",
		Access:        &billing.AccessEffect{UserID: "u1", Status: billing.SubscriptionStatusInactive},
		Notifications: []billing.Notification{{Kind: billing.NotificationKindExpired, Key: "k", Data: billing.NotificationData{PeriodEnd: base.Add(123456).In(brt)}}},
		Audit: []billing.AuditEntry{{ID: "a1", Action: "x", CreatedAt: base.Add(999).In(brt),
			Details: map[string]any{"nested": map[string]any{"n": 1}, "list": []any{"a"}, "strs": []string{"s"}}}},
		CreatedAt: base.Add(777).In(brt),
	}
	changed := read
	changed.Status = billing.SubscriptionStatusInactive
	errs, err := st.UpdateSubscriptions(ctx, []billing.SubscriptionChange{{Read: read, Changed: changed, Effects: eff}})
	if err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	// The caller's effects change after the write.
	eff.Access.Status = "mutated"
	eff.Notifications[0].Key = "mutated"
	eff.Audit[0].Details["nested"].(map[string]any)["n"] = 2
	eff.Audit[0].Details["list"].([]any)[0] = "mutated"
	eff.Audit[0].Details["strs"].([]string)[0] = "mutated"
	check := func(what string, got billing.Subscription) {
		t.Helper()
		p := got.Pending
		if p == nil || p.Access.Status != billing.SubscriptionStatusInactive || p.Notifications[0].Key != "k" ||
			p.Audit[0].Details["nested"].(map[string]any)["n"] != 1 || p.Audit[0].Details["list"].([]any)[0] != "a" ||
			p.Audit[0].Details["strs"].([]string)[0] != "s" {
			t.Fatalf("%s: stored effects alias a caller's: %+v", what, p)
		}
		for name, tm := range map[string]time.Time{"CreatedAt": p.CreatedAt, "PeriodEnd": p.Notifications[0].Data.PeriodEnd, "Audit.CreatedAt": p.Audit[0].CreatedAt} {
			if tm.Location() != time.UTC || tm.Nanosecond()%int(time.Millisecond) != 0 {
				t.Fatalf("%s: Pending %s = %v, want UTC at millisecond precision", what, name, tm)
			}
		}
		// Mutate what was returned; the next read must not see it.
		p.Access.Status = "mutated"
		p.Notifications[0].Key = "mutated"
		p.Audit[0].Details["nested"].(map[string]any)["n"] = 3
		p.Audit[0].Details["strs"].([]string)[0] = "mutated"
	}
	got, _ := st.GetSubscription(ctx, "s1")
	check("GetSubscription", got)
	got, _ = st.GetSubscription(ctx, "s1")
	check("GetSubscription again", got)
	list, _ := st.ListSubscriptions(ctx, billing.SubscriptionFilter{}, 0)
	check("ListSubscriptions", list[0])
	list, _ = st.ListUserSubscriptions(ctx, "u1")
	check("ListUserSubscriptions", list[0])
	claimed, _ := st.ClaimSubscriptions(ctx, billing.ClaimParams{Token: "c", Now: base, LeaseUntil: base.Add(time.Minute), Limit: 1, Pending: true})
	check("ClaimSubscriptions", claimed[0])
	got, _ = st.GetSubscription(ctx, "s1")
	check("GetSubscription at the end", got)
}

// TestBatchAllocations keeps the sweep's store calls cheap: a batch update allocates a
// fixed number of times plus one per stored effects record, not per field.
func TestBatchAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	ctx := context.Background()
	st := New()
	const n = 200
	var changes []billing.SubscriptionChange
	for i := range n {
		x := billing.Subscription{ID: fmt.Sprintf("s%03d", i), UserID: "u", Status: billing.SubscriptionStatusActive, CurrentPeriodEnd: base}
		if err := st.InsertSubscription(ctx, &x); err != nil {
			t.Fatal(err)
		}
		changed := x
		changed.ExpirationWarningSent, changed.ExpirationWarningDays, changed.UpdatedAt = true, 3, base
		changes = append(changes, billing.SubscriptionChange{Read: changed, Changed: x}) // swapped before each run
	}
	allocs := testing.AllocsPerRun(10, func() {
		for i := range changes { // back and forth: each change's condition holds
			changes[i].Read, changes[i].Changed = changes[i].Changed, changes[i].Read
		}
		errs, err := st.UpdateSubscriptions(ctx, changes)
		if err != nil || errors.Join(errs...) != nil {
			t.Fatal(err, errors.Join(errs...))
		}
	})
	if allocs > 2 {
		t.Fatalf("UpdateSubscriptions of %d changes allocated %.0f times, want at most 2", n, allocs)
	}
	if got, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Token: "a", Now: base, LeaseUntil: base.Add(time.Minute), Limit: n}); err != nil || len(got) != n {
		t.Fatal(err, len(got))
	}
	allocs = testing.AllocsPerRun(10, func() {
		if _, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Token: "b", Now: base, LeaseUntil: base.Add(time.Minute), Limit: n}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Fatalf("a claim that finds nothing allocated %.0f times, want at most 1", allocs)
	}
}

// TestEntryOrderIsIDOrder: comparing entries of one period end orders them by id.
func TestEntryOrderIsIDOrder(t *testing.T) {
	ids := []string{"", "a", "a\x00", "a\x00\x00", "ab", "abcdefgh", "abcdefgh\x00", "abcdefghi", "abcdefgi", "b", "s000001", "s00000", "\xff", "\xff\xff\xff\xff\xff\xff\xff\xff\x00"}
	for _, a := range ids {
		for _, b := range ids {
			ea := endEntry{idKey: idPrefix(a), id: a}
			eb := endEntry{idKey: idPrefix(b), id: b}
			if got, want := cmpEntries(ea, eb), strings.Compare(a, b); got != want {
				t.Fatalf("cmpEntries(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
}
