package bolt

import (
	"context"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// EachExportable calls fn for every subscriber that may leave optin in a
// bulk export, in id order, from one read transaction (a consistent
// snapshot; writers go on meanwhile). Suppressed addresses never leave: a
// subscriber suppressed for every topic is skipped, a subscription whose
// topic is suppressed is left out, and a subscriber with any suppression
// and no subscription left is skipped. fn must not keep sub after it returns; an
// error from fn (such as a closed connection) stops the walk.
func (db *DB) EachExportable(ctx context.Context, fn func(sub *consent.Subscriber) error) error {
	return db.view(func(tx *bbolt.Tx) error {
		return eachSubscriber(ctx, tx, func(sub *consent.Subscriber) error {
			if ok, err := db.exportable(tx, sub); err != nil || !ok {
				return err
			}
			return fn(sub)
		})
	})
}

// eachSubscriber calls fn for every subscriber in tx, in id order, until
// fn fails or ctx ends.
func eachSubscriber(ctx context.Context, tx *bbolt.Tx, fn func(*consent.Subscriber) error) error {
	c := tx.Bucket(bucketSubscribers).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		sub := new(consent.Subscriber)
		if err := decode(v, sub); err != nil {
			return err
		}
		if err := fn(sub); err != nil {
			return err
		}
	}
	return nil
}

// exportable drops sub's suppressed subscriptions and reports whether
// anything of sub may be exported.
func (db *DB) exportable(tx *bbolt.Tx, sub *consent.Subscriber) (bool, error) {
	h := db.hashKey(consent.AddressKey(sub.Email))
	prefix := pairKey(h, "")
	c := tx.Bucket(bucketSuppressed).Cursor()
	k, _ := c.Seek(prefix)
	if !hasPrefix(k, prefix) {
		return true, nil // the common case: one seek, no entry
	}
	for ; hasPrefix(k, prefix); k, _ = c.Next() {
		scope := string(k[len(prefix):])
		if scope == consent.ScopeAll {
			return false, nil
		}
		delete(sub.Subscriptions, scope)
	}
	return len(sub.Subscriptions) > 0, nil
}
