package memstore

import (
	"context"
	"slices"
	"sort"

	"github.com/renewkit/renewkit/billing"
)

// InsertAudit stores e, assigning its ID when empty; ErrConflict when the ID is stored
// already.
func (s *Store) InsertAudit(ctx context.Context, e *billing.AuditEntry) error {
	return s.update(ctx, func() error {
		if e.ID == "" {
			e.ID = billing.NewID()
		}
		if _, ok := s.auditIDs[e.ID]; ok {
			return conflict("audit entry", e.ID)
		}
		e.CreatedAt = t0(e.CreatedAt)
		c := copyAudit(*e)
		s.addAudit(&c)
		return nil
	})
}

// InsertAudits stores the entries under one lock, skipping those whose ID is stored already
// (or repeated in entries). An entry without an ID fails the call before anything is stored.
func (s *Store) InsertAudits(ctx context.Context, entries []billing.AuditEntry) error {
	return s.update(ctx, func() error {
		for i := range entries {
			if entries[i].ID == "" {
				return invalid("audit entry %d of %d has no id: InsertAudits stores entries that carry their id", i, len(entries))
			}
		}
		copies := make([]billing.AuditEntry, 0, len(entries)) // one allocation for the batch
		for i := range entries {
			if _, ok := s.auditIDs[entries[i].ID]; !ok {
				copies = append(copies, copyAudit(entries[i]))
				s.addAudit(&copies[len(copies)-1])
			}
		}
		return nil
	})
}

// addAudit inserts e (a copy the store owns) after every entry created at or before it.
// Caller holds s.mu.
func (s *Store) addAudit(e *billing.AuditEntry) {
	s.auditIDs[e.ID] = struct{}{}
	s.consoleAudit(e)
	n := len(s.audit)
	if n == 0 || !s.audit[n-1].CreatedAt.After(e.CreatedAt) { // the usual case: in time order
		s.audit = append(s.audit, e)
		return
	}
	i := sort.Search(n, func(i int) bool { return s.audit[i].CreatedAt.After(e.CreatedAt) })
	s.audit = slices.Insert(s.audit, i, e)
}

func auditMatch(f *billing.AuditFilter, e *billing.AuditEntry) bool {
	return (f.Action == "" || e.Action == f.Action) && (f.EntityID == "" || e.EntityID == f.EntityID)
}

// auditSince returns the entries created at or after f.Since. Caller holds s.mu.
func (s *Store) auditSince(f *billing.AuditFilter) []*billing.AuditEntry {
	since := t0(f.Since) // stores keep milliseconds; compare at that precision
	if since.IsZero() {
		return s.audit
	}
	i := sort.Search(len(s.audit), func(i int) bool { return !s.audit[i].CreatedAt.Before(since) })
	return s.audit[i:]
}

// ListAudit returns matching entries oldest first by created_at, insertion order breaking
// ties.
func (s *Store) ListAudit(ctx context.Context, f billing.AuditFilter) ([]billing.AuditEntry, error) {
	return read(ctx, s, func() ([]billing.AuditEntry, error) {
		var out []billing.AuditEntry
		for i, list := 0, s.auditSince(&f); i < len(list); i++ {
			if auditMatch(&f, list[i]) {
				out = append(out, copyAudit(*list[i]))
				if len(out) == f.Limit {
					break
				}
			}
		}
		return out, nil
	})
}

// CountAudit implements billing.AuditCounter.
func (s *Store) CountAudit(ctx context.Context, f billing.AuditFilter) (int, error) {
	return read(ctx, s, func() (int, error) {
		n := 0
		for i, list := 0, s.auditSince(&f); i < len(list); i++ {
			if auditMatch(&f, list[i]) {
				n++
			}
		}
		return n, nil
	})
}
