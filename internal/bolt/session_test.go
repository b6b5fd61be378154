package bolt_test

import (
	"testing"
	"time"

	"optin/internal/consent"
)

// TestSessionSurvivesReopen: a console session is in the file, not only
// in memory: it is still live after the database is closed and opened
// again. (The rest of a session's life is the conformance suite's.)
func TestSessionSurvivesReopen(t *testing.T) {
	db := mustOpen(t)
	ctx := t.Context()
	s := consent.Session{IDHash: consent.HashSessionID("session-a"), KeyHash: consent.HashAPIKey(testKey), Created: db.Now(),
		IdleUntil: db.Now().Add(30 * time.Minute), Expires: db.Now().Add(12 * time.Hour)}
	if err := db.CreateSession(ctx, consent.Actor{Name: "marketing"}, s); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	db.reopen(t)
	if got, err := db.Session(ctx, s.IDHash); err != nil || got != s {
		t.Errorf("Session after reopen: got %+v, %v, want %+v", got, err, s)
	}
}
