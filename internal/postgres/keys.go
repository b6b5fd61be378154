package postgres

import (
	"context"
	"sort"
	"strconv"
	"time"

	"optin/internal/consent"
)

// touchEvery is how often a key's last-used time is written at most: a
// read request should not cost a durable write each time.
const touchEvery = time.Minute

func putAPIKey(t *tx, k consent.APIKey) error {
	b, err := encode(k)
	if err != nil {
		return err
	}
	return t.exec("INSERT INTO api_keys (hash, data) VALUES ($1, $2) ON CONFLICT (hash) DO UPDATE SET data = EXCLUDED.data", k.Hash, b)
}

// apiKeys returns every API key in hash order.
func apiKeys(c conn) ([]consent.APIKey, error) {
	var keys []consent.APIKey
	var b []byte
	err := c.each("SELECT data FROM api_keys ORDER BY hash", nil, []any{&b}, func() error {
		var k consent.APIKey
		if err := decode(b, &k); err != nil {
			return err
		}
		keys = append(keys, k)
		return nil
	})
	return keys, err
}

// APIKey returns the live (not revoked) API key with the given hash, or an
// EUnauthorized *Error.
func (db *DB) APIKey(ctx context.Context, hash string) (consent.APIKey, error) {
	var key consent.APIKey
	ok, err := db.read(ctx).get(&key, "SELECT data FROM api_keys WHERE hash = $1", hash)
	if err != nil {
		return key, err
	}
	if !ok || !key.Revoked.IsZero() {
		return consent.APIKey{}, consent.Errorf(consent.EUnauthorized, "missing or invalid API key")
	}
	return key, nil
}

// NewAPIKey makes a new random API key with name and role, stores its hash
// and returns the secret, which is shown once and never stored. Names are
// 1-64 printable characters and unique among live keys (EConflict).
func (db *DB) NewAPIKey(ctx context.Context, a consent.Actor, name string, role consent.Role) (string, consent.APIKeyInfo, error) {
	secret, key, err := consent.NewAPIKey(db.rand, name, role)
	if err != nil {
		return "", consent.APIKeyInfo{}, err
	}
	err = db.update(ctx, func(t *tx) error {
		key.Created = db.Now()
		keys, err := apiKeys(t.conn)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if k.Name == key.Name && k.Revoked.IsZero() {
				return consent.Errorf(consent.EConflict, "a live API key named %q exists", key.Name)
			}
		}
		if err := putAPIKey(t, key); err != nil {
			return err
		}
		return db.audit(t, a, "apikey.create", consent.KeyID(key.Hash)+" "+string(role), 1)
	})
	if err != nil {
		return "", consent.APIKeyInfo{}, err
	}
	return secret, consent.KeyInfo(key), nil
}

// APIKeys returns every API key, revoked ones included, by creation time.
func (db *DB) APIKeys(ctx context.Context) ([]consent.APIKeyInfo, error) {
	keys, err := apiKeys(db.read(ctx))
	out := []consent.APIKeyInfo{}
	for _, k := range keys {
		out = append(out, consent.KeyInfo(k))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// RevokeAPIKey revokes the key whose ID (hash prefix) is id; it stops
// working at once. Revoking a revoked key changes nothing. An unknown id
// is ENotFound.
func (db *DB) RevokeAPIKey(ctx context.Context, a consent.Actor, id string) error {
	return db.update(ctx, func(t *tx) error {
		if len(id) != 16 {
			return consent.Errorf(consent.ENotFound, "API key %q not found", consent.Truncate(id, 64))
		}
		var key consent.APIKey
		ok, err := t.get(&key, "SELECT data FROM api_keys WHERE starts_with(hash, $1) ORDER BY hash LIMIT 1", id)
		if err != nil {
			return err
		}
		if !ok {
			return consent.Errorf(consent.ENotFound, "API key %q not found", id)
		}
		if !key.Revoked.IsZero() {
			return nil
		}
		key.Revoked = db.Now()
		if err := putAPIKey(t, key); err != nil {
			return err
		}
		return db.audit(t, a, "apikey.revoke", id, 1)
	})
}

// TouchAPIKey records that the key with hash was used now, unless its
// last-used time is less than a minute old: at most one write per key and
// minute, however many requests it makes.
func (db *DB) TouchAPIKey(ctx context.Context, key consent.APIKey) error {
	now := db.Now()
	if now.Sub(key.LastUsed) < touchEvery {
		return nil
	}
	return db.update(ctx, func(t *tx) error {
		var k consent.APIKey
		if ok, err := t.get(&k, "SELECT data FROM api_keys WHERE hash = $1", key.Hash); err != nil || !ok {
			return err
		}
		if now.Sub(k.LastUsed) < touchEvery { // another request was first
			return nil
		}
		k.LastUsed = now
		return putAPIKey(t, k)
	})
}

// AuditRead records a bulk read of personal data, such as an export or a
// backup, in a write of its own.
func (db *DB) AuditRead(ctx context.Context, a consent.Actor, action, target string, count int) error {
	return db.update(ctx, func(t *tx) error { return db.audit(t, a, action, target, count) })
}

// Audit returns up to limit audit entries, newest first, older than the
// entry numbered cursor ("" starts at the newest). next is the cursor of
// the following page, "" after the oldest entry. A malformed cursor is
// EInvalid.
func (db *DB) Audit(ctx context.Context, cursor string, limit int) (entries []consent.AuditEntry, next string, err error) {
	before := uint64(1 << 63)
	if cursor != "" {
		if before, err = strconv.ParseUint(cursor, 10, 64); err != nil || before == 0 {
			return nil, "", consent.Errorf(consent.EInvalid, "cursor must be a value from next_cursor")
		}
	}
	entries = []consent.AuditEntry{}
	more := false
	var seq int64
	var b []byte
	err = db.read(ctx).each("SELECT seq, data FROM audit WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
		[]any{int64(min(before, 1<<63-1)), max(limit, 0) + 1}, []any{&seq, &b}, func() error {
			if len(entries) == limit {
				more = true
				return nil
			}
			var e consent.AuditEntry
			if err := decode(b, &e); err != nil {
				return err
			}
			e.Seq = uint64(seq)
			entries = append(entries, e)
			return nil
		})
	if more && len(entries) > 0 {
		next = strconv.FormatUint(entries[len(entries)-1].Seq, 10)
	}
	return entries, next, err
}
