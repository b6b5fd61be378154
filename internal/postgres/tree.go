package postgres

import (
	"bytes"
	"context"
	"fmt"
	"math/bits"

	"golang.org/x/mod/sumdb/tlog"

	"optin/internal/consent"
)

// The ledger's Merkle tree is kept as tlog's stored hashes in the tree
// column of the events, so that the tree hash and any record or
// consistency proof read O(log n) of them; ledger_head.tree_size counts
// the events whose hashes are stored. As in the bbolt store
// (internal/bolt/tree.go), the hashes of levels 0 and 1 are not stored
// (migration 0015): a leaf hash is the hash of its event's LeafData,
// read from the ledger when needed, and a level-1 hash that of two
// leaves. Record n (event n+1) with t trailing one bits completes the
// subtrees of levels 1 to t that end with it; its tree column holds the
// hashes of levels 2 to t, in that order: empty for three events in
// four, 32 bytes a event on average instead of 64.

// treeWrites are the tree hashes a write transaction computed, by index,
// for the hashing of the events after them.
type treeWrites struct {
	size   int64 // the tree size they reach
	hashes map[int64]tlog.Hash
}

// treeHashes computes the tree hashes of the event with sequence number
// seq and leaf data leaf, and returns them as the event's tree column.
// The events before it must have theirs stored.
func (t *tx) treeHashes(seq uint64, leaf []byte) ([]byte, error) {
	if t.tree == nil {
		t.tree = &treeWrites{hashes: map[int64]tlog.Hash{}}
	}
	n := consent.Record(seq)
	hashes, err := tlog.StoredHashes(n, leaf, t.treeReader())
	if err != nil {
		return nil, fmt.Errorf("postgres: tree hashes of event %d: %w", seq, err)
	}
	idx := tlog.StoredHashIndex(0, n)
	col := []byte{} // not NULL: NULL is an event whose hashes are not stored
	for i, h := range hashes {
		t.tree.hashes[idx+int64(i)] = h
		if i >= storedLevel {
			col = append(col, h[:]...)
		}
	}
	t.tree.size = n + 1
	return col, nil
}

// treeReader reads the hashes this transaction computed, and the others
// from the database.
func (t *tx) treeReader() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		var missing []int64
		for i, idx := range indexes {
			h, ok := t.tree.hashes[idx]
			if !ok {
				missing = append(missing, idx)
			}
			out[i] = h
		}
		if len(missing) == 0 {
			return out, nil
		}
		found, err := readHashes(t.conn, missing)
		if err != nil {
			return nil, err
		}
		for i, idx := range indexes {
			if h, ok := found[idx]; ok {
				out[i] = h
				t.tree.hashes[idx] = h // for the edge the commit keeps
			}
		}
		return out, nil
	})
}

// treeEdge is the right edge of the ledger's tree as this instance's
// last committed transaction left it: the hashes of the largest complete
// subtrees of its size, which are all the stored hashes that hashing the
// events after it reads (tlog.StoredHashes). Without it, the first event
// of every transaction read them from the ledger: one statement, and a
// round trip mid-transaction, per batch of signups. head is the hash of
// its last event: a transaction uses the edge only when the head it read
// under the write lock is that one, so another instance's events, or a
// ledger rewritten to another of the same length (an operator's reseal),
// leave it unused.
type treeEdge struct {
	size   int64
	head   string
	hashes map[int64]tlog.Hash
}

// edgeIndexes are the stored hash indexes of the largest complete
// subtrees of a tree of n records, from the left.
func edgeIndexes(n int64) []int64 {
	var out []int64
	var start int64
	for l := 62; l >= 0; l-- {
		if n&(1<<l) != 0 {
			out = append(out, tlog.StoredHashIndex(l, start>>l))
			start += 1 << l
		}
	}
	return out
}

