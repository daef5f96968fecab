package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrConsoleUnsupported: the store lacks the optional Console capability (or
// SnapshotStore for snapshots) the operations console needs.
var ErrConsoleUnsupported = fmt.Errorf("%w: the store has no console queries: use store/memstore or store/mongostore, or implement billing.Console", ErrInvalidInput)

func (s *Service) console() (Console, error) {
	c, ok := s.store.(Console)
	if !ok {
		return nil, ErrConsoleUnsupported
	}
	return c, nil
}

// SearchSubscriptions lists subscriptions for the console (Console.SearchSubscriptions).
func (s *Service) SearchSubscriptions(ctx context.Context, q SubscriptionQuery) ([]Subscription, Cursor, error) {
	c, err := s.console()
	if err != nil {
		return nil, Cursor{}, err
	}
	return c.SearchSubscriptions(ctx, q)
}

// ListPayments lists payments for the console (Console.ListPayments).
func (s *Service) ListPayments(ctx context.Context, q PaymentQuery) ([]Payment, Cursor, error) {
	c, err := s.console()
	if err != nil {
		return nil, Cursor{}, err
	}
	return c.ListPayments(ctx, q)
}

// ListNotifications lists notification records, the email log (Console.ListNotifications).
func (s *Service) ListNotifications(ctx context.Context, q NotificationQuery) ([]NotificationRecord, Cursor, error) {
	c, err := s.console()
	if err != nil {
		return nil, Cursor{}, err
	}
	return c.ListNotifications(ctx, q)
}

// Timeline sources.
const (
	SourceAudit        = "audit"        // an audit entry written by the processor, a webhook or an operator
	SourceJob          = "job"          // an audit entry of a job's action (actor renewkit)
	SourceNotification = "notification" // an email (its send-once record)
	SourcePayment      = "payment"
)

// TimelineEvent is one thing that happened to a subscription. Exactly one of Audit,
// Notification, Payment and Webhook is set, as Source says.
type TimelineEvent struct {
	At     time.Time `json:"at"`
	Source string    `json:"source"`
	// What: the audit action, notification kind or payment status.
	What         string              `json:"what"`
	Audit        *AuditEntry         `json:"audit,omitempty"`
	Notification *NotificationRecord `json:"notification,omitempty"`
	Payment      *Payment            `json:"payment,omitempty"`
	// Webhook is an inbox event (SourceWebhook, What its type, At its ReceivedAt), without
	// its payload.
	Webhook *WebhookEvent `json:"webhook,omitempty"`
}

// Timeline is a subscription's story, newest first.
type Timeline struct {
	Subscription Subscription    `json:"subscription"`
	User         *User           `json:"user,omitempty"`
	Events       []TimelineEvent `json:"events"`
	// Truncated: a source had more than the limit; only its newest are listed.
	Truncated bool `json:"truncated"`
}

// jobActions are the audit actions the jobs write for the records they change.
var jobActions = []string{AuditWarningSent, AuditSubscriptionExpired, AuditAccessRevoked}

// Timeline returns the subscription's audit entries (its own, its user's and its payments'), job
// actions, notifications, payments and webhook inbox events in one time order, newest
// first, at most limit (1 to MaxPageSize, 0: DefaultPageSize) of each source (of webhook
// events, per gateway). ErrNotFound for an unknown or soft-deleted subscription. Webhook
// events are matched by the gateway object they name: the subscription's gateway id and
// its listed payments' gateway ids. A Stripe charge or dispute event (keyed by a charge id
// no record keeps) and a Mercado Pago payment notification for a payment not recorded
// against the subscription are not matched.
func (s *Service) Timeline(ctx context.Context, subscriptionID string, limit int) (Timeline, error) {
	c, err := s.console()
	if err != nil {
		return Timeline{}, err
	}
	if limit, err = PageLimit(limit); err != nil {
		return Timeline{}, err
	}
	sub, err := s.store.GetSubscription(ctx, subscriptionID)
	if err != nil {
		return Timeline{}, err
	}
	tl := Timeline{Subscription: sub, Events: []TimelineEvent{}}
	if u, err := s.store.GetUser(ctx, sub.UserID); err == nil {
		tl.User = &u
	} else if !errors.Is(err, ErrNotFound) {
		return Timeline{}, err
	}
	pays, next, err := c.ListPayments(ctx, PaymentQuery{SubscriptionID: sub.ID, Limit: limit})
	if err != nil && !isRecordError(err) {
		return Timeline{}, fmt.Errorf("listing payments: %w", err)
	}
	tl.Truncated = tl.Truncated || !next.IsZero()
	entities := []string{sub.ID, sub.UserID} // the user's entries: access changes
	for i := range pays {
		p := pays[i]
		entities = append(entities, p.ID)
		tl.Events = append(tl.Events, TimelineEvent{At: p.CreatedAt, Source: SourcePayment, What: string(p.Status), Payment: &p})
	}
	notes, next, err := c.ListNotifications(ctx, NotificationQuery{SubscriptionID: sub.ID, Limit: limit})
	if err != nil && !isRecordError(err) {
		return Timeline{}, fmt.Errorf("listing notifications: %w", err)
	}
	tl.Truncated = tl.Truncated || !next.IsZero()
	for i := range notes {
		n := notes[i]
		tl.Events = append(tl.Events, TimelineEvent{At: n.CreatedAt, Source: SourceNotification, What: string(n.Kind), Notification: &n})
	}
	audit, err := c.ListEntityAudit(ctx, entities, limit)
	if err != nil && !isRecordError(err) {
		return Timeline{}, fmt.Errorf("listing audit entries: %w", err)
	}
	tl.Truncated = tl.Truncated || len(audit) == limit
	for i := range audit {
		e := audit[i]
		src := SourceAudit
		if e.Actor == "renewkit" && slices.Contains(jobActions, e.Action) {
			src = SourceJob
		}
		tl.Events = append(tl.Events, TimelineEvent{At: e.CreatedAt, Source: src, What: e.Action, Audit: &e})
	}
	hooks, more, err := s.webhookTimeline(ctx, sub, pays, limit)
	if err != nil {
		return Timeline{}, err
	}
	tl.Truncated = tl.Truncated || more
	tl.Events = append(tl.Events, hooks...)
	slices.SortStableFunc(tl.Events, func(a, b TimelineEvent) int { return b.At.Compare(a.At) })
	return tl, nil
}

func isRecordError(err error) bool {
	var re *RecordError
	return errors.As(err, &re)
}

// AllCancellationSources returns the causes Cancellations counts, in a new slice each call.
func AllCancellationSources() []string {
	return []string{"user", "payment_failure", "expiry", "reversal"}
}

// CancellationSources are the causes Cancellations counts.
//
// Deprecated: use AllCancellationSources, which a caller cannot change for everyone else.
var CancellationSources = AllCancellationSources()

// MonthCancellations counts the subscriptions that ended in one month, by cause.
type MonthCancellations struct {
	Month    string         `json:"month"` // "2026-01"
	BySource map[string]int `json:"by_source"`
}

// Cancellations counts the subscriptions that ended in each of the last months (the
// current one included, oldest first), by cause: "expiry" (the expiry job, the period
// ran out), "payment_failure" (expired while past due: the gateway could not charge),
// "reversal" (a refund or chargeback ended it) and "user" (cancelled at the gateway or by
// the host application). Read from the audit log.
func (s *Service) Cancellations(ctx context.Context, months int) ([]MonthCancellations, error) {
	if months < 1 || months > 36 {
		return nil, fmt.Errorf("%w: months %d: use 1 to 36", ErrInvalidInput, months)
	}
	now := s.now()
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	since := AddMonths(first, -(months - 1))
	out := make([]MonthCancellations, months)
	index := map[string]int{}
	for i := range out {
		m := AddMonths(since, i).Format("2006-01")
		out[i] = MonthCancellations{Month: m, BySource: map[string]int{}}
		index[m] = i
	}
	for _, action := range []string{AuditSubscriptionExpired, AuditSubscriptionEnded} {
		es, err := s.store.ListAudit(ctx, AuditFilter{Action: action, Since: since})
		if err != nil {
			return nil, fmt.Errorf("reading audit log: %w", err)
		}
		for _, e := range es {
			i, ok := index[e.CreatedAt.UTC().Format("2006-01")]
			if !ok {
				continue
			}
			src := "user"
			switch {
			case e.Details["reversal"] != nil:
				src = "reversal"
			case action == AuditSubscriptionExpired && e.Details["previous_status"] == string(SubscriptionStatusPastDue):
				src = "payment_failure"
			case action == AuditSubscriptionExpired:
				src = "expiry"
			}
			out[i].BySource[src]++
		}
	}
	return out, nil
}

// ExpectedRevenue is what scheduled renewals should bring in one currency through one
// gateway.
type ExpectedRevenue struct {
	Currency      string `json:"currency"`
	Gateway       string `json:"gateway"`
	Amount        int64  `json:"amount"` // minor units
	Subscriptions int    `json:"subscriptions"`
}

// Forecast sums the plan prices of the auto-renewing live subscriptions whose period ends
// within the next days (1 to 366), per currency and gateway: the renewals the gateways are
// expected to charge. Manual subscriptions and those set to cancel are not counted.
func (s *Service) Forecast(ctx context.Context, days int) ([]ExpectedRevenue, error) {
	if days < 1 || days > 366 {
		return nil, fmt.Errorf("%w: days %d: use 1 to 366", ErrInvalidInput, days)
	}
	now := s.now()
	yes := true
	subs, err := s.store.ListSubscriptions(ctx, SubscriptionFilter{Statuses: []SubscriptionStatus{SubscriptionStatusActive, SubscriptionStatusPastDue},
		PeriodEndAfter: now, PeriodEndBefore: now.Add(time.Duration(days) * 24 * time.Hour), AutoRenews: &yes}, 0)
	if err != nil && !isRecordError(err) {
		return nil, fmt.Errorf("listing renewals: %w", err)
	}
	plans, err := s.store.ListPlans(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing plans: %w", err)
	}
	price := map[string]Money{}
	for _, p := range plans {
		price[p.ID] = p.Price
	}
	type key struct{ cur, gw string }
	sums := map[key]*ExpectedRevenue{}
	for _, sub := range subs {
		m, ok := price[sub.PlanID]
		if !ok || m.Currency == "" {
			continue
		}
		k := key{m.Currency, sub.Gateway}
		if sums[k] == nil {
			sums[k] = &ExpectedRevenue{Currency: m.Currency, Gateway: sub.Gateway}
		}
		sums[k].Amount += m.Amount
		sums[k].Subscriptions++
	}
	out := make([]ExpectedRevenue, 0, len(sums))
	for _, v := range sums {
		out = append(out, *v)
	}
	slices.SortFunc(out, func(a, b ExpectedRevenue) int {
		if a.Currency != b.Currency {
			return compareStrings(a.Currency, b.Currency)
		}
		return compareStrings(a.Gateway, b.Gateway)
	})
	return out, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TakeSnapshot stores today's DailySnapshot (subscriptions by status and MRR per
// currency) through the store's SnapshotStore capability, replacing one taken earlier
// today. ErrConsoleUnsupported without the capability.
func (s *Service) TakeSnapshot(ctx context.Context) (DailySnapshot, error) {
	ss, ok := s.store.(SnapshotStore)
	if !ok {
		return DailySnapshot{}, ErrConsoleUnsupported
	}
	by, err := s.store.CountSubscriptionsByStatus(ctx)
	if err != nil {
		return DailySnapshot{}, fmt.Errorf("counting subscriptions: %w", err)
	}
	an, err := s.Analytics(ctx)
	if err != nil {
		return DailySnapshot{}, err
	}
	now := s.now()
	snap := DailySnapshot{Day: SnapshotDay(now), ByStatus: by, MRR: an.MRR, Taken: now}
	if err := ss.PutDailySnapshot(ctx, snap); err != nil {
		return DailySnapshot{}, fmt.Errorf("storing snapshot: %w", err)
	}
	return snap, nil
}

// Snapshots returns the daily snapshots of the last days (1 to 366), oldest first.
func (s *Service) Snapshots(ctx context.Context, days int) ([]DailySnapshot, error) {
	ss, ok := s.store.(SnapshotStore)
	if !ok {
		return nil, ErrConsoleUnsupported
	}
	if days < 1 || days > 366 {
		return nil, fmt.Errorf("%w: days %d: use 1 to 366", ErrInvalidInput, days)
	}
	return ss.ListDailySnapshots(ctx, s.now().AddDate(0, 0, -(days-1)))
}

// JobSnapshot is the id of the job SnapshotJob returns.
const JobSnapshot = "snapshot_subscriptions"

// snapshotResult is the result of a snapshot run.
type snapshotResult struct {
	Success bool `json:"success"`
	Total   int  `json:"total_found"`
}

func (r snapshotResult) Found() int    { return r.Total }
func (r snapshotResult) Failures() int { return 0 }

// SnapshotJob is a job that takes the day's snapshot (TakeSnapshot), by default at 23:50
// daily. Add it to the scheduler's jobs beside Jobs() to feed the console's charts.
func (s *Service) SnapshotJob() Job {
	return Job{ID: JobSnapshot, Name: "Snapshot subscriptions",
		Description: "stores today's subscriptions by status and MRR per currency for the console's charts",
		Schedule:    "50 23 * * *",
		Run: func(ctx context.Context) (Result, error) {
			snap, err := s.TakeSnapshot(ctx)
			if err != nil {
				return snapshotResult{}, err
			}
			n := 0
			for _, c := range snap.ByStatus {
				n += c
			}
			return snapshotResult{Success: true, Total: n}, nil
		}}
}

// GetSubscription returns the subscription and its user (nil when the user record is
// missing). ErrNotFound for an unknown or soft-deleted subscription.
func (s *Service) GetSubscription(ctx context.Context, id string) (Subscription, *User, error) {
	sub, err := s.store.GetSubscription(ctx, id)
	if err != nil {
		return Subscription{}, nil, err
	}
	u, err := s.store.GetUser(ctx, sub.UserID)
	switch {
	case err == nil:
		return sub, &u, nil
	case errors.Is(err, ErrNotFound):
		return sub, nil, nil
	}
	return sub, nil, err
}

// GetNotification returns the notification record with key; ErrNotFound without one.
func (s *Service) GetNotification(ctx context.Context, key string) (NotificationRecord, error) {
	return s.store.GetNotification(ctx, key)
}
