package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"optin/internal/app"
	"optin/internal/bolt"
	"optin/internal/config"
	"optin/internal/postgres"
)

const migrateSynopsis = "optin migrate status [--config FILE] | optin migrate --to postgres [--config FILE]"

// migrateCmd runs "optin migrate status": the store's schema version and
// whether migrations wait for the next start; or "optin migrate --to
// postgres": a copy of the bbolt database into PostgreSQL.
func migrateCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 1 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(stdout, "usage: "+migrateSynopsis)
		fmt.Fprintln(stdout, "\n--to postgres copies the bbolt database in data_dir into the empty PostgreSQL database\nof postgres.url; the config is the one the instances will run with (store: postgres).")
		return nil
	}
	if len(args) > 0 && (args[0] == "--to" || strings.HasPrefix(args[0], "--to=")) {
		return migrateTo(ctx, args, stdout)
	}
	if len(args) == 0 || args[0] != "status" {
		return errors.New("usage: " + migrateSynopsis)
	}
	cfg, err := loadConfig(flag.NewFlagSet("migrate status", flag.ContinueOnError), migrateSynopsis, args[1:], stdout)
	if err != nil {
		return err
	}
	if cfg.Store != config.StorePostgres {
		fmt.Fprintf(stdout, "store: bolt (data_dir %s)\nschema version: %s; optin converts an older bbolt file itself when it opens it (docs/operations.md, Upgrades)\n",
			cfg.DataDir, bolt.SchemaVersion)
		return nil
	}
	st, err := postgres.ReadStatus(ctx, cfg.Postgres.URL)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "store: postgres (%s)\nschema version: %d; this optin's: %d\n", cfg.PostgresURLRedacted(), st.Current, st.Latest)
	switch {
	case st.Unknown > 0:
		fmt.Fprintf(stdout, "the database is newer than this optin (%d version(s) it does not know): this optin will not start on it; upgrade optin\n", st.Unknown)
	case st.Current == st.Latest && st.Pending == 0:
		fmt.Fprintln(stdout, "up to date")
	case st.Current <= st.Latest:
		fmt.Fprintf(stdout, "%d migration(s) to apply: the next optin serve applies them, under a lock, before it serves\n", st.Pending)
	default:
		fmt.Fprintln(stdout, "the database is newer than this optin: this optin will not start on it; upgrade optin")
	}
	return nil
}

// migrateTo runs "optin migrate --to postgres".
func migrateTo(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	to := fs.String("to", "", "the store to copy the bbolt database into: postgres")
	cfg, err := loadConfig(fs, migrateSynopsis, args, stdout)
	if err != nil {
		return err
	}
	if *to != config.StorePostgres {
		return fmt.Errorf("migrate --to %q: only postgres is a target", *to)
	}
	rep, err := app.MigrateToPostgres(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "copied %s into %s, each count checked in the copy before it committed:\n", filepath.Join(cfg.DataDir, "optin.db"), cfg.PostgresURLRedacted())
	for _, kind := range slices.Sorted(maps.Keys(rep.Counts)) {
		fmt.Fprintf(stdout, "  %-28s %d\n", kind, rep.Counts[kind])
	}
	fmt.Fprintf(stdout, "ledger: %d events, chain verified\nstart the instances with this config; keep the bbolt files as a backup\n", rep.Ledger.Events)
	return nil
}
