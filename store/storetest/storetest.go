package storetest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// Options tunes the suite for slow backends. The zero value of each field is the documented
// default.
type Options struct {
	// ClaimRecords is how many due subscriptions the concurrent-claim test seeds. Default 500.
	ClaimRecords int
	// StaleRecords is how many stale payments and expired sessions the concurrent cleanup
	// tests seed. Default 200.
	StaleRecords int
	// Goroutines is how many concurrent callers the concurrency tests start. Default 8.
	Goroutines int
	// ClaimBatch is the Limit each concurrent caller asks for. Default 20.
	ClaimBatch int
	// Timeout bounds each subtest's context. Default 2 minutes.
	Timeout time.Duration
	// CorruptWebhookEvent makes the stored webhook event (gateway, eventID) unreadable to
	// st, as a program writing the database directly could (a field of the wrong type), for
	// the case checking that a claim reports it next to the events it can read. Leave it nil
	// for a store that keeps typed values and so cannot hold such a record (memstore): that
	// case is skipped.
	CorruptWebhookEvent func(ctx context.Context, st billing.Store, gateway, eventID string) error
	// CorruptPayment makes the stored payment id unreadable to st the same way (its pending
	// effects, say, of a shape the store cannot decode), for the case checking that
	// CancelStalePayments leaves such a payment as it is and reports it next to the
	// payments it cancels. Leave it nil for a store that cannot hold one: that case is skipped.
	CorruptPayment func(ctx context.Context, st billing.Store, id string) error
}

func (o Options) withDefaults() Options {
	if o.ClaimRecords <= 0 {
		o.ClaimRecords = 500
	}
	if o.StaleRecords <= 0 {
		o.StaleRecords = 200
	}
	if o.Goroutines <= 0 {
		o.Goroutines = 8
	}
	if o.ClaimBatch <= 0 {
		o.ClaimBatch = 20
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	return o
}

// Run runs the whole conformance suite with the default Options.
func Run(t *testing.T, newStore func(t *testing.T) billing.Store) {
	t.Helper()
	RunWithOptions(t, newStore, Options{})
}

// RunWithOptions runs the whole conformance suite, its subtests in parallel. A subtest that
// needs an empty store (it counts, lists or claims everything there is) gets its own from
// newStore; the others share one store, made by one more call of newStore, and name only
// records of their own (their ids carry a prefix of the subtest's).
func RunWithOptions(t *testing.T, newStore func(t *testing.T) billing.Store, opts Options) {
	t.Helper()
	if newStore == nil {
		t.Fatal("storetest: newStore is nil: pass a function returning a fresh, empty store")
	}
	s := &suite{newStore: newStore, opts: opts.withDefaults()}
	groups := []struct {
		name  string
		tests []test
	}{
		{"Plans", s.planTests()},
		{"Users", s.userTests()},
		{"Subscriptions", s.subscriptionTests()},
		{"Filter", s.filterTests()},
		{"Claims", s.claimTests()},
		{"ClaimPosition", s.cursorTests()},
		{"Payments", s.paymentTests()},
		{"PaymentChanges", s.paymentChangeTests()},
		{"Sessions", s.sessionTests()},
		{"Audit", s.auditTests()},
		{"Notifications", s.notificationTests()},
		{"Changes", s.changeTests()},
		{"Effects", s.effectTests()},
		{"UserAccess", s.userAccessTests()},
		{"JobRuns", s.jobRunTests()},
		{"JobState", s.jobStateTests()},
		{"Locks", s.lockTests()},
		{"WebhookEvents", s.webhookTests()},
		{"Time", s.timeTests()},
		{"Cancellation", s.cancelTests()},
		{"Previews", s.previewTests()},
		{"AuditCount", s.auditCountTests()},
		{"Console", s.consoleTests()},
	}
	var shared billing.Store
	for _, g := range groups {
		for _, tc := range g.tests {
			if tc.store == sharedStore && shared == nil {
				if shared = newStore(t); shared == nil {
					t.Fatal("storetest: newStore returned nil")
				}
			}
		}
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
					defer cancel()
					st := shared
					if tc.store == ownStore {
						if st = s.newStore(t); st == nil {
							t.Fatal("storetest: newStore returned nil")
						}
					}
					tc.run(ctx, t, st)
				})
			}
		})
	}
}

// storeKind says which store a test runs on.
type storeKind int

const (
	// ownStore: an empty store of the test's own, for a test that counts, lists or claims
	// everything the store holds.
	ownStore storeKind = iota
	// sharedStore: the store every such test shares; the test names only records whose ids
	// it made with scope.
	sharedStore
)

type test struct {
	name  string
	store storeKind
	run   func(ctx context.Context, t *testing.T, st billing.Store)
}

type suite struct {
	newStore func(t *testing.T) billing.Store
	opts     Options
}

// scope returns the ids of t's own records: my("s1") is "s1" behind a prefix that names t,
// so tests sharing a store never touch each other's records. The prefix keeps the order of
// the ids it is put before.
func scope(t *testing.T) (my func(id string) string) {
	h := fnv.New32a()
	h.Write([]byte(t.Name()))
	prefix := fmt.Sprintf("%08x.", h.Sum32())
	return func(id string) string { return prefix + id }
}

// sibling returns id's neighbour: name in the scope id was made in (name itself for an id
// made outside any scope), so a helper's default user or plan of a scoped record is
// scoped too.
func sibling(id, name string) string {
	if scoped(id) {
		return id[:9] + name
	}
	return name
}

// unscoped returns id without the prefix scope put before it.
func unscoped(id string) string {
	if scoped(id) {
		return id[9:]
	}
	return id
}

