package billing

import "time"

// Clock tells the time. One clock drives the jobs, the processor, the scheduler and webhook
// tolerance checks, so tests move time instead of sleeping. A clockwork.FakeClock satisfies it.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// SystemClock returns the wall clock.
func SystemClock() Clock { return systemClock{} }

// TruncateTime returns t in UTC at millisecond precision, the precision every store keeps.
func TruncateTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Millisecond)
}
