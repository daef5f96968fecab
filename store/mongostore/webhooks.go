package mongostore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
)

type attemptDoc struct {
	At       time.Time `bson:"at"`
	State    string    `bson:"state"`
	Error    string    `bson:"error,omitempty"`
	Duration int64     `bson:"duration_ns"`
}

type eventDoc struct {
	Gateway       string       `bson:"gateway"`
	EventID       string       `bson:"event_id"`
	Type          string       `bson:"type"`
	ObjectKey     string       `bson:"object_key"`
	OccurredAt    time.Time    `bson:"occurred_at"`
	Payload       []byte       `bson:"payload"`
	State         string       `bson:"state"`
	Attempts      int          `bson:"attempts"`
	Error         string       `bson:"error"`
	ReceivedAt    time.Time    `bson:"received_at"`
	UpdatedAt     time.Time    `bson:"updated_at"`
	NextAttemptAt time.Time    `bson:"next_attempt_at"`
	ParkedAt      time.Time    `bson:"parked_at"`
	FinishedAt    time.Time    `bson:"finished_at"`
	LeaseUntil    time.Time    `bson:"lease_until"`
	LeaseToken    string       `bson:"lease_token"`
	History       []attemptDoc `bson:"history"`
}

func decodeEvent(raw bson.Raw) (billing.WebhookEvent, error) {
	d, err := unmarshal[eventDoc](raw)
	ev := billing.WebhookEvent{
		Gateway: d.Gateway, EventID: d.EventID, Type: d.Type, ObjectKey: d.ObjectKey, OccurredAt: utc(d.OccurredAt),
		Payload: d.Payload, State: billing.WebhookEventState(d.State), Attempts: d.Attempts, Error: d.Error,
		ReceivedAt: utc(d.ReceivedAt), UpdatedAt: utc(d.UpdatedAt), NextAttemptAt: utc(d.NextAttemptAt),
		ParkedAt: utc(d.ParkedAt), FinishedAt: utc(d.FinishedAt), LeaseUntil: utc(d.LeaseUntil), LeaseToken: d.LeaseToken,
	}
	for _, a := range d.History {
		ev.History = append(ev.History, billing.WebhookAttempt{At: utc(a.At), State: billing.WebhookEventState(a.State),
			Error: a.Error, Duration: time.Duration(a.Duration)})
	}
	return ev, err
}

// eventKey is the _id of an event: unique per (gateway, event id) without relying on an
// index, so the dedupe holds before EnsureIndexes runs. It is billing.WebhookEventKey, the
// listing order after received_at.
func eventKey(gateway, eventID string) string { return billing.WebhookEventKey(gateway, eventID) }

func (s *Store) getEvent(ctx context.Context, gateway, eventID string) (billing.WebhookEvent, error) {
	return findOne(ctx, s.events, bson.D{{Key: "_id", Value: eventKey(gateway, eventID)}}, decodeEvent, "webhook event", eventID)
}

func date(t time.Time) bson.DateTime { return bson.NewDateTimeFromTime(t) }

// pendingStates matches the states the worker still has to process.
func pendingStates() bson.D {
	return bson.D{{Key: "$in", Value: bson.A{string(billing.WebhookEventStateReceived), string(billing.WebhookEventStateFailed), string(billing.WebhookEventStateParked)}}}
}

// unleased matches an event without a live lease at now.
func unleased(now time.Time) bson.E {
	return bson.E{Key: "$or", Value: bson.A{
		bson.D{{Key: "lease_until", Value: bson.D{{Key: "$exists", Value: false}}}},
		bson.D{{Key: "lease_until", Value: bson.D{{Key: "$lte", Value: date(now)}}}},
	}}
}

