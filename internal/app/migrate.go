package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"optin/internal/bolt"
	"optin/internal/config"
	"optin/internal/consent"
	"optin/internal/postgres"
)

// MigrateReport is what MigrateToPostgres copied and how the copy's
// ledger verified.
type MigrateReport struct {
	Counts map[string]int
	Ledger consent.LedgerReport
}

// MigrateToPostgres copies the bbolt database in cfg.DataDir (with its
// secrets.json) into the PostgreSQL database cfg names, which must be
// empty: cfg is the configuration the instances will run with (store:
// postgres), data_dir still pointing at the bbolt files. The copy is one
// transaction, checked before it commits (the ledger chain, a count of
// every kind of record); the suppression key, the generated token key
// and the ledger's signing key go with it, so suppressed addresses stay
// suppressed, mailed links keep working and heads already handed out
// still check. The bbolt database is only read, and optin must not be
// running on it.
func MigrateToPostgres(ctx context.Context, cfg config.Config) (MigrateReport, error) {
	if cfg.Store != config.StorePostgres {
		return MigrateReport{}, errors.New("migrate --to postgres: the config must say store: postgres and give postgres.url (the config the instances will run with); data_dir names the bbolt database to copy")
	}
	path := dbPath(cfg.DataDir)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return MigrateReport{}, fmt.Errorf("no database at %s: is data_dir right?", path)
	}
	sec, err := readSecrets(cfg.DataDir)
	if err != nil {
		return MigrateReport{}, err
	}
	src, err := bolt.Open(path, bolt.Options{ReadOnly: true, HMACKey: sec.hmacKey})
	if err != nil {
		return MigrateReport{}, fmt.Errorf("%s: %w", path, err)
	}
	defer src.Close()
	dst, err := postgres.Open(ctx, cfg.Postgres.URL, postgres.Options{HMACKey: sec.hmacKey})
	if err != nil {
		return MigrateReport{}, err
	}
	defer func() { dst.Close() }() // the last one opened
	secrets := map[string][]byte{postgres.SecretHMACKey: sec.hmacKey}
	for _, k := range sec.tokenKeys {
		secrets["token_key_"+k.ID] = k.Secret
	}
	// Every ledger key, so heads already handed out stay checkable:
	// secrets.json lists the signing key first, PostgreSQL numbers them
	// oldest first.
	for i, seed := range sec.ledgerKeys {
		secrets[ledgerKeyPrefix+strconv.Itoa(len(sec.ledgerKeys)-i)] = seed
	}
	var rep MigrateReport
	if rep.Counts, err = dst.Load(ctx, src.Dump(ctx), secrets); err != nil {
		return MigrateReport{}, err
	}
	// Opened again, the store builds what it derives from the records
	// (the ledger's Merkle tree), as on any first start.
	if err := dst.Close(); err != nil {
		return rep, err
	}
	if dst, err = postgres.Open(ctx, cfg.Postgres.URL, postgres.Options{HMACKey: sec.hmacKey}); err != nil {
		return rep, err
	}
	if rep.Ledger, err = dst.VerifyLedger(ctx); err != nil {
		return rep, err
	}
	if !rep.Ledger.OK {
		return rep, fmt.Errorf("the copied ledger does not verify (%v): do not use this database; drop it and migrate again", rep.Ledger.Broken)
	}
	return rep, nil
}
