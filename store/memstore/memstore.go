package memstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/renewkit/renewkit/billing"
)

var _ billing.Store = (*Store)(nil)

// Store keeps everything in process memory behind one RWMutex. The zero value is not usable;
// call New.
type Store struct {
	mu       sync.RWMutex
	plans    map[string]billing.Plan
	users    map[string]billing.User
	subs     map[string]*subRecord
	subsByGW map[string]string // gateway + "\x00" + gateway subscription id -> a live subscription holding it
	// byEnd holds every subscription, ordered by (CurrentPeriodEnd, ID) unless byEndDirty, so
	// claims read only the period-end window they select and stop at their limit. Inserts and
	// period changes mark it dirty; the next claim sorts it again.
	byEnd         []*subRecord
	byEndDirty    bool
	payments      map[string]billing.Payment
	paymentsByGW  map[string]string // gateway + "\x00" + gateway payment id -> payment id
	sessions      map[string]billing.Session
	audit         []billing.AuditEntry
	notifications map[string]billing.NotificationRecord
	runs          map[string]billing.JobRun
	jobStates     map[string]billing.JobState
	locks         map[string]billing.Lease
	lockCounter   map[string]int64
	events        map[string]billing.WebhookEvent
}

type subRecord struct {
	sub        billing.Subscription
	claimToken string
	claimUntil time.Time
}

// New returns an empty store.
func New() *Store {
	return &Store{
		plans:         map[string]billing.Plan{},
		users:         map[string]billing.User{},
		subs:          map[string]*subRecord{},
		subsByGW:      map[string]string{},
		payments:      map[string]billing.Payment{},
		paymentsByGW:  map[string]string{},
		sessions:      map[string]billing.Session{},
		notifications: map[string]billing.NotificationRecord{},
		runs:          map[string]billing.JobRun{},
		jobStates:     map[string]billing.JobState{},
		locks:         map[string]billing.Lease{},
		lockCounter:   map[string]int64{},
		events:        map[string]billing.WebhookEvent{},
	}
}

// Ping always succeeds; it lets readiness checks treat every store alike.
func (s *Store) Ping(ctx context.Context) error { return ctx.Err() }

var t0 = billing.TruncateTime

func notFound(kind, id string) error {
	return fmt.Errorf("memstore: %s %q: %w", kind, id, billing.ErrNotFound)
}
func conflict(kind, id string) error {
	return fmt.Errorf("memstore: %s %q: %w", kind, id, billing.ErrConflict)
}

// --- plans ---

func normPlan(p billing.Plan) billing.Plan {
	p.CreatedAt, p.UpdatedAt = t0(p.CreatedAt), t0(p.UpdatedAt)
	return p
}

func (s *Store) InsertPlan(ctx context.Context, p *billing.Plan) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.ID == "" {
		p.ID = billing.NewID()
	}
	if _, ok := s.plans[p.ID]; ok {
		return conflict("plan", p.ID)
	}
	*p = normPlan(*p)
	s.plans[p.ID] = *p
	return nil
}

