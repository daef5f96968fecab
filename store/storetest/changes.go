package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// --- helpers for the batch methods ---

// apply runs one UpdateSubscriptions call and fails the test when the whole call fails or
// the results are not one per change.
func apply(ctx context.Context, t *testing.T, st billing.Store, changes ...billing.SubscriptionChange) []error {
	t.Helper()
	errs, err := st.UpdateSubscriptions(ctx, changes)
	must(t, err, "UpdateSubscriptions(%d changes)", len(changes))
	if len(errs) != len(changes) {
		t.Fatalf("UpdateSubscriptions(%d changes) returned %d results, want one per change", len(changes), len(errs))
	}
	return errs
}

// applyOne applies one change that must succeed.
func applyOne(ctx context.Context, t *testing.T, st billing.Store, c billing.SubscriptionChange) {
	t.Helper()
	must(t, apply(ctx, t, st, c)[0], "UpdateSubscriptions(%s)", c.Read.ID)
}

// wantResults checks per-change results: nil where want is nil, errors.Is otherwise.
func wantResults(t *testing.T, got, want []error, what string) {
	t.Helper()
	for i := range want {
		switch {
		case want[i] == nil && got[i] != nil:
			t.Fatalf("%s: change %d: unexpected error %v (results %v)", what, i, got[i], got)
		case want[i] != nil && !errors.Is(got[i], want[i]):
			t.Fatalf("%s: change %d: got %v, want an error matching %v (results %v)", what, i, got[i], want[i], got)
		}
	}
}

func getSub(ctx context.Context, t *testing.T, st billing.Store, id string) billing.Subscription {
	t.Helper()
	x, err := st.GetSubscription(ctx, id)
	must(t, err, "GetSubscription(%s)", id)
	return x
}

// otherWriter changes the stored record as another writer (the processor, a webhook, the
// host) would, from a fresh read, and returns the record as stored afterwards.
func otherWriter(ctx context.Context, t *testing.T, st billing.Store, id string, mod func(*billing.Subscription)) billing.Subscription {
	t.Helper()
	read := getSub(ctx, t, st, id)
	changed := read
	mod(&changed)
	_, err := billing.UpdateSubscription(ctx, st, read, changed)
	must(t, err, "the other writer's change of %s", id)
	return getSub(ctx, t, st, id)
}

// warned is x after the expiring-warning job marked the ladder offset days as sent.
func warned(x billing.Subscription, days int) billing.Subscription {
	x.ExpirationWarningSent, x.ExpirationWarningDays, x.UpdatedAt = true, days, base
	return x
}

// bumped is x as stored after n applied changes.
func bumped(x billing.Subscription, n int64) billing.Subscription {
	x.Version += n
	return x
}

// ofUser gives each subscription its own user so claims can target it by UserIDs.
func ofUser(id string) func(*billing.Subscription) {
	return func(x *billing.Subscription) { x.UserID = id }
}

func claimUsers(ctx context.Context, t *testing.T, st billing.Store, token string, now time.Time, lease time.Duration, pending bool, users ...string) []string {
	t.Helper()
	got, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{
		Filter: billing.SubscriptionFilter{UserIDs: users},
		Token:  token, Now: now, LeaseUntil: now.Add(lease), Limit: 100, Pending: pending,
	})
	must(t, err, "ClaimSubscriptions(token %s, users %v, pending %v)", token, users, pending)
	return subIDs(got)
}

// sampleEffects returns effects using every field, with times in another zone and below the
// millisecond, and details of the kinds the jobs write.
func sampleEffects(token string, x billing.Subscription) *billing.Effects {
	brt := time.FixedZone("BRT", -3*60*60)
	ns := 123456 * time.Nanosecond
	return &billing.Effects{
		Token:  token,
		Access: &billing.AccessEffect{UserID: x.UserID, Status: billing.SubscriptionStatusInactive},
		Notifications: []billing.Notification{
			{
				Kind: billing.NotificationKindExpired, Key: "expired:" + x.ID + ":" + x.CurrentPeriodEnd.Format("20060102"),
				To: billing.Recipient{UserID: x.UserID, Email: x.UserID + "@example.com", Name: "User " + x.UserID, Locale: "pt-BR", TimeZone: "America/Sao_Paulo"},
				Data: billing.NotificationData{PlanName: "Plan p1", SubscriptionID: x.ID, Amount: billing.Money{Amount: 2990, Currency: "BRL"},
					PeriodStart: x.CurrentPeriodStart.In(brt).Add(ns), PeriodEnd: x.CurrentPeriodEnd.In(brt).Add(ns), DaysRemaining: 3, Gateway: x.Gateway},
			},
			{
				Kind: billing.NotificationKindOperatorAlert, Key: "alert:" + x.ID,
				To:   billing.Recipient{Email: "ops@example.com"},
				Data: billing.NotificationData{JobID: "process_expired_subscriptions", RunID: "run-1", Error: "smtp down", ConsecutiveFails: 5},
			},
		},
		Audit: []billing.AuditEntry{
			{ID: "audit-" + x.ID + "-1", Action: billing.AuditSubscriptionExpired, EntityType: "subscription", EntityID: x.ID, UserID: x.UserID,
				Actor: "renewkit", Details: map[string]any{"note": "expired", "plan_id": x.PlanID}, CreatedAt: base.In(brt).Add(ns)},
			{ID: "audit-" + x.ID + "-2", Action: billing.AuditAccessRevoked, EntityType: "user", EntityID: x.UserID, Actor: "renewkit",
				CreatedAt: base.In(brt).Add(time.Second)},
		},
		CreatedAt: base.In(brt).Add(ns),
	}
}

// --- subscription changes ---

