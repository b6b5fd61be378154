// Package testclock is the one clock tests inject into optin's packages
// in place of time.Now: race-safe, and moved only by the test.
package testclock

import (
	"sync"
	"time"
)

// Clock is a clock a test moves. Its zero value is not usable; make one
// with At or Real.
type Clock struct {
	mu     sync.Mutex
	t      time.Time
	real   bool
	offset time.Duration
}

// At returns a clock standing at t until the test moves it.
func At(t time.Time) *Clock { return &Clock{t: t} }

// Real returns a clock that follows the real time plus the offset the
// test adds with Advance: for a whole service under test, whose timers
// must still fire.
func Real() *Clock { return &Clock{real: true} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.real {
		return time.Now().Add(c.offset)
	}
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.real {
		c.offset += d
		return
	}
	c.t = c.t.Add(d)
}

// Set moves a clock made with At to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}
