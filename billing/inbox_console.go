package billing

import (
	"context"
	"fmt"
	"slices"
)

// AuditWebhookReplayed is the audit action of an operator's replay of an inbox event.
const AuditWebhookReplayed = "webhook.replayed"

// SourceWebhook is the timeline source of an inbox event (TimelineEvent.Webhook).
const SourceWebhook = "webhook"

// ReplayWebhookEventBy is ReplayWebhookEvent done by an operator: it makes the failed, dead
// or ignored event due again and audits the replay with operator as the actor (entity
// type "webhook_event", entity id WebhookEventKey). ErrInvalidInput for an empty operator,
// ErrNotFound for an unknown event, ErrInvalidTransition for one in another state.
func (s *Service) ReplayWebhookEventBy(ctx context.Context, gateway, eventID, operator string) (WebhookEvent, error) {
	if operator == "" {
		return WebhookEvent{}, fmt.Errorf("%w: an action needs the operator's name", ErrInvalidInput)
	}
	before, err := s.store.GetWebhookEvent(ctx, gateway, eventID)
	if err != nil {
		return WebhookEvent{}, err
	}
	ev, err := s.ReplayWebhookEvent(ctx, gateway, eventID)
	if err != nil {
		return WebhookEvent{}, err
	}
	ev.Payload = nil
	if err := s.audit(context.WithoutCancel(ctx), AuditEntry{Action: AuditWebhookReplayed, EntityType: "webhook_event",
		EntityID: WebhookEventKey(gateway, eventID), Actor: operator,
		Details: map[string]any{"gateway": gateway, "event_id": eventID, "type": ev.Type, "previous_state": string(before.State)}}); err != nil {
		return ev, fmt.Errorf("auditing the replay of %s/%s: %w", gateway, eventID, err)
	}
	return ev, nil
}

// webhookObjectKeys are the inbox ObjectKeys, per gateway, under which the gateway
// handlers store events about sub and its payments pays:
//
//   - Stripe: the subscription id (subscription, invoice and checkout events of a
//     subscription) and the invoice ids renewkit keeps as payment ids (invoices without a
//     subscription). Charge and dispute events are keyed by the charge id, which no record
//     keeps: they are not matched.
//   - PayPal: the subscription id (subscription and sale events of a billing agreement),
//     and "sale:" + a payment's sale id (sales without an agreement, refunds).
//   - Mercado Pago: "subscription_preapproval:" + the preapproval id, and "payment:" + the
//     gateway id of each listed payment. A payment notification whose payment renewkit did
//     not record against the subscription (a rejected charge with no payment record, or
//     one older than the listed payments) names no subscription and is not matched.
//   - Any other gateway: the subscription's and payments' gateway ids as they are.
func webhookObjectKeys(sub Subscription, pays []Payment) map[string][]string {
	keys := map[string][]string{}
	add := func(gateway, key string) {
		if gateway == "" || key == "" || slices.Contains(keys[gateway], key) || len(keys[gateway]) >= MaxPageSize {
			return
		}
		keys[gateway] = append(keys[gateway], key)
	}
	if id := sub.GatewaySubscriptionID; id != "" {
		switch sub.Gateway {
		case GatewayMercadoPago:
			add(sub.Gateway, "subscription_preapproval:"+id)
		default:
			add(sub.Gateway, id)
		}
	}
	for _, p := range pays {
		id := p.GatewayPaymentID
		if id == "" {
			continue
		}
		switch p.Gateway {
		case GatewayMercadoPago:
			add(p.Gateway, "payment:"+id)
		case GatewayPayPal:
			add(p.Gateway, "sale:"+id)
		default:
			add(p.Gateway, id)
		}
	}
	return keys
}

// webhookTimeline lists the inbox events about sub and its payments (see
// webhookObjectKeys), newest first, at most limit per gateway, and whether a gateway had more.
func (s *Service) webhookTimeline(ctx context.Context, sub Subscription, pays []Payment, limit int) ([]TimelineEvent, bool, error) {
	var out []TimelineEvent
	truncated := false
	byGateway := webhookObjectKeys(sub, pays)
	gateways := make([]string, 0, len(byGateway))
	for g := range byGateway {
		gateways = append(gateways, g)
	}
	slices.Sort(gateways)
	for _, g := range gateways {
		evs, err := s.store.ListObjectWebhookEvents(ctx, g, byGateway[g], limit)
		if err != nil {
			return nil, false, fmt.Errorf("listing webhook events: %w", err)
		}
		truncated = truncated || len(evs) == limit
		for i := range evs {
			ev := evs[i]
			ev.Payload = nil
			out = append(out, TimelineEvent{At: ev.ReceivedAt, Source: SourceWebhook, What: ev.Type, Webhook: &ev})
		}
	}
	return out, truncated, nil
}
