package consent

import (
	"fmt"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestFrontierRoot: the walk's O(log n) tree gives the root tlog computes
// from all stored hashes, for every size up to 70 (several complete and
// ragged shapes).
func TestFrontierRoot(t *testing.T) {
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	var f frontier
	for n := int64(0); n <= 70; n++ {
		want, err := tlog.TreeHash(n, reader)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.root(); got != want {
			t.Errorf("root of %d leaves: got %v, want %v", n, got, want)
		}
		data := []byte(fmt.Sprint("leaf ", n))
		hs, err := tlog.StoredHashes(n, data, reader)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
		if got := f.add(tlog.RecordHash(data)); !slices.Equal(got, hs) {
			t.Errorf("stored hashes of leaf %d: got %v, want %v", n, got, hs)
		}
	}
}
