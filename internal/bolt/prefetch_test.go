package bolt

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.etcd.io/bbolt"
)

// TestPrefetchFindsTheRangesLeaves checks that prefetch names exactly the
// leaf pages a cursor walk of a range reads: the keys on them, in the
// order returned, hold every key of the range in cursor order, and at
// most the first and the last hold none of it. The bucket is written in
// random order over many transactions, so its pages are scattered and
// its tree has more than one level of branch pages.
func TestPrefetchFindsTheRangesLeaves(t *testing.T) {
	if !canAdvise {
		t.Skip("no posix_fadvise here: prefetch does nothing")
	}
	db, path, name := scatteredBucket(t)
	err := db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(name)
		if d := b.Stats().Depth; d < 3 {
			t.Fatalf("the tree is %d levels deep; the test wants branch pages under branch pages", d)
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		r := pageReader{f: f, size: tx.DB().Info().PageSize}
		k := func(p string, i uint32) []byte { return binary.BigEndian.AppendUint32([]byte(p), i) }
		for _, c := range []struct {
			name   string
			lo, hi []byte
		}{
			{"everything", nil, nil},
			{"one prefix", []byte("m\x00"), prefixEnd([]byte("m\x00"))},
			{"the first prefix", []byte("a\x00"), prefixEnd([]byte("a\x00"))},
			{"the last prefix, to the end", []byte("z\x00"), nil},
			{"across two prefixes", k("a\x00", 31234), k("m\x00", 1234)},
			{"a few keys", k("m\x00", 777), k("m\x00", 790)},
			{"between keys", []byte("b"), []byte("c")},
			{"before every key", nil, []byte("a")},
		} {
			leaves, err := prefetch(tx, b, c.lo, c.hi, 0)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			var want, got [][]byte
			cur := b.Cursor()
			for k, _ := cur.Seek(c.lo); k != nil && (c.hi == nil || bytes.Compare(k, c.hi) < 0); k, _ = cur.Next() {
				want = append(want, k)
			}
			empty := 0
			for i, l := range leaves {
				n := len(got)
				on := leafKeys(t, &r, l.id)
				if i > 0 && bytes.Compare(l.first, on[0]) > 0 {
					t.Errorf("%s: leaf %d starts at %x, its parent says %x", c.name, l.id, on[0], l.first)
				}
				for _, k := range on {
					if bytes.Compare(k, c.lo) >= 0 && (c.hi == nil || bytes.Compare(k, c.hi) < 0) {
						got = append(got, k)
					}
				}
				if len(got) == n {
					empty++
				}
			}
			if len(got) != len(want) || (len(want) > 0 && !bytes.Equal(got[0], want[0]) || len(want) > 0 && !bytes.Equal(got[len(got)-1], want[len(want)-1])) {
				t.Errorf("%s: the %d leaves hold %d keys of the range, the cursor walks %d", c.name, len(leaves), len(got), len(want))
			}
			for i := range min(len(got), len(want)) {
				if !bytes.Equal(got[i], want[i]) {
					t.Errorf("%s: key %d is %x on the leaves, %x in the walk", c.name, i, got[i], want[i])
					break
				}
			}
			if empty > 2 {
				t.Errorf("%s: %d of %d leaves hold no key of the range", c.name, empty, len(leaves))
			}
			if c.lo == nil && c.hi == nil && len(leaves) != b.Stats().LeafPageN {
				t.Errorf("everything: %d leaves, the bucket has %d", len(leaves), b.Stats().LeafPageN)
			}
		}
		// With a limit, the first limit+1 of the leaves.
		all, err := prefetch(tx, b, k("m\x00", 1000), nil, 0)
		if err != nil {
			return err
		}
		some, err := prefetch(tx, b, k("m\x00", 1000), nil, 10)
		if err != nil {
			return err
		}
		if len(some) != 11 || !slices.Equal(leafIDs(some), leafIDs(all[:11])) {
			t.Errorf("limit 10: leaves %v, want %v", leafIDs(some), leafIDs(all[:11]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func leafIDs(ls []child) []uint64 {
	var out []uint64
	for _, l := range ls {
		out = append(out, l.id)
	}
	return out
}

// TestReadaheadKeepsAheadOfTheWalk walks a bucket of several windows of
// leaves in key order and checks that readahead has asked, by the time
// the walk reaches a leaf, for it and half a window of leaves after it,
// and for every leaf once or twice (a window's last leaf starts the next).
func TestReadaheadKeepsAheadOfTheWalk(t *testing.T) {
	if !canAdvise {
		t.Skip("no posix_fadvise here: readahead does nothing")
	}
	db, _, name := scatteredBucket(t)
	err := db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(name)
		all, err := prefetch(tx, b, nil, nil, 0)
		if err != nil {
			return err
		}
		if len(all) < 2*readaheadLeaves {
			t.Fatalf("%d leaves: the test wants more than two windows", len(all))
		}
		asked := map[uint64]int{}
		ra := readahead{b: b}
		i := 0 // the leaf holding k
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			ls, err := ra.at(k)
			if err != nil {
				return err
			}
			for _, l := range ls {
				asked[l.id]++
			}
			for i+1 < len(all) && bytes.Compare(all[i+1].first, k) <= 0 {
				i++
			}
			for _, l := range all[i:min(i+readaheadLeaves/2, len(all))] {
				if asked[l.id] == 0 {
					t.Fatalf("at %x, on leaf %d of %d, leaf %d is not asked for: less than half a window ahead", k, i, len(all), l.id)
				}
			}
		}
		for _, l := range all {
			if n := asked[l.id]; n != 1 && n != 2 {
				t.Errorf("leaf %d asked for %d times", l.id, n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// scatteredBucket writes 150,000 keys under three prefixes into bucket
// "b" of a new database, in random order over 30 transactions, so the
// bucket's pages are scattered over the file and its tree has branch
// pages under branch pages.
func scatteredBucket(t *testing.T) (*bbolt.DB, string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	name := []byte("b")
	var keys [][]byte
	for _, p := range []string{"a\x00", "m\x00", "z\x00"} {
		for i := range 50000 {
			keys = append(keys, binary.BigEndian.AppendUint32([]byte(p), uint32(i)))
		}
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	rnd.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for len(keys) > 0 {
		n := min(5000, len(keys))
		err := db.Update(func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(name)
			if err != nil {
				return err
			}
			for _, k := range keys[:n] {
				if err := b.Put(k, bytes.Repeat([]byte{'v'}, 40)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		keys = keys[n:]
	}
	return db, path, name
}

// leafKeys reads the keys of leaf page id (bbolt's leaf elements: flags,
// pos, ksize, vsize, each a uint32, pos counted from the element).
func leafKeys(t *testing.T, r *pageReader, id uint64) [][]byte {
	t.Helper()
	p, err := r.read(id)
	if err != nil {
		t.Fatal(err)
	}
	if flags := binary.NativeEndian.Uint16(p[pageFlagsOffset:]); flags != leafPageFlag {
		t.Fatalf("page %d has flags %#x, not a leaf's", id, flags)
	}
	var out [][]byte
	for i := range int(binary.NativeEndian.Uint16(p[10:])) {
		e := p[pageHeaderSize+i*16:]
		pos, size := binary.NativeEndian.Uint32(e[4:]), binary.NativeEndian.Uint32(e[8:])
		out = append(out, bytes.Clone(e[pos:pos+size]))
	}
	return out
}
