package mercadopagogw

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

// delivery is one notification as Mercado Pago sends it.
type delivery struct {
	typ, dataID string
	body        []byte
}

// phase is a moment of the lifecycle: the API's state then, and the notifications Mercado
// Pago sends about it.
type phase struct {
	name  string
	now   time.Time
	api   func(mp *fakeMP)
	notes []delivery
	// wantSub is the subscription's snapshot after the phase; wantUser, when set, the user's.
	wantSub, wantUser string
}

// check compares s, the snapshot after ph, with what ph expects.
func (ph phase) check(t *testing.T, s snapshot) {
	t.Helper()
	if s.Sub != ph.wantSub {
		t.Errorf("sub %q, want %q", s.Sub, ph.wantSub)
	}
	if ph.wantUser != "" && s.User != ph.wantUser {
		t.Errorf("user %q, want %q", s.User, ph.wantUser)
	}
}

const (
	p1, p2, p3, p4 = 1398765001, 1398765002, 1398765003, 1398765004
)

func at(m time.Month, d, h, min, s int) time.Time {
	return time.Date(2026, m, d, h, min, s, 0, time.UTC)
}

func payNote(t *testing.T, notifID int64, action string, id int64) delivery {
	ds := fmt.Sprint(id)
	return delivery{TypePayment, ds, notif(t, notifID, TypePayment, action, ds)}
}

func preNote(t *testing.T, notifID int64, action string) delivery {
	return delivery{TypePreapproval, preID, notif(t, notifID, TypePreapproval, action, preID)}
}

// lifecycle is the seed's automatic Mercado Pago renewal: the preapproval is authorized and
// charged, renewed a month later, a charge is rejected and the retry recovers it, then the
// subscriber cancels.
func lifecycle(t *testing.T) []phase {
	return []phase{
		{name: "authorized and first charge", now: at(1, 15, 13, 6, 0),
			api: func(mp *fakeMP) {
				mp.putPreapproval(preapprovalFrom(t, preOpts{status: "authorized", charged: 1, next: at(2, 15, 13, 0, 0),
					lastCharged: at(1, 15, 13, 5, 2), lastModified: at(1, 15, 13, 5, 3)}))
				mp.putPayment(p1, chargePayment(t, "approved", "accredited", "2026-01-15", at(1, 15, 13, 5, 2)))
			},
			notes:    []delivery{preNote(t, 101, "created"), payNote(t, 102, "payment.created", p1), preNote(t, 103, "updated")},
			wantSub:  "active 2026-01-15T00:00:00Z..2026-02-15T00:00:00Z",
			wantUser: "premium active 2026-02-15T00:00:00Z"},
		{name: "renewal charge", now: at(2, 15, 13, 10, 0),
			api: func(mp *fakeMP) {
				mp.putPreapproval(preapprovalFrom(t, preOpts{status: "authorized", charged: 2, next: at(3, 15, 13, 0, 0),
					lastCharged: at(2, 15, 13, 5, 2), lastModified: at(2, 15, 13, 5, 3)}))
				mp.putPayment(p2, chargePayment(t, "approved", "accredited", "2026-02-15", at(2, 15, 13, 5, 2)))
			},
			notes:   []delivery{payNote(t, 201, "payment.created", p2), preNote(t, 202, "updated")},
			wantSub: "active 2026-02-15T00:00:00Z..2026-03-15T00:00:00Z"},
		{name: "rejected charge", now: at(3, 15, 13, 10, 0),
			api: func(mp *fakeMP) {
				mp.putPreapproval(preapprovalFrom(t, preOpts{status: "authorized", charged: 2, pending: 1, next: at(3, 15, 13, 0, 0),
					lastCharged: at(2, 15, 13, 5, 2), lastModified: at(3, 15, 13, 5, 3)}))
				mp.putPayment(p3, chargePayment(t, "rejected", "cc_rejected_insufficient_amount", "2026-03-15", at(3, 15, 13, 5, 2)))
			},
			notes:   []delivery{payNote(t, 301, "payment.created", p3), preNote(t, 302, "updated")},
			wantSub: "past_due 2026-02-15T00:00:00Z..2026-03-15T00:00:00Z"},
		{name: "retry recovers", now: at(3, 17, 13, 10, 0),
			api: func(mp *fakeMP) {
				mp.putPreapproval(preapprovalFrom(t, preOpts{status: "authorized", charged: 3, next: at(4, 15, 13, 0, 0),
					lastCharged: at(3, 17, 13, 5, 2), lastModified: at(3, 17, 13, 5, 3)}))
				mp.putPayment(p4, chargePayment(t, "approved", "accredited", "2026-03-15", at(3, 17, 13, 5, 2)))
			},
			notes:   []delivery{payNote(t, 401, "payment.created", p4), payNote(t, 402, "payment.updated", p4), preNote(t, 403, "updated")},
			wantSub: "active 2026-03-15T00:00:00Z..2026-04-15T00:00:00Z"},
		{name: "cancelled", now: at(3, 20, 13, 10, 0),
			api: func(mp *fakeMP) {
				mp.putPreapproval(preapprovalFrom(t, preOpts{status: "cancelled", charged: 3, next: at(4, 15, 13, 0, 0),
					lastCharged: at(3, 17, 13, 5, 2), lastModified: at(3, 20, 13, 5, 0)}))
			},
			// 404 is a new notification about the recovered charge, applied already: it must
			// neither extend nor revive the subscription.
			notes:    []delivery{preNote(t, 501, "updated"), payNote(t, 404, "payment.updated", p4)},
			wantSub:  "cancelled 2026-03-15T00:00:00Z..2026-04-15T00:00:00Z",
			wantUser: " cancelled 2026-04-15T00:00:00Z"}, // no plan: no access
	}
}

