package memstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/store/memstore"
)

// consoleStore builds a store of n subscriptions, one user each, a payment and a sent
// notification per subscription and two audit entries per subscription, created a minute
// apart; 10% are inactive.
func consoleStore(b *testing.B, n int) *memstore.Store {
	b.Helper()
	ctx := context.Background()
	st := memstore.New()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := make([]billing.NotificationRecord, 0, n)
	for i := range n {
		at := base.Add(time.Duration(i) * time.Minute)
		uid, sid := fmt.Sprintf("u%06d", i), fmt.Sprintf("s%06d", i)
		u := billing.User{ID: uid, Email: uid + "@example.com", Name: uid, CreatedAt: at}
		s := billing.Subscription{ID: sid, UserID: uid, PlanID: "p", Status: billing.SubscriptionStatusActive, BillingCycle: billing.CycleMonthly,
			CurrentPeriodStart: at, CurrentPeriodEnd: at.AddDate(0, 1, 0), Gateway: billing.GatewayStripe, GatewaySubscriptionID: "gw-" + sid, CreatedAt: at}
		if i%10 == 0 {
			s.Status = billing.SubscriptionStatusInactive
		}
		p := billing.Payment{ID: "pay" + sid, UserID: uid, PlanID: "p", SubscriptionID: sid, Amount: billing.Money{Amount: 100, Currency: "BRL"},
			Status: billing.PaymentStatusApproved, Gateway: billing.GatewayStripe, CreatedAt: at}
		if err := st.InsertUser(ctx, &u); err != nil {
			b.Fatal(err)
		}
		if err := st.InsertSubscription(ctx, &s); err != nil {
			b.Fatal(err)
		}
		if err := st.InsertPayment(ctx, &p); err != nil {
			b.Fatal(err)
		}
		for _, action := range []string{billing.AuditSubscriptionCreated, billing.AuditWarningSent} {
			e := billing.AuditEntry{Action: action, EntityType: "subscription", EntityID: sid, Actor: "renewkit", CreatedAt: at}
			if err := st.InsertAudit(ctx, &e); err != nil {
				b.Fatal(err)
			}
		}
		recs = append(recs, billing.NotificationRecord{Key: "expiring:" + sid, Kind: billing.NotificationKindExpiring, SubscriptionID: sid, UserID: uid})
	}
	for start := 0; start < n; start += 1000 {
		part := recs[start:min(start+1000, n)]
		if _, err := st.ReserveNotifications(ctx, part, "tok", base, base.Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	return st
}

var (
	consoleStoresMu sync.Mutex
	consoleStores   = map[int]*memstore.Store{}
)

func cachedConsoleStore(b *testing.B, n int) *memstore.Store {
	consoleStoresMu.Lock()
	defer consoleStoresMu.Unlock()
	if consoleStores[n] == nil {
		consoleStores[n] = consoleStore(b, n)
	}
	return consoleStores[n]
}

// BenchmarkConsoleQueries measures each console query on stores of 1k and 100k
// subscriptions. A query is bounded when its time per page is about the same at both
// sizes; baseline_audit_scan is the unbounded reference: one subscription's audit entries
// read with ListAudit, which walks the whole audit log, as a timeline without the
// Console capability would.
//
//	go test -run '^$' -bench BenchmarkConsoleQueries -count 5 ./store/memstore/
func BenchmarkConsoleQueries(b *testing.B) {
	ctx := context.Background()
	svcFor := func(st *memstore.Store) *billing.Service {
		svc, err := billing.NewService(st, billing.NotifierFunc(func(context.Context, billing.Notification) error { return nil }), billing.Config{})
		if err != nil {
			b.Fatal(err)
		}
		return svc
	}
	for _, n := range []int{1_000, 100_000} {
		st := cachedConsoleStore(b, n)
		svc := svcFor(st)
		mid := fmt.Sprintf("s%06d", n/2)
		queries := []struct {
			name string
			run  func() error
		}{
			{"search_page", func() error {
				_, _, err := st.SearchSubscriptions(ctx, billing.SubscriptionQuery{Limit: 50})
				return err
			}},
			{"search_status_page", func() error {
				_, _, err := st.SearchSubscriptions(ctx, billing.SubscriptionQuery{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusInactive}, Limit: 50})
				return err
			}},
			{"search_email", func() error {
				_, _, err := st.SearchSubscriptions(ctx, billing.SubscriptionQuery{Q: fmt.Sprintf("u%06d@", n/2)})
				return err
			}},
			{"payments_page", func() error {
				_, _, err := st.ListPayments(ctx, billing.PaymentQuery{Status: billing.PaymentStatusApproved, Limit: 50})
				return err
			}},
			{"notifications_page", func() error {
				_, _, err := st.ListNotifications(ctx, billing.NotificationQuery{Kind: billing.NotificationKindExpiring, Limit: 50})
				return err
			}},
			{"timeline", func() error {
				_, err := svc.Timeline(ctx, mid, 50)
				return err
			}},
			{"baseline_audit_scan", func() error {
				_, err := st.ListAudit(ctx, billing.AuditFilter{EntityID: mid, Limit: 50})
				return err
			}},
		}
		for _, q := range queries {
			b.Run(fmt.Sprintf("%s/n=%d", q.name, n), func(b *testing.B) {
				if err := q.run(); err != nil { // warm: orderings sorted once after the inserts
					b.Fatal(err)
				}
				for b.Loop() {
					if err := q.run(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
