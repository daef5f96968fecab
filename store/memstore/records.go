package memstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// auditRec is a stored audit entry: its details are held as pairs (see detail), the
// entry's own Details left nil.
type auditRec struct {
	billing.AuditEntry
	details []detail
	// seq numbers the entries in insertion order.
	seq uint64
}

// out returns a copy of the entry for a caller, its details a map again.
func (a *auditRec) out() billing.AuditEntry {
	e := a.AuditEntry
	e.Details = unpackDetails(a.details)
	return e
}

// newAuditRec returns the stored form of e, its time normalised and its details copied
// into *buf.
func newAuditRec(e *billing.AuditEntry, buf *[]detail) auditRec {
	a := auditRec{AuditEntry: *e, details: packDetails(buf, e.Details)}
	a.CreatedAt, a.Details = t0(e.CreatedAt), nil
	return a
}

// InsertAudit stores e, assigning its ID when empty; ErrConflict when the ID is stored
// already.
func (s *Store) InsertAudit(ctx context.Context, e *billing.AuditEntry) error {
	return s.update(ctx, func() error {
		if e.ID == "" {
			e.ID = billing.NewID()
		}
		if !s.claimAuditID(e.ID) {
			return conflict("audit entry", e.ID)
		}
		e.CreatedAt = t0(e.CreatedAt)
		buf := make([]detail, 0, len(e.Details))
		a := newAuditRec(e, &buf)
		s.addAudit(&a)
		return nil
	})
}

// InsertAudits stores the entries under one lock, skipping those whose ID is stored already
// (or repeated in entries). An entry without an ID fails the call before anything is stored.
// The entries are copied before the lock is taken.
func (s *Store) InsertAudits(ctx context.Context, entries []billing.AuditEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	pairs := 0
	for i := range entries {
		if entries[i].ID == "" {
			return invalid("audit entry %d of %d has no id: InsertAudits stores entries that carry their id", i, len(entries))
		}
		pairs += len(entries[i].Details)
	}
	// One allocation for the batch's entries and one for their details.
	recs := make([]auditRec, len(entries))
	buf := make([]detail, 0, pairs)
	for i := range entries {
		recs[i] = newAuditRec(&entries[i], &buf)
	}
	return s.update(ctx, func() error {
		for i := range recs {
			if s.claimAuditID(recs[i].ID) {
				s.addAudit(&recs[i])
			}
		}
		return nil
	})
}

// claimAuditID adds id to the stored audit ids and reports whether it was not there yet,
// with one map operation. Caller holds s.mu.
func (s *Store) claimAuditID(id string) bool {
	n := len(s.auditIDs)
	s.auditIDs[id] = struct{}{}
	return len(s.auditIDs) > n
}

// addAudit inserts a (a copy the store owns, its id in auditIDs) after every entry created
// at or before it. Caller holds s.mu.
func (s *Store) addAudit(a *auditRec) {
	s.auditSeq++
	a.seq = s.auditSeq
	s.consoleAudit(a)
	n := len(s.audit)
	if n == 0 || !s.audit[n-1].CreatedAt.After(a.CreatedAt) { // the usual case: in time order
		s.audit = append(s.audit, a)
		return
	}
	i := sort.Search(n, func(i int) bool { return s.audit[i].CreatedAt.After(a.CreatedAt) })
	s.audit = slices.Insert(s.audit, i, a)
}

func auditMatch(f *billing.AuditFilter, a *auditRec) bool {
	return (f.Action == "" || a.Action == f.Action) && (f.EntityID == "" || a.EntityID == f.EntityID)
}

// auditSince returns the entries created at or after f.Since. Caller holds s.mu.
func (s *Store) auditSince(f *billing.AuditFilter) []*auditRec {
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
				out = append(out, list[i].out())
				if len(out) == f.Limit {
					break
				}
			}
		}
		return out, nil
	})
}

// newNotifications holds the notification records by key. They come in through
// ReserveNotifications, never whole.
func newNotifications() table[billing.NotificationRecord] {
	return table[billing.NotificationRecord]{
		kind: "notification", rows: map[string]billing.NotificationRecord{}, clone: copyNote,
		id: func(n *billing.NotificationRecord) *string { return &n.Key },
	}
}

