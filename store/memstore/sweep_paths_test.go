package memstore

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// TestCopyEffectsSizes: effects with one notification and one audit entry (held in the
// copy's own allocation) and with several (held in slices of their own) are both deep
// copies: changing or appending to the caller's effects or to the copy leaves the other
// as it was.
func TestCopyEffectsSizes(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3} {
		in := &billing.Effects{Token: "tok", Access: &billing.AccessEffect{UserID: "u"}}
		var keys, ids []string
		for i := range n {
			k, id := "k"+string(rune('a'+i)), "a"+string(rune('a'+i))
			keys, ids = append(keys, k), append(ids, id)
			in.Notifications = append(in.Notifications, billing.Notification{Key: k})
			in.Audit = append(in.Audit, billing.AuditEntry{ID: id, Details: map[string]any{"i": i}})
		}
		c := copyEffects(in)
		if len(c.Notifications) != n || len(c.Audit) != n || (n == 0) != (c.Notifications == nil) {
			t.Fatalf("%d: copy has %d notifications and %d audit entries", n, len(c.Notifications), len(c.Audit))
		}
		for i := range n {
			in.Notifications[i].Key = "mutated"
			in.Audit[i].ID = "mutated"
			in.Audit[i].Details["i"] = -1
		}
		in.Access.UserID = "mutated"
		c.Notifications = append(c.Notifications, billing.Notification{Key: "appended"})
		c.Audit = append(c.Audit, billing.AuditEntry{ID: "appended"})
		gotKeys, gotIDs := []string{}, []string{}
		for i := range n {
			gotKeys, gotIDs = append(gotKeys, c.Notifications[i].Key), append(gotIDs, c.Audit[i].ID)
			if c.Audit[i].Details["i"] != i {
				t.Fatalf("%d: audit %d details %v alias the caller's", n, i, c.Audit[i].Details)
			}
		}
		if !slices.Equal(gotKeys, append([]string{}, keys...)) || !slices.Equal(gotIDs, append([]string{}, ids...)) || c.Access.UserID != "u" {
			t.Fatalf("%d: copy changed with the caller's effects: keys %v, ids %v, access %v", n, gotKeys, gotIDs, c.Access)
		}
		for i := range n {
			if in.Notifications[i].Key != "mutated" {
				t.Fatalf("%d: appending to the copy changed the caller's effects", n)
			}
		}
	}
}

// TestNoteOrderWithoutReadBack: the console lists notifications newest first whatever the
// order they were reserved in, including a reservation older than the last one after the
// ordering was sorted once (the append checks the order against the last entry it keeps,
// not against the record read back).
func TestNoteOrderWithoutReadBack(t *testing.T) {
	ctx := context.Background()
	st := New()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	reserve := func(key string, at time.Duration) {
		t.Helper()
		now := t0.Add(at)
		got, err := st.ReserveNotifications(ctx, []billing.NotificationRecord{{Key: key, Kind: billing.NotificationKindExpiring}}, "tok", now, now.Add(time.Minute))
		if err != nil || !got[0] {
			t.Fatal(err, got)
		}
	}
	list := func() []string {
		t.Helper()
		recs, _, err := st.ListNotifications(ctx, billing.NotificationQuery{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, r := range recs {
			keys = append(keys, r.Key)
		}
		return keys
	}
	reserve("k1", 10*time.Second)
	reserve("k2", 5*time.Second) // older than the last
	if got, want := list(), []string{"k1", "k2"}; !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	reserve("k3", 7*time.Second) // older than the last after the sort
	reserve("k4", 20*time.Second)
	if got, want := list(), []string{"k4", "k1", "k3", "k2"}; !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
}

// TestReusedEffectsBox: the box of effects CompleteEffects cleared serves the next bulk
// write, and what a claim then returns is exactly the new effects (nothing of the old
// ones' access, notifications or audit details), as a deep copy: changing it, or the
// caller's effects after the write, changes nothing stored.
func TestReusedEffectsBox(t *testing.T) {
	ctx := context.Background()
	st := New()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, id := range []string{"a", "b"} {
		sub := billing.Subscription{ID: id, UserID: "u" + id, Status: billing.SubscriptionStatusActive, CurrentPeriodEnd: now}
		if err := st.InsertSubscription(ctx, &sub); err != nil {
			t.Fatal(err)
		}
	}
	write := func(id string, eff *billing.Effects) {
		t.Helper()
		sub, err := st.GetSubscription(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		errs, err := st.UpdateSubscriptions(ctx, []billing.SubscriptionChange{{Read: sub, Changed: sub, Effects: eff}})
		if err != nil || errs[0] != nil {
			t.Fatal(err, errs)
		}
	}
	write("a", &billing.Effects{Token: "t1", Access: &billing.AccessEffect{UserID: "ua"},
		Notifications: []billing.Notification{{Key: "k1"}},
		Audit:         []billing.AuditEntry{{ID: "t1:0", Details: map[string]any{"old": 1, "gone": "x"}}}})
	if err := st.CompleteEffects(ctx, []billing.EffectsDone{{SubscriptionID: "a", Token: "t1"}}); err != nil {
		t.Fatal(err)
	}
	if len(st.spareBoxes) != 1 {
		t.Fatalf("%d spare boxes after the effects were cleared, want 1", len(st.spareBoxes))
	}
	details := map[string]any{"new": 2}
	eff := &billing.Effects{Token: "t2", Audit: []billing.AuditEntry{{ID: "t2:0", Details: details}}}
	write("b", eff)
	if len(st.spareBoxes) != 0 {
		t.Fatalf("the spare box was not reused: %d left", len(st.spareBoxes))
	}
	details["new"], eff.Audit[0].ID = -1, "mutated"
	claim := func() *billing.Effects {
		t.Helper()
		got, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Token: "c", Now: now, LeaseUntil: now.Add(time.Minute), Limit: 10, Pending: true})
		if err != nil || len(got) != 1 || got[0].ID != "b" {
			t.Fatalf("claimed %v, %v; want b", got, err)
		}
		if err := st.ReleaseClaims(ctx, "c"); err != nil {
			t.Fatal(err)
		}
		return got[0].Pending
	}
	p := claim()
	if p.Token != "t2" || p.Access != nil || p.Notifications != nil || len(p.Audit) != 1 || p.Audit[0].ID != "t2:0" ||
		len(p.Audit[0].Details) != 1 || p.Audit[0].Details["new"] != 2 {
		t.Fatalf("stored effects %+v (audit %+v), want the second write's only", p, p.Audit)
	}
	p.Audit[0].Details["new"] = -2
	if again := claim(); again.Audit[0].Details["new"] != 2 {
		t.Fatalf("changing a claimed copy changed the stored details: %v", again.Audit[0].Details)
	}
}
