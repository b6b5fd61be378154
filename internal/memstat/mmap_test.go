//go:build linux

package memstat

import (
	"os"
	"syscall"
	"testing"
)

// mapFile maps f read-only, as bbolt maps its database.
func mapFile(t *testing.T, f *os.File, size int) []byte {
	t.Helper()
	data, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Munmap(data) })
	return data
}

// TestSelfMapsAFile: a file mapped and read counts as RssFile, not as
// anonymous memory or Go heap.
func TestSelfMapsAFile(t *testing.T) {
	before, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if before.GoHeap == 0 || before.GoRuntime < before.GoHeap || before.RSSAnon == 0 || before.RSS < before.RSSAnon {
		t.Fatalf("Self: got %+v", before)
	}
	const size = 64 << 20
	f, err := os.CreateTemp(t.TempDir(), "mapped")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	data := mapFile(t, f, size)
	sum := 0
	for i := 0; i < size; i += 4096 {
		sum += int(data[i])
	}
	after, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if after.RSSFile < before.RSSFile+size/2 || after.GoHeap > before.GoHeap+size/2 || sum != 0 {
		t.Errorf("after reading a mapped %d MiB file: RssFile %s -> %s, Go heap %s -> %s", size>>20,
			MiB(before.RSSFile), MiB(after.RSSFile), MiB(before.GoHeap), MiB(after.GoHeap))
	}
}
