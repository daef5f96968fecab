package smtpnotify

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/notify"
)

// dataDelay is long enough that waiting on the server, not the CPU (race detector, a
// loaded machine), dominates each send.
const dataDelay = 100 * time.Millisecond

func poolNote(i int) billing.Notification {
	note := notify.SampleNotification(billing.NotificationKindExpiring, notify.Locales()[i%2])
	note.Key = fmt.Sprintf("pool:%d", i)
	return note
}

// fastestOf runs notifyAll rounds times and returns the shortest, so one slow moment of a
// busy machine does not decide the comparison.
func fastestOf(t *testing.T, rounds int, n *Notifier, notes []billing.Notification) time.Duration {
	t.Helper()
	best := notifyAll(t, n, notes)
	for range rounds - 1 {
		best = min(best, notifyAll(t, n, notes))
	}
	return best
}

// notifyAll sends notes with one goroutine each and returns how long the last took.
func notifyAll(t *testing.T, n *Notifier, notes []billing.Notification) time.Duration {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(notes))
	start := time.Now()
	for i, note := range notes {
		wg.Go(func() { errs[i] = n.Notify(context.Background(), note) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		require.NoError(t, err)
	}
	return elapsed
}

func TestConcurrentSendsRunInParallelOnPooledConnections(t *testing.T) {
	const pool, calls = 4, 8 // two rounds of four parallel transactions
	s := startServer(t, withDataDelay(dataDelay))
	cfg := testConfig(t, s)
	cfg.MaxConns = pool
	n := newNotifier(t, cfg)
	notes := make([]billing.Notification, calls)
	for i := range notes {
		notes[i] = poolNote(i)
	}

	start := time.Now()
	for _, note := range notes {
		require.NoError(t, n.Notify(context.Background(), note))
	}
	sequential := time.Since(start)
	require.GreaterOrEqual(t, sequential, calls*dataDelay)
	assert.EqualValues(t, 1, s.Sessions.Load(), "sequential sends share one connection")

	s.Reset()
	parallel := fastestOf(t, 3, n, notes)
	t.Logf("%d sends: sequential %v, %d at once over %d connections %v (%.1fx)",
		calls, sequential, calls, pool, parallel, float64(sequential)/float64(parallel))
	assert.EqualValues(t, 3*calls, s.Accepted.Load())
	// Ideal: calls/pool = 2 DATA delays against 8, a 4x speed-up. Ask for 2x.
	assert.Less(t, 2*parallel, sequential, "concurrent sends overlap their DATA replies")
	assert.LessOrEqual(t, s.Sessions.Load(), int64(pool), "never more connections than MaxConns")
	assert.Greater(t, s.Sessions.Load(), int64(1), "more than one connection in use")
	assert.EqualValues(t, s.Sessions.Load(), n.Stats().Dials)
	assert.LessOrEqual(t, s.PeakConcurrentData(), int64(pool))
	assert.Greater(t, s.PeakConcurrentData(), int64(1))
	st := n.Stats()
	assert.Zero(t, st.InUse)
	assert.EqualValues(t, st.Dials, st.Idle, "every connection went back to the pool")
	assert.Equal(t, st.Idle, st.Open)

	// The pool is warm: another round reuses it without dialling.
	dials := st.Dials
	notifyAll(t, n, notes[:pool])
	assert.Equal(t, dials, n.Stats().Dials)

	require.NoError(t, n.Shutdown(context.Background()))
	assert.Eventually(t, func() bool { return s.Logouts.Load() == s.Sessions.Load() }, 5*time.Second,
		time.Millisecond, "Shutdown ends every pooled session")
}

func TestDefaultPoolMatchesSendConcurrency(t *testing.T) {
	s := startServer(t, withDataDelay(dataDelay))
	cfg := testConfig(t, s)
	n := newNotifier(t, cfg)
	require.Equal(t, DefaultMaxConns, n.cfg.MaxConns)
	notes := make([]billing.Notification, DefaultMaxConns)
	for i := range notes {
		notes[i] = poolNote(i)
	}
	// Warm the pool so the measured round has no dials in it.
	notifyAll(t, n, notes)
	s.Reset()
	start := time.Now()
	for _, note := range notes[:DefaultMaxConns/2] {
		require.NoError(t, n.Notify(context.Background(), note))
	}
	halfSequential := time.Since(start)
	parallel := fastestOf(t, 3, n, notes)
	t.Logf("%d sequential sends %v, %d at once %v", DefaultMaxConns/2, halfSequential, DefaultMaxConns, parallel)
	// Ideal: one DATA delay against four.
	assert.Less(t, parallel, halfSequential, "%d sends at once take about one DATA delay", DefaultMaxConns)
	assert.LessOrEqual(t, s.Sessions.Load(), int64(DefaultMaxConns))
}

func TestBrokenPooledConnectionIsDroppedOthersKept(t *testing.T) {
	s := startServer(t)
	cfg := testConfig(t, s)
	cfg.MaxConns = 3
	n := newNotifier(t, cfg)
	notes := []billing.Notification{poolNote(0), poolNote(1), poolNote(2)}
	hold := make(chan struct{})
	var entered sync.WaitGroup
	entered.Add(3)
	s.OnMail = func(string) error { entered.Done(); <-hold; return nil }
	done := make(chan time.Duration)
	go func() { done <- notifyAll(t, n, notes) }()
	entered.Wait()
	close(hold)
	<-done
	s.OnMail = nil
	require.Equal(t, 3, n.Stats().Idle)

	n.mu.Lock()
	_ = n.idle[len(n.idle)-1].raw.Close() // the next one taken
	n.mu.Unlock()
	require.NoError(t, n.Notify(context.Background(), poolNote(3)))
	st := n.Stats()
	assert.EqualValues(t, 4, st.Dials, "the dead connection was replaced by a new one")
	assert.Equal(t, 3, st.Idle, "the pool is full again")
	assert.Zero(t, st.Retries, "a dead pooled connection does not use the retry budget")
	assert.Equal(t, 3, st.Open)
	assert.Eventually(t, func() bool { return s.Sessions.Load()-s.Logouts.Load() == 3 }, 5*time.Second,
		time.Millisecond, "the dead one is gone, the other two stay")

	// All pooled connections dead (a server restart): one send costs no retry and leaves
	// the pool within MaxConns.
	n.mu.Lock()
	for _, c := range n.idle {
		_ = c.raw.Close()
	}
	n.mu.Unlock()
	require.NoError(t, n.Notify(context.Background(), poolNote(4)))
	st = n.Stats()
	assert.Zero(t, st.Retries)
	assert.EqualValues(t, 5, st.Dials)
	assert.LessOrEqual(t, st.Open, 3)
	assert.Eventually(t, func() bool { return s.Sessions.Load()-s.Logouts.Load() <= 3 }, 5*time.Second,
		time.Millisecond)
}

func TestNotifyWaitsForAFreeConnectionUntilContextEnds(t *testing.T) {
	s := startServer(t)
	hold := make(chan struct{})
	entered := make(chan struct{}, 1)
	s.OnMail = func(string) error { entered <- struct{}{}; <-hold; return nil }
	cfg := testConfig(t, s)
	cfg.MaxConns = 1
	n := newNotifier(t, cfg)
	first := make(chan error, 1)
	go func() { first <- n.Notify(context.Background(), poolNote(0)) }()
	<-entered

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := n.Notify(ctx, poolNote(1))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotErrorIs(t, err, billing.ErrUndeliverable)
	assert.EqualValues(t, 1, s.Sessions.Load(), "no connection beyond MaxConns")
	close(hold)
	require.NoError(t, <-first)
}

// An outage where the server answers 421 to everything costs each message a bounded
// time with the default retry settings, and a batch sent in parallel costs about as much
// as one message.
func TestOutage421CostsBoundedTime(t *testing.T) {
	s := startServer(t)
	s.OnMail = func(string) error {
		return &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 3, 2}, Message: "Service not available"}
	}
	cfg := testConfig(t, s)
	cfg.Backoff, cfg.MaxBackoff, cfg.MaxAttempts = 0, 0, 0 // the defaults
	n := newNotifier(t, cfg)
	require.Equal(t, 3, n.cfg.MaxAttempts)

	start := time.Now()
	err := n.Notify(context.Background(), poolNote(0))
	one := time.Since(start)
	require.Error(t, err)
	assert.NotErrorIs(t, err, billing.ErrUndeliverable, "421 is transient")
	var se *SendError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 421, se.Code)
	assert.Equal(t, 3, se.Attempts)
	assert.EqualValues(t, 3, s.MailCalls.Load())
	assert.Less(t, one, 2*time.Second, "three attempts with 250ms and 500ms waits")

	// A breaker at five consecutive failures with eight sends in flight sees them all
	// fail within about one message's budget.
	s.MailCalls.Store(0)
	notes := make([]billing.Notification, DefaultMaxConns)
	errs := make([]error, len(notes))
	var wg sync.WaitGroup
	start = time.Now()
	for i := range notes {
		wg.Go(func() { errs[i] = n.Notify(context.Background(), poolNote(i)) })
	}
	wg.Wait()
	batch := time.Since(start)
	for _, err := range errs {
		require.Error(t, err)
	}
	assert.EqualValues(t, 3*len(notes), s.MailCalls.Load())
	assert.Less(t, batch, 2*one+time.Second, "failures in parallel cost about one message's budget")
}

