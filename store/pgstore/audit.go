package pgstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/renewkit/renewkit/billing"
)

const auditCols = `id, action, entity_type, entity_id, user_id, actor, details, created_at`

func scanAudit(r pgx.Rows) (billing.AuditEntry, error) {
	var e billing.AuditEntry
	var details []byte
	if err := r.Scan(&e.ID, &e.Action, &e.EntityType, &e.EntityID, &e.UserID, &e.Actor, &details, &e.CreatedAt); err != nil {
		return e, err
	}
	e.CreatedAt = t0(e.CreatedAt)
	var err error
	if e.Details, err = decodeMap(details); err != nil {
		return e, &billing.RecordError{Collection: "audit_logs", ID: e.ID, Err: err}
	}
	return e, nil
}

// InsertAudit stores e, assigning its ID when empty; ErrConflict when the ID is stored.
func (s *Store) InsertAudit(ctx context.Context, e *billing.AuditEntry) error {
	if e.ID == "" {
		e.ID = billing.NewID()
	}
	details, err := encodeMap(e.Details)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, s.t(`INSERT INTO {schema}.audit_logs (`+auditCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)`),
		e.ID, e.Action, e.EntityType, e.EntityID, e.UserID, e.Actor, pgtype.Text{String: string(details), Valid: details != nil}, rt(e.CreatedAt))
	if err != nil {
		return s.wrap(err, "inserting audit entry %q", e.ID)
	}
	e.CreatedAt = t0(e.CreatedAt)
	return nil
}

// InsertAudits stores the entries in one multi-row INSERT … ON CONFLICT (id) DO NOTHING,
// so a retried batch never doubles an entry.
func (s *Store) InsertAudits(ctx context.Context, entries []billing.AuditEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	n := len(entries)
	ids, actions, types, entities, users, actors := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	details, created := make(pgtype.FlatArray[pgtype.Text], n), make(pgtype.FlatArray[pgtype.Timestamptz], n)
	for i := range entries {
		e := &entries[i]
		if e.ID == "" {
			return invalid("audit entry %d of %d has no id: InsertAudits stores entries that carry their id", i, n)
		}
		d, err := encodeMap(e.Details)
		if err != nil {
			return err
		}
		ids[i], actions[i], types[i], entities[i], users[i], actors[i] = e.ID, e.Action, e.EntityType, e.EntityID, e.UserID, e.Actor
		details[i], created[i] = pgtype.Text{String: string(d), Valid: d != nil}, pgtype.Timestamptz{Time: rt(e.CreatedAt), Valid: true}
	}
	_, err := s.exec(ctx, s.t(`INSERT INTO {schema}.audit_logs (`+auditCols+`)
		SELECT id, action, entity_type, entity_id, user_id, actor, details::jsonb, created_at
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[])
			WITH ORDINALITY AS v(id, action, entity_type, entity_id, user_id, actor, details, created_at, n)
		ORDER BY n
		ON CONFLICT (id) DO NOTHING`), ids, actions, types, entities, users, actors, details, created)
	return s.wrap(err, "inserting %d audit entries", n)
}

func auditWhere(f billing.AuditFilter) (string, []any) {
	var conds []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Action != "" {
		conds = append(conds, "action = "+arg(f.Action))
	}
	if f.EntityID != "" {
		conds = append(conds, "entity_id = "+arg(f.EntityID))
	}
	if !f.Since.IsZero() {
		conds = append(conds, "created_at >= "+arg(t0(f.Since)))
	}
	if len(conds) == 0 {
		return "true", nil
	}
	return strings.Join(conds, " AND "), args
}

// ListAudit returns matching entries oldest first, insertion order breaking ties. Details
// come back as JSON decodes them: whole numbers as int, times as RFC 3339 text.
func (s *Store) ListAudit(ctx context.Context, f billing.AuditFilter) ([]billing.AuditEntry, error) {
	where, args := auditWhere(f)
	q := `SELECT ` + auditCols + ` FROM {schema}.audit_logs WHERE ` + where + ` ORDER BY created_at, seq`
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	var bad []error
	es, err := collect(ctx, s, func(r pgx.Rows) (billing.AuditEntry, error) {
		e, err := scanAudit(r)
		if re, ok := err.(*billing.RecordError); ok {
			bad = append(bad, re)
			return e, nil
		}
		return e, err
	}, s.t(q), args...)
	if err != nil {
		return nil, s.wrap(err, "listing audit entries")
	}
	return es, joinErrs(bad)
}

// CountAudit implements billing.AuditCounter.
func (s *Store) CountAudit(ctx context.Context, f billing.AuditFilter) (int, error) {
	where, args := auditWhere(f)
	var n int
	err := s.retry(ctx, func() error {
		return s.pool.QueryRow(ctx, s.t(`SELECT count(*) FROM {schema}.audit_logs WHERE `+where), args...).Scan(&n)
	})
	return n, s.wrap(err, "counting audit entries")
}
