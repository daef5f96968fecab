package scheduler

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-co-op/gocron/v2"
)

// schedule is a five-field cron spec read in a time zone. It matches wall-clock times, so a
// daily job runs exactly once on the days clocks change:
//
//   - spring forward: a time inside the gap (02:30 in New York on the second Sunday of
//     March) runs at the same distance after the transition (03:30 EDT);
//   - fall back: a time that occurs twice (01:30 on the first Sunday of November) runs at
//     its first occurrence only.
//
// The same schedule drives gocron (through gocron.WithCronImplementation), catch-up and the
// next_run the admin API reports, so all three agree.
type schedule struct {
	spec string
	loc  *time.Location
	// wall is the spec evaluated in UTC over "naive" wall-clock times: times whose fields
	// are the zone's wall clock, written as if they were UTC, where no DST exists.
	wall gocron.Cron
}

func parseSchedule(spec string, loc *time.Location, now time.Time) (*schedule, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, errors.New("empty cron spec: use five fields such as \"0 9 * * *\" (09:00 daily)")
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, fmt.Errorf("cron spec %q names a time zone: drop the prefix and set scheduler.Config.Location instead", spec)
	}
	c := gocron.NewDefaultCron(false)
	if err := c.IsValid(spec, time.UTC, naive(now, time.UTC)); err != nil {
		return nil, fmt.Errorf("cron spec %q is not a valid five-field spec (minute hour day-of-month month day-of-week), e.g. \"30 0 * * *\": %w", spec, err)
	}
	return &schedule{spec: spec, loc: loc, wall: c}, nil
}

// naive returns t's wall clock in loc as a UTC time.
func naive(t time.Time, loc *time.Location) time.Time {
	w := t.In(loc)
	return time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), time.UTC)
}

// place maps a naive wall-clock time back to an instant in loc. An ambiguous time (fall
// back) resolves to its first occurrence; a time inside a spring-forward gap moves forward
// by the gap's length.
func place(n time.Time, loc *time.Location) time.Time {
	t := time.Date(n.Year(), n.Month(), n.Day(), n.Hour(), n.Minute(), n.Second(), n.Nanosecond(), loc)
	if got := naive(t, loc); got.Before(n) {
		t = t.Add(n.Sub(got)) // Go normalised a gap time backwards; move it past the gap
	}
	return t
}

// Next returns the first tick strictly after t (in loc), or the zero time if none.
func (s *schedule) Next(t time.Time) time.Time {
	n := naive(t, s.loc)
	for range 10000 {
		n = s.wall.Next(n)
		if n.IsZero() {
			return time.Time{}
		}
		if r := place(n, s.loc); r.After(t) {
			return r
		}
	}
	return time.Time{}
}

// Prev returns the latest tick at or before t, or the zero time if none in nine years.
func (s *schedule) Prev(t time.Time) time.Time {
	for _, back := range []time.Duration{2 * time.Hour, 26 * time.Hour, 8 * 24 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour, 9 * 366 * 24 * time.Hour} {
		cur := s.Next(t.Add(-back))
		if cur.IsZero() || cur.After(t) {
			continue
		}
		for {
			n := s.Next(cur)
			if n.IsZero() || n.After(t) {
				return cur
			}
			cur = n
		}
	}
	return time.Time{}
}

// describe renders the spec the way the original application's API showed APScheduler triggers:
// cron[day_of_week='*', hour='9', minute='0'].
func (s *schedule) describe() string {
	f := strings.Fields(s.spec)
	if len(f) != 5 {
		return "cron[" + s.spec + "]"
	}
	var parts []string
	if f[3] != "*" {
		parts = append(parts, "month='"+f[3]+"'")
	}
	if f[2] != "*" {
		parts = append(parts, "day='"+f[2]+"'")
	}
	parts = append(parts, "day_of_week='"+weekdayNames(f[4])+"'", "hour='"+f[1]+"'", "minute='"+f[0]+"'")
	return "cron[" + strings.Join(parts, ", ") + "]"
}

// gocronCron adapts a schedule to gocron's Cron interface so gocron arms its timers from
// the same ticks.
type gocronCron struct{ s *schedule }

var _ gocron.Cron = gocronCron{}

func (c gocronCron) IsValid(string, *time.Location, time.Time) error { return nil }
func (c gocronCron) Next(last time.Time) time.Time                   { return c.s.Next(last) }

var weekdays = map[string]string{"0": "sun", "1": "mon", "2": "tue", "3": "wed", "4": "thu", "5": "fri", "6": "sat", "7": "sun"}

// weekdayNames writes numeric days of the week as APScheduler's names: "0" -> "sun",
// "1-5" -> "mon-fri".
func weekdayNames(f string) string {
	return replaceDigits(f)
}

func replaceDigits(f string) string {
	var b strings.Builder
	for i, tok := range strings.Split(f, ",") {
		if i > 0 {
			b.WriteByte(',')
		}
		step := ""
		if base, s, ok := strings.Cut(tok, "/"); ok {
			tok, step = base, "/"+s
		}
		lo, hi, isRange := strings.Cut(tok, "-")
		if n, ok := weekdays[lo]; ok {
			lo = n
		}
		if n, ok := weekdays[hi]; ok && isRange {
			hi = n
		}
		b.WriteString(lo)
		if isRange {
			b.WriteString("-" + hi)
		}
		b.WriteString(step)
	}
	return b.String()
}
