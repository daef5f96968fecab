package billing

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// InboxConfig tunes the webhook inbox. The zero value of each field is the documented
// default.
type InboxConfig struct {
	// Backoff is the wait before each retry of a failed (or parked) event: the n-th retry
	// waits Backoff[n-1], the last entry repeating. Default 1m, 5m, 30m, 2h, 6h, 12h, 24h.
	Backoff []time.Duration
	// MaxAttempts: a failed event that has been attempted this many times ends dead.
	// Default 10 (about four and a half days with the default backoff).
	MaxAttempts int
	// ParkWait: a parked event whose awaited object did not appear within it ends ignored
	// ("unknown object"). Default 72h, as long as Stripe retries a delivery.
	ParkWait time.Duration
	// Lease is how long the worker owns a claimed event; it renews the lease while it
	// works, and a crashed worker's events are taken again after it. Default 1 minute.
	Lease time.Duration
	// Poll is how often an idle worker looks for due events. Default 1s; an event
	// accepted by a handler of the same Service wakes it at once.
	Poll time.Duration
	// Batch is how many events the worker claims at a time. Default 64.
	Batch int
	// Concurrency bounds how many gateway objects the worker applies events of at once.
	// Default 8.
	Concurrency int
	// BusyShare gives the acknowledgements priority over the processing: while this
	// process's webhook handlers are accepting events (one accepted within the last 50ms)
	// and goroutines are waiting for a CPU, the worker applies one event at a time and
	// pauses after each, so that applying takes at most this share of its time (a pause
	// lasts at most Poll). A backlog still drains meanwhile, faster once the deliveries
	// ease. Default 0.2; 1 never pauses.
	BusyShare float64
}

func (c *InboxConfig) setDefaults() {
	if len(c.Backoff) == 0 {
		c.Backoff = []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour}
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 10
	}
	if c.ParkWait == 0 {
		c.ParkWait = 72 * time.Hour
	}
	if c.Lease == 0 {
		c.Lease = time.Minute
	}
	if c.Poll == 0 {
		c.Poll = time.Second
	}
	if c.Batch == 0 {
		c.Batch = 64
	}
	if c.Concurrency == 0 {
		c.Concurrency = 8
	}
	if c.BusyShare == 0 {
		c.BusyShare = 0.2
	}
}

// Validate reports every problem with the inbox configuration at once.
func (c InboxConfig) Validate() error {
	var errs []error
	for i, d := range c.Backoff {
		if d < 0 {
			errs = append(errs, fmt.Errorf("Inbox.Backoff[%d]: %v is negative", i, d))
		}
	}
	for name, d := range map[string]time.Duration{"Inbox.ParkWait": c.ParkWait, "Inbox.Lease": c.Lease, "Inbox.Poll": c.Poll} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s: %v is negative; use 0 for the default", name, d))
		}
	}
	for name, n := range map[string]int{"Inbox.MaxAttempts": c.MaxAttempts, "Inbox.Batch": c.Batch, "Inbox.Concurrency": c.Concurrency} {
		if n < 0 {
			errs = append(errs, fmt.Errorf("%s: %d is negative; use 0 for the default", name, n))
		}
	}
	if c.BusyShare < 0 || c.BusyShare > 1 {
		errs = append(errs, fmt.Errorf("Inbox.BusyShare: %v is outside 0..1; use 0 for the default", c.BusyShare))
	}
	return errors.Join(errs...)
}

func (c InboxConfig) backoff(attempts int) time.Duration {
	return c.Backoff[min(max(attempts, 1), len(c.Backoff))-1]
}

// WebhookProcessor applies one stored event of its gateway: it decodes ev.Payload and
// calls the PaymentProcessor. It reports ignored=true for events renewkit does not act
// on. An error wrapping ErrNotFound parks the event (what it names does not exist yet);
// ErrBadReference or ErrChargeMismatch ends it ignored with the reason; any other error
// fails it, to be retried on InboxConfig.Backoff.
type WebhookProcessor func(ctx context.Context, ev WebhookEvent) (ignored bool, err error)

// inbox is the per-Service state of the webhook inbox.
type inbox struct {
	mu     sync.RWMutex
	procs  map[string]WebhookProcessor
	signal chan struct{} // poked when an event is accepted or woken
	// accepted is when (time.Now, UnixNano) a handler of this process last accepted an
	// event: the worker yields to acknowledgements in progress (InboxConfig.BusyShare).
	accepted atomic.Int64
}

func newInbox() *inbox {
	return &inbox{procs: map[string]WebhookProcessor{}, signal: make(chan struct{}, 1)}
}

func (ib *inbox) poke() {
	select {
	case ib.signal <- struct{}{}:
	default:
	}
}