// keepEdge remembers the tree edge of w, which a transaction that left
// the ledger's head at head committed.
func (db *DB) keepEdge(w *treeWrites, head *chainHead) {
	if w == nil || head == nil || w.size != int64(head.seq) {
		db.edge.Store(nil)
		return
	}
	e := &treeEdge{size: w.size, head: head.hash, hashes: make(map[int64]tlog.Hash, bits.OnesCount64(uint64(w.size)))}
	for _, idx := range edgeIndexes(w.size) {
		if h, ok := w.hashes[idx]; ok {
			e.hashes[idx] = h
		}
	}
	db.edge.Store(e)
}

// treeAt returns the tree hashes a transaction starts from when the
// ledger's head is event seq with hash hash and a tree of seq events: the
// edge kept when it is of that head, else none.
func (db *DB) treeAt(seq int64, hash string) *treeWrites {
	w := &treeWrites{size: seq, hashes: map[int64]tlog.Hash{}}
	if e := db.edge.Load(); e != nil && e.size == seq && e.head == hash {
		for idx, h := range e.hashes {
			w.hashes[idx] = h
		}
	}
	return w
}

// storedLevel is the lowest level of the hashes in a tree column.
const storedLevel = 2

// readHashes reads the tree hashes at indexes; one missing is an error.
// The hash at level l >= storedLevel of node k is the (l-storedLevel)-th
// in the tree column of the event that completes its subtree, record
// (k+1)<<l - 1; a leaf hash is computed from its event, a level-1 hash
// from the two leaves of its node.
func readHashes(c conn, indexes []int64) (map[int64]tlog.Hash, error) {
	var seqs []int64
	for _, idx := range indexes {
		l, k := tlog.SplitStoredHashIndex(idx)
		switch l {
		case 0:
			seqs = append(seqs, k+1)
		case 1:
			seqs = append(seqs, 2*k+1, 2*k+2)
		default:
			seqs = append(seqs, (k+1)<<l-1+1)
		}
	}
	type stored struct {
		row  ledgerRow
		tree []byte
	}
	rows := make(map[int64]*stored, len(seqs))
	var r stored
	dest := append(r.row.dest(), &r.tree)
	err := c.each("SELECT "+ledgerColumns+", l.tree FROM "+ledgerRows+" WHERE l.seq = ANY($1)", []any{seqs}, dest, func() error {
		rows[r.row.seq] = &stored{ledgerRow{r.row.seq, r.row.subscriber, bytes.Clone(r.row.event), bytes.Clone(r.row.prev)}, bytes.Clone(r.tree)}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: ledger tree: %w", err)
	}
	leaf := func(n int64) (tlog.Hash, error) {
		s := rows[n+1]
		if s == nil {
			return tlog.Hash{}, fmt.Errorf("postgres: ledger event %d missing", n+1)
		}
		var ev consent.Event
		if err := s.row.decode(&ev, c.shared()); err != nil {
			return tlog.Hash{}, err
		}
		return tlog.RecordHash(ev.LeafData()), nil
	}
	found := make(map[int64]tlog.Hash, len(indexes))
	for _, idx := range indexes {
		l, k := tlog.SplitStoredHashIndex(idx)
		switch l {
		case 0:
			h, err := leaf(k)
			if err != nil {
				return nil, err
			}
			found[idx] = h
		case 1:
			left, err := leaf(2 * k)
			if err != nil {
				return nil, err
			}
			right, err := leaf(2*k + 1)
			if err != nil {
				return nil, err
			}
			found[idx] = tlog.NodeHash(left, right)
		default:
			var hs []tlog.Hash
			if s := rows[(k+1)<<l-1+1]; s != nil {
				hs = splitHashes(s.tree)
			}
			if l-storedLevel >= len(hs) {
				return nil, fmt.Errorf("postgres: ledger tree hash %d missing", idx)
			}
			found[idx] = hs[l-storedLevel]
		}
	}
	return found, nil
}

// recordHashes returns the tree hashes of record n as tlog.StoredHashes
// gives them, from its leaf hash, the leaf hash of the record before
// (used when n is odd) and its tree column.
func recordHashes(n int64, leaf, before tlog.Hash, tree []byte) []tlog.Hash {
	out := []tlog.Hash{leaf}
	if n%2 == 1 {
		out = append(out, tlog.NodeHash(before, leaf))
	}
	return append(out, splitHashes(tree)...)
}

// splitHashes splits a tree column into its hashes.
func splitHashes(col []byte) []tlog.Hash {
	var out []tlog.Hash
	for len(col) >= len(tlog.Hash{}) {
		out = append(out, tlog.Hash(col))
		col = col[len(tlog.Hash{}):]
	}
	return out
}

// connReader reads stored tree hashes through c.
func connReader(c conn) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		found, err := readHashes(c, indexes)
		if err != nil {
			return nil, err
		}
		out := make([]tlog.Hash, len(indexes))
		for i, idx := range indexes {
			out[i] = found[idx]
		}
		return out, nil
	})
}