func (s *Store) PutWebhookEvent(ctx context.Context, ev billing.WebhookEvent, now time.Time) (billing.WebhookEvent, bool, error) {
	if err := ctx.Err(); err != nil {
		return billing.WebhookEvent{}, false, err
	}
	if ev.Gateway == "" || ev.EventID == "" {
		return billing.WebhookEvent{}, false, fmt.Errorf("mongostore: webhook event needs a gateway and an id: %w", billing.ErrInvalidInput)
	}
	ev.State, ev.Attempts, ev.Error, ev.History = billing.WebhookEventStateReceived, 0, "", nil
	ev.ReceivedAt, ev.UpdatedAt, ev.NextAttemptAt = utc(now), utc(now), utc(now)
	ev.OccurredAt, ev.ParkedAt, ev.FinishedAt, ev.LeaseUntil, ev.LeaseToken = utc(ev.OccurredAt), time.Time{}, time.Time{}, time.Time{}, ""
	f := &fields{}
	f.put("gateway", ev.Gateway)
	f.put("event_id", ev.EventID)
	f.put("type", ev.Type)
	f.optStr("object_key", ev.ObjectKey)
	f.time("occurred_at", ev.OccurredAt)
	if len(ev.Payload) > 0 {
		f.put("payload", bson.Binary{Data: ev.Payload})
	}
	f.put("state", string(ev.State))
	f.put("attempts", 0)
	f.time("received_at", ev.ReceivedAt)
	f.time("updated_at", ev.UpdatedAt)
	f.time("next_attempt_at", ev.NextAttemptAt)
	doc := append(bson.D{{Key: "_id", Value: eventKey(ev.Gateway, ev.EventID)}}, f.set...)
	_, err := s.events.InsertOne(ctx, doc)
	if err == nil {
		return ev, true, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return billing.WebhookEvent{}, false, opErr("put webhook event", err)
	}
	cur, err := s.getEvent(ctx, ev.Gateway, ev.EventID)
	if err != nil || !billing.FillsLegacyEvent(cur, ev, now) {
		return cur, false, err
	}
	return s.fillLegacyEvent(ctx, cur, ev, now)
}

// fillLegacyEvent gives cur, stored without a payload, the payload and identity of ev and
// makes it due now (see billing.WebhookEventStore.PutWebhookEvent), conditional on cur's
// state and updated_at as read, under the events write mutex in ClaimSerialized mode.
func (s *Store) fillLegacyEvent(ctx context.Context, cur, ev billing.WebhookEvent, now time.Time) (billing.WebhookEvent, bool, error) {
	f := &fields{}
	f.put("payload", bson.Binary{Data: ev.Payload})
	f.put("type", ev.Type)
	f.optStr("object_key", ev.ObjectKey)
	f.time("occurred_at", ev.OccurredAt)
	f.put("state", string(billing.WebhookEventStateReceived))
	f.time("next_attempt_at", now)
	f.time("updated_at", now)
	f.drop("lease_until")
	f.drop("lease_token")
	op := bulkOp{id: eventKey(cur.Gateway, cur.EventID), idv: eventKey(cur.Gateway, cur.EventID), upd: f.update(), cond: bson.D{
		{Key: "payload", Value: bson.D{{Key: "$exists", Value: false}}},
		{Key: "state", Value: string(cur.State)},
		{Key: "updated_at", Value: bson.NewDateTimeFromTime(cur.UpdatedAt)},
	}}
	errs := make([]error, 1)
	if err := s.bulkApply(ctx, s.events, "webhook event", []bulkOp{op}, errs, nil); err != nil {
		return billing.WebhookEvent{}, false, err
	}
	if errs[0] != nil {
		return billing.WebhookEvent{}, false, errs[0]
	}
	got, err := s.getEvent(ctx, cur.Gateway, cur.EventID)
	// Filled by this call, or by a concurrent delivery of the same event: either way due.
	filled := err == nil && got.State == billing.WebhookEventStateReceived && bytes.Equal(got.Payload, ev.Payload)
	return got, filled && got.UpdatedAt.Equal(bson.NewDateTimeFromTime(now).Time().UTC()), err
}