func TestRetryBudgetStopsRetries(t *testing.T) {
	s := startServer(t)
	s.OnMail = func(string) error {
		return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	cfg := testConfig(t, s)
	cfg.MaxAttempts, cfg.Backoff, cfg.MaxBackoff, cfg.RetryBudget = 100, 100*time.Millisecond, 100*time.Millisecond, 350*time.Millisecond
	n := newNotifier(t, cfg)
	start := time.Now()
	err := n.Notify(context.Background(), poolNote(0))
	elapsed := time.Since(start)
	var se *SendError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 451, se.Code)
	assert.False(t, se.Permanent)
	// Waits of 80-120ms each: at most 4 fit in 350ms, at least 2.
	assert.GreaterOrEqual(t, se.Attempts, 3)
	assert.LessOrEqual(t, se.Attempts, 5)
	assert.Less(t, elapsed, cfg.RetryBudget+300*time.Millisecond)
}

func Test5xxIsNotRetriedWithinBudget(t *testing.T) {
	s := startServer(t)
	s.OnMail = func(string) error {
		return &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1}, Message: "rejected"}
	}
	cfg := testConfig(t, s)
	cfg.MaxAttempts, cfg.RetryBudget = 10, time.Minute
	n := newNotifier(t, cfg)
	err := n.Notify(context.Background(), poolNote(0))
	assert.ErrorIs(t, err, billing.ErrUndeliverable)
	assert.EqualValues(t, 1, s.MailCalls.Load())
}

func TestConfigRejectsNegativePoolAndBudget(t *testing.T) {
	s := startServer(t)
	cfg := testConfig(t, s)
	cfg.MaxConns, cfg.RetryBudget = -1, -time.Second
	err := cfg.Validate()
	require.ErrorIs(t, err, ErrInvalidConfig)
	assert.Contains(t, err.Error(), "MaxConns must not be negative")
	assert.Contains(t, err.Error(), "RetryBudget")
	d := Config{}.withDefaults()
	assert.Equal(t, 8, d.MaxConns)
	assert.Equal(t, 3, d.MaxAttempts)
	assert.Equal(t, 3*time.Second, d.RetryBudget)
}
