package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"optin/internal/bolt"
	"optin/internal/config"
	"optin/internal/postgres"
	"optin/internal/postgres/pgtest"
)

// TestCLIMigrateStatus: migrate status names the store and its schema
// version. On PostgreSQL an empty database is at version 0 with every
// migration to apply, and up to date after the first start; a bbolt
// store has none.
func TestCLIMigrateStatus(t *testing.T) {
	if !pgtest.Asked() {
		path, _ := writeConfig(t)
		out, err := runCLI(t, "migrate", "status", "--config", path)
		if want := "schema version: " + bolt.SchemaVersion + ";"; err != nil || !strings.Contains(out, "store: bolt") || !strings.Contains(out, want) {
			t.Errorf("migrate status on bolt: got %q, %v, want the store and %q", out, err, want)
		}
		return
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "optin.yaml")
	yml := "data_dir: " + filepath.Join(dir, "data") + "\nstore: postgres\npostgres:\n  url: " + testPG.EmptyDatabase(t) + "\n"
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	latest := postgres.SchemaVersion()
	st, err := postgres.ReadStatus(t.Context(), testPG.EmptyDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "migrate", "status", "--config", path)
	want := fmt.Sprintf("schema version: 0; this optin's: %d\n%d migration(s) to apply", latest, st.Pending)
	if err != nil || !strings.Contains(out, "store: postgres (postgres://postgres@127.0.0.1:") || !strings.Contains(out, want) {
		t.Errorf("migrate status on an empty database: got %q, %v, want %q", out, err, want)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	_, stop := startApp(t, cfg)
	stop()
	out, err = runCLI(t, "migrate", "status", "--config", path)
	want = fmt.Sprintf("schema version: %d; this optin's: %d\nup to date", latest, latest)
	if err != nil || !strings.Contains(out, want) {
		t.Errorf("migrate status after the first start: got %q, %v, want %q", out, err, want)
	}

	// A newer optin applied a version this one skipped (work in
	// parallel landed in another order): newer, though not higher.
	pool, err := postgres.Connect(t.Context(), cfg.Postgres.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(t.Context(), `INSERT INTO schema_migrations (version, name)
		SELECT min(v), 'newer.sql' FROM generate_series(1, $1::int) v WHERE v NOT IN (SELECT version FROM schema_migrations)`, latest); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, "migrate", "status", "--config", path)
	want = "the database is newer than this optin (1 version(s) it does not know)"
	if err != nil || !strings.Contains(out, want) {
		t.Errorf("migrate status after a newer optin applied a skipped version: got %q, %v, want %q", out, err, want)
	}
}

// TestCLIMigrateToPostgres: migrate --to postgres copies a bbolt data_dir
// into the database of a store: postgres config and prints what it
// copied; with a bbolt config it says what the config must be.
func TestCLIMigrateToPostgres(t *testing.T) {
	dir := t.TempDir()
	bolt := filepath.Join(dir, "bolt.yaml")
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(bolt, []byte("data_dir: "+data+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "migrate", "--to", "postgres", "--config", bolt); err == nil || !strings.Contains(err.Error(), "store: postgres") {
		t.Errorf("migrate --to postgres with a bbolt config: got %v, want it to ask for store: postgres", err)
	}
	if !pgtest.Asked() {
		return
	}
	if _, err := runCLI(t, "import", "--config", bolt, writeCSV(t, 3)); err != nil {
		t.Fatalf("import: %v", err)
	}
	pg := filepath.Join(dir, "pg.yaml")
	yml := "data_dir: " + data + "\nstore: postgres\npostgres:\n  url: " + testPG.EmptyDatabase(t) + "\n"
	if err := os.WriteFile(pg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "migrate", "--to", "postgres", "--config", pg)
	if err != nil || !regexp.MustCompile(`subscribers +3\n`).MatchString(out) || !strings.Contains(out, "ledger: 3 events, chain verified") {
		t.Errorf("migrate --to postgres: got %q, %v, want 3 subscribers and 3 events verified", out, err)
	}
	out, err = runCLI(t, "verify", "--config", pg)
	if err != nil || !strings.Contains(out, "3") {
		t.Errorf("verify on the copy: got %q, %v", out, err)
	}
}
