package postgres

import (
	"strconv"
	"testing"
)

// TestStringCacheBounded: the cache of shared strings holds at most
// maxCachedStrings entries; a full one starts again empty, keeping the
// entries added then, each found by number and by string.
func TestStringCacheBounded(t *testing.T) {
	var c stringCache
	full := map[uint64]string{}
	for n := range uint64(maxCachedStrings) {
		full[n+1] = "s" + strconv.FormatUint(n+1, 10)
	}
	c.add(full)
	if s, ok := c.string(maxCachedStrings); !ok || s != "s"+strconv.Itoa(maxCachedStrings) {
		t.Fatalf("a full cache: string(%d) = %q, %v", maxCachedStrings, s, ok)
	}
	c.add(map[uint64]string{maxCachedStrings + 1: "new"})
	if n, ok := c.number("new"); !ok || n != maxCachedStrings+1 {
		t.Errorf("after one more: number(new) = %d, %v, want %d", n, ok, maxCachedStrings+1)
	}
	if s, ok := c.string(1); ok {
		t.Errorf("after one more: string(1) = %q, want the cache started again", s)
	}
	if len(c.byNumber) != 1 || len(c.byString) != 1 {
		t.Errorf("after one more: %d and %d entries, want 1", len(c.byNumber), len(c.byString))
	}
	// One write that numbered more than the cache holds (a load).
	more := map[uint64]string{}
	for n := range uint64(3 * maxCachedStrings) {
		more[n+1] = "m" + strconv.FormatUint(n+1, 10)
	}
	c.add(more)
	if len(c.byNumber) != maxCachedStrings || len(c.byString) != maxCachedStrings {
		t.Errorf("after a larger write: %d and %d entries, want %d", len(c.byNumber), len(c.byString), maxCachedStrings)
	}
}