func scoped(id string) bool {
	return len(id) > 9 && id[8] == '.' && strings.Trim(id[:8], "0123456789abcdef") == ""
}

// base is the suite's "now": a fixed UTC instant at millisecond precision.
var base = time.Date(2030, time.June, 15, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// --- assertions ---

func must(t *testing.T, err error, what string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: unexpected error: %v", fmt.Sprintf(what, args...), err)
	}
}

func wantErr(t *testing.T, err, target error, what string, args ...any) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want one matching %v (errors.Is)", fmt.Sprintf(what, args...), err, target)
	}
}

// equal compares two records after normalising the representation details a store may
// legitimately change: times become UTC at millisecond precision, nil and empty slices and
// maps are the same.
func equal[T any](t *testing.T, got, want T, what string, args ...any) {
	t.Helper()
	g, w := normalize(reflect.ValueOf(&got).Elem()), normalize(reflect.ValueOf(&want).Elem())
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got  %+v\n want %+v", fmt.Sprintf(what, args...), got, want)
	}
}

var timeType = reflect.TypeFor[time.Time]()

// normalize returns a deep copy of v with times truncated and empty collections nil.
func normalize(v reflect.Value) any {
	c := reflect.New(v.Type()).Elem()
	normInto(c, v)
	return c.Interface()
}

func normInto(dst, src reflect.Value) {
	if src.Type() == timeType {
		dst.Set(reflect.ValueOf(billing.TruncateTime(src.Interface().(time.Time))))
		return
	}
	switch src.Kind() {
	case reflect.Struct:
		for i := range src.NumField() {
			if dst.Field(i).CanSet() {
				normInto(dst.Field(i), src.Field(i))
			}
		}
	case reflect.Slice:
		if src.Len() == 0 {
			return
		}
		s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := range src.Len() {
			normInto(s.Index(i), src.Index(i))
		}
		dst.Set(s)
	case reflect.Map:
		if src.Len() == 0 {
			return
		}
		dst.Set(src)
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		p := reflect.New(src.Type().Elem())
		normInto(p.Elem(), src.Elem())
		dst.Set(p)
	default:
		dst.Set(src)
	}
}

func ids[T any](xs []T, id func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = id(x)
	}
	sort.Strings(out)
	return out
}

func subIDs(xs []billing.Subscription) []string {
	return ids(xs, func(s billing.Subscription) string { return s.ID })
}

func equalIDs(t *testing.T, got, want []string, what string, args ...any) {
	t.Helper()
	g, w := append([]string(nil), got...), append([]string(nil), want...)
	sort.Strings(g)
	sort.Strings(w)
	if len(g) == 0 && len(w) == 0 {
		return
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got  %v\n want %v", fmt.Sprintf(what, args...), g, w)
	}
}

// --- fixtures ---

func newPlan(id string) billing.Plan {
	return billing.Plan{
		ID: id, Name: "Plan " + id, BillingCycle: billing.CycleMonthly,
		Price:  billing.Money{Amount: 2990, Currency: "BRL"},
		Active: true, CreatedAt: base.Add(-30 * day), UpdatedAt: base.Add(-day),
	}
}

func newUser(id string) billing.User {
	return billing.User{
		ID: id, Email: id + "@example.com", Name: "User " + id, Locale: "pt-BR", TimeZone: "America/Sao_Paulo",
		PlanID: sibling(id, "p1"), SubscriptionID: "s-" + id, Status: billing.SubscriptionStatusActive, AccessUntil: base.Add(10 * day),
		CreatedAt: base.Add(-60 * day), UpdatedAt: base.Add(-day),
	}
}

// newSub returns an active manual subscription ending at end.
func newSub(id string, end time.Time, mods ...func(*billing.Subscription)) billing.Subscription {
	s := billing.Subscription{
		ID: id, UserID: sibling(id, "u1"), PlanID: sibling(id, "p1"), Status: billing.SubscriptionStatusActive, BillingCycle: billing.CycleMonthly,
		CurrentPeriodStart: billing.AddMonths(end, -1), CurrentPeriodEnd: end, Gateway: billing.GatewayManual,
		CreatedAt: base.Add(-40 * day), UpdatedAt: base.Add(-day),
	}
	for _, m := range mods {
		m(&s)
	}
	return s
}

func autoRenewing(gw string) func(*billing.Subscription) {
	return func(s *billing.Subscription) {
		s.Gateway, s.GatewaySubscriptionID = gw, sibling(s.ID, "gw-"+unscoped(s.ID))
	}
}

func newPayment(id string, created time.Time, mods ...func(*billing.Payment)) billing.Payment {
	p := billing.Payment{
		ID: id, UserID: sibling(id, "u1"), PlanID: sibling(id, "p1"), Amount: billing.Money{Amount: 2990, Currency: "BRL"},
		Status: billing.PaymentStatusPending, Gateway: billing.GatewayStripe, CreatedAt: created, UpdatedAt: created,
	}
	for _, m := range mods {
		m(&p)
	}
	return p
}

func insertSubs(ctx context.Context, t *testing.T, st billing.Store, subs ...billing.Subscription) {
	t.Helper()
	for i := range subs {
		must(t, st.InsertSubscription(ctx, &subs[i]), "InsertSubscription(%s)", subs[i].ID)
	}
}

// runConcurrently starts n goroutines running f(i) and waits for them; it releases them at
// once so they really overlap.
func runConcurrently(n int, f func(i int)) {
	start := make(chan struct{})
	done := make(chan struct{}, n)
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			<-start
			f(i)
		}()
	}
	close(start)
	for range n {
		<-done
	}
}
