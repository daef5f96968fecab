package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

func (s *suite) auditTests() []test {
	entry := func(action, entity string, at time.Time) billing.AuditEntry {
		return billing.AuditEntry{Action: action, EntityType: "subscription", EntityID: entity, UserID: "u1", Actor: "renewkit",
			Details: map[string]any{"note": action + " " + entity}, CreatedAt: at}
	}
	return []test{
		{"InsertAuditsIdempotentByID", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			batch := []billing.AuditEntry{entry("a", "s1", base), entry("b", "s2", base.Add(time.Second)), entry("c", "s3", base.Add(2*time.Second))}
			for i := range batch {
				batch[i].ID = fmt.Sprintf("e%d", i)
			}
			must(t, st.InsertAudits(ctx, batch), "InsertAudits")
			// A retried batch, plus an entry that is new, plus one whose id is stored with other
			// content: only the new one is written, the stored ones stay as they were.
			changed := batch[0]
			changed.Action, changed.Details = "replaced", map[string]any{"note": "replaced"}
			extra := entry("d", "s4", base.Add(3*time.Second))
			extra.ID = "e3"
			must(t, st.InsertAudits(ctx, batch), "InsertAudits (same batch again)")
			must(t, st.InsertAudits(ctx, []billing.AuditEntry{changed, extra, batch[2]}), "InsertAudits (overlapping batch)")
			list, err := st.ListAudit(ctx, billing.AuditFilter{})
			must(t, err, "ListAudit")
			want := append(append([]billing.AuditEntry(nil), batch...), extra)
			if len(list) != len(want) {
				t.Fatalf("ListAudit after retried batches = %v, want each of %d entries once", ids(list, func(e billing.AuditEntry) string { return e.ID }), len(want))
			}
			for i := range want {
				equal(t, list[i], want[i], "ListAudit[%d]", i)
			}
			must(t, st.InsertAudits(ctx, nil), "InsertAudits(empty batch)")
		}},
		{"InsertListOldestFirst", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			// Inserted out of time order: the list is by created_at, not by insertion.
			in := []billing.AuditEntry{
				entry("b", "s2", base.Add(2*time.Second)),
				entry("a", "s1", base),
				entry("a", "s2", base.Add(time.Second)),
			}
			for i := range in {
				must(t, st.InsertAudit(ctx, &in[i]), "InsertAudit")
				if in[i].ID == "" {
					t.Fatal("InsertAudit left the id empty; it must assign one")
				}
			}
			list, err := st.ListAudit(ctx, billing.AuditFilter{})
			must(t, err, "ListAudit")
			if len(list) != 3 {
				t.Fatalf("ListAudit returned %d entries, want 3", len(list))
			}
			for i, want := range []billing.AuditEntry{in[1], in[2], in[0]} {
				equal(t, list[i], want, "ListAudit[%d] (oldest first)", i)
			}
		}},
		{"Filters", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			for i, e := range []billing.AuditEntry{
				entry("a", "s1", base), entry("b", "s1", base.Add(time.Second)), entry("a", "s2", base.Add(2*time.Second)),
				entry("a", "s3", base.Add(3*time.Second)), entry("a", "s1", base.Add(4*time.Second)),
			} {
				e.ID = fmt.Sprintf("e%d", i)
				must(t, st.InsertAudit(ctx, &e), "InsertAudit")
			}
			cases := []struct {
				f    billing.AuditFilter
				want []string
			}{
				{billing.AuditFilter{Action: "a"}, []string{"e0", "e2", "e3", "e4"}},
				{billing.AuditFilter{EntityID: "s1"}, []string{"e0", "e1", "e4"}},
				{billing.AuditFilter{Action: "a", EntityID: "s1"}, []string{"e0", "e4"}},
				{billing.AuditFilter{Since: base.Add(2 * time.Second)}, []string{"e2", "e3", "e4"}}, // Since is inclusive
				{billing.AuditFilter{Action: "a", Limit: 2}, []string{"e0", "e2"}},                  // the oldest two
				{billing.AuditFilter{Action: "none"}, nil},
			}
			for _, c := range cases {
				list, err := st.ListAudit(ctx, c.f)
				must(t, err, "ListAudit(%+v)", c.f)
				got := make([]string, len(list))
				for i, e := range list {
					got[i] = e.ID
				}
				if !slices.Equal(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
					t.Fatalf("ListAudit(%+v) = %v, want %v (in that order)", c.f, got, c.want)
				}
			}
		}},
	}
}

