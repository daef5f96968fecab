package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

func (s *suite) paymentTests() []test {
	return []test{
		{"InsertGetFind", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			p := newPayment(my("pay1"), base.Add(-day), func(p *billing.Payment) {
				p.SubscriptionID, p.GatewayPaymentID, p.GatewaySubscriptionID = my("s1"), my("pi_1"), my("sub_1")
				p.Status, p.Reason, p.ProcessedAt = billing.PaymentStatusFailed, "card declined", base.Add(-time.Hour)
			})
			want := p
			must(t, st.InsertPayment(ctx, &p), "InsertPayment")
			got, err := st.GetPayment(ctx, my("pay1"))
			must(t, err, "GetPayment")
			equal(t, got, want, "GetPayment(pay1)")
			byGW, err := st.FindPaymentByGateway(ctx, billing.GatewayStripe, my("pi_1"))
			must(t, err, "FindPaymentByGateway")
			equal(t, byGW, want, "FindPaymentByGateway(stripe, pi_1)")
			_, err = st.FindPaymentByGateway(ctx, billing.GatewayPayPal, my("pi_1"))
			wantErr(t, err, billing.ErrNotFound, "FindPaymentByGateway(other gateway)")
		}},
		{"InsertAssignsID", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			p := newPayment("", base)
			must(t, st.InsertPayment(ctx, &p), "InsertPayment without id")
			if p.ID == "" {
				t.Fatal("InsertPayment left the id empty; it must assign one")
			}
			if _, err := st.GetPayment(ctx, p.ID); err != nil {
				t.Fatalf("GetPayment(assigned id %q): %v", p.ID, err)
			}
		}},
		{"DuplicatesAreConflicts", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			p := newPayment(my("pay1"), base, func(p *billing.Payment) { p.GatewayPaymentID = my("pi_1") })
			must(t, st.InsertPayment(ctx, &p), "InsertPayment")
			dupID := newPayment(my("pay1"), base, func(p *billing.Payment) { p.GatewayPaymentID = my("pi_2") })
			wantErr(t, st.InsertPayment(ctx, &dupID), billing.ErrConflict, "InsertPayment(duplicate id)")
			dupGW := newPayment(my("pay2"), base, func(p *billing.Payment) { p.GatewayPaymentID = my("pi_1") })
			wantErr(t, st.InsertPayment(ctx, &dupGW), billing.ErrConflict, "InsertPayment(duplicate gateway payment id)")
			_, err := st.GetPayment(ctx, my("pay2"))
			wantErr(t, err, billing.ErrNotFound, "a rejected payment must not be stored")
			// The same gateway id at another gateway is a different payment.
			other := newPayment(my("pay3"), base, func(p *billing.Payment) { p.Gateway, p.GatewayPaymentID = billing.GatewayMercadoPago, my("pi_1") })
			must(t, st.InsertPayment(ctx, &other), "InsertPayment(same gateway id, other gateway)")
			// Payments without a gateway id yet (created before checkout) do not collide.
			for _, id := range []string{"local1", "local2"} {
				p := newPayment(id, base)
				must(t, st.InsertPayment(ctx, &p), "InsertPayment(%s without gateway payment id)", id)
			}
		}},
		{"MissingIsNotFound", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			_, err := st.GetPayment(ctx, my("nope"))
			wantErr(t, err, billing.ErrNotFound, "GetPayment(missing)")
			_, err = st.FindPaymentByGateway(ctx, billing.GatewayStripe, my("pi_nope"))
			wantErr(t, err, billing.ErrNotFound, "FindPaymentByGateway(missing)")
			missing := newPayment(my("nope"), base)
			approved := missing
			approved.Status = billing.PaymentStatusApproved
			wantErr(t, st.UpdatePayment(ctx, missing, approved), billing.ErrNotFound, "UpdatePayment(missing)")
			p := newPayment(my("pay1"), base)
			must(t, st.InsertPayment(ctx, &p), "InsertPayment")
			_, err = st.FindPaymentByGateway(ctx, billing.GatewayStripe, "")
			wantErr(t, err, billing.ErrNotFound, "FindPaymentByGateway(empty id) must not match payments without one")
		}},
		{"SoftDeletedInvisible", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			p := newPayment("gone", base.Add(-30*day), func(p *billing.Payment) { p.GatewayPaymentID, p.Deleted = "pi_gone", true })
			must(t, st.InsertPayment(ctx, &p), "InsertPayment(deleted)")
			_, err := st.GetPayment(ctx, "gone")
			wantErr(t, err, billing.ErrNotFound, "GetPayment(soft-deleted)")
			_, err = st.FindPaymentByGateway(ctx, billing.GatewayStripe, "pi_gone")
			wantErr(t, err, billing.ErrNotFound, "FindPaymentByGateway(soft-deleted)")
			got, err := st.CancelStalePayments(ctx, base, base, "stale", 10)
			must(t, err, "CancelStalePayments")
			if len(got) != 0 {
				t.Fatalf("CancelStalePayments cancelled soft-deleted payments: %v", got)
			}
		}},
		{"UpdateConditionalOnRead", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			p := newPayment(my("pay1"), base, func(p *billing.Payment) { p.GatewayPaymentID = my("pi_old") })
			must(t, st.InsertPayment(ctx, &p), "InsertPayment")
			read, err := st.GetPayment(ctx, my("pay1"))
			must(t, err, "GetPayment")
			upd := read
			upd.Status, upd.ProcessedAt, upd.UpdatedAt, upd.GatewayPaymentID = billing.PaymentStatusApproved, base, base, my("pi_new")
			must(t, st.UpdatePayment(ctx, read, upd), "UpdatePayment")
			got := upd
			got.Version = read.Version + 1
			stored, err := st.GetPayment(ctx, my("pay1"))
			must(t, err, "GetPayment")
			equal(t, stored, got, "stored payment equals the changed one with the version incremented")
			if _, err := st.FindPaymentByGateway(ctx, billing.GatewayStripe, my("pi_new")); err != nil {
				t.Fatalf("FindPaymentByGateway(new gateway id) after update: %v", err)
			}
			_, err = st.FindPaymentByGateway(ctx, billing.GatewayStripe, my("pi_old"))
			wantErr(t, err, billing.ErrNotFound, "FindPaymentByGateway(replaced gateway id)")
			// A writer still holding the first read loses: the status changed meanwhile.
			stale := read
			stale.Status, stale.Reason = billing.PaymentStatusCancelled, "stale"
			wantErr(t, st.UpdatePayment(ctx, read, stale), billing.ErrConflict, "UpdatePayment(Read's status no longer stored)")
			after, err := st.GetPayment(ctx, my("pay1"))
			must(t, err, "GetPayment")
			equal(t, after, got, "a conflicting update changed nothing")
		}},
		// The reversal fields (refunded amount, reason, time) survive an insert and a
		// conditional update, and clearing ReversedAt (a dispute won) clears it.
		{"ReversalFieldsRoundTrip", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			p := newPayment(my("pay1"), base.Add(-day), func(p *billing.Payment) {
				p.Status, p.GatewayPaymentID, p.RefundedAmount = billing.PaymentStatusApproved, my("pi_1"), 1000
			})
			must(t, st.InsertPayment(ctx, &p), "InsertPayment")
			read, err := st.GetPayment(ctx, my("pay1"))
			must(t, err, "GetPayment")
			equal(t, read, p, "a partially refunded payment as inserted")
			back := read
			back.Status, back.RefundedAmount, back.ReversalReason = billing.PaymentChargedBack, 1000, "fraudulent"
			back.ReversedAt, back.UpdatedAt = base.Add(1500*time.Microsecond), base
			must(t, st.UpdatePayment(ctx, read, back), "UpdatePayment(charged back)")
			got, err := st.GetPayment(ctx, my("pay1"))
			must(t, err, "GetPayment")
			want := back
			want.ReversedAt, want.Version = base.Add(time.Millisecond), read.Version+1
			equal(t, got, want, "a charged-back payment: status, reason and reversal time (millisecond precision) stored")
			won := got
			won.Status, won.ReversedAt = billing.PaymentStatusApproved, time.Time{}
			must(t, st.UpdatePayment(ctx, got, won), "UpdatePayment(dispute won)")
			after, err := st.GetPayment(ctx, my("pay1"))
			must(t, err, "GetPayment")
			won.Version = got.Version + 1
			equal(t, after, won, "a dispute won clears the reversal time and keeps the reason")
		}},
		{"UpdateToTakenGatewayIDIsConflict", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			a := newPayment(my("a"), base, func(p *billing.Payment) { p.GatewayPaymentID = my("pi_a") })
			b := newPayment(my("b"), base, func(p *billing.Payment) { p.GatewayPaymentID = my("pi_b") })
			must(t, st.InsertPayment(ctx, &a), "InsertPayment")
			must(t, st.InsertPayment(ctx, &b), "InsertPayment")
			rb, err := st.GetPayment(ctx, my("b"))
			must(t, err, "GetPayment")
			taken := rb
			taken.GatewayPaymentID = my("pi_a")
			wantErr(t, st.UpdatePayment(ctx, rb, taken), billing.ErrConflict, "UpdatePayment to another payment's gateway id")
			after, err := st.GetPayment(ctx, my("b"))
			must(t, err, "GetPayment")
			equal(t, after, rb, "payment b after a rejected update")
			found, err := st.FindPaymentByGateway(ctx, billing.GatewayStripe, my("pi_a"))
			must(t, err, "FindPaymentByGateway")
			if found.ID != my("a") {
				t.Fatalf("pi_a now resolves to %s, want a", found.ID)
			}
		}},
		{"CancelStaleBoundaries", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			cutoff := base.Add(-7 * day)
			seed := []billing.Payment{
				newPayment("at-cutoff", cutoff),
				newPayment("older", cutoff.Add(-day)),
				newPayment("just-newer", cutoff.Add(time.Millisecond)),
				newPayment("approved-old", cutoff.Add(-day), func(p *billing.Payment) { p.Status = billing.PaymentStatusApproved }),
				newPayment("failed-old", cutoff.Add(-day), func(p *billing.Payment) { p.Status = billing.PaymentStatusFailed }),
			}
			before := map[string]billing.Payment{}
			for i := range seed {
				must(t, st.InsertPayment(ctx, &seed[i]), "InsertPayment")
				r, err := st.GetPayment(ctx, seed[i].ID)
				must(t, err, "GetPayment")
				before[r.ID] = r
			}
			got, err := st.CancelStalePayments(ctx, cutoff, base, "stale", 100)
			must(t, err, "CancelStalePayments")
			equalIDs(t, ids(got, func(p billing.Payment) string { return p.ID }), []string{"at-cutoff", "older"},
				"CancelStalePayments selects pending payments created at or before the cutoff")
			for _, p := range got {
				if p.Status != billing.PaymentStatusCancelled || p.Reason != "stale" || !p.UpdatedAt.Equal(base) || !p.ProcessedAt.Equal(base) {
					t.Fatalf("returned payment not stamped: %+v", p)
				}
				stored, err := st.GetPayment(ctx, p.ID)
				must(t, err, "GetPayment")
				equal(t, stored, p, "stored payment equals the returned one")
				// A processor still holding the pending copy must not overwrite the cancellation.
				old := before[p.ID]
				approved := old
				approved.Status = billing.PaymentStatusApproved
				wantErr(t, st.UpdatePayment(ctx, old, approved), billing.ErrConflict, "UpdatePayment with the copy read before the cancellation")
			}
			for _, id := range []string{"just-newer", "approved-old", "failed-old"} {
				stored, err := st.GetPayment(ctx, id)
				must(t, err, "GetPayment")
				equal(t, stored, before[id], "payment %s must be untouched", id)
			}
			again, err := st.CancelStalePayments(ctx, cutoff, base, "stale", 100)
			must(t, err, "CancelStalePayments (again)")
			if len(again) != 0 {
				t.Fatalf("a second call cancelled %d payments again", len(again))
			}
		}},
		{"CancelStaleLimit", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			for i := range 5 {
				p := newPayment(fmt.Sprintf("p%d", i), base.Add(-30*day))
				must(t, st.InsertPayment(ctx, &p), "InsertPayment")
			}
			var batches [][]string
			for _, want := range []int{2, 2, 1, 0} {
				got, err := st.CancelStalePayments(ctx, base, base, "stale", 2)
				must(t, err, "CancelStalePayments")
				if len(got) != want {
					t.Fatalf("CancelStalePayments(limit 2) returned %d, want %d", len(got), want)
				}
				batches = append(batches, ids(got, func(p billing.Payment) string { return p.ID }))
			}
			equalIDs(t, disjoint(t, batches...), []string{"p0", "p1", "p2", "p3", "p4"}, "batches cover every stale payment once")
		}},
		{"CancelStaleConcurrentDisjoint", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			var want []string
			for i := range s.opts.StaleRecords {
				p := newPayment(fmt.Sprintf("p%04d", i), base.Add(-8*day-time.Duration(i)*time.Minute))
				must(t, st.InsertPayment(ctx, &p), "InsertPayment")
				want = append(want, p.ID)
			}
			got := make([][]string, s.opts.Goroutines)
			errs := make([]error, s.opts.Goroutines)
			runConcurrently(s.opts.Goroutines, func(i int) {
				for {
					b, err := st.CancelStalePayments(ctx, base.Add(-7*day), base, "stale", s.opts.ClaimBatch)
					if err != nil {
						errs[i] = err
						return
					}
					if len(b) == 0 {
						return
					}
					got[i] = append(got[i], ids(b, func(p billing.Payment) string { return p.ID })...)
				}
			})
			for i, err := range errs {
				must(t, err, "worker %d", i)
			}
			equalIDs(t, disjoint(t, got...), want, "concurrent callers each get disjoint payments, all of them")
		}},
	}
}

