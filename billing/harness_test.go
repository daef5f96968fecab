package billing_test

import (
	"context"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
	"github.com/renewkit/renewkit/store/memstore"
)

const day = testkit.Day

// env is one scenario: memstore, a fake clock at testkit.Epoch, a recording notifier and a
// Service over them.
type env struct {
	t     *testing.T
	ctx   context.Context
	st    *memstore.Store
	clock *testkit.Clock
	notif *testkit.Notifier
	svc   *billing.Service
}

func newEnv(t *testing.T, cfg billing.Config, records ...any) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), st: memstore.New(), clock: testkit.NewClock(testkit.Epoch), notif: testkit.NewNotifier()}
	cfg.Clock = e.clock
	cfg.Logger = slog.New(slog.DiscardHandler)
	svc, err := billing.NewService(e.st, e.notif, cfg)
	if err != nil {
		t.Fatalf("NewService: %v", err)
	}
	e.svc = svc
	testkit.Seed(t, e.st, records...)
	return e
}

func (e *env) now() time.Time { return e.clock.Now() }

func (e *env) sub(id string) billing.Subscription {
	e.t.Helper()
	s, err := e.st.GetSubscription(e.ctx, id)
	if err != nil {
		e.t.Fatalf("GetSubscription(%s): %v", id, err)
	}
	return s
}

func (e *env) user(id string) billing.User {
	e.t.Helper()
	u, err := e.st.GetUser(e.ctx, id)
	if err != nil {
		e.t.Fatalf("GetUser(%s): %v", id, err)
	}
	return u
}

func (e *env) payment(id string) billing.Payment {
	e.t.Helper()
	p, err := e.st.GetPayment(e.ctx, id)
	if err != nil {
		e.t.Fatalf("GetPayment(%s): %v", id, err)
	}
	return p
}

func (e *env) userSubs(userID string) []billing.Subscription {
	e.t.Helper()
	subs, err := e.st.ListUserSubscriptions(e.ctx, userID)
	if err != nil {
		e.t.Fatalf("ListUserSubscriptions(%s): %v", userID, err)
	}
	return subs
}

// audits returns the audit entries with action about entity ("" matches any).
func (e *env) audits(action, entity string) []billing.AuditEntry {
	e.t.Helper()
	list, err := e.st.ListAudit(e.ctx, billing.AuditFilter{Action: action, EntityID: entity})
	if err != nil {
		e.t.Fatalf("ListAudit: %v", err)
	}
	return list
}

func (e *env) wantAudits(action, entity string, n int) {
	e.t.Helper()
	if got := len(e.audits(action, entity)); got != n {
		e.t.Fatalf("%d audit entries %s for %q, want %d", got, action, entity, n)
	}
}

// kinds returns the kinds of the notifications delivered about id, in order.
func (e *env) kinds(id string) []billing.NotificationKind {
	var out []billing.NotificationKind
	for _, n := range e.notif.For(id) {
		out = append(out, n.Kind)
	}
	return out
}

func (e *env) wantKinds(id string, want ...billing.NotificationKind) {
	e.t.Helper()
	got := e.kinds(id)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		e.t.Fatalf("notifications about %s = %v, want %v", id, got, want)
	}
}

// snapshot is everything the processor may change for the given users and payments.
type snapshot struct {
	Payments map[string]billing.Payment
	Users    map[string]billing.User
	Subs     map[string][]billing.Subscription
	Audit    int
	Sent     int
	Attempts int
}

func (e *env) snapshot(userIDs, paymentIDs []string) snapshot {
	e.t.Helper()
	s := snapshot{Payments: map[string]billing.Payment{}, Users: map[string]billing.User{}, Subs: map[string][]billing.Subscription{}}
	for _, id := range paymentIDs {
		if p, err := e.st.GetPayment(e.ctx, id); err == nil {
			s.Payments[id] = p
		}
	}
	for _, id := range userIDs {
		s.Users[id] = e.user(id)
		s.Subs[id] = e.userSubs(id)
	}
	s.Audit = len(e.audits("", ""))
	s.Sent, s.Attempts = e.notif.Count(""), e.notif.Attempts()
	return s
}

func mustNoErr(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
