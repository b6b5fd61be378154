package consent

import (
	"context"
	"time"
)

// Session is a sign-in to the browser console as a store keeps it. The
// session id travels only in the browser's cookie; the store holds its
// SHA-256 (IDHash), so a copy of the database cannot take over a session.
type Session struct {
	IDHash string `json:"id_hash"`
	// KeyHash is the hash of the API key the person signed in with; the
	// key is checked again on every request, so revoking it ends the
	// session at once.
	KeyHash string    `json:"key_hash"`
	Created time.Time `json:"created"`
	// IdleUntil is when the session ends unless it is used again; it is
	// never later than Expires.
	IdleUntil time.Time `json:"idle_until"`
	// Expires is when the session ends however much it is used.
	Expires time.Time `json:"expires"`
}

// Live reports whether s is still valid at now: neither idle too long nor
// past its absolute end.
func (s Session) Live(now time.Time) bool { return now.Before(s.IdleUntil) && now.Before(s.Expires) }

// HashSessionID returns the stored form of a session id. Ids are 256-bit
// random values, so a plain SHA-256 cannot be reversed by guessing.
func HashSessionID(id string) string { return hashSecret(id) }

// SessionStore keeps console sessions.
type SessionStore interface {
	// CreateSession stores s, records the sign-in of a in the audit log
	// in the same transaction, and deletes the sessions that have ended
	// by the store's clock, so ended ones do not pile up.
	CreateSession(ctx context.Context, a Actor, s Session) error
	// Session returns the live session whose id hashes to idHash;
	// ENotFound when there is none or it has ended by the store's clock.
	Session(ctx context.Context, idHash string) (Session, error)
	// TouchSession moves the idle end of session idHash to until, but
	// never past its Expires; ENotFound when the session is gone.
	TouchSession(ctx context.Context, idHash string, until time.Time) error
	// DeleteSession ends session idHash; ending one that is gone is no
	// error.
	DeleteSession(ctx context.Context, idHash string) error
}
