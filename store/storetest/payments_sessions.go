package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
			got, err := st.CancelStalePayments(ctx, base, base, "stale", 10, nil)
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
			back.Status, back.RefundedAmount, back.ReversalReason = billing.PaymentStatusChargedBack, 1000, "fraudulent"
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
			got, err := st.CancelStalePayments(ctx, cutoff, base, "stale", 100, nil)
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
			again, err := st.CancelStalePayments(ctx, cutoff, base, "stale", 100, nil)
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
				got, err := st.CancelStalePayments(ctx, base, base, "stale", 2, nil)
				must(t, err, "CancelStalePayments")
				if len(got) != want {
					t.Fatalf("CancelStalePayments(limit 2) returned %d, want %d", len(got), want)
				}
				batches = append(batches, ids(got, func(p billing.Payment) string { return p.ID }))
			}
			equalIDs(t, disjoint(t, batches...), []string{"p0", "p1", "p2", "p3", "p4"}, "batches cover every stale payment once")
		}},
		// Proves: the cancellation and the effects recorded with it are one write (what follows
		// a cancellation survives a crash), and a payment whose own effects are not finished
		// is not cancelled over them (they would be lost).
		{"CancelStaleRecordsEffects", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			for _, id := range []string{"p-a", "p-b", "p-held"} {
				p := newPayment(id, base.Add(-30*day))
				if id == "p-held" {
					p.Pending = paymentEffects("held", p)
				}
				must(t, st.InsertPayment(ctx, &p), "InsertPayment(%s)", id)
			}
			held := getPayment(ctx, t, st, "p-held")
			eff := sampleEffects("cancel-run", billing.Subscription{ID: "any", UserID: "u1"})
			got, err := st.CancelStalePayments(ctx, base, base, "stale", 10, eff)
			must(t, err, "CancelStalePayments(with effects)")
			equalIDs(t, ids(got, func(p billing.Payment) string { return p.ID }), []string{"p-a", "p-b"},
				"CancelStalePayments passes over a payment with unfinished effects")
			want := *sampleEffects("cancel-run", billing.Subscription{ID: "any", UserID: "u1"})
			eff.Audit[0].Details["note"], eff.Notifications[0].Key = "changed after the call", "changed" // the store keeps its own copy
			for _, p := range got {
				if p.Status != billing.PaymentStatusCancelled || p.Pending == nil {
					t.Fatalf("returned payment %+v, want cancelled with the effects", p)
				}
				equal(t, *p.Pending, want, "the effects returned with cancelled payment %s", p.ID)
				stored := getPayment(ctx, t, st, p.ID)
				equal(t, stored, p, "stored payment %s equals the returned one", p.ID)
			}
			equal(t, getPayment(ctx, t, st, "p-held"), held, "the payment with unfinished effects is untouched")
			withEffects, err := st.ListPaymentsWithEffects(ctx, 10)
			must(t, err, "ListPaymentsWithEffects")
			equalIDs(t, ids(withEffects, func(p billing.Payment) string { return p.ID }), []string{"p-a", "p-b", "p-held"},
				"payments carrying effects after the cancellation")
			must(t, st.CompletePaymentEffects(ctx, "p-a", "cancel-run"), "CompletePaymentEffects(p-a)")
			if p := getPayment(ctx, t, st, "p-a"); p.Pending != nil || p.Status != billing.PaymentStatusCancelled {
				t.Fatalf("p-a after its effects are done: %+v, want cancelled without effects", p)
			}
			// Once its own effects are done, the held payment is cancelled like the others.
			must(t, st.CompletePaymentEffects(ctx, "p-held", "held"), "CompletePaymentEffects(p-held)")
			got, err = st.CancelStalePayments(ctx, base, base, "stale", 10, nil)
			must(t, err, "CancelStalePayments(after p-held's effects)")
			equalIDs(t, ids(got, func(p billing.Payment) string { return p.ID }), []string{"p-held"}, "the second cancellation")
			if got[0].Pending != nil {
				t.Fatalf("cancelled without effects, returned with %+v", got[0].Pending)
			}
		}},
		{"CancelStaleLeavesAnUnreadablePaymentAndReportsIt", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			// An unreadable record is reported and left unchanged, and it loses nothing
			// else: a stale payment the store cannot decode is not cancelled (it would go
			// unaudited, as the caller audits the payments it is given back); it is reported
			// as a *billing.RecordError next to the readable ones, which are cancelled and
			// returned, and it does not take one of the limit's places.
			if s.opts.CorruptPayment == nil {
				t.Skip("Options.CorruptPayment is nil: this store cannot be given an unreadable payment")
			}
			for i, id := range []string{"a", "bad", "c", "d"} {
				p := newPayment(id, base.Add(-30*day+time.Duration(i)*time.Minute)) // oldest first: a, bad, c, d
				must(t, st.InsertPayment(ctx, &p), "InsertPayment(%s)", id)
			}
			must(t, s.opts.CorruptPayment(ctx, st, "bad"), "CorruptPayment(bad)")
			unreadable := func(err error, what string) {
				t.Helper()
				var re *billing.RecordError
				if !errors.As(err, &re) || !errors.Is(err, billing.ErrMalformedRecord) || re.ID != "bad" {
					t.Fatalf("%s: error %v; want a *billing.RecordError wrapping ErrMalformedRecord with ID \"bad\"", what, err)
				}
			}
			cancelled := func(got []billing.Payment, want []string, what string) {
				t.Helper()
				equalIDs(t, ids(got, func(p billing.Payment) string { return p.ID }), want, "%s", what)
				for _, p := range got {
					if p.Status != billing.PaymentStatusCancelled || p.Reason != "stale" || !p.UpdatedAt.Equal(base) {
						t.Fatalf("%s: returned payment not cancelled: %+v", what, p)
					}
					equal(t, getPayment(ctx, t, st, p.ID), p, "stored payment %s equals the returned one", p.ID)
				}
			}
			got, err := st.CancelStalePayments(ctx, base, base, "stale", 2, nil)
			unreadable(err, "first call")
			cancelled(got, []string{"a", "c"}, "first call (limit 2) cancels the two oldest readable payments")
			got, err = st.CancelStalePayments(ctx, base, base, "stale", 2, nil)
			unreadable(err, "second call")
			cancelled(got, []string{"d"}, "second call cancels the last readable payment")
			// Still pending: a later call meets it again, and cancels nothing else.
			got, err = st.CancelStalePayments(ctx, base, base, "stale", 0, nil)
			unreadable(err, "third call")
			if len(got) != 0 {
				t.Fatalf("third call returned %v; want nothing but the unreadable payment's error", ids(got, func(p billing.Payment) string { return p.ID }))
			}
		}},
		// Concurrent callers each get disjoint payments, all of them.
		{"CancelStaleConcurrentDisjoint", ownStore, s.cancelStaleConcurrently(-1)},
		// A failure mid-work loses nothing: concurrent callers meeting an unreadable payment
		// still cancel every readable one, each returned by exactly one caller, and none of
		// them cancels the unreadable one.
		{"CancelStaleConcurrentPassesOverAnUnreadablePayment", ownStore, s.cancelStaleConcurrently(s.opts.StaleRecords / 2)},
		// A payment's transition records its effects in the same write, never over
		// unfinished ones; only the token that recorded them clears them. Proves: what a
		// transition leaves to do is stored with it, and is neither lost nor replaced.
		{"EffectsWrittenWithTheChange", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			p := newPayment(my("pay1"), base.Add(-day))
			must(t, st.InsertPayment(ctx, &p), "InsertPayment")
			read, err := st.GetPayment(ctx, my("pay1"))
			must(t, err, "GetPayment")
			failed := read
			failed.Status, failed.Reason, failed.ProcessedAt, failed.UpdatedAt = billing.PaymentStatusFailed, "card declined", base, base
			failed.Pending = paymentEffects("fail-1", read)
			must(t, st.UpdatePayment(ctx, read, failed), "UpdatePayment(failed, with effects)")
			want := failed
			want.Version = read.Version + 1
			stored := getPayment(ctx, t, st, my("pay1"))
			equal(t, stored, want, "the failed payment with its effects, as written")

			// A change recording other effects over unfinished ones writes nothing.
			cancelled := stored
			cancelled.Status, cancelled.Reason = billing.PaymentStatusCancelled, "cancelled"
			cancelled.Pending = paymentEffects("cancel-1", stored)
			wantErr(t, st.UpdatePayment(ctx, stored, cancelled), billing.ErrConflict, "UpdatePayment(new effects over pending ones)")
			equal(t, getPayment(ctx, t, st, my("pay1")), want, "a change refused for pending effects changed nothing")

			// A change that carries the stored effects (or none) writes its fields and keeps them.
			touched := stored
			touched.UpdatedAt = base.Add(time.Minute)
			must(t, st.UpdatePayment(ctx, stored, touched), "UpdatePayment(the effects as read)")
			stored = getPayment(ctx, t, st, my("pay1"))
			stored.Pending = nil
			touched = stored
			touched.UpdatedAt = base.Add(2 * time.Minute)
			must(t, st.UpdatePayment(ctx, stored, touched), "UpdatePayment(no effects)")
			want.UpdatedAt, want.Version = touched.UpdatedAt, want.Version+2
			equal(t, getPayment(ctx, t, st, my("pay1")), want, "changes without new effects keep the stored ones")

			// Only the recording token clears them, and clearing writes nothing else.
			must(t, st.CompletePaymentEffects(ctx, my("pay1"), "another-token"), "CompletePaymentEffects(another token)")
			equal(t, getPayment(ctx, t, st, my("pay1")), want, "effects cleared by another token are kept")
			must(t, st.CompletePaymentEffects(ctx, my("pay1"), "fail-1"), "CompletePaymentEffects")
			want.Pending = nil
			done := getPayment(ctx, t, st, my("pay1"))
			equal(t, done, want, "the payment once its effects are done")
			must(t, st.CompletePaymentEffects(ctx, my("pay1"), "fail-1"), "CompletePaymentEffects(again)")
			must(t, st.CompletePaymentEffects(ctx, my("missing"), "fail-1"), "CompletePaymentEffects(missing payment)")

			// Once they are done, the next transition records its own.
			cancelled = done
			cancelled.Status, cancelled.Reason = billing.PaymentStatusCancelled, "cancelled"
			cancelled.Pending = paymentEffects("cancel-1", done)
			must(t, st.UpdatePayment(ctx, done, cancelled), "UpdatePayment(cancelled, with effects)")
			cancelled.Version = done.Version + 1
			equal(t, getPayment(ctx, t, st, my("pay1")), cancelled, "the cancelled payment with its effects")
		}},
		// Proves: the payments a crashed process left with pending effects are found (live
		// ones only, in id order, up to the limit), and are no longer once they are done.
		{"ListWithEffects", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			gone := newPayment("p0-gone", base, func(p *billing.Payment) { p.Deleted = true })
			gone.Pending = paymentEffects("gone", gone)
			must(t, st.InsertPayment(ctx, &gone), "InsertPayment(soft-deleted, with effects)")
			for _, id := range []string{"p3", "p1", "p2", "p4-none"} {
				p := newPayment(id, base)
				must(t, st.InsertPayment(ctx, &p), "InsertPayment(%s)", id)
				if id == "p4-none" {
					continue
				}
				failed := p
				failed.Status, failed.Pending = billing.PaymentStatusFailed, paymentEffects("t-"+id, p)
				must(t, st.UpdatePayment(ctx, p, failed), "UpdatePayment(%s)", id)
			}
			list := func(limit int) []string {
				got, err := st.ListPaymentsWithEffects(ctx, limit)
				must(t, err, "ListPaymentsWithEffects(%d)", limit)
				for _, p := range got {
					if p.Pending == nil || p.Pending.Token != "t-"+p.ID {
						t.Fatalf("ListPaymentsWithEffects returned %s with effects %+v, want its own", p.ID, p.Pending)
					}
				}
				return ids(got, func(p billing.Payment) string { return p.ID })
			}
			if got := list(10); !slices.Equal(got, []string{"p1", "p2", "p3"}) {
				t.Fatalf("ListPaymentsWithEffects(10) = %v, want [p1 p2 p3]", got)
			}
			if got := list(2); !slices.Equal(got, []string{"p1", "p2"}) {
				t.Fatalf("ListPaymentsWithEffects(2) = %v, want [p1 p2]", got)
			}
			must(t, st.CompletePaymentEffects(ctx, "p1", "t-p1"), "CompletePaymentEffects(p1)")
			if got := list(10); !slices.Equal(got, []string{"p2", "p3"}) {
				t.Fatalf("ListPaymentsWithEffects after p1's are done = %v, want [p2 p3]", got)
			}
		}},
		// Concurrent transitions of one payment from the same read each record their own
		// effects. Proves: exactly one lands, with its effects; the others write nothing.
		{"ConcurrentTransitionsOneEffects", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			p := newPayment(my("pay1"), base)
			must(t, st.InsertPayment(ctx, &p), "InsertPayment")
			read := getPayment(ctx, t, st, my("pay1"))
			errs := make([]error, s.opts.Goroutines)
			runConcurrently(s.opts.Goroutines, func(i int) {
				next := read
				next.Status, next.Reason = billing.PaymentStatusFailed, fmt.Sprint("writer ", i)
				next.Pending = paymentEffects(fmt.Sprint("w", i), read)
				errs[i] = st.UpdatePayment(ctx, read, next)
			})
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner < 0:
					winner = i
				case err == nil:
					t.Fatalf("writers %d and %d both changed the payment from the same read", winner, i)
				default:
					wantErr(t, err, billing.ErrConflict, "writer %d", i)
				}
			}
			if winner < 0 {
				t.Fatal("no writer changed the payment")
			}
			got := getPayment(ctx, t, st, my("pay1"))
			if got.Reason != fmt.Sprint("writer ", winner) || got.Pending == nil || got.Pending.Token != fmt.Sprint("w", winner) {
				t.Fatalf("payment %+v, want writer %d's change with its effects", got, winner)
			}
		}},
	}
}

