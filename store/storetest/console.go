package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

func consoleOf(t *testing.T, st billing.Store) billing.Console {
	t.Helper()
	c, ok := st.(billing.Console)
	if !ok {
		t.Skip("store does not implement billing.Console")
	}
	return c
}

// allPages follows the cursors of list from the start, limit records a page, and returns
// every id in order and the number of pages.
func allPages(t *testing.T, limit int, list func(after billing.Cursor, limit int) ([]string, billing.Cursor, error)) ([]string, int) {
	t.Helper()
	var out []string
	var after billing.Cursor
	for pages := 1; pages < 100; pages++ {
		got, next, err := list(after, limit)
		must(t, err, "list page %d", pages)
		if len(got) > limit {
			t.Fatalf("page %d has %d records, limit %d", pages, len(got), limit)
		}
		out = append(out, got...)
		if next.IsZero() {
			return out, pages
		}
		if len(got) == 0 {
			t.Fatalf("page %d is empty but has a next cursor %+v", pages, next)
		}
		after = next
	}
	t.Fatal("the cursors never end")
	return nil, 0
}

func (s *suite) consoleTests() []test {
	at := func(h int) time.Time { return base.Add(time.Duration(h) * time.Hour) }
	seedSubs := func(ctx context.Context, t *testing.T, st billing.Store) {
		for _, u := range []string{"ana", "Bea", "carl"} {
			x := newUser(u)
			if u == "Bea" {
				x.Email = "Bea.Lima@Example.com"
			}
			must(t, st.InsertUser(ctx, &x), "InsertUser")
		}
		subs := []billing.Subscription{
			newSub("s-01", at(100), ofUser("ana"), func(x *billing.Subscription) { x.CreatedAt = at(-10) }),
			newSub("s-02", at(100), ofUser("ana"), func(x *billing.Subscription) { x.CreatedAt = at(-9); x.Status = billing.SubscriptionStatusInactive }),
			newSub("s-03", at(100), ofUser("Bea"), autoRenewing(billing.GatewayStripe), func(x *billing.Subscription) { x.CreatedAt = at(-8) }),
			// s-04 and s-05 were created at the same millisecond: the id breaks the tie.
			newSub("s-04", at(100), ofUser("carl"), func(x *billing.Subscription) { x.CreatedAt = at(-7); x.PlanID = "p2" }),
			newSub("s-05", at(100), ofUser("carl"), autoRenewing(billing.GatewayPayPal), func(x *billing.Subscription) { x.CreatedAt = at(-7) }),
			newSub("s-06", at(100), ofUser("carl"), func(x *billing.Subscription) { x.CreatedAt = at(-6); x.Status = billing.SubscriptionStatusCancelled }),
			newSub("s-07", at(100), ofUser("carl"), func(x *billing.Subscription) { x.CreatedAt = at(-5); x.Deleted = true }),
			// Inserted last but the oldest: stores must order by created_at, not insertion.
			newSub("s-08", at(100), ofUser("dan"), func(x *billing.Subscription) { x.CreatedAt = at(-11) }),
		}
		for i := range subs {
			must(t, st.InsertSubscription(ctx, &subs[i]), "InsertSubscription %s", subs[i].ID)
		}
	}
	search := func(ctx context.Context, c billing.Console, q billing.SubscriptionQuery) func(billing.Cursor, int) ([]string, billing.Cursor, error) {
		return func(after billing.Cursor, limit int) ([]string, billing.Cursor, error) {
			q.After, q.Limit = after, limit
			subs, next, err := c.SearchSubscriptions(ctx, q)
			out := make([]string, len(subs))
			for i, x := range subs {
				out[i] = x.ID
			}
			return out, next, err
		}
	}
	return []test{
		{"SearchSubscriptionsPagesNewestFirst", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			c := consoleOf(t, st)
			seedSubs(ctx, t, st)
			want := []string{"s-06", "s-05", "s-04", "s-03", "s-02", "s-01", "s-08"} // s-07 is soft-deleted
			for _, limit := range []int{1, 2, 4, 7, 50} {
				got, pages := allPages(t, limit, search(ctx, c, billing.SubscriptionQuery{}))
				equal(t, got, want, "pages of %d", limit)
				if limit == 2 && pages != 4 {
					t.Fatalf("7 records in pages of 2 took %d pages, want 4", pages)
				}
			}
		}},
		{"SearchSubscriptionsFilters", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			c := consoleOf(t, st)
			seedSubs(ctx, t, st)
			cases := []struct {
				q    billing.SubscriptionQuery
				want []string
			}{
				{billing.SubscriptionQuery{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}}, []string{"s-05", "s-04", "s-03", "s-01", "s-08"}},
				{billing.SubscriptionQuery{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusInactive, billing.SubscriptionStatusCancelled}}, []string{"s-06", "s-02"}},
				{billing.SubscriptionQuery{Gateway: billing.GatewayStripe}, []string{"s-03"}},
				{billing.SubscriptionQuery{PlanID: "p2"}, []string{"s-04"}},
				{billing.SubscriptionQuery{Q: "s-02"}, []string{"s-02"}},
				{billing.SubscriptionQuery{Q: "gw-s-05"}, []string{"s-05"}},
				{billing.SubscriptionQuery{Q: "ana@example.com"}, []string{"s-02", "s-01"}},
				{billing.SubscriptionQuery{Q: "bea.lima"}, []string{"s-03"}}, // prefix, any case
				{billing.SubscriptionQuery{Q: "CARL", Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}}, []string{"s-05", "s-04"}},
				{billing.SubscriptionQuery{Q: "s-07"}, nil},        // soft-deleted
				{billing.SubscriptionQuery{Q: "example.com"}, nil}, // not a prefix
				{billing.SubscriptionQuery{Q: ".*"}, nil},          // not a pattern
			}
			for _, tc := range cases {
				got, _ := allPages(t, 1, search(ctx, c, tc.q))
				if len(got) == 0 && len(tc.want) == 0 {
					continue
				}
				equal(t, got, tc.want, "query %+v", tc.q)
			}
			if _, _, err := c.SearchSubscriptions(ctx, billing.SubscriptionQuery{Limit: billing.MaxPageSize + 1}); !errors.Is(err, billing.ErrInvalidInput) {
				t.Fatalf("limit above MaxPageSize: got %v, want ErrInvalidInput", err)
			}
		}},
		{"ListPaymentsFiltersAndPages", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			c := consoleOf(t, st)
			for i, mod := range []func(*billing.Payment){
				func(p *billing.Payment) { p.SubscriptionID = "s-a" },
				func(p *billing.Payment) { p.SubscriptionID = "s-a"; p.Status = billing.PaymentStatusApproved },
				func(p *billing.Payment) { p.SubscriptionID = "s-b"; p.Status = billing.PaymentStatusFailed },
				func(p *billing.Payment) { p.SubscriptionID = "s-a"; p.Status = billing.PaymentStatusFailed },
				func(p *billing.Payment) {},
			} {
				p := newPayment("pay-"+string(rune('a'+i)), at(i), mod)
				must(t, st.InsertPayment(ctx, &p), "InsertPayment")
			}
			list := func(q billing.PaymentQuery) func(billing.Cursor, int) ([]string, billing.Cursor, error) {
				return func(after billing.Cursor, limit int) ([]string, billing.Cursor, error) {
					q.After, q.Limit = after, limit
					ps, next, err := c.ListPayments(ctx, q)
					return ids2(ps, func(p billing.Payment) string { return p.ID }), next, err
				}
			}
			got, _ := allPages(t, 2, list(billing.PaymentQuery{}))
			equal(t, got, []string{"pay-e", "pay-d", "pay-c", "pay-b", "pay-a"}, "all payments")
			got, _ = allPages(t, 1, list(billing.PaymentQuery{Status: billing.PaymentStatusFailed}))
			equal(t, got, []string{"pay-d", "pay-c"}, "failed payments")
			got, _ = allPages(t, 1, list(billing.PaymentQuery{SubscriptionID: "s-a"}))
			equal(t, got, []string{"pay-d", "pay-b", "pay-a"}, "payments of s-a")
			// A payment linked to a subscription later is listed under it.
			p, err := st.GetPayment(ctx, "pay-e")
			must(t, err, "GetPayment")
			linked := p
			linked.SubscriptionID = "s-b"
			must(t, st.UpdatePayment(ctx, p, linked), "UpdatePayment")
			got, _ = allPages(t, 5, list(billing.PaymentQuery{SubscriptionID: "s-b"}))
			equal(t, got, []string{"pay-e", "pay-c"}, "payments of s-b after linking pay-e")
		}},
		{"ListNotificationsFiltersAndData", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			c := consoleOf(t, st)
			data := billing.NotificationData{PlanName: "Pro", PeriodEnd: at(72), DaysRemaining: 3, Amount: billing.Money{Amount: 990, Currency: "BRL"}}
			recs := []billing.NotificationRecord{
				{Key: "k1", Kind: billing.NotificationKindExpiring, SubscriptionID: "s-a", UserID: "u1", Data: &data},
				{Key: "k2", Kind: billing.NotificationKindExpired, SubscriptionID: "s-a", UserID: "u1"},
				{Key: "k3", Kind: billing.NotificationKindExpiring, SubscriptionID: "s-b", UserID: "u2"},
			}
			for i, r := range recs {
				ok, err := st.ReserveNotifications(ctx, []billing.NotificationRecord{r}, "tok", at(i), at(i+1))
				must(t, err, "ReserveNotifications")
				if !ok[0] {
					t.Fatalf("%s not reserved", r.Key)
				}
			}
			must(t, st.FinishNotifications(ctx, []billing.NotificationRecord{
				{Key: "k1", Status: billing.NotificationSent, UpdatedAt: at(1)},
				{Key: "k3", Status: billing.NotificationFailed, Error: "550 no such user", UpdatedAt: at(3)},
			}, "tok"), "FinishNotifications")
			list := func(q billing.NotificationQuery) func(billing.Cursor, int) ([]string, billing.Cursor, error) {
				return func(after billing.Cursor, limit int) ([]string, billing.Cursor, error) {
					q.After, q.Limit = after, limit
					ns, next, err := c.ListNotifications(ctx, q)
					return ids2(ns, func(n billing.NotificationRecord) string { return n.Key }), next, err
				}
			}
			got, _ := allPages(t, 1, list(billing.NotificationQuery{}))
			equal(t, got, []string{"k3", "k2", "k1"}, "all notifications")
			got, _ = allPages(t, 1, list(billing.NotificationQuery{Kind: billing.NotificationKindExpiring}))
			equal(t, got, []string{"k3", "k1"}, "expiring")
			got, _ = allPages(t, 1, list(billing.NotificationQuery{Status: billing.NotificationFailed}))
			equal(t, got, []string{"k3"}, "failed")
			got, _ = allPages(t, 1, list(billing.NotificationQuery{SubscriptionID: "s-a", Kind: billing.NotificationKindExpiring}))
			equal(t, got, []string{"k1"}, "expiring of s-a")
			n, err := st.GetNotification(ctx, "k1")
			must(t, err, "GetNotification")
			if n.Data == nil {
				t.Fatal("the data sent was not kept")
			}
			equal(t, *n.Data, data, "data of k1")
			if n2, _ := st.GetNotification(ctx, "k2"); n2.Data != nil {
				t.Fatalf("k2 reserved without data reads back with %+v", n2.Data)
			}
		}},
		// A reservation released (FinishNotifications with no status) is reservable again as if
		// never made. Proves: reserved again, the key is listed once, in all and in its
		// subscription's list.
		{"ListNotificationsOnceAfterRelease", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			c := consoleOf(t, st)
			reserve := func(key string, i int) {
				t.Helper()
				ok, err := st.ReserveNotifications(ctx, []billing.NotificationRecord{{Key: key, Kind: billing.NotificationKindExpiring, SubscriptionID: "s-a"}}, "tok", at(i), at(i+1))
				must(t, err, "ReserveNotifications(%s)", key)
				if !ok[0] {
					t.Fatalf("%s not reserved", key)
				}
			}
			reserve("k1", 0)
			reserve("k2", 1)
			must(t, st.FinishNotifications(ctx, []billing.NotificationRecord{{Key: "k1"}}, "tok"), "FinishNotifications(release k1)")
			reserve("k1", 2)
			for _, q := range []billing.NotificationQuery{{Limit: 10}, {SubscriptionID: "s-a", Limit: 10}} {
				ns, _, err := c.ListNotifications(ctx, q)
				must(t, err, "ListNotifications")
				equalIDs(t, ids2(ns, func(n billing.NotificationRecord) string { return n.Key }), []string{"k1", "k2"}, "notifications listed (query %+v)", q)
			}
		}},
		{"RetryNotification", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			c := consoleOf(t, st)
			for _, k := range []string{"failed", "sent"} {
				_, err := st.ReserveNotifications(ctx, []billing.NotificationRecord{{Key: k, Kind: billing.NotificationKindExpiring}}, "tok", base, base.Add(time.Minute))
				must(t, err, "ReserveNotifications")
			}
			must(t, st.FinishNotifications(ctx, []billing.NotificationRecord{
				{Key: "failed", Status: billing.NotificationFailed, Error: "550", UpdatedAt: base},
				{Key: "sent", Status: billing.NotificationSent, UpdatedAt: base},
			}, "tok"), "FinishNotifications")
			ok, err := c.RetryNotification(ctx, "sent", "op", base.Add(time.Hour), base.Add(2*time.Hour))
			must(t, err, "RetryNotification(sent)")
			if ok {
				t.Fatal("a sent notification was reserved for a resend")
			}
			ok, err = c.RetryNotification(ctx, "failed", "op", base.Add(time.Hour), base.Add(2*time.Hour))
			must(t, err, "RetryNotification(failed)")
			if !ok {
				t.Fatal("a failed notification was not reserved for a resend")
			}
			n, _ := st.GetNotification(ctx, "failed")
			if n.Status != billing.NotificationSending || n.Token != "op" || n.Error != "" {
				t.Fatalf("after retry: %+v, want sending by op without error", n)
			}
			if ok, _ := c.RetryNotification(ctx, "failed", "other", base.Add(time.Hour), base.Add(2*time.Hour)); ok {
				t.Fatal("a notification being resent was reserved twice")
			}
			must(t, st.FinishNotifications(ctx, []billing.NotificationRecord{{Key: "failed", Status: billing.NotificationSent, UpdatedAt: base.Add(time.Hour)}}, "op"), "FinishNotifications")
			if n, _ := st.GetNotification(ctx, "failed"); n.Status != billing.NotificationSent {
				t.Fatalf("resent notification is %s, want sent", n.Status)
			}
			if _, err := c.RetryNotification(ctx, "missing", "op", base, base); !errors.Is(err, billing.ErrNotFound) {
				t.Fatalf("missing key: got %v, want ErrNotFound", err)
			}
		}},
		{"ListEntityAudit", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			c := consoleOf(t, st)
			for i, ent := range []string{"s-a", "pay-1", "s-b", "s-a", "pay-1", "s-a"} {
				e := billing.AuditEntry{ID: "a" + string(rune('0'+i)), Action: "x", EntityType: "t", EntityID: ent, Actor: "test", CreatedAt: at(i)}
				must(t, st.InsertAudit(ctx, &e), "InsertAudit")
			}
			got, err := c.ListEntityAudit(ctx, []string{"s-a", "pay-1"}, 10)
			must(t, err, "ListEntityAudit")
			equal(t, ids2(got, func(e billing.AuditEntry) string { return e.ID }), []string{"a5", "a4", "a3", "a1", "a0"}, "entries of s-a and pay-1")
			got, err = c.ListEntityAudit(ctx, []string{"s-a", "pay-1"}, 2)
			must(t, err, "ListEntityAudit")
			equal(t, ids2(got, func(e billing.AuditEntry) string { return e.ID }), []string{"a5", "a4"}, "newest two")
			if _, err := c.ListEntityAudit(ctx, []string{"s-a"}, 0); !errors.Is(err, billing.ErrInvalidInput) {
				t.Fatalf("limit 0: got %v, want ErrInvalidInput", err)
			}
		}},
		{"DailySnapshots", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			ss, ok := st.(billing.SnapshotStore)
			if !ok {
				t.Skip("store does not implement billing.SnapshotStore")
			}
			for d := range 3 {
				must(t, ss.PutDailySnapshot(ctx, billing.DailySnapshot{Day: base.AddDate(0, 0, d),
					ByStatus: map[billing.SubscriptionStatus]int{billing.SubscriptionStatusActive: d}, MRR: map[string]int64{"BRL": int64(100 * d)}, Taken: base}), "PutDailySnapshot")
			}
			// Taken again the same day: replaced.
			must(t, ss.PutDailySnapshot(ctx, billing.DailySnapshot{Day: base.AddDate(0, 0, 2).Add(5 * time.Hour),
				ByStatus: map[billing.SubscriptionStatus]int{billing.SubscriptionStatusActive: 9}, MRR: map[string]int64{"USD": 7}, Taken: base.Add(time.Hour)}), "PutDailySnapshot")
			got, err := ss.ListDailySnapshots(ctx, base.AddDate(0, 0, 1).Add(3*time.Hour))
			must(t, err, "ListDailySnapshots")
			if len(got) != 2 {
				t.Fatalf("got %d snapshots since day 1, want 2: %+v", len(got), got)
			}
			if !got[0].Day.Equal(billing.SnapshotDay(base.AddDate(0, 0, 1))) || got[0].ByStatus[billing.SubscriptionStatusActive] != 1 {
				t.Fatalf("first snapshot %+v, want day 1 with 1 active", got[0])
			}
			if got[1].ByStatus[billing.SubscriptionStatusActive] != 9 || got[1].MRR["USD"] != 7 || len(got[1].MRR) != 1 {
				t.Fatalf("day 2 was not replaced: %+v", got[1])
			}
		}},
	}
}

// ids2 lists the ids of xs in order.
func ids2[T any](xs []T, id func(T) string) []string {
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		out = append(out, id(x))
	}
	return slices.Clip(out)
}
