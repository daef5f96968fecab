package gateways

import (
	"context"
	"log/slog"

	"github.com/renewkit/renewkit/billing"
)

// Core is everything a gateway adapter needs from billing, and all it may use: the webhook
// inbox, the payment transitions, and the read-only lookups its event mapping depends on.
// *billing.PaymentProcessor implements it (pass svc.Processor()); a gateway package never
// holds the Store, so the rules and the locks around every write exist once, in billing.
type Core interface {
	// The webhook inbox.
	AcceptWebhookEvent(ctx context.Context, ev billing.WebhookEvent) (billing.EventOutcome, error)
	HandleWebhookEvent(ctx context.Context, ev billing.WebhookEvent, process func(ctx context.Context) (ignored bool, err error)) (billing.EventOutcome, error)
	RegisterWebhookProcessor(gateway string, p billing.WebhookProcessor) error

	// Payment and subscription transitions.
	ProcessApproved(ctx context.Context, p billing.ApproveParams) (billing.ProcessResult, error)
	ProcessFailed(ctx context.Context, p billing.FailParams) (billing.ProcessResult, error)
	ProcessCancelled(ctx context.Context, p billing.FailParams) (billing.ProcessResult, error)
	ApplyGatewayPayment(ctx context.Context, p billing.GatewayPaymentParams) (billing.ProcessResult, error)
	FailGatewayPayment(ctx context.Context, p billing.GatewayPaymentParams, reason string) (billing.ProcessResult, error)
	RecordCoveredPayment(ctx context.Context, p billing.GatewayPaymentParams) (billing.ProcessResult, error)
	LinkCheckoutPayment(ctx context.Context, p billing.LinkParams) error
	SyncSubscription(ctx context.Context, p billing.SyncParams) (billing.SyncResult, error)
	ProcessReversal(ctx context.Context, p billing.ReversalParams) (billing.ProcessResult, error)

	// Read-only lookups.
	FindSubscriptionByGateway(ctx context.Context, gateway, gatewaySubscriptionID string) (billing.Subscription, error)
	FindPaymentByGateway(ctx context.Context, gateway, gatewayPaymentID string) (billing.Payment, error)
	GetPlan(ctx context.Context, id string) (billing.Plan, error)
	VerifyReference(ref string) (billing.Reference, error)
	// Clock and Logger are the defaults of a gateway Config's Clock and Logger.
	Clock() billing.Clock
	Logger() *slog.Logger
}

var _ Core = (*billing.PaymentProcessor)(nil)
