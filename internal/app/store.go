package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"time"

	"optin/internal/bolt"
	"optin/internal/config"
	"optin/internal/consent"
	"optin/internal/postgres"
	"optin/internal/token"
)

// openTimeout bounds opening a PostgreSQL store: connecting, and waiting
// for another instance's schema migration.
const openTimeout = time.Minute

// tokenKeySecret names the generated token key in a PostgreSQL store;
// its key id is k1, as in a bbolt store's secrets.json.
const tokenKeySecret = "token_key_k1"

// dbPath is the database file's path in data directory dir.
func dbPath(dir string) string { return filepath.Join(dir, "optin.db") }

// openStore opens the store cfg names (store: bolt or postgres) and
// returns it with the token keys: the configured ones, else the
// generated ones. Every instance on one PostgreSQL database must sign and
// hash alike, so there the generated keys (token key, suppression HMAC
// key) live in the database, made once by the first instance; bbolt keeps
// them in data_dir/secrets.json. With readOnly the store and its secrets
// are only read, and nothing is created. offline says nothing else
// writes while it is open (a CLI command: bbolt's file lock keeps the
// service out; see bolt.Options.Offline). progress, when not nil, hears
// how far the rebuild of a bbolt store's counters and indexes has come
// (bolt.Options.Progress).
func openStore(cfg config.Config, now func() time.Time, readOnly, offline bool, progress func(step string, done int64)) (consent.Store, []token.Key, error) {
	from, err := mail.ParseAddress(cfg.Mail.From)
	if err != nil {
		return nil, nil, fmt.Errorf("mail.from: %w", err)
	}
	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	policy := consent.DefaultPolicy()
	policy.ConfirmTTL = time.Duration(cfg.Tokens.ConfirmTTL)
	policy.NoticeWithin = time.Duration(cfg.Notices.Art14Within)
	configured, err := configuredKeys(cfg)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Store == config.StorePostgres {
		return openPostgres(cfg, postgres.Options{Now: now, ReadOnly: readOnly, MessageIDDomain: domain, Policy: policy,
			Lease: time.Duration(cfg.Postgres.OutboxLease)}, configured)
	}
	read := loadSecrets
	if readOnly {
		if _, err := os.Stat(dbPath(cfg.DataDir)); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("no database at %s: is data_dir right?", dbPath(cfg.DataDir))
		}
		read = readSecrets
	}
	sec, err := read(cfg.DataDir)
	if err != nil {
		return nil, nil, err
	}
	db, err := bolt.Open(dbPath(cfg.DataDir), bolt.Options{Now: now, ReadOnly: readOnly, Offline: offline,
		MessageIDDomain: domain, Policy: policy, HMACKey: sec.hmacKey, Progress: progress})
	if err != nil {
		return nil, nil, err
	}
	if configured == nil {
		configured = sec.tokenKeys
	}
	return db, configured, nil
}

// openPostgres opens the PostgreSQL store with o, its HMAC key and, when
// keys is nil, its token key from the database.
func openPostgres(cfg config.Config, o postgres.Options, keys []token.Key) (consent.Store, []token.Key, error) {
	ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
	defer cancel()
	db, err := postgres.Open(ctx, cfg.Postgres.URL, o)
	if err != nil {
		return nil, nil, err
	}
	if keys == nil {
		secret, err := db.Secret(ctx, tokenKeySecret)
		if err != nil {
			db.Close()
			return nil, nil, err
		}
		keys = []token.Key{{ID: "k1", Secret: secret}}
	}
	return db, keys, nil
}

// configuredKeys returns the token keys of the configuration, nil when
// it gives none.
func configuredKeys(cfg config.Config) ([]token.Key, error) {
	raw, err := cfg.KeyBytes()
	if err != nil || len(raw) == 0 {
		return nil, err
	}
	keys := make([]token.Key, len(raw))
	for i, r := range raw {
		keys[i] = token.Key{ID: cfg.Tokens.Keys[i].ID, Secret: r}
	}
	return keys, nil
}
