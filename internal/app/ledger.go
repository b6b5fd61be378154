package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"optin/internal/config"
	"optin/internal/consent"
	"optin/internal/ledger"
	"optin/internal/postgres"
)

// ledgerKeySecret names the ledger's first signing key seed in a
// PostgreSQL store, made once by the first instance and shared by all, as
// the token key is. A rotation adds ledger_key_2, 3, ...: the highest
// signs, the others stay as retired keys.
const ledgerKeySecret = "ledger_key_1"

// ledgerKeyPrefix starts the names of the ledger's key seeds.
const ledgerKeyPrefix = "ledger_key_"

// pgLedgerKeys returns the ledger's key seeds in a PostgreSQL store, the
// signing one (the highest number) first, making the first when there is
// none (unless the store is read-only: then a missing key is an error).
func pgLedgerKeys(ctx context.Context, pg *postgres.DB) ([][]byte, error) {
	stored, err := pg.Secrets(ctx, ledgerKeyPrefix)
	if err != nil {
		return nil, err
	}
	if len(stored) == 0 {
		seed, err := pg.Secret(ctx, ledgerKeySecret)
		return [][]byte{seed}, err
	}
	nums := make([]int, 0, len(stored))
	for name := range stored {
		if n, err := strconv.Atoi(strings.TrimPrefix(name, ledgerKeyPrefix)); err == nil && n > 0 {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	slices.Reverse(nums)
	seeds := make([][]byte, len(nums))
	for i, n := range nums {
		seeds[i] = stored[ledgerKeyPrefix+strconv.Itoa(n)]
	}
	return seeds, nil
}

// RotateLedgerKey makes a new signing key for the ledger's heads; the
// current one is kept as a retired key, so heads it signed stay
// checkable (GET /ledger/key lists both). It takes effect when optin
// (every instance) starts again. bbolt keeps the keys in
// data_dir/secrets.json, PostgreSQL in the database.
func RotateLedgerKey(ctx context.Context, cfg config.Config) error {
	if cfg.Store != config.StorePostgres {
		path := filepath.Join(cfg.DataDir, "secrets.json")
		f, err := readSecretsFile(path)
		if err != nil {
			return fmt.Errorf("%w: has optin run on this data_dir?", err)
		}
		f.LedgerKeys = append([]string{randomKey()}, f.LedgerKeys...)
		return writeSecrets(path, f)
	}
	db, err := postgres.Open(ctx, cfg.Postgres.URL, postgres.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	seeds, err := pgLedgerKeys(ctx, db)
	if err != nil {
		return err
	}
	stored, err := db.Secrets(ctx, ledgerKeyPrefix)
	if err != nil {
		return err
	}
	next := len(seeds) + 1
	for stored[ledgerKeyPrefix+strconv.Itoa(next)] != nil {
		next++
	}
	_, err = db.Secret(ctx, ledgerKeyPrefix+strconv.Itoa(next))
	return err
}

// headInterval is how often a head is signed and published while events
// arrive.
const headInterval = time.Minute

// newHeads returns the ledger's head signer for db, with its keys from
// secrets.json (bbolt) or the database (PostgreSQL), and a witness in
// ledger.witness_dir when it is set. It returns nil when a read-only open
// finds no key (a data_dir never served by this optin).
func newHeads(cfg config.Config, db consent.Store, readOnly bool, now func() time.Time, log *slog.Logger) (*ledger.Heads, error) {
	var seeds [][]byte
	if pg, ok := db.(*postgres.DB); ok {
		ctx, cancel := context.WithTimeout(context.Background(), openTimeout)
		defer cancel()
		var err error
		if seeds, err = pgLedgerKeys(ctx, pg); err != nil {
			return nil, err
		}
	} else {
		read := loadSecrets
		if readOnly {
			read = readSecrets
		}
		sec, err := read(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		seeds = sec.ledgerKeys
	}
	if len(seeds) == 0 {
		return nil, nil
	}
	keys := make([]ledger.Key, len(seeds))
	for i, seed := range seeds {
		var err error
		if keys[i], err = ledger.NewKey(seed); err != nil {
			return nil, fmt.Errorf("ledger key %d: %w", i+1, err)
		}
	}
	// Every head also goes to the webhook endpoints that take ledger_head
	// (none: nothing is queued).
	witnesses := []ledger.Witness{webhookWitness{db}}
	if cfg.Ledger.WitnessDir != "" {
		witnesses = append(witnesses, ledger.DirWitness{Dir: cfg.Ledger.WitnessDir})
	}
	return ledger.NewHeads(db, ledgerOrigin(cfg.BaseURL), keys, now, log, witnesses...)
}

// webhookWitness hands each published head to the webhook endpoints that
// take ledger_head, through the durable delivery queue.
type webhookWitness struct{ store consent.WebhookStore }

// Witness queues h's deliveries.
func (w webhookWitness) Witness(ctx context.Context, h ledger.Head) error {
	return w.store.QueueHead(ctx, string(h.Note))
}

// ledgerOrigin names the log in its heads: base_url's host and path,
// then /ledger (C2SP tlog-checkpoint origins are schemeless URLs).
func ledgerOrigin(baseURL string) string {
	u, err := url.Parse(baseURL)
	if err != nil {
		return "optin/ledger"
	}
	return u.Host + u.Path + "/ledger"
}
