package bolt

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
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
	path := filepath.Join(t.TempDir(), "p.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
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
	err = db.View(func(tx *bbolt.Tx) error {
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
			leaves, err := prefetch(tx, b, c.lo, c.hi)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			var want, got [][]byte
			cur := b.Cursor()
			for k, _ := cur.Seek(c.lo); k != nil && (c.hi == nil || bytes.Compare(k, c.hi) < 0); k, _ = cur.Next() {
				want = append(want, k)
			}
			empty := 0
			for _, id := range leaves {
				n := len(got)
				for _, k := range leafKeys(t, &r, id) {
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
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
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
