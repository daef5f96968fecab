package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// The webhook inbox (events, inbox, woken) has its own lock, Store.hooks, apart from the
// mutex over everything else: accepting an event never waits behind the subscription,
// payment, user and audit writes its processing makes. Every method here holds only hooks;
// Prune alone takes hooks, for the webhook events, while it holds mu (the order is mu, then
// hooks), and nothing takes mu while holding hooks, so the two never deadlock.

// hookRead runs f under the inbox's read lock unless ctx is done.
func hookRead[R any](ctx context.Context, s *Store, f func() (R, error)) (R, error) {
	return locked(ctx, s.hooks.RLocker(), f)
}

// hookWrite runs f under the inbox's write lock unless ctx is done.
func hookWrite[R any](ctx context.Context, s *Store, f func() (R, error)) (R, error) {
	return locked(ctx, &s.hooks, f)
}

// hookUpdate is hookWrite for a critical section with no result but its error.
func hookUpdate(ctx context.Context, s *Store, f func() error) error {
	_, err := hookWrite(ctx, s, func() (struct{}, error) { return struct{}{}, f() })
	return err
}

// pruneWebhookEvents deletes at most limit final events received before before, under the
// inbox's lock, and returns how many. Only final events go, and the pending index holds
// none of them.
func (s *Store) pruneWebhookEvents(before time.Time, limit int) int {
	s.hooks.Lock()
	defer s.hooks.Unlock()
	return pruneMap(s.events, limit, func(ev billing.WebhookEvent) bool {
		return ev.ReceivedAt.Before(before) && !ev.State.Pending()
	})
}

func cloneEvent(ev billing.WebhookEvent) billing.WebhookEvent {
	ev.Payload = slices.Clone(ev.Payload)
	ev.History = slices.Clone(ev.History)
	return ev
}

func (s *Store) PutWebhookEvent(ctx context.Context, ev billing.WebhookEvent, now time.Time) (billing.WebhookEvent, bool, error) {
	if err := ctx.Err(); err != nil {
		return billing.WebhookEvent{}, false, err
	}
	if ev.Gateway == "" || ev.EventID == "" {
		return billing.WebhookEvent{}, false, fmt.Errorf("memstore: webhook event needs a gateway and an id: %w", billing.ErrInvalidInput)
	}
	// The new record and its payload copy are built before the lock is taken: under it, an
	// accepted event costs a map lookup and the index insert.
	k := gwKey(ev.Gateway, ev.EventID)
	given := ev.Payload
	ev.State, ev.Attempts, ev.Error, ev.History = billing.WebhookEventStateReceived, 0, "", nil
	ev.ReceivedAt, ev.UpdatedAt, ev.NextAttemptAt = t0(now), t0(now), t0(now)
	ev.OccurredAt, ev.ParkedAt, ev.FinishedAt = t0(ev.OccurredAt), time.Time{}, time.Time{}
	ev.LeaseUntil, ev.LeaseToken = time.Time{}, ""
	ev.Payload = slices.Clone(given)
	s.hooks.Lock()
	defer s.hooks.Unlock()
	if cur, ok := s.events[k]; ok {
		if !billing.FillsLegacyEvent(cur, ev, now) {
			return cloneEvent(cur), false, nil
		}
		cur.Payload, cur.Type, cur.ObjectKey, cur.OccurredAt = ev.Payload, ev.Type, ev.ObjectKey, ev.OccurredAt
		cur.State, cur.NextAttemptAt, cur.UpdatedAt = billing.WebhookEventStateReceived, t0(now), t0(now)
		cur.LeaseUntil, cur.LeaseToken = time.Time{}, ""
		s.setEvent(k, cur)
		return cloneEvent(cur), true, nil
	}
	s.setEvent(k, ev)
	ev.Payload = given // the caller's own bytes: equal to the stored copy, which stays unshared
	return ev, true, nil
}

func (s *Store) ClaimWebhookEvents(ctx context.Context, p billing.WebhookClaimParams) ([]billing.WebhookEvent, error) {
	return hookWrite(ctx, s, func() ([]billing.WebhookEvent, error) {
		if p.Token == "" || p.Limit <= 0 {
			return nil, fmt.Errorf("memstore: claiming webhook events needs a token and a positive limit: %w", billing.ErrInvalidInput)
		}
		claimable := func(ev billing.WebhookEvent) bool {
			return ev.State.Pending() && !ev.LeaseUntil.After(p.Now)
		}
		var keys []string
		if p.Gateway != "" && p.EventID != "" {
			if ev, ok := s.events[gwKey(p.Gateway, p.EventID)]; ok && claimable(ev) {
				keys = append(keys, gwKey(p.Gateway, p.EventID))
			}
		} else {
			// The pending events in claim order: the first Limit due and unleased ones.
			for _, e := range s.inbox.order {
				if len(keys) == p.Limit {
					break
				}
				if ev := s.events[e.key]; claimable(ev) && !ev.NextAttemptAt.After(p.Now) {
					keys = append(keys, e.key)
				}
			}
		}
		out := make([]billing.WebhookEvent, 0, len(keys))
		for _, k := range keys {
			ev := s.events[k]
			ev.Attempts++
			ev.LeaseUntil, ev.LeaseToken, ev.UpdatedAt = t0(p.LeaseUntil), p.Token, t0(p.Now)
			s.setEvent(k, ev)
			delete(s.woken, k)
			out = append(out, cloneEvent(ev))
		}
		return out, nil
	})
}

