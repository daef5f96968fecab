package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

func (s *suite) subscriptionTests() []test {
	return []test{
		{"InsertGetAllFields", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			x := newSub(my("s1"), base.Add(3*day), autoRenewing(billing.GatewayStripe), func(x *billing.Subscription) {
				x.Status = billing.SubscriptionStatusPastDue
				x.BillingCycle = billing.CycleQuarterly
				x.CancelAtPeriodEnd = true
				x.ExpirationWarningSent, x.ExpirationWarningDays = true, 3
				x.GatewayUpdatedAt = base.Add(-2 * day)
				x.AppliedPayments = []string{"pay1", "pay2"}
				x.CancelledAt = base.Add(-day)
			})
			want := x
			must(t, st.InsertSubscription(ctx, &x), "InsertSubscription")
			got, err := st.GetSubscription(ctx, my("s1"))
			must(t, err, "GetSubscription")
			equal(t, got, want, "GetSubscription(s1)")
		}},
		{"InsertAssignsID", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			x := newSub("", base)
			must(t, st.InsertSubscription(ctx, &x), "InsertSubscription without id")
			if x.ID == "" {
				t.Fatal("InsertSubscription left the id empty; it must assign one")
			}
			if _, err := st.GetSubscription(ctx, x.ID); err != nil {
				t.Fatalf("GetSubscription(assigned id %q): %v", x.ID, err)
			}
		}},
		{"DuplicateIsConflict", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			insertSubs(ctx, t, st, newSub(my("s1"), base))
			dup := newSub(my("s1"), base.Add(day))
			wantErr(t, st.InsertSubscription(ctx, &dup), billing.ErrConflict, "InsertSubscription(duplicate id)")
			got, err := st.GetSubscription(ctx, my("s1"))
			must(t, err, "GetSubscription")
			if !got.CurrentPeriodEnd.Equal(base) {
				t.Fatalf("a rejected duplicate replaced the subscription: period end %v", got.CurrentPeriodEnd)
			}
		}},
		{"MissingIsNotFound", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			_, err := st.GetSubscription(ctx, my("nope"))
			wantErr(t, err, billing.ErrNotFound, "GetSubscription(missing)")
			missing := newSub(my("nope"), base)
			changed := missing
			changed.Status = billing.SubscriptionStatusInactive
			_, err = billing.UpdateSubscription(ctx, st, missing, changed)
			wantErr(t, err, billing.ErrNotFound, "UpdateSubscriptions(missing)")
			_, err = st.FindSubscriptionByGateway(ctx, billing.GatewayStripe, my("gw-nope"))
			wantErr(t, err, billing.ErrNotFound, "FindSubscriptionByGateway(missing)")
			list, err := st.ListUserSubscriptions(ctx, my("nobody"))
			must(t, err, "ListUserSubscriptions(unknown user)")
			if len(list) != 0 {
				t.Fatalf("ListUserSubscriptions(unknown user) = %v, want none", subIDs(list))
			}
		}},
		{"UpdateConditionalOnRead", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			insertSubs(ctx, t, st, newSub(my("s1"), base))
			read, err := st.GetSubscription(ctx, my("s1"))
			must(t, err, "GetSubscription")
			upd := read
			upd.Status, upd.UpdatedAt = billing.SubscriptionStatusInactive, base.Add(day)
			upd.AppliedPayments = []string{"pay1"}
			got, err := billing.UpdateSubscription(ctx, st, read, upd)
			must(t, err, "UpdateSubscription")
			stored, err := st.GetSubscription(ctx, my("s1"))
			must(t, err, "GetSubscription after update")
			if stored.Version != read.Version+1 {
				t.Fatalf("stored version after an applied change = %d, want %d", stored.Version, read.Version+1)
			}
			equal(t, stored, got, "stored record equals the changed one")
			if stored.Status != billing.SubscriptionStatusInactive || len(stored.AppliedPayments) != 1 {
				t.Fatalf("update not stored: %+v", stored)
			}
			// A writer still holding the first read loses: its Read no longer matches the
			// stored record.
			stale := read
			stale.Status = billing.SubscriptionStatusCancelled
			_, err = billing.UpdateSubscription(ctx, st, read, stale)
			wantErr(t, err, billing.ErrConflict, "UpdateSubscription(Read no longer matches the stored record)")
			after, err := st.GetSubscription(ctx, my("s1"))
			must(t, err, "GetSubscription")
			equal(t, after, got, "a conflicting change changed nothing")
			// The fresh copy updates again.
			again := got
			again.Status = billing.SubscriptionStatusActive
			_, err = billing.UpdateSubscription(ctx, st, got, again)
			must(t, err, "UpdateSubscription(fresh copy)")
			stored, err = st.GetSubscription(ctx, my("s1"))
			must(t, err, "GetSubscription")
			if stored.Version != read.Version+2 || stored.Status != billing.SubscriptionStatusActive {
				t.Fatalf("after two changes: version %d status %s, want version %d status active", stored.Version, stored.Status, read.Version+2)
			}
		}},
		{"ReturnedValuesAreCopies", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			x := newSub(my("s1"), base, func(x *billing.Subscription) { x.AppliedPayments = []string{"pay1", "pay2"} })
			insertSubs(ctx, t, st, x)
			x.AppliedPayments[0] = "mutated-after-insert"
			got, err := st.GetSubscription(ctx, my("s1"))
			must(t, err, "GetSubscription")
			got.AppliedPayments[1] = "mutated-after-get"
			again, err := st.GetSubscription(ctx, my("s1"))
			must(t, err, "GetSubscription")
			equalIDs(t, again.AppliedPayments, []string{"pay1", "pay2"}, "callers' slices must not alias stored data")
		}},
		{"FindByGateway", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			insertSubs(ctx, t, st,
				newSub(my("s1"), base, autoRenewing(billing.GatewayStripe)),
				newSub(my("s2"), base, autoRenewing(billing.GatewayPayPal)),
				newSub(my("s3"), base),
			)
			got, err := st.FindSubscriptionByGateway(ctx, billing.GatewayStripe, my("gw-s1"))
			must(t, err, "FindSubscriptionByGateway")
			if got.ID != my("s1") {
				t.Fatalf("FindSubscriptionByGateway(stripe, gw-s1) = %s, want s1", got.ID)
			}
			_, err = st.FindSubscriptionByGateway(ctx, billing.GatewayStripe, my("gw-s2"))
			wantErr(t, err, billing.ErrNotFound, "FindSubscriptionByGateway(other gateway's id)")
			_, err = st.FindSubscriptionByGateway(ctx, billing.GatewayManual, "")
			wantErr(t, err, billing.ErrNotFound, "FindSubscriptionByGateway(empty id) must not match records without one")
			// Lookups follow updates: a new gateway id, then a soft delete.
			moved := got
			moved.GatewaySubscriptionID = my("gw-s1-new")
			got, err = billing.UpdateSubscription(ctx, st, got, moved)
			must(t, err, "UpdateSubscription(new gateway id)")
			_, err = st.FindSubscriptionByGateway(ctx, billing.GatewayStripe, my("gw-s1"))
			wantErr(t, err, billing.ErrNotFound, "FindSubscriptionByGateway(replaced gateway id)")
			found, err := st.FindSubscriptionByGateway(ctx, billing.GatewayStripe, my("gw-s1-new"))
			must(t, err, "FindSubscriptionByGateway(new gateway id)")
			if found.ID != my("s1") {
				t.Fatalf("FindSubscriptionByGateway(stripe, gw-s1-new) = %s, want s1", found.ID)
			}
			gone := got
			gone.Deleted = true
			_, err = billing.UpdateSubscription(ctx, st, got, gone)
			must(t, err, "UpdateSubscription(flag_del)")
			_, err = st.FindSubscriptionByGateway(ctx, billing.GatewayStripe, my("gw-s1-new"))
			wantErr(t, err, billing.ErrNotFound, "FindSubscriptionByGateway(soft-deleted by update)")
		}},
		{"ListUserSubscriptionsNewestFirst", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			mk := func(id, user string, ageDays int, deleted bool) billing.Subscription {
				return newSub(id, base, func(x *billing.Subscription) {
					x.UserID, x.CreatedAt, x.Deleted = user, base.Add(-day*time.Duration(ageDays)), deleted
				})
			}
			insertSubs(ctx, t, st, mk("old", "u1", 30, false), mk("new", "u1", 1, false), mk("mid", "u1", 10, false),
				mk("other", "u2", 5, false), mk("gone", "u1", 0, true))
			list, err := st.ListUserSubscriptions(ctx, "u1")
			must(t, err, "ListUserSubscriptions")
			got := make([]string, len(list))
			for i, x := range list {
				got[i] = x.ID
			}
			if want := []string{"new", "mid", "old"}; !slices.Equal(got, want) {
				t.Fatalf("ListUserSubscriptions(u1) = %v, want %v (newest first, soft-deleted and other users' left out)", got, want)
			}
		}},
		{"SoftDeletedInvisible", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			gone := newSub("gone", base.Add(day), autoRenewing(billing.GatewayStripe), func(x *billing.Subscription) { x.Deleted = true })
			insertSubs(ctx, t, st, gone, newSub("live", base.Add(day)))
			_, err := st.GetSubscription(ctx, "gone")
			wantErr(t, err, billing.ErrNotFound, "GetSubscription(soft-deleted)")
			_, err = st.FindSubscriptionByGateway(ctx, billing.GatewayStripe, "gw-gone")
			wantErr(t, err, billing.ErrNotFound, "FindSubscriptionByGateway(soft-deleted)")
			list, err := st.ListUserSubscriptions(ctx, "u1")
			must(t, err, "ListUserSubscriptions")
			equalIDs(t, subIDs(list), []string{"live"}, "ListUserSubscriptions skips soft-deleted")
			n, err := st.CountSubscriptions(ctx, billing.SubscriptionFilter{})
			must(t, err, "CountSubscriptions")
			if n != 1 {
				t.Fatalf("CountSubscriptions({}) = %d, want 1 (soft-deleted not counted)", n)
			}
			by, err := st.CountSubscriptionsByStatus(ctx)
			must(t, err, "CountSubscriptionsByStatus")
			if by[billing.SubscriptionStatusActive] != 1 {
				t.Fatalf("CountSubscriptionsByStatus = %v, want active:1 (soft-deleted not counted)", by)
			}
			claimed, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Token: "t1", Now: base, LeaseUntil: base.Add(day), Limit: 10})
			must(t, err, "ClaimSubscriptions")
			equalIDs(t, subIDs(claimed), []string{"live"}, "ClaimSubscriptions skips soft-deleted")
		}},
		{"SoftDeleteByUpdate", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			insertSubs(ctx, t, st, newSub(my("s1"), base))
			x, err := st.GetSubscription(ctx, my("s1"))
			must(t, err, "GetSubscription")
			gone := x
			gone.Deleted = true
			gone, err = billing.UpdateSubscription(ctx, st, x, gone)
			must(t, err, "UpdateSubscription(flag_del)")
			_, err = st.GetSubscription(ctx, my("s1"))
			wantErr(t, err, billing.ErrNotFound, "GetSubscription after soft delete")
			// A soft-deleted record is gone for changes too.
			again := gone
			again.Status = billing.SubscriptionStatusInactive
			_, err = billing.UpdateSubscription(ctx, st, gone, again)
			wantErr(t, err, billing.ErrNotFound, "UpdateSubscription(soft-deleted)")
		}},
		{"CountByStatus", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			st2 := func(id string, status billing.SubscriptionStatus) billing.Subscription {
				return newSub(id, base, func(x *billing.Subscription) { x.Status = status })
			}
			insertSubs(ctx, t, st, st2("a1", billing.SubscriptionStatusActive), st2("a2", billing.SubscriptionStatusActive), st2("i1", billing.SubscriptionStatusInactive),
				st2("c1", billing.SubscriptionStatusCancelled), st2("p1", billing.SubscriptionStatusPastDue))
			by, err := st.CountSubscriptionsByStatus(ctx)
			must(t, err, "CountSubscriptionsByStatus")
			want := map[billing.SubscriptionStatus]int{billing.SubscriptionStatusActive: 2, billing.SubscriptionStatusInactive: 1, billing.SubscriptionStatusCancelled: 1, billing.SubscriptionStatusPastDue: 1}
			for k, v := range want {
				if by[k] != v {
					t.Fatalf("CountSubscriptionsByStatus = %v, want %v", by, want)
				}
			}
			for k, v := range by {
				if v != 0 && want[k] == 0 {
					t.Fatalf("CountSubscriptionsByStatus = %v, want %v", by, want)
				}
			}
		}},
	}
}