// ReserveNotifications reserves the keys under one lock; see billing.NotificationStore.
func (s *Store) ReserveNotifications(ctx context.Context, recs []billing.NotificationRecord, token string, now, leaseUntil time.Time) ([]bool, error) {
	return write(ctx, s, func() ([]bool, error) {
		if token == "" {
			return nil, invalid("notification reservation needs a token")
		}
		for i := range recs {
			if recs[i].Key == "" {
				return nil, invalid("notification %d of %d has no key", i, len(recs))
			}
		}
		now, leaseUntil = t0(now), t0(leaseUntil)
		reserved := make([]bool, len(recs))
		// The new records' data, a chunk to an allocation (records of one call are created,
		// settled and pruned together, so a chunk seldom outlives most of its records).
		var data []billing.NotificationData
		for i := range recs {
			in := &recs[i]
			cur, ok := s.notifications.rows[in.Key]
			switch {
			case !ok:
				cur = billing.NotificationRecord{
					Key: in.Key, Kind: in.Kind, SubscriptionID: in.SubscriptionID, UserID: in.UserID,
					Status: billing.NotificationSending, CreatedAt: now, UpdatedAt: now,
				}
				if in.Data != nil {
					if len(data) == 0 {
						data = make([]billing.NotificationData, min(len(recs)-i, effectsSlabSize))
					}
					data[0] = *in.Data
					cur.Data, data = &data[0], data[1:]
				}
				s.consoleNote(cur)
			case cur.Status != billing.NotificationSending:
				continue // sent or failed: done for good
			case cur.Token != token && cur.LeaseUntil.After(now):
				continue // another run's live reservation
			}
			// New, ours already, or a lapsed reservation taken over.
			cur.Token, cur.LeaseUntil = token, leaseUntil
			s.notifications.rows[in.Key] = cur
			reserved[i] = true
		}
		return reserved, nil
	})
}

// FinishNotifications settles the reservations under one lock; see
// billing.NotificationStore.
func (s *Store) FinishNotifications(ctx context.Context, recs []billing.NotificationRecord, token string) error {
	return s.update(ctx, func() error {
		if err := billing.CheckNotificationOutcomes(recs); err != nil {
			return fmt.Errorf("memstore: %w", err)
		}
		for i := range recs {
			in := &recs[i]
			cur, ok := s.notifications.rows[in.Key]
			if !ok || cur.Status != billing.NotificationSending || cur.Token != token || token == "" {
				continue // no longer ours
			}
			if in.Status == "" { // released: reservable again at once, as if never reserved
				delete(s.notifications.rows, in.Key)
				s.con.notesDirty = true // the console's ordering drops the key, or its copy if reserved again
				continue
			}
			cur.Status, cur.Error, cur.UpdatedAt = in.Status, in.Error, t0(in.UpdatedAt)
			cur.Token, cur.LeaseUntil = "", time.Time{} // they hold a reservation; there is none now
			s.notifications.rows[in.Key] = cur
		}
		return nil
	})
}

func (s *Store) GetNotification(ctx context.Context, key string) (billing.NotificationRecord, error) {
	return read(ctx, s, func() (billing.NotificationRecord, error) {
		return s.notifications.get(key)
	})
}

func newRuns() table[billing.JobRun] {
	return table[billing.JobRun]{
		kind: "job run", rows: map[string]billing.JobRun{}, norm: normRun, clone: normRun,
		id: func(r *billing.JobRun) *string { return &r.ID },
	}
}

func normRun(r billing.JobRun) billing.JobRun {
	r.StartedAt, r.FinishedAt, r.ScheduledFor = t0(r.StartedAt), t0(r.FinishedAt), t0(r.ScheduledFor)
	r.Result = maps.Clone(r.Result)
	return r
}

func (s *Store) InsertJobRun(ctx context.Context, r *billing.JobRun) error {
	return s.update(ctx, func() error {
		return s.runs.insert(r)
	})
}

func (s *Store) UpdateJobRun(ctx context.Context, r billing.JobRun) error {
	return s.update(ctx, func() error {
		if _, ok := s.runs.rows[r.ID]; !ok {
			return notFound("job run", r.ID)
		}
		s.runs.put(&r)
		return nil
	})
}

func (s *Store) ListJobRuns(ctx context.Context, f billing.JobRunFilter) ([]billing.JobRun, error) {
	return read(ctx, s, func() ([]billing.JobRun, error) {
		since := t0(f.Since)
		var out []billing.JobRun
		for _, r := range s.runs.rows {
			if (f.JobID == "" || r.JobID == f.JobID) && (since.IsZero() || !r.StartedAt.Before(since)) {
				out = append(out, s.runs.out(r))
			}
		}
		sort.Slice(out, func(i, j int) bool {
			if !out[i].StartedAt.Equal(out[j].StartedAt) {
				return out[i].StartedAt.After(out[j].StartedAt)
			}
			return out[i].ID > out[j].ID
		})
		if f.Limit > 0 && len(out) > f.Limit {
			out = out[:f.Limit]
		}
		return out, nil
	})
}

