package billingtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/internal/testkit"
)

// Options tunes the suite. The zero value of each field is the documented default.
type Options struct {
	// HostWrite changes one field of a stored subscription the way the host application
	// would, outside renewkit (a raw database write). field is the document field name
	// (billing.FieldStatus, billing.FieldPlanID, ...), value a string. The default writes
	// through the store's own UpdateSubscriptions.
	HostWrite func(ctx context.Context, st billing.Store, subscriptionID, field, value string) error
	// Records scales how many subscriptions the concurrency tests seed. Default 40; the
	// tests that seed hundreds of records by default seed a multiple of it.
	Records int
	// Timeout bounds each test's context. Default 3 minutes; YearOfDailyJobsStaysBounded,
	// a year of daily runs, gets three times as long.
	Timeout time.Duration
	// Replica returns another handle on st's database, opened the way another process
	// would (its own client or connection pool), for the tests where several replicas run
	// at once. The default returns st itself.
	Replica func(t *testing.T, st billing.Store) billing.Store
}

func (o Options) withDefaults() Options {
	if o.HostWrite == nil {
		o.HostWrite = storeHostWrite
	}
	if o.Records <= 0 {
		o.Records = 40
	}
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Minute
	}
	if o.Replica == nil {
		o.Replica = func(_ *testing.T, st billing.Store) billing.Store { return st }
	}
	return o
}

// storeHostWrite is the default HostWrite: a change through the store's conditional write.
func storeHostWrite(ctx context.Context, st billing.Store, id, field, value string) error {
	read, err := st.GetSubscription(ctx, id)
	if err != nil {
		return err
	}
	changed := read
	switch field {
	case billing.FieldStatus:
		changed.Status = billing.SubscriptionStatus(value)
	case billing.FieldPlanID:
		changed.PlanID = value
	case billing.FieldGateway:
		changed.Gateway = value
	default:
		return fmt.Errorf("billingtest: the default HostWrite cannot write %q; pass Options.HostWrite", field)
	}
	_, err = billing.UpdateSubscription(ctx, st, read, changed)
	return err
}

// Run runs the engine suite with the default Options.
func Run(t *testing.T, newStore func(t *testing.T) billing.Store) {
	t.Helper()
	RunWithOptions(t, newStore, Options{})
}

// RunWithOptions runs the engine suite; every test gets a fresh, empty store from newStore.
func RunWithOptions(t *testing.T, newStore func(t *testing.T) billing.Store, opts Options) {
	t.Helper()
	if newStore == nil {
		t.Fatal("billingtest: newStore is nil: pass a function returning a fresh, empty store")
	}
	s := &suite{newStore: newStore, opts: opts.withDefaults()}
	for _, tc := range s.tests() {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
			defer cancel()
			tc.run(ctx, t)
		})
	}
}

type test struct {
	name string
	run  func(ctx context.Context, t *testing.T)
}

type suite struct {
	newStore func(t *testing.T) billing.Store
	opts     Options
}

const day = testkit.Day

// env is one test's world: a store, a fake clock, a recording notifier and a Service.
type env struct {
	t     *testing.T
	ctx   context.Context
	st    billing.Store
	opts  Options
	clock *testkit.Clock
	notif *testkit.Notifier
	svc   *billing.Service
}

func (s *suite) env(ctx context.Context, t *testing.T, cfg billing.Config, records ...any) *env {
	t.Helper()
	st := s.newStore(t)
	if st == nil {
		t.Fatal("billingtest: newStore returned nil")
	}
	e := &env{t: t, ctx: ctx, st: st, opts: s.opts, clock: testkit.NewClock(testkit.Epoch), notif: testkit.NewNotifier()}
	testkit.Seed(t, st, records...)
	e.svc = e.service(st, cfg)
	return e
}

