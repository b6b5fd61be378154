// Package bolttest lets tests outside package bolt reach into a closed
// optin database file the way an attacker with the file would, so that
// bbolt stays imported by the bolt packages alone.
package bolttest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/bolt/record"
	"optin/internal/consent"
)

// TamperEvent rewrites ledger event seq (1 is the first) in the closed
// database file at path, replacing the first old in its stored record
// with new, as someone editing the file would. The test fails when the
// event is missing or does not contain old.
func TamperEvent(t testing.TB, path string, seq uint64, old, new string) {
	t.Helper()
	Update(t, path, func(tx *bbolt.Tx) error { return replace(tx, seq, old, new) })
}

// replace replaces the first old in the JSON of ledger event seq
// (consent.Event.LeafData) with new and stores the result in the
// encoding the event was stored in.
func replace(tx *bbolt.Tx, seq uint64, old, new string) error {
	ev, err := ReadEvent(tx, seq)
	if err != nil {
		return err
	}
	v := ev.LeafData()
	if !bytes.Contains(v, []byte(old)) {
		return fmt.Errorf("ledger event %d (%s) does not contain %q", seq, v, old)
	}
	var forged consent.Event
	if err := json.Unmarshal(bytes.Replace(v, []byte(old), []byte(new), 1), &forged); err != nil {
		return err
	}
	return WriteEvent(tx, &forged)
}

// getEvent reads ledger event seq.
func ReadEvent(tx *bbolt.Tx, seq uint64) (*consent.Event, error) {
	b := tx.Bucket([]byte("ledger"))
	v := b.Get(binary.BigEndian.AppendUint64(nil, seq))
	if v == nil {
		return nil, fmt.Errorf("no ledger event %d", seq)
	}
	ev := new(consent.Event)
	err := record.UnmarshalEvent(v, seq, func() (string, error) {
		return record.EventHash(b.Get(binary.BigEndian.AppendUint64(nil, seq-1)))
	}, sharedStrings(tx), ev)
	return ev, err
}

// putEvent stores ev in the encoding its stored version has.
func WriteEvent(tx *bbolt.Tx, ev *consent.Event) error {
	b := tx.Bucket([]byte("ledger"))
	key := binary.BigEndian.AppendUint64(nil, ev.Seq)
	if !record.IsCompact(b.Get(key)) {
		return b.Put(key, ev.LeafData())
	}
	var prev string
	if ev.Seq > 1 {
		before, err := ReadEvent(tx, ev.Seq-1)
		if err != nil {
			return err
		}
		prev = before.Hash
	}
	v, err := record.MarshalEvent(ev, prev, sharedStrings(tx))
	if err != nil {
		return err
	}
	return b.Put(key, v)
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
	Update(t, path, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("counters"))
		if b == nil || b.Get([]byte(name)) == nil {
			return fmt.Errorf("no counter %q", name)
		}
		return b.Delete([]byte(name))
	})
}

// Rewrite is the forgery of an operator with the file: it replaces the
// first old in ledger event seq with new and recomputes the hash chain
// from there, and drops the Merkle tree as DropTree does, so that the next
// open rebuilds the tree from the forged events. Afterwards the file is
// consistent in itself; only a tree head signed before the rewrite (or a
// receipt) can tell.
func Rewrite(t testing.TB, path string, seq uint64, old, new string) {
	t.Helper()
	Update(t, path, func(tx *bbolt.Tx) error {
		if err := replace(tx, seq, old, new); err != nil {
			return err
		}
		var prev string
		if seq > 1 {
			before, err := ReadEvent(tx, seq-1)
			if err != nil {
				return err
			}
			prev = before.Hash
		}
		var last *consent.Event
		for n := seq; tx.Bucket([]byte("ledger")).Get(binary.BigEndian.AppendUint64(nil, n)) != nil; n++ {
			ev, err := ReadEvent(tx, n)
			if err != nil {
				return err
			}
			ev.Seal(prev)
			prev = ev.Hash
			if err := WriteEvent(tx, ev); err != nil {
				return err
			}
			last = ev
		}
		head := append(binary.BigEndian.AppendUint64(nil, last.Seq), last.Hash...)
		if err := tx.Bucket([]byte("meta")).Put([]byte("ledger_head"), head); err != nil {
			return err
		}
		return dropTree(tx)
	})
}

// Truncate is the other forgery of an operator with the file: it deletes
// every ledger event after event n, points the chain's head at event n
// and drops the Merkle tree as DropTree does, so that the next open
// rebuilds the tree from the first n events. Afterwards the file is
// consistent in itself; only a tree head signed before (or a receipt of
// a deleted event) can tell.
func Truncate(t testing.TB, path string, n uint64) {
	t.Helper()
	Update(t, path, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("ledger"))
		last, err := ReadEvent(tx, n)
		if err != nil {
			return fmt.Errorf("ledger event %d: %w", n, err)
		}
		c := b.Cursor()
		for k, _ := c.Seek(binary.BigEndian.AppendUint64(nil, n+1)); k != nil; k, _ = c.Seek(k) {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		head := append(binary.BigEndian.AppendUint64(nil, last.Seq), last.Hash...)
		if err := tx.Bucket([]byte("meta")).Put([]byte("ledger_head"), head); err != nil {
			return err
		}
		return dropTree(tx)
	})
}

// DropTree makes the closed database file at path look like one written
// before the ledger was a Merkle tree: no tree hashes, no tree size.
func DropTree(t testing.TB, path string) {
	t.Helper()
	Update(t, path, dropTree)
}

func dropTree(tx *bbolt.Tx) error {
	if err := tx.DeleteBucket([]byte("ledger_nodes")); err != nil {
		return err
	}
	return tx.Bucket([]byte("meta")).Delete([]byte("ledger_tree_size"))
}

// Update runs fn in a write transaction on the closed database file at
// path, opened as bbolt alone (as an older optin, or a crash, left it).
func Update(t testing.TB, path string, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(fn)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// sharedStrings returns the database's table of strings ledger events
// share.
func sharedStrings(tx *bbolt.Tx) record.Strings {
	return record.BucketStrings{B: tx.Bucket([]byte("strings"))}
}
