package faillog

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"optin/internal/testclock"
)

// timers stands in for time.AfterFunc: the test fires what is due.
type timers struct {
	clk *testclock.Clock
	at  []time.Time
	fs  []func()
}

func (ts *timers) after(d time.Duration, f func()) func() bool {
	ts.at, ts.fs = append(ts.at, ts.clk.Now().Add(d)), append(ts.fs, f)
	i := len(ts.fs) - 1
	return func() bool { ts.fs[i] = nil; return true }
}

// fire runs the timers due by the clock.
func (ts *timers) fire() {
	for i, f := range ts.fs {
		if f != nil && !ts.clk.Now().Before(ts.at[i]) {
			ts.fs[i] = nil
			f()
		}
	}
}

// newTestLog returns a Log of msg on a clock and timers the test moves,
// and its lines so far.
func newTestLog(msg string, warn bool) (*Log, *testclock.Clock, *timers, func() []string) {
	var buf bytes.Buffer
	clk := testclock.At(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	log := slog.New(slog.NewTextHandler(&buf, nil))
	l := New(log, msg, clk.Now)
	if warn {
		l = NewWarn(log, msg, clk.Now)
	}
	ts := &timers{clk: clk}
	l.after = ts.after
	lines := func() []string {
		if buf.Len() == 0 {
			return nil
		}
		return strings.Split(strings.TrimSpace(buf.String()), "\n")
	}
	return l, clk, ts, lines
}

// TestFailuresLoggedOnceAMinute: a hundred failures within a second make
// one line; a minute after it, one more counts the 99 others; success
// makes one line saying so, and another success none; a failure after
// that is logged at once.
func TestFailuresLoggedOnceAMinute(t *testing.T) {
	l, clk, ts, lines := newTestLog("outbox: reading due jobs", false)
	l.OK()
	if got := lines(); got != nil {
		t.Fatalf("success before any failure logged: %q", got)
	}
	down := errors.New("connection refused")
	for range 100 {
		l.Failed(down)
		clk.Advance(10 * time.Millisecond)
		ts.fire()
	}
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], "level=ERROR") ||
		!strings.Contains(got[0], `msg="outbox: reading due jobs"`) || !strings.Contains(got[0], "connection refused") {
		t.Fatalf("100 failures in a second: want one error line, got:\n%s", strings.Join(got, "\n"))
	}
	clk.Advance(59 * time.Second)
	ts.fire()
	if got := lines(); len(got) != 2 || !strings.Contains(got[1], "repeated") ||
		!strings.Contains(got[1], "failed_meanwhile=99") || !strings.Contains(got[1], "failing_for=1m0s") {
		t.Fatalf("a minute on: want a second line counting the 99 failures after the first, got:\n%s", strings.Join(got, "\n"))
	}
	l.Failed(down)
	l.OK()
	l.OK()
	ts.fire()
	if got := lines(); len(got) != 3 || !strings.Contains(got[2], "level=INFO") ||
		!strings.Contains(got[2], "works again") || !strings.Contains(got[2], "failed=101") {
		t.Fatalf("success after failures: want one line saying so, got:\n%s", strings.Join(got, "\n"))
	}
	l.Failed(errors.New("timeout"))
	if got := lines(); len(got) != 4 || !strings.Contains(got[3], "timeout") || strings.Contains(got[3], "repeated") {
		t.Fatalf("a failure after recovery: want it logged at once, got:\n%s", strings.Join(got, "\n"))
	}
}

// TestCountedFailuresLogged: without OK (requests refused), failures
// counted after a line are logged a minute after it even when no more
// come; a failure after a quiet minute starts a new failure, logged at
// once with the attributes of its attempt, at the log's level.
func TestCountedFailuresLogged(t *testing.T) {
	l, clk, ts, lines := newTestLog("request refused: the store is unavailable", true)
	down := errors.New("unavailable")
	for range 10 {
		l.Failed(down, "route", "/f/:form")
		clk.Advance(time.Second)
	}
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], "level=WARN") || !strings.Contains(got[0], "route=/f/:form") {
		t.Fatalf("10 failures in 10 s: want one warning with the route, got:\n%s", strings.Join(got, "\n"))
	}
	clk.Advance(50 * time.Second)
	ts.fire()
	if got := lines(); len(got) != 2 || !strings.Contains(got[1], "failed_meanwhile=9") || !strings.Contains(got[1], "level=WARN") {
		t.Fatalf("a minute after the first line: want the other 9 counted, got:\n%s", strings.Join(got, "\n"))
	}
	clk.Advance(2 * time.Minute)
	ts.fire()
	l.Failed(down, "route", "/confirm/:token")
	if got := lines(); len(got) != 3 || strings.Contains(got[2], "repeated") || !strings.Contains(got[2], "route=/confirm/:token") {
		t.Fatalf("a failure after a quiet minute: want it logged as a new one, got:\n%s", strings.Join(got, "\n"))
	}
}

// TestStaleTimerFlushesNothing: a timer that fired while OK ran (so its
// stop came too late) logs nothing when it gets the lock, even after a
// new failure armed a timer of its own; that one still logs its count.
func TestStaleTimerFlushesNothing(t *testing.T) {
	l, clk, ts, lines := newTestLog("outbox: reading due jobs", false)
	down := errors.New("down")
	l.Failed(down)
	clk.Advance(time.Second)
	l.Failed(down) // counted: a timer armed
	stale := ts.fs[0]
	clk.Advance(time.Minute)
	l.OK() // stops the timer, which has fired already: stale runs late
	l.Failed(down)
	clk.Advance(time.Second)
	l.Failed(down) // counted: a new timer
	stale()
	if got := lines(); len(got) != 3 || strings.Contains(got[2], "repeated") {
		t.Fatalf("a stale timer after OK and a new failure: want no line from it, got:\n%s", strings.Join(got, "\n"))
	}
	clk.Advance(time.Minute)
	ts.fire()
	if got := lines(); len(got) != 4 || !strings.Contains(got[3], "failed_meanwhile=1") {
		t.Fatalf("the new timer: want its count logged, got:\n%s", strings.Join(got, "\n"))
	}
}
