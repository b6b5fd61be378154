package bolt_test

import (
	"testing"
	"time"

	"optin/internal/consent"
)

// TestSessions follows a console session through its life on a real
// file: stored under the hash of its id and audited, found while live,
// moved on by use but never past its absolute end, ended by idleness, by
// its absolute end or by deletion, kept across a restart, and swept when
// the next sign-in is stored.
func TestSessions(t *testing.T) {
	db := mustOpen(t)
	ctx := t.Context()
	actor := consent.Actor{Name: "marketing", KeyID: "0123456789abcdef"}
	newSession := func(id string) consent.Session {
		return consent.Session{IDHash: consent.HashSessionID(id), KeyHash: consent.HashAPIKey(testKey), Created: db.Now(),
			IdleUntil: db.Now().Add(30 * time.Minute), Expires: db.Now().Add(12 * time.Hour)}
	}
	mustLive := func(what, id string) consent.Session {
		t.Helper()
		s, err := db.Session(ctx, consent.HashSessionID(id))
		if err != nil {
			t.Fatalf("%s: Session(%s): got err %v, want the session", what, id, err)
		}
		return s
	}
	mustGone := func(what, id string) {
		t.Helper()
		if _, err := db.Session(ctx, consent.HashSessionID(id)); consent.ErrorCode(err) != consent.ENotFound {
			t.Fatalf("%s: Session(%s): got err %v, want not_found", what, id, err)
		}
	}

	a := newSession("session-a")
	if err := db.CreateSession(ctx, actor, a); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if got := mustLive("after create", "session-a"); got != a {
		t.Errorf("stored session: got %+v, want %+v", got, a)
	}
	entries, _, err := db.Audit(ctx, "", 10)
	if err != nil || len(entries) == 0 || entries[0].Action != "console.signin" || entries[0].Key != "marketing" ||
		entries[0].Target != actor.KeyID {
		t.Errorf("audit: got %+v, %v, want console.signin by marketing first", entries, err)
	}
	if err := db.CreateSession(ctx, actor, consent.Session{KeyHash: "x"}); consent.ErrorCode(err) != consent.EInvalid {
		t.Errorf("CreateSession without id hash: got %v, want invalid", err)
	}

	// Use keeps it alive past the first idle end.
	db.clock.Advance(20 * time.Minute)
	if err := db.TouchSession(ctx, a.IDHash, db.Now().Add(30*time.Minute)); err != nil {
		t.Fatalf("TouchSession: %v", err)
	}
	db.clock.Advance(20 * time.Minute)
	mustLive("40 minutes in, used after 20", "session-a")

	// A restart keeps it.
	db.reopen(t)
	mustLive("after reopen", "session-a")

	// Idle for 30 minutes: ended.
	db.clock.Advance(31 * time.Minute)
	mustGone("idle for 31 minutes", "session-a")
	if err := db.TouchSession(ctx, a.IDHash, db.Now().Add(30*time.Minute)); consent.ErrorCode(err) != consent.ENotFound {
		t.Errorf("TouchSession of an idle session: got %v, want not_found", err)
	}

	// However much it is used, it ends at Expires, and a touch never
	// moves the idle end past it.
	b := newSession("session-b")
	if err := db.CreateSession(ctx, actor, b); err != nil {
		t.Fatal(err)
	}
	for db.Now().Add(20 * time.Minute).Before(b.Expires) {
		db.clock.Advance(20 * time.Minute)
		if err := db.TouchSession(ctx, b.IDHash, db.Now().Add(30*time.Minute)); err != nil {
			t.Fatalf("TouchSession %v after the sign-in: %v", db.Now().Sub(b.Created), err)
		}
	}
	if got := mustLive("just before the end", "session-b"); !got.IdleUntil.Equal(b.Expires) {
		t.Errorf("idle end near the absolute end: got %v, want %v", got.IdleUntil, b.Expires)
	}
	db.clock.Set(b.Expires)
	mustGone("at the absolute end", "session-b")

	// Deleting ends it at once; deleting again is no error.
	c := newSession("session-c")
	if err := db.CreateSession(ctx, actor, c); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := db.DeleteSession(ctx, c.IDHash); err != nil {
			t.Fatalf("DeleteSession: %v", err)
		}
	}
	mustGone("after delete", "session-c")

	// The next sign-in sweeps the ended sessions: b is gone from the file,
	// not only hidden.
	if err := db.CreateSession(ctx, actor, newSession("session-d")); err != nil {
		t.Fatal(err)
	}
	db.clock.Set(b.Created)
	mustGone("b after the sweep, read at a time it was live", "session-b")
	mustLive("d, at its own start", "session-d")
}
