package mail

import (
	"bytes"
	"strings"
	"testing"

	"optin/internal/consent"
)

func TestReturnPath(t *testing.T) {
	oldKey, newKey := bytes.Repeat([]byte{'o'}, 32), bytes.Repeat([]byte{'n'}, 32)
	old, err := NewReturnPath("bounces.example.com", "example.com", [][]byte{oldKey})
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := NewReturnPath("bounces.example.com", "example.com", [][]byte{newKey, oldKey})
	if err != nil {
		t.Fatal(err)
	}
	addr := func(s string) consent.Address {
		a, err := consent.ParseAddress(s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	const id = "0123456789abcdefghijklmnopqrstuv0123@example.com"
	verp, ok := old.Address(id, "Ann@Example.com")
	if !ok || len(verp[:strings.IndexByte(verp, '@')]) > 64 || !strings.HasSuffix(verp, "@bounces.example.com") {
		t.Fatalf("Address: %q, %v; want a local part of at most 64 octets at bounces.example.com", verp, ok)
	}
	local := verp[:strings.IndexByte(verp, '@')]
	for name, rp := range map[string]*ReturnPath{"same key": old, "after rotation": rotated} {
		mid, a, ok := rp.Check(strings.ToUpper(local), []consent.Address{addr("bob@example.com"), addr("ann@example.com")})
		if !ok || mid != id || a.Key != addr("ann@example.com").Key {
			t.Errorf("%s: Check: %q %q %v, want %s and ann", name, mid, a.Addr, ok, id)
		}
	}
	for name, c := range map[string]struct {
		local string
		cands []consent.Address
	}{
		"another address":    {local, []consent.Address{addr("bob@example.com")}},
		"no address":         {local, nil},
		"changed message id": {strings.Replace(local, "0123", "0124", 1), []consent.Address{addr("ann@example.com")}},
		"not verp":           {"postmaster", []consent.Address{addr("ann@example.com")}},
		"no mac":             {"b-0123", []consent.Address{addr("ann@example.com")}},
	} {
		if _, _, ok := old.Check(c.local, c.cands); ok {
			t.Errorf("%s: Check accepted it", name)
		}
	}
	if _, _, ok := (&ReturnPath{domain: "bounces.example.com", idDomain: "example.com", keys: [][]byte{newKey}}).Check(local,
		[]consent.Address{addr("ann@example.com")}); ok {
		t.Error("a key that did not make the address accepted it")
	}
	for _, mid := range []string{"x@other.example", "a.b@example.com", strings.Repeat("a", 41) + "@example.com", "noat"} {
		if v, ok := old.Address(mid, "ann@example.com"); ok {
			t.Errorf("Address(%q): %q, want none", mid, v)
		}
	}
}
