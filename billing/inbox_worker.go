package billing

import (
	"context"
	"errors"
	"fmt"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// InboxWorker applies the events webhook handlers accepted into the inbox. Run one per
// process (replica): workers sharing a store claim events like the jobs claim records, so
// each event is processed by one worker at a time; a worker renews its leases while it
// works and a crashed worker's events are taken again once their lease ends.
//
// Events of one gateway object (WebhookEvent.ObjectKey) are applied in the gateway's
// order (OccurredAt): an event waits while an earlier one of its object is received or
// failed. A parked event does not hold the ones after it back: they may be the ones that
// create what it waits for.
type InboxWorker struct {
	svc   *Service
	cfg   InboxConfig
	token string
	// batches numbers the claims, for their tokens.
	batches atomic.Uint64
	// Observe, when set before Start, is called after each attempt with the event as
	// claimed and the attempt's record (metrics).
	Observe func(ev WebhookEvent, a WebhookAttempt)

	// busy reports whether applying events now takes the CPU from acknowledgements
	// (InboxConfig.BusyShare); pace is held for an event and its pause while it does.
	busy func() bool
	pace sync.Mutex

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// NewInboxWorker returns a worker applying svc's inbox with svc's Config.Inbox, through
// the WebhookProcessors registered on svc.
func NewInboxWorker(svc *Service) (*InboxWorker, error) {
	if svc == nil {
		return nil, fmt.Errorf("%w: missing service: pass billing.NewService(store, notifier, cfg)", ErrInvalidInput)
	}
	w := &InboxWorker{svc: svc, cfg: svc.cfg.Inbox, token: "inbox-" + newToken()}
	w.busy = func() bool { return svc.inbox.accepting() && cpuWanted() }
	return w, nil
}

const runnableMetric = "/sched/goroutines/runnable:goroutines"

// cpuWanted reports whether goroutines of this process are waiting for a CPU.
func cpuWanted() bool {
	s := []metrics.Sample{{Name: runnableMetric}}
	metrics.Read(s)
	return s[0].Value.Kind() == metrics.KindUint64 && s[0].Value.Uint64() > 0
}

// Start runs the worker in the background until Shutdown or until ctx ends.
func (w *InboxWorker) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done != nil {
		return errors.New("billing: inbox worker already started")
	}
	ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	w.done = make(chan struct{})
	go w.loop(ctx, w.done)
	return nil
}

// Shutdown stops claiming and waits until the events in hand are finished or ctx ends;
// events left unfinished are taken again by a worker once their lease ends.
func (w *InboxWorker) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	cancel, done := w.cancel, w.done
	w.mu.Unlock()
	if done == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *InboxWorker) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-w.svc.inbox.signal:
		}
		// Events in hand finish even when Shutdown is called meanwhile.
		n, err := w.RunOnce(context.WithoutCancel(ctx))
		if err != nil {
			w.svc.log.WarnContext(ctx, "webhook inbox worker", "error", err)
		}
		wait := w.cfg.Poll
		if n == w.cfg.Batch && err == nil {
			wait = 0 // more may be due
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// Drain runs RunOnce until a round claims nothing it could apply: what is due now is
// processed. For tests and hosts that drive the inbox themselves.
func (w *InboxWorker) Drain(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := w.RunOnce(ctx)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// RunOnce claims one batch of due events, applies them and returns how many it finished
// an attempt of (held-back events are not counted).
func (w *InboxWorker) RunOnce(ctx context.Context) (int, error) {
	now := w.svc.now()
	// A token per batch: renewing the leases of the batch in hand never extends the lease of
	// an event an earlier batch failed to finish, which is taken again when it ends.
	token := w.token + "-" + strconv.FormatUint(w.batches.Add(1), 10)
	evs, err := w.svc.store.ClaimWebhookEvents(ctx, WebhookClaimParams{Token: token, Now: now,
		LeaseUntil: now.Add(w.cfg.Lease), Limit: w.cfg.Batch})
	if len(evs) == 0 {
		return 0, err
	}
	// Events a failing claim did write are ours: apply them rather than leave them leased.
	claimErr := err
	stop := w.renew(ctx, token)
	defer stop()
	// The events of one gateway object go together, in order.
	var groups [][]WebhookEvent
	index := map[string]int{}
	for _, ev := range evs {
		if ev.ObjectKey == "" {
			groups = append(groups, []WebhookEvent{ev})
			continue
		}
		k := ev.Gateway + "\x00" + ev.ObjectKey
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], ev)
	}
	// At most Concurrency goroutines, each taking the next group until none is left: a
	// goroutine grows its stack to what applying an event needs once, not once per group.
	var (
		mu   sync.Mutex
		done int
		errs []error
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(w.cfg.Concurrency, len(groups)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(groups); i = int(next.Add(1) - 1) {
				for _, ev := range groups[i] {
					ok, err := w.paced(ctx, ev, token)
					mu.Lock()
					if ok {
						done++
					}
					if err != nil {
						errs = append(errs, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if claimErr != nil {
		errs = append(errs, claimErr)
	}
	return done, errors.Join(errs...)
}

// paced is one, yielding to the acknowledgements while they are busy
// (InboxConfig.BusyShare): one event at a time, then a pause.
func (w *InboxWorker) paced(ctx context.Context, ev WebhookEvent, token string) (bool, error) {
	if w.cfg.BusyShare >= 1 || !w.busy() {
		return w.one(ctx, ev, token)
	}
	w.pace.Lock()
	defer w.pace.Unlock()
	start := time.Now()
	ok, err := w.one(ctx, ev, token)
	took := time.Since(start)
	time.Sleep(min(time.Duration(float64(took)*(1-w.cfg.BusyShare)/w.cfg.BusyShare), w.cfg.Poll))
	return ok, err
}

// one applies a claimed event, or puts it back while an earlier event of its object is
// still to apply. It reports whether an attempt was made.
func (w *InboxWorker) one(ctx context.Context, ev WebhookEvent, token string) (bool, error) {
	s := w.svc
	if ev.ObjectKey != "" {
		blocked, err := s.store.WebhookEventBlocked(ctx, ev)
		if err == nil && blocked {
			now := s.now()
			err = s.finishWebhookEvent(ctx, WebhookFinish{Gateway: ev.Gateway, EventID: ev.EventID, Token: token,
				State: ev.State, Attempts: ev.Attempts - 1, Error: ev.Error, Now: now, NextAttemptAt: now.Add(w.cfg.Poll), ParkedAt: ev.ParkedAt})
			return false, err
		}
		if err != nil {
			return false, fmt.Errorf("ordering webhook event %s/%s: %w", ev.Gateway, ev.EventID, err)
		}
	}
	proc := s.inbox.processor(ev.Gateway)
	if proc == nil {
		proc = func(context.Context, WebhookEvent) (bool, error) {
			return false, fmt.Errorf("no webhook processor for gateway %q in this process: build its webhook handler with this Service", ev.Gateway)
		}
	}
	a, _, perr, ferr := s.attempt(ctx, ev, token, false, proc)
	state := a.State
	if w.Observe != nil && ferr == nil {
		w.Observe(ev, a)
	}
	if ferr != nil {
		return true, ferr
	}
	switch state {
	case WebhookEventStateProcessed:
		s.log.DebugContext(ctx, "webhook event processed", "gateway", ev.Gateway, "event_id", ev.EventID, "event_type", ev.Type)
	case WebhookEventStateFailed, WebhookEventStateParked:
		s.log.InfoContext(ctx, "webhook event will be retried", "gateway", ev.Gateway, "event_id", ev.EventID,
			"event_type", ev.Type, "state", string(state), "attempts", ev.Attempts, "error", perr)
	}
	return true, nil
}

// renew extends the leases of the batch claimed with token every third of a lease until
// the returned stop.
func (w *InboxWorker) renew(ctx context.Context, token string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(max(w.cfg.Lease/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := w.svc.store.RenewWebhookLeases(ctx, token, w.svc.now().Add(w.cfg.Lease)); err != nil && ctx.Err() == nil {
					w.svc.log.WarnContext(ctx, "renewing webhook event leases", "error", err)
				}
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}
