package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
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
	s       *Service
	token   string
	breaker *breaker

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

// stopped reports why the run must not claim more work: its context ended or the notifier's
// breaker tripped.
func (r *run) stopped(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
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
	// change is the transition to store when transition is set; otherwise the record is
	// left as it is.
	change     SubscriptionChange
	transition bool
	// done is called once the change is stored and its effects are finished.
	done func()
}

// transition is the decision to store changed (a copy of sub) with its effects on the
// record the run claimed; done counts it once it is stored and its effects finished.
func (r *run) transition(sub, changed Subscription, eff *Effects, done func()) decision {
	return decision{transition: true, done: done,
		change: SubscriptionChange{Read: sub, Changed: changed, ClaimToken: r.token, Effects: eff}}
}

// batch is a claimed batch with the users of its records.
type batch struct {
	subs  []Subscription
	users map[string]User
	// userErr holds, per user id, why the user could not be read.
	userErr map[string]error
}

func (b *batch) user(id string) (User, error) {
	if err := b.userErr[id]; err != nil {
		return User{}, err
	}
	u, ok := b.users[id]
	if !ok {
		return User{}, fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	return u, nil
}

type decider func(ctx context.Context, b *batch) []decision

// sweep claims batches matching f until none is left and stores what decide makes of them.
// Claims come oldest period end first, so each claim after the first starts its window at
// the latest period end the run has claimed: the store skips what the run already went
// through instead of reading it again (records with that very end that it holds are
// skipped as its own).
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
		err = r.breaker.err() // tripped by the last batch's sends
	}
	return err
}