// service returns another Service (a replica) on st with e's clock and notifier.
func (e *env) service(st billing.Store, cfg billing.Config) *billing.Service {
	e.t.Helper()
	return e.serviceWith(st, e.notif, cfg)
}

// serviceWith is service with another notifier.
func (e *env) serviceWith(st billing.Store, n billing.Notifier, cfg billing.Config) *billing.Service {
	e.t.Helper()
	if cfg.Clock == nil {
		cfg.Clock = e.clock
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	svc, err := billing.NewService(st, n, cfg)
	if err != nil {
		e.t.Fatalf("NewService: %v", err)
	}
	return svc
}

func (e *env) sub(id string) billing.Subscription {
	e.t.Helper()
	return read(e, "GetSubscription", e.st.GetSubscription, id)
}

func (e *env) user(id string) billing.User {
	e.t.Helper()
	return read(e, "GetUser", e.st.GetUser, id)
}

func (e *env) payment(id string) billing.Payment {
	e.t.Helper()
	return read(e, "GetPayment", e.st.GetPayment, id)
}

func (e *env) userSubs(userID string) []billing.Subscription {
	e.t.Helper()
	return read(e, "ListUserSubscriptions", e.st.ListUserSubscriptions, userID)
}

// read returns what get (the store method named what) reads for id, failing the test on an
// error.
func read[T any](e *env, what string, get func(context.Context, string) (T, error), id string) T {
	e.t.Helper()
	x, err := get(e.ctx, id)
	if err != nil {
		e.t.Fatalf("%s(%s): %v", what, id, err)
	}
	return x
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

// wantAudits fails unless there are n audit entries with action about entity.
func (e *env) wantAudits(action, entity string, n int) {
	e.t.Helper()
	if got := len(e.audits(action, entity)); got != n {
		e.t.Fatalf("%d audit entries %s for %q, want %d", got, action, entity, n)
	}
}

// sentKinds returns the kinds delivered about subscription or payment id, in order.
func (e *env) sentKinds(id string) []billing.NotificationKind {
	var out []billing.NotificationKind
	for _, n := range e.notif.For(id) {
		out = append(out, n.Kind)
	}
	return out
}

// wantKinds fails unless the kinds delivered about id are exactly want, in order.
func (e *env) wantKinds(id string, want ...billing.NotificationKind) {
	e.t.Helper()
	got := e.sentKinds(id)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		e.t.Fatalf("notifications about %s = %v, want %v", id, got, want)
	}
}

// wantKindSet is wantKinds in any order: emails an effects step sends together go through
// the send pool concurrently.
func (e *env) wantKindSet(id string, want ...billing.NotificationKind) {
	e.t.Helper()
	got := e.sentKinds(id)
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		e.t.Fatalf("notifications about %s = %v, want %v in any order", id, got, want)
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

// replicas returns n Services sharing e's clock and notifier, like n processes, each on
// its own handle of e's store (Options.Replica).
func (e *env) replicas(n int, cfg billing.Config) []*billing.Service {
	e.t.Helper()
	out := make([]*billing.Service, n)
	for i := range out {
		out[i] = e.service(e.replica(), cfg)
	}
	return out
}

// replica returns another handle on e's store, as another process would open it.
func (e *env) replica() billing.Store {
	e.t.Helper()
	return e.opts.Replica(e.t, e.st)
}

// concurrently calls f(0) ... f(n-1) in n goroutines released at once and waits for them.
func concurrently(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			f(i)
		})
	}
	close(start)
	wg.Wait()
}

func millis(i int) time.Duration { return time.Duration(i) * time.Millisecond }

// sentOncePerKey fails unless every key was delivered at most once, and returns how many
// distinct keys were delivered.
func (e *env) sentOncePerKey() int {
	e.t.Helper()
	return len(e.wantSentOnce(nil))
}

