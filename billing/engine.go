package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// This file is the engine the subscription jobs share. A run claims a batch of records,
// decides what each one needs, stores every transition with one conditional bulk write
// (UpdateSubscriptions) that also records its effects on the record, and then carries the
// effects out for the whole batch: one read of the records' users and subscriptions, one
// conditional bulk write of access changes, one reservation of notification keys, the sends
// through a bounded pool, one write of their outcomes, one insert of audit entries, one
// write that clears the finished effects and releases the claims. A record someone else
// changed between the claim and the transition fails the condition and is left alone.

// maxResultErrors bounds the per-record error texts a job result carries.
const maxResultErrors = 20

// run is one execution of a subscription job.
type run struct {
	s     *Service
	token string
	// Buffers work reuses from batch to batch (it handles one at a time): the changes,
	// the decisions, the batch and its user ids.
	changeBuf []SubscriptionChange
	decBuf    []decision
	batchBuf  batch
	idBuf     []string
	seen      map[string]struct{}
	// finishBuf holds finish's buffers while scratchBusy is unset.
	finishBuf   *finishScratch
	scratchBusy atomic.Bool
	// slab holds the effects of the batch being decided (nil outside work); spareSlabs
	// the slabs whose batches' effects are finished, for the next batches to reuse.
	slab       *effectSlab
	slabMu     sync.Mutex
	spareSlabs []*effectSlab
	breaker    *breaker
	// emailOnly: the run's only work is sending (the warnings), so a tripped breaker stops
	// it. Other runs go on changing records (an email outage must not keep access that was
	// not paid for); their sends stay pending and the run reports the outage at the end.
	emailOnly bool

	plansOnce sync.Once
	plansMu   sync.Mutex
	plans     map[string]Plan

	mu      sync.Mutex
	found   int
	failed  int
	skipped int
	sent    int
	resumed int
	errs    []string
}

func (s *Service) newRun() *run {
	return &run{s: s, token: newToken(), breaker: &breaker{threshold: int64(s.cfg.BreakerThreshold)}}
}

func (r *run) fail(id string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed++
	if len(r.errs) < maxResultErrors {
		r.errs = append(r.errs, id+": "+err.Error())
	}
}

func (r *run) count(p *int, n int) {
	r.mu.Lock()
	*p += n
	r.mu.Unlock()
}

// plan returns the plan with id, reading every plan once per run.
func (r *run) plan(ctx context.Context, id string) (Plan, error) {
	r.plansOnce.Do(func() {
		r.plans = map[string]Plan{}
		ps, err := r.s.store.ListPlans(ctx)
		if err != nil {
			r.s.log.WarnContext(ctx, "listing plans failed; reading them one by one", "error", err)
		}
		for _, p := range ps {
			r.plans[p.ID] = p
		}
	})
	r.plansMu.Lock()
	p, ok := r.plans[id]
	r.plansMu.Unlock()
	if ok {
		return p, nil
	}
	p, err := r.s.store.GetPlan(ctx, id)
	if err != nil {
		return Plan{}, fmt.Errorf("loading plan %s: %w", id, err)
	}
	r.plansMu.Lock()
	r.plans[id] = p
	r.plansMu.Unlock()
	return p, nil
}

// release drops the run's remaining claims: records it left unchanged, and records whose
// effects are still pending, are at once claimable by the next run. Releasing touches every
// record the run still holds; on a slow store that takes a while and the run's own context
// may be over, so it gets its own deadline, bounded by the lease (after it the claims lapse
// anyway).
func (r *run) release(ctx context.Context) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(r.s.cfg.ClaimLease, 2*time.Minute))
	defer cancel()
	if err := r.s.store.ReleaseClaims(rctx, r.token); err != nil {
		r.s.log.WarnContext(ctx, "releasing claims failed; they expire after the lease", "error", err)
	}
}

// stopped reports why the run must not claim more work: its context ended, or the
// notifier's breaker tripped in a run whose only work is sending.
func (r *run) stopped(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return r.halted()
}

// halted is the tripped breaker's error when it stops this run (emailOnly), else nil.
func (r *run) halted() error {
	if r.emailOnly {
		return r.breaker.err()
	}
	return nil
}

// settle is a run's final error: err, or the tripped breaker's (the run's sends stayed
// pending, so it did not succeed).
func (r *run) settle(err error) error {
	if err != nil {
		return err
	}
	return r.breaker.err()
}

// decision is what a job makes of one claimed record.
type decision struct {
	// skip: the record is not due after all; it is neither found nor failed.
	skip bool
	// err: the record failed and is retried by a later run.
	err error
	// changed (with effects) is the transition to store on the claimed record when
	// transition is set; otherwise the record is left as it is.
	changed    Subscription
	effects    *Effects
	transition bool
	// done is called once the change is stored and its effects are finished.
	done func()
}

// transition is the decision to store changed (a copy of the claimed record) with its
// effects; done counts it once it is stored and its effects finished.
func (r *run) transition(changed Subscription, eff *Effects, done func()) decision {
	return decision{transition: true, done: done, changed: changed, effects: eff}
}

// batch is a claimed batch with the users of its records.
type batch struct {
	subs  []Subscription
	users []User
	// userIdx holds the index in users of each user id.
	userIdx map[string]int
	// userErr holds, per user id, why the user could not be read (nil when every user
	// could be).
	userErr map[string]error
}

