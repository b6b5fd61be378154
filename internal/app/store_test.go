package app

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"optin/internal/config"
	"optin/internal/postgres/pgtest"
)

// The end-to-end tests run on bbolt, or with OPTIN_TEST_STORE=postgres on
// a private PostgreSQL server, in a database of their own for each
// service (.ci/run runs them both ways).

// testPG is that server; nil on bbolt, or when its binaries are missing
// outside CI (then the tests skip).
var testPG *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.MainIfAsked(m, &testPG)) }

// useTestStore points cfg at a fresh store of the kind the tests run on.
func useTestStore(t testing.TB, cfg *config.Config) {
	t.Helper()
	if pgtest.Asked() {
		cfg.Store, cfg.Postgres.URL = config.StorePostgres, testPG.Database(t)
	}
}

// boltOnly skips a test of what only the bbolt store has (its file).
func boltOnly(t *testing.T, what string) {
	t.Helper()
	if pgtest.Asked() {
		t.Skipf("%s: a bbolt store's file; this run is on PostgreSQL", what)
	}
}

// TestReportSlowOpen: an open that takes longer than the interval is
// reported while it runs, with how far the store says it has come, and
// when it ends; a quick one says nothing.
func TestReportSlowOpen(t *testing.T) {
	lines := make(chan string, 100)
	log := slog.New(slog.NewTextHandler(lineWriter(lines), nil))
	var progress openProgress
	err := reportSlow(log, time.Millisecond, &progress, func() error {
		progress.set("ledger events", 20000)
		select { // held open until the first report is out
		case l := <-lines:
			if !strings.Contains(l, "still opening the database") || !strings.Contains(l, `step="ledger events" records=20000`) {
				return fmt.Errorf("first log line %q, want the still-opening report with the step and its records", l)
			}
			return nil
		case <-time.After(patience):
			return errors.New("no report while the open ran")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for l := range drain(lines) {
		if strings.Contains(l, "database open") {
			return
		}
	}
	t.Errorf("no line saying the slow open ended")

	quiet := make(chan string, 100)
	if err := reportSlow(slog.New(slog.NewTextHandler(lineWriter(quiet), nil)), time.Hour, &openProgress{}, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if len(quiet) != 0 {
		t.Errorf("a quick open logged %q, want nothing", <-quiet)
	}
}

// lineWriter sends each write (one log record) on lines.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}

// drain returns what is on lines now, as a closed channel to range over.
func drain(lines chan string) chan string {
	out := make(chan string, cap(lines))
	for {
		select {
		case l := <-lines:
			out <- l
		default:
			close(out)
			return out
		}
	}
}
