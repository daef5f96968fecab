package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

func isConflict(err error) bool { return errors.Is(err, billing.ErrConflict) }
func isLockHeld(err error) bool { return errors.Is(err, billing.ErrLockHeld) }
func isNotFound(err error) bool { return errors.Is(err, billing.ErrNotFound) }
func zoneOf(t time.Time) string { return t.Location().String() }

// checkTime asserts got is in UTC and equals in truncated to the millisecond; a zero in
// stays zero.
func checkTime(t *testing.T, what string, got, in time.Time) {
	t.Helper()
	want := billing.TruncateTime(in)
	if want.IsZero() {
		if !got.IsZero() {
			t.Fatalf("%s: zero time came back as %v", what, got)
		}
		return
	}
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Fatalf("%s: got %v (zone %s), want %v in UTC (millisecond precision)", what, got, zoneOf(got), want)
	}
	if got.Nanosecond()%int(time.Millisecond) != 0 {
		t.Fatalf("%s: %v keeps sub-millisecond digits", what, got)
	}
}

func (s *suite) timeTests() []test {
	// A non-UTC zone (fixed, so no tzdata is needed) and sub-millisecond digits.
	brt := time.FixedZone("BRT", -3*60*60)
	at := func(d time.Duration) time.Time {
		return time.Date(2030, time.June, 15, 9, 0, 0, 123456789, brt).Add(d)
	}
	return []test{
		{"RoundTripUTCMillisecond", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			p := billing.Plan{ID: "p1", Name: "P", BillingCycle: billing.CycleMonthly, Price: billing.Money{Amount: 1, Currency: "BRL"},
				CreatedAt: at(0), UpdatedAt: at(time.Second)}
			must(t, st.InsertPlan(ctx, &p), "InsertPlan")
			gp, err := st.GetPlan(ctx, "p1")
			must(t, err, "GetPlan")
			checkTime(t, "Plan.CreatedAt", gp.CreatedAt, at(0))
			checkTime(t, "Plan.UpdatedAt", gp.UpdatedAt, at(time.Second))

			u := billing.User{ID: "u1", Email: "u1@example.com", AccessUntil: at(day), CreatedAt: at(0), UpdatedAt: at(0)}
			must(t, st.InsertUser(ctx, &u), "InsertUser")
			ru, err := st.GetUser(ctx, "u1")
			must(t, err, "GetUser")
			cu := ru
			cu.AccessUntil, cu.UpdatedAt = at(2*day), at(time.Minute)
			must(t, billing.UpdateUserAccess(ctx, st, ru, cu), "UpdateUserAccess")
			gu, err := st.GetUser(ctx, "u1")
			must(t, err, "GetUser")
			checkTime(t, "User.AccessUntil", gu.AccessUntil, at(2*day))
			checkTime(t, "User.UpdatedAt", gu.UpdatedAt, at(time.Minute))
			checkTime(t, "User.CreatedAt", gu.CreatedAt, at(0))

			x := billing.Subscription{ID: "s1", UserID: "u1", PlanID: "p1", Status: billing.SubscriptionStatusActive, BillingCycle: billing.CycleMonthly,
				CurrentPeriodStart: at(-30 * day), CurrentPeriodEnd: at(day), GatewayUpdatedAt: at(-time.Hour),
				CreatedAt: at(-30 * day), UpdatedAt: at(0)}
			must(t, st.InsertSubscription(ctx, &x), "InsertSubscription")
			gs, err := st.GetSubscription(ctx, "s1")
			must(t, err, "GetSubscription")
			checkTime(t, "Subscription.CurrentPeriodStart", gs.CurrentPeriodStart, at(-30*day))
			checkTime(t, "Subscription.CurrentPeriodEnd", gs.CurrentPeriodEnd, at(day))
			checkTime(t, "Subscription.GatewayUpdatedAt", gs.GatewayUpdatedAt, at(-time.Hour))
			checkTime(t, "Subscription.CancelledAt", gs.CancelledAt, time.Time{})
			checkTime(t, "Subscription.CreatedAt", gs.CreatedAt, at(-30*day))
			cs := gs
			cs.CancelledAt, cs.UpdatedAt, cs.GatewayUpdatedAt = at(2*time.Hour), at(3*time.Hour), at(4*time.Hour)
			_, err = billing.UpdateSubscription(ctx, st, gs, cs)
			must(t, err, "UpdateSubscription")
			gs, err = st.GetSubscription(ctx, "s1")
			must(t, err, "GetSubscription")
			checkTime(t, "Subscription.CancelledAt after update", gs.CancelledAt, at(2*time.Hour))
			checkTime(t, "Subscription.UpdatedAt after update", gs.UpdatedAt, at(3*time.Hour))
			checkTime(t, "Subscription.GatewayUpdatedAt after update", gs.GatewayUpdatedAt, at(4*time.Hour))

			pay := billing.Payment{ID: "pay1", UserID: "u1", PlanID: "p1", Amount: billing.Money{Amount: 1, Currency: "BRL"},
				Status: billing.PaymentStatusPending, Gateway: billing.GatewayStripe, CreatedAt: at(-8 * day), UpdatedAt: at(-8 * day)}
			must(t, st.InsertPayment(ctx, &pay), "InsertPayment")
			gpay, err := st.GetPayment(ctx, "pay1")
			must(t, err, "GetPayment")
			checkTime(t, "Payment.CreatedAt", gpay.CreatedAt, at(-8*day))
			checkTime(t, "Payment.ProcessedAt", gpay.ProcessedAt, time.Time{})
			cancelled, err := st.CancelStalePayments(ctx, at(-7*day), at(0), "stale", 10, nil)
			must(t, err, "CancelStalePayments")
			if len(cancelled) != 1 {
				t.Fatalf("CancelStalePayments with a non-UTC cutoff cancelled %d, want 1", len(cancelled))
			}
			checkTime(t, "Payment.ProcessedAt (cancelled)", cancelled[0].ProcessedAt, at(0))

			se := billing.Session{ID: "se1", UserID: "u1", ExpiresAt: at(-31 * day), CreatedAt: at(-32 * day)}
			must(t, st.InsertSession(ctx, &se), "InsertSession")
			gse, err := st.GetSession(ctx, "se1")
			must(t, err, "GetSession")
			checkTime(t, "Session.ExpiresAt", gse.ExpiresAt, at(-31*day))
			del, err := st.DeleteExpiredSessions(ctx, at(-30*day), at(0), 10, nil)
			must(t, err, "DeleteExpiredSessions")
			if len(del) != 1 {
				t.Fatalf("DeleteExpiredSessions with a non-UTC cutoff deleted %d, want 1", len(del))
			}
			checkTime(t, "Session.DeletedAt", del[0].DeletedAt, at(0))

			e := billing.AuditEntry{Action: "a", EntityType: "x", EntityID: "s1", Actor: "test", CreatedAt: at(0)}
			must(t, st.InsertAudit(ctx, &e), "InsertAudit")
			audits, err := st.ListAudit(ctx, billing.AuditFilter{Since: at(0)})
			must(t, err, "ListAudit(Since in another zone)")
			if len(audits) != 1 {
				t.Fatalf("ListAudit(Since equal instant, other zone) = %d entries, want 1", len(audits))
			}
			checkTime(t, "AuditEntry.CreatedAt", audits[0].CreatedAt, at(0))

			_, err = st.ReserveNotifications(ctx, []billing.NotificationRecord{{Key: "k", Kind: billing.NotificationKindExpired}}, "T", at(0), at(time.Minute))
			must(t, err, "ReserveNotifications")
			gn, err := st.GetNotification(ctx, "k")
			must(t, err, "GetNotification")
			checkTime(t, "NotificationRecord.CreatedAt", gn.CreatedAt, at(0))
			checkTime(t, "NotificationRecord.LeaseUntil", gn.LeaseUntil, at(time.Minute))
			must(t, st.FinishNotifications(ctx, []billing.NotificationRecord{{Key: "k", Status: billing.NotificationSent, UpdatedAt: at(time.Second)}}, "T"), "FinishNotifications")
			gn, err = st.GetNotification(ctx, "k")
			must(t, err, "GetNotification")
			checkTime(t, "NotificationRecord.UpdatedAt", gn.UpdatedAt, at(time.Second))
			checkTime(t, "NotificationRecord.CreatedAt after Finish", gn.CreatedAt, at(0))

			r := billing.JobRun{ID: "r1", JobID: "j", Status: billing.RunStatusSucceeded, StartedAt: at(0), FinishedAt: at(time.Second), ScheduledFor: at(-time.Minute)}
			must(t, st.InsertJobRun(ctx, &r), "InsertJobRun")
			runs, err := st.ListJobRuns(ctx, billing.JobRunFilter{JobID: "j"})
			must(t, err, "ListJobRuns")
			if len(runs) != 1 {
				t.Fatalf("ListJobRuns = %d runs, want 1", len(runs))
			}
			checkTime(t, "JobRun.StartedAt", runs[0].StartedAt, at(0))
			checkTime(t, "JobRun.FinishedAt", runs[0].FinishedAt, at(time.Second))
			checkTime(t, "JobRun.ScheduledFor", runs[0].ScheduledFor, at(-time.Minute))

			must(t, st.PutJobState(ctx, billing.JobState{JobID: "j", PausedAt: at(0), LastScheduledSuccess: at(-day), UpdatedAt: at(time.Second)}), "PutJobState")
			js, err := st.GetJobState(ctx, "j")
			must(t, err, "GetJobState")
			checkTime(t, "JobState.PausedAt", js.PausedAt, at(0))
			checkTime(t, "JobState.LastScheduledSuccess", js.LastScheduledSuccess, at(-day))
			checkTime(t, "JobState.UpdatedAt", js.UpdatedAt, at(time.Second))

			l, err := st.AcquireLock(ctx, "k", "A", at(0), time.Minute)
			must(t, err, "AcquireLock")
			checkTime(t, "Lease.ExpiresAt", l.ExpiresAt, at(time.Minute))

			ev, _, err := st.PutWebhookEvent(ctx, billing.WebhookEvent{Gateway: "stripe", EventID: "e1", OccurredAt: at(-time.Second)}, at(0))
			must(t, err, "PutWebhookEvent")
			checkTime(t, "WebhookEvent.ReceivedAt", ev.ReceivedAt, at(0))
			cl, err := st.ClaimWebhookEvents(ctx, billing.WebhookClaimParams{Token: "T", Now: at(0), LeaseUntil: at(time.Minute), Limit: 1})
			must(t, err, "ClaimWebhookEvents")
			if len(cl) != 1 {
				t.Fatalf("claimed %d events, want 1", len(cl))
			}
			checkTime(t, "WebhookEvent.LeaseUntil", cl[0].LeaseUntil, at(time.Minute))
			gev, err := st.GetWebhookEvent(ctx, "stripe", "e1")
			must(t, err, "GetWebhookEvent")
			checkTime(t, "WebhookEvent.ReceivedAt (stored)", gev.ReceivedAt, at(0))
			checkTime(t, "WebhookEvent.OccurredAt (stored)", gev.OccurredAt, at(-time.Second))
		}},
		{"QueriesCompareInstantsNotZones", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			end := base.Add(3 * day)
			insertSubs(ctx, t, st, newSub("s1", end))
			// The same instant as end, written in another zone: inclusive Before must match.
			f := billing.SubscriptionFilter{PeriodEndAfter: base.In(brt), PeriodEndBefore: end.In(brt)}
			n, err := st.CountSubscriptions(ctx, f)
			must(t, err, "CountSubscriptions")
			if n != 1 {
				t.Fatalf("CountSubscriptions with bounds in another zone = %d, want 1", n)
			}
			got, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Filter: f, Token: "A", Now: base.In(brt), LeaseUntil: base.Add(time.Minute).In(brt), Limit: 10})
			must(t, err, "ClaimSubscriptions")
			if len(got) != 1 {
				t.Fatalf("ClaimSubscriptions with bounds in another zone = %d records, want 1", len(got))
			}
			// The lease was stored as an instant: at its end, in yet another zone, it is over.
			again, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Filter: f, Token: "B", Now: base.Add(time.Minute).In(time.FixedZone("X", 5*60*60)), LeaseUntil: base.Add(2 * time.Minute), Limit: 10})
			must(t, err, "ClaimSubscriptions")
			if len(again) != 1 {
				t.Fatalf("a lease that ended must be claimable whatever the zone of Now: got %d records", len(again))
			}
		}},
	}
}

