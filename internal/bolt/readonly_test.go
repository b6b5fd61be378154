package bolt_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"

	"optin/internal/bolt"
	"optin/internal/consent"
)

// TestOpenReadOnly: a read-only open of a missing file fails and creates
// nothing; of an existing one it reads, refuses writes and leaves the file
// as it was; a bbolt file that is not optin's is refused.
func TestOpenReadOnly(t *testing.T) {
	ro := testOptions(newClock())
	ro.ReadOnly = true

	missing := filepath.Join(t.TempDir(), "data", "optin.db")
	if _, err := bolt.Open(missing, ro); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing, ReadOnly): got %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing, ReadOnly) created its directory (%v)", err)
	}

	db := mustOpen(t)
	mustBootstrap(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(db.path)
	if err != nil {
		t.Fatal(err)
	}
	rdb, err := bolt.Open(db.path, ro)
	if err != nil {
		t.Fatalf("Open(ReadOnly): %v", err)
	}
	if keys, err := rdb.APIKeys(t.Context()); err != nil || len(keys) != 1 {
		t.Errorf("APIKeys: got %d keys, %v; want 1", len(keys), err)
	}
	if rep, err := rdb.VerifyLedger(t.Context()); err != nil || !rep.OK {
		t.Errorf("VerifyLedger: got %+v, %v", rep, err)
	}
	if _, _, err := rdb.NewAPIKey(t.Context(), consent.CLIActor(), "ro", consent.RoleViewer); err == nil {
		t.Error("NewAPIKey on a read-only database: got nil error")
	}
	if err := rdb.Close(); err != nil {
		t.Fatal(err)
	}
	if after, err := os.ReadFile(db.path); err != nil || !bytes.Equal(after, before) {
		t.Errorf("the read-only open changed the file (%v)", err)
	}

	other := filepath.Join(t.TempDir(), "other.db")
	raw, err := bbolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if _, err := bolt.Open(other, ro); err == nil {
		t.Error("Open(ReadOnly) of a bbolt file that is not optin's: got nil error")
	}
}

// TestOpenReadOnlyBeforeSessions: a database last written by an optin
// without the console's sessions bucket still opens read-only (the CLI's
// verify after an upgrade), and a read-write open adds the bucket.
func TestOpenReadOnlyBeforeSessions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "optin.db")
	db, err := bolt.Open(path, testOptions(newClock()))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte("console_sessions")) }); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	ro := testOptions(newClock())
	ro.ReadOnly = true
	db, err = bolt.Open(path, ro)
	if err != nil {
		t.Fatalf("read-only open without the sessions bucket: %v", err)
	}
	if rep, err := db.VerifyLedger(t.Context()); err != nil || !rep.OK {
		t.Errorf("VerifyLedger: got %+v, %v", rep, err)
	}
	db.Close()
	if db, err = bolt.Open(path, testOptions(newClock())); err != nil {
		t.Fatalf("read-write open: %v", err)
	}
	db.Close()
}
