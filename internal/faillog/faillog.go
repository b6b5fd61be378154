// Package faillog logs the failures of an operation repeated every second
// or faster (reading the outbox, stepping campaigns, requests refused
// while the store is unavailable) the way an operator can read them: a
// line when it starts failing, then at most a line a minute while failures
// go on, counting them, and a line when it works again. Logged at every
// attempt, a database outage or a schema a newer optin migrated filled
// the log with a line per worker per poll and per request refused.
//
// Every failure counted is logged: a minute after a line, one more says
// how many failed since, even when none fails after them (unless the
// process ends first). The clock must be monotonic (time.Now): a wall
// clock stepped back would arm the next line for as long. An operation
// whose successes are not reported (a request refused: the requests that
// succeed say nothing) ends a failure when it has not failed for a minute.
package faillog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// every is how often a failure that goes on is logged again.
const every = time.Minute

// Log is the failure log of one repeated operation. Make one with New;
// it is safe for concurrent use.
type Log struct {
	log   *slog.Logger
	msg   string
	now   func() time.Time
	level slog.Level
	// after calls f once d has passed, unless stopped: time.AfterFunc,
	// which tests replace.
	after func(d time.Duration, f func()) (stop func() bool)

	mu      sync.Mutex
	failing bool
	since   time.Time // when the failure began
	last    time.Time // the last failed attempt
	lastErr error     // its error
	args    []any     // its attributes
	logged  time.Time // when it was last logged
	failed  int       // attempts failed since it was last logged
	total   int       // attempts failed since it began
	stop    func() bool
	// gen numbers the timers: one that fired after OK stopped it (or
	// after a newer one was armed) flushes nothing.
	gen int
}

// New returns the failure log of the operation msg names (the message of
// each line, "outbox: reading due jobs"), written to log at error level
// at the times now gives.
func New(log *slog.Logger, msg string, now func() time.Time) *Log {
	return &Log{log: log, msg: msg, now: now, level: slog.LevelError, after: afterFunc}
}

// NewWarn is New at warning level: for failures the caller already
// answers well, such as a request refused with 503 while the store is
// unavailable.
func NewWarn(log *slog.Logger, msg string, now func() time.Time) *Log {
	l := New(log, msg, now)
	l.level = slog.LevelWarn
	return l
}

func afterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

// Failed records a failed attempt with err, and args (slog's key-value
// pairs) that describe it. It is logged when the operation was working
// until now (OK, or no failure for a minute); otherwise it is counted,
// and the count logged a minute after the last line.
func (l *Log) Failed(err error, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.failing && now.Sub(l.last) >= every && l.failed == 0 {
		l.failing, l.total = false, 0 // quiet for a minute: a new failure
	}
	l.last, l.lastErr, l.args = now, err, args
	l.total++
	if !l.failing {
		l.failing, l.since, l.logged = true, now, now
		l.log.Log(context.Background(), l.level, l.msg, append(args, "err", err)...)
		return
	}
	l.failed++
	if l.stop == nil {
		l.gen++
		gen := l.gen
		l.stop = l.after(max(l.logged.Add(every).Sub(now), 0), func() { l.flush(gen) })
	}
}

// flush logs the failures counted since the last line, if the timer gen
// is still the one armed.
func (l *Log) flush(gen int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen != l.gen {
		return
	}
	l.stop = nil
	if !l.failing || l.failed == 0 {
		return
	}
	now := l.now()
	l.log.Log(context.Background(), l.level, l.msg+": repeated", append(l.args, "err", l.lastErr,
		"failed_meanwhile", l.failed, "failing_for", now.Sub(l.since).Round(time.Second))...)
	l.logged, l.failed = now, 0
}

// OK records a successful attempt: after failures, a line saying the
// operation works again, with how many failed.
func (l *Log) OK() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.failing {
		return
	}
	if l.stop != nil {
		l.stop()
		l.stop = nil
	}
	l.gen++ // a timer that fired meanwhile flushes nothing
	now := l.now()
	l.log.Info(l.msg+": works again", "failed", l.total, "failing_for", now.Sub(l.since).Round(time.Millisecond))
	l.failing, l.failed, l.total = false, 0, 0
}
