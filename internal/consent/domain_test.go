package consent

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestPlainDomains: the fast path of canonicalDomain for host names of
// ASCII letters, digits and hyphens (plainDomain) answers as the IDNA
// profile does (idnaDomain), over random names made of those characters
// and the ones near them, with labels and names around the length
// limits, hyphens at either end and in the third and fourth place, A-label
// prefixes, empty labels and all-digit top-level labels.
func TestPlainDomains(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "b", "z", "A", "Q", "Z", "0", "7", "9", "-", "--", ".", "xn--", "xn--bcher-kva", "ab--", "é", "_", " ", "ex", "com", "1"}
	name := func() string {
		var b strings.Builder
		for range r.IntN(12) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		switch r.IntN(6) {
		case 0: // a label at or past 63
			b.WriteString("." + strings.Repeat("a", 62+r.IntN(3)) + ".com")
		case 1: // a name at or past 253
			for b.Len() < 250 {
				b.WriteString(".abcdefghi")
			}
			b.WriteString(strings.Repeat("k", r.IntN(5)) + ".com"[:r.IntN(5)])
		}
		return b.String()
	}
	decided := 0
	for i := range 300000 {
		d := name()
		if i < 4 {
			d = []string{"example.com", "Example.COM", "a-b.c0", "x.123"}[i]
		}
		want, wantOK := idnaDomain(d)
		got, ok := plainDomain(d)
		if ok {
			decided++
			if !wantOK || got != want {
				t.Fatalf("%q: plainDomain %q, idnaDomain %q, %v", d, got, want, wantOK)
			}
		}
		if got, ok := canonicalDomain(d); ok != wantOK || got != want {
			t.Fatalf("%q: canonicalDomain %q, %v, idnaDomain %q, %v", d, got, ok, want, wantOK)
		}
	}
	if decided < 1000 {
		t.Errorf("plainDomain decided %d names: the test makes too few plain ones", decided)
	}
}