func (s *suite) changeTests() []test {
	return []test{
		{"EmptyBatches", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			errs, err := st.UpdateSubscriptions(ctx, nil)
			must(t, err, "UpdateSubscriptions(no changes)")
			if len(errs) != 0 {
				t.Fatalf("UpdateSubscriptions(no changes) = %v, want no results", errs)
			}
			must(t, st.CompleteEffects(ctx, nil), "CompleteEffects(none)")
			uerrs, err := st.UpdateUsersAccess(ctx, nil)
			must(t, err, "UpdateUsersAccess(no changes)")
			if len(uerrs) != 0 {
				t.Fatalf("UpdateUsersAccess(no changes) = %v, want no results", uerrs)
			}
			u := newUser("u1")
			must(t, st.InsertUser(ctx, &u), "InsertUser")
			users, err := st.ListUsers(ctx, nil)
			must(t, err, "ListUsers(no ids)")
			if len(users) != 0 {
				t.Fatalf("ListUsers(no ids) returned %d users, want none", len(users))
			}
			must(t, st.InsertAudits(ctx, nil), "InsertAudits(none)")
			ok, err := st.ReserveNotifications(ctx, nil, "A", base, base.Add(time.Minute))
			must(t, err, "ReserveNotifications(none)")
			if len(ok) != 0 {
				t.Fatalf("ReserveNotifications(none) = %v, want no results", ok)
			}
			must(t, st.FinishNotifications(ctx, nil, "A"), "FinishNotifications(none)")
			must(t, st.ExtendClaims(ctx, "no-such-token", base.Add(time.Hour)), "ExtendClaims(unknown token)")
		}},
		{"BatchMixedResultsAligned", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			gone := newSub(my("gone"), base.Add(day), func(x *billing.Subscription) { x.Deleted = true })
			insertSubs(ctx, t, st, newSub(my("s1"), base.Add(day)), newSub(my("s2"), base.Add(day)), newSub(my("s3"), base.Add(day)),
				newSub(my("s4"), base.Add(day)), gone)
			r1, r2, r3, r4 := getSub(ctx, t, st, my("s1")), getSub(ctx, t, st, my("s2")), getSub(ctx, t, st, my("s3")), getSub(ctx, t, st, my("s4"))
			// Between the read and the batch, another writer cancels s2.
			o2 := otherWriter(ctx, t, st, my("s2"), func(x *billing.Subscription) { x.Status, x.CancelledAt = billing.SubscriptionStatusCancelled, base })
			expired := r3
			expired.Status, expired.UpdatedAt = billing.SubscriptionStatusInactive, base
			// s4 read with a period end it no longer has.
			r4old := r4
			r4old.CurrentPeriodEnd = r4.CurrentPeriodEnd.Add(-30 * day)
			missing := newSub(my("missing"), base.Add(day))
			errs := apply(ctx, t, st,
				billing.SubscriptionChange{Read: r1, Changed: warned(r1, 3)},
				billing.SubscriptionChange{Read: r2, Changed: warned(r2, 3)},
				billing.SubscriptionChange{Read: missing, Changed: warned(missing, 3)},
				billing.SubscriptionChange{Read: r3, Changed: expired},
				billing.SubscriptionChange{Read: gone, Changed: warned(gone, 3)},
				billing.SubscriptionChange{Read: r4old, Changed: warned(r4old, 3)},
			)
			wantResults(t, errs, []error{nil, billing.ErrConflict, billing.ErrNotFound, nil, billing.ErrNotFound, billing.ErrConflict},
				"UpdateSubscriptions(applied, stale status, missing, applied, soft-deleted, stale period end)")
			equal(t, getSub(ctx, t, st, my("s1")), bumped(warned(r1, 3), 1), "s1 (applied)")
			equal(t, getSub(ctx, t, st, my("s2")), o2, "s2 keeps the other writer's values")
			equal(t, getSub(ctx, t, st, my("s3")), bumped(expired, 1), "s3 (applied after failing changes in the same batch)")
			equal(t, getSub(ctx, t, st, my("s4")), r4, "s4 (conflict on period end) is untouched")
			if _, err := st.GetSubscription(ctx, my("missing")); !isNotFound(err) {
				t.Fatalf("a change of a missing record created it: GetSubscription got %v", err)
			}
		}},
		{"ChangedByOtherStatusConflicts", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			insertSubs(ctx, t, st, newSub(my("s1"), base.Add(2*day)))
			read := getSub(ctx, t, st, my("s1"))
			// The host cancels the subscription while the warning job works on its copy.
			o := otherWriter(ctx, t, st, my("s1"), func(x *billing.Subscription) { x.Status, x.CancelledAt = billing.SubscriptionStatusCancelled, base })
			err := apply(ctx, t, st, billing.SubscriptionChange{Read: read, Changed: warned(read, 3)})[0]
			wantErr(t, err, billing.ErrConflict, "a change whose Read status is no longer stored")
			equal(t, getSub(ctx, t, st, my("s1")), o, "the record keeps the other writer's values")
		}},
		{"ChangedByOtherPeriodEndConflicts", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			insertSubs(ctx, t, st, newSub(my("s1"), base.Add(-time.Hour)))
			read := getSub(ctx, t, st, my("s1"))
			// A payment renews the subscription between the expire job's claim and its write.
			o := otherWriter(ctx, t, st, my("s1"), func(x *billing.Subscription) {
				x.CurrentPeriodStart, x.CurrentPeriodEnd = x.CurrentPeriodEnd, billing.AddMonths(x.CurrentPeriodEnd, 1)
				x.AppliedPayments = []string{"pay1"}
			})
			expired := read
			expired.Status, expired.UpdatedAt = billing.SubscriptionStatusInactive, base
			err := apply(ctx, t, st, billing.SubscriptionChange{Read: read, Changed: expired, Effects: sampleEffects("run-1", read)})[0]
			wantErr(t, err, billing.ErrConflict, "expiring a record whose period end moved since it was read")
			equal(t, getSub(ctx, t, st, my("s1")), o, "the renewed record keeps its status, period and no pending effects")
		}},
		{"ChangedByOtherUnwrittenFieldApplies", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			insertSubs(ctx, t, st, newSub(my("s1"), base.Add(2*day), autoRenewing(billing.GatewayStripe)))
			read := getSub(ctx, t, st, my("s1"))
			// Another writer changes fields the warning does not write.
			o := otherWriter(ctx, t, st, my("s1"), func(x *billing.Subscription) {
				x.PlanID, x.GatewayUpdatedAt = "p2", base.Add(-time.Minute)
			})
			err := apply(ctx, t, st, billing.SubscriptionChange{Read: read, Changed: warned(read, 3)})[0]
			must(t, err, "a change that writes none of the fields another writer changed (writes are not conditional on the version)")
			want := warned(o, 3)
			want.Version = o.Version + 1
			equal(t, getSub(ctx, t, st, my("s1")), want, "the other writer's plan_id and gateway_updated_at survive next to the warning")
		}},
		{"ChangedByOtherWrittenFieldConflicts", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			insertSubs(ctx, t, st, newSub(my("days"), base.Add(2*day)), newSub(my("gwtime"), base.Add(2*day), autoRenewing(billing.GatewayStripe)),
				newSub(my("applied"), base.Add(2*day), func(x *billing.Subscription) { x.AppliedPayments = []string{"pay0"} }))
			rd, rg, ra := getSub(ctx, t, st, my("days")), getSub(ctx, t, st, my("gwtime")), getSub(ctx, t, st, my("applied"))
			// Each record gets a change from another writer to a field the batch writes too.
			od := otherWriter(ctx, t, st, my("days"), func(x *billing.Subscription) { x.ExpirationWarningSent, x.ExpirationWarningDays = true, 7 })
			og := otherWriter(ctx, t, st, my("gwtime"), func(x *billing.Subscription) { x.GatewayUpdatedAt = base.Add(-time.Minute) })
			oa := otherWriter(ctx, t, st, my("applied"), func(x *billing.Subscription) { x.AppliedPayments = []string{"pay0", "pay-a"} })
			cg := rg
			cg.GatewayUpdatedAt, cg.CancelAtPeriodEnd = base.Add(-time.Hour), true
			ca := ra
			ca.AppliedPayments = []string{"pay0", "pay-b"}
			ca.CurrentPeriodEnd = billing.AddMonths(ra.CurrentPeriodEnd, 1)
			errs := apply(ctx, t, st,
				billing.SubscriptionChange{Read: rd, Changed: warned(rd, 3)},
				billing.SubscriptionChange{Read: rg, Changed: cg},
				billing.SubscriptionChange{Read: ra, Changed: ca},
			)
			wantResults(t, errs, []error{billing.ErrConflict, billing.ErrConflict, billing.ErrConflict},
				"changes writing expiration_warning_days, gateway_updated_at, applied_payments that another writer changed")
			equal(t, getSub(ctx, t, st, my("days")), od, "days keeps the other writer's values")
			equal(t, getSub(ctx, t, st, my("gwtime")), og, "gwtime keeps the other writer's values (cancel_at_period_end not written either)")
			equal(t, getSub(ctx, t, st, my("applied")), oa, "applied keeps the other writer's payments and period")
		}},
		{"OnlyChangedFieldsWritten", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			insertSubs(ctx, t, st, newSub(my("s1"), base.Add(2*day), autoRenewing(billing.GatewayStripe), func(x *billing.Subscription) {
				x.AppliedPayments, x.GatewayUpdatedAt = []string{"pay0"}, base.Add(-day)
			}))
			read := getSub(ctx, t, st, my("s1"))
			o := otherWriter(ctx, t, st, my("s1"), func(x *billing.Subscription) {
				x.PlanID, x.BillingCycle = "p2", billing.CycleYearly
				x.GatewaySubscriptionID, x.GatewayUpdatedAt = "gw-s1-new", base.Add(-time.Minute)
				x.CancelAtPeriodEnd, x.AppliedPayments = true, []string{"pay0", "pay1"}
			})
			// Changed is a copy of the old read: every field the other writer changed differs
			// from the stored record, but not from Read, so none of them may be written. Its
			// Version and Pending are not written either.
			changed := warned(read, 3)
			changed.Version = 999
			changed.Pending = &billing.Effects{Token: "not-via-changed", CreatedAt: base}
			must(t, apply(ctx, t, st, billing.SubscriptionChange{Read: read, Changed: changed})[0], "UpdateSubscriptions(warning only)")
			want := warned(o, 3)
			want.Version = o.Version + 1
			equal(t, getSub(ctx, t, st, my("s1")), want, "record after a change that sets only the warning fields")
		}},
		{"ConditionOnEmptyStoredFields", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			// Fields stored empty (or absent from a document) must match an empty Read value.
			insertSubs(ctx, t, st, newSub(my("s1"), base.Add(2*day)))
			read := getSub(ctx, t, st, my("s1"))
			filled := read
			filled.Gateway, filled.GatewaySubscriptionID, filled.GatewayUpdatedAt = billing.GatewayStripe, my("sub_1"), base.Add(-time.Minute)
			filled.AppliedPayments, filled.CancelledAt, filled.CancelAtPeriodEnd = []string{"pay1"}, base, true
			filled.ExpirationWarningSent, filled.ExpirationWarningDays, filled.UpdatedAt = true, 3, base
			must(t, apply(ctx, t, st, billing.SubscriptionChange{Read: read, Changed: filled})[0], "filling fields stored empty")
			equal(t, getSub(ctx, t, st, my("s1")), bumped(filled, 1), "record after filling empty fields")
			// The old read (empty values) no longer matches.
			again := read
			again.GatewayUpdatedAt = base
			err := apply(ctx, t, st, billing.SubscriptionChange{Read: read, Changed: again})[0]
			wantErr(t, err, billing.ErrConflict, "a change whose Read has an empty gateway_updated_at the store no longer has")
			// Emptying them again from a fresh read.
			cur := getSub(ctx, t, st, my("s1"))
			emptied := cur
			emptied.GatewaySubscriptionID, emptied.GatewayUpdatedAt, emptied.AppliedPayments = "", time.Time{}, nil
			emptied.CancelledAt, emptied.CancelAtPeriodEnd = time.Time{}, false
			emptied.ExpirationWarningSent, emptied.ExpirationWarningDays = false, 0
			must(t, apply(ctx, t, st, billing.SubscriptionChange{Read: cur, Changed: emptied})[0], "emptying fields")
			equal(t, getSub(ctx, t, st, my("s1")), bumped(emptied, 1), "record after emptying fields")
			// And filling them once more from that read: the emptied fields match empty again.
			refill := getSub(ctx, t, st, my("s1"))
			refilled := refill
			refilled.GatewayUpdatedAt, refilled.AppliedPayments, refilled.ExpirationWarningDays = base, []string{"pay2"}, 1
			must(t, apply(ctx, t, st, billing.SubscriptionChange{Read: refill, Changed: refilled})[0], "filling emptied fields")
			equal(t, getSub(ctx, t, st, my("s1")), bumped(refilled, 1), "record after filling emptied fields")
		}},
		{"NothingToWriteSucceedsWhenConditionHolds", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			insertSubs(ctx, t, st, newSub(my("s1"), base.Add(2*day)))
			read := getSub(ctx, t, st, my("s1"))
			must(t, apply(ctx, t, st, billing.SubscriptionChange{Read: read, Changed: read})[0], "a change with nothing to write")
			cur := getSub(ctx, t, st, my("s1"))
			cur.Version = read.Version // whether an empty change counts as a write is the store's choice
			equal(t, cur, read, "record after a change with nothing to write")
			stale := read
			stale.Status = billing.SubscriptionStatusPastDue
			err := apply(ctx, t, st, billing.SubscriptionChange{Read: stale, Changed: stale})[0]
			wantErr(t, err, billing.ErrConflict, "a change with nothing to write whose Read status is not stored")
			missing := newSub(my("missing"), base)
			err = apply(ctx, t, st, billing.SubscriptionChange{Read: missing, Changed: missing})[0]
			wantErr(t, err, billing.ErrNotFound, "a change with nothing to write of a missing record")
		}},
		{"ClaimTokenCondition", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			insertSubs(ctx, t, st, newSub("s1", base.Add(-time.Hour), ofUser("u1")), newSub("s2", base.Add(-time.Hour), ofUser("u2")),
				newSub("s3", base.Add(-time.Hour), ofUser("u3")), newSub("s4", base.Add(-time.Hour), ofUser("u4")))
			equalIDs(t, claimUsers(ctx, t, st, "A", base, time.Hour, false, "u1", "u2"), []string{"s1", "s2"}, "A's claim")
			equalIDs(t, claimUsers(ctx, t, st, "A", base, time.Minute, false, "u4"), []string{"s4"}, "A's short claim")
			r1, r2, r3, r4 := getSub(ctx, t, st, "s1"), getSub(ctx, t, st, "s2"), getSub(ctx, t, st, "s3"), getSub(ctx, t, st, "s4")
			errs := apply(ctx, t, st,
				billing.SubscriptionChange{Read: r1, Changed: warned(r1, 3), ClaimToken: "A"},
				billing.SubscriptionChange{Read: r2, Changed: warned(r2, 3), ClaimToken: "B"},
				billing.SubscriptionChange{Read: r3, Changed: warned(r3, 3), ClaimToken: "A"},
			)
			wantResults(t, errs, []error{nil, billing.ErrConflict, billing.ErrConflict},
				"changes with the holder's token, another token, a token on an unclaimed record")
			equal(t, getSub(ctx, t, st, "s1"), bumped(warned(r1, 3), 1), "s1 changed under A's claim")
			equal(t, getSub(ctx, t, st, "s2"), r2, "s2 (held by A, changed with B's token) is untouched")
			equal(t, getSub(ctx, t, st, "s3"), r3, "s3 (unclaimed) is untouched")
			// B takes s4 over once A's lease ended: A's token no longer holds it, B's does.
			equalIDs(t, claimUsers(ctx, t, st, "B", base.Add(time.Minute), time.Hour, false, "u4"), []string{"s4"}, "B's takeover of s4")
			err := apply(ctx, t, st, billing.SubscriptionChange{Read: r4, Changed: warned(r4, 3), ClaimToken: "A"})[0]
			wantErr(t, err, billing.ErrConflict, "a change with the token whose claim was taken over")
			must(t, apply(ctx, t, st, billing.SubscriptionChange{Read: r4, Changed: warned(r4, 3), ClaimToken: "B"})[0], "a change with the new holder's token")
			// Released claims hold nothing.
			must(t, st.ReleaseClaims(ctx, "A"), "ReleaseClaims(A)")
			err = apply(ctx, t, st, billing.SubscriptionChange{Read: r2, Changed: warned(r2, 3), ClaimToken: "A"})[0]
			wantErr(t, err, billing.ErrConflict, "a change with a released token")
			equal(t, getSub(ctx, t, st, "s2"), r2, "s2 after a change with a released token")
		}},
		{"ConcurrentConflictingChangesOneWinsPerRecord", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			const records = 20
			reads := make([]billing.Subscription, records)
			for i := range reads {
				x := newSub(fmt.Sprintf("race-%02d", i), base.Add(2*day))
				insertSubs(ctx, t, st, x)
				reads[i] = getSub(ctx, t, st, x.ID)
			}
			n := s.opts.Goroutines
			results := make([][]error, n)
			errs := make([]error, n)
			runConcurrently(n, func(g int) {
				changes := make([]billing.SubscriptionChange, records)
				for i, r := range reads {
					c := warned(r, g+1)
					c.UpdatedAt = base.Add(time.Duration(g) * time.Millisecond)
					changes[i] = billing.SubscriptionChange{Read: r, Changed: c}
				}
				results[g], errs[g] = st.UpdateSubscriptions(ctx, changes)
			})
			for g := range n {
				must(t, errs[g], "writer %d", g)
				if len(results[g]) != records {
					t.Fatalf("writer %d got %d results for %d changes", g, len(results[g]), records)
				}
			}
			for i, r := range reads {
				winner := -1
				for g := range n {
					switch err := results[g][i]; {
					case err == nil && winner >= 0:
						t.Fatalf("record %s: writers %d and %d both applied a change from the same read", r.ID, winner, g)
					case err == nil:
						winner = g
					case !isConflict(err):
						t.Fatalf("record %s: writer %d got %v, want nil or ErrConflict", r.ID, g, err)
					}
				}
				if winner < 0 {
					t.Fatalf("record %s: none of %d writers applied its change", r.ID, n)
				}
				want := warned(r, winner+1)
				want.UpdatedAt, want.Version = base.Add(time.Duration(winner)*time.Millisecond), r.Version+1
				equal(t, getSub(ctx, t, st, r.ID), want, "record %s holds the winner's (writer %d) change", r.ID, winner)
			}
		}},
	}
}