// paymentEffects returns effects using every field (see sampleEffects) for payment p.
func paymentEffects(token string, p billing.Payment) *billing.Effects {
	return sampleEffects(token, billing.Subscription{ID: p.ID, UserID: p.UserID, PlanID: p.PlanID, Gateway: p.Gateway})
}

func getPayment(ctx context.Context, t *testing.T, st billing.Store, id string) billing.Payment {
	t.Helper()
	p, err := st.GetPayment(ctx, id)
	must(t, err, "GetPayment(%s)", id)
	return p
}

func newSession(id string, expires time.Time) billing.Session {
	return billing.Session{ID: id, UserID: "u1", ExpiresAt: expires, CreatedAt: expires.Add(-day)}
}

func sessionIDs(xs []billing.Session) []string {
	return ids(xs, func(s billing.Session) string { return s.ID })
}

// cancelStaleConcurrently returns the test of s.opts.Goroutines callers cancelling
// s.opts.StaleRecords stale payments at once, in batches of s.opts.ClaimBatch: each payment
// is returned by exactly one caller. With bad ≥ 0 the bad-th payment is made unreadable
// (Options.CorruptPayment): every call may report it, none cancels it, and a call after the
// others still reports it and returns nothing.
func (s *suite) cancelStaleConcurrently(bad int) func(ctx context.Context, t *testing.T, st billing.Store) {
	return func(ctx context.Context, t *testing.T, st billing.Store) {
		if bad >= 0 && s.opts.CorruptPayment == nil {
			t.Skip("Options.CorruptPayment is nil: this store cannot be given an unreadable payment")
		}
		badID := fmt.Sprintf("p%04d", bad)
		var want []string
		for i := range s.opts.StaleRecords {
			p := newPayment(fmt.Sprintf("p%04d", i), base.Add(-8*day-time.Duration(i)*time.Minute))
			must(t, st.InsertPayment(ctx, &p), "InsertPayment")
			if i == bad {
				must(t, s.opts.CorruptPayment(ctx, st, p.ID), "CorruptPayment(%s)", p.ID)
				continue
			}
			want = append(want, p.ID)
		}
		onlyBad := func(err error) bool {
			var re *billing.RecordError
			return err == nil || bad >= 0 && errors.As(err, &re) && re.ID == badID && errors.Is(err, billing.ErrMalformedRecord)
		}
		got := make([][]string, s.opts.Goroutines)
		errs := make([]error, s.opts.Goroutines)
		runConcurrently(s.opts.Goroutines, func(i int) {
			for {
				b, err := st.CancelStalePayments(ctx, base.Add(-7*day), base, "stale", s.opts.ClaimBatch, nil)
				if !onlyBad(err) {
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
		equalIDs(t, disjoint(t, got...), want, "concurrent callers each get disjoint readable payments, all of them")
		if bad < 0 {
			return
		}
		b, err := st.CancelStalePayments(ctx, base.Add(-7*day), base, "stale", 0, nil)
		if len(b) != 0 || err == nil || !onlyBad(err) {
			t.Fatalf("after the workers: %d payments, error %v; want none and the unreadable %s reported, still pending", len(b), err, badID)
		}
	}
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
			got, err := st.DeleteExpiredSessions(ctx, cutoff, base, 100, nil)
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
			again, err := st.DeleteExpiredSessions(ctx, cutoff, base, 100, nil)
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
				got, err := st.DeleteExpiredSessions(ctx, base.Add(-30*day), base, 2, nil)
				must(t, err, "DeleteExpiredSessions")
				if len(got) != want {
					t.Fatalf("DeleteExpiredSessions(limit 2) returned %d, want %d", len(got), want)
				}
				batches = append(batches, sessionIDs(got))
			}
			equalIDs(t, disjoint(t, batches...), []string{"se0", "se1", "se2", "se3", "se4"}, "batches cover every expired session once")
		}},
		// Proves: the soft delete and the effects recorded with it are one write (what follows
		// a delete survives a crash), the sessions left with effects are found again batch by
		// batch, whole, and a session whose effects are not finished is not deleted over them
		// (they would be lost).
		{"DeleteExpiredRecordsEffects", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			cutoff := base.Add(-30 * day)
			for i, id := range []string{"se-a", "se-b", "se-c", "se-held"} {
				se := newSession(id, cutoff.Add(-time.Duration(10-i)*time.Hour))
				if id == "se-held" { // live, expired, carrying effects a crashed run left (the host undeleted it)
					se.Pending = sampleEffects("held", billing.Subscription{ID: "any", UserID: "u1"})
				}
				must(t, st.InsertSession(ctx, &se), "InsertSession(%s)", id)
			}
			live := newSession("se-live", base.Add(day))
			must(t, st.InsertSession(ctx, &live), "InsertSession(se-live)")
			held, err := st.GetSession(ctx, "se-held")
			must(t, err, "GetSession(se-held)")
			if held.Pending == nil || held.Deleted {
				t.Fatalf("inserted session %+v, want live with its effects", held)
			}
			eff := sampleEffects("run1", billing.Subscription{ID: "any", UserID: "u1"})
			got, err := st.DeleteExpiredSessions(ctx, cutoff, base, 2, eff)
			must(t, err, "DeleteExpiredSessions(with effects)")
			equalIDs(t, sessionIDs(got), []string{"se-a", "se-b"}, "DeleteExpiredSessions(limit 2) deletes the two that expired first")
			want := *sampleEffects("run1", billing.Subscription{ID: "any", UserID: "u1"})
			eff.Audit[0].Details["note"], eff.Notifications[0].Key = "changed after the call", "changed" // the store keeps its own copy
			for _, se := range got {
				if !se.Deleted || !se.DeletedAt.Equal(base) || se.Pending == nil {
					t.Fatalf("returned session %+v, want deleted at now with the effects", se)
				}
				equal(t, *se.Pending, want, "the effects returned with deleted session %s", se.ID)
				stored, err := st.GetSession(ctx, se.ID)
				must(t, err, "GetSession(%s)", se.ID)
				equal(t, stored, se, "stored session %s equals the returned one", se.ID)
			}
			got, err = st.DeleteExpiredSessions(ctx, cutoff, base, 10, sampleEffects("run2", billing.Subscription{ID: "any", UserID: "u1"}))
			must(t, err, "DeleteExpiredSessions(second batch)")
			equalIDs(t, sessionIDs(got), []string{"se-c"}, "DeleteExpiredSessions passes over a session with unfinished effects")
			stored, err := st.GetSession(ctx, "se-held")
			must(t, err, "GetSession(se-held)")
			equal(t, stored, held, "the session with unfinished effects is untouched")

			list := func(limit int, want ...string) {
				t.Helper()
				left, err := st.ListSessionsWithEffects(ctx, limit)
				must(t, err, "ListSessionsWithEffects(%d)", limit)
				order := make([]string, len(left))
				for i, se := range left {
					if se.Pending == nil {
						t.Fatalf("listed session %+v carries no effects", se)
					}
					order[i] = se.ID
				}
				equal(t, order, want, "ListSessionsWithEffects(%d): whole batches in (token, id) order", limit)
			}
			list(10, "se-held", "se-a", "se-b", "se-c") // tokens held < run1 < run2
			list(1, "se-held")
			list(2, "se-held", "se-a", "se-b") // run1's two sessions, though past the limit
			must(t, st.CompleteSessionEffects(ctx, "run1"), "CompleteSessionEffects(run1)")
			for _, id := range []string{"se-a", "se-b"} {
				se, err := st.GetSession(ctx, id)
				must(t, err, "GetSession(%s)", id)
				if se.Pending != nil || !se.Deleted {
					t.Fatalf("%s after its effects are done: %+v, want deleted without effects", id, se)
				}
			}
			must(t, st.CompleteSessionEffects(ctx, "no-such-token"), "CompleteSessionEffects(unknown token)")
			list(10, "se-held", "se-c")
			// Once its own effects are done, the held session is deleted like the others.
			must(t, st.CompleteSessionEffects(ctx, "held"), "CompleteSessionEffects(held)")
			got, err = st.DeleteExpiredSessions(ctx, cutoff, base, 10, nil)
			must(t, err, "DeleteExpiredSessions(after se-held's effects)")
			equalIDs(t, sessionIDs(got), []string{"se-held"}, "the third delete")
			if got[0].Pending != nil {
				t.Fatalf("deleted without effects, returned with %+v", got[0].Pending)
			}
			list(10, "se-c")
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
					b, err := st.DeleteExpiredSessions(ctx, base.Add(-30*day), base, s.opts.ClaimBatch, nil)
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
