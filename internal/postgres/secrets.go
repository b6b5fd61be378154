package postgres

import (
	"context"
	"fmt"
	"io"
	"slices"
)

// SecretHMACKey names the key of the suppression list's address hashes.
const SecretHMACKey = "hmac_key"

// Secret returns the 32-byte secret stored under name, generating it
// first when there is none: whichever instance asks first stores it, and
// every instance gets the same one. optin keeps the keys that every
// instance must share here (the suppression list's HMAC key, token keys
// the configuration does not give). A store opened read-only only reads:
// a missing secret is an error.
func (db *DB) Secret(ctx context.Context, name string) ([]byte, error) {
	if !db.readOnly {
		if err := db.SchemaMoved(); err != nil {
			return nil, err
		}
		fresh := make([]byte, 32)
		if _, err := io.ReadFull(db.rand, fresh); err != nil {
			return nil, fmt.Errorf("postgres: secret %s: %w", name, err)
		}
		// The read below is a statement of its own: after an insert
		// that found another instance's row, its snapshot sees that row.
		_, err := db.pool.Exec(ctx, "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, fresh)
		if err != nil {
			return nil, fmt.Errorf("postgres: secret %s: %w", name, err)
		}
	}
	var v []byte
	if err := db.pool.QueryRow(ctx, "SELECT value FROM secrets WHERE name = $1", name).Scan(&v); err != nil {
		return nil, fmt.Errorf("postgres: secret %s: %w", name, err)
	}
	return v, nil
}

// Secrets returns the stored secrets whose names start with prefix, by
// name (the ledger's signing keys, ledger_key_1, ledger_key_2, ...).
func (db *DB) Secrets(ctx context.Context, prefix string) (map[string][]byte, error) {
	out := map[string][]byte{}
	var name string
	var v []byte
	err := db.read(ctx).each("SELECT name, value FROM secrets WHERE starts_with(name, $1)", []any{prefix}, []any{&name, &v},
		func() error {
			out[name] = slices.Clone(v)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("postgres: secrets %s*: %w", prefix, err)
	}
	return out, nil
}
