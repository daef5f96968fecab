package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/renewkit/renewkit/billing"
)

type eventDoc struct {
	Gateway    string    `bson:"gateway"`
	EventID    string    `bson:"event_id"`
	Type       string    `bson:"type"`
	State      string    `bson:"state"`
	Attempts   int       `bson:"attempts"`
	Error      string    `bson:"error"`
	ReceivedAt time.Time `bson:"received_at"`
	UpdatedAt  time.Time `bson:"updated_at"`
	LeaseUntil time.Time `bson:"lease_until"`
}

func decodeEvent(raw bson.Raw) (billing.WebhookEvent, error) {
	d, err := unmarshal[eventDoc](raw)
	return billing.WebhookEvent{
		Gateway: d.Gateway, EventID: d.EventID, Type: d.Type, State: billing.WebhookEventState(d.State),
		Attempts: d.Attempts, Error: d.Error, ReceivedAt: utc(d.ReceivedAt), UpdatedAt: utc(d.UpdatedAt),
		LeaseUntil: utc(d.LeaseUntil),
	}, err
}

// eventKey is the _id of an event: unique per (gateway, event id) without relying on an
// index, so the dedupe holds before EnsureIndexes runs.
func eventKey(gateway, eventID string) string { return gateway + ":" + eventID }

func (s *Store) getEvent(ctx context.Context, gateway, eventID string) (billing.WebhookEvent, error) {
	return findOne(ctx, s.events, bson.D{{Key: "_id", Value: eventKey(gateway, eventID)}}, decodeEvent, "webhook event", eventID)
}

func (s *Store) BeginWebhookEvent(ctx context.Context, ev billing.WebhookEvent, now, leaseUntil time.Time) (billing.WebhookEvent, bool, error) {
	if err := ctx.Err(); err != nil {
		return billing.WebhookEvent{}, false, err
	}
	if ev.Gateway == "" || ev.EventID == "" {
		return billing.WebhookEvent{}, false, fmt.Errorf("mongostore: webhook event needs a gateway and an id: %w", billing.ErrInvalidInput)
	}
	ev.State, ev.Attempts, ev.Error = billing.EventReceived, 1, ""
	ev.ReceivedAt, ev.UpdatedAt, ev.LeaseUntil = utc(now), utc(now), utc(leaseUntil)
	f := &fields{}
	f.put("gateway", ev.Gateway)
	f.put("event_id", ev.EventID)
	f.put("type", ev.Type)
	f.put("state", string(ev.State))
	f.put("attempts", ev.Attempts)
	f.time("received_at", ev.ReceivedAt)
	f.time("updated_at", ev.UpdatedAt)
	f.time("lease_until", ev.LeaseUntil)
	doc := append(bson.D{{Key: "_id", Value: eventKey(ev.Gateway, ev.EventID)}}, f.set...)
	_, err := s.events.InsertOne(ctx, doc)
	if err == nil {
		return ev, true, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return billing.WebhookEvent{}, false, opErr("begin webhook event", err)
	}
	// Seen before: take it again only if it failed or its lease ended.
	var out billing.WebhookEvent
	var took bool
	err = s.exclusive(ctx, "webhook/"+s.cfg.Collections.WebhookEvents, func() error {
		cur, err := s.getEvent(ctx, ev.Gateway, ev.EventID)
		if err != nil {
			return err
		}
		out = cur
		switch {
		case cur.State == billing.EventProcessed || cur.State == billing.EventIgnored:
			return nil
		case cur.State == billing.EventReceived && cur.LeaseUntil.After(now):
			return nil
		}
		filter := bson.D{{Key: "_id", Value: eventKey(ev.Gateway, ev.EventID)},
			{Key: "state", Value: string(cur.State)}, {Key: "attempts", Value: cur.Attempts}}
		res, err := s.events.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{
			{Key: "state", Value: string(billing.EventReceived)}, {Key: "attempts", Value: cur.Attempts + 1},
			{Key: "updated_at", Value: bson.NewDateTimeFromTime(now)}, {Key: "lease_until", Value: bson.NewDateTimeFromTime(leaseUntil)},
		}}})
		if err != nil {
			return err
		}
		if res.MatchedCount == 0 { // another delivery took it between our read and write
			out, err = s.getEvent(ctx, ev.Gateway, ev.EventID)
			return err
		}
		out.State, out.Attempts, out.UpdatedAt, out.LeaseUntil = billing.EventReceived, cur.Attempts+1, utc(now), utc(leaseUntil)
		took = true
		return nil
	})
	if err != nil {
		if errors.Is(err, billing.ErrNotFound) {
			return billing.WebhookEvent{}, false, err
		}
		return billing.WebhookEvent{}, false, opErr("begin webhook event", err)
	}
	return out, took, nil
}

func (s *Store) FinishWebhookEvent(ctx context.Context, gateway, eventID string, state billing.WebhookEventState, errText string, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f := &fields{}
	f.put("state", string(state))
	f.optStr("error", errText)
	f.time("updated_at", now)
	f.drop("lease_until")
	res, err := s.events.UpdateOne(ctx, bson.D{{Key: "_id", Value: eventKey(gateway, eventID)}}, f.update())
	if err != nil {
		return opErr("finish webhook event", err)
	}
	if res.MatchedCount == 0 {
		return notFound("webhook event", eventID)
	}
	return nil
}

func (s *Store) GetWebhookEvent(ctx context.Context, gateway, eventID string) (billing.WebhookEvent, error) {
	if err := ctx.Err(); err != nil {
		return billing.WebhookEvent{}, err
	}
	return s.getEvent(ctx, gateway, eventID)
}