func (s *suite) notificationTests() []test {
	rec := func(key string) billing.NotificationRecord {
		return billing.NotificationRecord{Key: key, Kind: billing.NotificationKindExpiring, SubscriptionID: "s1", UserID: "u1"}
	}
	done := func(key, status, errText string, at time.Time) billing.NotificationRecord {
		r := rec(key)
		r.Status, r.Error, r.UpdatedAt = status, errText, at
		return r
	}
	const lease = time.Minute
	reserve := func(ctx context.Context, t *testing.T, st billing.Store, token string, now time.Time, keys ...string) []bool {
		t.Helper()
		recs := make([]billing.NotificationRecord, len(keys))
		for i, k := range keys {
			recs[i] = rec(k)
		}
		got, err := st.ReserveNotifications(ctx, recs, token, now, now.Add(lease))
		must(t, err, "ReserveNotifications(%v, token %s)", keys, token)
		if len(got) != len(keys) {
			t.Fatalf("ReserveNotifications(%d records) returned %d results, want one per record", len(keys), len(got))
		}
		return got
	}
	reserveOne := func(ctx context.Context, t *testing.T, st billing.Store, token string, now time.Time, key string) bool {
		t.Helper()
		return reserve(ctx, t, st, token, now, key)[0]
	}
	get := func(ctx context.Context, t *testing.T, st billing.Store, key string) billing.NotificationRecord {
		t.Helper()
		got, err := st.GetNotification(ctx, key)
		must(t, err, "GetNotification(%s)", key)
		return got
	}
	return []test{
		{"FinishRefusesAnUnknownStatus", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			// Bad input gets a clear error and changes nothing: one record with a status that
			// is neither sent, failed nor a release fails the whole call, the good one included.
			now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
			reserve(ctx, t, st, "A", now, my("good"), my("bad"))
			err := st.FinishNotifications(ctx, []billing.NotificationRecord{done(my("good"), billing.NotificationSent, "", now),
				done(my("bad"), "delivered", "", now)}, "A")
			wantErr(t, err, billing.ErrInvalidInput, "FinishNotifications with status delivered")
			for _, k := range []string{my("good"), my("bad")} {
				got, err := st.GetNotification(ctx, k)
				must(t, err, "GetNotification(%s)", k)
				if got.Status != billing.NotificationSending || got.Token != "A" {
					t.Fatalf("%s after the refused call: %+v; want still reserved by A", k, got)
				}
			}
		}},
		{"ReserveInsertsSending", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			if !reserveOne(ctx, t, st, "A", base, my("expiring:s1:3")) {
				t.Fatal("the first reservation of a new key was refused")
			}
			got := get(ctx, t, st, my("expiring:s1:3"))
			want := billing.NotificationRecord{Key: my("expiring:s1:3"), Kind: billing.NotificationKindExpiring, SubscriptionID: "s1", UserID: "u1",
				Status: billing.NotificationSending, Token: "A", LeaseUntil: base.Add(lease), CreatedAt: base}
			got.UpdatedAt = time.Time{} // a store may stamp when the status was set
			equal(t, got, want, "record of a new reservation (status sending, token, lease, created at now)")
		}},
		{"FinishSentAndFailed", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			reserve(ctx, t, st, "A", base, my("k-sent"), my("k-failed"))
			must(t, st.FinishNotifications(ctx, []billing.NotificationRecord{
				done(my("k-sent"), billing.NotificationSent, "", base.Add(time.Second)),
				done(my("k-failed"), billing.NotificationFailed, "550 mailbox unavailable", base.Add(2*time.Second)),
			}, "A"), "FinishNotifications")
			for _, c := range []struct {
				key, status, errText string
				at                   time.Time
			}{
				{my("k-sent"), billing.NotificationSent, "", base.Add(time.Second)},
				{my("k-failed"), billing.NotificationFailed, "550 mailbox unavailable", base.Add(2 * time.Second)},
			} {
				got := get(ctx, t, st, c.key)
				if got.Status != c.status || got.Error != c.errText || !got.UpdatedAt.Equal(c.at) ||
					got.Kind != billing.NotificationKindExpiring || got.SubscriptionID != "s1" || got.UserID != "u1" || !got.CreatedAt.Equal(base) {
					t.Fatalf("record %s after FinishNotifications = %+v; want status %q, error %q, updated at %v, kind/subscription/user/created at kept",
						c.key, got, c.status, c.errText, c.at)
				}
				// A finished key is never reserved again: not by another token long after,
				// not by the token that finished it.
				if reserveOne(ctx, t, st, "B", base.Add(10*day), c.key) {
					t.Fatalf("a %s key was reserved again by another token", c.status)
				}
				if reserveOne(ctx, t, st, "A", base.Add(10*day), c.key) {
					t.Fatalf("a %s key was reserved again by the token that finished it", c.status)
				}
				if again := get(ctx, t, st, c.key); again.Status != c.status {
					t.Fatalf("record %s after refused reservations has status %q, want %q", c.key, again.Status, c.status)
				}
			}
		}},
		{"LiveReservationRefusedThenTakenOver", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			if !reserveOne(ctx, t, st, "A", base, my("k")) {
				t.Fatal("A's first reservation was refused")
			}
			if reserveOne(ctx, t, st, "B", base.Add(lease-time.Millisecond), my("k")) {
				t.Fatal("B reserved a key while A's lease is live")
			}
			if r := get(ctx, t, st, my("k")); r.Token != "A" || r.Status != billing.NotificationSending {
				t.Fatalf("a refused reservation changed the record: %+v", r)
			}
			// A's lease ended at now: B takes the key over.
			if !reserveOne(ctx, t, st, "B", base.Add(lease), my("k")) {
				t.Fatal("B could not take over a reservation whose lease ended at now")
			}
			if r := get(ctx, t, st, my("k")); r.Token != "B" || !r.LeaseUntil.Equal(base.Add(2*lease)) || r.Status != billing.NotificationSending {
				t.Fatalf("record after the takeover = %+v, want sending, token B, lease %v", r, base.Add(2*lease))
			}
			// A, back from the dead, finishes: ignored, the key is B's.
			must(t, st.FinishNotifications(ctx, []billing.NotificationRecord{done(my("k"), billing.NotificationSent, "", base.Add(lease+time.Second))}, "A"),
				"FinishNotifications by the token that lost the key")
			if r := get(ctx, t, st, my("k")); r.Status != billing.NotificationSending || r.Token != "B" {
				t.Fatalf("the stale token's Finish changed the record: %+v", r)
			}
			if reserveOne(ctx, t, st, "A", base.Add(lease+2*time.Second), my("k")) {
				t.Fatal("A reserved the key again while B's lease is live")
			}
			must(t, st.FinishNotifications(ctx, []billing.NotificationRecord{done(my("k"), billing.NotificationSent, "", base.Add(lease+3*time.Second))}, "B"),
				"FinishNotifications(B)")
			if r := get(ctx, t, st, my("k")); r.Status != billing.NotificationSent || !r.UpdatedAt.Equal(base.Add(lease+3*time.Second)) {
				t.Fatalf("record after B's Finish = %+v, want sent", r)
			}
		}},
		{"SameTokenReservesAgainAndMovesLease", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			reserveOne(ctx, t, st, "A", base, my("k"))
			later := base.Add(30 * time.Second)
			if !reserveOne(ctx, t, st, "A", later, my("k")) {
				t.Fatal("a key already reserved by the token was reported not reserved")
			}
			if r := get(ctx, t, st, my("k")); r.Token != "A" || !r.LeaseUntil.Equal(later.Add(lease)) || !r.CreatedAt.Equal(base) {
				t.Fatalf("record after the re-reservation = %+v; want token A, lease %v, created at %v kept", r, later.Add(lease), base)
			}
			// The moved lease holds past the first one.
			if reserveOne(ctx, t, st, "B", base.Add(lease), my("k")) {
				t.Fatal("B took a key whose lease A moved past now")
			}
			if !reserveOne(ctx, t, st, "B", later.Add(lease), my("k")) {
				t.Fatal("B could not take the key once the moved lease ended")
			}
		}},
		{"FinishWithoutStatusReleases", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			reserve(ctx, t, st, "A", base, my("k1"), my("k2"))
			// The send of k1 failed transiently: released. k2 stays reserved.
			must(t, st.FinishNotifications(ctx, []billing.NotificationRecord{rec(my("k1"))}, "A"), "FinishNotifications(empty status)")
			got := reserve(ctx, t, st, "B", base.Add(time.Second), my("k1"), my("k2"))
			if !got[0] || got[1] {
				t.Fatalf("B's reservations after A released k1 only = %v, want [true false]", got)
			}
			if r := get(ctx, t, st, my("k1")); r.Status != billing.NotificationSending || r.Token != "B" {
				t.Fatalf("released key reserved by B: %+v", r)
			}
			// A release by a token that no longer holds the key changes nothing.
			must(t, st.FinishNotifications(ctx, []billing.NotificationRecord{rec(my("k1"))}, "A"), "FinishNotifications(empty status, stale token)")
			if reserveOne(ctx, t, st, "C", base.Add(2*time.Second), my("k1")) {
				t.Fatal("a stale token's release freed B's reservation")
			}
		}},
		{"MixedBatchAligned", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			reserveOne(ctx, t, st, "X", base, my("sent"))
			must(t, st.FinishNotifications(ctx, []billing.NotificationRecord{done(my("sent"), billing.NotificationSent, "", base)}, "X"), "FinishNotifications")
			reserveOne(ctx, t, st, "X", base, my("live-other"))
			reserveOne(ctx, t, st, "X", base.Add(-lease), my("expired-other"))
			reserveOne(ctx, t, st, "A", base, my("mine"))
			got := reserve(ctx, t, st, "A", base.Add(time.Second), my("new"), my("sent"), my("live-other"), my("expired-other"), my("mine"))
			want := []bool{true, false, false, true, true}
			if !slices.Equal(got, want) {
				t.Fatalf("ReserveNotifications(new, sent, live other, expired other, mine) = %v, want %v (aligned with the records)", got, want)
			}
			for key, token := range map[string]string{my("new"): "A", my("live-other"): "X", my("expired-other"): "A", my("mine"): "A"} {
				if r := get(ctx, t, st, key); r.Token != token || r.Status != billing.NotificationSending {
					t.Fatalf("record %s = %+v, want sending held by %s", key, r, token)
				}
			}
			// A Finish for a key the token never reserved is left alone.
			must(t, st.FinishNotifications(ctx, []billing.NotificationRecord{
				done(my("never-reserved"), billing.NotificationSent, "", base), done(my("live-other"), billing.NotificationSent, "", base),
				done(my("new"), billing.NotificationSent, "", base.Add(2*time.Second)),
			}, "A"), "FinishNotifications(unknown key, other token's key, own key)")
			_, err := st.GetNotification(ctx, my("never-reserved"))
			wantErr(t, err, billing.ErrNotFound, "GetNotification of a key only finished, never reserved")
			if r := get(ctx, t, st, my("live-other")); r.Status != billing.NotificationSending || r.Token != "X" {
				t.Fatalf("another token's reservation after A's Finish = %+v, want sending held by X", r)
			}
			if r := get(ctx, t, st, my("new")); r.Status != billing.NotificationSent {
				t.Fatalf("own key after Finish = %+v, want sent", r)
			}
		}},
		{"MissingIsNotFound", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			_, err := st.GetNotification(ctx, my("nope"))
			wantErr(t, err, billing.ErrNotFound, "GetNotification(missing)")
		}},
		{"ConcurrentReserveOneTokenPerKey", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			const keys = 50
			recs := make([]billing.NotificationRecord, keys)
			for i := range recs {
				recs[i] = rec(fmt.Sprintf("race-%02d", i))
			}
			n := s.opts.Goroutines
			got := make([][]bool, n)
			errs := make([]error, n)
			runConcurrently(n, func(i int) {
				got[i], errs[i] = st.ReserveNotifications(ctx, recs, fmt.Sprintf("token-%d", i), base, base.Add(lease))
			})
			for i := range n {
				must(t, errs[i], "caller %d", i)
				if len(got[i]) != keys {
					t.Fatalf("caller %d got %d results for %d records", i, len(got[i]), keys)
				}
			}
			for k, r := range recs {
				winner := -1
				for i := range n {
					if !got[i][k] {
						continue
					}
					if winner >= 0 {
						t.Fatalf("key %s reserved by token-%d and token-%d at once", r.Key, winner, i)
					}
					winner = i
				}
				if winner < 0 {
					t.Fatalf("key %s reserved by none of %d callers", r.Key, n)
				}
				if stored := get(ctx, t, st, r.Key); stored.Token != fmt.Sprintf("token-%d", winner) {
					t.Fatalf("key %s is held by %q, but token-%d was told it reserved it", r.Key, stored.Token, winner)
				}
			}
		}},
	}
}

