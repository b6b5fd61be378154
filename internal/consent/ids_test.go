package consent

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestHasherHash: whatever order and goroutines keys are hashed in
// (the Hasher keeps the last hash), each gets its own HMAC.
func TestHasherHash(t *testing.T) {
	key := []byte("hasher test key")
	want := func(s string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(s))
		return hex.EncodeToString(m.Sum(nil))
	}
	h := NewHasher(key)
	keys := []string{"a@example.com", "a@example.com", "b@example.com", "a@example.com", "", "b@example.com"}
	for _, k := range keys {
		if got := h.Hash(k); got != want(k) {
			t.Errorf("Hash(%q) = %s, want %s", k, got, want(k))
		}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				k := keys[(g+i)%len(keys)]
				if got := h.Hash(k); got != want(k) {
					t.Errorf("concurrent Hash(%q) = %s, want %s", k, got, want(k))
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestHasherKeepsNoAddress: what a Hasher keeps of the last address it
// hashed does not hold the address (an erased person's would stay in
// memory).
func TestHasherKeepsNoAddress(t *testing.T) {
	h := NewHasher([]byte("hasher test key"))
	const addr = "ann.erased@example.com"
	h.Hash(addr)
	if kept := fmt.Sprintf("%#v", *h.last.Load()); strings.Contains(kept, addr) {
		t.Errorf("the Hasher keeps %s, with the address %s", kept, addr)
	}
}
