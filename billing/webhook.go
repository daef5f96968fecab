package billing

import (
	"context"
	"time"
)

// WebhookEventState is the processing state of an inbound gateway event.
//
// An event is stored received. The inbox worker (or an inline delivery) then ends it
// processed or ignored, or sets it failed (retried on a backoff, then dead) or parked (it
// names an object renewkit does not have yet; retried when an event of that object is
// processed, else on the backoff, and ignored after InboxConfig.ParkWait). Received,
// failed and parked are pending; processed, ignored and dead are final. ReplayWebhookEvent
// makes a failed, dead or ignored event received again.
type WebhookEventState string

const (
	WebhookEventStateReceived  WebhookEventState = "received"
	WebhookEventStateProcessed WebhookEventState = "processed"
	WebhookEventStateFailed    WebhookEventState = "failed"
	WebhookEventStateIgnored   WebhookEventState = "ignored"
	WebhookEventStateParked    WebhookEventState = "parked"
	WebhookEventStateDead      WebhookEventState = "dead"
)

// Former names of the WebhookEventState values, kept for one release.
const (
	// Deprecated: use WebhookEventStateReceived.
	EventReceived = WebhookEventStateReceived
	// Deprecated: use WebhookEventStateProcessed.
	EventProcessed = WebhookEventStateProcessed
	// Deprecated: use WebhookEventStateFailed.
	EventFailed = WebhookEventStateFailed
	// Deprecated: use WebhookEventStateIgnored.
	EventIgnored = WebhookEventStateIgnored
	// Deprecated: use WebhookEventStateParked.
	EventParked = WebhookEventStateParked
	// Deprecated: use WebhookEventStateDead.
	EventDead = WebhookEventStateDead
)

// Pending reports whether an event in state s is still to be processed.
func (s WebhookEventState) Pending() bool {
	return s == WebhookEventStateReceived || s == WebhookEventStateFailed || s == WebhookEventStateParked
}

// AllWebhookEventStates returns every state, pending ones first, in a new slice each call.
func AllWebhookEventStates() []WebhookEventState {
	return []WebhookEventState{WebhookEventStateReceived, WebhookEventStateFailed, WebhookEventStateParked, WebhookEventStateProcessed, WebhookEventStateIgnored, WebhookEventStateDead}
}

// WebhookEventStates lists every state, pending ones first.
//
// Deprecated: use AllWebhookEventStates, which a caller cannot change for everyone else.
var WebhookEventStates = AllWebhookEventStates()

// MaxWebhookAttempts bounds WebhookEvent.History: the newest attempts are kept.
const MaxWebhookAttempts = 20

