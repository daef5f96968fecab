package mongostore

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// indexName returns the name set on m (every model here is named).
func indexName(m mongo.IndexModel) string {
	var o options.IndexOptions
	for _, set := range m.Options.List() {
		_ = set(&o)
	}
	if o.Name == nil {
		return ""
	}
	return *o.Name
}

func idx(name string, keys bson.D) mongo.IndexModel {
	return mongo.IndexModel{Keys: keys, Options: options.Index().SetName(name)}
}

func asc(fields ...string) bson.D {
	d := make(bson.D, len(fields))
	for i, f := range fields {
		d[i] = bson.E{Key: f, Value: 1}
	}
	return d
}

// EnsureIndexes creates the indexes the jobs' queries and claims use. It is idempotent and
// creates only the missing ones. See Indexes and retention in the package documentation.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	// Implementation:
	// EnsureIndexes creates the indexes the jobs' queries and claims use. It is idempotent.
	// Only plain, unique and sparse options are used: FerretDB v1 has no partial or TTL
	// indexes (and accepts sparse as a no-op; its SQLite unique indexes ignore documents that
	// lack the field). Leases, claims and retention compare times in queries instead of TTL
	// indexes. Uniqueness that matters without indexes (notification keys, webhook event ids,
	// lock tokens) is carried by _id.
	sets := []struct {
		c      *mongo.Collection
		models []mongo.IndexModel
	}{
		{s.subs, []mongo.IndexModel{
			// The claims' order: status $in, a current_period_end window, sorted by
			// (current_period_end, _id), which the index returns merged, without a sort.
			idx("status_period_end_id", asc("status", "current_period_end", "_id")),
			idx("claim_token", asc("claim_token")),
			idx("claim_until", asc("claim_until")), // pruning lapsed claims
			idx("pending_token", asc("pending_token")),
			idx("gateway_subscription", asc("gateway", "gateway_subscription_id")),
			idx("user_created", bson.D{{Key: "user_id", Value: 1}, {Key: "created_at", Value: -1}}),
			// The console's lists (newest first) and its search by gateway id.
			idx("created_id", newestSort),
			idx("status_created_id", append(asc("status"), newestSort...)),
			idx("gateway_created_id", append(asc("gateway"), newestSort...)),
			idx("plan_created_id", append(asc("plan_id"), newestSort...)),
			idx("gateway_subscription_id", asc("gateway_subscription_id")),
		}},
		{s.users, []mongo.IndexModel{
			idx("email", asc("email")), // the console's search by email
		}},
		{s.payments, []mongo.IndexModel{
			idx("status_created", asc("status", "created_at")),
			idx("gateway_payment", asc("gateway", "gateway_payment_id")),
			{Keys: asc("gateway_payment_key"), Options: options.Index().SetName("gateway_payment_key_unique").SetUnique(true).SetSparse(true)},
			idx("sweep_token", asc("sweep_token")),
			idx("pending_token", asc("pending_token")), // payments with pending effects (few)
			idx("created_id", newestSort),
			idx("status_created_id", append(asc("status"), newestSort...)),
			idx("subscription_created_id", append(asc("subscription_id"), newestSort...)),
		}},
		{s.sessions, []mongo.IndexModel{
			// Only live sessions: the soft-deleted ones pile up for ever.
			idx("live_expires_at", asc("flag_del", "expires_at")),
			idx("sweep_token", asc("sweep_token")),
			idx("pending_token", asc("pending_token")), // sessions with pending effects (few)
		}},
		{s.audit, []mongo.IndexModel{
			idx("created_at", asc("created_at", "seq")),
			idx("action_created", asc("action", "created_at")),
			idx("entity_created", asc("entity_id", "created_at")),
			idx("entity_created_seq", asc("entity_id", "created_at", "seq")), // the console's timeline
		}},
		{s.runs, []mongo.IndexModel{
			idx("job_started", bson.D{{Key: "job_id", Value: 1}, {Key: "started_at", Value: -1}}),
			idx("started_at", asc("started_at")),
		}},
		{s.events, []mongo.IndexModel{
			{Keys: asc("gateway", "event_id"), Options: options.Index().SetName("gateway_event_unique").SetUnique(true)},
			idx("received_at", asc("received_at")), // retention
			// The inbox worker's claims, order checks, wake-ups and lease renewals.
			idx("state_next_attempt", asc("state", "next_attempt_at")),
			idx("gateway_object_occurred", asc("gateway", "object_key", "occurred_at")),
			idx("lease_token", asc("lease_token")),
			// The console's timeline: an object's events, newest first.
			idx("gateway_object_received", bson.D{{Key: "gateway", Value: 1}, {Key: "object_key", Value: 1},
				{Key: "received_at", Value: -1}, {Key: "event_id", Value: -1}}),
		}},
		{s.locks, []mongo.IndexModel{
			{Keys: bson.D{{Key: "key", Value: 1}, {Key: "token", Value: -1}}, Options: options.Index().SetName("key_token_unique").SetUnique(true)},
			idx("acquired_at", asc("acquired_at")), // retention
		}},
		{s.notifications, []mongo.IndexModel{
			idx("created_at", asc("created_at")), // retention
			idx("created_id", newestSort),        // the console's email log
			idx("kind_created_id", append(asc("kind"), newestSort...)),
			idx("status_created_id", append(asc("status"), newestSort...)),
			idx("subscription_created_id", append(asc("subscription_id"), newestSort...)),
		}},
	}
	var errs []error
	for _, set := range sets {
		// Create only the missing ones: FerretDB v1.24 drops the connection (a panic in
		// its createIndexes) when asked to create indexes that exist already.
		specs, err := set.c.Indexes().ListSpecifications(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: listing indexes: %w", set.c.Name(), err))
			continue
		}
		have := map[string]bool{}
		for _, sp := range specs {
			have[sp.Name] = true
		}
		var missing []mongo.IndexModel
		for _, m := range set.models {
			if name := m.Options; name != nil && !have[indexName(m)] {
				missing = append(missing, m)
			}
		}
		if len(missing) == 0 {
			continue
		}
		if _, err := set.c.Indexes().CreateMany(ctx, missing); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", set.c.Name(), err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("mongostore: ensure indexes: %w", err)
	}
	return nil
}