// --- effects ---

func (s *suite) effectTests() []test {
	return []test{
		{"StoredWithChangeAndReadBack", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			insertSubs(ctx, t, st, newSub("s1", base.Add(-time.Hour), autoRenewing(billing.GatewayStripe), ofUser("u1")))
			read := getSub(ctx, t, st, "s1")
			expired := read
			expired.Status, expired.UpdatedAt = billing.SubscriptionStatusInactive, base
			eff := sampleEffects("run-1", read)
			applyOne(ctx, t, st, billing.SubscriptionChange{Read: read, Changed: expired, Effects: eff})
			// The caller's effects are not aliased by the store.
			eff.Notifications[0].Key, eff.Audit[0].Details["note"] = "mutated", "mutated"
			eff = sampleEffects("run-1", read)
			wantSub := bumped(expired, 1)
			wantSub.Pending = eff

			got := getSub(ctx, t, st, "s1")
			equal(t, got, wantSub, "GetSubscription after a change with effects")
			if got.Pending == nil {
				t.Fatal("GetSubscription: no pending effects")
			}
			equal(t, *got.Pending, *wantSub.Pending, "GetSubscription: pending effects")
			// Returned effects are copies.
			got.Pending.Notifications[0].Key, got.Pending.Audit[0].Details["note"] = "mutated", "mutated"
			equal(t, getSub(ctx, t, st, "s1"), wantSub, "a record whose returned effects the caller mutated")

			listed, err := st.ListSubscriptions(ctx, billing.SubscriptionFilter{UserIDs: []string{"u1"}}, 0)
			must(t, err, "ListSubscriptions")
			if len(listed) != 1 {
				t.Fatalf("ListSubscriptions returned %v, want s1", subIDs(listed))
			}
			equal(t, listed[0], wantSub, "ListSubscriptions: record with pending effects")

			claimed, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Token: "B", Now: base, LeaseUntil: base.Add(time.Hour), Limit: 10, Pending: true})
			must(t, err, "ClaimSubscriptions(Pending)")
			if len(claimed) != 1 {
				t.Fatalf("ClaimSubscriptions(Pending) returned %v, want s1", subIDs(claimed))
			}
			equal(t, claimed[0], wantSub, "ClaimSubscriptions(Pending): record with pending effects")
		}},
		{"StoredWithInsert", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			// A record created together with what remains to do after its creation (a first
			// payment's access, emails and audit) carries them from the one insert, and they
			// are found, claimed and completed like a change's.
			x := newSub("s1", base.Add(30*day), ofUser("u1"))
			x.Pending = sampleEffects("create-1", x)
			insertSubs(ctx, t, st, x)
			want := x
			want.Pending = sampleEffects("create-1", x)
			got := getSub(ctx, t, st, "s1")
			equal(t, got, want, "GetSubscription after an insert with effects")
			if got.Pending == nil {
				t.Fatal("GetSubscription: the inserted pending effects are missing")
			}
			equal(t, *got.Pending, *want.Pending, "GetSubscription: inserted pending effects")
			if left := claimUsers(ctx, t, st, "B", base, time.Minute, true, "u1"); len(left) != 1 {
				t.Fatalf("ClaimSubscriptions(Pending) returned %v, want s1", left)
			}
			must(t, st.CompleteEffects(ctx, []billing.EffectsDone{{SubscriptionID: "s1", Token: "create-1"}}), "CompleteEffects")
			if got := getSub(ctx, t, st, "s1"); got.Pending != nil {
				t.Fatalf("pending effects %+v left after CompleteEffects", got.Pending)
			}
		}},
		{"RoundTripUTCMillisecond", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			insertSubs(ctx, t, st, newSub("s1", base.Add(-time.Hour)))
			read := getSub(ctx, t, st, "s1")
			eff := sampleEffects("run-1", read)
			in := *eff
			applyOne(ctx, t, st, billing.SubscriptionChange{Read: read, Changed: read, Effects: eff})
			check := func(from string, x billing.Subscription) {
				t.Helper()
				if x.Pending == nil {
					t.Fatalf("%s: no pending effects", from)
				}
				p := x.Pending
				checkTime(t, from+": Effects.CreatedAt", p.CreatedAt, in.CreatedAt)
				checkTime(t, from+": Notification.Data.PeriodStart", p.Notifications[0].Data.PeriodStart, in.Notifications[0].Data.PeriodStart)
				checkTime(t, from+": Notification.Data.PeriodEnd", p.Notifications[0].Data.PeriodEnd, in.Notifications[0].Data.PeriodEnd)
				checkTime(t, from+": alert Notification.Data.PeriodEnd (zero)", p.Notifications[1].Data.PeriodEnd, time.Time{})
				checkTime(t, from+": AuditEntry.CreatedAt", p.Audit[0].CreatedAt, in.Audit[0].CreatedAt)
			}
			check("GetSubscription", getSub(ctx, t, st, "s1"))
			listed, err := st.ListSubscriptions(ctx, billing.SubscriptionFilter{}, 0)
			must(t, err, "ListSubscriptions")
			if len(listed) != 1 {
				t.Fatalf("ListSubscriptions returned %d records, want 1", len(listed))
			}
			check("ListSubscriptions", listed[0])
			brt := time.FixedZone("BRT", -3*60*60)
			claimed, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Token: "A", Now: base.In(brt), LeaseUntil: base.Add(time.Minute).In(brt), Limit: 10, Pending: true})
			must(t, err, "ClaimSubscriptions(Pending)")
			if len(claimed) != 1 {
				t.Fatalf("ClaimSubscriptions(Pending) returned %d records, want 1", len(claimed))
			}
			check("ClaimSubscriptions", claimed[0])
			// An extended lease given in another zone with sub-millisecond digits ends at that instant.
			until := base.Add(10 * time.Minute).In(brt).Add(999 * time.Microsecond)
			must(t, st.ExtendClaims(ctx, "A", until), "ExtendClaims")
			if got := claimUsers(ctx, t, st, "B", billing.TruncateTime(until).Add(-time.Millisecond), time.Minute, true, "u1"); len(got) != 0 {
				t.Fatalf("B claimed %v 1ms before the extended lease ends", got)
			}
			if got := claimUsers(ctx, t, st, "B", billing.TruncateTime(until).Add(time.Millisecond), time.Minute, true, "u1"); len(got) != 1 {
				t.Fatalf("B claimed %v 1ms after the extended lease ended, want s1", got)
			}
		}},
		{"PendingAuditDetailsKeepValueTypes", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			// The jobs' audit details hold times, whole numbers and flags (billing/jobs.go);
			// pending effects must give them back as such, so the entries a later run inserts
			// are the ones the transition recorded.
			insertSubs(ctx, t, st, newSub(my("s1"), base.Add(-time.Hour)))
			read := getSub(ctx, t, st, my("s1"))
			eff := &billing.Effects{Token: "run-1", CreatedAt: base, Audit: []billing.AuditEntry{{
				ID: "a1", Action: billing.AuditSubscriptionExpired, EntityType: "subscription", EntityID: my("s1"), Actor: "renewkit", CreatedAt: base,
				Details: map[string]any{"period_end": read.CurrentPeriodEnd, "days": 3, "cancel_at_period_end": true, "previous_status": "active"},
			}}}
			applyOne(ctx, t, st, billing.SubscriptionChange{Read: read, Changed: read, Effects: eff})
			got := getSub(ctx, t, st, my("s1"))
			if got.Pending == nil || len(got.Pending.Audit) != 1 {
				t.Fatalf("pending effects read back as %+v, want one audit entry", got.Pending)
			}
			d := got.Pending.Audit[0].Details
			if pe, ok := d["period_end"].(time.Time); !ok || !pe.Equal(read.CurrentPeriodEnd) {
				t.Errorf("details[period_end] = %#v (%T), want the time.Time %v", d["period_end"], d["period_end"], read.CurrentPeriodEnd)
			}
			switch n := d["days"].(type) {
			case int, int32, int64:
				if fmt.Sprint(n) != "3" {
					t.Errorf("details[days] = %v, want 3", n)
				}
			default:
				t.Errorf("details[days] = %#v (%T), want a whole number 3", d["days"], d["days"])
			}
			if b, ok := d["cancel_at_period_end"].(bool); !ok || !b {
				t.Errorf("details[cancel_at_period_end] = %#v (%T), want true", d["cancel_at_period_end"], d["cancel_at_period_end"])
			}
			if s, ok := d["previous_status"].(string); !ok || s != "active" {
				t.Errorf("details[previous_status] = %#v (%T), want \"active\"", d["previous_status"], d["previous_status"])
			}
		}},
		{"ClaimPendingSelectsByEffects", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			insertSubs(ctx, t, st, newSub("plain", base.Add(-2*time.Hour)), newSub("pending", base.Add(-time.Hour)))
			read := getSub(ctx, t, st, "pending")
			applyOne(ctx, t, st, billing.SubscriptionChange{Read: read, Changed: warned(read, 3), Effects: sampleEffects("run-1", read)})
			active := billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}}
			inactive := billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusInactive}}
			claimP := func(token string, f billing.SubscriptionFilter, pending bool) []string {
				t.Helper()
				got, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Filter: f, Token: token, Now: base, LeaseUntil: base.Add(time.Hour), Limit: 10, Pending: pending})
				must(t, err, "ClaimSubscriptions(token %s, pending %v)", token, pending)
				return subIDs(got)
			}
			equalIDs(t, claimP("A", inactive, true), nil, "Pending claim with a filter the record fails")
			equalIDs(t, claimP("B", active, false), []string{"plain"}, "a claim without Pending leaves records with pending effects out")
			equalIDs(t, claimP("C", active, true), []string{"pending"}, "a Pending claim returns only records with pending effects")
			listed, err := st.ListSubscriptions(ctx, active, 0)
			must(t, err, "ListSubscriptions")
			equalIDs(t, subIDs(listed), []string{"plain", "pending"}, "ListSubscriptions returns records with and without pending effects")
			n, err := st.CountSubscriptions(ctx, active)
			must(t, err, "CountSubscriptions")
			if n != 2 {
				t.Fatalf("CountSubscriptions = %d, want 2 (pending effects do not filter)", n)
			}
		}},
		{"SecondEffectsConflict", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			insertSubs(ctx, t, st, newSub(my("s1"), base.Add(-time.Hour)))
			read := getSub(ctx, t, st, my("s1"))
			first := sampleEffects("run-1", read)
			applyOne(ctx, t, st, billing.SubscriptionChange{Read: read, Changed: read, Effects: first})
			withFirst := getSub(ctx, t, st, my("s1"))
			// Another transition with effects while the first ones are pending: refused whole.
			second := sampleEffects("run-2", withFirst)
			err := apply(ctx, t, st, billing.SubscriptionChange{Read: withFirst, Changed: warned(withFirst, 3), Effects: second})[0]
			wantErr(t, err, billing.ErrConflict, "a change with effects on a record with pending effects")
			equal(t, getSub(ctx, t, st, my("s1")), withFirst, "the record keeps its first effects and nothing of the refused change")
			// A change without effects may go on: the pending effects stay.
			moved := withFirst
			moved.PlanID, moved.UpdatedAt = "p2", base
			must(t, apply(ctx, t, st, billing.SubscriptionChange{Read: withFirst, Changed: moved})[0], "a change without effects on a record with pending effects")
			got := getSub(ctx, t, st, my("s1"))
			want := bumped(moved, 1)
			want.Pending = first
			equal(t, got, want, "record after a change without effects: pending effects kept")
		}},
		{"CompleteEffectsClearsAndReleases", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			insertSubs(ctx, t, st, newSub("s1", base.Add(-time.Hour), ofUser("u1")), newSub("s2", base.Add(-time.Hour), ofUser("u2")))
			equalIDs(t, claimUsers(ctx, t, st, "T", base, time.Hour, false, "u1", "u2"), []string{"s1", "s2"}, "T's claim")
			r1, r2 := getSub(ctx, t, st, "s1"), getSub(ctx, t, st, "s2")
			expired := func(x billing.Subscription) billing.Subscription {
				x.Status, x.UpdatedAt = billing.SubscriptionStatusInactive, base
				return x
			}
			errs := apply(ctx, t, st,
				billing.SubscriptionChange{Read: r1, Changed: expired(r1), ClaimToken: "T", Effects: sampleEffects("T", r1)},
				billing.SubscriptionChange{Read: r2, Changed: expired(r2), ClaimToken: "T", Effects: sampleEffects("T", r2)},
			)
			wantResults(t, errs, []error{nil, nil}, "transitions with effects under T's claim")
			withEffects := getSub(ctx, t, st, "s1")
			// T's claim survives the transition: nobody else gets the records.
			if got := claimUsers(ctx, t, st, "X", base.Add(time.Minute), time.Hour, true, "u1", "u2"); len(got) != 0 {
				t.Fatalf("X claimed %v while T's lease is live", got)
			}
			// A stale token changes nothing.
			must(t, st.CompleteEffects(ctx, []billing.EffectsDone{{SubscriptionID: "s1", Token: "stale"}}), "CompleteEffects(stale token)")
			equal(t, getSub(ctx, t, st, "s1"), withEffects, "record after CompleteEffects with a stale token")
			if got := claimUsers(ctx, t, st, "X", base.Add(time.Minute), time.Hour, true, "u1"); len(got) != 0 {
				t.Fatalf("CompleteEffects with a stale token released T's claim: X claimed %v", got)
			}
			// The right token (with a missing record in the batch) clears the effects and
			// releases the claim in the same write.
			must(t, st.CompleteEffects(ctx, []billing.EffectsDone{{SubscriptionID: "missing", Token: "T"}, {SubscriptionID: "s1", Token: "T"}}),
				"CompleteEffects(missing record, s1)")
			done := getSub(ctx, t, st, "s1")
			if done.Pending != nil {
				t.Fatalf("pending effects after CompleteEffects: %+v", done.Pending)
			}
			want := withEffects
			want.Pending, want.Version = nil, done.Version // whether completing counts as a write is the store's choice
			equal(t, done, want, "record after CompleteEffects (only the effects removed)")
			if s2 := getSub(ctx, t, st, "s2"); s2.Pending == nil {
				t.Fatal("CompleteEffects of s1 cleared the effects of s2")
			}
			equalIDs(t, claimUsers(ctx, t, st, "X", base.Add(time.Minute), time.Hour, false, "u1", "u2"), []string{"s1"},
				"at once after CompleteEffects, s1 is claimable by another token (s2 still has pending effects)")
			// With no effects pending, a new transition with effects is allowed again.
			cur := getSub(ctx, t, st, "s1")
			must(t, apply(ctx, t, st, billing.SubscriptionChange{Read: cur, Changed: cur, Effects: sampleEffects("X", cur), ClaimToken: "X"})[0],
				"a change with effects after CompleteEffects")
			must(t, st.CompleteEffects(ctx, []billing.EffectsDone{{SubscriptionID: "nope", Token: "T"}}), "CompleteEffects(missing record only)")
		}},
		{"CompleteEffectsClaimTokenIsAHint", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			// EffectsDone.ClaimToken only says which claim holds the batch (a store may find
			// the records by it): a record taken over by another claim, or named without a
			// claim, is completed all the same, and its claim released; a stale effects token
			// still changes nothing, and a missing record is skipped.
			users := []string{"u1", "u2", "u3", "u4", "u5"}
			subs := make([]billing.Subscription, len(users))
			for i, u := range users {
				subs[i] = newSub(fmt.Sprintf("s%d", i+1), base.Add(-time.Hour), ofUser(u))
				subs[i].Pending = sampleEffects(fmt.Sprintf("e%d", i+1), subs[i])
			}
			insertSubs(ctx, t, st, subs...)
			equalIDs(t, claimUsers(ctx, t, st, "T", base, time.Minute, true, users...), []string{"s1", "s2", "s3", "s4", "s5"}, "T's claim")
			later := base.Add(2 * time.Minute) // T's lease is over
			equalIDs(t, claimUsers(ctx, t, st, "U", later, time.Hour, true, "u4"), []string{"s4"}, "U's takeover of s4")
			must(t, st.CompleteEffects(ctx, []billing.EffectsDone{
				{SubscriptionID: "s1", Token: "e1", ClaimToken: "T"},
				{SubscriptionID: "s2", Token: "e2", ClaimToken: "T"},
				{SubscriptionID: "s3", Token: "e3"},
				{SubscriptionID: "s4", Token: "e4", ClaimToken: "T"},
				{SubscriptionID: "s5", Token: "stale", ClaimToken: "T"},
				{SubscriptionID: "missing", Token: "e6", ClaimToken: "T"},
			}), "CompleteEffects(a batch held by T, one taken over, one stale)")
			for _, id := range []string{"s1", "s2", "s3", "s4"} {
				if got := getSub(ctx, t, st, id); got.Pending != nil {
					t.Fatalf("%s keeps its pending effects %+v after CompleteEffects with their token", id, got.Pending)
				}
			}
			if got := getSub(ctx, t, st, "s5"); got.Pending == nil || got.Pending.Token != "e5" {
				t.Fatalf("s5, completed with a stale token: pending %+v, want its effects e5 kept", got.Pending)
			}
			equalIDs(t, claimUsers(ctx, t, st, "X", later.Add(time.Second), time.Hour, false, "u4"), []string{"s4"},
				"s4's claim by U is released with its effects")
		}},
		{"ListWithoutPending", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			insertSubs(ctx, t, st, newSub("s1", base.Add(-time.Hour), ofUser("u1")), newSub("s2", base.Add(-2*time.Hour), ofUser("u1")))
			r1 := getSub(ctx, t, st, "s1")
			changed := r1
			changed.Status, changed.UpdatedAt = billing.SubscriptionStatusInactive, base
			applyOne(ctx, t, st, billing.SubscriptionChange{Read: r1, Changed: changed, Effects: sampleEffects("T", r1)})
			full, err := st.ListSubscriptions(ctx, billing.SubscriptionFilter{UserIDs: []string{"u1"}}, 0)
			must(t, err, "ListSubscriptions(u1)")
			if len(full) != 2 || full[1].Pending == nil {
				t.Fatalf("ListSubscriptions(u1) = %+v, want s2 then s1 with its pending effects", full)
			}
			bare, err := st.ListSubscriptions(ctx, billing.SubscriptionFilter{UserIDs: []string{"u1"}, OmitPending: true}, 0)
			must(t, err, "ListSubscriptions(u1, OmitPending)")
			want := slices.Clone(full)
			want[1].Pending = nil
			equal(t, bare, want, "records listed with OmitPending: the same, without their pending effects")
			// It filters nothing, also without UserIDs.
			all, err := st.ListSubscriptions(ctx, billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusInactive}, OmitPending: true}, 0)
			must(t, err, "ListSubscriptions(inactive, OmitPending)")
			equal(t, all, want[1:], "inactive records listed with OmitPending")
			// The stored effects are untouched.
			if got := getSub(ctx, t, st, "s1"); got.Pending == nil {
				t.Fatal("a read with OmitPending removed the stored pending effects")
			}
		}},
	}
}

