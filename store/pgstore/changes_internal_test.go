package pgstore

import (
	"regexp"
	"testing"
	"time"

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
