package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// previewTests cover the optional billing.CleanupCounter capability (job previews): its
// counts agree with what the cleanup sweeps then change. Stores without it skip these.
func (s *suite) previewTests() []test {
	return []test{{"CleanupCountsAgreeWithSweeps", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
		cc, ok := st.(billing.CleanupCounter)
		if !ok {
			t.Skip("store does not implement billing.CleanupCounter")
		}
		cutoff := base.Add(-30 * day)
		for i, exp := range []time.Duration{-time.Millisecond, 0, time.Millisecond, 10 * day} {
			se := billing.Session{ID: "se" + string(rune('a'+i)), UserID: "u1", ExpiresAt: cutoff.Add(exp), CreatedAt: cutoff.Add(-day)}
			must(t, st.InsertSession(ctx, &se), "InsertSession")
		}
		pcut := base.Add(-7 * day)
		for i, age := range []time.Duration{-time.Millisecond, 0, time.Millisecond} {
			p := newPayment("pp"+string(rune('a'+i)), pcut.Add(age))
			must(t, st.InsertPayment(ctx, &p), "InsertPayment")
		}
		approved := newPayment("pp-approved", pcut.Add(-day), func(p *billing.Payment) { p.Status = billing.PaymentStatusApproved })
		must(t, st.InsertPayment(ctx, &approved), "InsertPayment")

		nSessions, err := cc.CountExpiredSessions(ctx, cutoff)
		must(t, err, "CountExpiredSessions")
		nPayments, err := cc.CountStalePayments(ctx, pcut)
		must(t, err, "CountStalePayments")
		if nSessions != 2 || nPayments != 2 {
			t.Fatalf("counts %d sessions, %d payments; want 2 and 2 (at the cutoff included)", nSessions, nPayments)
		}
		deleted, err := st.DeleteExpiredSessions(ctx, cutoff, base, 100, nil)
		must(t, err, "DeleteExpiredSessions")
		cancelled, err := st.CancelStalePayments(ctx, pcut, base, "stale", 100, nil)
		must(t, err, "CancelStalePayments")
		if len(deleted) != nSessions || len(cancelled) != nPayments {
			t.Fatalf("sweeps changed %d sessions and %d payments; the counts said %d and %d", len(deleted), len(cancelled), nSessions, nPayments)
		}
		if n, _ := cc.CountExpiredSessions(ctx, cutoff); n != 0 {
			t.Fatalf("%d expired sessions counted after the sweep, want 0", n)
		}
	}}}
}

// auditCountTests cover the optional billing.AuditCounter: its counts equal ListAudit's.
func (s *suite) auditCountTests() []test {
	return []test{{"CountAuditAgreesWithList", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
		ac, ok := st.(billing.AuditCounter)
		if !ok {
			t.Skip("store does not implement billing.AuditCounter")
		}
		for i := range 6 {
			action := "a.one"
			if i%3 == 0 {
				action = "a.two"
			}
			e := billing.AuditEntry{Action: action, EntityType: "x", EntityID: "e", Actor: "t", CreatedAt: base.Add(time.Duration(i) * time.Hour)}
			must(t, st.InsertAudit(ctx, &e), "InsertAudit")
		}
		for _, f := range []billing.AuditFilter{{}, {Action: "a.one"}, {Action: "a.two", Since: base.Add(time.Hour)}, {Since: base.Add(5 * time.Hour)}, {Action: "none"}} {
			listed, err := st.ListAudit(ctx, f)
			must(t, err, "ListAudit")
			n, err := ac.CountAudit(ctx, f)
			must(t, err, "CountAudit")
			if n != len(listed) {
				t.Fatalf("CountAudit(%+v) = %d, ListAudit has %d", f, n, len(listed))
			}
		}
		if n, _ := ac.CountAudit(ctx, billing.AuditFilter{Limit: 1}); n != 6 {
			t.Fatalf("CountAudit ignores Limit: got %d, want 6", n)
		}
	}}}
}