func (s *Store) DeleteJobRunsBefore(ctx context.Context, t time.Time) (int, error) {
	return write(ctx, s, func() (int, error) {
		t = t0(t)
		n := 0
		for id, r := range s.runs.rows {
			if r.StartedAt.Before(t) {
				delete(s.runs.rows, id)
				n++
			}
		}
		return n, nil
	})
}

func (s *Store) GetJobState(ctx context.Context, jobID string) (billing.JobState, error) {
	return read(ctx, s, func() (billing.JobState, error) {
		st, ok := s.jobStates[jobID]
		if !ok {
			return billing.JobState{JobID: jobID}, nil
		}
		st.Alerts = slices.Clone(st.Alerts)
		return st, nil
	})
}

func (s *Store) PutJobState(ctx context.Context, st billing.JobState) error {
	return s.update(ctx, func() error {
		if st.JobID == "" {
			return fmt.Errorf("memstore: job state without job id: %w", billing.ErrInvalidInput)
		}
		if cur := s.jobStates[st.JobID].Version; cur != st.Version { // a missing state is version 0
			return fmt.Errorf("memstore: job state %q is at version %d, not %d: %w", st.JobID, cur, st.Version, billing.ErrConflict)
		}
		st.PausedAt, st.LastScheduledSuccess, st.UpdatedAt = t0(st.PausedAt), t0(st.LastScheduledSuccess), t0(st.UpdatedAt)
		st.Alerts = slices.Clone(st.Alerts)
		st.Version++
		s.jobStates[st.JobID] = st
		return nil
	})
}

func (s *Store) AcquireLock(ctx context.Context, key, owner string, now time.Time, ttl time.Duration) (billing.Lease, error) {
	return write(ctx, s, func() (billing.Lease, error) {
		if key == "" || owner == "" || ttl <= 0 {
			return billing.Lease{}, fmt.Errorf("memstore: lock needs a key, an owner and a positive ttl: %w", billing.ErrInvalidInput)
		}
		if l, ok := s.locks[key]; ok && l.ExpiresAt.After(now) {
			return billing.Lease{}, fmt.Errorf("memstore: lock %q: %w", key, billing.ErrLockHeld)
		}
		st := s.lockState[key]
		st.token++
		st.acquired = t0(now)
		s.lockState[key] = st
		l := billing.Lease{Key: key, Owner: owner, Token: st.token, ExpiresAt: t0(now.Add(ttl))}
		s.locks[key] = l
		return l, nil
	})
}

// lockState is a key's fencing counter (the last token handed out) and when it was last
// acquired; it outlives releases until Prune finds the key idle.
type lockState struct {
	token    int64
	acquired time.Time
}

func (s *Store) RenewLock(ctx context.Context, l billing.Lease, now time.Time, ttl time.Duration) (billing.Lease, error) {
	return write(ctx, s, func() (billing.Lease, error) {
		cur, ok := s.locks[l.Key]
		if !ok || cur.Token != l.Token || cur.Owner != l.Owner || !cur.ExpiresAt.After(now) {
			return billing.Lease{}, fmt.Errorf("memstore: lock %q: %w", l.Key, billing.ErrLockLost)
		}
		cur.ExpiresAt = t0(now.Add(ttl))
		s.locks[l.Key] = cur
		return cur, nil
	})
}

func (s *Store) ReleaseLock(ctx context.Context, l billing.Lease) error {
	return s.update(ctx, func() error {
		cur, ok := s.locks[l.Key]
		if !ok || cur.Token != l.Token || cur.Owner != l.Owner {
			return fmt.Errorf("memstore: lock %q: %w", l.Key, billing.ErrLockLost)
		}
		delete(s.locks, l.Key)
		return nil
	})
}

// CurrentLease returns the live lease of key at now, if any, without taking it
// (billing.LockInspector).
func (s *Store) CurrentLease(ctx context.Context, key string, now time.Time) (billing.Lease, bool, error) {
	var live bool
	l, err := read(ctx, s, func() (billing.Lease, error) {
		l, ok := s.locks[key]
		if live = ok && l.ExpiresAt.After(now); !live {
			return billing.Lease{}, nil
		}
		return l, nil
	})
	return l, live, err
}
