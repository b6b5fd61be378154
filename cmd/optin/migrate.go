package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"optin/internal/bolt"
	"optin/internal/config"
	"optin/internal/postgres"
)

const migrateSynopsis = "optin migrate status [--config FILE]"

// migrateCmd runs "optin migrate status": the store's schema version and
// whether migrations wait for the next start.
func migrateCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 1 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(stdout, "usage: "+migrateSynopsis)
		return nil
	}
	if len(args) == 0 || args[0] != "status" {
		return errors.New("usage: " + migrateSynopsis)
	}
	cfg, err := loadConfig(flag.NewFlagSet("migrate status", flag.ContinueOnError), migrateSynopsis, args[1:], stdout)
	if err != nil {
		return err
	}
	if cfg.Store != config.StorePostgres {
		fmt.Fprintf(stdout, "store: bolt (data_dir %s)\nschema version: %s; a bbolt store has no migrations\n",
			cfg.DataDir, bolt.SchemaVersion)
		return nil
	}
	st, err := postgres.ReadStatus(ctx, cfg.Postgres.URL)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "store: postgres (%s)\nschema version: %d; this optin's: %d\n", cfg.PostgresURLRedacted(), st.Current, st.Latest)
	switch {
	case st.Current == st.Latest && st.Pending == 0:
		fmt.Fprintln(stdout, "up to date")
	case st.Current <= st.Latest:
		fmt.Fprintf(stdout, "%d migration(s) to apply: the next optin serve applies them, under a lock, before it serves\n", st.Pending)
	default:
		fmt.Fprintln(stdout, "the database is newer than this optin: this optin will not start on it; upgrade optin")
	}
	return nil
}
