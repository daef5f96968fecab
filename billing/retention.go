package billing

import (
	"context"
	"fmt"
	"time"
)

// Retention says how long renewkit keeps its own bookkeeping. The cleanup_old_sessions job
// prunes what is older (see Pruner), so the send-once records, the webhook inbox, the
// locks and the claim fields stay bounded however long renewkit runs.
type Retention struct {
	// Notifications: send-once records created longer ago than this are deleted. Default
	// 400 days: a key names one period, and the longest cycle (yearly) plus a margin must
	// pass before its warning could be asked for again. Negative keeps them for ever.
	Notifications time.Duration
	// WebhookEvents: final inbox entries (processed, ignored, dead) received longer ago
	// than this are deleted; pending ones are kept until the inbox worker ends them. Default
	// 90 days; gateways stop retrying after a few days. Negative keeps them for ever.
	WebhookEvents time.Duration
	// Audit: audit entries older than this are deleted. Zero (the default) keeps them for
	// ever.
	Audit time.Duration
}

// Fixed horizons of the pruning step: a lock key idle for a day, and a claim whose lease
// ended an hour ago (a run renews its claims every ClaimLease/3), belong to nobody.
const (
	lockRetention  = 24 * time.Hour
	claimRetention = time.Hour
)

func (r *Retention) setDefaults() {
	if r.Notifications == 0 {
		r.Notifications = 400 * 24 * time.Hour
	}
	if r.WebhookEvents == 0 {
		r.WebhookEvents = 90 * 24 * time.Hour
	}
}

// PruneParams are the horizons of one Prune call.
type PruneParams struct {
	// NotificationsBefore: notification records created before it.
	NotificationsBefore time.Time
	// WebhookEventsBefore: webhook events received before it that are final (processed,
	// ignored, dead); pending events are kept until the inbox worker ends them.
	WebhookEventsBefore time.Time
	// AuditBefore: audit entries created before it.
	AuditBefore time.Time
	// LocksBefore: lock keys last acquired before it and not held (released, or expired
	// before it), their fencing state included: a key idle that long starts again.
	LocksBefore time.Time
	// ClaimsBefore: claims whose lease ended before it are removed from their records
	// (claim token and lease). Records with pending effects keep them.
	ClaimsBefore time.Time
	// Limit bounds the records of each kind one call removes; it must be positive.
	Limit int
}

// PruneResult counts what one or more Prune calls removed.
type PruneResult struct {
	Notifications int `json:"notifications,omitempty"`
	WebhookEvents int `json:"webhook_events,omitempty"`
	Audit         int `json:"audit,omitempty"`
	Locks         int `json:"locks,omitempty"`
	Claims        int `json:"claims,omitempty"`
}

func (r *PruneResult) add(o PruneResult) {
	r.Notifications += o.Notifications
	r.WebhookEvents += o.WebhookEvents
	r.Audit += o.Audit
	r.Locks += o.Locks
	r.Claims += o.Claims
}

// max is the largest count of one kind.
func (r PruneResult) max() int {
	return max(r.Notifications, r.WebhookEvents, r.Audit, r.Locks, r.Claims)
}

// pruneRounds bounds one run's pruning: BatchSize records of each kind per round.
const pruneRounds = 100

// prune runs the store's Pruner, if any, with the configured horizons, in rounds of
// BatchSize until a round finds less than a full batch of any kind (or pruneRounds).
func (s *Service) prune(ctx context.Context, now time.Time) (PruneResult, error) {
	var total PruneResult
	p, ok := s.store.(Pruner)
	if !ok {
		return total, nil
	}
	params := PruneParams{LocksBefore: now.Add(-lockRetention), ClaimsBefore: now.Add(-claimRetention), Limit: s.cfg.BatchSize}
	if r := s.cfg.Retention; r.Notifications > 0 {
		params.NotificationsBefore = now.Add(-r.Notifications)
	}
	if r := s.cfg.Retention; r.WebhookEvents > 0 {
		params.WebhookEventsBefore = now.Add(-r.WebhookEvents)
	}
	if r := s.cfg.Retention; r.Audit > 0 {
		params.AuditBefore = now.Add(-r.Audit)
	}
	for range pruneRounds {
		got, err := p.Prune(ctx, params)
		total.add(got)
		if err != nil {
			return total, fmt.Errorf("pruning: %w", err)
		}
		if got.max() < params.Limit {
			break
		}
	}
	return total, nil
}