func (s *suite) jobRunTests() []test {
	run := func(id, job string, started time.Time) billing.JobRun {
		return billing.JobRun{ID: id, JobID: job, Trigger: billing.RunTriggerSchedule, Status: billing.RunStatusSucceeded,
			StartedAt: started, FinishedAt: started.Add(1500 * time.Millisecond), DurationMS: 1500,
			Result: map[string]any{"success": true, "note": "ok"}, Replica: "r1", ScheduledFor: started}
	}
	insert := func(ctx context.Context, t *testing.T, st billing.Store, runs ...billing.JobRun) {
		t.Helper()
		for i := range runs {
			must(t, st.InsertJobRun(ctx, &runs[i]), "InsertJobRun(%s)", runs[i].ID)
		}
	}
	list := func(ctx context.Context, t *testing.T, st billing.Store, f billing.JobRunFilter) []string {
		t.Helper()
		runs, err := st.ListJobRuns(ctx, f)
		must(t, err, "ListJobRuns(%+v)", f)
		out := make([]string, len(runs))
		for i, r := range runs {
			out[i] = r.ID
		}
		return out
	}
	return []test{
		{"InsertUpdateGet", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			r := run("r1", "job", base)
			r.Status, r.FinishedAt, r.DurationMS, r.Result = billing.RunStatusRunning, time.Time{}, 0, nil
			want := r
			must(t, st.InsertJobRun(ctx, &r), "InsertJobRun")
			runs, err := st.ListJobRuns(ctx, billing.JobRunFilter{})
			must(t, err, "ListJobRuns")
			if len(runs) != 1 {
				t.Fatalf("ListJobRuns = %d runs, want 1", len(runs))
			}
			equal(t, runs[0], want, "inserted run")
			done := run("r1", "job", base)
			done.Error = "partial failure"
			must(t, st.UpdateJobRun(ctx, done), "UpdateJobRun")
			runs, err = st.ListJobRuns(ctx, billing.JobRunFilter{})
			must(t, err, "ListJobRuns")
			equal(t, runs[0], done, "updated run")
			anon := run("", "job", base)
			must(t, st.InsertJobRun(ctx, &anon), "InsertJobRun without id")
			if anon.ID == "" {
				t.Fatal("InsertJobRun left the id empty; it must assign one")
			}
		}},
		{"Errors", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			wantErr(t, st.UpdateJobRun(ctx, run("nope", "job", base)), billing.ErrNotFound, "UpdateJobRun(missing)")
			insert(ctx, t, st, run("r1", "job", base))
			dup := run("r1", "job", base)
			wantErr(t, st.InsertJobRun(ctx, &dup), billing.ErrConflict, "InsertJobRun(duplicate id)")
		}},
		{"ListNewestFirstFilterLimit", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			insert(ctx, t, st, run("a1", "a", base.Add(time.Minute)), run("b1", "b", base.Add(2*time.Minute)),
				run("a3", "a", base.Add(3*time.Minute)), run("a0", "a", base), run("a2", "a", base.Add(2*time.Minute)))
			cases := []struct {
				f    billing.JobRunFilter
				want []string
			}{
				{billing.JobRunFilter{}, []string{"a3", "b1", "a2", "a1", "a0"}},
				{billing.JobRunFilter{JobID: "a"}, []string{"a3", "a2", "a1", "a0"}},
				{billing.JobRunFilter{JobID: "a", Limit: 2}, []string{"a3", "a2"}},
				{billing.JobRunFilter{JobID: "a", Since: base.Add(time.Minute)}, []string{"a3", "a2", "a1"}}, // Since inclusive
				{billing.JobRunFilter{JobID: "none"}, []string{}},
			}
			for _, c := range cases {
				got := list(ctx, t, st, c.f)
				if c.f.JobID == "" {
					// b1 and a2 started at the same instant: either order is fine.
					if len(got) == 5 && got[1] == "a2" && got[2] == "b1" {
						got[1], got[2] = got[2], got[1]
					}
				}
				if !slices.Equal(got, c.want) {
					t.Fatalf("ListJobRuns(%+v) = %v, want %v (newest first)", c.f, got, c.want)
				}
			}
		}},
		{"DeleteBefore", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			insert(ctx, t, st, run("old1", "a", base.Add(-2*day)), run("old2", "b", base.Add(-day-time.Millisecond)),
				run("at", "a", base.Add(-day)), run("new", "a", base))
			n, err := st.DeleteJobRunsBefore(ctx, base.Add(-day))
			must(t, err, "DeleteJobRunsBefore")
			if n != 2 {
				t.Fatalf("DeleteJobRunsBefore deleted %d, want 2", n)
			}
			equalIDs(t, list(ctx, t, st, billing.JobRunFilter{}), []string{"at", "new"}, "runs started at or after t are kept")
			n, err = st.DeleteJobRunsBefore(ctx, base.Add(-day))
			must(t, err, "DeleteJobRunsBefore (again)")
			if n != 0 {
				t.Fatalf("second DeleteJobRunsBefore deleted %d, want 0", n)
			}
		}},
	}
}