// snapshot is the state a lifecycle leaves, with renewkit's random ids replaced by Mercado
// Pago's.
type snapshot struct {
	Sub      string
	Applied  []string
	Payments []string
	User     string
	Mails    []string
}

// deliverPhase moves the clock and the fake API to phase ph and delivers its notifications
// once each, in order; every one must be answered 200.
func (e *env) deliverPhase(ph phase) {
	e.t.Helper()
	e.clock.Set(ph.now)
	ph.api(e.mp)
	for _, d := range ph.notes {
		if w := e.deliver(d.typ, d.dataID, d.body); w.Code != http.StatusOK {
			e.t.Fatalf("in order %s: %s %s: status %d %s", ph.name, d.typ, d.dataID, w.Code, w.Body)
		}
	}
}

func (e *env) snapshot() snapshot {
	e.t.Helper()
	return snapshotOf(e.t, e.st, e.mails())
}

// snapshotOf is the snapshot of st, with mails the notifications sent.
func snapshotOf(t *testing.T, st billing.Store, mails []billing.Notification) snapshot {
	t.Helper()
	ctx := context.Background()
	var s snapshot
	gw := map[string]string{}
	for _, id := range []int64{p1, p2, p3, p4} {
		p, err := st.FindPaymentByGateway(ctx, billing.GatewayMercadoPago, fmt.Sprint(id))
		if err != nil {
			continue
		}
		gw[p.ID] = p.GatewayPaymentID
		s.Payments = append(s.Payments, fmt.Sprintf("%s %s %q %d %s", p.GatewayPaymentID, p.Status, p.Reason, p.Amount.Amount, p.Amount.Currency))
	}
	if sub, err := st.FindSubscriptionByGateway(ctx, billing.GatewayMercadoPago, preID); err == nil {
		s.Sub = fmt.Sprintf("%s %s..%s", sub.Status, sub.CurrentPeriodStart.Format(time.RFC3339), sub.CurrentPeriodEnd.Format(time.RFC3339))
		for _, id := range sub.AppliedPayments {
			s.Applied = append(s.Applied, gw[id])
		}
	}
	u, err := st.GetUser(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	s.User = fmt.Sprintf("%s %s %s", u.PlanID, u.Status, u.AccessUntil.Format(time.RFC3339))
	for _, n := range mails {
		s.Mails = append(s.Mails, fmt.Sprintf("%s %s %s %d %q", n.Kind, gw[n.Data.PaymentID], n.Data.PeriodEnd.Format(time.RFC3339), n.Data.Amount.Amount, n.Data.Reason))
	}
	slices.Sort(s.Mails)
	return s
}

// deliverUntilAccepted delivers d as Mercado Pago does: answers 409, 500 and 503 are retried.
func (e *env) deliverUntilAccepted(d delivery) error {
	for range 5000 {
		w := e.deliver(d.typ, d.dataID, d.body)
		switch w.Code {
		case http.StatusOK:
			return nil
		case http.StatusConflict, http.StatusServiceUnavailable, http.StatusInternalServerError:
			time.Sleep(200 * time.Microsecond)
		default:
			return fmt.Errorf("notification %s %s: status %d: %s", d.typ, d.dataID, w.Code, w.Body)
		}
	}
	return fmt.Errorf("notification %s %s never accepted", d.typ, d.dataID)
}

// TestLifecycle delivers the lifecycle twice. Once in order, each notification once,
// checking the state after each phase. Then on a fresh store, each notification five
// times, shuffled and concurrently, with the API in the same state (Mercado Pago answers its
// current state, so a notification is only ever read against the state of its own moment or
// a later one), and at the end everything again, five times, shuffled. Both runs must end in
// the same subscription, payments, access and emails.
func TestLifecycle(t *testing.T) {
	phases := lifecycle(t)
	inOrder := newEnv(t)
	for _, ph := range phases {
		inOrder.deliverPhase(ph)
		t.Run("in order/"+ph.name, func(t *testing.T) { ph.check(t, inOrder.snapshot()) })
	}
	want := inOrder.snapshot()
	wantMails := []string{
		`expired  2026-04-15T00:00:00Z 0 ""`,
		`payment_failed 1398765003 0001-01-01T00:00:00Z 4990 "rejected: cc_rejected_insufficient_amount"`,
		`payment_successful 1398765001 2026-02-15T00:00:00Z 4990 ""`,
		`payment_successful 1398765002 2026-03-15T00:00:00Z 4990 ""`,
		`payment_successful 1398765004 2026-04-15T00:00:00Z 4990 ""`,
		`welcome 1398765001 2026-02-15T00:00:00Z 4990 ""`,
	}
	if !slices.Equal(want.Mails, wantMails) {
		t.Errorf("in-order emails:\n%q\nwant\n%q", want.Mails, wantMails)
	}
	wantPayments := []string{`1398765001 approved "" 4990 BRL`, `1398765002 approved "" 4990 BRL`,
		`1398765003 failed "rejected: cc_rejected_insufficient_amount" 4990 BRL`, `1398765004 approved "" 4990 BRL`}
	if !slices.Equal(want.Payments, wantPayments) || !slices.Equal(want.Applied, []string{"1398765001", "1398765002", "1398765004"}) {
		t.Errorf("in-order payments %q applied %q", want.Payments, want.Applied)
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("shuffle seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	shuffled := newEnv(t)
	var all []delivery
	run := func(notes []delivery) {
		batch := testkit.Shuffled(rng, notes, 5)
		var wg sync.WaitGroup
		for _, d := range batch {
			wg.Go(func() {
				if err := shuffled.deliverUntilAccepted(d); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	for _, ph := range phases {
		shuffled.clock.Set(ph.now)
		ph.api(shuffled.mp)
		run(ph.notes)
		all = append(all, ph.notes...)
		t.Run("shuffled/"+ph.name, func(t *testing.T) { ph.check(t, shuffled.snapshot()) })
	}
	// Redeliveries signed afresh are new inbox keys (the key is built from the signed
	// x-request-id and ts): they are read from the API again and must change nothing.
	run(all)
	got := shuffled.snapshot()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("shuffled, concurrent, five times each:\n%+v\nin order, once:\n%+v", got, want)
	}
}

// TestChargeOfCancelledPreapprovalRecordedWithoutReviving proves a charge whose
// notification first reaches renewkit after Mercado Pago reports the preapproval cancelled
// is recorded (approved, its period kept, its payment email sent) but does not revive the
// ended subscription nor give access back; its redelivery changes nothing.
func TestChargeOfCancelledPreapprovalRecordedWithoutReviving(t *testing.T) {
	e := newEnv(t)
	phases := lifecycle(t)
	phases[1].api(e.mp)                   // the renewal charge exists at the API; its notification is late
	phases[4].notes = phases[4].notes[:1] // the cancellation
	for _, ph := range []phase{phases[0], phases[4]} {
		e.clock.Set(ph.now)
		ph.api(e.mp)
		for _, d := range ph.notes {
			if w := e.deliver(d.typ, d.dataID, d.body); w.Code != http.StatusOK {
				t.Fatalf("%s: %d %s", ph.name, w.Code, w.Body)
			}
		}
	}
	before := e.snapshot()
	if before.Sub != "cancelled 2026-01-15T00:00:00Z..2026-02-15T00:00:00Z" {
		t.Fatalf("before: %+v", before)
	}
	for _, id := range []int64{999, 1000} {
		w := e.deliver(TypePayment, fmt.Sprint(p2), notif(t, id, TypePayment, "payment.created", fmt.Sprint(p2)))
		if w.Code != http.StatusOK || w.Header().Get("X-Webhook-Outcome") != string(billing.EventOutcomeProcessed) {
			t.Fatalf("notification %d: status %d outcome %q", id, w.Code, w.Header().Get("X-Webhook-Outcome"))
		}
	}
	after := e.snapshot()
	if after.Sub != "cancelled 2026-02-15T00:00:00Z..2026-03-15T00:00:00Z" || after.User != before.User {
		t.Errorf("sub %q user %q, want cancelled through the charged period and user %q", after.Sub, after.User, before.User)
	}
	if want := []string{`1398765001 approved "" 4990 BRL`, `1398765002 approved "" 4990 BRL`}; !slices.Equal(after.Payments, want) {
		t.Errorf("payments %q, want %q", after.Payments, want)
	}
	wantMails := append(slices.Clone(before.Mails), `payment_successful 1398765002 2026-03-15T00:00:00Z 4990 ""`)
	slices.Sort(wantMails)
	if !slices.Equal(after.Mails, wantMails) {
		t.Errorf("emails %q, want %q", after.Mails, wantMails)
	}
}

// TestChargeBeforePreapproval proves a charge notification that overtakes its preapproval's
// creates the subscription from the preapproval's external_reference and activates it.
func TestChargeBeforePreapproval(t *testing.T) {
	e := newEnv(t)
	ph := lifecycle(t)[0]
	e.clock.Set(ph.now)
	ph.api(e.mp)
	d := ph.notes[1]
	if w := e.deliver(d.typ, d.dataID, d.body); w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	ph.check(t, e.snapshot())
}
