package main

import (
	"os"
	"testing"

	"optin/internal/postgres/pgtest"
)

// The CLI tests run on bbolt, or with OPTIN_TEST_STORE=postgres on a
// private PostgreSQL server, each config file on a database of its own.

// testPG is that server; nil on bbolt, or when its binaries are missing
// outside CI (then the tests skip).
var testPG *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.MainIfAsked(m, &testPG)) }

// storeYAML returns the config lines that put a config file on the store
// the tests run on: none for bbolt, a fresh database for PostgreSQL.
func storeYAML(t *testing.T) string {
	t.Helper()
	if !pgtest.Asked() {
		return ""
	}
	return "store: postgres\npostgres:\n  url: " + testPG.Database(t) + "\n"
}

// boltOnly skips a test of what only the bbolt store has (its files).
func boltOnly(t *testing.T, what string) {
	t.Helper()
	if pgtest.Asked() {
		t.Skipf("%s: a bbolt store's files; this run is on PostgreSQL", what)
	}
}