func (s *Store) RenewWebhookLeases(ctx context.Context, token string, until time.Time) (int, error) {
	return hookWrite(ctx, s, func() (int, error) {
		if token == "" {
			return 0, fmt.Errorf("memstore: renewing webhook leases needs a token: %w", billing.ErrInvalidInput)
		}
		n := 0
		for _, e := range s.inbox.order {
			if ev := s.events[e.key]; ev.LeaseToken == token && !ev.LeaseUntil.IsZero() {
				ev.LeaseUntil = t0(until)
				s.setEvent(e.key, ev)
				n++
			}
		}
		return n, nil
	})
}

func (s *Store) FinishWebhookEvent(ctx context.Context, f billing.WebhookFinish) error {
	return hookUpdate(ctx, s, func() error {
		k := gwKey(f.Gateway, f.EventID)
		cur, ok := s.events[k]
		if !ok {
			return notFound("webhook event", f.EventID)
		}
		if f.Token == "" || cur.LeaseToken != f.Token || cur.LeaseUntil.IsZero() || !cur.State.Pending() {
			return fmt.Errorf("memstore: webhook event %s/%s is not claimed with this token (lease lost): %w", f.Gateway, f.EventID, billing.ErrConflict)
		}
		cur.State, cur.Attempts, cur.Error, cur.UpdatedAt = f.State, f.Attempts, f.Error, t0(f.Now)
		cur.LeaseUntil, cur.LeaseToken = time.Time{}, ""
		cur.NextAttemptAt, cur.ParkedAt = time.Time{}, t0(f.ParkedAt)
		if f.State.Pending() {
			cur.NextAttemptAt = t0(f.NextAttemptAt)
			if (f.State == billing.WebhookEventStateParked || f.State == billing.WebhookEventStateReceived) && s.woken[k] {
				cur.NextAttemptAt = t0(f.Now)
			}
		} else {
			cur.FinishedAt = t0(f.Now)
		}
		if !f.Attempt.At.IsZero() {
			a := f.Attempt
			a.At = t0(a.At)
			cur.History = billing.AppendWebhookAttempt(cur.History, a)
		}
		s.setEvent(k, cur)
		delete(s.woken, k)
		return nil
	})
}

func (s *Store) WebhookEventBlocked(ctx context.Context, ev billing.WebhookEvent) (bool, error) {
	return hookRead(ctx, s, func() (bool, error) {
		if ev.ObjectKey == "" || ev.OccurredAt.IsZero() {
			return false, nil
		}
		for k := range s.inbox.object(ev.Gateway, ev.ObjectKey) {
			if o := s.events[k]; (o.State == billing.WebhookEventStateReceived || o.State == billing.WebhookEventStateFailed) &&
				!o.OccurredAt.IsZero() && o.OccurredAt.Before(ev.OccurredAt) {
				return true, nil
			}
		}
		return false, nil
	})
}

func (s *Store) WakeWebhookEvents(ctx context.Context, gateway, objectKey string, now time.Time) (int, error) {
	return hookWrite(ctx, s, func() (int, error) {
		if objectKey == "" {
			return 0, nil
		}
		n := 0
		for k := range s.inbox.object(gateway, objectKey) {
			ev := s.events[k]
			if ev.LeaseUntil.After(now) {
				s.woken[k] = true
			}
			if (ev.State == billing.WebhookEventStateParked || ev.State == billing.WebhookEventStateReceived) && ev.NextAttemptAt.After(now) {
				ev.NextAttemptAt = t0(now)
				s.setEvent(k, ev) // its place in the index is unchanged: ranging over the set is safe
				n++
			}
		}
		return n, nil
	})
}

