package mongostore

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/renewkit/renewkit/billing"
)

type auditDoc struct {
	ID         docID     `bson:"_id"`
	Action     string    `bson:"action"`
	EntityType string    `bson:"entity_type"`
	EntityID   string    `bson:"entity_id"`
	UserID     docID     `bson:"user_id"`
	Actor      string    `bson:"actor"`
	Details    bson.Raw  `bson:"details"`
	CreatedAt  time.Time `bson:"created_at"`
}

func decodeAudit(raw bson.Raw) (billing.AuditEntry, error) {
	d, err := unmarshal[auditDoc](raw)
	if err != nil {
		return billing.AuditEntry{}, err
	}
	details, err := anyMap(d.Details)
	return billing.AuditEntry{
		ID: string(d.ID), Action: d.Action, EntityType: d.EntityType, EntityID: d.EntityID, UserID: string(d.UserID),
		Actor: d.Actor, Details: details, CreatedAt: utc(d.CreatedAt),
	}, err
}

func (s *Store) InsertAudit(ctx context.Context, e *billing.AuditEntry) error {
	if err := prepareInsert(ctx, &e.ID); err != nil {
		return err
	}
	if err := insert(ctx, s.audit, auditFields(*e), "audit entry", e.ID); err != nil {
		return err
	}
	e.CreatedAt = utc(e.CreatedAt)
	return nil
}

func auditFields(e billing.AuditEntry) bson.D {
	f := &fields{}
	f.put("action", e.Action)
	f.put("entity_type", e.EntityType)
	f.put("entity_id", e.EntityID)
	f.optStr("user_id", e.UserID)
	f.put("actor", e.Actor)
	f.optAny("details", e.Details, len(e.Details) == 0)
	f.time("created_at", e.CreatedAt)
	f.put("seq", bson.NewObjectID()) // insertion order among equal created_at
	return f.doc(e.ID)
}

// InsertAudits inserts the entries with unordered insertMany commands of at most BatchSize
// documents; an entry whose _id is stored already (a duplicate key) is skipped.
func (s *Store) InsertAudits(ctx context.Context, entries []billing.AuditEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for start := 0; start < len(entries); start += s.cfg.BatchSize {
		part := entries[start:min(start+s.cfg.BatchSize, len(entries))]
		docs := make([]any, len(part))
		for i, e := range part {
			if e.ID == "" {
				e.ID = billing.NewID()
			}
			docs[i] = auditFields(e)
		}
		if _, err := s.audit.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false)); err != nil {
			if _, err := duplicates(err); err != nil {
				return opErr("insert audit entries", err)
			}
		}
	}
	return nil
}

// duplicates returns the indexes of the documents an unordered insertMany or bulkWrite
// failed on with a duplicate key, and err itself when it holds anything else.
func duplicates(err error) (map[int]bool, error) {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return nil, err
	}
	dup := map[int]bool{}
	for _, we := range bwe.WriteErrors {
		if !mongo.IsDuplicateKeyError(we.WriteError) {
			return nil, err
		}
		dup[we.Index] = true
	}
	return dup, nil
}

func auditQuery(f billing.AuditFilter) bson.D {
	q := bson.D{}
	if f.Action != "" {
		q = append(q, bson.E{Key: "action", Value: f.Action})
	}
	if f.EntityID != "" {
		q = append(q, bson.E{Key: "entity_id", Value: f.EntityID})
	}
	if !f.Since.IsZero() {
		q = append(q, bson.E{Key: "created_at", Value: bson.D{{Key: "$gte", Value: bson.NewDateTimeFromTime(f.Since)}}})
	}
	return q
}

// CountAudit implements billing.AuditCounter: matching entries, counted by the server.
func (s *Store) CountAudit(ctx context.Context, f billing.AuditFilter) (int, error) {
	n, err := s.audit.CountDocuments(ctx, auditQuery(f))
	if err != nil {
		return 0, opErr("count audit", err)
	}
	return int(n), nil
}

func (s *Store) ListAudit(ctx context.Context, f billing.AuditFilter) ([]billing.AuditEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	q := auditQuery(f)
	o := findOpts().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "seq", Value: 1}})
	if f.Limit > 0 {
		o.SetLimit(int64(f.Limit))
	}
	cur, err := s.audit.Find(ctx, q, o)
	if err != nil {
		return nil, opErr("list audit", err)
	}
	out, err := decodeAll(ctx, cur, decodeAudit)
	if err != nil {
		return nil, opErr("list audit", err)
	}
	return out, nil
}
