package scheduler

import (
	"testing"
	"time"
)

func mustSchedule(t *testing.T, spec string, loc *time.Location) *schedule {
	t.Helper()
	s, err := parseSchedule(spec, loc, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestScheduleOncePerDayAcrossDST(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	sp, _ := time.LoadLocation("America/Sao_Paulo")
	cases := []struct {
		loc      *time.Location
		spec     string
		from, to time.Time
		// want is the tick on the transition day (the 2nd of the window).
		want string
	}{
		{ny, "30 2 * * *", time.Date(2025, 3, 8, 0, 0, 0, 0, ny), time.Date(2025, 3, 11, 0, 0, 0, 0, ny), "2025-03-09T03:30:00-04:00"},
		{ny, "0 2 * * *", time.Date(2025, 3, 8, 0, 0, 0, 0, ny), time.Date(2025, 3, 11, 0, 0, 0, 0, ny), "2025-03-09T03:00:00-04:00"},
		{ny, "0 9 * * *", time.Date(2025, 3, 8, 0, 0, 0, 0, ny), time.Date(2025, 3, 11, 0, 0, 0, 0, ny), "2025-03-09T09:00:00-04:00"},
		{ny, "30 1 * * *", time.Date(2025, 11, 1, 0, 0, 0, 0, ny), time.Date(2025, 11, 4, 0, 0, 0, 0, ny), "2025-11-02T01:30:00-04:00"},
		{ny, "0 1 * * *", time.Date(2025, 11, 1, 0, 0, 0, 0, ny), time.Date(2025, 11, 4, 0, 0, 0, 0, ny), "2025-11-02T01:00:00-04:00"},
		{ny, "0 2 * * *", time.Date(2025, 11, 1, 0, 0, 0, 0, ny), time.Date(2025, 11, 4, 0, 0, 0, 0, ny), "2025-11-02T02:00:00-05:00"},
		{sp, "0 0 * * *", time.Date(2025, 11, 1, 12, 0, 0, 0, sp), time.Date(2025, 11, 4, 12, 0, 0, 0, sp), "2025-11-03T00:00:00-03:00"},
	}
	for _, tc := range cases {
		s := mustSchedule(t, tc.spec, tc.loc)
		perDay := map[string]int{}
		var ticks []time.Time
		for n := s.Next(tc.from); n.Before(tc.to); n = s.Next(n) {
			perDay[n.In(tc.loc).Format("2006-01-02")]++
			ticks = append(ticks, n)
		}
		if len(ticks) != 3 {
			t.Fatalf("%s %s: %d ticks in three days: %v", tc.loc, tc.spec, len(ticks), ticks)
		}
		for d, n := range perDay {
			if n != 1 {
				t.Errorf("%s %s: %d ticks on %s", tc.loc, tc.spec, n, d)
			}
		}
		if got := ticks[1].In(tc.loc).Format(time.RFC3339); got != tc.want {
			t.Errorf("%s %s: transition-day tick %s, want %s", tc.loc, tc.spec, got, tc.want)
		}
		// Prev agrees with Next.
		for _, tk := range ticks {
			if p := s.Prev(tk); !p.Equal(tk) {
				t.Errorf("%s: Prev(%v) = %v", tc.spec, tk, p)
			}
			if p := s.Prev(tk.Add(-time.Second)); !p.Before(tk) {
				t.Errorf("%s: Prev(%v - 1s) = %v", tc.spec, tk, p)
			}
		}
	}
}

func TestScheduleHourlyThroughDST(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	s := mustSchedule(t, "0 * * * *", ny)
	// Fall back: the repeated 01:00 hour runs once, so the 25-hour day has 24 ticks.
	from := time.Date(2025, 11, 2, 0, 0, 0, 0, ny).Add(-time.Second)
	to := time.Date(2025, 11, 3, 0, 0, 0, 0, ny)
	n := 0
	prev := from
	for tk := s.Next(from); tk.Before(to); tk = s.Next(tk) {
		if !tk.After(prev) {
			t.Fatalf("ticks not increasing: %v after %v", tk, prev)
		}
		prev = tk
		n++
	}
	if n != 24 {
		t.Errorf("fall-back day: %d hourly ticks, want 24", n)
	}
	// Spring forward: 02:00 does not exist and runs at 03:00 together with 03:00: 23 ticks.
	from = time.Date(2025, 3, 9, 0, 0, 0, 0, ny).Add(-time.Second)
	to = time.Date(2025, 3, 10, 0, 0, 0, 0, ny)
	n = 0
	for tk := s.Next(from); tk.Before(to); tk = s.Next(tk) {
		n++
	}
	if n != 23 {
		t.Errorf("spring-forward day: %d hourly ticks, want 23", n)
	}
}

func TestScheduleMonthlyAndWeeklyPrev(t *testing.T) {
	sp, _ := time.LoadLocation("America/Sao_Paulo")
	s := mustSchedule(t, "0 4 1 * *", sp)
	now := time.Date(2025, 10, 20, 12, 0, 0, 0, sp)
	if got, want := s.Prev(now), time.Date(2025, 10, 1, 4, 0, 0, 0, sp); !got.Equal(want) {
		t.Errorf("monthly Prev = %v, want %v", got, want)
	}
	w := mustSchedule(t, "0 3 * * 0", sp)
	if got, want := w.Prev(now), time.Date(2025, 10, 19, 3, 0, 0, 0, sp); !got.Equal(want) {
		t.Errorf("weekly Prev = %v, want %v", got, want)
	}
	leap := mustSchedule(t, "0 0 29 2 *", time.UTC)
	if got, want := leap.Prev(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)), time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("leap-day Prev = %v, want %v", got, want)
	}
}

func TestScheduleDescribe(t *testing.T) {
	for spec, want := range map[string]string{
		"0 9 * * *":        "cron[day_of_week='*', hour='9', minute='0']",
		"0 3 * * 0":        "cron[day_of_week='sun', hour='3', minute='0']",
		"0 4 1 * *":        "cron[day='1', day_of_week='*', hour='4', minute='0']",
		"*/5 8-18 * 1 1-5": "cron[month='1', day_of_week='mon-fri', hour='8-18', minute='*/5']",
		"@daily":           "cron[@daily]",
	} {
		if got := mustSchedule(t, spec, time.UTC).describe(); got != want {
			t.Errorf("describe(%q) = %q, want %q", spec, got, want)
		}
	}
	for _, bad := range []string{"", "61 * * * *", "* * *", "0 0 30 2 *", "CRON_TZ=UTC 0 9 * * *"} {
		if _, err := parseSchedule(bad, time.UTC, time.Now()); err == nil {
			t.Errorf("parseSchedule(%q) accepted", bad)
		}
	}
}
