package postgres

import (
	"context"
	"time"

	"optin/internal/consent"
)

// CreateSession stores console session s and audits the sign-in of a in
// the same transaction. It also deletes every session that has ended by
// the store's clock.
func (db *DB) CreateSession(ctx context.Context, a consent.Actor, s consent.Session) error {
	if s.IDHash == "" || s.KeyHash == "" {
		return consent.Errorf(consent.EInvalid, "a session needs an id hash and a key hash")
	}
	return db.update(ctx, func(t *tx) error {
		if err := t.exec("DELETE FROM sessions WHERE idle_until <= $1 OR expires <= $1", db.Now()); err != nil {
			return err
		}
		if err := putSession(t, s); err != nil {
			return err
		}
		return db.audit(t, a, "console.signin", a.KeyID, 1)
	})
}

// putSession stores s under its id hash.
func putSession(t *tx, s consent.Session) error {
	b, err := encode(s)
	if err != nil {
		return err
	}
	return t.exec(`INSERT INTO sessions (id_hash, idle_until, expires, data) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id_hash) DO UPDATE SET idle_until = EXCLUDED.idle_until, expires = EXCLUDED.expires, data = EXCLUDED.data`,
		s.IDHash, s.IdleUntil, s.Expires, b)
}

// liveSession returns the live session stored under idHash, or ENotFound.
func (db *DB) liveSession(c conn, idHash string) (consent.Session, error) {
	var s consent.Session
	ok, err := c.get(&s, "SELECT data FROM sessions WHERE id_hash = $1", idHash)
	if err != nil {
		return s, err
	}
	if !ok || !s.Live(db.Now()) {
		return s, consent.Errorf(consent.ENotFound, "no such session")
	}
	return s, nil
}

// Session returns the live session stored under idHash, or ENotFound.
func (db *DB) Session(ctx context.Context, idHash string) (consent.Session, error) {
	return db.liveSession(db.read(ctx), idHash)
}

// TouchSession moves the idle end of session idHash to until, capped at
// the session's absolute end. A session that is gone or has ended is
// ENotFound.
func (db *DB) TouchSession(ctx context.Context, idHash string, until time.Time) error {
	return db.update(ctx, func(t *tx) error {
		s, err := db.liveSession(t.conn, idHash)
		if err != nil {
			return err
		}
		s.IdleUntil = until.UTC().Truncate(time.Millisecond)
		if s.IdleUntil.After(s.Expires) {
			s.IdleUntil = s.Expires
		}
		return putSession(t, s)
	})
}

// DeleteSession removes session idHash; a missing one is no error.
func (db *DB) DeleteSession(ctx context.Context, idHash string) error {
	return db.update(ctx, func(t *tx) error { return t.exec("DELETE FROM sessions WHERE id_hash = $1", idHash) })
}