// wantSentOnce fails unless every key was delivered once, or twice when inFlight holds it
// (sent at a crash, its record not written: the one repeat a restart may make), and returns
// how many times each key was delivered.
func (e *env) wantSentOnce(inFlight map[string]bool) map[string]int {
	e.t.Helper()
	sent := map[string]int{}
	for _, n := range e.notif.Sent() {
		sent[n.Key]++
	}
	for k, n := range sent {
		if n > 2 || n == 2 && !inFlight[k] {
			e.t.Fatalf("notification %s delivered %d times (in flight at the crash: %v), want once", k, n, inFlight[k])
		}
	}
	return sent
}

// noPending fails if any record (subscription, payment or session) still carries pending effects.
func (e *env) noPending() {
	e.t.Helper()
	payments, err := e.st.ListPaymentsWithEffects(e.ctx, 1000)
	if err != nil {
		e.t.Fatalf("listing payments with pending effects: %v", err)
	}
	if len(payments) > 0 {
		e.t.Fatalf("%d payments still carry pending effects (first %s: %+v)", len(payments), payments[0].ID, payments[0].Pending)
	}
	sessions, err := e.st.ListSessionsWithEffects(e.ctx, 1000)
	if err != nil {
		e.t.Fatalf("listing sessions with pending effects: %v", err)
	}
	if len(sessions) > 0 {
		e.t.Fatalf("%d sessions still carry pending effects (first %s: %+v)", len(sessions), sessions[0].ID, sessions[0].Pending)
	}
	left, err := e.st.ClaimSubscriptions(e.ctx, billing.ClaimParams{Token: "billingtest-check", Now: e.clock.Now(),
		LeaseUntil: e.clock.Now().Add(time.Millisecond), Limit: 1000, Pending: true})
	if err != nil {
		e.t.Fatalf("claiming pending records: %v", err)
	}
	if len(left) > 0 {
		e.t.Fatalf("%d records still carry pending effects (first %s: %+v)", len(left), left[0].ID, left[0].Pending)
	}
	if err := e.st.ReleaseClaims(e.ctx, "billingtest-check"); err != nil {
		e.t.Fatalf("ReleaseClaims: %v", err)
	}
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// hookStore calls afterClaim with the first non-empty batch a claim returns, before the job
// sees it: the moment someone else changes a record between a job's read and its write.
type hookStore struct {
	billing.Store
	afterClaim func(ctx context.Context, claimed []billing.Subscription)
	fired      bool
}

func (h *hookStore) ClaimSubscriptions(ctx context.Context, p billing.ClaimParams) ([]billing.Subscription, error) {
	subs, err := h.Store.ClaimSubscriptions(ctx, p)
	if len(subs) > 0 && !h.fired && !p.Pending {
		h.fired = true
		h.afterClaim(ctx, subs)
	}
	return subs, err
}

// lookup is a RenewalLookup answering from a table.
type lookup map[string]func() (billing.GatewaySubscription, error)

func (l lookup) LookupSubscription(_ context.Context, id string) (billing.GatewaySubscription, error) {
	if f, ok := l[id]; ok {
		return f()
	}
	return billing.GatewaySubscription{}, fmt.Errorf("billingtest: unknown gateway subscription %s", id)
}

func answer(gs billing.GatewaySubscription) func() (billing.GatewaySubscription, error) {
	return func() (billing.GatewaySubscription, error) { return gs, nil }
}

func failure(err error) func() (billing.GatewaySubscription, error) {
	return func() (billing.GatewaySubscription, error) { return billing.GatewaySubscription{}, err }
}

// countedLookup is a RenewalLookup that counts its calls (the jobs call lookups
// concurrently).
type countedLookup struct {
	billing.RenewalLookup
	calls atomic.Int64
}

func (c *countedLookup) LookupSubscription(ctx context.Context, id string) (billing.GatewaySubscription, error) {
	c.calls.Add(1)
	return c.RenewalLookup.LookupSubscription(ctx, id)
}

func (s *suite) tests() []test {
	return []test{
		// scenarios.go: the races and failures of the lifecycle engine
		{"PaymentApprovedBetweenClaimAndExpiry", s.paymentBetweenClaimAndExpiry},
		{"HostCancelsBetweenClaimAndWarning", s.hostCancelsBetweenClaimAndWarning},
		{"HostWriteToAnotherFieldSurvives", s.hostWriteToAnotherFieldSurvives},
		{"ConcurrentRunsSendEachWarningOnce", s.concurrentRunsSendOnce},
		{"LeaseRunsOutMidBatch", s.leaseRunsOutMidBatch},
		{"FailedSendStaysPendingAndIsFinished", s.failedSendStaysPending},
		{"RecordWriteFailingAfterSendDoesNotResend", s.recordWriteFailsAfterSend},
		{"BreakerStopsAnOutage", s.breakerStopsOutage},
		{"BreakerDoesNotHoldBackExpiries", s.breakerDoesNotHoldBackExpiries},
		{"AutoRenewingAskedBeforeExpiry", s.autoRenewingAskedBeforeExpiry},
		{"RenewUnknownStatusIsAFailure", s.renewUnknownStatus},
		{"RenewReconcilesRecentlyExpired", s.renewReconcilesExpired},
		{"ExpiryKeepsAccessFromAnotherLiveSubscription", s.expiryKeepsOtherAccess},
		{"LadderFailureCountedOnce", s.ladderFailureOnce},
		{"ProcessorDoesNotOverwriteHostWrites", s.processorKeepsHostWrites},
		{"BreakerTripsInTheLastBatch", s.breakerInLastBatch},
		{"StuckWarningDoesNotBlockExpiry", s.stuckWarningDoesNotBlockExpiry},
		{"RevokeAfterTheHostGrantedAgain", s.revokeAfterHostRegrant},
		{"WarningNotSentAfterARenewal", s.warningMootAfterRenewal},
		{"CohortSharingOnePeriodEndWarnedOnce", s.cohortWarnedOnce},

		// jobs.go
		{"SeedScenario", s.seedScenario},
		{"WarningLadder", s.warningLadder},
		{"WarningKind", s.warningKind},
		{"ProcessExpired", s.processExpired},
		{"ExpiryKeepsAccessFromAnotherSubscription", s.expiryKeepsAccessFromAnotherSubscription},
		{"RenewSubscriptions", s.renewSubscriptions},
		{"CleanupOldSessions", s.cleanupOldSessions},
		{"CleanupPendingPayments", s.cleanupPendingPayments},
		{"CleanupPaymentsSurvivesCrashAtEveryWrite", s.cleanupPaymentsSurvivesCrashAtEveryWrite},
		{"CleanupSessionsSurvivesCrashAtEveryWrite", s.cleanupSessionsSurvivesCrashAtEveryWrite},
		// preview.go
		{"PreviewChangesNothing", s.previewChangesNothing},
		// processor.go
		{"ApproveFirstPaymentAndTwice", s.approveFirstPaymentAndTwice},
		{"ApproveRenews", s.approveRenews},
		{"WelcomeOnlyOnFirstSubscription", s.welcomeOnlyOnFirstSubscription},
		{"FailAndCancelTransitions", s.failAndCancelTransitions},
		{"ProcessorBadInput", s.processorBadInput},
		// sync.go
		{"GatewayChargeForCoveredPeriodDoesNotExtend", s.gatewayChargeForCoveredPeriodDoesNotExtend},
		{"LateChargeDoesNotReviveEndedSubscription", s.lateChargeDoesNotReviveEndedSubscription},
		{"SyncNeverMovesBackwards", s.syncNeverMovesBackwards},
		{"CancellationEmailSurvivesAFailedSend", s.cancellationEmailSurvivesAFailedSend},
		{"FailGatewayPayment", s.failGatewayPayment},
		{"OlderChargeKeepsPastDue", s.olderChargeKeepsPastDue},
		{"LateChargesOnEndedSubscriptionAddUp", s.lateChargesOnEndedSubscriptionAddUp},
		// ladder.go
		{"ConcurrentLadderRunsAgreeOnNearestOffset", s.concurrentLadderRunsAgreeOnNearestOffset},
		{"NoWelcomeWhenRenewingSeedSubscription", s.noWelcomeWhenRenewingSeedSubscription},
		{"LadderRetryKeepsNearestOffset", s.ladderRetryKeepsNearestOffset},
		// failures.go
		{"WarningTransientFailureRetried", s.warningTransientFailureRetried},
		{"WarningPermanentFailureNotRetried", s.warningPermanentFailureNotRetried},
		{"ExpiryEmailFailureRetried", s.expiryEmailFailureRetried},
		{"ApprovedEmailFailureRetried", s.approvedEmailFailureRetried},
		{"ConcurrentRunsSendEachEmailOnce", s.concurrentRunsSendEachEmailOnce},
		{"ConcurrentApproveExtendsOnce", s.concurrentApproveExtendsOnce},
		// approvals.go
		{"ApprovalSurvivesCrashAtEveryWrite", s.approvalSurvivesCrashAtEveryWrite},
		{"WelcomeSurvivesFailedCreationAudit", s.welcomeSurvivesFailedCreationAudit},
		{"PaidSubscriptionGetsAccessOverALapsedOne", s.paidGetsAccessOverLapsed},
		// paymenteffects.go
		{"PaymentOutcomeSurvivesCrashAtEveryWrite", s.paymentOutcomeSurvivesCrashAtEveryWrite},
		{"FailureEffectsDoNotHoldUpApproval", s.failureEffectsDoNotHoldUpApproval},
		{"PaymentReversalSurvivesCrashAtEveryWrite", s.paymentReversalSurvivesCrashAtEveryWrite},
		// lockwait.go
		{"ProcessorWaitsForABusyPayment", s.processorWaitsForABusyPayment},
		// payments.go
		{"ApprovalAfterCleanupCancelledGrants", s.approvalAfterCleanup},
		{"CleanupRacingApprovalLosesNothing", s.cleanupRacingApproval},
		{"ConcurrentFirstPaymentsOneSubscription", s.concurrentFirstPayments},
		{"MonthlyRenewalsKeepTheBillingDay", s.monthlyAnchorDay},
		// retention.go
		{"YearOfDailyJobsStaysBounded", s.yearOfDailyJobs},
		// reversals.go
		{"RefundEndsAccessAtOnce", s.refundEndsAccessAtOnce},
		{"RefundAtPeriodEndKeepsAccessUntilThen", s.refundAtPeriodEndKeepsAccessUntilThen},
		{"PartialRefundChangesNoAccess", s.partialRefundChangesNoAccess},
		{"ReversalOfOlderPaymentKeepsCurrentPeriod", s.reversalOfOlderPaymentKeepsCurrentPeriod},
		{"ReplayedReversalChangesNothing", s.replayedReversalChangesNothing},
		{"ChargebackThenDisputeWon", s.chargebackThenDisputeWon},
		{"UnknownPaymentReversalChangesNothing", s.unknownPaymentReversal},
		{"RenewalFromTwoSourcesOnce", s.renewalFromTwoSourcesOnce},
	}
}

// flakyFinish fails the first failures calls of FinishNotifications.
type flakyFinish struct {
	billing.Store
	mu       sync.Mutex
	failures int
}

func (f *flakyFinish) FinishNotifications(ctx context.Context, recs []billing.NotificationRecord, token string) error {
	f.mu.Lock()
	fail := f.failures > 0
	if fail {
		f.failures--
	}
	f.mu.Unlock()
	if fail {
		return errors.New("billingtest: store unavailable for a moment")
	}
	return f.Store.FinishNotifications(ctx, recs, token)
}
