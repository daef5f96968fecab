package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

func (s *suite) planTests() []test {
	return []test{
		{"InsertGetList", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			p1, p2 := newPlan("p1"), newPlan("p2")
			p2.BillingCycle, p2.Price = billing.CycleYearly, billing.Money{Amount: 29900, Currency: "USD"}
			want := p2
			must(t, st.InsertPlan(ctx, &p1), "InsertPlan")
			must(t, st.InsertPlan(ctx, &p2), "InsertPlan")
			got, err := st.GetPlan(ctx, "p2")
			must(t, err, "GetPlan")
			equal(t, got, want, "GetPlan(p2)")
			list, err := st.ListPlans(ctx)
			must(t, err, "ListPlans")
			equalIDs(t, ids(list, func(p billing.Plan) string { return p.ID }), []string{"p1", "p2"}, "ListPlans ids")
		}},
		{"InsertAssignsID", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			p := newPlan("")
			must(t, st.InsertPlan(ctx, &p), "InsertPlan without id")
			if p.ID == "" {
				t.Fatal("InsertPlan left the id empty; it must assign one")
			}
			got, err := st.GetPlan(ctx, p.ID)
			must(t, err, "GetPlan(assigned id)")
			if got.Name != p.Name {
				t.Fatalf("GetPlan(%s).Name = %q, want %q", p.ID, got.Name, p.Name)
			}
		}},
		{"DuplicateIsConflict", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			p := newPlan(my("p1"))
			must(t, st.InsertPlan(ctx, &p), "InsertPlan")
			dup := newPlan(my("p1"))
			dup.Name = "other"
			wantErr(t, st.InsertPlan(ctx, &dup), billing.ErrConflict, "InsertPlan(duplicate id)")
			got, err := st.GetPlan(ctx, my("p1"))
			must(t, err, "GetPlan")
			if got.Name != p.Name {
				t.Fatalf("a rejected duplicate replaced the plan: name %q, want %q", got.Name, p.Name)
			}
		}},
		{"MissingIsNotFound", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			_, err := st.GetPlan(ctx, "nope")
			wantErr(t, err, billing.ErrNotFound, "GetPlan(missing)")
			list, err := st.ListPlans(ctx)
			must(t, err, "ListPlans on an empty store")
			if len(list) != 0 {
				t.Fatalf("ListPlans on an empty store = %v", list)
			}
		}},
		{"SoftDeletedInvisible", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			live, gone := newPlan("live"), newPlan("gone")
			gone.Deleted = true
			must(t, st.InsertPlan(ctx, &live), "InsertPlan")
			must(t, st.InsertPlan(ctx, &gone), "InsertPlan(deleted)")
			_, err := st.GetPlan(ctx, "gone")
			wantErr(t, err, billing.ErrNotFound, "GetPlan(soft-deleted)")
			list, err := st.ListPlans(ctx)
			must(t, err, "ListPlans")
			equalIDs(t, ids(list, func(p billing.Plan) string { return p.ID }), []string{"live"}, "ListPlans skips soft-deleted plans")
		}},
	}
}

func (s *suite) userTests() []test {
	return []test{
		{"InsertGet", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			u := newUser(my("u1"))
			want := u
			must(t, st.InsertUser(ctx, &u), "InsertUser")
			got, err := st.GetUser(ctx, my("u1"))
			must(t, err, "GetUser")
			equal(t, got, want, "GetUser(u1)")
		}},
		{"InsertAssignsID", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			u := newUser("")
			must(t, st.InsertUser(ctx, &u), "InsertUser without id")
			if u.ID == "" {
				t.Fatal("InsertUser left the id empty; it must assign one")
			}
			if _, err := st.GetUser(ctx, u.ID); err != nil {
				t.Fatalf("GetUser(assigned id %q): %v", u.ID, err)
			}
		}},
		{"DuplicateIsConflict", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			u := newUser(my("u1"))
			must(t, st.InsertUser(ctx, &u), "InsertUser")
			dup := newUser(my("u1"))
			wantErr(t, st.InsertUser(ctx, &dup), billing.ErrConflict, "InsertUser(duplicate id)")
		}},
		{"MissingIsNotFound", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			_, err := st.GetUser(ctx, my("nope"))
			wantErr(t, err, billing.ErrNotFound, "GetUser(missing)")
			wantErr(t, billing.UpdateUserAccess(ctx, st, newUser(my("nope")), revoked(newUser(my("nope")))), billing.ErrNotFound, "UpdateUserAccess(missing)")
		}},
		{"SoftDeletedInvisible", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			u := newUser(my("gone"))
			u.Deleted = true
			must(t, st.InsertUser(ctx, &u), "InsertUser(deleted)")
			_, err := st.GetUser(ctx, my("gone"))
			wantErr(t, err, billing.ErrNotFound, "GetUser(soft-deleted)")
			wantErr(t, billing.UpdateUserAccess(ctx, st, newUser(my("gone")), revoked(newUser(my("gone")))), billing.ErrNotFound, "UpdateUserAccess(soft-deleted)")
		}},
		{"UpdateAccessWritesOnlyAccessFields", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			u := newUser(my("u1"))
			must(t, st.InsertUser(ctx, &u), "InsertUser")
			read, err := st.GetUser(ctx, my("u1"))
			must(t, err, "GetUser")
			upd := billing.User{
				ID: my("u1"), Email: "changed@example.com", Name: "Changed", Locale: "en", TimeZone: "UTC",
				PlanID: "", SubscriptionID: "s9", Status: billing.SubscriptionStatusInactive,
				AccessUntil: base.Add(3 * day), UpdatedAt: base, CreatedAt: base, Deleted: true,
			}
			must(t, billing.UpdateUserAccess(ctx, st, read, upd), "UpdateUserAccess")
			got, err := st.GetUser(ctx, my("u1"))
			must(t, err, "GetUser")
			want := newUser(my("u1"))
			want.PlanID, want.SubscriptionID, want.Status = "", "s9", billing.SubscriptionStatusInactive
			want.AccessUntil, want.UpdatedAt = base.Add(3*day), base
			equal(t, got, want, "user after UpdateUserAccess (email, name, locale, zone, created_at must be kept)")
		}},
	}
}

// revoked returns u with its access revoked as the expire job does.
func revoked(u billing.User) billing.User {
	u.PlanID, u.SubscriptionID, u.Status, u.AccessUntil, u.UpdatedAt = "", "", billing.SubscriptionStatusInactive, time.Time{}, base
	return u
}