// pass claims and transitions the batches of one sweep, starting each batch's effects on
// effects once the previous batch's are done.
func (r *run) pass(ctx context.Context, f SubscriptionFilter, decide decider, effects *sync.WaitGroup) error {
	for {
		if err := r.stopped(ctx); err != nil {
			return err
		}
		now := r.s.now()
		subs, err := r.s.store.ClaimSubscriptions(ctx, ClaimParams{
			Filter: f, Token: r.token, Now: now, LeaseUntil: now.Add(r.s.cfg.ClaimLease), Limit: r.s.cfg.BatchSize,
		})
		advance(&f, subs)
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

// advance moves the start of f's period-end window to the latest end among claimed
// (inclusive: PeriodEndAfter is exclusive and stores keep milliseconds).
func advance(f *SubscriptionFilter, claimed []Subscription) {
	for _, sub := range claimed {
		if after := sub.CurrentPeriodEnd.Add(-time.Millisecond); after.After(f.PeriodEndAfter) {
			f.PeriodEndAfter = after
		}
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
	for {
		if err := r.stopped(ctx); err != nil {
			return err
		}
		now := r.s.now()
		subs, err := r.s.store.ClaimSubscriptions(ctx, ClaimParams{
			Filter: f, Token: r.token, Now: now, LeaseUntil: now.Add(r.s.cfg.ClaimLease), Limit: r.s.cfg.BatchSize, Pending: true,
		})
		advance(&f, subs)
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
			return r.breaker.err()
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
	ds := decide(ctx, b)
	changes := make([]SubscriptionChange, 0, len(ds))
	owners := make([]int, 0, len(ds)) // index into ds of each change
	for i, d := range ds {
		if d.skip {
			continue
		}
		r.count(&r.found, 1)
		switch {
		case d.err != nil:
			r.fail(subs[i].ID, d.err)
			r.s.log.WarnContext(ctx, "subscription not processed; a later run retries it", "subscription_id", subs[i].ID, "error", d.err)
		case d.transition:
			changes = append(changes, d.change)
			owners = append(owners, i)
		}
	}
	if len(changes) == 0 {
		return func() {}, nil
	}
	results, err := r.s.store.UpdateSubscriptions(ctx, changes)
	if err = aligned(results, err, len(changes)); err != nil {
		return nil, fmt.Errorf("storing transitions: %w", err)
	}
	stored := make([]Subscription, 0, len(changes))
	storedOwners := make([]int, 0, len(changes))
	for k, cerr := range results {
		c := changes[k]
		switch {
		case cerr == nil:
			if c.Effects == nil {
				if done := ds[owners[k]].done; done != nil {
					done()
				}
				continue
			}
			sub := c.Changed
			sub.Pending = c.Effects
			stored = append(stored, sub)
			storedOwners = append(storedOwners, owners[k])
		case errors.Is(cerr, ErrConflict), errors.Is(cerr, ErrNotFound):
			// Someone (a payment, a webhook, the host) changed the record since the claim:
			// it is theirs now, and this run does nothing more to it.
			r.count(&r.skipped, 1)
			r.s.log.InfoContext(ctx, "subscription changed meanwhile; left alone", "subscription_id", c.Read.ID)
		default:
			r.fail(c.Read.ID, cerr)
		}
	}
	return func() {
		failed := r.finish(ctx, stored)
		for k, sub := range stored {
			if err, bad := failed[sub.ID]; bad {
				r.fail(sub.ID, err)
				continue
			}
			if done := ds[storedOwners[k]].done; done != nil {
				done()
			}
		}
	}, nil
}

// loadUsers reads the users of a batch with one call.
func (r *run) loadUsers(ctx context.Context, subs []Subscription) (*batch, error) {
	b := &batch{subs: subs, users: map[string]User{}, userErr: map[string]error{}}
	ids := make([]string, 0, len(subs))
	for _, sub := range subs {
		ids = append(ids, sub.UserID)
	}
	users, err := r.s.store.ListUsers(ctx, uniq(ids))
	bad, partial := recordErrors(err)
	if err != nil && !partial {
		return nil, fmt.Errorf("loading users: %w", err)
	}
	for _, u := range users {
		b.users[u.ID] = u
	}
	for _, re := range bad {
		b.userErr[re.ID] = re
	}
	return b, nil
}

func uniq(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// effects builds the effects of a transition that leaves the record as changed.
func (r *run) effects(changed Subscription, access *AccessEffect, notes []Notification, audit ...AuditEntry) *Effects {
	now := r.s.now()
	e := &Effects{Token: newToken(), Access: access, Notifications: notes, Status: changed.Status,
		PeriodEnd: changed.CurrentPeriodEnd, CreatedAt: now}
	for i := range audit {
		audit[i].ID = e.Token + ":" + strconv.Itoa(i)
		if audit[i].Actor == "" {
			audit[i].Actor = "renewkit"
		}
		audit[i].CreatedAt = now
	}
	e.Audit = audit
	return e
}

// finish carries out the pending effects of subs (records the run holds, each with
// Pending) and clears the ones done. It returns, per subscription id, why its effects are
// not done; those stay on the record for a later run.
func (r *run) finish(ctx context.Context, subs []Subscription) map[string]error {
	failed := map[string]error{}
	if len(subs) == 0 {
		return failed
	}
	failAll := func(err error) map[string]error {
		for _, sub := range subs {
			failed[sub.ID] = err
		}
		return failed
	}
	now := r.s.now()

	// The records and their users' other subscriptions as they are now: one read. It tells
	// whether a record is still as its transition left it, and which subscriptions give the
	// user access.
	userIDs := make([]string, 0, len(subs))
	for _, sub := range subs {
		userIDs = append(userIDs, sub.UserID)
		if sub.Pending.Access != nil {
			userIDs = append(userIDs, sub.Pending.Access.UserID)
		}
	}
	userIDs = uniq(userIDs)
	current, err := r.s.store.ListSubscriptions(ctx, SubscriptionFilter{UserIDs: userIDs}, 0)
	if _, partial := recordErrors(err); err != nil && !partial {
		return failAll(fmt.Errorf("reading the subscriptions of the batch's users: %w", err))
	}
	byID := make(map[string]int, len(current))
	byUser := make(map[string][]Subscription, len(userIDs))
	for i, c := range current {
		byID[c.ID] = i
		byUser[c.UserID] = append(byUser[c.UserID], c)
	}

	// moot: the record is no longer as its transition left it (a payment, a webhook or the
	// host changed it since), or the effects waited past the point where their emails say
	// anything true (a warning whose period ended; an email that kept failing for
	// ReconcileWindow): the notifications are not sent, the rest still runs.
	type item struct {
		sub  *Subscription
		eff  *Effects
		moot bool
	}
	items := make([]item, 0, len(subs))
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
		items = append(items, item{sub: sub, eff: eff, moot: moot})
	}

	// Access: one conditional write.
	var accessUsers []string
	for _, it := range items {
		if it.eff.Access != nil {
			accessUsers = append(accessUsers, it.eff.Access.UserID)
		}
	}
	var audits []AuditEntry
	if len(accessUsers) > 0 {
		// The users as they are now (a batch transitioned earlier may just have changed
		// them): one read.
		list, err := r.s.store.ListUsers(ctx, uniq(accessUsers))
		bad, partial := recordErrors(err)
		if err != nil && !partial {
			return failAll(fmt.Errorf("loading users: %w", err))
		}
		badUser := make(map[string]error, len(bad))
		for _, re := range bad {
			badUser[re.ID] = re
		}
		userByID := make(map[string]User, len(list))
		for _, u := range list {
			userByID[u.ID] = u
		}
		changes := make([]UserAccessChange, 0, len(accessUsers))
		changeOf := make(map[string]int, len(accessUsers)) // user id -> index in changes
		userAudit := make([]AuditEntry, 0, len(accessUsers))
		auditOf := make([]int, 0, len(accessUsers)) // index in changes of each userAudit entry
		for _, it := range items {
			if it.eff.Access == nil {
				continue
			}
			uid := it.eff.Access.UserID
			if err := badUser[uid]; err != nil {
				failed[it.sub.ID] = err
				continue
			}
			if _, done := changeOf[uid]; done {
				continue
			}
			u, ok := userByID[uid]
			if !ok {
				continue // no user to give or take access from
			}
			ended := *it.sub
			if k, ok := byID[ended.ID]; ok {
				ended = current[k]
			}
			next, changed := accessFor(u, byUser[uid], ended, it.eff.Access.Status, now)
			if !changed {
				continue
			}
			changeOf[uid] = len(changes)
			changes = append(changes, UserAccessChange{Read: u, Changed: next})
			if a, ok := accessAudit(u, next, it.sub.ID); ok {
				a.ID, a.CreatedAt = it.eff.Token+":access", now
				userAudit = append(userAudit, a)
				auditOf = append(auditOf, len(changes)-1)
			}
		}
		if len(changes) > 0 {
			results, err := r.s.store.UpdateUsersAccess(ctx, changes)
			if err = aligned(results, err, len(changes)); err != nil {
				return failAll(fmt.Errorf("updating access: %w", err))
			}
			for _, it := range items {
				if it.eff.Access == nil {
					continue
				}
				k, ok := changeOf[it.eff.Access.UserID]
				if !ok {
					continue
				}
				if results[k] != nil {
					failed[it.sub.ID] = fmt.Errorf("updating access of user %s: %w", it.eff.Access.UserID, results[k])
				}
			}
			for i, a := range userAudit {
				if results[auditOf[i]] == nil {
					audits = append(audits, a)
				}
			}
		}
	}

	// Notifications of records still as their transition left them, once the access
	// change is done.
	type send struct {
		n   Notification
		sub string
	}
	sends := make([]send, 0, len(items))
	for _, it := range items {
		if it.moot || failed[it.sub.ID] != nil {
			continue
		}
		for _, n := range it.eff.Notifications {
			sends = append(sends, send{n: n, sub: it.sub.ID})
		}
	}
	if len(sends) > 0 {
		recs := make([]NotificationRecord, len(sends))
		for i, sd := range sends {
			recs[i] = NotificationRecord{Key: sd.n.Key, Kind: sd.n.Kind, SubscriptionID: sd.sub, UserID: sd.n.To.UserID, Data: &sd.n.Data}
		}
		for sub, err := range r.deliver(ctx, recs, func(i int) Notification { return sends[i].n }) {
			failed[sub] = err
		}
	}

	// Audit entries of the transitions whose effects are done (the access changes made
	// are audited whatever else failed), in one insert.
	audits = slices.Grow(audits, len(items))
	for _, it := range items {
		if failed[it.sub.ID] == nil {
			audits = append(audits, it.eff.Audit...)
		}
	}
	if len(audits) > 0 {
		if err := r.s.store.InsertAudits(ctx, audits); err != nil {
			return failAll(fmt.Errorf("writing audit entries: %w", err))
		}
	}

	done := make([]EffectsDone, 0, len(items))
	for _, it := range items {
		if failed[it.sub.ID] == nil {
			done = append(done, EffectsDone{SubscriptionID: it.sub.ID, Token: it.eff.Token})
		}
	}
	if len(done) > 0 {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(r.s.cfg.ClaimLease, time.Minute))
		defer cancel()
		if err := r.s.store.CompleteEffects(cctx, done); err != nil {
			// Everything completed is idempotent: the next run finds the effects, sees the
			// keys sent and the audit entries stored, and clears them.
			for _, d := range done {
				failed[d.SubscriptionID] = fmt.Errorf("clearing finished effects: %w", err)
			}
		}
	}
	return failed
}

// deliver reserves the keys of recs, sends the reserved ones through the bounded pool and
// records their outcomes. It returns, per subscription id, why a notification is not done.
func (r *run) deliver(ctx context.Context, recs []NotificationRecord, note func(i int) Notification) map[string]error {
	failed := map[string]error{}
	now := r.s.now()
	// Reservations last two thirds of a claim lease (renewed every third, like the claims):
	// when a crashed run's claims lapse and another run takes its records over, its
	// reservations have lapsed already.
	lease := r.s.cfg.ClaimLease * 2 / 3
	reserved, err := r.s.store.ReserveNotifications(ctx, recs, r.token, now, now.Add(lease))
	if err = aligned(reserved, err, len(recs)); err != nil {
		for _, rec := range recs {
			failed[rec.SubscriptionID] = fmt.Errorf("reserving notifications: %w", err)
		}
		return failed
	}
	var todo []int
	for i, ok := range reserved {
		if ok {
			todo = append(todo, i)
			continue
		}
		if err := r.s.notDone(ctx, recs[i].Key); err != nil {
			failed[recs[i].SubscriptionID] = err
		}
	}
	// Each outcome is recorded before its sender sends again (group commit: the outcomes
	// that arrive while one write is in flight go together in the next), so a crash repeats
	// at most the sends in flight, not a batch's worth. The reservations of the keys not
	// sent yet are renewed while the batch sends.
	var sent atomic.Int64
	var mu sync.Mutex
	attempted := make([]bool, len(todo))
	rec := &committer{write: func(recs []NotificationRecord) error {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(r.s.cfg.ClaimLease, time.Minute))
		defer cancel()
		return retry(fctx, 3, func() error { return r.s.store.FinishNotifications(fctx, recs, r.token) })
	}, failed: func(rec NotificationRecord, err error) {
		// The send happened; its record stays "sending" until the lease ends and a later
		// run sends it again: the one allowed repeat.
		mu.Lock()
		failed[rec.SubscriptionID] = errors.Join(failed[rec.SubscriptionID], fmt.Errorf("recording notification %s: %w", rec.Key, err))
		mu.Unlock()
	}}
	open := make(map[string]NotificationRecord, len(todo)) // reserved keys not finished
	for _, i := range todo {
		open[recs[i].Key] = recs[i]
	}
	record := func(r NotificationRecord, why error) {
		mu.Lock()
		delete(open, r.Key)
		if why != nil {
			failed[r.SubscriptionID] = why
		}
		mu.Unlock()
		rec.add(r)
	}
	stopRenewing := r.every(ctx, func(ctx context.Context) {
		// Under mu, so a key whose send ends meanwhile is released only after this
		// renewal, never re-reserved by it.
		mu.Lock()
		defer mu.Unlock()
		left := make([]NotificationRecord, 0, len(open))
		for _, rec := range open {
			left = append(left, rec)
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
		err := r.s.notifier.Notify(ctx, note(todo[j]))
		rec, why := r.s.outcome(ctx, rec, err)
		switch {
		case err == nil:
			r.breaker.success()
			sent.Add(1)
		case why != nil:
			r.breaker.failure(err)
		}
		record(rec, why)
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
			failed[rec.SubscriptionID] = fmt.Errorf("not sent: %w", errors.Join(ctx.Err(), r.breaker.err()))
		}
	}
	if len(unsent) > 0 {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(r.s.cfg.ClaimLease, time.Minute))
		defer cancel()
		if err := r.s.store.FinishNotifications(fctx, unsent, r.token); err != nil {
			r.s.log.WarnContext(ctx, "releasing unsent notification keys failed; they are retaken after the lease", "error", err)
		}
	}
	return failed
}

// committer writes notification outcomes in groups (group commit): add queues one and
// returns once a write that holds it has finished. While one write is in flight, the
// outcomes added meanwhile gather into the next one, so each sender has at most one outcome
// unwritten at any time and a crash repeats at most the sends in flight.
type committer struct {
	write  func([]NotificationRecord) error
	failed func(NotificationRecord, error)

	mu      sync.Mutex
	next    *commitGroup // gathering while a write is in flight
	writing bool
}

type commitGroup struct {
	recs []NotificationRecord
	done chan struct{}
}

func (c *committer) add(rec NotificationRecord) {
	c.mu.Lock()
	if c.next == nil {
		c.next = &commitGroup{done: make(chan struct{})}
	}
	g := c.next
	g.recs = append(g.recs, rec)
	if c.writing {
		c.mu.Unlock()
		<-g.done
		return
	}
	c.writing = true
	for c.next != nil {
		g := c.next
		c.next = nil
		c.mu.Unlock()
		if err := c.write(g.recs); err != nil {
			for _, r := range g.recs {
				c.failed(r, err)
			}
		}
		close(g.done)
		c.mu.Lock()
	}
	c.writing = false
	c.mu.Unlock()
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
	var live []Subscription
	for _, s := range subs {
		if s.Status.Live() && !s.Deleted {
			live = append(live, s)
		}
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

// accessAudit is the audit entry of an access change that moved the user's plan.
func accessAudit(before, after User, subscriptionID string) (AuditEntry, bool) {
	if before.PlanID == after.PlanID {
		return AuditEntry{}, false
	}
	e := AuditEntry{EntityType: "user", EntityID: after.ID, UserID: after.ID, Actor: "renewkit"}
	if after.PlanID == "" {
		e.Action = AuditAccessRevoked
		e.Details = map[string]any{"subscription_id": subscriptionID, "previous_plan_id": before.PlanID, "status": string(after.Status)}
	} else {
		e.Action = AuditUserPlanUpdated
		e.Details = map[string]any{"previous_plan_id": before.PlanID, "plan_id": after.PlanID, "subscription_id": after.SubscriptionID}
	}
	return e, true
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
	if a, ok := accessAudit(u, next, ended.ID); ok {
		return s.audit(ctx, a)
	}
	return nil
}
