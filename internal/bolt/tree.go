package bolt

import (
	"bytes"
	"context"
	"fmt"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"optin/internal/consent"
)

// The ledger's Merkle tree is kept as tlog's stored hashes (about two per
// event), so that the tree hash and any record or consistency proof read
// O(log n) of them.

// storeTreeHashes stores the tree hashes of the event with sequence number
// seq and leaf data leaf. The events before it must have theirs stored.
func storeTreeHashes(tx *bbolt.Tx, seq uint64, leaf []byte) error {
	n := consent.Record(seq)
	hashes, err := tlog.StoredHashes(n, leaf, treeReader(tx))
	if err != nil {
		return fmt.Errorf("bolt: tree hashes of event %d: %w", seq, err)
	}
	b := bucketOf(tx, bucketTree)
	idx := tlog.StoredHashIndex(0, n)
	for i, h := range hashes {
		if err := b.Put(u64(uint64(idx+int64(i))), h[:]); err != nil {
			return err
		}
	}
	return nil
}

// treeReader reads stored tree hashes in tx.
func treeReader(tx *bbolt.Tx) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		b := tx.Bucket(bucketTree)
		if b == nil {
			return nil, fmt.Errorf("bolt: the ledger tree is not built yet")
		}
		out := make([]tlog.Hash, len(indexes))
		for i, idx := range indexes {
			v := b.Get(u64(uint64(idx)))
			if len(v) != len(out[i]) {
				return nil, fmt.Errorf("bolt: ledger tree hash %d missing", idx)
			}
			copy(out[i][:], v)
		}
		return out, nil
	})
}

// recordHashes returns the stored tree hashes of record n, as many as
// tlog.StoredHashes gives for it; a missing one ends the list.
func recordHashes(tx *bbolt.Tx, n int64) []tlog.Hash {
	b := tx.Bucket(bucketTree)
	var out []tlog.Hash
	for idx := tlog.StoredHashCount(n); idx < tlog.StoredHashCount(n+1); idx++ {
		v := b.Get(u64(uint64(idx)))
		if len(v) != len(tlog.Hash{}) {
			break
		}
		out = append(out, tlog.Hash(v))
	}
	return out
}

// treeComplete is the value of keyTreeSize once every event has its tree
// hashes: from then on each event is stored with them, and the tree's size
// is the ledger's, so appends need not count it.
var treeComplete = []byte("head")

// treeSize returns the number of events whose tree hashes are stored.
func treeSize(tx *bbolt.Tx) int64 {
	meta := tx.Bucket(bucketMeta)
	switch v := meta.Get(keyTreeSize); {
	case bytes.Equal(v, treeComplete):
		if head := meta.Get(keyLedgerHead); head != nil {
			return int64(beUint64(head[:8]))
		}
		return 0
	case v != nil:
		return int64(beUint64(v))
	}
	return 0
}

// storedTree returns the tree of the events with stored hashes.
func storedTree(tx *bbolt.Tx) (tlog.Tree, error) {
	n := treeSize(tx)
	h, err := tlog.TreeHash(n, treeReader(tx))
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("bolt: ledger tree: %w", err)
	}
	return tlog.Tree{N: n, Hash: h}, nil
}

// LedgerTree returns the Merkle tree of every committed event.
func (db *DB) LedgerTree(ctx context.Context) (tlog.Tree, error) {
	var t tlog.Tree
	err := db.view(func(tx *bbolt.Tx) error {
		var err error
		t, err = storedTree(tx)
		return err
	})
	return t, err
}

// LedgerHashes returns the stored tree hashes at indexes.
func (db *DB) LedgerHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	var out []tlog.Hash
	err := db.view(func(tx *bbolt.Tx) error {
		var err error
		out, err = treeReader(tx).ReadHashes(indexes)
		return err
	})
	return out, err
}

// treeChunk is how many events one transaction of buildTree hashes.
const treeChunk = 10000

// buildTree stores the tree hashes of the events that lack them: every
// event of a database written before the ledger was a tree, converted at
// its first read-write open. It works in chunks, each committed with the
// tree size it reached, so an interrupted conversion resumes; at the end
// it marks the tree complete.
func buildTree(b *bbolt.DB) error {
	for {
		done := true
		err := b.Update(func(tx *bbolt.Tx) error {
			c := tx.Bucket(bucketLedger).Cursor()
			from := uint64(treeSize(tx)) + 1
			k, v := c.Seek(u64(from))
			for i := 0; k != nil && i < treeChunk; i++ {
				if beUint64(k) != from {
					return fmt.Errorf("bolt: ledger event %d missing, found %d", from, beUint64(k))
				}
				var ev consent.Event
				if err := decodeEvent(tx, k, v, &ev); err != nil {
					return err
				}
				if err := storeTreeHashes(tx, from, ev.LeafData()); err != nil {
					return err
				}
				from++
				k, v = c.Next()
			}
			if done = k == nil; done {
				return tx.Bucket(bucketMeta).Put(keyTreeSize, treeComplete)
			}
			return tx.Bucket(bucketMeta).Put(keyTreeSize, u64(from-1))
		})
		if err != nil || done {
			return err
		}
	}
}
