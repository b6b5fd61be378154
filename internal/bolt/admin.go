package bolt

import (
	"context"
	"sort"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// Bootstrap prepares a database for first use. When it has no topic yet,
// it creates topic and form. When keyHash is not empty and the database has
// no API key (revoked ones included), it creates the admin API key whose
// hash is keyHash. It reports whether it created the key.
func (db *DB) Bootstrap(ctx context.Context, topic consent.Topic, form consent.Form, keyHash string) (bool, error) {
	created := false
	err := db.updateCatalog(ctx, func(tx *bbolt.Tx) error {
		created = false
		now := db.Now()
		if tx.Bucket(bucketTopics).Stats().KeyN == 0 {
			topic.Created, form.Created, form.Updated = now, now, now
			if err := put(tx, bucketTopics, []byte(topic.ID), topic); err != nil {
				return err
			}
			if err := put(tx, bucketForms, []byte(form.ID), form); err != nil {
				return err
			}
		}
		if keyHash == "" || tx.Bucket(bucketAPIKeys).Stats().KeyN > 0 {
			return nil
		}
		key := consent.APIKey{Hash: keyHash, Name: "bootstrap", Role: consent.RoleAdmin, Created: now}
		if err := put(tx, bucketAPIKeys, []byte(keyHash), key); err != nil {
			return err
		}
		created = true
		return nil
	})
	return created, err
}

// APIKey returns the live (not revoked) API key with the given hash, or an
// EUnauthorized *Error.
func (db *DB) APIKey(ctx context.Context, hash string) (consent.APIKey, error) {
	var key consent.APIKey
	err := db.view(func(tx *bbolt.Tx) error {
		ok, err := get(tx, bucketAPIKeys, []byte(hash), &key)
		if err != nil {
			return err
		}
		if !ok || !key.Revoked.IsZero() {
			return consent.Errorf(consent.EUnauthorized, "missing or invalid API key")
		}
		return nil
	})
	return key, err
}

// Topic returns the topic id, or an ENotFound *Error.
func (db *DB) Topic(ctx context.Context, id string) (consent.Topic, error) {
	if t, ok := db.catalog.topic(id); ok {
		return t, nil
	}
	gen := db.catalog.generation()
	var t consent.Topic
	err := db.view(func(tx *bbolt.Tx) error { return mustGet(tx, bucketTopics, id, &t, "topic") })
	if err == nil {
		db.catalog.keepTopic(gen, t)
	}
	return t, err
}

// Topics returns all topics ordered by id.
func (db *DB) Topics(ctx context.Context) ([]consent.Topic, error) {
	var ts []consent.Topic
	err := db.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTopics).ForEach(func(k, v []byte) error {
			var t consent.Topic
			if err := decode(v, &t); err != nil {
				return err
			}
			ts = append(ts, t)
			return nil
		})
	})
	sort.Slice(ts, func(i, j int) bool { return ts[i].ID < ts[j].ID })
	return ts, err
}

// Form returns the form id, or an ENotFound *Error.
func (db *DB) Form(ctx context.Context, id string) (consent.Form, error) {
	if f, ok := db.catalog.form(id); ok {
		return f, nil
	}
	gen := db.catalog.generation()
	var f consent.Form
	err := db.view(func(tx *bbolt.Tx) error { return mustGet(tx, bucketForms, id, &f, "form") })
	if err == nil {
		db.catalog.keepForm(gen, f)
	}
	return f, err
}

func mustGet(tx *bbolt.Tx, bucket []byte, id string, v any, what string) error {
	ok, err := get(tx, bucket, []byte(id), v)
	if err == nil && !ok {
		err = consent.Errorf(consent.ENotFound, "%s %q not found", what, id)
	}
	return err
}
