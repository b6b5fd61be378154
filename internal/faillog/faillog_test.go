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

// TestFailuresLoggedOnceAMinute: a hundred failures within a second make
// one line; one a minute after the last line makes a second, counting
// the failures since; success makes one line saying so, and another
// success none; a failure after that is logged at once.
func TestFailuresLoggedOnceAMinute(t *testing.T) {
	var buf bytes.Buffer
	clk := testclock.At(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), "outbox: reading due jobs", clk.Now)
	lines := func() []string { return strings.Split(strings.TrimSpace(buf.String()), "\n") }

	l.OK()
	if buf.Len() != 0 {
		t.Fatalf("success before any failure logged: %s", buf.String())
	}
	down := errors.New("connection refused")
	for range 100 {
		l.Failed(down)
		clk.Advance(10 * time.Millisecond)
	}
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], "level=ERROR") ||
		!strings.Contains(got[0], `msg="outbox: reading due jobs"`) || !strings.Contains(got[0], "connection refused") {
		t.Fatalf("100 failures in a second: want one error line, got:\n%s", buf.String())
	}
	clk.Advance(59 * time.Second)
	l.Failed(down)
	if got := lines(); len(got) != 2 || !strings.Contains(got[1], "still failing") ||
		!strings.Contains(got[1], "failed_meanwhile=100") || !strings.Contains(got[1], "failing_for=1m0s") {
		t.Fatalf("a failure a minute on: want a second line counting the 100 since the first line, got:\n%s", buf.String())
	}
	clk.Advance(time.Second)
	l.Failed(down)
	l.OK()
	l.OK()
	if got := lines(); len(got) != 3 || !strings.Contains(got[2], "level=INFO") ||
		!strings.Contains(got[2], "works again") || !strings.Contains(got[2], "failed=102") {
		t.Fatalf("success after failures: want one line saying so, got:\n%s", buf.String())
	}
	l.Failed(errors.New("timeout"))
	if got := lines(); len(got) != 4 || !strings.Contains(got[3], "timeout") {
		t.Fatalf("a failure after recovery: want it logged at once, got:\n%s", buf.String())
	}
}

// TestQuietMinuteEndsFailure: without OK, a failure a minute after the
// last one starts a new failure, logged at once as such, with the
// attributes of its attempt, at the level the log was made with.
func TestQuietMinuteEndsFailure(t *testing.T) {
	var buf bytes.Buffer
	clk := testclock.At(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	l := NewWarn(slog.New(slog.NewTextHandler(&buf, nil)), "request refused: the store is unavailable", clk.Now)
	lines := func() []string { return strings.Split(strings.TrimSpace(buf.String()), "\n") }
	down := errors.New("unavailable")
	for range 30 {
		l.Failed(down, "route", "/f/:form")
		clk.Advance(time.Second)
	}
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], "level=WARN") || !strings.Contains(got[0], "route=/f/:form") {
		t.Fatalf("30 failures in 30 s: want one warning with the route, got:\n%s", buf.String())
	}
	clk.Advance(time.Minute)
	l.Failed(down, "route", "/confirm/:token")
	if got := lines(); len(got) != 2 || strings.Contains(got[1], "still failing") || !strings.Contains(got[1], "route=/confirm/:token") {
		t.Fatalf("a failure after a quiet minute: want it logged as a new one, got:\n%s", buf.String())
	}
}
