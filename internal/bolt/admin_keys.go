package bolt

import (
	"context"
	"sort"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// touchEvery is how often a key's last-used time is written at most: a
// read request should not cost a durable write each time.
const touchEvery = time.Minute

// NewAPIKey makes a new random API key with name and role, stores its hash
// and returns the secret, which is shown once and never stored. Names are
// 1-64 printable characters and unique among live keys (EConflict).
func (db *DB) NewAPIKey(ctx context.Context, a consent.Actor, name string, role consent.Role) (string, consent.APIKeyInfo, error) {
	secret, key, err := consent.NewAPIKey(db.rand, name, role)
	if err != nil {
		return "", consent.APIKeyInfo{}, err
	}
	err = db.update(ctx, func(tx *bbolt.Tx) error {
		key.Created = db.Now()
		dup := false
		err := tx.Bucket(bucketAPIKeys).ForEach(func(_, v []byte) error {
			var k consent.APIKey
			if err := decode(v, &k); err != nil {
				return err
			}
			dup = dup || (k.Name == key.Name && k.Revoked.IsZero())
			return nil
		})
		if err != nil {
			return err
		}
		if dup {
			return consent.Errorf(consent.EConflict, "a live API key named %q exists", key.Name)
		}
		if err := put(tx, bucketAPIKeys, []byte(key.Hash), key); err != nil {
			return err
		}
		return db.audit(tx, a, "apikey.create", consent.KeyID(key.Hash)+" "+string(role), 1)
	})
	if err != nil {
		return "", consent.APIKeyInfo{}, err
	}
	return secret, consent.KeyInfo(key), nil
}

// APIKeys returns every API key, revoked ones included, by creation time.
func (db *DB) APIKeys(ctx context.Context) ([]consent.APIKeyInfo, error) {
	out := []consent.APIKeyInfo{}
	err := db.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketAPIKeys).ForEach(func(_, v []byte) error {
			var k consent.APIKey
			if err := decode(v, &k); err != nil {
				return err
			}
			out = append(out, consent.KeyInfo(k))
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// RevokeAPIKey revokes the key whose ID (hash prefix) is id; it stops
// working at once. Revoking a revoked key changes nothing. An unknown id
// is ENotFound.
func (db *DB) RevokeAPIKey(ctx context.Context, a consent.Actor, id string) error {
	return db.update(ctx, func(tx *bbolt.Tx) error {
		if len(id) != 16 {
			return consent.Errorf(consent.ENotFound, "API key %q not found", consent.Truncate(id, 64))
		}
		c := tx.Bucket(bucketAPIKeys).Cursor()
		k, v := c.Seek([]byte(id))
		if !hasPrefix(k, []byte(id)) {
			return consent.Errorf(consent.ENotFound, "API key %q not found", id)
		}
		var key consent.APIKey
		if err := decode(v, &key); err != nil {
			return err
		}
		if !key.Revoked.IsZero() {
			return nil
		}
		key.Revoked = db.Now()
		if err := put(tx, bucketAPIKeys, []byte(key.Hash), key); err != nil {
			return err
		}
		return db.audit(tx, a, "apikey.revoke", id, 1)
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
	return db.update(ctx, func(tx *bbolt.Tx) error {
		var k consent.APIKey
		if ok, err := get(tx, bucketAPIKeys, []byte(key.Hash), &k); err != nil || !ok {
			return err
		}
		if now.Sub(k.LastUsed) < touchEvery { // another request was first
			return nil
		}
		k.LastUsed = now
		return put(tx, bucketAPIKeys, []byte(k.Hash), k)
	})
}
