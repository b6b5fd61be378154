package consent_test

import (
	"net/mail"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"optin/internal/consent"
)

// FuzzParseAddress checks that every address ParseAddress accepts is in the
// documented normal form, within the RFC length limits, free of invisible
// characters, a bare addr-spec to net/mail, a fixed point of
// ParseAddress, and the same mailbox when spelled as it goes to the relay.
// Rejections must be EInvalid *Errors.
//
// Seeds: testdata/fuzz/FuzzParseAddress.
func FuzzParseAddress(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		a, err := consent.ParseAddress(s)
		if err != nil {
			if got := consent.ErrorCode(err); got != consent.EInvalid {
				t.Fatalf("ParseAddress(%q): got error code %q (%v), want %q", s, got, err, consent.EInvalid)
			}
			if a != (consent.Address{}) {
				t.Fatalf("ParseAddress(%q): got %+v with error %v, want the zero Address", s, a, err)
			}
			return
		}
		checkNormalAddress(t, s, a)

		again, err := consent.ParseAddress(a.Addr)
		if err != nil {
			t.Fatalf("ParseAddress(%q) = %q, but ParseAddress(%q): got err %v, want nil (not idempotent)", s, a.Addr, a.Addr, err)
		}
		if again != a {
			t.Fatalf("ParseAddress(%q) = %+v, but ParseAddress(%q) = %+v, want the same (not idempotent)", s, a, a.Addr, again)
		}
		if got, want := consent.AddressKey(a.Addr), a.Key; got != want {
			t.Fatalf("AddressKey(%q): got %q, want %q", a.Addr, got, want)
		}
		// The spelling sent to the relay is the same mailbox.
		if wire := consent.WireAddress(a.Addr); wire != a.Addr {
			if back, err := consent.ParseAddress(wire); err != nil || back != a {
				t.Fatalf("ParseAddress(WireAddress(%q) = %q): got %+v, %v, want %+v", a.Addr, wire, back, err, a)
			}
		}
	})
}

// checkNormalAddress checks the properties of an accepted address a parsed
// from input s.
func checkNormalAddress(t *testing.T, s string, a consent.Address) {
	t.Helper()
	addr := a.Addr
	if !utf8.ValidString(addr) {
		t.Fatalf("ParseAddress(%q): Addr %q is not valid UTF-8", s, addr)
	}
	if !norm.NFC.IsNormalString(addr) {
		t.Fatalf("ParseAddress(%q): Addr %q is not NFC", s, addr)
	}
	if n := strings.Count(addr, "@"); n != 1 {
		t.Fatalf("ParseAddress(%q): Addr %q has %d '@', want exactly 1", s, addr, n)
	}
	local, domain, _ := strings.Cut(addr, "@")
	if local == "" || domain == "" {
		t.Fatalf("ParseAddress(%q): Addr %q has an empty local part or domain", s, addr)
	}
	if len(local) > 64 {
		t.Fatalf("ParseAddress(%q): local part of %q is %d octets, want <= 64", s, addr, len(local))
	}
	if len(domain) > 255 {
		t.Fatalf("ParseAddress(%q): domain of %q is %d octets, want <= 255", s, addr, len(domain))
	}
	if len(addr) > 254 {
		t.Fatalf("ParseAddress(%q): Addr %q is %d octets, want <= 254", s, addr, len(addr))
	}
	// Lower-case as UTS #46 maps it: ASCII letters always; a few scripts
	// map to their capitals (Cherokee small letters become capitals), so
	// "lower-case" is what mapping makes, which idempotency checks below.
	if strings.ContainsFunc(domain, func(r rune) bool { return r >= 'A' && r <= 'Z' }) {
		t.Fatalf("ParseAddress(%q): domain of %q has upper-case ASCII letters", s, addr)
	}
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, "[") {
		t.Fatalf("ParseAddress(%q): domain of %q is not a dotted host name", s, addr)
	}
	for i, r := range addr {
		if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			t.Fatalf("ParseAddress(%q): Addr %q has space, control or format character %U at byte %d", s, addr, r, i)
		}
	}
	if got, want := a.Key, strings.ToLower(addr); got != want {
		t.Fatalf("ParseAddress(%q): Key %q, want strings.ToLower(Addr) = %q", s, got, want)
	}
	m, err := mail.ParseAddress(addr)
	if err != nil {
		t.Fatalf("ParseAddress(%q) = %q, but net/mail.ParseAddress: got err %v, want nil", s, addr, err)
	}
	if m.Address != addr || m.Name != "" {
		t.Fatalf("net/mail.ParseAddress(%q): got Address %q Name %q, want Address %q and no Name", addr, m.Address, m.Name, addr)
	}
}
