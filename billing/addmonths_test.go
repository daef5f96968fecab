package billing_test

import (
	"testing"
	"time"

	"github.com/renewkit/renewkit/billing"
)

// TestAddMonths is the month arithmetic table: the day clamps to the end of the target month.
func TestAddMonths(t *testing.T) {
	d := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 10, 30, 0, 0, time.UTC) }
	cases := []struct {
		from time.Time
		n    int
		want time.Time
	}{
		{d(2030, time.January, 31), 1, d(2030, time.February, 28)},
		{d(2028, time.January, 31), 1, d(2028, time.February, 29)}, // leap year
		{d(2030, time.January, 30), 1, d(2030, time.February, 28)},
		{d(2030, time.March, 31), 1, d(2030, time.April, 30)},
		{d(2030, time.January, 15), 1, d(2030, time.February, 15)},
		{d(2030, time.December, 31), 1, d(2031, time.January, 31)},
		{d(2030, time.November, 30), 3, d(2031, time.February, 28)},
		{d(2030, time.August, 31), 6, d(2031, time.February, 28)},
		{d(2028, time.February, 29), 12, d(2029, time.February, 28)},
		{d(2030, time.March, 31), -1, d(2030, time.February, 28)},
		{d(2030, time.May, 31), 0, d(2030, time.May, 31)},
	}
	for _, c := range cases {
		if got := billing.AddMonths(c.from, c.n); !got.Equal(c.want) {
			t.Errorf("AddMonths(%s, %d) = %s, want %s", c.from.Format(time.DateOnly), c.n, got.Format(time.DateOnly), c.want.Format(time.DateOnly))
		}
	}
	for cycle, months := range map[billing.Cycle]int{billing.CycleMonthly: 1, billing.CycleQuarterly: 3, billing.CycleSemiannual: 6, billing.CycleYearly: 12} {
		from := d(2030, time.January, 31)
		if got, want := billing.AddCycle(from, cycle), billing.AddMonths(from, months); !got.Equal(want) {
			t.Errorf("AddCycle(%s) = %s, want %s", cycle, got, want)
		}
	}
	// The zone and wall-clock time are kept.
	sp := time.FixedZone("BRT", -3*3600)
	if got := billing.AddMonths(time.Date(2030, time.January, 31, 23, 15, 0, 0, sp), 1); got.Location() != sp || got.Hour() != 23 || got.Day() != 28 {
		t.Errorf("AddMonths in BRT = %v", got)
	}
}