// testExtendClaims: an extended lease outlives the original one; other tokens' leases are
// not extended.
func (s *suite) testExtendClaims(ctx context.Context, t *testing.T, st billing.Store) {
	insertSubs(ctx, t, st, newSub("a1", base.Add(-time.Hour), ofUser("ua")), newSub("a2", base.Add(-time.Hour), ofUser("ua")),
		newSub("c1", base.Add(-time.Hour), ofUser("uc")))
	equalIDs(t, claimUsers(ctx, t, st, "A", base, time.Minute, false, "ua"), []string{"a1", "a2"}, "A's claim")
	equalIDs(t, claimUsers(ctx, t, st, "C", base, time.Minute, false, "uc"), []string{"c1"}, "C's claim")
	must(t, st.ExtendClaims(ctx, "A", base.Add(10*time.Minute)), "ExtendClaims(A)")
	// Past the original lease, before the new one: A keeps its records, C's lease is over.
	equalIDs(t, claimUsers(ctx, t, st, "B", base.Add(5*time.Minute), time.Minute, false, "ua", "uc"), []string{"c1"},
		"B's claim past the original leases: only C's (not extended) record")
	equalIDs(t, claimUsers(ctx, t, st, "B2", base.Add(10*time.Minute), time.Minute, false, "ua"), []string{"a1", "a2"},
		"once the extended lease ended, A's records are claimable")
	// A changes nothing in the records it extends.
	for _, id := range []string{"a1", "a2"} {
		equal(t, getSub(ctx, t, st, id), newSub(id, base.Add(-time.Hour), ofUser("ua")), "record %s after claims and ExtendClaims", id)
	}
}