func (s *suite) jobStateTests() []test {
	return []test{
		{"DefaultAndRoundTrip", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			got, err := st.GetJobState(ctx, my("job"))
			must(t, err, "GetJobState(never stored)")
			equal(t, got, billing.JobState{JobID: my("job")}, "GetJobState of an unknown job is the zero state with its id")
			want := billing.JobState{JobID: my("job"), Paused: true, PausedAt: base, ConsecutiveFailures: 3,
				LastScheduledSuccess: base.Add(-day), Alerts: []string{"failing", "stuck"}, UpdatedAt: base}
			must(t, st.PutJobState(ctx, want), "PutJobState")
			got, err = st.GetJobState(ctx, my("job"))
			must(t, err, "GetJobState")
			want.Version = 1
			equal(t, got, want, "GetJobState after the first PutJobState (version 0 -> 1)")
			next := billing.JobState{JobID: my("job"), ConsecutiveFailures: 0, LastScheduledSuccess: base, UpdatedAt: base.Add(time.Hour), Version: 1}
			must(t, st.PutJobState(ctx, next), "PutJobState (overwrite)")
			got, err = st.GetJobState(ctx, my("job"))
			must(t, err, "GetJobState")
			next.Version = 2
			equal(t, got, next, "PutJobState replaces the whole state and increments the version")
			other, err := st.GetJobState(ctx, my("other"))
			must(t, err, "GetJobState(other)")
			equal(t, other, billing.JobState{JobID: my("other")}, "states are per job")
		}},
		{"StaleVersionConflicts", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			// A version other than 0 for a state never stored is stale (missing is 0).
			err := st.PutJobState(ctx, billing.JobState{JobID: my("job"), Paused: true, Version: 3})
			wantErr(t, err, billing.ErrConflict, "PutJobState(version 3) of a state never stored")
			got, err := st.GetJobState(ctx, my("job"))
			must(t, err, "GetJobState")
			equal(t, got, billing.JobState{JobID: my("job")}, "state after a conflicting first put")

			cur := billing.JobState{JobID: my("job"), ConsecutiveFailures: 2, Alerts: []string{"failing"}, UpdatedAt: base}
			must(t, st.PutJobState(ctx, cur), "PutJobState(version 0)")
			cur.Version = 1
			next := cur
			next.Paused, next.PausedAt = true, base.Add(time.Minute)
			must(t, st.PutJobState(ctx, next), "PutJobState(version 1)")
			next.Version = 2
			for _, stale := range []int64{0, 1, 3} {
				s := billing.JobState{JobID: my("job"), ConsecutiveFailures: 9, UpdatedAt: base.Add(time.Hour), Version: stale}
				wantErr(t, st.PutJobState(ctx, s), billing.ErrConflict, "PutJobState(version %d) over version 2", stale)
				got, err := st.GetJobState(ctx, my("job"))
				must(t, err, "GetJobState")
				equal(t, got, next, "state after a PutJobState with stale version %d", stale)
			}
		}},
		{"ConcurrentWritersOneWins", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			n := s.opts.Goroutines
			for round, version := range []int64{0, 1} {
				errs := make([]error, n)
				runConcurrently(n, func(i int) {
					errs[i] = st.PutJobState(ctx, billing.JobState{JobID: "job", ConsecutiveFailures: i,
						UpdatedAt: base.Add(time.Duration(round) * time.Hour), Version: version})
				})
				winner := -1
				for i, err := range errs {
					switch {
					case err == nil && winner >= 0:
						t.Fatalf("round %d: writers %d and %d both stored version %d", round, winner, i, version)
					case err == nil:
						winner = i
					default:
						wantErr(t, err, billing.ErrConflict, "round %d: losing writer %d", round, i)
					}
				}
				if winner < 0 {
					t.Fatalf("round %d: no writer of version %d succeeded: %v", round, version, errs)
				}
				got, err := st.GetJobState(ctx, "job")
				must(t, err, "GetJobState")
				equal(t, got, billing.JobState{JobID: "job", ConsecutiveFailures: winner,
					UpdatedAt: base.Add(time.Duration(round) * time.Hour), Version: version + 1},
					"round %d: the stored state is the winner's", round)
			}
		}},
	}
}

func (s *suite) lockTests() []test {
	const ttl = time.Minute
	return []test{
		{"CurrentLease", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			li, ok := st.(billing.LockInspector)
			if !ok {
				t.Skip("store does not implement CurrentLease (billing.LockInspector)")
			}
			check := func(what string, now time.Time, want billing.Lease, wantHeld bool) {
				t.Helper()
				got, held, err := li.CurrentLease(ctx, my("k"), now)
				must(t, err, "CurrentLease(%s)", what)
				if held != wantHeld {
					t.Fatalf("CurrentLease(%s): held = %v, want %v", what, held, wantHeld)
				}
				if held {
					equal(t, got, want, "CurrentLease(%s)", what)
				}
			}
			check("never taken", base, billing.Lease{}, false)
			l, err := st.AcquireLock(ctx, my("k"), "A", base, ttl)
			must(t, err, "AcquireLock")
			check("held", base.Add(ttl/2), l, true)
			check("expired", base.Add(ttl), billing.Lease{}, false)
			must(t, st.ReleaseLock(ctx, l), "ReleaseLock")
			check("released", base, billing.Lease{}, false)
			if _, err := st.AcquireLock(ctx, my("k"), "B", base, ttl); err != nil {
				t.Fatalf("CurrentLease took the lock: AcquireLock got %v", err)
			}
		}},
		{"AcquireHeldRenewRelease", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			l, err := st.AcquireLock(ctx, my("k"), "A", base, ttl)
			must(t, err, "AcquireLock")
			if l.Key != my("k") || l.Owner != "A" || l.Token <= 0 || !l.ExpiresAt.Equal(base.Add(ttl)) {
				t.Fatalf("AcquireLock = %+v, want key k, owner A, positive token, expiry now+ttl", l)
			}
			_, err = st.AcquireLock(ctx, my("k"), "B", base.Add(ttl-time.Millisecond), ttl)
			wantErr(t, err, billing.ErrLockHeld, "AcquireLock by another owner while held")
			_, err = st.AcquireLock(ctx, my("k"), "A", base.Add(time.Second), ttl)
			wantErr(t, err, billing.ErrLockHeld, "AcquireLock by the holder again (a lease is not reentrant)")
			other, err := st.AcquireLock(ctx, my("other-key"), "B", base, ttl)
			must(t, err, "AcquireLock(other key)")
			if other.Key != my("other-key") {
				t.Fatalf("lease for other key: %+v", other)
			}
			r, err := st.RenewLock(ctx, l, base.Add(30*time.Second), ttl)
			must(t, err, "RenewLock")
			if r.Token != l.Token || r.Owner != "A" || !r.ExpiresAt.Equal(base.Add(30*time.Second+ttl)) {
				t.Fatalf("RenewLock = %+v, want same token %d and expiry renew-time+ttl", r, l.Token)
			}
			// The renewed lease holds past the original expiry.
			_, err = st.AcquireLock(ctx, my("k"), "B", base.Add(ttl+time.Second), ttl)
			wantErr(t, err, billing.ErrLockHeld, "AcquireLock after the original expiry but within the renewed one")
			must(t, st.ReleaseLock(ctx, r), "ReleaseLock")
			b, err := st.AcquireLock(ctx, my("k"), "B", base.Add(31*time.Second), ttl)
			must(t, err, "AcquireLock after release")
			if b.Token <= l.Token {
				t.Fatalf("fencing token did not grow: %d after %d", b.Token, l.Token)
			}
		}},
		{"TakeoverAfterExpiryAndStaleHolder", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			a, err := st.AcquireLock(ctx, my("k"), "A", base, ttl)
			must(t, err, "AcquireLock(A)")
			// A lease that ended at now is free.
			b, err := st.AcquireLock(ctx, my("k"), "B", base.Add(ttl), ttl)
			must(t, err, "AcquireLock(B) at A's expiry")
			if b.Token <= a.Token || b.Owner != "B" {
				t.Fatalf("takeover lease %+v: want owner B and a token above %d", b, a.Token)
			}
			_, err = st.RenewLock(ctx, a, base.Add(ttl), ttl)
			wantErr(t, err, billing.ErrLockLost, "RenewLock by the stale holder")
			wantErr(t, st.ReleaseLock(ctx, a), billing.ErrLockLost, "ReleaseLock by the stale holder")
			// The stale holder's release did not free B's lease.
			_, err = st.AcquireLock(ctx, my("k"), "C", base.Add(ttl+time.Second), ttl)
			wantErr(t, err, billing.ErrLockHeld, "AcquireLock(C) while B holds")
			// A token from the same owner name but an older acquisition is stale too.
			b2 := b
			b2.Token = a.Token
			_, err = st.RenewLock(ctx, b2, base.Add(ttl+time.Second), ttl)
			wantErr(t, err, billing.ErrLockLost, "RenewLock with an old fencing token")
			c, err := st.AcquireLock(ctx, my("k"), "C", base.Add(2*ttl), ttl)
			must(t, err, "AcquireLock(C) after B's expiry")
			if c.Token <= b.Token {
				t.Fatalf("fencing token did not grow: %d after %d", c.Token, b.Token)
			}
		}},
		{"RenewAfterExpiryIsLost", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			a, err := st.AcquireLock(ctx, my("k"), "A", base, ttl)
			must(t, err, "AcquireLock")
			_, err = st.RenewLock(ctx, a, base.Add(ttl), ttl)
			wantErr(t, err, billing.ErrLockLost, "RenewLock once the lease has ended")
		}},
		{"ConcurrentAcquireOneWinner", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			n := s.opts.Goroutines
			errs := make([]error, n)
			runConcurrently(n, func(i int) {
				_, errs[i] = st.AcquireLock(ctx, "race", fmt.Sprintf("owner-%d", i), base, ttl)
			})
			wins := 0
			for i, err := range errs {
				switch {
				case err == nil:
					wins++
				case !isLockHeld(err):
					t.Fatalf("caller %d: got %v, want nil or ErrLockHeld", i, err)
				}
			}
			if wins != 1 {
				t.Fatalf("%d of %d concurrent callers acquired the lock, want exactly 1", wins, n)
			}
		}},
	}
}

