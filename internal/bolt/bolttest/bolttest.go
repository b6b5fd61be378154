// Package bolttest lets tests outside package bolt reach into a closed
// optin database file the way an attacker with the file would, so that
// bbolt stays imported by the bolt packages alone.
package bolttest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// TamperEvent rewrites ledger event seq (1 is the first) in the closed
// database file at path, replacing the first old in its stored record
// with new, as someone editing the file would. The test fails when the
// event is missing or does not contain old.
func TamperEvent(t testing.TB, path string, seq uint64, old, new string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("ledger"))
		key := binary.BigEndian.AppendUint64(nil, seq)
		v := b.Get(key)
		if !bytes.Contains(v, []byte(old)) {
			return fmt.Errorf("ledger event %d (%q) does not contain %q", seq, v, old)
		}
		return b.Put(key, bytes.Replace(v, []byte(old), []byte(new), 1))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// Check runs bbolt's own consistency check on the closed database file at
// path, read-only, and fails the test on the first problem.
func Check(t testing.TB, path string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o400, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("bbolt cannot open %s: %v", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("bbolt check of %s: %v", path, err)
	}
}

// DropCounter deletes counter name from the closed database file at
// path, as a bug or a hand edit might; the test fails when it is missing.
func DropCounter(t testing.TB, path, name string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("counters"))
		if b == nil || b.Get([]byte(name)) == nil {
			return fmt.Errorf("no counter %q", name)
		}
		return b.Delete([]byte(name))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}