// markAccepted records that an event is being accepted now. The time is written at most
// once a millisecond: concurrent handlers mostly only read it.
func (ib *inbox) markAccepted() {
	now := time.Now().UnixNano()
	if now-ib.accepted.Load() >= int64(time.Millisecond) {
		ib.accepted.Store(now)
	}
}

// accepting reports whether a handler accepted an event within the last 50ms.
func (ib *inbox) accepting() bool {
	return time.Now().UnixNano()-ib.accepted.Load() < int64(50*time.Millisecond)
}

func (ib *inbox) processor(gateway string) WebhookProcessor {
	ib.mu.RLock()
	defer ib.mu.RUnlock()
	return ib.procs[gateway]
}

// RegisterWebhookProcessor sets how the inbox worker applies the events of gateway. The
// gateway packages' webhook handlers register themselves when they are built; the latest
// registration of a gateway wins.
func (s *Service) RegisterWebhookProcessor(gateway string, p WebhookProcessor) error {
	if gateway == "" || p == nil {
		return fmt.Errorf("%w: RegisterWebhookProcessor needs a gateway name and a processor", ErrInvalidInput)
	}
	s.inbox.mu.Lock()
	defer s.inbox.mu.Unlock()
	s.inbox.procs[gateway] = p
	return nil
}

// OutcomeAccepted: the event was stored in the inbox; the inbox worker applies it.
const OutcomeAccepted EventOutcome = "accepted"

// AcceptWebhookEvent stores a verified event in the inbox for the worker and returns
// OutcomeAccepted, or EventOutcomeDuplicate when the event is already stored (nothing is
// written). An error means the event is not stored: answer 5xx so the gateway retries.
func (s *Service) AcceptWebhookEvent(ctx context.Context, ev WebhookEvent) (EventOutcome, error) {
	if ev.Gateway == "" || ev.EventID == "" {
		return EventOutcomeFailed, fmt.Errorf("%w: webhook event needs a gateway and an event id", ErrInvalidInput)
	}
	s.inbox.markAccepted()
	ev.OccurredAt = TruncateTime(ev.OccurredAt)
	_, inserted, err := s.store.PutWebhookEvent(ctx, ev, s.now())
	if err != nil {
		return EventOutcomeFailed, fmt.Errorf("storing webhook event %s/%s: %w", ev.Gateway, ev.EventID, err)
	}
	if !inserted {
		return EventOutcomeDuplicate, nil
	}
	s.inbox.poke()
	return OutcomeAccepted, nil
}

// HandleWebhookEvent is the inline delivery: it stores ev in the inbox like
// AcceptWebhookEvent and processes it at once with process, returning the outcome for the
// response. A delivery of an event already processed or ignored is a duplicate and process
// is not called; a delivery of a pending event (failed, parked, or not yet taken by a
// worker) processes it now; one while someone else holds it returns EventOutcomeInProgress. The
// event ends like the worker would end it (processed, ignored, failed, parked), so a
// worker retries what failed here. The error of a failed or parked attempt is returned
// with EventOutcomeFailed.
func (s *Service) HandleWebhookEvent(ctx context.Context, ev WebhookEvent, process func(ctx context.Context) (ignored bool, err error)) (EventOutcome, error) {
	if ev.Gateway == "" || ev.EventID == "" {
		return EventOutcomeFailed, fmt.Errorf("%w: webhook event needs a gateway and an event id", ErrInvalidInput)
	}
	ev.OccurredAt = TruncateTime(ev.OccurredAt)
	now := s.now()
	stored, _, err := s.store.PutWebhookEvent(ctx, ev, now)
	if err != nil {
		return EventOutcomeFailed, fmt.Errorf("recording webhook event %s/%s: %w", ev.Gateway, ev.EventID, err)
	}
	if !stored.State.Pending() {
		return EventOutcomeDuplicate, nil
	}
	token := newToken()
	claimed, err := s.store.ClaimWebhookEvents(ctx, WebhookClaimParams{Token: token, Now: now, LeaseUntil: now.Add(s.cfg.Inbox.Lease),
		Limit: 1, Gateway: ev.Gateway, EventID: ev.EventID})
	if err != nil {
		return EventOutcomeFailed, fmt.Errorf("claiming webhook event %s/%s: %w", ev.Gateway, ev.EventID, err)
	}
	if len(claimed) == 0 {
		cur, err := s.store.GetWebhookEvent(ctx, ev.Gateway, ev.EventID)
		if err == nil && !cur.State.Pending() {
			return EventOutcomeDuplicate, nil
		}
		return EventOutcomeInProgress, nil
	}
	_, outcome, perr, ferr := s.attempt(ctx, claimed[0], token, true, func(ctx context.Context, _ WebhookEvent) (bool, error) { return process(ctx) })
	if ferr != nil {
		return EventOutcomeFailed, errors.Join(perr, ferr)
	}
	return outcome, perr
}

