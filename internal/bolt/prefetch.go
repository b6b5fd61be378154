package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"slices"

	"go.etcd.io/bbolt"
)

// Reading a key range that is not in the page cache.
//
// bbolt maps the file and advises the kernel that the mapping is read at
// random (MADV_RANDOM, bolt_unix.go), so the first touch of each page is
// one synchronous read of one page: a fault, a wait for the disk, the
// next fault. The leaf pages of one key range do not lie together in the
// file: each was written wherever the free list had room in the
// transaction that last changed it. So a walk over a range nobody read
// since the start waits for the disk once per leaf page, one read at a
// time (docs/performance.md, "Ten million, run": a preview of a million
// subscriptions took 66.6 s cold, 0.98 s warm).
//
// prefetch finds the pages of a range from the branch pages above them,
// a level at a time, and asks the kernel for all pages of a level at once
// (POSIX_FADV_WILLNEED), in file order: the disk serves them many at a
// time, and the walk that follows finds them in the page cache. It is
// advice and nothing else: what a walk reads still comes through bbolt's
// cursor, so a page prefetch misses or reads in vain costs time, never a
// wrong answer.

// bbolt's page layout (go.etcd.io/bbolt/internal/common/page.go; the
// file format, version 2, in the machine's byte order): a 16-byte header
// (id uint64, flags uint16, count uint16, overflow uint32: the pages that
// follow this one as its continuation), then on a branch page count
// elements of 16 bytes (pos uint32: where the key starts, counted from
// the element; ksize uint32; the child's page id uint64).
const (
	pageHeaderSize  = 16
	branchElemSize  = 16
	branchPageFlag  = 0x01
	leafPageFlag    = 0x02
	pageFlagsOffset = 8
)

// child is a page prefetch found under a branch page: its id, and the
// key the branch holds for it, where the child's keys start (nil for the
// bucket's root).
type child struct {
	id    uint64
	first []byte
}

// prefetch advises the kernel to read the pages of bucket b that hold the
// keys from lo up to hi (nil: to the end), or the first limit+1 leaves of
// them for a limit above 0, and returns those leaves in key order. An
// inline bucket (in its parent's page) has none.
func prefetch(tx *bbolt.Tx, b *bbolt.Bucket, lo, hi []byte, limit int) ([]child, error) {
	root := uint64(b.Root())
	if root == 0 || !canAdvise {
		return nil, nil
	}
	f, err := os.Open(tx.DB().Path())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := pageReader{f: f, size: tx.DB().Info().PageSize}
	level := []child{{id: root}}
	for {
		// The first limit+1 pages of a level hold at least the first
		// limit+1 leaves below it.
		if limit > 0 && len(level) > limit+1 {
			level = level[:limit+1]
		}
		r.advise(level)
		var next []child
		for i, l := range level {
			if limit > 0 && len(next) > limit {
				break
			}
			p, err := r.read(l.id)
			if err != nil {
				return nil, err
			}
			switch flags := binary.NativeEndian.Uint16(p[pageFlagsOffset:]); flags {
			case leafPageFlag:
				if i == 0 { // a B+tree's leaves are all on one level
					return level, nil
				}
			case branchPageFlag:
				next = appendChildren(next, p, lo, hi)
			default:
				return nil, fmt.Errorf("bolt: prefetch: page %d has flags %#x", l.id, flags)
			}
		}
		if len(next) == 0 {
			return nil, nil
		}
		level = next
	}
}

// appendChildren appends the children of branch page p that may hold
// keys from lo up to hi, in key order, each with a copy of its key. The
// key of an element is the first of its child, so child i holds the keys
// from its key up to the next element's; a cursor seeking lo goes down
// the last element whose key is not after lo.
func appendChildren(out []child, p, lo, hi []byte) []child {
	n := int(binary.NativeEndian.Uint16(p[10:]))
	key := func(i int) []byte {
		e := p[pageHeaderSize+i*branchElemSize:]
		pos, size := binary.NativeEndian.Uint32(e), binary.NativeEndian.Uint32(e[4:])
		return e[pos : pos+size]
	}
	for i := range n {
		if i+1 < n && bytes.Compare(key(i+1), lo) <= 0 {
			continue // all of child i is before lo
		}
		if hi != nil && i > 0 && bytes.Compare(key(i), hi) >= 0 {
			break // child i and all after it are at or past hi
		}
		e := p[pageHeaderSize+i*branchElemSize:]
		out = append(out, child{id: binary.NativeEndian.Uint64(e[8:]), first: bytes.Clone(key(i))})
	}
	return out
}

// pageReader reads pages of the database file apart from bbolt's
// mapping of it: the same page cache, without a fault per page.
type pageReader struct {
	f    *os.File
	size int
	buf  []byte
}

// read returns page id with its overflow pages; the slice is valid until
// the next read.
func (r *pageReader) read(id uint64) ([]byte, error) {
	r.buf = slices.Grow(r.buf[:0], r.size)[:r.size]
	if _, err := r.f.ReadAt(r.buf, int64(id)*int64(r.size)); err != nil {
		return nil, fmt.Errorf("bolt: prefetch: page %d: %w", id, err)
	}
	if over := int(binary.NativeEndian.Uint32(r.buf[12:])); over > 0 {
		n := (over + 1) * r.size
		r.buf = slices.Grow(r.buf, n-r.size)[:n]
		if _, err := r.f.ReadAt(r.buf[r.size:], int64(id+1)*int64(r.size)); err != nil {
			return nil, fmt.Errorf("bolt: prefetch: page %d: %w", id, err)
		}
	}
	return r.buf, nil
}

// advise asks for the pages of ls (their first page each) in file
// order, one request per run of adjacent pages.
func (r *pageReader) advise(ls []child) {
	ids := make([]uint64, len(ls))
	for i, l := range ls {
		ids[i] = l.id
	}
	slices.Sort(ids)
	for i := 0; i < len(ids); {
		j := i + 1
		for j < len(ids) && ids[j] <= ids[j-1]+1 {
			j++
		}
		adviseWillNeed(r.f, int64(ids[i])*int64(r.size), int64(ids[j-1]-ids[i]+1)*int64(r.size))
		i = j
	}
}

// readaheadLeaves is how many leaf pages ahead of a walk readahead asks
// for at a time: 4 MB of 4 KB pages, enough requests at once to keep the
// disk busy, little enough to stay in a small page cache.
const readaheadLeaves = 1024

// readahead keeps the leaves ahead of a walk through a bucket in key
// order requested (prefetch), a window of readaheadLeaves at a time: when
// the walk reaches the middle of a window, it asks for the next.
type readahead struct {
	b    *bbolt.Bucket
	from []byte // where the next window starts
	half []byte // the walk at this key asks for the next window
	done bool   // the last window is asked for
}

// at tells ra the walk is at key k, and returns the leaves it asked for
// now, if any.
func (ra *readahead) at(k []byte) ([]child, error) {
	if ra.done || ra.half != nil && bytes.Compare(k, ra.half) < 0 {
		return nil, nil
	}
	if ra.from == nil {
		ra.from = k
	}
	ls, err := prefetch(ra.b.Tx(), ra.b, ra.from, nil, readaheadLeaves)
	if err != nil {
		return nil, err
	}
	if len(ls) <= readaheadLeaves {
		ra.done = true
	} else {
		ra.half, ra.from = ls[readaheadLeaves/2].first, ls[readaheadLeaves].first
	}
	return ls, nil
}