func (b *batch) user(id string) (User, error) {
	if err := b.userErr[id]; err != nil {
		return User{}, err
	}
	i, ok := b.userIdx[id]
	if !ok {
		return User{}, fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	return b.users[i], nil
}

// decider decides the records of b: ds (zeroed) has one decision per record.
type decider func(ctx context.Context, b *batch, ds []decision)

// sweep claims batches matching f until none is left and stores what decide makes of them.
// Claims come in claim order (period end, then ID), so each claim after the first starts
// after the last record the run has claimed: the store skips what the run already went
// through instead of reading it again, even when thousands of records share one end.
//
// The effects of one batch run while the next batch is claimed, decided and transitioned
// (at most one batch's effects at a time), so store round trips and sends overlap.
func (r *run) sweep(ctx context.Context, f SubscriptionFilter, decide decider) error {
	stop := r.keepClaims(ctx)
	defer stop()
	f = scoped(ctx, f)
	r.estimate(ctx, f)
	var effects sync.WaitGroup
	err := r.pass(ctx, f, decide, &effects)
	effects.Wait() // before the lease renewal stops
	if err == nil {
		err = r.halted() // tripped by the last batch's sends
	}
	return err
}

// pass claims and transitions the batches of one sweep, starting each batch's effects on
// effects once the previous batch's are done.
func (r *run) pass(ctx context.Context, f SubscriptionFilter, decide decider, effects *sync.WaitGroup) error {
	var after ClaimPosition
	for {
		if err := r.stopped(ctx); err != nil {
			return err
		}
		now := r.s.now()
		subs, err := r.s.store.ClaimSubscriptions(ctx, ClaimParams{
			Filter: f, Token: r.token, Now: now, LeaseUntil: now.Add(r.s.cfg.ClaimLease), Limit: r.s.cfg.BatchSize,
			After: after,
		})
		advance(&f, &after, subs)
		bad, partial := recordErrors(err)
		if err != nil && !partial {
			return fmt.Errorf("claiming subscriptions: %w", err)
		}
		r.unreadable(ctx, bad)
		r.claimed(ctx, len(subs), len(bad))
		if len(subs) > 0 {
			finish, err := r.work(ctx, subs, decide)
			if err != nil {
				return err
			}
			effects.Wait()
			effects.Add(1)
			go func() {
				defer effects.Done()
				finish()
				r.finished(ctx, len(subs))
			}()
		}
		if len(subs)+len(bad) < r.s.cfg.BatchSize {
			return nil
		}
	}
}

// advance moves the claim position past the last of claimed (latest period end, then
// greatest ID) and the start of f's period-end window to that end (inclusive:
// PeriodEndAfter is exclusive and stores keep milliseconds). Any claimed record is a safe
// position, since the store returned none past it that it left out; the last one is the
// furthest.
func advance(f *SubscriptionFilter, after *ClaimPosition, claimed []Subscription) {
	for _, sub := range claimed {
		c := sub.CurrentPeriodEnd.Compare(after.PeriodEnd)
		if after.ID == "" || c > 0 || c == 0 && sub.ID > after.ID {
			*after = ClaimPosition{PeriodEnd: sub.CurrentPeriodEnd, ID: sub.ID}
		}
	}
	if end := after.PeriodEnd.Add(-time.Millisecond); after.ID != "" && end.After(f.PeriodEndAfter) {
		f.PeriodEndAfter = end
	}
}

// unreadable reports records the store could not decode; they are left untouched.
func (r *run) unreadable(ctx context.Context, bad []*RecordError) {
	for _, re := range bad {
		r.count(&r.found, 1)
		r.fail(re.ID, re)
		r.s.log.ErrorContext(ctx, "record unreadable; fix the document", "collection", re.Collection, "id", re.ID, "error", re.Err)
	}
}

// resume finishes the effects that earlier runs (crashed, or stopped by the breaker) left
// on records, before the run changes anything else.
func (r *run) resume(ctx context.Context) error {
	f := scoped(ctx, SubscriptionFilter{})
	var after ClaimPosition
	for {
		if err := r.stopped(ctx); err != nil {
			return err
		}
		now := r.s.now()
		subs, err := r.s.store.ClaimSubscriptions(ctx, ClaimParams{
			Filter: f, Token: r.token, Now: now, LeaseUntil: now.Add(r.s.cfg.ClaimLease), Limit: r.s.cfg.BatchSize, Pending: true,
			After: after,
		})
		advance(&f, &after, subs)
		bad, partial := recordErrors(err)
		if err != nil && !partial {
			return fmt.Errorf("claiming records with pending effects: %w", err)
		}
		r.unreadable(ctx, bad)
		if len(subs) > 0 {
			stop := r.keepClaims(ctx)
			failed := r.finish(ctx, subs)
			stop()
			r.count(&r.found, len(subs))
			r.count(&r.resumed, len(subs)-len(failed))
			for id, err := range failed {
				r.fail(id, err)
			}
		}
		if len(subs)+len(bad) < r.s.cfg.BatchSize {
			return r.halted()
		}
	}
}

// keepClaims renews the run's claim leases while it works; stop ends it.
func (r *run) keepClaims(ctx context.Context) (stop func()) {
	return r.every(ctx, func(ctx context.Context) {
		if err := r.s.store.ExtendClaims(ctx, r.token, r.s.now().Add(r.s.cfg.ClaimLease)); err != nil && ctx.Err() == nil {
			r.s.log.WarnContext(ctx, "renewing claim leases failed", "error", err)
		}
	})
}

// every calls renew a third of a lease apart (in real time) until stop is called, so
// leases held while work goes on never run out.
func (r *run) every(ctx context.Context, renew func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(max(r.s.cfg.ClaimLease/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				renew(ctx)
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// work decides and transitions one claimed batch. It returns the step that carries out
// the stored transitions' effects.
func (r *run) work(ctx context.Context, subs []Subscription, decide decider) (finish func(), err error) {
	b, err := r.loadUsers(ctx, subs)
	if err != nil {
		return nil, err
	}
	// The decisions and changes are only needed until the changes are stored: one buffer
	// of each serves every batch of the run (its batches are worked one at a time; the
	// step returned keeps neither).
	ds := slices.Grow(r.decBuf[:0], len(subs))[:len(subs)]
	// The batch's effects go into one slab, handed back once nothing points into it: by
	// the step returned, after the effects are finished, or below when none were stored.
	slab := r.takeSlab(len(subs))
	r.slab = slab
	decide(ctx, b, ds)
	r.slab = nil
	changes := r.changeBuf[:0]
	keepSlab := false
	defer func() {
		clear(ds)
		clear(changes)
		r.decBuf, r.changeBuf = ds[:0], changes[:0]
		b.subs, b.users = nil, nil
		if !keepSlab {
			r.putSlab(slab)
		}
	}()
	owners := make([]int, 0, len(ds)) // index into ds of each change
	found := 0
	for i := range ds {
		d := &ds[i]
		if d.skip {
			continue
		}
		found++
		switch {
		case d.err != nil:
			r.fail(subs[i].ID, d.err)
			r.s.log.WarnContext(ctx, "subscription not processed; a later run retries it", "subscription_id", subs[i].ID, "error", d.err)
		case d.transition:
			changes = append(changes, SubscriptionChange{Read: subs[i], Changed: d.changed, ClaimToken: r.token, Effects: d.effects})
			owners = append(owners, i)
		}
	}
	r.count(&r.found, found)
	if len(changes) == 0 {
		return func() {}, nil
	}
	results, err := r.s.store.UpdateSubscriptions(ctx, changes)
	if err = aligned(results, err, len(changes)); err != nil {
		return nil, fmt.Errorf("storing transitions: %w", err)
	}
	// The stored records go where the claimed ones were (each change k comes from a record
	// at or after k, and the claimed copies are not read again).
	stored := subs[:0]
	var dones []func() // aligned with stored
	for k, cerr := range results {
		c := &changes[k]
		switch {
		case cerr == nil:
			if c.Effects == nil {
				if done := ds[owners[k]].done; done != nil {
					done()
				}
				continue
			}
			stored = append(stored, c.Changed)
			stored[len(stored)-1].Pending = c.Effects
			if dones == nil {
				dones = make([]func(), 0, len(changes)-k)
			}
			dones = append(dones, ds[owners[k]].done)
		case errors.Is(cerr, ErrConflict), errors.Is(cerr, ErrNotFound):
			// Someone (a payment, a webhook, the host) changed the record since the claim:
			// it is theirs now, and this run does nothing more to it.
			r.count(&r.skipped, 1)
			r.s.log.InfoContext(ctx, "subscription changed meanwhile; left alone", "subscription_id", c.Read.ID)
		default:
			r.fail(c.Read.ID, cerr)
		}
	}
	if len(stored) == 0 {
		return func() {}, nil
	}
	keepSlab = true
	return func() {
		failed := r.finish(ctx, stored)
		for k, sub := range stored {
			if err, bad := failed[sub.ID]; bad {
				r.fail(sub.ID, err)
				continue
			}
			if done := dones[k]; done != nil {
				done()
			}
		}
		r.putSlab(slab) // stored is not read again
	}, nil
}

// effectSlab holds the effects of one batch's transitions in one allocation, reused from
// batch to batch: a run's sweep allocates a slab per batch in flight, not a box per
// transition.
type effectSlab struct {
	boxes []effectsBox
	used  int
	// maps are the audit details maps of the batch's transitions (the first mapsUsed),
	// emptied and reused with the slab: stores keep nothing of a change or an audit entry
	// once the call returns.
	maps     []map[string]any
	mapsUsed int
}

// detailMap returns an empty details map with room for n entries: the slab's next one, or
// a new one when sl is nil.
func (sl *effectSlab) detailMap(n int) map[string]any {
	if sl == nil {
		return make(map[string]any, n)
	}
	if sl.mapsUsed == len(sl.maps) {
		sl.maps = append(sl.maps, make(map[string]any, n))
	}
	m := sl.maps[sl.mapsUsed]
	sl.mapsUsed++
	return m
}

// box returns the next free box of sl, or a new one when sl is nil or full.
func (sl *effectSlab) box() *effectsBox {
	if sl == nil || sl.used == len(sl.boxes) {
		return &effectsBox{}
	}
	b := &sl.boxes[sl.used]
	sl.used++
	return b
}

// takeSlab returns a spare slab with room for n transitions, or a new one.
func (r *run) takeSlab(n int) *effectSlab {
	r.slabMu.Lock()
	defer r.slabMu.Unlock()
	for len(r.spareSlabs) > 0 {
		sl := r.spareSlabs[len(r.spareSlabs)-1]
		r.spareSlabs = r.spareSlabs[:len(r.spareSlabs)-1]
		if len(sl.boxes) >= n {
			return sl
		}
	}
	return &effectSlab{boxes: make([]effectsBox, n)}
}

// putSlab empties sl, which nothing points into any more, and keeps it for a later batch.
func (r *run) putSlab(sl *effectSlab) {
	clear(sl.boxes[:sl.used])
	sl.used = 0
	for _, m := range sl.maps[:sl.mapsUsed] {
		clear(m)
	}
	sl.mapsUsed = 0
	r.slabMu.Lock()
	r.spareSlabs = append(r.spareSlabs, sl)
	r.slabMu.Unlock()
}

// loadUsers reads the users of a batch with one call. The batch, its index and the ids
// are the run's buffers (work handles one batch at a time and keeps nothing of them).
func (r *run) loadUsers(ctx context.Context, subs []Subscription) (*batch, error) {
	ids := r.idBuf[:0]
	for i := range subs {
		ids = append(ids, subs[i].UserID)
	}
	r.idBuf = ids
	if r.seen == nil {
		r.seen = make(map[string]struct{}, len(ids))
	}
	users, err := r.s.store.ListUsers(ctx, dedupeInto(ids, r.seen))
	bad, partial := recordErrors(err)
	if err != nil && !partial {
		return nil, fmt.Errorf("loading users: %w", err)
	}
	b := &r.batchBuf
	if b.userIdx == nil {
		b.userIdx = make(map[string]int, len(users))
	}
	clear(b.userIdx)
	b.subs, b.users, b.userErr = subs, users, nil
	for i := range users {
		b.userIdx[users[i].ID] = i
	}
	if len(bad) > 0 {
		b.userErr = make(map[string]error, len(bad))
		for _, re := range bad {
			b.userErr[re.ID] = re
		}
	}
	return b, nil
}

// dedupeInto removes repeated ids from ids in place, keeping their first order; seen is
// emptied and serves as the set.
func dedupeInto(ids []string, seen map[string]struct{}) []string {
	clear(seen)
	out := ids[:0]
	for _, id := range ids {
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			out = append(out, id)
		}
	}
	return out
}

// effectsBox holds a transition's effects with room for their access effect, one
// notification and one audit entry (what a job's transition carries), so building them
// costs one allocation.
type effectsBox struct {
	eff    Effects
	access AccessEffect
	note   [1]Notification
	audit  [1]AuditEntry
}

// details returns an empty audit details map for a transition being decided (from the
// batch's slab while work decides one), room for n entries.
func (r *run) details(n int) map[string]any { return r.slab.detailMap(n) }

// effects builds the effects of a transition that leaves the record as changed. It copies
// access, notes and audit: the caller's values are not kept.
func (r *run) effects(changed Subscription, access *AccessEffect, notes []Notification, audit ...AuditEntry) *Effects {
	now := r.s.now()
	box := r.slab.box() // from the batch's slab while work decides one
	e := &box.eff
	*e = Effects{Status: changed.Status, PeriodEnd: changed.CurrentPeriodEnd, CreatedAt: now}
	// The usual first audit id, the token followed by ":0", comes with the token.
	var firstID string
	if len(audit) > 0 && audit[0].ID == "" {
		e.Token, firstID = newTokenWith(":0")
	} else {
		e.Token = newToken()
	}
	if access != nil {
		box.access = *access
		e.Access = &box.access
	}
	if notes != nil {
		e.Notifications = box.note[:0:len(box.note)]
		if len(notes) > len(box.note) {
			e.Notifications = make([]Notification, 0, len(notes))
		}
		e.Notifications = append(e.Notifications, notes...)
	}
	if audit != nil {
		e.Audit = box.audit[:0:len(box.audit)]
		if len(audit) > len(box.audit) {
			e.Audit = make([]AuditEntry, 0, len(audit))
		}
		for i, a := range audit {
			switch {
			case a.ID != "": // a fixed id (an approval's, a payment's) is kept
			case i == 0:
				a.ID = firstID
			default:
				a.ID = e.Token + ":" + strconv.Itoa(i)
			}
			if a.Actor == "" {
				a.Actor = "renewkit"
			}
			a.CreatedAt = now
			e.Audit = append(e.Audit, a)
		}
	}
	return e
}

// effectItem is one record whose effects finish is carrying out. moot: the record is no
// longer as its transition left it (a payment, a webhook or the host changed it since), or
// the effects waited past the point where their emails say anything true (a warning whose
// period ended; an email that kept failing for ReconcileWindow): the notifications are not
// sent, the rest still runs. err: why the record's effects are not done.
type effectItem struct {
	sub  *Subscription
	eff  *Effects
	moot bool
	err  error
}

// finishScratch holds the buffers finish reuses from one batch to the next. A run finishes
// its batches one at a time, and the store copies what it is given, so after the first
// batch finishing allocates little beyond what the store returns.
type finishScratch struct {
	ids       []string
	seen      map[string]struct{}
	order     []int
	grouped   []Subscription
	byID      map[string]int
	items     []effectItem
	userIdx   map[string]int
	changes   []UserAccessChange
	changeOf  map[string]int
	userAudit []AuditEntry
	auditOf   []int
	audits    []AuditEntry
	recs      []NotificationRecord
	notes     []*Notification
	owner     []int
	done      []EffectsDone
	// maps are the details maps of userAudit's entries (the first mapsUsed).
	maps     []map[string]any
	mapsUsed int
}

// detailMap returns an empty details map, sc's next one.
func (sc *finishScratch) detailMap() map[string]any {
	if sc.mapsUsed == len(sc.maps) {
		sc.maps = append(sc.maps, make(map[string]any, 3))
	}
	m := sc.maps[sc.mapsUsed]
	sc.mapsUsed++
	return m
}

// scratch returns the run's finish buffers, or fresh ones when another finish of the run
// holds them; release hands them back.
func (r *run) scratch() (sc *finishScratch, release func()) {
	if !r.scratchBusy.CompareAndSwap(false, true) {
		return &finishScratch{}, func() {}
	}
	if r.finishBuf == nil {
		r.finishBuf = &finishScratch{}
	}
	sc = r.finishBuf
	return sc, func() {
		sc.reset()
		r.scratchBusy.Store(false)
	}
}

// reset empties the buffers, dropping what they point at.
func (sc *finishScratch) reset() {
	clear(sc.grouped)
	clear(sc.items)
	clear(sc.changes)
	clear(sc.userAudit)
	clear(sc.audits)
	clear(sc.recs)
	clear(sc.notes)
	clear(sc.done)
	sc.grouped, sc.items, sc.changes, sc.userAudit = sc.grouped[:0], sc.items[:0], sc.changes[:0], sc.userAudit[:0]
	sc.audits, sc.recs, sc.notes, sc.done = sc.audits[:0], sc.recs[:0], sc.notes[:0], sc.done[:0]
	clear(sc.byID)
	clear(sc.userIdx)
	clear(sc.changeOf)
	for _, m := range sc.maps[:sc.mapsUsed] {
		clear(m)
	}
	sc.mapsUsed = 0
}

// finish carries out the pending effects of subs (records the run holds, each with
// Pending) and clears the ones done. It returns, per subscription id, why its effects are
// not done (nil when all are); those stay on the record for a later run.
func (r *run) finish(ctx context.Context, subs []Subscription) map[string]error {
	var failed map[string]error
	if len(subs) == 0 {
		return failed
	}
	failAll := func(err error) map[string]error {
		failed = make(map[string]error, len(subs))
		for _, sub := range subs {
			failed[sub.ID] = err
		}
		return failed
	}
	sc, release := r.scratch()
	defer release()
	now := r.s.now()

	// The records and their users' other subscriptions as they are now: one read. It tells
	// whether a record is still as its transition left it, and which subscriptions give the
	// user access. Their pending effects are not needed.
	hasAccess := false
	userIDs := sc.ids[:0]
	for i := range subs {
		userIDs = append(userIDs, subs[i].UserID)
		if a := subs[i].Pending.Access; a != nil {
			hasAccess = true
			if a.UserID != subs[i].UserID {
				userIDs = append(userIDs, a.UserID)
			}
		}
	}
	sc.ids = userIDs
	userIDs = sc.dedupe(userIDs)
	current, err := r.s.store.ListSubscriptions(ctx, SubscriptionFilter{UserIDs: userIDs, OmitPending: true}, 0)
	if _, partial := recordErrors(err); err != nil && !partial {
		return failAll(fmt.Errorf("reading the subscriptions of the batch's users: %w", err))
	}
	if hasAccess {
		current = sc.groupByUser(current)
	}
	byID := sc.byID
	if byID == nil {
		byID = make(map[string]int, len(current))
		sc.byID = byID
	}
	for i := range current {
		byID[current[i].ID] = i
	}

	items := sc.items[:0]
	for i := range subs {
		sub := &subs[i]
		eff := sub.Pending
		k, ok := byID[sub.ID]
		moot := !ok || current[k].Status != eff.Status || !current[k].CurrentPeriodEnd.Equal(eff.PeriodEnd)
		if eff.Status.Live() && eff.Access == nil && !eff.PeriodEnd.IsZero() && !now.Before(eff.PeriodEnd) {
			moot = true // a warning for a period that is over
		}
		if !eff.CreatedAt.IsZero() && now.Sub(eff.CreatedAt) > r.s.cfg.ReconcileWindow {
			moot = true
			if len(eff.Notifications) > 0 {
				r.s.log.WarnContext(ctx, "pending notifications given up after ReconcileWindow",
					"subscription_id", sub.ID, "since", eff.CreatedAt)
			}
		}
		items = append(items, effectItem{sub: sub, eff: eff, moot: moot})
	}
	sc.items = items

	// Access: one conditional write. The access changes made are audited whatever else
	// fails: their entries start audits.
	audits := sc.audits[:0]
	if hasAccess {
		if err := r.access(ctx, sc, items, current, byID, now); err != nil {
			return failAll(err)
		}
		audits = sc.audits
	}

	// Notifications of records still as their transition left them, once the access
	// change is done.
	recs, notes, owner := sc.recs[:0], sc.notes[:0], sc.owner[:0]
	for i := range items {
		it := &items[i]
		if it.moot || it.err != nil {
			continue
		}
		for k := range it.eff.Notifications {
			n := &it.eff.Notifications[k]
			recs = append(recs, NotificationRecord{Key: n.Key, Kind: n.Kind, SubscriptionID: it.sub.ID, UserID: n.To.UserID, Data: &n.Data})
			notes = append(notes, n)
			owner = append(owner, i)
		}
	}
	sc.recs, sc.notes, sc.owner = recs, notes, owner
	if len(recs) > 0 {
		for k, err := range r.deliver(ctx, recs, notes) {
			if it := &items[owner[k]]; err != nil && it.err == nil {
				it.err = err
			}
		}
	}

	// Audit entries of the transitions whose effects are done, in one insert.
	n := len(audits)
	for i := range items {
		if items[i].err == nil {
			n += len(items[i].eff.Audit)
		}
	}
	audits = slices.Grow(audits, n-len(audits))
	for i := range items {
		if it := &items[i]; it.err == nil {
			audits = append(audits, it.eff.Audit...)
		}
	}
	sc.audits = audits
	if len(audits) > 0 {
		if err := r.s.store.InsertAudits(ctx, audits); err != nil {
			return failAll(fmt.Errorf("writing audit entries: %w", err))
		}
	}

	done := sc.done[:0]
	for i := range items {
		if it := &items[i]; it.err == nil {
			done = append(done, EffectsDone{SubscriptionID: it.sub.ID, Token: it.eff.Token, ClaimToken: r.token})
		}
	}
	sc.done = done
	if len(done) > 0 {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(r.s.cfg.ClaimLease, time.Minute))
		defer cancel()
		if err := r.s.store.CompleteEffects(cctx, done); err != nil {
			// Everything completed is idempotent: the next run finds the effects, sees the
			// keys sent and the audit entries stored, and clears them.
			err = fmt.Errorf("clearing finished effects: %w", err)
			for i := range items {
				if it := &items[i]; it.err == nil {
					it.err = err
				}
			}
		}
	}
	for i := range items {
		if it := &items[i]; it.err != nil {
			if failed == nil {
				failed = make(map[string]error)
			}
			failed[it.sub.ID] = it.err
		}
	}
	return failed
}

// access brings the access of the items' users in line with their subscriptions as they
// are now (current, grouped by user; byID indexes it) with one read of the users and one
// conditional write, and leaves the audit entries of the changes made in sc.audits. A user
// that cannot be read or written fails the items whose access it is.
func (r *run) access(ctx context.Context, sc *finishScratch, items []effectItem, current []Subscription, byID map[string]int, now time.Time) error {
	accessUsers := sc.ids[:0]
	for i := range items {
		if a := items[i].eff.Access; a != nil {
			accessUsers = append(accessUsers, a.UserID)
		}
	}
	sc.ids = accessUsers
	// The users as they are now (a batch transitioned earlier may just have changed
	// them): one read.
	list, err := r.s.store.ListUsers(ctx, sc.dedupe(accessUsers))
	bad, partial := recordErrors(err)
	if err != nil && !partial {
		return fmt.Errorf("loading users: %w", err)
	}
	var badUser map[string]error
	if len(bad) > 0 {
		badUser = make(map[string]error, len(bad))
		for _, re := range bad {
			badUser[re.ID] = re
		}
	}
	if sc.userIdx == nil {
		sc.userIdx, sc.changeOf = make(map[string]int, len(list)), make(map[string]int, len(list))
	}
	userIdx, changeOf := sc.userIdx, sc.changeOf // changeOf: user id -> index in changes
	for i := range list {
		userIdx[list[i].ID] = i
	}
	changes, userAudit, auditOf := sc.changes[:0], sc.userAudit[:0], sc.auditOf[:0] // auditOf: index in changes of each userAudit entry
	for i := range items {
		it := &items[i]
		if it.eff.Access == nil {
			continue
		}
		uid := it.eff.Access.UserID
		if err := badUser[uid]; err != nil {
			it.err = err
			continue
		}
		if _, done := changeOf[uid]; done {
			continue
		}
		ui, ok := userIdx[uid]
		if !ok {
			continue // no user to give or take access from
		}
		u := list[ui]
		ended := *it.sub
		if k, ok := byID[ended.ID]; ok {
			ended = current[k]
		}
		next, changed := accessFor(u, userSubscriptions(current, uid), ended, it.eff.Access.Status, now)
		if !changed {
			continue
		}
		changeOf[uid] = len(changes)
		changes = append(changes, UserAccessChange{Read: u, Changed: next})
		if a, ok := accessAudit(u, next, it.sub.ID, sc.detailMap); ok {
			a.ID, a.CreatedAt = it.eff.Token+":access", now
			userAudit = append(userAudit, a)
			auditOf = append(auditOf, len(changes)-1)
		}
	}
	sc.changes, sc.userAudit, sc.auditOf = changes, userAudit, auditOf
	if len(changes) == 0 {
		return nil
	}
	results, err := r.s.store.UpdateUsersAccess(ctx, changes)
	if err = aligned(results, err, len(changes)); err != nil {
		return fmt.Errorf("updating access: %w", err)
	}
	for i := range items {
		it := &items[i]
		if it.eff.Access == nil {
			continue
		}
		k, ok := changeOf[it.eff.Access.UserID]
		if !ok {
			continue
		}
		if results[k] != nil {
			it.err = fmt.Errorf("updating access of user %s: %w", it.eff.Access.UserID, results[k])
		}
	}
	audits := sc.audits[:0]
	for i, a := range userAudit {
		if results[auditOf[i]] == nil {
			audits = append(audits, a)
		}
	}
	sc.audits = audits
	return nil
}

// groupByUser returns subs ordered by user id, each user's records in the order they had
// in subs (subs itself when it is ordered already, else sc.grouped).
func (sc *finishScratch) groupByUser(subs []Subscription) []Subscription {
	byUser := func(a, b *Subscription) int { return strings.Compare(a.UserID, b.UserID) }
	if slices.IsSortedFunc(subs, func(a, b Subscription) int { return byUser(&a, &b) }) {
		return subs
	}
	order := sc.order[:0]
	for i := range subs {
		order = append(order, i)
	}
	sc.order = order
	slices.SortStableFunc(order, func(a, b int) int { return byUser(&subs[a], &subs[b]) })
	out := slices.Grow(sc.grouped[:0], len(subs))
	for _, i := range order {
		out = append(out, subs[i])
	}
	sc.grouped = out
	return out
}

// dedupe removes repeated ids from ids in place, keeping their first order.
func (sc *finishScratch) dedupe(ids []string) []string {
	if sc.seen == nil {
		sc.seen = make(map[string]struct{}, len(ids))
	}
	return dedupeInto(ids, sc.seen)
}

// userSubscriptions returns the records of user id in subs, which groupByUser ordered.
func userSubscriptions(subs []Subscription, id string) []Subscription {
	lo, _ := slices.BinarySearchFunc(subs, id, func(s Subscription, id string) int { return strings.Compare(s.UserID, id) })
	hi := lo
	for hi < len(subs) && subs[hi].UserID == id {
		hi++
	}
	return subs[lo:hi:hi]
}

// deliver reserves the keys of recs, sends the reserved ones (notes, aligned with recs)
// through the bounded pool and records their outcomes. It returns, aligned with recs, why
// each notification is not done (nil: done).
func (r *run) deliver(ctx context.Context, recs []NotificationRecord, notes []*Notification) []error {
	errs := make([]error, len(recs))
	if err := r.breaker.err(); err != nil {
		// Tripped already: nothing is reserved or sent; the emails stay pending.
		for i := range errs {
			errs[i] = fmt.Errorf("not sent: %w", err)
		}
		return errs
	}
	now := r.s.now()
	// Reservations last two thirds of a claim lease (renewed every third, like the claims):
	// when a crashed run's claims lapse and another run takes its records over, its
	// reservations have lapsed already.
	lease := r.s.cfg.ClaimLease * 2 / 3
	reserved, err := r.s.store.ReserveNotifications(ctx, recs, r.token, now, now.Add(lease))
	if err = aligned(reserved, err, len(recs)); err != nil {
		err = fmt.Errorf("reserving notifications: %w", err)
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	todo := make([]int, 0, len(recs))
	for i, ok := range reserved {
		if ok {
			todo = append(todo, i)
			continue
		}
		errs[i] = r.s.notDone(ctx, recs[i].Key)
	}
	// Each outcome is recorded before its sender sends again (group commit: the outcomes
	// that arrive while one write is in flight go together in the next), so a crash repeats
	// at most the sends in flight, not a batch's worth. The reservations of the keys not
	// sent yet are renewed while the batch sends.
	var sent atomic.Int64
	var mu sync.Mutex
	attempted := make([]bool, len(todo))
	open := make([]bool, len(todo)) // reserved keys not finished, by index in todo
	for j := range open {
		open[j] = true
	}
	// Outcome writes outlive ctx (a send that happened must be recorded) and get
	// min(ClaimLease, 1 minute) each. The committer writes one group at a time, so the
	// writes share one deadline while at least half of it is left, instead of a timer per
	// write.
	budget := min(r.s.cfg.ClaimLease, time.Minute)
	var wctx context.Context
	var wcancel context.CancelFunc = func() {}
	defer func() { wcancel() }()
	rec := &committer{write: func(recs []NotificationRecord) error {
		if dl, ok := deadline(wctx); !ok || time.Until(dl) < budget/2 {
			wcancel()
			wctx, wcancel = context.WithTimeout(context.WithoutCancel(ctx), budget)
		}
		return retry(wctx, 3, func() error { return r.s.store.FinishNotifications(wctx, recs, r.token) })
	}, failed: func(i int, rec NotificationRecord, err error) {
		// The send happened; its record stays "sending" until the lease ends and a later
		// run sends it again: the one allowed repeat.
		mu.Lock()
		errs[i] = errors.Join(errs[i], fmt.Errorf("recording notification %s: %w", rec.Key, err))
		mu.Unlock()
	}}
	record := func(j int, r NotificationRecord, why error) {
		mu.Lock()
		open[j] = false
		if why != nil {
			errs[todo[j]] = why
		}
		mu.Unlock()
		rec.add(todo[j], r)
	}
	stopRenewing := r.every(ctx, func(ctx context.Context) {
		// Under mu, so a key whose send ends meanwhile is released only after this
		// renewal, never re-reserved by it.
		mu.Lock()
		defer mu.Unlock()
		var left []NotificationRecord
		for j, i := range todo {
			if open[j] {
				left = append(left, recs[i])
			}
		}
		if len(left) == 0 {
			return
		}
		now := r.s.now()
		if _, err := r.s.store.ReserveNotifications(ctx, left, r.token, now, now.Add(lease)); err != nil && ctx.Err() == nil {
			r.s.log.WarnContext(ctx, "renewing notification reservations failed", "error", err)
		}
	})
	parallel(ctx, len(todo), r.s.cfg.SendConcurrency, func(j int) {
		if r.breaker.err() != nil {
			return
		}
		attempted[j] = true
		rec := recs[todo[j]]
		err := r.s.notifier.Notify(ctx, *notes[todo[j]])
		rec, why := r.s.outcome(ctx, rec, err)
		switch {
		case err == nil:
			r.breaker.success()
			sent.Add(1)
		case why != nil:
			r.breaker.failure(err)
		}
		record(j, rec, why)
	})
	stopRenewing() // before the unsent keys are released: a renewal must not take them again
	r.count(&r.sent, int(sent.Load()))
	// Reservations never sent (the breaker tripped, the run was cancelled) are released in
	// one write.
	var unsent []NotificationRecord
	for j, i := range todo {
		if !attempted[j] {
			rec := recs[i]
			rec.Status = ""
			unsent = append(unsent, rec)
			errs[i] = fmt.Errorf("not sent: %w", errors.Join(ctx.Err(), r.breaker.err()))
		}
	}
	if len(unsent) > 0 {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(r.s.cfg.ClaimLease, time.Minute))
		defer cancel()
		if err := r.s.store.FinishNotifications(fctx, unsent, r.token); err != nil {
			r.s.log.WarnContext(ctx, "releasing unsent notification keys failed; they are retaken after the lease", "error", err)
		}
	}
	return errs
}

// committer writes notification outcomes in groups (group commit): add queues one and
// returns once a write that holds it has finished. While one write is in flight, the
// outcomes added meanwhile gather into the next one, so each sender has at most one outcome
// unwritten at any time and a crash repeats at most the sends in flight. Two buffers take
// turns (one gathering, one being written), and waiters wait on a condition, so a group
// costs no allocation.
type committer struct {
	write func([]NotificationRecord) error
	// failed is told the outcomes a write failed to record, with the index add got.
	failed func(i int, rec NotificationRecord, err error)

	mu      sync.Mutex
	wrote   sync.Cond   // signalled when a group's write has finished
	next    commitGroup // gathering while a write is in flight
	spare   commitGroup // the buffers of the group written last
	gen     uint64      // number of the gathering group
	written uint64      // groups whose write has finished
	writing bool
}

type commitGroup struct {
	recs []NotificationRecord
	idx  []int
}

func (c *committer) add(i int, rec NotificationRecord) {
	c.mu.Lock()
	c.next.recs = append(c.next.recs, rec)
	c.next.idx = append(c.next.idx, i)
	if c.writing {
		if c.wrote.L == nil {
			c.wrote.L = &c.mu
		}
		for mine := c.gen; c.written <= mine; {
			c.wrote.Wait()
		}
		c.mu.Unlock()
		return
	}
	c.writing = true
	for len(c.next.recs) > 0 {
		g := c.next
		c.next, c.spare = commitGroup{recs: c.spare.recs[:0], idx: c.spare.idx[:0]}, commitGroup{}
		c.gen++
		c.mu.Unlock()
		if err := c.write(g.recs); err != nil {
			for k, r := range g.recs {
				c.failed(g.idx[k], r, err)
			}
		}
		clear(g.recs)
		c.mu.Lock()
		c.spare = g
		c.written++
		if c.wrote.L != nil {
			c.wrote.Broadcast()
		}
	}
	c.writing = false
	c.mu.Unlock()
}

// deadline returns ctx's deadline; false for a nil ctx or one without a deadline.
func deadline(ctx context.Context) (time.Time, bool) {
	if ctx == nil {
		return time.Time{}, false
	}
	return ctx.Deadline()
}

// retry calls f up to attempts times, 50 ms apart at first and doubling, while it fails and
// ctx lasts. A record of a send that went out is worth a short wait: without it the send is
// repeated later.
func retry(ctx context.Context, attempts int, f func() error) error {
	delay := 50 * time.Millisecond
	var err error
	for i := 0; i < attempts; i++ {
		if err = f(); err == nil || i == attempts-1 {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		delay *= 2
	}
	return err
}

// aligned returns err, or an error when a batch call did not return one result per item.
func aligned[T any](results []T, err error, n int) error {
	if err == nil && len(results) != n {
		err = fmt.Errorf("%w: the store returned %d results for %d items", ErrInvalidInput, len(results), n)
	}
	return err
}

// notDone says why a key that could not be reserved is not done: nil when it was sent or
// failed for good already, an error wrapping ErrConflict when another run or delivery is
// still sending it under a live reservation (a later attempt checks again).
func (s *Service) notDone(ctx context.Context, key string) error {
	got, err := s.store.GetNotification(ctx, key)
	if err == nil && got.Status != NotificationSending {
		return nil
	}
	return fmt.Errorf("%w: notification %s is being sent by another run", ErrConflict, key)
}

// outcome records what the notifier said about rec: sent, failed for good (ErrUndeliverable:
// never retried), or released for a later attempt (any other error, returned as why).
func (s *Service) outcome(ctx context.Context, rec NotificationRecord, err error) (_ NotificationRecord, why error) {
	rec.UpdatedAt = s.now()
	switch {
	case err == nil:
		rec.Status = NotificationSent
	case errors.Is(err, ErrUndeliverable):
		rec.Status, rec.Error = NotificationFailed, err.Error()
		s.log.WarnContext(ctx, "notification undeliverable; not retried", "kind", rec.Kind, "key", rec.Key, "error", err)
	default:
		rec.Status = "" // released: a later attempt sends it
		why = fmt.Errorf("sending %s: %w", rec.Kind, err)
	}
	return rec, why
}

// parallel calls f(0..n-1) from at most limit goroutines at once and waits for them. Calls
// not started when ctx ends are skipped.
func parallel(ctx context.Context, n, limit int, f func(i int)) {
	if n == 0 {
		return
	}
	limit = max(1, min(limit, n))
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range limit {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

// breaker stops a run's sends after threshold consecutive transient notifier failures, so
// an outage costs seconds, not the whole retry budget of every record.
type breaker struct {
	threshold   int64
	consecutive atomic.Int64
	tripped     atomic.Pointer[error]
}

func (b *breaker) success() { b.consecutive.Store(0) }

func (b *breaker) failure(err error) {
	if b.consecutive.Add(1) >= b.threshold && b.tripped.Load() == nil {
		e := fmt.Errorf("%w: %d consecutive transient failures, the last: %v", ErrNotifierUnavailable, b.threshold, err)
		b.tripped.CompareAndSwap(nil, &e)
	}
}

func (b *breaker) err() error {
	if p := b.tripped.Load(); p != nil {
		return *p
	}
	return nil
}

// accessFor returns the user's access after a change of ended (the record as it is now):
// pointed at a live subscription when one is left (the one the user's access points at,
// else one of the same plan, else the one paid furthest ahead), revoked with status when
// none is. Live subscriptions other than the one the user holds are considered whether or
// not the user document names a subscription: the original application's users carry
// only a plan.
func accessFor(u User, subs []Subscription, ended Subscription, status SubscriptionStatus, now time.Time) (User, bool) {
	// A live subscription whose period has ended (the expire job has not reached it yet)
	// gives way to one whose period is ahead: whoever paid has access at once.
	var live, ahead []Subscription
	for _, s := range subs {
		if s.Status.Live() && !s.Deleted {
			live = append(live, s)
			if s.CurrentPeriodEnd.After(now) {
				ahead = append(ahead, s)
			}
		}
	}
	if len(ahead) > 0 {
		live = ahead
	}
	next := u
	if len(live) > 0 {
		target := live[0]
		for _, s := range live[1:] {
			if s.CurrentPeriodEnd.After(target.CurrentPeriodEnd) {
				target = s
			}
		}
		if i := slices.IndexFunc(live, func(s Subscription) bool { return s.PlanID == u.PlanID }); i >= 0 {
			target = live[i]
		}
		if i := slices.IndexFunc(live, func(s Subscription) bool { return s.ID == u.SubscriptionID }); i >= 0 {
			target = live[i]
		}
		next.PlanID, next.SubscriptionID, next.Status, next.AccessUntil = target.PlanID, target.ID, target.Status, target.CurrentPeriodEnd
	} else {
		if status == "" {
			status = ended.Status
		}
		if u.PlanID == "" && u.Status == status {
			return u, false
		}
		// Access that points at a subscription the user does not have came from
		// elsewhere (the host granted it): not this record's to take.
		if u.SubscriptionID != "" && u.SubscriptionID != ended.ID &&
			!slices.ContainsFunc(subs, func(s Subscription) bool { return s.ID == u.SubscriptionID }) {
			return u, false
		}
		next.PlanID, next.SubscriptionID, next.Status, next.AccessUntil = "", ended.ID, status, ended.CurrentPeriodEnd
	}
	if next.PlanID == u.PlanID && next.SubscriptionID == u.SubscriptionID && next.Status == u.Status && next.AccessUntil.Equal(u.AccessUntil) {
		return u, false
	}
	next.UpdatedAt = now
	return next, true
}

// accessAudit is the audit entry of an access change that moved the user's plan. Its
// details go into a map from newMap (an empty one, with room for three entries), or a new
// map when newMap is nil.
func accessAudit(before, after User, subscriptionID string, newMap func() map[string]any) (AuditEntry, bool) {
	if before.PlanID == after.PlanID {
		return AuditEntry{}, false
	}
	e := AuditEntry{EntityType: "user", EntityID: after.ID, UserID: after.ID, Actor: "renewkit"}
	var d map[string]any
	if newMap != nil {
		d = newMap()
	} else {
		d = make(map[string]any, 3)
	}
	if after.PlanID == "" {
		e.Action = AuditAccessRevoked
		d["subscription_id"], d["previous_plan_id"], d["status"] = subscriptionID, before.PlanID, detail(after.Status)
	} else {
		e.Action = AuditUserPlanUpdated
		d["previous_plan_id"], d["plan_id"], d["subscription_id"] = before.PlanID, after.PlanID, after.SubscriptionID
	}
	e.Details = d
	return e, true
}

// knownDetails are the statuses and notification kinds audit details carry, each boxed
// once, so that detail boxes them without an allocation.
var knownDetails = func(ss ...string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}(string(SubscriptionStatusActive), string(SubscriptionStatusPastDue), string(SubscriptionStatusInactive),
	string(SubscriptionStatusCancelled), string(SubscriptionStatusPending), string(NotificationKindExpiring),
	string(NotificationKindRenewalUpcoming), string(NotificationKindExpired), string(NotificationKindRenewed))

// detail is s as an audit detail value (a string): one of knownDetails when s is one, else
// boxed anew (one allocation).
func detail[T ~string](s T) any {
	for _, v := range knownDetails {
		if v.(string) == string(s) {
			return v
		}
	}
	return string(s)
}

// reconcileAccess brings one user's access in line with their subscriptions after ended
// changed (the processor's single-record counterpart of the effects' access step).
func (s *Service) reconcileAccess(ctx context.Context, userID string, ended Subscription, status SubscriptionStatus) error {
	u, err := s.store.GetUser(ctx, userID)
	if err != nil {
		return fmt.Errorf("loading user %s: %w", userID, err)
	}
	subs, err := s.store.ListUserSubscriptions(ctx, userID)
	if err != nil {
		return fmt.Errorf("listing subscriptions of user %s: %w", userID, err)
	}
	next, changed := accessFor(u, subs, ended, status, s.now())
	if !changed {
		return nil
	}
	if err := UpdateUserAccess(ctx, s.store, u, next); err != nil {
		return fmt.Errorf("updating access of user %s: %w", userID, err)
	}
	if a, ok := accessAudit(u, next, ended.ID, nil); ok {
		return s.audit(ctx, a)
	}
	return nil
}