func (s *Store) ClaimWebhookEvents(ctx context.Context, p billing.WebhookClaimParams) ([]billing.WebhookEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p.Token == "" || p.Limit <= 0 {
		return nil, fmt.Errorf("mongostore: claiming webhook events needs a token and a positive limit: %w", billing.ErrInvalidInput)
	}
	filter := bson.D{{Key: "state", Value: pendingStates()}, unleased(p.Now)}
	opts := options.Find().SetLimit(int64(p.Limit)).
		SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "state", Value: 1}, {Key: "attempts", Value: 1}, {Key: "lease_until", Value: 1}})
	if p.Gateway != "" && p.EventID != "" {
		filter = append(bson.D{{Key: "_id", Value: eventKey(p.Gateway, p.EventID)}}, filter...)
		opts.SetLimit(1)
	} else {
		filter = append(filter, bson.E{Key: "next_attempt_at", Value: bson.D{{Key: "$lte", Value: date(p.Now)}}})
		opts.SetSort(bson.D{{Key: "occurred_at", Value: 1}, {Key: "received_at", Value: 1}, {Key: "_id", Value: 1}})
	}
	var out []billing.WebhookEvent
	var bad []error
	err := s.exclusive(ctx, writeMutex(s.events), func() error {
		cur, err := s.events.Find(ctx, filter, opts)
		if err != nil {
			return err
		}
		var cands []struct {
			ID       string `bson:"_id"`
			State    string `bson:"state"`
			Attempts int    `bson:"attempts"`
		}
		if err := cur.All(ctx, &cands); err != nil {
			return err
		}
		for _, c := range cands {
			// Conditional on what was read: a concurrent claimer (or finish) wins.
			cond := bson.D{{Key: "_id", Value: c.ID}, {Key: "state", Value: c.State}, {Key: "attempts", Value: c.Attempts}, unleased(p.Now)}
			res := s.events.FindOneAndUpdate(ctx, cond, bson.D{{Key: "$set", Value: bson.D{
				{Key: "attempts", Value: c.Attempts + 1}, {Key: "lease_until", Value: date(p.LeaseUntil)},
				{Key: "lease_token", Value: p.Token}, {Key: "updated_at", Value: date(p.Now)},
			}}, {Key: "$unset", Value: bson.D{{Key: "woken", Value: ""}}}}, options.FindOneAndUpdate().SetReturnDocument(options.After))
			raw, err := res.Raw()
			if errors.Is(err, mongo.ErrNoDocuments) {
				continue
			}
			if err != nil {
				return err
			}
			ev, err := decodeEvent(raw)
			if err != nil {
				// Claimed but unreadable: reported, and claimable again when the lease ends.
				bad = append(bad, malformed(s.cfg.Collections.WebhookEvents, raw, err))
				continue
			}
			out = append(out, ev)
		}
		return nil
	})
	if err != nil {
		return out, errors.Join(opErr("claim webhook events", err), errors.Join(bad...))
	}
	return out, errors.Join(bad...)
}

func (s *Store) RenewWebhookLeases(ctx context.Context, token string, until time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if token == "" {
		return 0, fmt.Errorf("mongostore: renewing webhook leases needs a token: %w", billing.ErrInvalidInput)
	}
	var n int64
	err := s.exclusive(ctx, writeMutex(s.events), func() error {
		res, err := s.events.UpdateMany(ctx, bson.D{{Key: "lease_token", Value: token}, {Key: "state", Value: pendingStates()},
			{Key: "lease_until", Value: bson.D{{Key: "$exists", Value: true}}}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "lease_until", Value: date(until)}}}})
		if err == nil {
			n = res.ModifiedCount
		}
		return err
	})
	if err != nil {
		return 0, opErr("renew webhook leases", err)
	}
	return int(n), nil
}

func (s *Store) FinishWebhookEvent(ctx context.Context, f billing.WebhookFinish) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.Token == "" {
		return fmt.Errorf("mongostore: finishing a webhook event needs its claim token: %w", billing.ErrInvalidInput)
	}
	u := &fields{}
	u.put("state", string(f.State))
	u.put("attempts", f.Attempts)
	u.optStr("error", f.Error)
	u.time("updated_at", f.Now)
	u.time("parked_at", f.ParkedAt)
	if f.State.Pending() {
		u.time("next_attempt_at", f.NextAttemptAt)
		u.drop("finished_at")
	} else {
		u.drop("next_attempt_at")
		u.time("finished_at", f.Now)
	}
	u.drop("lease_until")
	u.drop("lease_token")
	var extra []bson.E
	if !f.Attempt.At.IsZero() {
		a := attemptDoc{At: utc(f.Attempt.At), State: string(f.Attempt.State), Error: f.Attempt.Error, Duration: int64(f.Attempt.Duration)}
		extra = append(extra, bson.E{Key: "$push", Value: bson.D{{Key: "history", Value: bson.D{
			{Key: "$each", Value: bson.A{a}}, {Key: "$slice", Value: -billing.MaxWebhookAttempts}}}}})
	}
	filter := bson.D{{Key: "_id", Value: eventKey(f.Gateway, f.EventID)}, {Key: "lease_token", Value: f.Token},
		{Key: "state", Value: pendingStates()}}
	var matched int64
	err := s.exclusive(ctx, writeMutex(s.events), func() error {
		res, err := s.events.UpdateOne(ctx, filter, u.update(extra...))
		if err != nil {
			return err
		}
		if matched = res.MatchedCount; matched == 0 || f.State != billing.WebhookEventStateParked && f.State != billing.WebhookEventStateReceived {
			return nil
		}
		// Woken while it was processed: due at once. A wake after this finish finds it
		// parked (or put back, received) and makes it due itself.
		_, err = s.events.UpdateOne(ctx, bson.D{{Key: "_id", Value: eventKey(f.Gateway, f.EventID)}, {Key: "state", Value: string(f.State)},
			{Key: "woken", Value: true}}, bson.D{{Key: "$set", Value: bson.D{{Key: "next_attempt_at", Value: date(f.Now)}}},
			{Key: "$unset", Value: bson.D{{Key: "woken", Value: ""}}}})
		return err
	})
	if err != nil {
		return opErr("finish webhook event", err)
	}
	if matched == 0 {
		if _, err := s.getEvent(ctx, f.Gateway, f.EventID); err != nil {
			return err
		}
		return fmt.Errorf("mongostore: webhook event %s/%s is not claimed with this token (lease lost): %w", f.Gateway, f.EventID, billing.ErrConflict)
	}
	return nil
}