// --- users ---

func (s *suite) userAccessTests() []test {
	insertUsers := func(ctx context.Context, t *testing.T, st billing.Store, users ...billing.User) {
		t.Helper()
		for i := range users {
			must(t, st.InsertUser(ctx, &users[i]), "InsertUser(%s)", users[i].ID)
		}
	}
	getUser := func(ctx context.Context, t *testing.T, st billing.Store, id string) billing.User {
		t.Helper()
		u, err := st.GetUser(ctx, id)
		must(t, err, "GetUser(%s)", id)
		return u
	}
	return []test{
		{"ListUsers", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			gone := newUser(my("gone"))
			gone.Deleted = true
			u1, u2 := newUser(my("u1")), newUser(my("u2"))
			u2.PlanID, u2.SubscriptionID, u2.Status, u2.AccessUntil = "", "", "", time.Time{}
			insertUsers(ctx, t, st, u1, u2, newUser(my("u3")), gone)
			list, err := st.ListUsers(ctx, []string{my("u1"), my("gone"), "nope", my("u2")})
			must(t, err, "ListUsers")
			slices.SortFunc(list, func(a, b billing.User) int { return cmp.Compare(a.ID, b.ID) })
			if len(list) != 2 {
				t.Fatalf("ListUsers(u1, gone, nope, u2) = %v, want u1 and u2 (unknown and soft-deleted left out)", ids(list, func(u billing.User) string { return u.ID }))
			}
			equal(t, list[0], u1, "ListUsers: u1")
			equal(t, list[1], u2, "ListUsers: u2 (no access fields)")
			none, err := st.ListUsers(ctx, []string{"nope"})
			must(t, err, "ListUsers(unknown)")
			if len(none) != 0 {
				t.Fatalf("ListUsers(unknown) = %d users, want none", len(none))
			}
		}},
		{"UpdateUsersAccessMixedResults", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			gone := newUser(my("gone"))
			gone.Deleted = true
			insertUsers(ctx, t, st, newUser(my("a")), newUser(my("b")), newUser(my("c")), newUser(my("d")), newUser(my("e")), gone)
			read := map[string]billing.User{}
			for _, id := range []string{my("a"), my("b"), my("c"), my("d"), my("e")} {
				read[id] = getUser(ctx, t, st, id)
			}
			// Between the read and the batch, other writers change b's status, c's plan and d's
			// subscription; e's access_until changes, which is not part of the condition.
			others := map[string]func(*billing.User){
				my("b"): func(u *billing.User) { u.Status = billing.SubscriptionStatusPastDue },
				my("c"): func(u *billing.User) { u.PlanID = my("p2") },
				my("d"): func(u *billing.User) { u.SubscriptionID = my("s-new") },
				my("e"): func(u *billing.User) { u.AccessUntil = base.Add(40 * day) },
			}
			after := map[string]billing.User{}
			for id, mod := range others {
				cur := getUser(ctx, t, st, id)
				changed := cur
				mod(&changed)
				must(t, billing.UpdateUserAccess(ctx, st, cur, changed), "the other writer's change of %s", id)
				after[id] = getUser(ctx, t, st, id)
			}
			// e's change grants a new plan and writes only plan_id and subscription_id.
			eChanged := read[my("e")]
			eChanged.PlanID, eChanged.SubscriptionID = my("p3"), "s-e2"
			errs, err := st.UpdateUsersAccess(ctx, []billing.UserAccessChange{
				{Read: read[my("a")], Changed: revoked(read[my("a")])},
				{Read: read[my("b")], Changed: revoked(read[my("b")])},
				{Read: read[my("c")], Changed: revoked(read[my("c")])},
				{Read: read[my("d")], Changed: revoked(read[my("d")])},
				{Read: newUser(my("nope")), Changed: revoked(newUser(my("nope")))},
				{Read: gone, Changed: revoked(gone)},
				{Read: read[my("e")], Changed: eChanged},
			})
			must(t, err, "UpdateUsersAccess")
			if len(errs) != 7 {
				t.Fatalf("UpdateUsersAccess(7 changes) returned %d results", len(errs))
			}
			wantResults(t, errs, []error{nil, billing.ErrConflict, billing.ErrConflict, billing.ErrConflict, billing.ErrNotFound, billing.ErrNotFound, nil},
				"UpdateUsersAccess(applied, status/plan/subscription changed meanwhile, missing, soft-deleted, applied)")
			equal(t, getUser(ctx, t, st, my("a")), revoked(read[my("a")]), "a (revoked)")
			for _, id := range []string{my("b"), my("c"), my("d")} {
				equal(t, getUser(ctx, t, st, id), after[id], "%s keeps the other writer's access", id)
			}
			wantE := after[my("e")]
			wantE.PlanID, wantE.SubscriptionID = my("p3"), "s-e2"
			equal(t, getUser(ctx, t, st, my("e")), wantE, "e: plan and subscription written, the other writer's access_until kept")
			if _, err := st.GetUser(ctx, my("nope")); !isNotFound(err) {
				t.Fatalf("a change of a missing user created it: GetUser got %v", err)
			}
		}},
		{"UpdateUsersAccessFromEmptyFields", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			// A user who never had a plan: access fields stored empty (or absent).
			u := newUser(my("u1"))
			u.PlanID, u.SubscriptionID, u.Status, u.AccessUntil = "", "", "", time.Time{}
			insertUsers(ctx, t, st, u)
			read := getUser(ctx, t, st, my("u1"))
			granted := read
			granted.PlanID, granted.SubscriptionID, granted.Status = "p1", "s1", billing.SubscriptionStatusActive
			granted.AccessUntil, granted.UpdatedAt = base.Add(30*day), base
			granted.Email, granted.Name = "not-written@example.com", "Not written"
			must(t, billing.UpdateUserAccess(ctx, st, read, granted), "granting access to a user with empty access fields")
			want := read
			want.PlanID, want.SubscriptionID, want.Status, want.AccessUntil, want.UpdatedAt = "p1", "s1", billing.SubscriptionStatusActive, base.Add(30*day), base
			equal(t, getUser(ctx, t, st, my("u1")), want, "user after the grant (email and name not written)")
			other := read
			other.PlanID = my("p2")
			wantErr(t, billing.UpdateUserAccess(ctx, st, read, other), billing.ErrConflict, "a grant from a read without a plan when the user has one now")
			equal(t, getUser(ctx, t, st, my("u1")), want, "user after the conflicting grant")
		}},
	}
}

