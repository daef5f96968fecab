package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/renewkit/renewkit/billing"
	"github.com/renewkit/renewkit/gateways/stripegw"
	"github.com/renewkit/renewkit/internal/mongotest"
	"github.com/renewkit/renewkit/store/mongostore"
)

const (
	// inboxCrashSubs Stripe subscriptions each get two invoice.paid events (two consecutive
	// periods), so the inbox holds events of one object that must be applied in order.
	inboxCrashSubs = 40
	// inboxCrashConcurrency is billing.InboxConfig.Concurrency as the standalone server runs
	// it (the default; the server has no setting for it): how many events the worker applies
	// at once, and so how many payment emails can be with the SMTP server at a kill.
	inboxCrashConcurrency = 8
	// The server's INBOX_LEASE and CLAIM_LEASE: a killed worker's claimed events wait
	// inboxCrashLease; its processor locks and email reservations (CLAIM_LEASE) are shorter,
	// so they are free when its events are taken again.
	inboxCrashLease = 5 * time.Second
	inboxClaimLease = 3 * time.Second
	inboxHookSecret = "whsec_inbox_crash_test"
)

// Proves the SIGKILL line of issue 13's "Done when": the standalone server (a real child
// process on FerretDB, SMTP to a local server answering DATA after 50 ms, so applying an
// event takes a while) accepts 200 signed Stripe invoice.paid events, two per subscription,
// and is killed with SIGKILL twice while its inbox worker holds claimed events (checked in
// the store right after each kill: events still leased to the dead worker). A third run
// finishes. Then every accepted event is processed, none pending, failed or dead; each
// invoice is one approved payment, applied once to its subscription, whose period is the
// second invoice's; every payment email arrived, repeats within what can be in flight at a
// kill; every approval and every renewal audited exactly once (the approval records its
// audit entries on the subscription in the write that renews it, so a kill between the
// change and its audit leaves them pending for the retried event, never lost);
// redelivering every event afterwards is answered duplicate.
func TestInboxSurvivesSIGKILL(t *testing.T) {
	stores, uri, dbName := mongotest.Stores(t, "rk_inbox_crash", 1, mongostore.Config{}) // dropped after every host process stopped
	st := stores[0]
	db := st.Database()
	bin := standaloneBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	subs := seedStripeRenewals(t, ctx, st, inboxCrashSubs)
	events := invoiceEvents(subs)

	sink := startMailSink(t, 50*time.Millisecond, string(billing.NotificationKindPaymentSuccessful))
	token := "inbox-crash-admin-token-0123456789"
	env := crashHostEnv(uri, dbName, sink, token,
		// No STRIPE_SECRET_KEY: the signed body is trusted, the API is never asked.
		"STRIPE_WEBHOOK_SECRET="+inboxHookSecret,
		"INBOX_LEASE="+inboxCrashLease.String(), "CLAIM_LEASE="+inboxClaimLease.String())

	// Run 1 accepts every event (first periods, then second ones, as Stripe sends them)
	// and is killed once a quarter of the payment emails went out; run 2 once half did.
	kills := 0
	for run, at := range []int{len(events) / 4, len(events) / 2} {
		h := startCrashHost(t, ctx, bin, env)
		if run == 0 {
			for _, wave := range [][]stripeEvent{events[:len(subs)], events[len(subs):]} {
				for status, n := range deliverAll(t, ctx, h.base, wave) {
					if status != "accepted" {
						t.Fatalf("%d first deliveries answered %q, want every one 200 accepted", n, status)
					}
				}
			}
			t.Logf("%d events accepted", len(events))
		}
		select {
		case <-sink.await(at):
		case err := <-h.exited:
			t.Fatalf("server exited before the kill: %v\n%s", err, h.stderr.String())
		case <-ctx.Done():
			_, distinct, _ := sink.counts()
			t.Fatalf("%d of %d payment emails before the deadline\nserver stderr:\n%s", distinct, at, lastLines(h.stderr.String(), 40))
		}
		// Kill while the worker holds a batch, not in its pause between two.
		for held, _ := inboxAtKill(t, st, time.Now()); held == 0; held, _ = inboxAtKill(t, st, time.Now()) {
			if ctx.Err() != nil {
				t.Fatalf("the worker never held events after %d payment emails", at)
			}
			time.Sleep(20 * time.Millisecond)
		}
		h.kill(t)
		kills++
		held, byState := inboxAtKill(t, st, time.Now())
		total, distinct, _ := sink.counts()
		t.Logf("kill %d: %d payment emails received, %d distinct; inbox %v; %d events still leased to the killed worker",
			kills, total, distinct, byState, held)
		if held == 0 {
			t.Fatalf("kill %d: no event was leased to the worker when it died; the drill did not kill it mid-work", kills)
		}
	}

	// Run 3 takes the dead workers' events once their leases end and finishes. An attempt
	// can fail here: on FerretDB mongostore serialises each collection's writes under a
	// shared lease (mongostore.Config.MutexTTL, 30 s) that the killed process may hold, and
	// recording a sent email waits at most 10 s. The event is then retried on its backoff
	// (5 minutes for a second attempt); the test does what an operator would and replays
	// failed events from the admin API instead of waiting.
	h := startCrashHost(t, ctx, bin, env)
	started := time.Now()
	var stats struct {
		ByState map[string]int `json:"by_state"`
	}
	replayed := map[string]string{} // event id -> the error it failed with
	for stats.ByState[string(billing.WebhookEventStateProcessed)] < len(events) {
		if stats.ByState[string(billing.WebhookEventStateFailed)] > 0 {
			for id, why := range replayFailed(t, h.base, token) {
				replayed[id] = why
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("inbox at the deadline: %v\nserver stderr:\n%s", stats.ByState, lastLines(h.stderr.String(), 40))
		}
		time.Sleep(200 * time.Millisecond)
		status, body := do(t, http.MethodGet, h.base+"/api/admin/inbox/stats", token, nil, true)
		if status != http.StatusOK {
			t.Fatalf("GET /api/admin/inbox/stats: %d %s", status, body)
		}
		stats.ByState = nil
		if err := json.Unmarshal(body, &stats); err != nil {
			t.Fatal(err)
		}
		for _, s := range []billing.WebhookEventState{billing.WebhookEventStateIgnored, billing.WebhookEventStateDead} {
			if stats.ByState[string(s)] > 0 {
				t.Fatalf("inbox %v: events ended %s\nserver stderr:\n%s", stats.ByState, s, lastLines(h.stderr.String(), 40))
			}
		}
	}
	t.Logf("final run: every event processed %s after it started; %s", time.Since(started).Round(time.Millisecond), attemptTimes(t, h.base))
	for id, why := range replayed {
		t.Logf("replayed %s, which had failed: %s", id, why)
	}

	// A redelivery of each event (Stripe retrying a response it did not see) is a duplicate.
	for status, n := range deliverAll(t, ctx, h.base, events) {
		if status != "duplicate" {
			t.Errorf("%d redeliveries answered %q, want duplicate", n, status)
		}
	}
	if code := h.terminate(t); code != 0 {
		t.Errorf("final server exited with %d after SIGTERM\n%s", code, h.stderr.String())
	}

	actx, acancel := context.WithTimeout(context.Background(), time.Minute)
	defer acancel()
	// The inbox: every event processed, nothing pending or leased.
	is, err := st.WebhookInboxStats(actx)
	if err != nil {
		t.Fatal(err)
	}
	if is.ByState[billing.WebhookEventStateProcessed] != len(events) || !is.OldestPending.IsZero() {
		t.Errorf("inbox %v (oldest pending %v), want all %d processed", is.ByState, is.OldestPending, len(events))
	}
	evs, err := st.ListWebhookEvents(actx, billing.WebhookEventQuery{Limit: len(events) + 1})
	if err != nil {
		t.Fatal(err)
	}
	retried := 0
	for _, ev := range evs {
		if ev.LeaseToken != "" || !ev.LeaseUntil.IsZero() {
			t.Errorf("event %s is %s and still leased to %q", ev.EventID, ev.State, ev.LeaseToken)
		}
		if ev.Attempts > 1 {
			retried++
		}
	}
	t.Logf("%d events were attempted more than once (taken again after a kill, or held back behind their subscription's earlier invoice)", retried)

	// Every payment approved once; every subscription renewed by both invoices, once each.
	approvals, err := st.ListAudit(actx, billing.AuditFilter{Action: billing.AuditPaymentApproved})
	if err != nil {
		t.Fatal(err)
	}
	renewals, err := st.ListAudit(actx, billing.AuditFilter{Action: billing.AuditSubscriptionRenewed})
	if err != nil {
		t.Fatal(err)
	}
	approvedPer, renewedPer := map[string]int{}, map[string]int{}
	for _, a := range approvals {
		approvedPer[a.EntityID]++
	}
	for _, a := range renewals {
		renewedPer[a.EntityID]++
	}
	paymentIDs := map[string]bool{}
	for _, ev := range events {
		p, err := st.FindPaymentByGateway(actx, billing.GatewayStripe, ev.invoice)
		if err != nil {
			t.Errorf("invoice %s: no payment: %v", ev.invoice, err)
			continue
		}
		paymentIDs[p.ID] = true
		if p.Status != billing.PaymentStatusApproved || approvedPer[p.ID] != 1 {
			t.Errorf("payment %s of invoice %s is %s with %d approval audit entries, want approved, audited once", p.ID, ev.invoice, p.Status, approvedPer[p.ID])
		}
	}
	if len(paymentIDs) != len(events) {
		t.Errorf("%d payments for %d invoices, want one each", len(paymentIDs), len(events))
	}
	for _, s := range subs {
		got, err := st.GetSubscription(actx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantEnd := billing.AddMonths(s.CurrentPeriodEnd, 2)
		applied := slices.DeleteFunc(slices.Clone(got.AppliedPayments), func(id string) bool { return !paymentIDs[id] })
		if !got.CurrentPeriodEnd.Equal(wantEnd) || len(applied) != 2 || renewedPer[s.ID] != 2 || got.Status != billing.SubscriptionStatusActive || got.Pending != nil {
			t.Errorf("subscription %s: %s until %s, %d of its invoices applied, %d renewals audited, pending %v; want active until %s, 2, 2, none",
				s.ID, got.Status, got.CurrentPeriodEnd, len(applied), renewedPer[s.ID], got.Pending, wantEnd)
		}
	}

	// Every payment email arrived; repeats only of what was in flight at a kill, or sent
	// by an attempt that then failed to record the send.
	unrecorded := 0
	for _, why := range replayed {
		if strings.Contains(why, "recording notification") {
			unrecorded++
		}
	}
	bound := kills*inboxCrashConcurrency + unrecorded
	total, distinct, other := sink.counts()
	dups := total - distinct
	t.Logf("%d events: %d payment emails received, %d distinct, %d duplicates (bound %d = %d kills × %d in flight + %d sends not recorded); %d other messages",
		len(events), total, distinct, dups, bound, kills, inboxCrashConcurrency, unrecorded, other)
	if distinct != len(events) {
		t.Errorf("%d distinct payment emails, want %d (one per invoice)", distinct, len(events))
	}
	if dups > bound {
		t.Errorf("%d duplicate payment emails after %d kills, want at most %d", dups, kills, bound)
	}
	if n, err := db.Collection("notifications").CountDocuments(actx, bson.D{{Key: "status", Value: bson.D{{Key: "$ne", Value: string(billing.NotificationSent)}}}}); err != nil || n > 0 {
		t.Errorf("%d notification records not sent (%v), want none left sending", n, err)
	}
}

// stripeEvent is one signed-to-be invoice.paid delivery.
type stripeEvent struct {
	id, invoice string
	body        []byte
}

// seedStripeRenewals stores a plan, n users and n active Stripe subscriptions (sub_crash_i)
// ending an hour from now, and returns the subscriptions.
func seedStripeRenewals(t *testing.T, ctx context.Context, st *mongostore.Store, n int) []billing.Subscription {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	plan := billing.Plan{ID: "plan_inbox", Name: "Inbox crash test", BillingCycle: billing.CycleMonthly,
		Price: billing.Money{Amount: 2990, Currency: "BRL"}, Active: true, CreatedAt: now, UpdatedAt: now}
	if err := st.InsertPlan(ctx, &plan); err != nil {
		t.Fatal(err)
	}
	subs := make([]billing.Subscription, n)
	for i := range n {
		end := now.Add(time.Hour)
		u := billing.User{ID: fmt.Sprintf("u_inbox_%04d", i), Email: fmt.Sprintf("payer%04d@example.com", i),
			Name: fmt.Sprintf("Payer %d", i), Locale: "en", TimeZone: "UTC", PlanID: plan.ID, SubscriptionID: fmt.Sprintf("s_inbox_%04d", i),
			Status: billing.SubscriptionStatusActive, AccessUntil: end, CreatedAt: now, UpdatedAt: now}
		if err := st.InsertUser(ctx, &u); err != nil {
			t.Fatal(err)
		}
		start := billing.AddMonths(end, -1)
		subs[i] = billing.Subscription{ID: u.SubscriptionID, UserID: u.ID, PlanID: plan.ID, Status: billing.SubscriptionStatusActive,
			BillingCycle: billing.CycleMonthly, CurrentPeriodStart: start, CurrentPeriodEnd: end,
			Gateway: billing.GatewayStripe, GatewaySubscriptionID: fmt.Sprintf("sub_crash_%04d", i), CreatedAt: start, UpdatedAt: start}
	}
	if err := st.InsertSubscriptions(ctx, subs); err != nil {
		t.Fatal(err)
	}
	return subs
}

// invoiceEvents returns, for each subscription, the invoice.paid of its next period, then
// (after all of those) the invoice.paid of the period after, created a second later.
func invoiceEvents(subs []billing.Subscription) []stripeEvent {
	created := time.Now().Unix()
	var out []stripeEvent
	for k := range 2 {
		for i, s := range subs {
			ps, pe := billing.AddMonths(s.CurrentPeriodEnd, k), billing.AddMonths(s.CurrentPeriodEnd, k+1)
			id, inv := fmt.Sprintf("evt_crash_%04d_%d", i, k), fmt.Sprintf("in_crash_%04d_%d", i, k)
			body := fmt.Sprintf(`{"id":%q,"object":"event","type":"invoice.paid","created":%d,"api_version":"2023-10-16","data":{"object":{"id":%q,"object":"invoice","status":"paid","paid":true,"subscription":%q,"currency":"brl","amount_paid":2990,"amount_due":2990,"billing_reason":"subscription_cycle","lines":{"object":"list","data":[{"object":"line_item","type":"subscription","proration":false,"subscription":%q,"period":{"start":%d,"end":%d}}]}}}}`,
				id, created+int64(k), inv, s.GatewaySubscriptionID, s.GatewaySubscriptionID, ps.Unix(), pe.Unix())
			out = append(out, stripeEvent{id: id, invoice: inv, body: []byte(body)})
		}
	}
	return out
}

// deliverAll posts every event, signed now, from 8 connections, and counts the answers'
// status field. A response other than 200 fails the test.
func deliverAll(t *testing.T, ctx context.Context, base string, evs []stripeEvent) map[string]int {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	var (
		mu       sync.Mutex
		statuses = map[string]int{}
		failures []string
		wg       sync.WaitGroup
		next     = make(chan stripeEvent)
	)
	for range 8 {
		wg.Go(func() {
			for ev := range next {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/payments/stripe/webhook", bytes.NewReader(ev.body))
				if err != nil {
					panic(err)
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(stripegw.SignatureHeader, stripegw.SignPayload(inboxHookSecret, ev.body, time.Now()))
				resp, err := client.Do(req)
				var answer struct{ Status string }
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("%d %s", resp.StatusCode, b)
					} else {
						err = json.Unmarshal(b, &answer)
					}
				}
				mu.Lock()
				if err != nil {
					failures = append(failures, ev.id+": "+err.Error())
				} else {
					statuses[answer.Status]++
				}
				mu.Unlock()
			}
		})
	}
	for _, ev := range evs {
		next <- ev
	}
	close(next)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d deliveries failed; first: %s", len(failures), len(evs), strings.Join(failures[:min(3, len(failures))], "; "))
	}
	return statuses
}

