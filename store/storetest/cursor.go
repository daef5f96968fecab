package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// cursorSeed returns a cohort of records in three groups sharing a period end each
// (base-3h, base-2h, base-1h), shuffled, and the same records in claim order (period end,
// then ID). IDs are fixed-width lower-case hex (ObjectIDs in MongoDB) or, with format
// "pos-%05x", strings; every store orders either alike.
func cursorSeed(format string) (seed, order []billing.Subscription) {
	const perEnd = 5
	for g := range 3 {
		end := base.Add(time.Duration(g-3) * time.Hour)
		for i := range perEnd {
			order = append(order, newSub(fmt.Sprintf(format, 0xc0000+g*16+i*2), end))
		}
	}
	seed = slices.Clone(order)
	for i := range seed { // a fixed shuffle: insertion order is not claim order
		j := (i*7 + 3) % len(seed)
		seed[i], seed[j] = seed[j], seed[i]
	}
	return seed, order
}

// claimAfter claims the active records past after.
func claimAfter(ctx context.Context, t *testing.T, st billing.Store, token string, after billing.ClaimPosition, limit int) []billing.Subscription {
	t.Helper()
	got, err := st.ClaimSubscriptions(ctx, billing.ClaimParams{
		Filter: billing.SubscriptionFilter{Statuses: []billing.SubscriptionStatus{billing.SubscriptionStatusActive}},
		Token:  token, Now: base, LeaseUntil: base.Add(time.Hour), Limit: limit, After: after,
	})
	must(t, err, "ClaimSubscriptions(after %v %s)", after.PeriodEnd, after.ID)
	return got
}

func (s *suite) cursorTests() []test {
	return []test{
		// Claims that each start past the last record of the previous one walk the records
		// in claim order, each once, ties on the period end broken by ID; each claim's
		// records are released at once, so nothing but the position keeps them out.
		{"WalkInClaimOrder", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			walk(ctx, t, st, "%024x")
		}},
		{"WalkInClaimOrderStringIDs", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			walk(ctx, t, st, "pos-%05x")
		}},
		// A position returns exactly the records past it: those with its period end and a
		// greater ID, then every later end; whether a record has the position's ID or not.
		{"ExactlyThePastRecords", ownStore, func(ctx context.Context, t *testing.T, st billing.Store) {
			seed, order := cursorSeed("%024x")
			insertSubs(ctx, t, st, seed...)
			mid := order[7]                     // the middle of the second end's group
			gap := mid.ID[:len(mid.ID)-1] + "5" // between order[7] (…14) and order[8] (…16)
			cases := []struct {
				name  string
				after billing.ClaimPosition
				want  []billing.Subscription
			}{
				{"record", billing.ClaimPosition{PeriodEnd: mid.CurrentPeriodEnd, ID: mid.ID}, order[8:]},
				{"between ids", billing.ClaimPosition{PeriodEnd: mid.CurrentPeriodEnd, ID: gap}, order[8:]},
				{"last of an end", billing.ClaimPosition{PeriodEnd: order[9].CurrentPeriodEnd, ID: order[9].ID}, order[10:]},
				{"before any id of an end", billing.ClaimPosition{PeriodEnd: mid.CurrentPeriodEnd, ID: "0"}, order[5:]},
				{"between ends", billing.ClaimPosition{PeriodEnd: order[4].CurrentPeriodEnd.Add(time.Minute), ID: order[14].ID}, order[5:]},
				{"last record", billing.ClaimPosition{PeriodEnd: order[14].CurrentPeriodEnd, ID: order[14].ID}, nil},
			}
			for i, c := range cases {
				got := claimAfter(ctx, t, st, fmt.Sprintf("exact-%d", i), c.after, 100)
				if want := subIDs(c.want); !slices.Equal(subIDs(got), want) {
					t.Fatalf("%s: claim after (%v, %s) returned\n %v\nwant\n %v", c.name, c.after.PeriodEnd, c.after.ID, subIDs(got), want)
				}
				must(t, st.ReleaseClaims(ctx, fmt.Sprintf("exact-%d", i)), "ReleaseClaims")
			}
		}},
	}
}

// walk claims records of cursorSeed(format) 4 at a time, each claim starting past the last
// record of the previous one.
func walk(ctx context.Context, t *testing.T, st billing.Store, format string) {
	t.Helper()
	seed, order := cursorSeed(format)
	insertSubs(ctx, t, st, seed...)
	var walked []string
	var after billing.ClaimPosition
	for len(walked) <= len(order) { // past it, some record came twice
		got := claimAfter(ctx, t, st, "walk", after, 4)
		must(t, st.ReleaseClaims(ctx, "walk"), "ReleaseClaims")
		walked = append(walked, subIDs(got)...)
		if len(got) < 4 {
			break
		}
		last := got[len(got)-1]
		after = billing.ClaimPosition{PeriodEnd: last.CurrentPeriodEnd, ID: last.ID}
	}
	if want := subIDs(order); !slices.Equal(walked, want) {
		t.Fatalf("claims walking by position returned\n %v\nwant each record once, in claim order\n %v", walked, want)
	}
}
