package consent

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/maphash"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// idEncoding is base32 with the "extended hex" alphabet, which keeps the
// byte order when the result is compared as a string.
var idEncoding = base32.HexEncoding.WithPadding(base32.NoPadding)

// NewID returns a new identifier made at t: 48 bits of t in milliseconds
// followed by 128 random bits read from r, 36 lower-case characters. The
// random part makes it unguessable; the time prefix makes ids sort by
// creation, so new records land at the end of a store's index and a batch
// of inserts touches few pages. It panics when r fails (crypto/rand does
// not).
func NewID(t time.Time, r io.Reader) string {
	var b [22]byte
	ms := uint64(t.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	if _, err := io.ReadFull(r, b[6:]); err != nil {
		panic(fmt.Sprintf("consent: random source failed: %v", err))
	}
	return strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// FirstIDAt returns the smallest id NewID can make at t or later: every
// id made before t sorts before it, every one made from t on at or after.
func FirstIDAt(t time.Time) string {
	var b [22]byte
	ms := uint64(max(t.UnixMilli(), 0))
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	return strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// Hasher computes the keyed hashes under which addresses are suppressed:
// the hex HMAC-SHA256 of an address's case-folded key. It reuses HMAC
// states keyed once, since each signup and each mail's send-time check
// hash an address. It is safe for concurrent use.
type Hasher struct {
	macs sync.Pool
	// last is the key hashed last, by its tag, and its hash: a store
	// hashes the same address several times while it writes one person
	// (suppressions, the address index, the audience index), each in a
	// part of its own. The address itself is not kept: an erased
	// person's would stay in memory until the next hash.
	last  atomic.Pointer[lastHash]
	seeds [2]maphash.Seed
}

// NewHasher returns a Hasher keyed with key. The key must never change,
// or suppressed addresses would no longer be recognised.
func NewHasher(key []byte) *Hasher {
	k := append([]byte(nil), key...)
	h := &Hasher{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	h.macs.New = func() any { return hmac.New(sha256.New, k) }
	return h
}

// Hash returns the hash of the case-folded address key (Address.Key).
func (h *Hasher) Hash(key string) string {
	tag := [2]uint64{maphash.String(h.seeds[0], key), maphash.String(h.seeds[1], key)}
	if last := h.last.Load(); last != nil && last.tag == tag {
		return last.hash
	}
	var buf [2 * sha256.Size]byte
	s := string(h.AppendHash(buf[:0], key))
	h.last.Store(&lastHash{tag, s})
	return s
}

// lastHash is Hasher.last: a key's 128-bit tag, two maphash values
// under seeds of this process (another key with the same tag: about one
// chance in 2^128), and its hash.
type lastHash struct {
	tag  [2]uint64
	hash string
}

// AppendHash appends Hash(key) to b: for a caller that hashes many
// addresses into a buffer it reuses (a bulk export). It does not look at
// or keep the last key.
func (h *Hasher) AppendHash(b []byte, key string) []byte {
	m := h.macs.Get().(hash.Hash)
	m.Reset()
	io.WriteString(m, key)
	var sum [sha256.Size]byte
	b = hex.AppendEncode(b, m.Sum(sum[:0]))
	h.macs.Put(m)
	return b
}