func (s *suite) webhookTests() []test {
	ev := func(id string) billing.WebhookEvent {
		return billing.WebhookEvent{Gateway: billing.GatewayStripe, EventID: id, Type: "invoice.paid", Payload: []byte(`{"id":"` + id + `"}`)}
	}
	lease := time.Minute
	put := func(ctx context.Context, t *testing.T, st billing.Store, e billing.WebhookEvent, now time.Time) (billing.WebhookEvent, bool) {
		t.Helper()
		got, ok, err := st.PutWebhookEvent(ctx, e, now)
		must(t, err, "PutWebhookEvent(%s)", e.EventID)
		return got, ok
	}
	claim := func(ctx context.Context, t *testing.T, st billing.Store, token string, now time.Time, limit int) []billing.WebhookEvent {
		t.Helper()
		got, err := st.ClaimWebhookEvents(ctx, billing.WebhookClaimParams{Token: token, Now: now, LeaseUntil: now.Add(lease), Limit: limit})
		must(t, err, "ClaimWebhookEvents(%s)", token)
		return got
	}
	ids := func(evs []billing.WebhookEvent) []string {
		out := []string{}
		for _, e := range evs {
			out = append(out, e.EventID)
		}
		return out
	}
	finish := func(e billing.WebhookEvent, token string, state billing.WebhookEventState, now, next time.Time) billing.WebhookFinish {
		return billing.WebhookFinish{Gateway: e.Gateway, EventID: e.EventID, Token: token, State: state, Attempts: e.Attempts,
			Now: now, NextAttemptAt: next, Attempt: billing.WebhookAttempt{At: now, State: state, Duration: time.Millisecond}}
	}
	get := func(ctx context.Context, t *testing.T, st billing.Store, id string) billing.WebhookEvent {
		t.Helper()
		got, err := st.GetWebhookEvent(ctx, billing.GatewayStripe, id)
		must(t, err, "GetWebhookEvent(%s)", id)
		return got
	}
	return []test{
		{"ListObjectWebhookEventsNewestFirst", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			// The timeline's query: the events of some objects of one gateway, in every
			// state, newest received first (ties by event id, descending), bounded, and
			// without the payload; other objects and other gateways are left out.
			seed := []struct {
				gateway, id, object string
				at                  time.Time
			}{
				{billing.GatewayStripe, "e1", "sub_a", base},
				{billing.GatewayStripe, "e2", "in_a", base.Add(2 * time.Second)},
				{billing.GatewayStripe, "e3", "sub_b", base.Add(3 * time.Second)},
				{billing.GatewayPayPal, "e4", "sub_a", base.Add(4 * time.Second)},
				{billing.GatewayStripe, "e5", "sub_a", base.Add(5 * time.Second)},
				{billing.GatewayStripe, "e6", "sub_a", base.Add(5 * time.Second)}, // ties with e5
				{billing.GatewayStripe, "e7", "", base.Add(6 * time.Second)},
			}
			for _, x := range seed {
				e := ev(x.id)
				e.Gateway, e.ObjectKey = x.gateway, x.object
				put(ctx, t, st, e, x.at)
			}
			// A final event is listed too.
			got := claim(ctx, t, st, "tok", base.Add(time.Minute), 10)
			for _, e := range got {
				if e.EventID == "e1" && e.Gateway == billing.GatewayStripe {
					must(t, st.FinishWebhookEvent(ctx, finish(e, "tok", billing.WebhookEventStateProcessed, base.Add(time.Minute), time.Time{})), "Finish(e1)")
				}
			}
			list, err := st.ListObjectWebhookEvents(ctx, billing.GatewayStripe, []string{"sub_a", "in_a"}, 10)
			must(t, err, "ListObjectWebhookEvents")
			if want := []string{"e6", "e5", "e2", "e1"}; !reflect.DeepEqual(ids(list), want) {
				t.Fatalf("listed %v, want %v (newest first, other objects and gateways left out)", ids(list), want)
			}
			for _, e := range list {
				if len(e.Payload) != 0 {
					t.Fatalf("event %s listed with its payload", e.EventID)
				}
			}
			if last := list[3]; last.State != billing.WebhookEventStateProcessed || !last.ReceivedAt.Equal(base) || last.ObjectKey != "sub_a" {
				t.Fatalf("e1 listed as %+v, want processed, received at %v, object sub_a", last, base)
			}
			list, err = st.ListObjectWebhookEvents(ctx, billing.GatewayStripe, []string{"sub_a", "in_a"}, 2)
			must(t, err, "ListObjectWebhookEvents(limit 2)")
			if want := []string{"e6", "e5"}; !reflect.DeepEqual(ids(list), want) {
				t.Fatalf("limit 2 listed %v, want the newest two %v", ids(list), want)
			}
			list, err = st.ListObjectWebhookEvents(ctx, billing.GatewayStripe, nil, 10)
			if err != nil || len(list) != 0 {
				t.Fatalf("no keys: %v, %v; want no events and no error", ids(list), err)
			}
			for name, call := range map[string]func() error{
				"no gateway": func() error { _, err := st.ListObjectWebhookEvents(ctx, "", []string{"sub_a"}, 10); return err },
				"limit 0": func() error {
					_, err := st.ListObjectWebhookEvents(ctx, billing.GatewayStripe, []string{"sub_a"}, 0)
					return err
				},
				"limit over": func() error {
					_, err := st.ListObjectWebhookEvents(ctx, billing.GatewayStripe, []string{"sub_a"}, billing.MaxPageSize+1)
					return err
				},
			} {
				if err := call(); !errors.Is(err, billing.ErrInvalidInput) {
					t.Errorf("%s: %v, want ErrInvalidInput", name, err)
				}
			}
		}},
		{"PutStoresOnceWithPayload", sharedStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			my := scope(t)
			e := ev(my("evt1"))
			e.ObjectKey, e.OccurredAt = my("sub_1"), base.Add(-time.Second)
			payload := `{"id":"` + my("evt1") + `"}`
			got, ok := put(ctx, t, st, e, base)
			if !ok || got.State != billing.WebhookEventStateReceived || got.Attempts != 0 || !got.ReceivedAt.Equal(base) || !got.NextAttemptAt.Equal(base) {
				t.Fatalf("new event: ok=%v %+v; want true, received, 0 attempts, due now", ok, got)
			}
			stored := get(ctx, t, st, my("evt1"))
			if string(stored.Payload) != payload || stored.ObjectKey != my("sub_1") || !stored.OccurredAt.Equal(base.Add(-time.Second)) || stored.Type != "invoice.paid" {
				t.Fatalf("stored %+v (payload %q)", stored, stored.Payload)
			}
			dup := ev(my("evt1"))
			dup.Payload = []byte("other")
			got, ok = put(ctx, t, st, dup, base.Add(time.Hour))
			if ok || string(got.Payload) != payload || !got.ReceivedAt.Equal(base) {
				t.Fatalf("duplicate: ok=%v %+v; want false and the stored event unchanged", ok, got)
			}
			other := ev(my("evt1"))
			other.Gateway = billing.GatewayPayPal
			if _, ok := put(ctx, t, st, other, base); !ok {
				t.Fatal("the same id at another gateway is a new event")
			}
		}},
		{"RedeliveryFillsAnEventStoredWithoutPayload", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			// Events recorded before the inbox have no payload. A failed one, or a received
			// one whose lease ended (its processor crashed), takes the payload of the
			// gateway's redelivery and is due again, so an upgrade loses no event; one still
			// leased, a processed one, or a redelivery without a payload changes nothing.
			old := func(id string) billing.WebhookEvent { e := ev(id); e.Payload = nil; return e }
			for _, id := range []string{"failed", "crashed", "busy", "done", "bare"} {
				put(ctx, t, st, old(id), base)
			}
			got := claim(ctx, t, st, "old", base, 10)
			if len(got) != 5 {
				t.Fatalf("claimed %v", ids(got))
			}
			byID := map[string]billing.WebhookEvent{}
			for _, e := range got {
				byID[e.EventID] = e
			}
			must(t, st.FinishWebhookEvent(ctx, finish(byID["failed"], "old", billing.WebhookEventStateFailed, base, base.Add(time.Hour))), "Finish(failed)")
			must(t, st.FinishWebhookEvent(ctx, finish(byID["done"], "old", billing.WebhookEventStateProcessed, base, time.Time{})), "Finish(done)")
			must(t, st.FinishWebhookEvent(ctx, finish(byID["bare"], "old", billing.WebhookEventStateFailed, base, base.Add(time.Hour))), "Finish(bare)")
			// crashed and busy stay leased until base+3*lease, past the first redeliveries.
			_, err := st.RenewWebhookLeases(ctx, "old", base.Add(3*lease))
			must(t, err, "RenewWebhookLeases")
			now := base.Add(2 * lease)
			for _, c := range []struct {
				id   string
				fill bool
			}{{"failed", true}, {"busy", false}, {"done", false}} {
				got, ok := put(ctx, t, st, ev(c.id), now)
				stored := get(ctx, t, st, c.id)
				if ok != c.fill || (string(stored.Payload) != "") != c.fill {
					t.Fatalf("redelivery of %s: ok=%v, payload %q; want filled=%v (%+v)", c.id, ok, stored.Payload, c.fill, got)
				}
				if c.fill && (stored.State != billing.WebhookEventStateReceived || !stored.NextAttemptAt.Equal(now) || stored.LeaseToken != "" ||
					stored.Attempts != byID[c.id].Attempts || !stored.ReceivedAt.Equal(base)) {
					t.Fatalf("filled %s: %+v; want received, due now, unleased, attempts and received time kept", c.id, stored)
				}
			}
			if got, ok := put(ctx, t, st, old("bare"), now); ok || got.State != billing.WebhookEventStateFailed {
				t.Fatalf("a redelivery without payload: ok=%v %+v; want the stored event unchanged", ok, got)
			}
			after := base.Add(3*lease + time.Second) // crashed's lease ended
			if _, ok := put(ctx, t, st, ev("crashed"), after); !ok {
				t.Fatal("a received event whose lease ended did not take the redelivery's payload")
			}
			if got := ids(claim(ctx, t, st, "new", after, 10)); !slices.Contains(got, "failed") || !slices.Contains(got, "crashed") {
				t.Fatalf("due after the redeliveries: %v; want failed and crashed among them", got)
			}
		}},
		{"ClaimLeaseFinish", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			for i, id := range []string{"c", "a", "b"} {
				e := ev(id)
				e.OccurredAt = base.Add(time.Duration(i) * time.Second) // c earliest
				put(ctx, t, st, e, base)
			}
			put(ctx, t, st, ev("later"), base.Add(time.Hour)) // not due before base+1h
			got := claim(ctx, t, st, "A", base, 2)
			if fmt.Sprint(ids(got)) != "[c a]" || got[0].Attempts != 1 || !got[0].LeaseUntil.Equal(base.Add(lease)) {
				t.Fatalf("first claim %v %+v; want [c a] in occurred order, attempt 1, leased", ids(got), got)
			}
			if got := claim(ctx, t, st, "B", base.Add(time.Second), 10); fmt.Sprint(ids(got)) != "[b]" {
				t.Fatalf("second claimer got %v, want [b] only: a and c are leased", ids(got))
			}
			n, err := st.RenewWebhookLeases(ctx, "A", base.Add(2*lease))
			must(t, err, "RenewWebhookLeases")
			if n != 2 {
				t.Fatalf("renewed %d leases of A, want 2", n)
			}
			if got := claim(ctx, t, st, "B", base.Add(lease+time.Second), 10); fmt.Sprint(ids(got)) != "[b]" {
				t.Fatalf("after the first lease: %v; want [b] only (its own lease ended, A's were renewed)", ids(got))
			}
			c := get(ctx, t, st, "c")
			must(t, st.FinishWebhookEvent(ctx, finish(c, "A", billing.WebhookEventStateProcessed, base.Add(time.Second), time.Time{})), "Finish(c)")
			c = get(ctx, t, st, "c")
			if c.State != billing.WebhookEventStateProcessed || !c.FinishedAt.Equal(base.Add(time.Second)) || c.LeaseToken != "" || len(c.History) != 1 ||
				c.History[0].State != billing.WebhookEventStateProcessed || c.History[0].Duration != time.Millisecond {
				t.Fatalf("finished event %+v", c)
			}
			wantErr(t, st.FinishWebhookEvent(ctx, finish(c, "A", billing.WebhookEventStateProcessed, base, time.Time{})), billing.ErrConflict, "Finish(c) again")
			a := get(ctx, t, st, "a")
			wantErr(t, st.FinishWebhookEvent(ctx, finish(a, "B", billing.WebhookEventStateProcessed, base, time.Time{})), billing.ErrConflict, "Finish(a) with another token")
			// A crashed claimer: its lease ends and the event is claimed again, attempt 2.
			got = claim(ctx, t, st, "B", base.Add(2*lease), 10)
			if fmt.Sprint(ids(got)) != "[a]" || got[0].Attempts != 2 {
				t.Fatalf("after A's lease ended: %v %+v; want [a] at attempt 2", ids(got), got)
			}
			wantErr(t, st.FinishWebhookEvent(ctx, finish(a, "A", billing.WebhookEventStateProcessed, base, time.Time{})), billing.ErrConflict, "Finish(a) by the lost lease")
			_, err = st.GetWebhookEvent(ctx, billing.GatewayStripe, "nope")
			wantErr(t, err, billing.ErrNotFound, "GetWebhookEvent(missing)")
			wantErr(t, st.FinishWebhookEvent(ctx, finish(ev("nope"), "A", billing.WebhookEventStateProcessed, base, time.Time{})), billing.ErrNotFound, "Finish(missing)")
		}},
		{"ClaimReportsAnUnreadableEventNextToTheOthers", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			// A failure mid-work loses nothing and is retried: a claim meeting an event the
			// store cannot decode returns the readable events it claimed together with a
			// *billing.RecordError naming the unreadable one. The readable ones are claimed
			// (nobody else gets them while the lease lasts), and the unreadable one is held
			// by the claim's lease only: once it ends, the next claim meets it again.
			if s.opts.CorruptWebhookEvent == nil {
				t.Skip("Options.CorruptWebhookEvent is nil: this store cannot be given an unreadable webhook event")
			}
			for i, id := range []string{"a", "bad", "c"} {
				e := ev(id)
				e.OccurredAt = base.Add(time.Duration(i) * time.Second) // claim order a, bad, c
				put(ctx, t, st, e, base)
			}
			must(t, s.opts.CorruptWebhookEvent(ctx, st, billing.GatewayStripe, "bad"), "CorruptWebhookEvent(bad)")
			unreadable := func(err error, what string) {
				t.Helper()
				var re *billing.RecordError
				if !errors.As(err, &re) || !errors.Is(err, billing.ErrMalformedRecord) || re.ID != billing.WebhookEventKey(billing.GatewayStripe, "bad") {
					t.Fatalf("%s: error %v; want a *billing.RecordError wrapping ErrMalformedRecord with ID %q", what, err, billing.WebhookEventKey(billing.GatewayStripe, "bad"))
				}
			}
			got, err := st.ClaimWebhookEvents(ctx, billing.WebhookClaimParams{Token: "A", Now: base, LeaseUntil: base.Add(lease), Limit: 10})
			unreadable(err, "first claim")
			if fmt.Sprint(ids(got)) != "[a c]" {
				t.Fatalf("first claim returned %v; want [a c], the readable events, in claim order", ids(got))
			}
			for _, e := range got {
				if e.Attempts != 1 || e.LeaseToken != "A" || !e.LeaseUntil.Equal(base.Add(lease)) || string(e.Payload) != string(ev(e.EventID).Payload) {
					t.Fatalf("claimed %+v; want attempt 1, leased to A until %v, its payload", e, base.Add(lease))
				}
			}
			if got := claim(ctx, t, st, "B", base.Add(time.Second), 10); len(got) != 0 {
				t.Fatalf("second claimer got %v during A's lease; want nothing", ids(got))
			}
			for _, e := range got {
				must(t, st.FinishWebhookEvent(ctx, finish(e, "A", billing.WebhookEventStateProcessed, base.Add(time.Second), time.Time{})), "Finish(%s)", e.EventID)
			}
			got, err = st.ClaimWebhookEvents(ctx, billing.WebhookClaimParams{Token: "C", Now: base.Add(lease + time.Second), LeaseUntil: base.Add(2 * lease), Limit: 10})
			unreadable(err, "claim after the lease")
			if len(got) != 0 {
				t.Fatalf("claim after the lease returned %v; want nothing but the unreadable event's error", ids(got))
			}
		}},
		{"WakeReleasesEventsHeldBehindAnEarlierOne", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			// An event put back behind an earlier event of its object (received, due later)
			// is due as soon as the earlier one is done and its object is woken, not a poll
			// interval later; a received event of another object is left alone.
			for i, id := range []string{"first", "second", "other"} {
				e := ev(id)
				e.ObjectKey, e.OccurredAt = "sub_1", base.Add(time.Duration(i)*time.Second)
				if id == "other" {
					e.ObjectKey = "sub_2"
				}
				put(ctx, t, st, e, base)
			}
			got := claim(ctx, t, st, "A", base, 10)
			if len(got) != 3 {
				t.Fatalf("claimed %v", ids(got))
			}
			byID := map[string]billing.WebhookEvent{}
			for _, e := range got {
				byID[e.EventID] = e
			}
			later := base.Add(time.Hour)
			for _, id := range []string{"second", "other"} {
				f := finish(byID[id], "A", billing.WebhookEventStateReceived, base, later)
				f.Attempts = byID[id].Attempts - 1
				must(t, st.FinishWebhookEvent(ctx, f), "put back %s", id)
			}
			must(t, st.FinishWebhookEvent(ctx, finish(byID["first"], "A", billing.WebhookEventStateProcessed, base, time.Time{})), "Finish(first)")
			n, err := st.WakeWebhookEvents(ctx, billing.GatewayStripe, "sub_1", base.Add(time.Second))
			must(t, err, "WakeWebhookEvents")
			if n != 1 {
				t.Fatalf("woke %d events of sub_1, want 1 (second)", n)
			}
			if got := ids(claim(ctx, t, st, "B", base.Add(time.Second), 10)); fmt.Sprint(got) != "[second]" {
				t.Fatalf("due after the wake: %v, want [second] (other waits for its own time)", got)
			}
			// A wake while an event is claimed, before its attempt puts it back: due at once.
			second := get(ctx, t, st, "second")
			_, err = st.WakeWebhookEvents(ctx, billing.GatewayStripe, "sub_1", base.Add(2*time.Second))
			must(t, err, "WakeWebhookEvents during the claim")
			f := finish(second, "B", billing.WebhookEventStateReceived, base.Add(2*time.Second), later)
			f.Attempts = second.Attempts - 1
			must(t, st.FinishWebhookEvent(ctx, f), "put back second")
			if got := ids(claim(ctx, t, st, "C", base.Add(2*time.Second), 10)); fmt.Sprint(got) != "[second]" {
				t.Fatalf("due after a wake during its claim: %v, want [second]", got)
			}
		}},
		{"FailedAndParkedAreDueAgain", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			for _, id := range []string{"f", "p"} {
				e := ev(id)
				e.ObjectKey = "sub_" + id
				put(ctx, t, st, e, base)
			}
			got := claim(ctx, t, st, "A", base, 10)
			if len(got) != 2 {
				t.Fatalf("claimed %v", ids(got))
			}
			for _, e := range got {
				f := finish(e, "A", billing.WebhookEventStateFailed, base, base.Add(time.Hour))
				if e.EventID == "p" {
					f.State, f.ParkedAt, f.Error = billing.WebhookEventStateParked, base, "unknown subscription"
				}
				must(t, st.FinishWebhookEvent(ctx, f), "Finish(%s)", e.EventID)
			}
			if got := claim(ctx, t, st, "A", base.Add(time.Minute), 10); len(got) != 0 {
				t.Fatalf("claimed %v before their next attempt", ids(got))
			}
			n, err := st.WakeWebhookEvents(ctx, billing.GatewayStripe, "sub_p", base.Add(time.Minute))
			must(t, err, "WakeWebhookEvents")
			if n != 1 {
				t.Fatalf("woke %d events, want 1 (the parked one)", n)
			}
			if n, _ := st.WakeWebhookEvents(ctx, billing.GatewayStripe, "sub_f", base.Add(time.Minute)); n != 0 {
				t.Fatalf("woke a failed event")
			}
			got = claim(ctx, t, st, "A", base.Add(time.Minute), 10)
			if fmt.Sprint(ids(got)) != "[p]" || got[0].State != billing.WebhookEventStateParked || !got[0].ParkedAt.Equal(base) || got[0].Error != "unknown subscription" {
				t.Fatalf("after wake: %v %+v; want [p] still parked since base", ids(got), got)
			}
			p := got[0]
			must(t, st.FinishWebhookEvent(ctx, finish(p, "A", billing.WebhookEventStateProcessed, base.Add(time.Minute), time.Time{})), "Finish(p)")
			if got := claim(ctx, t, st, "B", base.Add(time.Hour), 10); fmt.Sprint(ids(got)) != "[f]" || got[0].Attempts != 2 {
				t.Fatalf("at its next attempt: %v; want [f] at attempt 2", ids(got))
			}
		}},
		{"WakeWhileClaimedIsNotLost", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			e := ev("w")
			e.ObjectKey = "sub_w"
			put(ctx, t, st, e, base)
			got := claim(ctx, t, st, "A", base, 1)
			// The event that creates sub_w is processed while w is being attempted.
			n, err := st.WakeWebhookEvents(ctx, billing.GatewayStripe, "sub_w", base.Add(time.Second))
			must(t, err, "WakeWebhookEvents")
			if n != 0 {
				t.Fatalf("woke %d parked events, want 0 (w is claimed, not parked)", n)
			}
			f := finish(got[0], "A", billing.WebhookEventStateParked, base.Add(2*time.Second), base.Add(time.Hour))
			f.ParkedAt = base
			must(t, st.FinishWebhookEvent(ctx, f), "park w")
			if w := get(ctx, t, st, "w"); w.State != billing.WebhookEventStateParked || !w.NextAttemptAt.Equal(base.Add(2*time.Second)) {
				t.Fatalf("w parked after a wake during its attempt: %+v; want due at its finish", w)
			}
			got = claim(ctx, t, st, "A", base.Add(2*time.Second), 1)
			f = finish(got[0], "A", billing.WebhookEventStateParked, base.Add(3*time.Second), base.Add(time.Hour))
			must(t, st.FinishWebhookEvent(ctx, f), "park w again")
			if w := get(ctx, t, st, "w"); !w.NextAttemptAt.Equal(base.Add(time.Hour)) {
				t.Fatalf("the wake-up mark outlived the next attempt: %+v", w)
			}
		}},
		{"ClaimOneForInlineDelivery", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			put(ctx, t, st, ev("x"), base)
			put(ctx, t, st, ev("y"), base)
			one := func(token string, now time.Time) []billing.WebhookEvent {
				got, err := st.ClaimWebhookEvents(ctx, billing.WebhookClaimParams{Token: token, Now: now, LeaseUntil: now.Add(lease),
					Limit: 1, Gateway: billing.GatewayStripe, EventID: "y"})
				must(t, err, "ClaimWebhookEvents(y)")
				return got
			}
			if got := one("A", base); fmt.Sprint(ids(got)) != "[y]" {
				t.Fatalf("claimed %v, want [y]", ids(got))
			}
			if got := one("B", base); len(got) != 0 {
				t.Fatalf("a leased event was claimed again: %v", ids(got))
			}
			y := get(ctx, t, st, "y")
			must(t, st.FinishWebhookEvent(ctx, finish(y, "A", billing.WebhookEventStateFailed, base, base.Add(time.Hour))), "Finish(y)")
			if got := one("B", base.Add(time.Second)); fmt.Sprint(ids(got)) != "[y]" {
				t.Fatalf("an inline redelivery takes a failed event before its next attempt: got %v", ids(got))
			}
		}},
		{"OrderWithinObject", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			mk := func(id, obj string, at time.Duration) billing.WebhookEvent {
				e := ev(id)
				e.ObjectKey, e.OccurredAt = obj, base.Add(at)
				put(ctx, t, st, e, base)
				return e
			}
			e1, e2, e3 := mk("e1", "sub_1", 0), mk("e2", "sub_1", time.Second), mk("e3", "sub_1", time.Second)
			other := mk("o1", "sub_2", 2*time.Second)
			blocked := func(e billing.WebhookEvent) bool {
				b, err := st.WebhookEventBlocked(ctx, e)
				must(t, err, "WebhookEventBlocked(%s)", e.EventID)
				return b
			}
			if blocked(e1) || !blocked(e2) || !blocked(e3) || blocked(other) {
				t.Fatalf("blocked e1=%v e2=%v e3=%v o1=%v; want only e2 and e3 (after e1)", blocked(e1), blocked(e2), blocked(e3), blocked(other))
			}
			got := claim(ctx, t, st, "A", base, 1)
			f := finish(got[0], "A", billing.WebhookEventStateParked, base, base.Add(time.Hour))
			f.ParkedAt = base
			must(t, st.FinishWebhookEvent(ctx, f), "park e1")
			if blocked(e2) {
				t.Fatal("a parked event holds later events of its object back")
			}
		}},
		{"ReplayListStats", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			for i, id := range []string{"r1", "r2", "r3", "r4"} {
				put(ctx, t, st, ev(id), base.Add(time.Duration(i)*time.Second))
			}
			pp := ev("pp")
			pp.Gateway = billing.GatewayPayPal
			put(ctx, t, st, pp, base.Add(10*time.Second))
			got := claim(ctx, t, st, "A", base.Add(time.Minute), 10)
			states := map[string]billing.WebhookEventState{"r1": billing.WebhookEventStateDead, "r2": billing.WebhookEventStateIgnored, "r3": billing.WebhookEventStateProcessed}
			for _, e := range got {
				if state, ok := states[e.EventID]; ok {
					must(t, st.FinishWebhookEvent(ctx, finish(e, "A", state, base.Add(time.Minute), time.Time{})), "Finish(%s)", e.EventID)
				}
			}
			stats, err := st.WebhookInboxStats(ctx)
			must(t, err, "WebhookInboxStats")
			if stats.ByState[billing.WebhookEventStateDead] != 1 || stats.ByState[billing.WebhookEventStateIgnored] != 1 || stats.ByState[billing.WebhookEventStateProcessed] != 1 ||
				stats.ByState[billing.WebhookEventStateReceived] != 2 || !stats.OldestPending.Equal(base.Add(3*time.Second)) {
				t.Fatalf("stats %+v; want one dead, ignored, processed, two received, oldest pending r4", stats)
			}
			for _, id := range []string{"r3", "r4"} {
				_, err := st.ReplayWebhookEvent(ctx, billing.GatewayStripe, id, base.Add(time.Hour))
				wantErr(t, err, billing.ErrInvalidTransition, "Replay(%s)", id)
			}
			_, err = st.ReplayWebhookEvent(ctx, billing.GatewayStripe, "nope", base)
			wantErr(t, err, billing.ErrNotFound, "Replay(missing)")
			for _, id := range []string{"r1", "r2"} {
				r, err := st.ReplayWebhookEvent(ctx, billing.GatewayStripe, id, base.Add(time.Hour))
				must(t, err, "Replay(%s)", id)
				if r.State != billing.WebhookEventStateReceived || r.Attempts != 1 || len(r.History) != 1 || !r.NextAttemptAt.Equal(base.Add(time.Hour)) || !r.FinishedAt.IsZero() {
					t.Fatalf("replayed %s: %+v; want received, due at the replay, attempts and history kept", id, r)
				}
			}
			page, err := st.ListWebhookEvents(ctx, billing.WebhookEventQuery{Gateway: billing.GatewayStripe, Limit: 2})
			must(t, err, "ListWebhookEvents")
			if fmt.Sprint(ids(page)) != "[r1 r2]" || page[0].Payload != nil {
				t.Fatalf("first page %v; want [r1 r2] without payloads", ids(page))
			}
			page, err = st.ListWebhookEvents(ctx, billing.WebhookEventQuery{Gateway: billing.GatewayStripe, Limit: 10, After: billing.WebhookEventCursor(page[1])})
			must(t, err, "ListWebhookEvents(page 2)")
			if fmt.Sprint(ids(page)) != "[r3 r4]" {
				t.Fatalf("second page %v; want [r3 r4]", ids(page))
			}
			page, err = st.ListWebhookEvents(ctx, billing.WebhookEventQuery{State: billing.WebhookEventStateReceived, Limit: 10})
			must(t, err, "ListWebhookEvents(received)")
			if fmt.Sprint(ids(page)) != "[r1 r2 r4 pp]" {
				t.Fatalf("received events %v; want [r1 r2 r4 pp]", ids(page))
			}
			_, err = st.ListWebhookEvents(ctx, billing.WebhookEventQuery{Limit: 10, After: "!!"})
			wantErr(t, err, billing.ErrInvalidInput, "ListWebhookEvents(bad cursor)")
		}},
		{"ConcurrentClaimsOneWinner", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			for i := range 20 {
				put(ctx, t, st, ev(fmt.Sprintf("race%02d", i)), base)
			}
			n := s.opts.Goroutines
			got := make([][]billing.WebhookEvent, n)
			errs := make([]error, n)
			runConcurrently(n, func(i int) {
				got[i], errs[i] = st.ClaimWebhookEvents(ctx, billing.WebhookClaimParams{Token: fmt.Sprint("T", i), Now: base,
					LeaseUntil: base.Add(lease), Limit: 5})
			})
			seen := map[string]int{}
			for i := range n {
				must(t, errs[i], "claimer %d", i)
				for _, e := range got[i] {
					seen[e.EventID]++
				}
			}
			for id, c := range seen {
				if c != 1 {
					t.Fatalf("event %s claimed by %d concurrent claimers, want 1", id, c)
				}
			}
			if len(seen) != min(20, 5*n) {
				t.Fatalf("%d events claimed, want %d", len(seen), min(20, 5*n))
			}
		}},
	}
}
