package app

import (
	"os"
	"testing"

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
