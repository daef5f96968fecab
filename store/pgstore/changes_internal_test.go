package pgstore

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/renewkit/renewkit/billing"
)

// TestUpdateSubsArgsOnlyWrittenColumns proves a batch statement carries the columns its
// changes write and no others: a batch of expiry warnings (expiration_warning_sent, _days,
// updated_at) sends the six fixed arrays plus a read and a new array for each of those
// three columns, and its SET and conditions name no other column; a batch mixing in a
// plan change adds exactly plan_id's two arrays.
func TestUpdateSubsArgsOnlyWrittenColumns(t *testing.T) {
	now := time.Date(2031, 7, 1, 9, 0, 0, 0, time.UTC)
	warn := func(id string) billing.SubscriptionChange {
		read := billing.Subscription{ID: id, Status: billing.SubscriptionStatusActive, PlanID: "p1", CurrentPeriodEnd: now.Add(48 * time.Hour)}
		changed := read
		changed.ExpirationWarningSent, changed.ExpirationWarningDays, changed.UpdatedAt = true, 3, now
		return billing.SubscriptionChange{Read: read, Changed: changed, ClaimToken: "tok"}
	}
	changes := []billing.SubscriptionChange{warn("s1"), warn("s2")}
	q, args, err := updateSubsArgs(changes, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := 6 + 2*3; len(args) != want {
		t.Errorf("warning batch sends %d arrays, want %d", len(args), want)
	}
	for _, c := range subColumns {
		set := regexp.MustCompile(`\s` + c.name + ` = CASE`).MatchString(q)
		switch c.name {
		case billing.FieldExpirationWarningSent, billing.FieldExpirationWarningDays, billing.FieldUpdatedAt:
			if !set {
				t.Errorf("warning batch does not write %s:\n%s", c.name, q)
			}
		default:
			if set {
				t.Errorf("warning batch writes %s, which no change writes:\n%s", c.name, q)
			}
		}
	}

	plan := warn("s3")
	plan.Changed = plan.Read
	plan.Changed.PlanID = "p2"
	changes = append(changes, plan)
	q2, args, err := updateSubsArgs(changes, []int{0, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if want := 6 + 2*4; len(args) != want {
		t.Errorf("mixed batch sends %d arrays, want %d", len(args), want)
	}
	if !regexp.MustCompile(`\splan_id = CASE`).MatchString(q2) {
		t.Errorf("mixed batch does not write plan_id:\n%s", q2)
	}
	if again, _, _ := updateSubsArgs(changes[:2], []int{0, 1}); again != q {
		t.Error("the same column set builds a different statement: prepared plans would not be shared")
	}
}

// arrayTypes names pgtype's array type of each element type the batch statements cast to.
var arrayTypes = map[string]string{"text": "_text", "integer": "_int4", "boolean": "_bool", "timestamptz": "_timestamptz"}

// BenchmarkUpdateSubsEncode measures the Go side of one batch of 500 expiry warnings, each
// recording its pending effects (a notification and an audit entry, as the engine's
// warning does): building the statement's parameters and encoding them as pgx sends them
// (binary, with the types the statement's casts name). No server is involved.
func BenchmarkUpdateSubsEncode(b *testing.B) {
	now := time.Date(2031, 7, 1, 9, 0, 0, 0, time.UTC)
	const n = 500
	changes := make([]billing.SubscriptionChange, n)
	idx := make([]int, n)
	for i := range changes {
		id, user := fmt.Sprintf("s%07d", i), fmt.Sprintf("u%07d", i)
		end := now.Add(48 * time.Hour)
		read := billing.Subscription{ID: id, UserID: user, Status: billing.SubscriptionStatusActive, PlanID: "p1",
			CurrentPeriodStart: billing.AddMonths(end, -1), CurrentPeriodEnd: end, UpdatedAt: now.AddDate(0, -1, 0)}
		changed := read
		changed.ExpirationWarningSent, changed.ExpirationWarningDays, changed.UpdatedAt = true, 3, now
		changes[i] = billing.SubscriptionChange{Read: read, Changed: changed, ClaimToken: "claim",
			Effects: &billing.Effects{Token: "eff-" + id, Status: billing.SubscriptionStatusActive, PeriodEnd: end, CreatedAt: now,
				Notifications: []billing.Notification{{Kind: billing.NotificationKind("expiring"), Key: "expiring:" + id + ":1945",
					To: billing.Recipient{UserID: user, Email: user + "@example.com", Name: "U"},
					Data: billing.NotificationData{PlanName: "Pro", SubscriptionID: id, Amount: billing.Money{Amount: 4990, Currency: "BRL"},
						PeriodStart: read.CurrentPeriodStart, PeriodEnd: end, DaysRemaining: 2}}},
				Audit: []billing.AuditEntry{{ID: "warn:" + id, Action: billing.AuditWarningSent, EntityType: "subscription", EntityID: id,
					UserID: user, Actor: "renewkit", CreatedAt: now, Details: map[string]any{"days_remaining": 2, "period_end": end, "plan_id": "p1"}}}}}
	}
	m := pgtype.NewMap()
	cast := regexp.MustCompile(`\$(\d+)::([a-z]+)\[\]`)
	b.ReportAllocs()
	for b.Loop() {
		for i := range idx {
			idx[i] = i
		}
		q, args, err := updateSubsArgs(changes, idx)
		if err != nil {
			b.Fatal(err)
		}
		oids := map[string]uint32{}
		for _, c := range cast.FindAllStringSubmatch(q, -1) {
			t, ok := m.TypeForName(arrayTypes[c[2]])
			if !ok {
				b.Fatalf("no type %s", c[2])
			}
			oids[c[1]] = t.OID
		}
		var buf []byte
		for i, a := range args {
			oid, ok := oids[fmt.Sprint(i+1)]
			if !ok {
				b.Fatalf("parameter $%d has no cast in the statement", i+1)
			}
			if buf, err = m.Encode(oid, pgtype.BinaryFormatCode, a, buf[:0]); err != nil {
				b.Fatalf("$%d: %v", i+1, err)
			}
		}
	}
}