// WebhookEvent is one inbound event, unique by (Gateway, EventID).
type WebhookEvent struct {
	Gateway string `json:"gateway"`
	EventID string `json:"event_id"`
	Type    string `json:"type"`
	// ObjectKey names the gateway object the event is about (a Stripe subscription id, a
	// PayPal subscription id, a Mercado Pago payment): events of one object are applied in
	// OccurredAt order, and a parked event is woken when an event of its object is
	// processed. Empty: the event is ordered with nothing.
	ObjectKey string `json:"object_key,omitempty"`
	// OccurredAt is the gateway's own time of the event (Stripe's created, PayPal's
	// create_time); zero when the gateway sends none.
	OccurredAt time.Time `json:"occurred_at,omitzero"`
	// Payload is the verified event as its gateway handler stores it to process it later.
	// It is not part of the JSON form: it carries personal data.
	Payload []byte `json:"-"`

	State WebhookEventState `json:"state"`
	// Attempts counts processing attempts (a claim whose holder crashed included).
	Attempts int `json:"attempts"`
	// Error is the last failure, or why the event was ignored.
	Error      string    `json:"error,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	// NextAttemptAt: a pending event is not claimed by the worker before it.
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
	// ParkedAt: when the event was first parked (zero unless it is or was parked).
	ParkedAt time.Time `json:"parked_at,omitzero"`
	// FinishedAt: when it reached processed, ignored or dead.
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// LeaseUntil and LeaseToken: the claim of whoever processes the event. A claim whose
	// lease ended is taken by the next claimer.
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	LeaseToken string    `json:"-"`
	// History is the newest attempts, oldest first (at most MaxWebhookAttempts).
	History []WebhookAttempt `json:"history,omitempty"`
}

// WebhookAttempt is one processing attempt of a webhook event.
type WebhookAttempt struct {
	At       time.Time         `json:"at"`
	State    WebhookEventState `json:"state"` // the state the attempt left the event in
	Error    string            `json:"error,omitempty"`
	Duration time.Duration     `json:"duration_ns"`
}

// WebhookClaimParams select events to claim.
type WebhookClaimParams struct {
	// Token identifies the claimer; it must be non-empty.
	Token      string
	Now        time.Time
	LeaseUntil time.Time
	// Limit bounds how many events are claimed; it must be positive.
	Limit int
	// Gateway and EventID, when both set, claim that event only, and whenever it is pending
	// and not leased (NextAttemptAt does not hold it back): an inline delivery.
	Gateway string
	EventID string
}

// WebhookFinish is the outcome of one attempt, written only while the event is still
// claimed with Token (ErrConflict otherwise: the lease was lost).
type WebhookFinish struct {
	Gateway string
	EventID string
	Token   string
	State   WebhookEventState
	// Attempts is stored as the event's attempt count.
	Attempts      int
	Error         string
	Now           time.Time
	NextAttemptAt time.Time // for a pending state
	ParkedAt      time.Time // for parked
	// Attempt, when At is set, is appended to History.
	Attempt WebhookAttempt
}

// WebhookEventQuery selects events to list, in (ReceivedAt, Gateway, EventID) order.
type WebhookEventQuery struct {
	State   WebhookEventState // empty: any
	Gateway string            // empty: any
	// After continues a listing after the event with this cursor (WebhookEventCursor).
	After string
	// Limit must be positive.
	Limit int
}

// WebhookInboxStats describes the inbox at a moment.
type WebhookInboxStats struct {
	// ByState counts events per state; states without events are absent.
	ByState map[WebhookEventState]int `json:"by_state"`
	// OldestPending is the ReceivedAt of the oldest pending event; zero when none.
	OldestPending time.Time `json:"oldest_pending,omitzero"`
}

// WebhookEventStore is the webhook inbox.
type WebhookEventStore interface {
	// PutWebhookEvent stores ev as received (Attempts 0, ReceivedAt, UpdatedAt and
	// NextAttemptAt now) unless an event with its (Gateway, EventID) is stored: then it
	// writes nothing and returns the stored event with false. The exception is an event
	// stored without a payload (recorded before the inbox existed) that is failed, or
	// received with its lease ended: when ev carries a payload, the stored event takes ev's
	// payload, type, object key and occurred time, becomes received, due now and unleased
	// (attempts, history and ReceivedAt kept), and is returned with true.
	PutWebhookEvent(ctx context.Context, ev WebhookEvent, now time.Time) (WebhookEvent, bool, error)
	// ClaimWebhookEvents claims, for p.Token until p.LeaseUntil, up to p.Limit pending events
	// whose NextAttemptAt is at or before p.Now and whose lease ended (or that have none),
	// earliest OccurredAt first, and increments their Attempts. Two claimers never get one
	// event while its lease lasts. An event the store cannot decode is claimed like the
	// others but not returned: it is reported as a *RecordError (ID WebhookEventKey,
	// wrapping ErrMalformedRecord; several joined with errors.Join) next to the events
	// returned, and is claimable, and reported, again once the lease ends.
	ClaimWebhookEvents(ctx context.Context, p WebhookClaimParams) ([]WebhookEvent, error)
	// RenewWebhookLeases extends to until the lease of every event claimed with token and
	// still pending, and returns how many it extended.
	RenewWebhookLeases(ctx context.Context, token string, until time.Time) (int, error)
	// FinishWebhookEvent records an attempt's outcome and releases the claim.
	FinishWebhookEvent(ctx context.Context, f WebhookFinish) error
	// WebhookEventBlocked reports whether a received or failed event of ev's gateway and
	// ObjectKey occurred strictly before ev (an earlier event still to apply first).
	WebhookEventBlocked(ctx context.Context, ev WebhookEvent) (bool, error)
	// WakeWebhookEvents makes the parked events of gateway and objectKey, and its received
	// ones put back to wait behind an earlier event, due at now and returns how many. An
	// event of the object claimed at the time is marked, so that if its attempt ends parked
	// or put back it is due at once (no wake-up is lost to a race).
	WakeWebhookEvents(ctx context.Context, gateway, objectKey string, now time.Time) (int, error)
	// ReplayWebhookEvent makes a failed, dead or ignored event received again, due now,
	// with its attempt count and history kept. Another state is ErrInvalidTransition.
	ReplayWebhookEvent(ctx context.Context, gateway, eventID string, now time.Time) (WebhookEvent, error)
	GetWebhookEvent(ctx context.Context, gateway, eventID string) (WebhookEvent, error)
	// ListWebhookEvents returns up to q.Limit events after q.After, Payload left out.
	ListWebhookEvents(ctx context.Context, q WebhookEventQuery) ([]WebhookEvent, error)
	// ListObjectWebhookEvents returns the newest limit (1 to MaxPageSize) events of
	// gateway whose ObjectKey is one of objectKeys (at most MaxPageSize keys), newest
	// ReceivedAt first (ties by event id, descending), Payload left out. An index on
	// (gateway, object key, received time) serves it. The console's timeline reads it.
	ListObjectWebhookEvents(ctx context.Context, gateway string, objectKeys []string, limit int) ([]WebhookEvent, error)
	WebhookInboxStats(ctx context.Context) (WebhookInboxStats, error)
}

// FillsLegacyEvent reports whether redelivered, a delivery of stored's event, fills stored
// in at now (see WebhookEventStore.PutWebhookEvent): stored has no payload and is failed, or
// received with its lease ended, and redelivered carries a payload. Stores call it where
// they decide in Go.
func FillsLegacyEvent(stored, redelivered WebhookEvent, now time.Time) bool {
	return len(stored.Payload) == 0 && len(redelivered.Payload) > 0 &&
		(stored.State == WebhookEventStateFailed || stored.State == WebhookEventStateReceived && !stored.LeaseUntil.After(now))
}
