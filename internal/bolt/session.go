package bolt

import (
	"context"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// CreateSession stores console session s and audits the sign-in of a in
// the same transaction. It also deletes every session that has ended by
// the store's clock: the bucket holds only the sign-ins of the last hours,
// so the walk is short.
func (db *DB) CreateSession(ctx context.Context, a consent.Actor, s consent.Session) error {
	if s.IDHash == "" || s.KeyHash == "" {
		return consent.Errorf(consent.EInvalid, "a session needs an id hash and a key hash")
	}
	return db.update(ctx, func(tx *bbolt.Tx) error {
		now := db.Now()
		b := tx.Bucket(bucketSessions)
		var ended [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var old consent.Session
			if err := decode(v, &old); err != nil {
				return err
			}
			if !old.Live(now) {
				ended = append(ended, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range ended {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		if err := put(tx, bucketSessions, []byte(s.IDHash), s); err != nil {
			return err
		}
		return db.audit(tx, a, "console.signin", a.KeyID, 1)
	})
}

// Session returns the live session stored under idHash, or ENotFound.
func (db *DB) Session(ctx context.Context, idHash string) (consent.Session, error) {
	var s consent.Session
	err := db.view(func(tx *bbolt.Tx) error {
		ok, err := get(tx, bucketSessions, []byte(idHash), &s)
		if err != nil {
			return err
		}
		if !ok || !s.Live(db.Now()) {
			return consent.Errorf(consent.ENotFound, "no such session")
		}
		return nil
	})
	return s, err
}

// TouchSession moves the idle end of session idHash to until, capped at
// the session's absolute end. A session that is gone or has ended is
// ENotFound.
func (db *DB) TouchSession(ctx context.Context, idHash string, until time.Time) error {
	return db.update(ctx, func(tx *bbolt.Tx) error {
		var s consent.Session
		ok, err := get(tx, bucketSessions, []byte(idHash), &s)
		if err != nil {
			return err
		}
		if !ok || !s.Live(db.Now()) {
			return consent.Errorf(consent.ENotFound, "no such session")
		}
		s.IdleUntil = until.UTC().Truncate(time.Millisecond)
		if s.IdleUntil.After(s.Expires) {
			s.IdleUntil = s.Expires
		}
		return put(tx, bucketSessions, []byte(idHash), s)
	})
}

// DeleteSession removes session idHash; a missing one is no error.
func (db *DB) DeleteSession(ctx context.Context, idHash string) error {
	return db.update(ctx, func(tx *bbolt.Tx) error { return tx.Bucket(bucketSessions).Delete([]byte(idHash)) })
}