func (s *Store) WebhookEventBlocked(ctx context.Context, ev billing.WebhookEvent) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if ev.ObjectKey == "" || ev.OccurredAt.IsZero() {
		return false, nil
	}
	n, err := s.events.CountDocuments(ctx, bson.D{{Key: "gateway", Value: ev.Gateway}, {Key: "object_key", Value: ev.ObjectKey},
		{Key: "occurred_at", Value: bson.D{{Key: "$lt", Value: date(ev.OccurredAt)}}},
		{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{string(billing.WebhookEventStateReceived), string(billing.WebhookEventStateFailed)}}}}},
		options.Count().SetLimit(1))
	if err != nil {
		return false, opErr("webhook event order", err)
	}
	return n > 0, nil
}

func (s *Store) WakeWebhookEvents(ctx context.Context, gateway, objectKey string, now time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if objectKey == "" {
		return 0, nil
	}
	var n int64
	err := s.exclusive(ctx, writeMutex(s.events), func() error {
		if _, err := s.events.UpdateMany(ctx, bson.D{{Key: "gateway", Value: gateway}, {Key: "object_key", Value: objectKey},
			{Key: "state", Value: pendingStates()}, {Key: "lease_until", Value: bson.D{{Key: "$gt", Value: date(now)}}}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "woken", Value: true}}}}); err != nil {
			return err
		}
		res, err := s.events.UpdateMany(ctx, bson.D{{Key: "gateway", Value: gateway}, {Key: "object_key", Value: objectKey},
			{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{string(billing.WebhookEventStateParked), string(billing.WebhookEventStateReceived)}}}},
			{Key: "next_attempt_at", Value: bson.D{{Key: "$gt", Value: date(now)}}}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "next_attempt_at", Value: date(now)}}}})
		if err == nil {
			n = res.ModifiedCount
		}
		return err
	})
	if err != nil {
		return 0, opErr("wake webhook events", err)
	}
	return int(n), nil
}

func (s *Store) ReplayWebhookEvent(ctx context.Context, gateway, eventID string, now time.Time) (billing.WebhookEvent, error) {
	if err := ctx.Err(); err != nil {
		return billing.WebhookEvent{}, err
	}
	u := &fields{}
	u.put("state", string(billing.WebhookEventStateReceived))
	u.time("next_attempt_at", now)
	u.time("updated_at", now)
	u.drop("finished_at")
	u.drop("parked_at")
	u.drop("lease_until")
	u.drop("lease_token")
	var raw bson.Raw
	err := s.exclusive(ctx, writeMutex(s.events), func() error {
		var err error
		raw, err = s.events.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: eventKey(gateway, eventID)},
			{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{string(billing.WebhookEventStateFailed), string(billing.WebhookEventStateDead), string(billing.WebhookEventStateIgnored)}}}}},
			u.update(), options.FindOneAndUpdate().SetReturnDocument(options.After)).Raw()
		return err
	})
	if errors.Is(err, mongo.ErrNoDocuments) {
		cur, gerr := s.getEvent(ctx, gateway, eventID)
		if gerr != nil {
			return billing.WebhookEvent{}, gerr
		}
		return billing.WebhookEvent{}, fmt.Errorf("mongostore: webhook event %s/%s is %s; only failed, dead or ignored events are replayed: %w",
			gateway, eventID, cur.State, billing.ErrInvalidTransition)
	}
	if err != nil {
		return billing.WebhookEvent{}, opErr("replay webhook event", err)
	}
	return decodeEvent(raw)
}

