package consent

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// TestHasher: Hash is the hex HMAC-SHA256 of the key, and AppendHash
// appends the same to what the buffer held, time after time with one
// buffer reused.
func TestHasher(t *testing.T) {
	key := []byte("a key of thirty-two bytes, or so")
	h := NewHasher(key)
	buf := []byte("prefix:")
	for _, addr := range []string{"ann@example.com", "", "zoë@exämple.org", "ann@example.com"} {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(addr))
		want := hex.EncodeToString(m.Sum(nil))
		if got := h.Hash(addr); got != want {
			t.Errorf("Hash(%q) = %s, want %s", addr, got, want)
		}
		buf = h.AppendHash(buf[:len("prefix:")], addr)
		if string(buf) != "prefix:"+want {
			t.Errorf("AppendHash(%q) = %s, want prefix:%s", addr, buf, want)
		}
	}
}
