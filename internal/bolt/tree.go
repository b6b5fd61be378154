package bolt

import (
	"bytes"
	"context"
	"fmt"
	"math/bits"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"optin/internal/consent"
)

// The ledger's Merkle tree is kept as tlog's stored hashes, so that the
// tree hash and any record or consistency proof read O(log n) of them.
// The hashes of levels 0 and 1 are not stored: a leaf hash is the hash of
// its event's LeafData, read from the ledger when needed, and a level-1
// hash that of two leaves. The others are stored with the record whose
// append completed them: record n (event n+1) with t trailing one bits
// completes the subtrees of levels 1 to t that end with it, and
// bucketTree holds the hashes of levels 2 to t, in that order, under n.
// Three records in four complete none of those and take no entry: about
// one key and 32 bytes per four events. Databases written before (schema
// version 4 and earlier) hold level 1 too, as the first hash of each
// entry; the length of an entry tells the two forms apart (treeLevels),
// so they are read as they are.

// storeTreeHashes stores the tree hashes of the event with sequence number
// seq and leaf data leaf. The events before it must have theirs stored.
func storeTreeHashes(tx *bbolt.Tx, seq uint64, leaf []byte) error {
	n := consent.Record(seq)
	hashes, err := tlog.StoredHashes(n, leaf, treeReader(tx))
	if err != nil {
		return fmt.Errorf("bolt: tree hashes of event %d: %w", seq, err)
	}
	if n%2 == 0 {
		// The next record needs this leaf hash; keeping it spares
		// reading and hashing this event again.
		return tx.Bucket(bucketMeta).Put(keyEvenLeaf, append(u64(uint64(n)), hashes[0][:]...))
	}
	if len(hashes) <= 2 {
		// Only level 1, which is not stored. The append two records on
		// needs it for level 2; keeping it spares hashing these two
		// events again then.
		return tx.Bucket(bucketMeta).Put(keyLastPair, append(u64(uint64(n)), hashes[1][:]...))
	}
	v := make([]byte, 0, (len(hashes)-2)*len(tlog.Hash{}))
	for _, h := range hashes[2:] {
		v = append(v, h[:]...)
	}
	return bucketOf(tx, bucketTree).Put(u64(uint64(n)), v)
}

// treeLevels returns the lowest level of the hashes stored for record n
// in v: 1 in the form of before, with every level it completed, else 2.
func treeLevels(n int64, v []byte) int {
	if len(v) == bits.TrailingZeros64(^uint64(n))*len(tlog.Hash{}) {
		return 1
	}
	return 2
}

// storedHash returns the hash of level (1 or more) stored for record n,
// the last of its subtree, or computes a level-1 hash from the two
// leaves.
func storedHash(tx *bbolt.Tx, level int, n int64) (tlog.Hash, error) {
	v := tx.Bucket(bucketTree).Get(u64(uint64(n)))
	low := treeLevels(n, v)
	if level < low { // level 1, not stored
		if v := tx.Bucket(bucketMeta).Get(keyLastPair); len(v) == 8+len(tlog.Hash{}) && beUint64(v[:8]) == uint64(n) {
			return tlog.Hash(v[8:]), nil
		}
		left, err := leafHash(tx, n-1)
		if err != nil {
			return tlog.Hash{}, err
		}
		right, err := leafHash(tx, n)
		if err != nil {
			return tlog.Hash{}, err
		}
		return tlog.NodeHash(left, right), nil
	}
	at := (level - low) * len(tlog.Hash{})
	if len(v) < at+len(tlog.Hash{}) {
		return tlog.Hash{}, fmt.Errorf("bolt: ledger tree hash of level %d of record %d missing", level, n)
	}
	return tlog.Hash(v[at:]), nil
}

// treeReader reads stored tree hashes in tx, and leaf hashes from the
// ledger.
func treeReader(tx *bbolt.Tx) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		if tx.Bucket(bucketTree) == nil {
			return nil, fmt.Errorf("bolt: the ledger tree is not built yet")
		}
		out := make([]tlog.Hash, len(indexes))
		for i, idx := range indexes {
			level, n := tlog.SplitStoredHashIndex(idx)
			var err error
			if level == 0 {
				out[i], err = leafHash(tx, n)
			} else { // stored with the record that completed the subtree: its last one
				out[i], err = storedHash(tx, level, (n+1)<<level-1)
			}
			if err != nil {
				return nil, err
			}
		}
		return out, nil
	})
}

// leafHash returns the leaf hash of record n: that of event n+1's
// LeafData.
func leafHash(tx *bbolt.Tx, n int64) (tlog.Hash, error) {
	if v := tx.Bucket(bucketMeta).Get(keyEvenLeaf); len(v) == 8+len(tlog.Hash{}) && beUint64(v[:8]) == uint64(n) {
		return tlog.Hash(v[8:]), nil
	}
	k := u64(uint64(n) + 1)
	v := tx.Bucket(bucketLedger).Get(k)
	if v == nil {
		return tlog.Hash{}, fmt.Errorf("bolt: ledger event %d missing", n+1)
	}
	var ev consent.Event
	if err := decodeEvent(tx, k, v, &ev); err != nil {
		return tlog.Hash{}, err
	}
	return tlog.RecordHash(ev.LeafData()), nil
}

// recordHashes returns the tree hashes of record n as tlog.StoredHashes
// gives them, with leaf as its leaf hash, its level-1 hash from leaf and
// the leaf before when not stored, and the others as stored; a missing
// one ends the list.
func recordHashes(tx *bbolt.Tx, n int64, leaf tlog.Hash) []tlog.Hash {
	out := []tlog.Hash{leaf}
	v := tx.Bucket(bucketTree).Get(u64(uint64(n)))
	low := treeLevels(n, v)
	for l := 1; l <= bits.TrailingZeros64(^uint64(n)); l++ {
		if l < low {
			left, err := leafHash(tx, n-1)
			if err != nil {
				break
			}
			out = append(out, tlog.NodeHash(left, leaf))
			continue
		}
		at := (l - low) * len(tlog.Hash{})
		if len(v) < at+len(tlog.Hash{}) {
			break
		}
		out = append(out, tlog.Hash(v[at:at+len(tlog.Hash{})]))
	}
	return out
}

// treeComplete is the value of keyTreeSize once every event has its tree
// hashes: from then on each event is stored with them, and the tree's size
// is the ledger's, so appends need not count it.
var treeComplete = []byte("head")

// treeSize returns the number of events whose tree hashes are stored.
// A database not yet converted to this layout (opened read-only) has
// none.
func treeSize(tx *bbolt.Tx) int64 {
	if tx.Bucket(bucketTree) == nil {
		return 0
	}
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