// storedTree returns the tree of the events with stored hashes.
func storedTree(c conn) (tlog.Tree, error) {
	var n int64
	if err := c.q.QueryRow(c.ctx, "SELECT tree_size FROM ledger_head").Scan(&n); err != nil {
		return tlog.Tree{}, fmt.Errorf("postgres: ledger tree: %w", err)
	}
	h, err := tlog.TreeHash(n, connReader(c))
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("postgres: ledger tree: %w", err)
	}
	return tlog.Tree{N: n, Hash: h}, nil
}

// LedgerTree returns the Merkle tree of every committed event.
func (db *DB) LedgerTree(ctx context.Context) (tlog.Tree, error) {
	var t tlog.Tree
	err := db.view(ctx, func(c conn) error {
		var err error
		t, err = storedTree(c)
		return err
	})
	return t, err
}

// LedgerHashes returns the stored tree hashes at indexes.
func (db *DB) LedgerHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	return connReader(db.read(ctx)).ReadHashes(indexes)
}

// treeChunk is how many events one transaction of buildTree hashes.
const treeChunk = 10000

// buildTree stores the tree hashes of the events that lack them: every
// event of a database written before the ledger was a tree, converted by
// the first instance that starts on schema version 3. It works in chunks
// under the write lock, each committed with the tree size it reached, so
// an interrupted conversion resumes and instances never race.
func (db *DB) buildTree(ctx context.Context) error {
	for {
		done := true
		err := db.update(ctx, func(t *tx) error {
			t.tree = nil // a rerun starts afresh
			var from int64
			if err := t.q.QueryRow(t.ctx, "SELECT tree_size FROM ledger_head").Scan(&from); err != nil {
				return fmt.Errorf("postgres: ledger tree: %w", err)
			}
			var seqs []int64
			var evs []consent.Event
			var row ledgerRow
			// Read first: the hashing below reads hashes on the same
			// connection.
			err := t.each("SELECT "+ledgerColumns+" FROM "+ledgerRows+" WHERE l.seq > $1 ORDER BY l.seq LIMIT $2", []any{from, treeChunk + 1},
				row.dest(), func() error {
					var ev consent.Event
					if err := row.decode(&ev, t.shared()); err != nil {
						return err
					}
					seqs, evs = append(seqs, row.seq), append(evs, ev)
					return nil
				})
			if err != nil {
				return err
			}
			done = len(seqs) <= treeChunk
			seqs = seqs[:min(len(seqs), treeChunk)]
			cols := make([][]byte, len(seqs))
			for i, seq := range seqs {
				if seq != from+1 {
					return fmt.Errorf("postgres: ledger event %d missing, found %d", from+1, seq)
				}
				if cols[i], err = t.treeHashes(uint64(seq), evs[i].LeafData()); err != nil {
					return err
				}
				from = seq
			}
			return t.exec("UPDATE ledger l SET tree = v.tree FROM unnest($1::bigint[], $2::bytea[]) AS v(seq, tree) WHERE l.seq = v.seq",
				seqs, cols)
		})
		if err != nil || done {
			return err
		}
	}
}
