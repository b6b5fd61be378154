package postgres_test

import (
	"slices"
	"testing"

	"optin/internal/consent"
	"optin/internal/postgres"
)

// TestPipeFailureFailsItsCall: a statement that waited in the pipe and
// failed when it went out fails the call that queued it, not the batch:
// the other calls of the batch commit.
func TestPipeFailureFailsItsCall(t *testing.T) {
	db, err := postgres.Open(t.Context(), pg.Database(t), postgres.Options{HMACKey: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatalf("Open: got err %v, want nil", err)
	}
	defer db.Close()
	// The second "a" collides with the first in the same transaction;
	// the one that runs alone after the failure wins, the other is told.
	errs := db.InsertTopicsInOneBatch("a", "b", "a", "c")
	conflicts := 0
	for i, err := range errs {
		switch {
		case err == nil:
		case consent.ErrorCode(err) == consent.EConflict && (i == 0 || i == 2):
			conflicts++
		default:
			t.Errorf("call %d: got err %v, want nil or, for one of the two a, EConflict", i, err)
		}
	}
	if conflicts != 1 {
		t.Errorf("conflicts: got %d, want 1 (errs %v)", conflicts, errs)
	}
	for _, id := range []string{"a", "b", "c"} {
		if topic, err := db.Topic(t.Context(), id); err != nil || topic.ID != id {
			t.Errorf("Topic(%q): got %+v, %v; want it committed", id, topic, err)
		}
	}
}

// TestBulkFailureFailsItsCall: a bulk insert holding rows of several
// calls that fails fails only the call whose row caused it: the calls
// run again one by one.
func TestBulkFailureFailsItsCall(t *testing.T) {
	db, err := postgres.Open(t.Context(), pg.EmptyDatabase(t), postgres.Options{HMACKey: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatalf("Open: got err %v, want nil", err)
	}
	defer db.Close()
	errs, stored := db.InsertRequestsInOneBatch("a", "b", "a", "c")
	conflicts := 0
	for i, err := range errs {
		switch {
		case err == nil:
		case consent.ErrorCode(err) == consent.EConflict && (i == 0 || i == 2):
			conflicts++
		default:
			t.Errorf("call %d: got err %v, want nil or, for one of the two a, EConflict", i, err)
		}
	}
	if conflicts != 1 {
		t.Errorf("conflicts: got %d, want 1 (errs %v)", conflicts, errs)
	}
	if !slices.Equal(stored, []string{"a", "b", "c"}) {
		t.Errorf("requests stored: got %q, want a, b, c", stored)
	}
}
