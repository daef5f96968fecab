package billing

import (
	"context"
	"time"
)

// WebhookEventState is the processing state of an inbound gateway event.
type WebhookEventState string

const (
	EventReceived  WebhookEventState = "received"
	EventProcessed WebhookEventState = "processed"
	EventFailed    WebhookEventState = "failed"
	EventIgnored   WebhookEventState = "ignored"
)

// WebhookEvent is one inbound event, unique by (Gateway, EventID).
type WebhookEvent struct {
	Gateway    string            `json:"gateway"`
	EventID    string            `json:"event_id"`
	Type       string            `json:"type"`
	State      WebhookEventState `json:"state"`
	Attempts   int               `json:"attempts"`
	Error      string            `json:"error,omitempty"`
	ReceivedAt time.Time         `json:"received_at"`
	UpdatedAt  time.Time         `json:"updated_at"`
	// LeaseUntil: while State is received, the delivery that began it owns processing
	// until then; a concurrent duplicate is told to come back later.
	LeaseUntil time.Time `json:"lease_until,omitzero"`
}

// WebhookEventStore is the webhook inbox.
type WebhookEventStore interface {
	// BeginWebhookEvent records a delivery of ev. A new event is stored as received with
	// Attempts 1 and leased until leaseUntil; an existing one that failed, or whose lease
	// ended at or before now, is taken again (Attempts+1). The returned event shows the
	// state found: processed or ignored means a duplicate, received with a live lease held
	// by another delivery means in progress (the returned bool is false in both cases).
	BeginWebhookEvent(ctx context.Context, ev WebhookEvent, now, leaseUntil time.Time) (WebhookEvent, bool, error)
	// FinishWebhookEvent stores the outcome of processing.
	FinishWebhookEvent(ctx context.Context, gateway, eventID string, state WebhookEventState, errText string, now time.Time) error
	GetWebhookEvent(ctx context.Context, gateway, eventID string) (WebhookEvent, error)
}