func newSession(id string, expires time.Time) billing.Session {
	return billing.Session{ID: id, UserID: "u1", ExpiresAt: expires, CreatedAt: expires.Add(-day)}
}

func sessionIDs(xs []billing.Session) []string {
	return ids(xs, func(s billing.Session) string { return s.ID })
}

func (s *suite) sessionTests() []test {
	return []test{
		{"InsertGet", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			se := newSession(my("se1"), base.Add(day))
			want := se
			must(t, st.InsertSession(ctx, &se), "InsertSession")
			got, err := st.GetSession(ctx, my("se1"))
			must(t, err, "GetSession")
			equal(t, got, want, "GetSession(se1)")
			anon := newSession("", base)
			must(t, st.InsertSession(ctx, &anon), "InsertSession without id")
			if anon.ID == "" {
				t.Fatal("InsertSession left the id empty; it must assign one")
			}
		}},
		{"DuplicateIsConflict", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			se := newSession(my("se1"), base)
			must(t, st.InsertSession(ctx, &se), "InsertSession")
			dup := newSession(my("se1"), base.Add(day))
			wantErr(t, st.InsertSession(ctx, &dup), billing.ErrConflict, "InsertSession(duplicate id)")
		}},
		{"MissingIsNotFound", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			_, err := st.GetSession(ctx, my("nope"))
			wantErr(t, err, billing.ErrNotFound, "GetSession(missing)")
		}},
		{"DeleteExpiredBoundaries", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			cutoff := base.Add(-30 * day)
			seed := []billing.Session{
				newSession("at-cutoff", cutoff),
				newSession("older", cutoff.Add(-day)),
				newSession("just-newer", cutoff.Add(time.Millisecond)),
				newSession("live", base.Add(day)),
			}
			already := newSession("already-deleted", cutoff.Add(-day))
			already.Deleted, already.DeletedAt = true, base.Add(-day)
			seed = append(seed, already)
			for i := range seed {
				must(t, st.InsertSession(ctx, &seed[i]), "InsertSession")
			}
			got, err := st.DeleteExpiredSessions(ctx, cutoff, base, 100)
			must(t, err, "DeleteExpiredSessions")
			equalIDs(t, sessionIDs(got), []string{"at-cutoff", "older"}, "DeleteExpiredSessions selects live sessions expired at or before the cutoff")
			for _, se := range got {
				if !se.Deleted || !se.DeletedAt.Equal(base) {
					t.Fatalf("returned session not stamped deleted at now: %+v", se)
				}
				// Soft-deleted sessions are still returned by GetSession, flagged.
				stored, err := st.GetSession(ctx, se.ID)
				must(t, err, "GetSession(soft-deleted)")
				equal(t, stored, se, "stored session equals the returned one")
			}
			for _, id := range []string{"just-newer", "live"} {
				stored, err := st.GetSession(ctx, id)
				must(t, err, "GetSession")
				if stored.Deleted {
					t.Fatalf("session %s deleted though not expired long enough", id)
				}
			}
			stored, err := st.GetSession(ctx, "already-deleted")
			must(t, err, "GetSession")
			if !stored.DeletedAt.Equal(base.Add(-day)) {
				t.Fatalf("an already deleted session was stamped again: %+v", stored)
			}
			again, err := st.DeleteExpiredSessions(ctx, cutoff, base, 100)
			must(t, err, "DeleteExpiredSessions (again)")
			if len(again) != 0 {
				t.Fatalf("a second call deleted %v again", sessionIDs(again))
			}
		}},
		{"DeleteExpiredLimit", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			for i := range 5 {
				se := newSession(fmt.Sprintf("se%d", i), base.Add(-40*day))
				must(t, st.InsertSession(ctx, &se), "InsertSession")
			}
			var batches [][]string
			for _, want := range []int{2, 2, 1, 0} {
				got, err := st.DeleteExpiredSessions(ctx, base.Add(-30*day), base, 2)
				must(t, err, "DeleteExpiredSessions")
				if len(got) != want {
					t.Fatalf("DeleteExpiredSessions(limit 2) returned %d, want %d", len(got), want)
				}
				batches = append(batches, sessionIDs(got))
			}
			equalIDs(t, disjoint(t, batches...), []string{"se0", "se1", "se2", "se3", "se4"}, "batches cover every expired session once")
		}},
		{"DeleteExpiredConcurrentDisjoint", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			var want []string
			for i := range s.opts.StaleRecords {
				se := newSession(fmt.Sprintf("se%04d", i), base.Add(-31*day-time.Duration(i)*time.Minute))
				must(t, st.InsertSession(ctx, &se), "InsertSession")
				want = append(want, se.ID)
			}
			got := make([][]string, s.opts.Goroutines)
			errs := make([]error, s.opts.Goroutines)
			runConcurrently(s.opts.Goroutines, func(i int) {
				for {
					b, err := st.DeleteExpiredSessions(ctx, base.Add(-30*day), base, s.opts.ClaimBatch)
					if err != nil {
						errs[i] = err
						return
					}
					if len(b) == 0 {
						return
					}
					got[i] = append(got[i], sessionIDs(b)...)
				}
			})
			for i, err := range errs {
				must(t, err, "worker %d", i)
			}
			equalIDs(t, disjoint(t, got...), want, "concurrent callers each get disjoint sessions, all of them")
		}},
	}
}
