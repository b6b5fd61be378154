package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"optin/internal/config"
	"optin/internal/consent"
	"optin/internal/ledger"
	"optin/internal/postgres"
)

// ledgerKeySecret names the ledger's signing key seed in a PostgreSQL
// store, made once by the first instance and shared by all, as the token
// key is.
const ledgerKeySecret = "ledger_key_1"

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
		seed, err := pg.Secret(ctx, ledgerKeySecret)
		if err != nil {
			return nil, err
		}
		seeds = [][]byte{seed}
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