// attempt processes one claimed event and records the outcome. It returns the attempt's
// record (with the state the event was left in), the outcome for an inline answer, the processing error (nil for a
// success or an ignored event) and the error of recording the outcome.
func (s *Service) attempt(ctx context.Context, ev WebhookEvent, token string, inline bool, process WebhookProcessor) (WebhookAttempt, EventOutcome, error, error) {
	start := time.Now()
	startClock := s.now()
	ignored, perr := process(ctx, ev)
	took := time.Since(start)
	cfg := s.cfg.Inbox
	now := s.now()
	f := WebhookFinish{Gateway: ev.Gateway, EventID: ev.EventID, Token: token, Attempts: ev.Attempts, Now: now}
	outcome := EventOutcomeProcessed
	switch {
	case perr == nil && ignored:
		f.State, outcome = WebhookEventStateIgnored, EventOutcomeIgnored
	case perr == nil:
		f.State = WebhookEventStateProcessed
	case Refused(perr):
		s.log.WarnContext(ctx, "webhook event rejected", "gateway", ev.Gateway, "event_id", ev.EventID, "event_type", ev.Type, "error", perr)
		f.State, f.Error, outcome, perr = WebhookEventStateIgnored, errText(perr), EventOutcomeRejected, nil
	case errors.Is(perr, ErrNotFound):
		parkedAt := ev.ParkedAt
		if parkedAt.IsZero() {
			parkedAt = startClock
		}
		deadline := parkedAt.Add(cfg.ParkWait)
		if !now.Before(deadline) {
			s.log.WarnContext(ctx, "webhook event ignored: the object it names never appeared", "gateway", ev.Gateway,
				"event_id", ev.EventID, "event_type", ev.Type, "parked_at", parkedAt, "error", perr)
			f.State, f.Error, outcome = WebhookEventStateIgnored, "unknown object: "+errText(perr), EventOutcomeIgnored
			perr = nil
			break
		}
		f.State, f.Error, f.ParkedAt, outcome = WebhookEventStateParked, errText(perr), parkedAt, EventOutcomeFailed
		f.NextAttemptAt = minTime(now.Add(cfg.backoff(ev.Attempts)), deadline)
	case ev.Attempts >= cfg.MaxAttempts && !inline && !errors.Is(perr, ErrConflict):
		// Inline, the gateway's redeliveries are the retries: the event stays failed. A
		// conflict (a concurrent writer) is not the event's fault and never kills it.
		s.log.ErrorContext(ctx, "webhook event dead: out of attempts; replay it from the admin API once the cause is fixed",
			"gateway", ev.Gateway, "event_id", ev.EventID, "event_type", ev.Type, "attempts", ev.Attempts, "error", perr)
		f.State, f.Error, outcome = WebhookEventStateDead, errText(perr), EventOutcomeFailed
	default:
		f.State, f.Error, outcome = WebhookEventStateFailed, errText(perr), EventOutcomeFailed
		f.NextAttemptAt = now.Add(cfg.backoff(ev.Attempts))
		if errors.Is(perr, ErrConflict) {
			f.NextAttemptAt = now // a concurrent writer: retry at once
		}
	}
	f.Attempt = WebhookAttempt{At: startClock, State: f.State, Error: f.Error, Duration: took}
	if err := s.finishWebhookEvent(ctx, f); err != nil {
		return f.Attempt, EventOutcomeFailed, perr, fmt.Errorf("recording outcome of %s/%s: %w", ev.Gateway, ev.EventID, err)
	}
	if !f.State.Pending() && ev.ObjectKey != "" {
		// The event is done with: parked events of its object may find what they wait
		// for, and later ones held back behind it may go.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.inboxWriteBudget())
		defer cancel()
		n, err := s.store.WakeWebhookEvents(wctx, ev.Gateway, ev.ObjectKey, now)
		if err != nil {
			s.log.WarnContext(ctx, "waking parked webhook events; they retry on their backoff", "gateway", ev.Gateway,
				"object", ev.ObjectKey, "error", err)
		} else if n > 0 {
			s.inbox.poke()
		}
	}
	return f.Attempt, outcome, perr, nil
}

// inboxWriteBudget is how long one write ending an attempt may take, as the jobs give their
// outcome writes: the lease (renewed meanwhile), at most a minute.
func (s *Service) inboxWriteBudget() time.Duration { return min(s.cfg.Inbox.Lease, time.Minute) }