// --- payments ---

func (s *suite) paymentChangeTests() []test {
	return []test{
		{"UpdateWritesOnlyChangedFields", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			p := newPayment(my("pay1"), base.Add(-time.Hour), func(p *billing.Payment) { p.GatewayPaymentID = my("pi_1") })
			must(t, st.InsertPayment(ctx, &p), "InsertPayment")
			read, err := st.GetPayment(ctx, my("pay1"))
			must(t, err, "GetPayment")
			// Another writer records the subscription the payment belongs to.
			cur := read
			cur.SubscriptionID = my("s1")
			must(t, st.UpdatePayment(ctx, read, cur), "the other writer's UpdatePayment")
			approved := read
			approved.Status, approved.ProcessedAt, approved.UpdatedAt = billing.PaymentStatusApproved, base, base
			must(t, st.UpdatePayment(ctx, read, approved), "UpdatePayment from a read older than a change to a field it does not write")
			want := approved
			want.SubscriptionID, want.Version = my("s1"), read.Version+2
			got, err := st.GetPayment(ctx, my("pay1"))
			must(t, err, "GetPayment")
			equal(t, got, want, "payment: the other writer's subscription_id survives next to the approval")
		}},
		{"UpdateConflictsWhenStatusChanged", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			p := newPayment(my("pay1"), base.Add(-time.Hour))
			must(t, st.InsertPayment(ctx, &p), "InsertPayment")
			read, err := st.GetPayment(ctx, my("pay1"))
			must(t, err, "GetPayment")
			// The cleanup job cancels the payment; a webhook still holding the pending copy
			// records the gateway's id, a field the cancellation did not touch.
			cancelled := read
			cancelled.Status, cancelled.Reason = billing.PaymentStatusCancelled, "stale"
			must(t, st.UpdatePayment(ctx, read, cancelled), "the other writer's cancellation")
			late := read
			late.GatewayPaymentID = my("pi_late")
			wantErr(t, st.UpdatePayment(ctx, read, late), billing.ErrConflict, "UpdatePayment from a read whose status is no longer stored")
			got, err := st.GetPayment(ctx, my("pay1"))
			must(t, err, "GetPayment")
			want := cancelled
			want.Version = read.Version + 1
			equal(t, got, want, "payment keeps the cancellation and gets no gateway id")
			_, err = st.FindPaymentByGateway(ctx, billing.GatewayStripe, my("pi_late"))
			wantErr(t, err, billing.ErrNotFound, "FindPaymentByGateway(id of a conflicting update)")
		}},
		{"UpdateConflictsOnWrittenFieldChanged", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			p := newPayment(my("pay1"), base.Add(-time.Hour))
			must(t, st.InsertPayment(ctx, &p), "InsertPayment")
			read, err := st.GetPayment(ctx, my("pay1"))
			must(t, err, "GetPayment")
			cur := read
			cur.Reason = "first"
			must(t, st.UpdatePayment(ctx, read, cur), "the other writer's UpdatePayment")
			stale := read
			stale.Reason = "second"
			wantErr(t, st.UpdatePayment(ctx, read, stale), billing.ErrConflict, "UpdatePayment of a field another writer changed since the read")
			got, err := st.GetPayment(ctx, my("pay1"))
			must(t, err, "GetPayment")
			want := cur
			want.Version = read.Version + 1
			equal(t, got, want, "payment keeps the other writer's reason")
		}},
	}
}