func (s *suite) cancelTests() []test {
	return []test{
		{"EveryMethodFailsAndWritesNothing", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			// Records the read calls would find, so only the cancellation can fail them.
			pl, u, x := newPlan("p1"), newUser("u1"), newSub("s1", base.Add(-time.Hour))
			pay := newPayment("pay1", base.Add(-30*day), func(p *billing.Payment) { p.GatewayPaymentID = "pi_1" })
			se := newSession("se1", base.Add(-40*day))
			must(t, st.InsertPlan(ctx, &pl), "InsertPlan")
			must(t, st.InsertUser(ctx, &u), "InsertUser")
			must(t, st.InsertSubscription(ctx, &x), "InsertSubscription")
			must(t, st.InsertPayment(ctx, &pay), "InsertPayment")
			must(t, st.InsertSession(ctx, &se), "InsertSession")
			run := billing.JobRun{ID: "r1", JobID: "j", StartedAt: base}
			must(t, st.InsertJobRun(ctx, &run), "InsertJobRun")
			lease, err := st.AcquireLock(ctx, "held", "A", base, time.Hour)
			must(t, err, "AcquireLock")
			_, _, err = st.PutWebhookEvent(ctx, billing.WebhookEvent{Gateway: "stripe", EventID: "e1"}, base)
			must(t, err, "PutWebhookEvent")
			// s3 carries pending effects and is claimed by E until base+1h; n0 is reserved by N.
			withEffects := newSub("s3", base.Add(-2*time.Hour), func(x *billing.Subscription) { x.UserID = "u3" })
			insertSubs(ctx, t, st, withEffects)
			eff := &billing.Effects{Token: "E", CreatedAt: base}
			applyOne(ctx, t, st, billing.SubscriptionChange{Read: withEffects, Changed: withEffects, Effects: eff})
			claimedE, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Filter: billing.SubscriptionFilter{UserIDs: []string{"u3"}},
				Token: "E", Now: base, LeaseUntil: base.Add(time.Hour), Limit: 10, Pending: true})
			must(t, err, "ClaimSubscriptions(pending)")
			equalIDs(t, subIDs(claimedE), []string{"s3"}, "claim of the record with pending effects")
			_, err = st.ReserveNotifications(ctx, []billing.NotificationRecord{{Key: "n0", Kind: billing.NotificationKindExpired}}, "N", base, base.Add(time.Hour))
			must(t, err, "ReserveNotifications")

			cctx, cancel := context.WithCancel(ctx)
			cancel()
			newPl, newU, newX := newPlan("p2"), newUser("u2"), newSub("s2", base)
			newPay, newSe := newPayment("pay2", base), newSession("se2", base)
			newAudit, newRun := billing.AuditEntry{ID: "a1", Action: "x", CreatedAt: base}, billing.JobRun{ID: "r2", JobID: "j", StartedAt: base}
			calls := map[string]func() error{
				"InsertPlan": func() error { return st.InsertPlan(cctx, &newPl) },
				"GetPlan":    func() error { _, err := st.GetPlan(cctx, "p1"); return err },
				"ListPlans":  func() error { _, err := st.ListPlans(cctx); return err },
				"InsertUser": func() error { return st.InsertUser(cctx, &newU) },
				"GetUser":    func() error { _, err := st.GetUser(cctx, "u1"); return err },
				"UpdateUsersAccess": func() error {
					return batchFailed(st.UpdateUsersAccess(cctx, []billing.UserAccessChange{{Read: u, Changed: revoked(u)}}))
				},
				"ListUsers":          func() error { _, err := st.ListUsers(cctx, []string{"u1"}); return err },
				"InsertSubscription": func() error { return st.InsertSubscription(cctx, &newX) },
				"GetSubscription":    func() error { _, err := st.GetSubscription(cctx, "s1"); return err },
				"UpdateSubscriptions": func() error {
					y := x
					y.Status = billing.SubscriptionStatusInactive
					return batchFailed(st.UpdateSubscriptions(cctx, []billing.SubscriptionChange{{Read: x, Changed: y}}))
				},
				"CompleteEffects": func() error {
					return st.CompleteEffects(cctx, []billing.EffectsDone{{SubscriptionID: "s3", Token: "E"}})
				},
				"ExtendClaims": func() error { return st.ExtendClaims(cctx, "E", base.Add(10*time.Hour)) },
				"ListSubscriptions": func() error {
					_, err := st.ListSubscriptions(cctx, billing.SubscriptionFilter{}, 10)
					return err
				},
				"FindSubscriptionByGateway": func() error {
					_, err := st.FindSubscriptionByGateway(cctx, billing.GatewayManual, "x")
					return err
				},
				"ListUserSubscriptions": func() error { _, err := st.ListUserSubscriptions(cctx, "u1"); return err },
				"ClaimSubscriptions": func() error {
					_, err := st.ClaimSubscriptions(cctx, billing.ClaimParams{Token: "A", Now: base, LeaseUntil: base.Add(time.Hour), Limit: 10})
					return err
				},
				"ReleaseClaims":              func() error { return st.ReleaseClaims(cctx, "A") },
				"CountSubscriptions":         func() error { _, err := st.CountSubscriptions(cctx, billing.SubscriptionFilter{}); return err },
				"CountSubscriptionsByStatus": func() error { _, err := st.CountSubscriptionsByStatus(cctx); return err },
				"InsertPayment":              func() error { return st.InsertPayment(cctx, &newPay) },
				"GetPayment":                 func() error { _, err := st.GetPayment(cctx, "pay1"); return err },
				"FindPaymentByGateway": func() error {
					_, err := st.FindPaymentByGateway(cctx, billing.GatewayStripe, "pi_1")
					return err
				},
				"UpdatePayment": func() error {
					p := pay
					p.Status = billing.PaymentStatusApproved
					return st.UpdatePayment(cctx, pay, p)
				},
				"CancelStalePayments": func() error {
					_, err := st.CancelStalePayments(cctx, base, base, "stale", 10, nil)
					return err
				},
				"InsertSession": func() error { return st.InsertSession(cctx, &newSe) },
				"GetSession":    func() error { _, err := st.GetSession(cctx, "se1"); return err },
				"DeleteExpiredSessions": func() error {
					_, err := st.DeleteExpiredSessions(cctx, base, base, 10, nil)
					return err
				},
				"InsertAudit": func() error { return st.InsertAudit(cctx, &newAudit) },
				"InsertAudits": func() error {
					return st.InsertAudits(cctx, []billing.AuditEntry{{ID: "a2", Action: "x", CreatedAt: base}})
				},
				"ListAudit": func() error { _, err := st.ListAudit(cctx, billing.AuditFilter{}); return err },
				"ReserveNotifications": func() error {
					_, err := st.ReserveNotifications(cctx, []billing.NotificationRecord{{Key: "n1", Kind: billing.NotificationKindExpired}}, "N", base, base.Add(time.Minute))
					return err
				},
				"FinishNotifications": func() error {
					return st.FinishNotifications(cctx, []billing.NotificationRecord{{Key: "n0", Status: billing.NotificationSent, UpdatedAt: base}}, "N")
				},
				"GetNotification": func() error { _, err := st.GetNotification(cctx, "n1"); return err },
				"InsertJobRun":    func() error { return st.InsertJobRun(cctx, &newRun) },
				"UpdateJobRun": func() error {
					return st.UpdateJobRun(cctx, billing.JobRun{ID: "r1", JobID: "j", StartedAt: base, Error: "x"})
				},
				"ListJobRuns":         func() error { _, err := st.ListJobRuns(cctx, billing.JobRunFilter{}); return err },
				"DeleteJobRunsBefore": func() error { _, err := st.DeleteJobRunsBefore(cctx, base.Add(day)); return err },
				"GetJobState":         func() error { _, err := st.GetJobState(cctx, "j"); return err },
				"PutJobState":         func() error { return st.PutJobState(cctx, billing.JobState{JobID: "j", Paused: true}) },
				"AcquireLock": func() error {
					_, err := st.AcquireLock(cctx, "free", "A", base, time.Minute)
					return err
				},
				"RenewLock": func() error {
					_, err := st.RenewLock(cctx, lease, base, time.Hour)
					return err
				},
				"ReleaseLock": func() error { return st.ReleaseLock(cctx, lease) },
				"PutWebhookEvent": func() error {
					_, _, err := st.PutWebhookEvent(cctx, billing.WebhookEvent{Gateway: "stripe", EventID: "e2"}, base)
					return err
				},
				"ClaimWebhookEvents": func() error {
					_, err := st.ClaimWebhookEvents(cctx, billing.WebhookClaimParams{Token: "T", Now: base, LeaseUntil: base.Add(time.Minute), Limit: 1})
					return err
				},
				"FinishWebhookEvent": func() error {
					return st.FinishWebhookEvent(cctx, billing.WebhookFinish{Gateway: "stripe", EventID: "e1", Token: "T", State: billing.WebhookEventStateProcessed, Now: base})
				},
				"ListWebhookEvents": func() error {
					_, err := st.ListWebhookEvents(cctx, billing.WebhookEventQuery{Limit: 1})
					return err
				},
				"GetWebhookEvent": func() error { _, err := st.GetWebhookEvent(cctx, "stripe", "e1"); return err },
			}
			for name, call := range calls {
				if err := call(); err == nil {
					t.Errorf("%s with a cancelled context returned no error", name)
				}
			}

			// Nothing the cancelled calls would have written is there.
			for what, err := range map[string]error{
				"plan p2":         second(st.GetPlan(ctx, "p2")),
				"user u2":         second(st.GetUser(ctx, "u2")),
				"subscription s2": second(st.GetSubscription(ctx, "s2")),
				"payment pay2":    second(st.GetPayment(ctx, "pay2")),
				"session se2":     second(st.GetSession(ctx, "se2")),
				"notification n1": second(st.GetNotification(ctx, "n1")),
				"event e2":        second(st.GetWebhookEvent(ctx, "stripe", "e2")),
			} {
				if !isNotFound(err) {
					t.Errorf("%s: want ErrNotFound after a cancelled insert, got %v", what, err)
				}
			}
			gu, err := st.GetUser(ctx, "u1")
			must(t, err, "GetUser")
			equal(t, gu, newUser("u1"), "user after a cancelled UpdateUsersAccess")
			gs, err := st.GetSubscription(ctx, "s1")
			must(t, err, "GetSubscription")
			equal(t, gs, newSub("s1", base.Add(-time.Hour)), "subscription after a cancelled update")
			g3, err := st.GetSubscription(ctx, "s3")
			must(t, err, "GetSubscription(s3)")
			if g3.Pending == nil {
				t.Error("a cancelled CompleteEffects removed the pending effects")
			}
			// E's lease was neither released nor extended: held at base+59m, free at base+1h.
			pendingClaim := func(token string, now time.Time) []string {
				got, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Filter: billing.SubscriptionFilter{UserIDs: []string{"u3"}},
					Token: token, Now: now, LeaseUntil: now.Add(time.Hour), Limit: 10, Pending: true})
				must(t, err, "ClaimSubscriptions(pending, %s)", token)
				return subIDs(got)
			}
			if got := pendingClaim("F", base.Add(59*time.Minute)); len(got) != 0 {
				t.Errorf("a cancelled CompleteEffects released E's claim: F claimed %v", got)
			}
			if got := pendingClaim("G", base.Add(time.Hour)); len(got) != 1 {
				t.Errorf("a cancelled ExtendClaims extended E's lease: G claimed %v at its original end", got)
			}
			if n0, err := st.GetNotification(ctx, "n0"); err != nil || n0.Status != billing.NotificationSending {
				t.Errorf("notification n0 after a cancelled FinishNotifications: %+v, %v; want still sending", n0, err)
			}
			gp, err := st.GetPayment(ctx, "pay1")
			must(t, err, "GetPayment")
			if gp.Status != billing.PaymentStatusPending {
				t.Errorf("payment after cancelled calls is %s, want pending", gp.Status)
			}
			gse, err := st.GetSession(ctx, "se1")
			must(t, err, "GetSession")
			if gse.Deleted {
				t.Error("a cancelled DeleteExpiredSessions deleted a session")
			}
			if audits, err := st.ListAudit(ctx, billing.AuditFilter{}); err != nil || len(audits) != 0 {
				t.Errorf("audit after a cancelled insert: %d entries, %v", len(audits), err)
			}
			if runs, err := st.ListJobRuns(ctx, billing.JobRunFilter{}); err != nil || len(runs) != 1 || runs[0].Error != "" {
				t.Errorf("job runs after cancelled calls: %+v, %v", runs, err)
			}
			if js, err := st.GetJobState(ctx, "j"); err != nil || js.Paused {
				t.Errorf("job state after a cancelled put: %+v, %v", js, err)
			}
			if _, err := st.AcquireLock(ctx, "held", "B", base.Add(time.Minute), time.Minute); !isLockHeld(err) {
				t.Errorf("a cancelled ReleaseLock freed the lock: AcquireLock got %v", err)
			}
			if _, err := st.AcquireLock(ctx, "free", "B", base, time.Minute); err != nil {
				t.Errorf("a cancelled AcquireLock took the lock: %v", err)
			}
			// A cancelled claim must leave the record claimable.
			got, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{Token: "B", Now: base, LeaseUntil: base.Add(time.Hour), Limit: 10})
			must(t, err, "ClaimSubscriptions")
			if len(got) != 1 {
				t.Errorf("after a cancelled claim, %d records are claimable, want 1", len(got))
			}
		}},
	}
}

func second[T any](_ T, err error) error { return err }

// batchFailed turns the results of a batch call into one error: the call's own, or an error
// when any change failed.
func batchFailed(errs []error, err error) error {
	if err != nil {
		return err
	}
	if len(errs) == 0 {
		return errors.New("no per-change result")
	}
	return errors.Join(errs...)
}
