package testkit

import (
	"sync"
	"time"
)

// Epoch is a fixed instant tests start their clocks at: a Wednesday, 09:00 UTC.
var Epoch = time.Date(2030, time.January, 16, 9, 0, 0, 0, time.UTC)

// Day is 24 hours.
const Day = 24 * time.Hour

// Clock is a billing.Clock whose time only moves when told to. It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t (backwards too).
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Advance moves the clock forward by d and returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}