// finishWebhookEvent records f, outliving ctx, each try within inboxWriteBudget, a few
// tries while it fails. A conflict (the lease is lost) is not retried. When every try
// fails the event stays claimed and is taken again once its lease ends.
func (s *Service) finishWebhookEvent(ctx context.Context, f WebhookFinish) error {
	ctx = context.WithoutCancel(ctx)
	var conflict error
	err := retry(ctx, 3, func() error {
		fctx, cancel := context.WithTimeout(ctx, s.inboxWriteBudget())
		defer cancel()
		err := s.store.FinishWebhookEvent(fctx, f)
		if errors.Is(err, ErrConflict) {
			conflict = err
			return nil
		}
		return err
	})
	return errors.Join(err, conflict)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// ReplayWebhookEvent makes a failed, dead or ignored event due again; the inbox worker
// processes it on its next poll. Another state is ErrInvalidTransition.
func (s *Service) ReplayWebhookEvent(ctx context.Context, gateway, eventID string) (WebhookEvent, error) {
	ev, err := s.store.ReplayWebhookEvent(ctx, gateway, eventID, s.now())
	if err != nil {
		return WebhookEvent{}, err
	}
	s.inbox.poke()
	return ev, nil
}

// WebhookEventCursor is the ListWebhookEvents cursor that continues after ev.
func WebhookEventCursor(ev WebhookEvent) string {
	raw := strconv.FormatInt(ev.ReceivedAt.UnixMilli(), 10) + "|" + WebhookEventKey(ev.Gateway, ev.EventID)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// WebhookEventKey is the order key of an event after its ReceivedAt: gateway ":" event id.
func WebhookEventKey(gateway, eventID string) string { return gateway + ":" + eventID }

// ParseWebhookEventCursor decodes a WebhookEventCursor: the ReceivedAt and key of the
// event to continue after. A cursor not made by WebhookEventCursor wraps ErrInvalidInput.
func ParseWebhookEventCursor(c string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	bad := fmt.Errorf("%w: malformed cursor; pass the next_cursor of a previous page", ErrInvalidInput)
	if err != nil {
		return time.Time{}, "", bad
	}
	ms, key, ok := strings.Cut(string(raw), "|")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil || key == "" {
		return time.Time{}, "", bad
	}
	return time.UnixMilli(n).UTC(), key, nil
}

// AfterWebhookCursor reports whether ev comes after the cursor position (at, key) in the
// listing order; stores use it to filter.
func AfterWebhookCursor(ev WebhookEvent, at time.Time, key string) bool {
	if !ev.ReceivedAt.Equal(at) {
		return ev.ReceivedAt.After(at)
	}
	return WebhookEventKey(ev.Gateway, ev.EventID) > key
}

// AppendWebhookAttempt appends a to history, keeping the newest MaxWebhookAttempts.
func AppendWebhookAttempt(history []WebhookAttempt, a WebhookAttempt) []WebhookAttempt {
	h := append(append([]WebhookAttempt(nil), history...), a)
	if n := len(h); n > MaxWebhookAttempts {
		h = h[n-MaxWebhookAttempts:]
	}
	return h
}

// ListWebhookEvents returns a page of inbox events (without payloads) and the cursor of
// the next page ("" on the last page). q.Limit 0 means 50; at most 500.
func (s *Service) ListWebhookEvents(ctx context.Context, q WebhookEventQuery) ([]WebhookEvent, string, error) {
	if q.Limit == 0 {
		q.Limit = 50
	}
	if q.Limit < 0 || q.Limit > 500 {
		return nil, "", fmt.Errorf("%w: limit %d is out of range 1..500", ErrInvalidInput, q.Limit)
	}
	if q.State != "" && !slicesContains(AllWebhookEventStates(), q.State) {
		return nil, "", fmt.Errorf("%w: unknown webhook event state %q; use one of received, failed, parked, processed, ignored, dead", ErrInvalidInput, q.State)
	}
	want := q.Limit
	q.Limit++ // one more tells whether there is a next page
	evs, err := s.store.ListWebhookEvents(ctx, q)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(evs) > want {
		evs = evs[:want]
		next = WebhookEventCursor(evs[want-1])
	}
	return evs, next, nil
}

// WebhookEvent returns one inbox event with its attempts.
func (s *Service) WebhookEvent(ctx context.Context, gateway, eventID string) (WebhookEvent, error) {
	return s.store.GetWebhookEvent(ctx, gateway, eventID)
}

// WebhookInboxStats counts the inbox by state and finds its oldest pending event.
func (s *Service) WebhookInboxStats(ctx context.Context) (WebhookInboxStats, error) {
	return s.store.WebhookInboxStats(ctx)
}

func slicesContains[T comparable](xs []T, x T) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
