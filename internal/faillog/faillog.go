// Package faillog logs the failures of an operation a worker repeats
// every second or faster (reading the outbox, stepping campaigns) the way
// an operator can read them: a line when it starts failing, a line a
// minute while it goes on, with how many attempts failed meanwhile, and
// a line when it works again. Logged at every attempt, a database outage
// or a schema a newer optin migrated filled the log with a line per
// worker per poll, and with a line per request refused.
//
// An operation whose successes are not reported (a request that finds
// the store unavailable: the requests that succeed say nothing) ends a
// failure when it has not failed for a minute.
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

	mu      sync.Mutex
	failing bool
	since   time.Time // when the failure began
	last    time.Time // the last failed attempt
	logged  time.Time // when it was last logged
	failed  int       // attempts failed since it was last logged
	total   int       // attempts failed since it began
}

// New returns the failure log of the operation msg names (the message of
// each line, "outbox: reading due jobs"), written to log at error level
// at the times now gives.
func New(log *slog.Logger, msg string, now func() time.Time) *Log {
	return &Log{log: log, msg: msg, now: now, level: slog.LevelError}
}

// NewWarn is New at warning level: for failures the caller already
// answers well, such as a request refused with 503 while the store is
// unavailable.
func NewWarn(log *slog.Logger, msg string, now func() time.Time) *Log {
	return &Log{log: log, msg: msg, now: now, level: slog.LevelWarn}
}

// Failed records a failed attempt with err, and args (slog's key-value
// pairs) that describe it: logged when the operation was working until
// now (OK, or no failure for a minute), or when it was last logged a
// minute ago or more; otherwise counted.
func (l *Log) Failed(err error, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.failing && now.Sub(l.last) >= every {
		l.failing, l.failed, l.total = false, 0, 0
	}
	l.last = now
	l.failed++
	l.total++
	switch {
	case !l.failing:
		l.failing, l.since = true, now
		l.log.Log(context.Background(), l.level, l.msg, append(args, "err", err)...)
	case now.Sub(l.logged) >= every:
		l.log.Log(context.Background(), l.level, l.msg+": still failing", append(args, "err", err, "failed_meanwhile", l.failed,
			"failing_for", now.Sub(l.since).Round(time.Second))...)
	default:
		return
	}
	l.logged, l.failed = now, 0
}

// OK records a successful attempt: after failures, a line saying the
// operation works again.
func (l *Log) OK() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.failing {
		return
	}
	now := l.now()
	l.log.Info(l.msg+": works again", "failed", l.total, "failing_for", now.Sub(l.since).Round(time.Millisecond))
	l.failing, l.failed, l.total = false, 0, 0
}