func (s *Store) GetPlan(ctx context.Context, id string) (billing.Plan, error) {
	if err := ctx.Err(); err != nil {
		return billing.Plan{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.plans[id]
	if !ok || p.Deleted {
		return billing.Plan{}, notFound("plan", id)
	}
	return p, nil
}

func (s *Store) ListPlans(ctx context.Context) ([]billing.Plan, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]billing.Plan, 0, len(s.plans))
	for _, p := range s.plans {
		if !p.Deleted {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// --- users ---

func normUser(u billing.User) billing.User {
	u.AccessUntil, u.CreatedAt, u.UpdatedAt = t0(u.AccessUntil), t0(u.CreatedAt), t0(u.UpdatedAt)
	return u
}

func (s *Store) InsertUser(ctx context.Context, u *billing.User) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == "" {
		u.ID = billing.NewID()
	}
	if _, ok := s.users[u.ID]; ok {
		return conflict("user", u.ID)
	}
	*u = normUser(*u)
	s.users[u.ID] = *u
	return nil
}

func (s *Store) GetUser(ctx context.Context, id string) (billing.User, error) {
	if err := ctx.Err(); err != nil {
		return billing.User{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.users[id]
	if !ok || u.Deleted {
		return billing.User{}, notFound("user", id)
	}
	return u, nil
}

func (s *Store) UpdateUserAccess(ctx context.Context, u billing.User) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.users[u.ID]
	if !ok || cur.Deleted {
		return notFound("user", u.ID)
	}
	cur.PlanID, cur.SubscriptionID, cur.Status = u.PlanID, u.SubscriptionID, u.Status
	cur.AccessUntil, cur.UpdatedAt = t0(u.AccessUntil), t0(u.UpdatedAt)
	s.users[u.ID] = cur
	return nil
}

// --- subscriptions ---

func normSub(x billing.Subscription) billing.Subscription {
	x.CurrentPeriodStart, x.CurrentPeriodEnd = t0(x.CurrentPeriodStart), t0(x.CurrentPeriodEnd)
	x.GatewayUpdatedAt, x.CancelledAt = t0(x.GatewayUpdatedAt), t0(x.CancelledAt)
	x.CreatedAt, x.UpdatedAt = t0(x.CreatedAt), t0(x.UpdatedAt)
	x.AppliedPayments = slices.Clone(x.AppliedPayments)
	return x
}

func (s *Store) InsertSubscription(ctx context.Context, x *billing.Subscription) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if x.ID == "" {
		x.ID = billing.NewID()
	}
	if _, ok := s.subs[x.ID]; ok {
		return conflict("subscription", x.ID)
	}
	if x.GatewaySubscriptionID != "" && s.liveByGateway(x.Gateway, x.GatewaySubscriptionID) != nil {
		return conflict("gateway subscription", x.GatewaySubscriptionID)
	}
	*x = normSub(*x)
	r := &subRecord{sub: normSub(*x)}
	s.subs[x.ID] = r
	s.byEnd = append(s.byEnd, r)
	s.byEndDirty = true
	s.indexGateway(x.ID, billing.Subscription{}, *x)
	return nil
}

func (s *Store) GetSubscription(ctx context.Context, id string) (billing.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return billing.Subscription{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.subs[id]
	if !ok || r.sub.Deleted {
		return billing.Subscription{}, notFound("subscription", id)
	}
	return normSub(r.sub), nil
}

func (s *Store) UpdateSubscription(ctx context.Context, x billing.Subscription) (billing.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return billing.Subscription{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.subs[x.ID]
	if !ok {
		return billing.Subscription{}, notFound("subscription", x.ID)
	}
	if r.sub.Version != x.Version {
		return billing.Subscription{}, fmt.Errorf("memstore: subscription %q changed (version %d, have %d): %w",
			x.ID, r.sub.Version, x.Version, billing.ErrConflict)
	}
	x = normSub(x)
	x.Version++
	prev := r.sub
	r.sub = x
	if !prev.CurrentPeriodEnd.Equal(x.CurrentPeriodEnd) {
		s.byEndDirty = true
	}
	s.indexGateway(x.ID, prev, x)
	return normSub(x), nil
}

func (s *Store) FindSubscriptionByGateway(ctx context.Context, gateway, gid string) (billing.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return billing.Subscription{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if r := s.liveByGateway(gateway, gid); r != nil && gid != "" {
		return normSub(r.sub), nil
	}
	return billing.Subscription{}, notFound("gateway subscription", gid)
}

func (s *Store) ListUserSubscriptions(ctx context.Context, userID string) ([]billing.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []billing.Subscription
	for _, r := range s.subs {
		if !r.sub.Deleted && r.sub.UserID == userID {
			out = append(out, normSub(r.sub))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].ID > out[j].ID
	})
	return out, nil
}

// liveByGateway returns a live subscription with the gateway id, or nil. Caller holds s.mu.
func (s *Store) liveByGateway(gateway, gid string) *subRecord {
	if gid == "" {
		return nil
	}
	if id, ok := s.subsByGW[gwKey(gateway, gid)]; ok {
		if r := s.subs[id]; r != nil && !r.sub.Deleted && r.sub.Gateway == gateway && r.sub.GatewaySubscriptionID == gid {
			return r
		}
	}
	return nil
}

// indexGateway keeps subsByGW pointing, for every gateway id some live subscription holds,
// at one of them, after subscription id changed from prev to cur. Caller holds s.mu.
func (s *Store) indexGateway(id string, prev, cur billing.Subscription) {
	oldKey, newKey := "", ""
	if prev.GatewaySubscriptionID != "" && !prev.Deleted {
		oldKey = gwKey(prev.Gateway, prev.GatewaySubscriptionID)
	}
	if cur.GatewaySubscriptionID != "" && !cur.Deleted {
		newKey = gwKey(cur.Gateway, cur.GatewaySubscriptionID)
	}
	if oldKey == newKey {
		return
	}
	if oldKey != "" && s.subsByGW[oldKey] == id {
		delete(s.subsByGW, oldKey)
		// Rare (the gateway id changed or the record was deleted): hand the key to another
		// live holder, if an update ever made two.
		for oid, r := range s.subs {
			if oid != id && !r.sub.Deleted && r.sub.GatewaySubscriptionID != "" && gwKey(r.sub.Gateway, r.sub.GatewaySubscriptionID) == oldKey {
				s.subsByGW[oldKey] = oid
				break
			}
		}
	}
	if newKey != "" && s.liveByGateway(cur.Gateway, cur.GatewaySubscriptionID) == nil {
		s.subsByGW[newKey] = id
	}
}

func (s *Store) ClaimSubscriptions(ctx context.Context, p billing.ClaimParams) ([]billing.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p.Token == "" || p.Limit <= 0 {
		return nil, fmt.Errorf("memstore: claim needs a token and a positive limit: %w", billing.ErrInvalidInput)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byEndDirty {
		sort.Slice(s.byEnd, func(i, j int) bool { return byEndLess(s.byEnd[i].sub, s.byEnd[j].sub) })
		s.byEndDirty = false
	}
	// Oldest period end first, so a partial sweep handles the most urgent records. Only the
	// filter's period-end window is read, and reading stops at the limit.
	start := 0
	if after := p.Filter.PeriodEndAfter; !after.IsZero() {
		start = sort.Search(len(s.byEnd), func(i int) bool { return s.byEnd[i].sub.CurrentPeriodEnd.After(after) })
	}
	before := p.Filter.PeriodEndBefore
	var picked []*subRecord
	for _, r := range s.byEnd[start:] {
		if !before.IsZero() && r.sub.CurrentPeriodEnd.After(before) {
			break
		}
		if r.claimToken == p.Token || (r.claimToken != "" && r.claimUntil.After(p.Now)) {
			continue
		}
		if p.Filter.Match(r.sub) {
			picked = append(picked, r)
			if len(picked) == p.Limit {
				break
			}
		}
	}
	out := make([]billing.Subscription, len(picked))
	for i, r := range picked {
		r.claimToken, r.claimUntil = p.Token, t0(p.LeaseUntil)
		out[i] = normSub(r.sub)
	}
	return out, nil
}

func byEndLess(a, b billing.Subscription) bool {
	if !a.CurrentPeriodEnd.Equal(b.CurrentPeriodEnd) {
		return a.CurrentPeriodEnd.Before(b.CurrentPeriodEnd)
	}
	return a.ID < b.ID
}

func (s *Store) ReleaseClaims(ctx context.Context, token string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.subs {
		if r.claimToken == token {
			r.claimToken, r.claimUntil = "", time.Time{}
		}
	}
	return nil
}

func (s *Store) CountSubscriptions(ctx context.Context, f billing.SubscriptionFilter) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, r := range s.subs {
		if f.Match(r.sub) {
			n++
		}
	}
	return n, nil
}

func (s *Store) CountSubscriptionsByStatus(ctx context.Context) (map[billing.SubscriptionStatus]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[billing.SubscriptionStatus]int{}
	for _, r := range s.subs {
		if !r.sub.Deleted {
			out[r.sub.Status]++
		}
	}
	return out, nil
}

// --- payments ---

func normPayment(p billing.Payment) billing.Payment {
	p.ProcessedAt, p.CreatedAt, p.UpdatedAt = t0(p.ProcessedAt), t0(p.CreatedAt), t0(p.UpdatedAt)
	return p
}

func gwKey(gateway, id string) string { return gateway + "\x00" + id }

func (s *Store) InsertPayment(ctx context.Context, p *billing.Payment) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.ID == "" {
		p.ID = billing.NewID()
	}
	if _, ok := s.payments[p.ID]; ok {
		return conflict("payment", p.ID)
	}
	if p.GatewayPaymentID != "" {
		if _, ok := s.paymentsByGW[gwKey(p.Gateway, p.GatewayPaymentID)]; ok {
			return conflict("gateway payment", p.GatewayPaymentID)
		}
		s.paymentsByGW[gwKey(p.Gateway, p.GatewayPaymentID)] = p.ID
	}
	*p = normPayment(*p)
	s.payments[p.ID] = *p
	return nil
}

func (s *Store) GetPayment(ctx context.Context, id string) (billing.Payment, error) {
	if err := ctx.Err(); err != nil {
		return billing.Payment{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.payments[id]
	if !ok || p.Deleted {
		return billing.Payment{}, notFound("payment", id)
	}
	return p, nil
}

func (s *Store) FindPaymentByGateway(ctx context.Context, gateway, gid string) (billing.Payment, error) {
	if err := ctx.Err(); err != nil {
		return billing.Payment{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.paymentsByGW[gwKey(gateway, gid)]
	if !ok || gid == "" || s.payments[id].Deleted {
		return billing.Payment{}, notFound("gateway payment", gid)
	}
	return s.payments[id], nil
}

func (s *Store) UpdatePayment(ctx context.Context, p billing.Payment) (billing.Payment, error) {
	if err := ctx.Err(); err != nil {
		return billing.Payment{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.payments[p.ID]
	if !ok {
		return billing.Payment{}, notFound("payment", p.ID)
	}
	if cur.Version != p.Version {
		return billing.Payment{}, fmt.Errorf("memstore: payment %q changed (version %d, have %d): %w",
			p.ID, cur.Version, p.Version, billing.ErrConflict)
	}
	if p.GatewayPaymentID != cur.GatewayPaymentID || p.Gateway != cur.Gateway {
		if p.GatewayPaymentID != "" {
			if other, ok := s.paymentsByGW[gwKey(p.Gateway, p.GatewayPaymentID)]; ok && other != p.ID {
				return billing.Payment{}, conflict("gateway payment", p.GatewayPaymentID)
			}
			s.paymentsByGW[gwKey(p.Gateway, p.GatewayPaymentID)] = p.ID
		}
		if cur.GatewayPaymentID != "" {
			delete(s.paymentsByGW, gwKey(cur.Gateway, cur.GatewayPaymentID))
		}
	}
	p = normPayment(p)
	p.Version++
	s.payments[p.ID] = p
	return p, nil
}

func (s *Store) CancelStalePayments(ctx context.Context, createdBefore, now time.Time, reason string, limit int) ([]billing.Payment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, p := range s.payments {
		if !p.Deleted && p.Status == billing.PaymentPending && !p.CreatedAt.After(createdBefore) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	out := make([]billing.Payment, 0, len(ids))
	for _, id := range ids {
		p := s.payments[id]
		p.Status, p.Reason, p.UpdatedAt, p.ProcessedAt = billing.PaymentCancelled, reason, t0(now), t0(now)
		p.Version++
		s.payments[id] = p
		out = append(out, p)
	}
	return out, nil
}

// --- sessions ---

func (s *Store) InsertSession(ctx context.Context, se *billing.Session) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if se.ID == "" {
		se.ID = billing.NewID()
	}
	if _, ok := s.sessions[se.ID]; ok {
		return conflict("session", se.ID)
	}
	se.ExpiresAt, se.CreatedAt, se.DeletedAt = t0(se.ExpiresAt), t0(se.CreatedAt), t0(se.DeletedAt)
	s.sessions[se.ID] = *se
	return nil
}

func (s *Store) GetSession(ctx context.Context, id string) (billing.Session, error) {
	if err := ctx.Err(); err != nil {
		return billing.Session{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	se, ok := s.sessions[id]
	if !ok {
		return billing.Session{}, notFound("session", id)
	}
	return se, nil
}

func (s *Store) DeleteExpiredSessions(ctx context.Context, expiredBefore, now time.Time, limit int) ([]billing.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, se := range s.sessions {
		if !se.Deleted && !se.ExpiresAt.After(expiredBefore) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	out := make([]billing.Session, 0, len(ids))
	for _, id := range ids {
		se := s.sessions[id]
		se.Deleted, se.DeletedAt = true, t0(now)
		s.sessions[id] = se
		out = append(out, se)
	}
	return out, nil
}

// --- audit ---

func (s *Store) InsertAudit(ctx context.Context, e *billing.AuditEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.ID == "" {
		e.ID = billing.NewID()
	}
	e.CreatedAt = t0(e.CreatedAt)
	c := *e
	c.Details = maps.Clone(e.Details)
	s.audit = append(s.audit, c)
	return nil
}

func (s *Store) ListAudit(ctx context.Context, f billing.AuditFilter) ([]billing.AuditEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	since := t0(f.Since) // stores keep milliseconds; compare at that precision
	var out []billing.AuditEntry
	for _, e := range s.audit {
		if (f.Action == "" || e.Action == f.Action) && (f.EntityID == "" || e.EntityID == f.EntityID) &&
			(since.IsZero() || !e.CreatedAt.Before(since)) {
			c := e
			c.Details = maps.Clone(e.Details)
			out = append(out, c)
		}
	}
	// Oldest first by created_at (entries may be inserted out of time order); insertion
	// order breaks ties.
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// --- notifications ---

func (s *Store) RecordNotification(ctx context.Context, r billing.NotificationRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.Key == "" {
		return fmt.Errorf("memstore: notification without key: %w", billing.ErrInvalidInput)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.notifications[r.Key]; ok {
		return conflict("notification", r.Key)
	}
	r.CreatedAt = t0(r.CreatedAt)
	s.notifications[r.Key] = r
	return nil
}

func (s *Store) GetNotification(ctx context.Context, key string) (billing.NotificationRecord, error) {
	if err := ctx.Err(); err != nil {
		return billing.NotificationRecord{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.notifications[key]
	if !ok {
		return billing.NotificationRecord{}, notFound("notification", key)
	}
	return r, nil
}

// --- job runs and state ---

func normRun(r billing.JobRun) billing.JobRun {
	r.StartedAt, r.FinishedAt, r.ScheduledFor = t0(r.StartedAt), t0(r.FinishedAt), t0(r.ScheduledFor)
	r.Result = maps.Clone(r.Result)
	return r
}

func (s *Store) InsertJobRun(ctx context.Context, r *billing.JobRun) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.ID == "" {
		r.ID = billing.NewID()
	}
	if _, ok := s.runs[r.ID]; ok {
		return conflict("job run", r.ID)
	}
	*r = normRun(*r)
	s.runs[r.ID] = normRun(*r)
	return nil
}

func (s *Store) UpdateJobRun(ctx context.Context, r billing.JobRun) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.runs[r.ID]; !ok {
		return notFound("job run", r.ID)
	}
	s.runs[r.ID] = normRun(r)
	return nil
}

func (s *Store) ListJobRuns(ctx context.Context, f billing.JobRunFilter) ([]billing.JobRun, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	since := t0(f.Since)
	var out []billing.JobRun
	for _, r := range s.runs {
		if (f.JobID == "" || r.JobID == f.JobID) && (since.IsZero() || !r.StartedAt.Before(since)) {
			out = append(out, normRun(r))
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
}

func (s *Store) DeleteJobRunsBefore(ctx context.Context, t time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t = t0(t)
	n := 0
	for id, r := range s.runs {
		if r.StartedAt.Before(t) {
			delete(s.runs, id)
			n++
		}
	}
	return n, nil
}

func (s *Store) GetJobState(ctx context.Context, jobID string) (billing.JobState, error) {
	if err := ctx.Err(); err != nil {
		return billing.JobState{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.jobStates[jobID]
	if !ok {
		return billing.JobState{JobID: jobID}, nil
	}
	st.Alerts = slices.Clone(st.Alerts)
	return st, nil
}

func (s *Store) PutJobState(ctx context.Context, st billing.JobState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if st.JobID == "" {
		return fmt.Errorf("memstore: job state without job id: %w", billing.ErrInvalidInput)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.jobStates[st.JobID].Version; cur != st.Version { // a missing state is version 0
		return fmt.Errorf("memstore: job state %q is at version %d, not %d: %w", st.JobID, cur, st.Version, billing.ErrConflict)
	}
	st.PausedAt, st.LastScheduledSuccess, st.UpdatedAt = t0(st.PausedAt), t0(st.LastScheduledSuccess), t0(st.UpdatedAt)
	st.Alerts = slices.Clone(st.Alerts)
	st.Version++
	s.jobStates[st.JobID] = st
	return nil
}

// --- locks ---

func (s *Store) AcquireLock(ctx context.Context, key, owner string, now time.Time, ttl time.Duration) (billing.Lease, error) {
	if err := ctx.Err(); err != nil {
		return billing.Lease{}, err
	}
	if key == "" || owner == "" || ttl <= 0 {
		return billing.Lease{}, fmt.Errorf("memstore: lock needs a key, an owner and a positive ttl: %w", billing.ErrInvalidInput)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.locks[key]; ok && l.ExpiresAt.After(now) {
		return billing.Lease{}, fmt.Errorf("memstore: lock %q: %w", key, billing.ErrLockHeld)
	}
	s.lockCounter[key]++
	l := billing.Lease{Key: key, Owner: owner, Token: s.lockCounter[key], ExpiresAt: t0(now.Add(ttl))}
	s.locks[key] = l
	return l, nil
}

func (s *Store) RenewLock(ctx context.Context, l billing.Lease, now time.Time, ttl time.Duration) (billing.Lease, error) {
	if err := ctx.Err(); err != nil {
		return billing.Lease{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.locks[l.Key]
	if !ok || cur.Token != l.Token || cur.Owner != l.Owner || !cur.ExpiresAt.After(now) {
		return billing.Lease{}, fmt.Errorf("memstore: lock %q: %w", l.Key, billing.ErrLockLost)
	}
	cur.ExpiresAt = t0(now.Add(ttl))
	s.locks[l.Key] = cur
	return cur, nil
}

func (s *Store) ReleaseLock(ctx context.Context, l billing.Lease) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.locks[l.Key]
	if !ok || cur.Token != l.Token || cur.Owner != l.Owner {
		return fmt.Errorf("memstore: lock %q: %w", l.Key, billing.ErrLockLost)
	}
	delete(s.locks, l.Key)
	return nil
}

// CurrentLease returns the live lease of key at now, if any, without taking it
// (scheduler.LockInspector).
func (s *Store) CurrentLease(ctx context.Context, key string, now time.Time) (billing.Lease, bool, error) {
	if err := ctx.Err(); err != nil {
		return billing.Lease{}, false, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	l, ok := s.locks[key]
	if !ok || !l.ExpiresAt.After(now) {
		return billing.Lease{}, false, nil
	}
	return l, true, nil
}

// --- webhook events ---

func (s *Store) BeginWebhookEvent(ctx context.Context, ev billing.WebhookEvent, now, leaseUntil time.Time) (billing.WebhookEvent, bool, error) {
	if err := ctx.Err(); err != nil {
		return billing.WebhookEvent{}, false, err
	}
	if ev.Gateway == "" || ev.EventID == "" {
		return billing.WebhookEvent{}, false, fmt.Errorf("memstore: webhook event needs a gateway and an id: %w", billing.ErrInvalidInput)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := gwKey(ev.Gateway, ev.EventID)
	cur, ok := s.events[k]
	if !ok {
		ev.State, ev.Attempts, ev.Error = billing.EventReceived, 1, ""
		ev.ReceivedAt, ev.UpdatedAt, ev.LeaseUntil = t0(now), t0(now), t0(leaseUntil)
		s.events[k] = ev
		return ev, true, nil
	}
	switch {
	case cur.State == billing.EventProcessed || cur.State == billing.EventIgnored:
		return cur, false, nil
	case cur.State == billing.EventReceived && cur.LeaseUntil.After(now):
		return cur, false, nil
	}
	cur.State, cur.Attempts, cur.UpdatedAt, cur.LeaseUntil = billing.EventReceived, cur.Attempts+1, t0(now), t0(leaseUntil)
	s.events[k] = cur
	return cur, true, nil
}

func (s *Store) FinishWebhookEvent(ctx context.Context, gateway, eventID string, state billing.WebhookEventState, errText string, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := gwKey(gateway, eventID)
	cur, ok := s.events[k]
	if !ok {
		return notFound("webhook event", eventID)
	}
	cur.State, cur.Error, cur.UpdatedAt, cur.LeaseUntil = state, errText, t0(now), time.Time{}
	s.events[k] = cur
	return nil
}

func (s *Store) GetWebhookEvent(ctx context.Context, gateway, eventID string) (billing.WebhookEvent, error) {
	if err := ctx.Err(); err != nil {
		return billing.WebhookEvent{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ev, ok := s.events[gwKey(gateway, eventID)]
	if !ok {
		return billing.WebhookEvent{}, notFound("webhook event", eventID)
	}
	return ev, nil
}

// --- optional capabilities for previews ---

var (
	_ billing.SubscriptionLister = (*Store)(nil)
	_ billing.CleanupCounter     = (*Store)(nil)
	_ billing.AuditCounter       = (*Store)(nil)
)

// CountAudit implements billing.AuditCounter.
func (s *Store) CountAudit(ctx context.Context, f billing.AuditFilter) (int, error) {
	f.Limit = 0
	es, err := s.ListAudit(ctx, f)
	return len(es), err
}

// ListSubscriptions implements billing.SubscriptionLister.
func (s *Store) ListSubscriptions(ctx context.Context, f billing.SubscriptionFilter, limit int) ([]billing.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []billing.Subscription
	for _, r := range s.subs {
		if f.Match(r.sub) {
			out = append(out, normSub(r.sub))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CurrentPeriodEnd.Equal(out[j].CurrentPeriodEnd) {
			return out[i].CurrentPeriodEnd.Before(out[j].CurrentPeriodEnd)
		}
		return out[i].ID < out[j].ID
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// CountExpiredSessions implements billing.CleanupCounter.
func (s *Store) CountExpiredSessions(ctx context.Context, t time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, se := range s.sessions {
		if !se.Deleted && !se.ExpiresAt.After(t) {
			n++
		}
	}
	return n, nil
}

// CountStalePayments implements billing.CleanupCounter.
func (s *Store) CountStalePayments(ctx context.Context, t time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, p := range s.payments {
		if !p.Deleted && p.Status == billing.PaymentPending && !p.CreatedAt.After(t) {
			n++
		}
	}
	return n, nil
}