func (s *Store) GetWebhookEvent(ctx context.Context, gateway, eventID string) (billing.WebhookEvent, error) {
	if err := ctx.Err(); err != nil {
		return billing.WebhookEvent{}, err
	}
	return s.getEvent(ctx, gateway, eventID)
}

func (s *Store) ListWebhookEvents(ctx context.Context, q billing.WebhookEventQuery) ([]billing.WebhookEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Limit <= 0 {
		return nil, fmt.Errorf("mongostore: listing webhook events needs a positive limit: %w", billing.ErrInvalidInput)
	}
	filter := bson.D{}
	if q.State != "" {
		filter = append(filter, bson.E{Key: "state", Value: string(q.State)})
	}
	if q.Gateway != "" {
		filter = append(filter, bson.E{Key: "gateway", Value: q.Gateway})
	}
	if q.After != "" {
		at, key, err := billing.ParseWebhookEventCursor(q.After)
		if err != nil {
			return nil, err
		}
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "received_at", Value: bson.D{{Key: "$gt", Value: date(at)}}}},
			bson.D{{Key: "received_at", Value: date(at)}, {Key: "_id", Value: bson.D{{Key: "$gt", Value: key}}}},
		}})
	}
	cur, err := s.events.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "received_at", Value: 1}, {Key: "_id", Value: 1}}).
		SetLimit(int64(q.Limit)).SetProjection(bson.D{{Key: "payload", Value: 0}}))
	if err != nil {
		return nil, opErr("list webhook events", err)
	}
	return decodeEach(ctx, cur, s.cfg.Collections.WebhookEvents, decodeEvent)
}

func (s *Store) WebhookInboxStats(ctx context.Context) (billing.WebhookInboxStats, error) {
	if err := ctx.Err(); err != nil {
		return billing.WebhookInboxStats{}, err
	}
	st := billing.WebhookInboxStats{ByState: map[billing.WebhookEventState]int{}}
	for _, state := range billing.AllWebhookEventStates() {
		n, err := s.events.CountDocuments(ctx, bson.D{{Key: "state", Value: string(state)}})
		if err != nil {
			return st, opErr("webhook inbox stats", err)
		}
		if n > 0 {
			st.ByState[state] = int(n)
		}
	}
	var oldest struct {
		ReceivedAt time.Time `bson:"received_at"`
	}
	err := s.events.FindOne(ctx, bson.D{{Key: "state", Value: pendingStates()}},
		options.FindOne().SetSort(bson.D{{Key: "received_at", Value: 1}}).SetProjection(bson.D{{Key: "received_at", Value: 1}})).Decode(&oldest)
	switch {
	case err == nil:
		st.OldestPending = utc(oldest.ReceivedAt)
	case err != mongo.ErrNoDocuments:
		return st, opErr("webhook inbox stats", err)
	}
	return st, nil
}

// ListObjectWebhookEvents implements billing.WebhookEventStore, served by the
// gateway_object_received index.
func (s *Store) ListObjectWebhookEvents(ctx context.Context, gateway string, objectKeys []string, limit int) ([]billing.WebhookEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if gateway == "" || limit < 1 || limit > billing.MaxPageSize || len(objectKeys) > billing.MaxPageSize {
		return nil, fmt.Errorf("mongostore: listing an object's webhook events needs a gateway, a limit of 1 to %d and at most %d keys: %w",
			billing.MaxPageSize, billing.MaxPageSize, billing.ErrInvalidInput)
	}
	if len(objectKeys) == 0 {
		return []billing.WebhookEvent{}, nil
	}
	cur, err := s.events.Find(ctx, bson.D{{Key: "gateway", Value: gateway}, {Key: "object_key", Value: bson.D{{Key: "$in", Value: objectKeys}}}},
		options.Find().SetSort(bson.D{{Key: "received_at", Value: -1}, {Key: "event_id", Value: -1}}).
			SetLimit(int64(limit)).SetProjection(bson.D{{Key: "payload", Value: 0}}))
	if err != nil {
		return nil, opErr("list an object's webhook events", err)
	}
	evs, err := decodeEach(ctx, cur, s.cfg.Collections.WebhookEvents, decodeEvent)
	if evs == nil && err == nil {
		evs = []billing.WebhookEvent{}
	}
	return evs, err
}
