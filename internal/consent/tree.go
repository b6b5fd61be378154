package consent

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"
)

// The ledger is also an append-only Merkle tree (RFC 6962 section 2.1):
// event seq is record seq-1, and its leaf is the event's JSON encoding,
// Hash included, which commits to the personal record only by its salted
// digest. A signed tree head (size and root hash) handed out today makes
// any later rewrite of the first size events detectable, and an inclusion
// proof shows one event is in it, without the rest of the ledger.

// LeafData returns the bytes of e's leaf in the ledger's Merkle tree: its
// JSON encoding, Prev and Hash included. The leaf hash is
// tlog.RecordHash(LeafData()), SHA-256 of 0x00 followed by these bytes.
func (e *Event) LeafData() []byte {
	return e.appendJSON(make([]byte, 0, 640))
}

// Record returns the tree's record number of the event with sequence
// number seq (records count from 0, events from 1).
func Record(seq uint64) int64 { return int64(seq) - 1 }

// frontier is the Merkle tree of the events seen so far kept as the roots
// of its complete subtrees, largest first: O(log n) hashes for any n.
type frontier struct {
	n     int64
	roots []tlog.Hash
}

// add appends a leaf hash and returns the hashes a store keeps for it
// (tlog.StoredHashes): the leaf hash, then the root of each subtree it
// completes.
func (f *frontier) add(h tlog.Hash) []tlog.Hash {
	stored := []tlog.Hash{h}
	for n := f.n; n&1 == 1; n >>= 1 {
		h = tlog.NodeHash(f.roots[len(f.roots)-1], h)
		f.roots = f.roots[:len(f.roots)-1]
		stored = append(stored, h)
	}
	f.roots = append(f.roots, h)
	f.n++
	return stored
}

// root returns the tree hash of the leaves added so far (RFC 6962: the
// largest complete subtree on the left, the rest on the right; the empty
// tree's is the SHA-256 of nothing).
func (f *frontier) root() tlog.Hash {
	if len(f.roots) == 0 {
		return sha256.Sum256(nil)
	}
	r := f.roots[len(f.roots)-1]
	for i := len(f.roots) - 2; i >= 0; i-- {
		r = tlog.NodeHash(f.roots[i], r)
	}
	return r
}

// HeadCheck is the verdict on one saved tree head: whether the stored
// ledger's first Size events hash to its root.
type HeadCheck struct {
	Size   int64     `json:"size"`
	Root   tlog.Hash `json:"root"`
	OK     bool      `json:"ok"`
	Reason string    `json:"reason,omitempty"`
}

// checkHeads compares the roots the walk found at each head's size
// (roots, by size) with the heads, given the number of events walked.
// A head that fails names the range its first changed event lies in: after
// the largest smaller head that matches, up to its own size.
func checkHeads(heads []tlog.Tree, roots map[int64]tlog.Hash, events int64) []HeadCheck {
	sorted := slices.Clone(heads)
	slices.SortFunc(sorted, func(a, b tlog.Tree) int { return int(min(max(a.N-b.N, -1), 1)) })
	out := make([]HeadCheck, 0, len(sorted))
	var good int64 // the largest size known to match
	for _, h := range sorted {
		c := HeadCheck{Size: h.N, Root: h.Hash}
		got, walked := roots[h.N]
		switch {
		case h.N > events:
			c.Reason = fmt.Sprintf("the ledger holds %d events, fewer than the %d this head covers: events were removed", events, h.N)
		case !walked:
			c.Reason = "the walk stopped at a broken event before reaching this head's size"
		case got != h.Hash:
			c.Reason = fmt.Sprintf("the first %d events hash to %s, not to this head's root: %s was changed after the head was signed",
				h.N, got, eventRange(good+1, h.N))
		default:
			c.OK = true
			good = h.N
		}
		out = append(out, c)
	}
	return out
}

// eventRange names one event from lo to hi.
func eventRange(lo, hi int64) string {
	if lo == hi {
		return "event " + strconv.FormatInt(lo, 10)
	}
	return "one of events " + strconv.FormatInt(lo, 10) + " to " + strconv.FormatInt(hi, 10)
}