// replayFailed replays every failed event through the admin API and returns their ids with
// the error each failed with.
func replayFailed(t *testing.T, base, token string) map[string]string {
	t.Helper()
	status, body := do(t, http.MethodGet, base+"/api/admin/inbox/events?status=failed&limit=500", token, nil, true)
	if status != http.StatusOK {
		t.Fatalf("listing failed events: %d %s", status, body)
	}
	var page struct {
		Events []billing.WebhookEvent `json:"events"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, ev := range page.Events {
		status, body := do(t, http.MethodPost, base+"/api/admin/inbox/events/stripe/"+ev.EventID+"/replay", token, nil, true)
		switch status {
		case http.StatusOK:
			out[ev.EventID] = ev.Error
		case http.StatusConflict: // taken by the worker meanwhile
		default:
			t.Fatalf("replaying %s: %d %s", ev.EventID, status, body)
		}
	}
	return out
}

// attemptTimes describes the final server's inbox attempts from its /metrics: how many, and
// their mean duration, by the state they left the event in.
func attemptTimes(t *testing.T, base string) string {
	t.Helper()
	status, body := do(t, http.MethodGet, base+"/metrics", "", nil, false)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", status)
	}
	sums, counts := map[string]float64{}, map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		name, rest, ok := strings.Cut(line, "{")
		if !ok || !strings.HasPrefix(name, "renewkit_webhook_inbox_processing_seconds_") {
			continue
		}
		labels, value, _ := strings.Cut(rest, "} ")
		var v float64
		if _, err := fmt.Sscan(value, &v); err != nil {
			continue
		}
		_, state, _ := strings.Cut(labels, `state="`)
		state, _, _ = strings.Cut(state, `"`)
		switch name {
		case "renewkit_webhook_inbox_processing_seconds_sum":
			sums[state] += v
		case "renewkit_webhook_inbox_processing_seconds_count":
			counts[state] += v
		}
	}
	var parts []string
	for state, n := range counts {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s: %.0f attempts, mean %.0f ms", state, n, sums[state]/n*1000))
		}
	}
	slices.Sort(parts)
	return "its attempts by outcome: " + strings.Join(parts, "; ")
}

// inboxAtKill reads the inbox a killed server left: how many events are still leased (their
// lease has not ended at now) and the count by state.
func inboxAtKill(t *testing.T, st *mongostore.Store, now time.Time) (held int, byState map[billing.WebhookEventState]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evs, err := st.ListWebhookEvents(ctx, billing.WebhookEventQuery{Limit: 2*inboxCrashSubs + 1})
	if err != nil {
		t.Fatal(err)
	}
	byState = map[billing.WebhookEventState]int{}
	for _, ev := range evs {
		byState[ev.State]++
		if ev.State.Pending() && ev.LeaseToken != "" && ev.LeaseUntil.After(now) {
			held++
		}
	}
	return held, byState
}