func (s *Store) ReplayWebhookEvent(ctx context.Context, gateway, eventID string, now time.Time) (billing.WebhookEvent, error) {
	return hookWrite(ctx, s, func() (billing.WebhookEvent, error) {
		k := gwKey(gateway, eventID)
		cur, ok := s.events[k]
		if !ok {
			return billing.WebhookEvent{}, notFound("webhook event", eventID)
		}
		switch cur.State {
		case billing.WebhookEventStateFailed, billing.WebhookEventStateDead, billing.WebhookEventStateIgnored:
		default:
			return billing.WebhookEvent{}, fmt.Errorf("memstore: webhook event %s/%s is %s; only failed, dead or ignored events are replayed: %w",
				gateway, eventID, cur.State, billing.ErrInvalidTransition)
		}
		cur.State, cur.NextAttemptAt, cur.UpdatedAt = billing.WebhookEventStateReceived, t0(now), t0(now)
		cur.FinishedAt, cur.ParkedAt, cur.LeaseUntil, cur.LeaseToken = time.Time{}, time.Time{}, time.Time{}, ""
		s.setEvent(k, cur)
		return cloneEvent(cur), nil
	})
}

func (s *Store) GetWebhookEvent(ctx context.Context, gateway, eventID string) (billing.WebhookEvent, error) {
	return hookRead(ctx, s, func() (billing.WebhookEvent, error) {
		ev, ok := s.events[gwKey(gateway, eventID)]
		if !ok {
			return billing.WebhookEvent{}, notFound("webhook event", eventID)
		}
		return cloneEvent(ev), nil
	})
}

func (s *Store) ListWebhookEvents(ctx context.Context, q billing.WebhookEventQuery) ([]billing.WebhookEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Limit <= 0 {
		return nil, fmt.Errorf("memstore: listing webhook events needs a positive limit: %w", billing.ErrInvalidInput)
	}
	var (
		at    time.Time
		key   string
		after = q.After != ""
	)
	if after {
		var err error
		if at, key, err = billing.ParseWebhookEventCursor(q.After); err != nil {
			return nil, err
		}
	}
	s.hooks.RLock()
	var out []billing.WebhookEvent
	for _, ev := range s.events {
		if (q.State == "" || ev.State == q.State) && (q.Gateway == "" || ev.Gateway == q.Gateway) &&
			(!after || billing.AfterWebhookCursor(ev, at, key)) {
			ev = cloneEvent(ev)
			ev.Payload = nil
			out = append(out, ev)
		}
	}
	s.hooks.RUnlock()
	slices.SortFunc(out, func(a, b billing.WebhookEvent) int {
		return cmp.Or(a.ReceivedAt.Compare(b.ReceivedAt), cmp.Compare(billing.WebhookEventKey(a.Gateway, a.EventID), billing.WebhookEventKey(b.Gateway, b.EventID)))
	})
	return out[:min(len(out), q.Limit)], nil
}

func (s *Store) WebhookInboxStats(ctx context.Context) (billing.WebhookInboxStats, error) {
	return hookRead(ctx, s, func() (billing.WebhookInboxStats, error) {
		st := billing.WebhookInboxStats{ByState: map[billing.WebhookEventState]int{}}
		for _, ev := range s.events {
			st.ByState[ev.State]++
			if ev.State.Pending() && (st.OldestPending.IsZero() || ev.ReceivedAt.Before(st.OldestPending)) {
				st.OldestPending = ev.ReceivedAt
			}
		}
		return st, nil
	})
}

// ListObjectWebhookEvents implements billing.WebhookEventStore. memstore scans its events
// under the read lock, as ListWebhookEvents does: the cost grows with the inbox, not with
// the subscriptions.
func (s *Store) ListObjectWebhookEvents(ctx context.Context, gateway string, objectKeys []string, limit int) ([]billing.WebhookEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if gateway == "" || limit < 1 || limit > billing.MaxPageSize || len(objectKeys) > billing.MaxPageSize {
		return nil, fmt.Errorf("memstore: listing an object's webhook events needs a gateway, a limit of 1 to %d and at most %d keys: %w",
			billing.MaxPageSize, billing.MaxPageSize, billing.ErrInvalidInput)
	}
	out := []billing.WebhookEvent{}
	if len(objectKeys) == 0 {
		return out, nil
	}
	s.hooks.RLock()
	for _, ev := range s.events {
		if ev.Gateway == gateway && ev.ObjectKey != "" && slices.Contains(objectKeys, ev.ObjectKey) {
			ev = cloneEvent(ev)
			ev.Payload = nil
			out = append(out, ev)
		}
	}
	s.hooks.RUnlock()
	slices.SortFunc(out, func(a, b billing.WebhookEvent) int {
		return cmp.Or(b.ReceivedAt.Compare(a.ReceivedAt), cmp.Compare(b.EventID, a.EventID))
	})
	return out[:min(len(out), limit)], nil
}
