package consent_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"optin/internal/consent"
)

func TestParseAddressAccepts(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantAddr string
		wantKey  string
	}{
		{"plain", "ann@example.com", "ann@example.com", "ann@example.com"},
		{"plus tag", "ann+news@example.com", "ann+news@example.com", "ann+news@example.com"},
		{"subdomain", "ann@mail.eu.example.com", "ann@mail.eu.example.com", "ann@mail.eu.example.com"},
		{"dots and hyphens", "ann.lee@my-host.example", "ann.lee@my-host.example", "ann.lee@my-host.example"},
		{"UTF-8 local part", "jösé@example.com", "jösé@example.com", "jösé@example.com"},
		{"IDN domain", "a@bücher.example", "a@bücher.example", "a@bücher.example"},
		{"upper-case domain lowered, local part kept", "Ann@Example.COM", "Ann@example.com", "ann@example.com"},
		{"upper-case UTF-8 local part folded in key only", "JÖSÉ@EXAMPLE.COM", "JÖSÉ@example.com", "jösé@example.com"},
		{"surrounding spaces trimmed", "  ann@example.com \t\n", "ann@example.com", "ann@example.com"},
		{"NFD normalized to NFC", "jo\u0301se\u0301@example.com", "jósé@example.com", "jósé@example.com"},
		{"NFD domain normalized to NFC", "a@bu\u0308cher.example", "a@bücher.example", "a@bücher.example"},
		{"local part of 64 octets", strings.Repeat("a", 64) + "@example.com", strings.Repeat("a", 64) + "@example.com", strings.Repeat("a", 64) + "@example.com"},
		{"local part of 64 octets in 32 runes", strings.Repeat("é", 32) + "@example.com", strings.Repeat("é", 32) + "@example.com", strings.Repeat("é", 32) + "@example.com"},
		{"254 octets total", maxLengthAddress(254), maxLengthAddress(254), maxLengthAddress(254)},
		{"label of 63 octets", "a@" + strings.Repeat("b", 63) + ".com", "a@" + strings.Repeat("b", 63) + ".com", "a@" + strings.Repeat("b", 63) + ".com"},
		// One mailbox, one form: A-labels are decoded to U-labels.
		{"A-label domain decoded", "a@xn--bcher-kva.example", "a@bücher.example", "a@bücher.example"},
		{"upper-case A-label", "Ann@XN--BCHER-KVA.EXAMPLE", "Ann@bücher.example", "ann@bücher.example"},
		{"upper-case U-label", "a@BÜCHER.example", "a@bücher.example", "a@bücher.example"},
		{"A-label and U-label mixed", "a@xn--bcher-kva.bücher.example", "a@bücher.bücher.example", "a@bücher.bücher.example"},
		{"A-label spelling over 254 octets whose canonical form fits", aLabelAddress(14), uLabelAddress(14), uLabelAddress(14)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := consent.ParseAddress(tt.in)
			if err != nil {
				t.Fatalf("ParseAddress(%q): got err %v, want nil", tt.in, err)
			}
			if got.Addr != tt.wantAddr {
				t.Errorf("Addr: got %q, want %q", got.Addr, tt.wantAddr)
			}
			if got.Key != tt.wantKey {
				t.Errorf("Key: got %q, want %q", got.Key, tt.wantKey)
			}
		})
	}
}

func TestParseAddressRejects(t *testing.T) {
	multiByteLocal := strings.Repeat("é", 33) // 33 runes, 66 octets
	if n := utf8.RuneCountInString(multiByteLocal); n > 64 {
		t.Fatalf("test setup: rune count %d, want <= 64", n)
	}
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"only spaces", "   "},
		{"display name", "Bob <b@x.com>"},
		{"angle brackets", "<b@x.com>"},
		{"comment", "b@x.com (c)"},
		{"comment without space", "b@x.com(c)"},
		{"group", "g: a@b.com;"},
		{"group without spaces", "g:a@b.com;"},
		{"quoted local part with space", `"a b"@x.com`},
		{"quoted local part", `"ab"@x.com`},
		{"domain literal", "a@[1.2.3.4]"},
		{"domain without dot", "a@localhost"},
		{"missing @", "ann.example.com"},
		{"missing local part", "@example.com"},
		{"missing domain", "ann@"},
		{"two @", "a@b@example.com"},
		{"CRLF header injection", "a@b.com\r\nBcc: c@d.com"},
		{"LF header injection", "a@b.com\nBcc:c@d.com"},
		{"NUL byte", "a\x00b@example.com"},
		{"space inside", "ann lee@example.com"},
		{"tab inside", "ann\tlee@example.com"},
		// net/mail takes any non-ASCII rune as atext; these must still go.
		{"no-break space inside", "ann\u00a0lee@example.com"},
		{"ideographic space inside", "ann\u3000lee@example.com"},
		{"line separator inside", "ann@example.com\u2028x"},
		{"C1 control NEL inside", "ann\u0085lee@example.com"},
		{"C1 control in domain", "ann@exa\u009bmple.com"},
		// Look-alikes that would give one mailbox several keys.
		{"punctuation in domain", "a@ex!ample.com"},
		{"underscore in domain", "a@exa_mple.com"},
		{"braces in domain", "a@{x}.com"},
		{"bare IP as domain", "a@1.2.3.4"},
		{"numeric top-level label", "a@b.123"},
		{"zero-width space in domain", "a@x\u200b.com"},
		{"zero-width space in local part", "a\u200b@x.com"},
		{"full-width domain", "a@\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.com"},
		{"local part of 65 octets", strings.Repeat("a", 65) + "@example.com"},
		{"multi-byte local part over 64 octets", multiByteLocal + "@example.com"},
		{"255 octets total", maxLengthAddress(255)},
		{"label starting with hyphen", "a@-b.com"},
		{"label ending with hyphen", "a@b-.com"},
		{"label of 64 octets", "a@" + strings.Repeat("b", 64) + ".com"},
		{"empty label", "a@b..com"},
		{"leading dot in domain", "a@.b.com"},
		{"trailing dot in domain", "a@b.com."},
		{"invalid UTF-8", "a\xff@example.com"},
		{"invalid UTF-8 in domain", "a@b\xc3.com"},
		{"list of two", "a@b.com, c@d.com"},
		{"A-label that is not Punycode", "a@xn--zz.example"},
		{"A-label of a label ending in a hyphen", "a@xn--abc-.example"},
		{"A-label of a label not in NFC", "a@xn--bucher-xyd.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := consent.ParseAddress(tt.in)
			if err == nil {
				t.Fatalf("ParseAddress(%q): got %+v, want an error", tt.in, got)
			}
			if code := consent.ErrorCode(err); code != consent.EInvalid {
				t.Errorf("ErrorCode(%v): got %q, want %q", err, code, consent.EInvalid)
			}
			if got != (consent.Address{}) {
				t.Errorf("Address on error: got %+v, want zero", got)
			}
		})
	}
}

// aLabelAddress and uLabelAddress return one mailbox spelled with n
// A-labels or n U-labels "bücher" before ".example", under a local part of
// 64 octets.
func aLabelAddress(n int) string {
	return strings.Repeat("a", 64) + "@" + strings.Repeat("xn--bcher-kva.", n) + "example"
}

func uLabelAddress(n int) string {
	return strings.Repeat("a", 64) + "@" + strings.Repeat("bücher.", n) + "example"
}

// TestAddressOneKeyPerMailbox: every spelling of one mailbox gives the same
// Addr and Key, so signups, suppressions, erasure and the mail caps all
// find the same subscriber.
func TestAddressOneKeyPerMailbox(t *testing.T) {
	spellings := []string{"ann@bücher.example", "ann@xn--bcher-kva.example", "ANN@XN--BCHER-KVA.EXAMPLE",
		"Ann@Bücher.Example", "ann@bu\u0308cher.example", " ann@xn--bcher-kva.example "}
	want, err := consent.ParseAddress(spellings[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range spellings[1:] {
		got, err := consent.ParseAddress(s)
		if err != nil {
			t.Errorf("ParseAddress(%q): %v", s, err)
			continue
		}
		if got.Key != want.Key {
			t.Errorf("ParseAddress(%q).Key = %q, want %q", s, got.Key, want.Key)
		}
		if consent.AddressKey(got.Addr) != want.Key {
			t.Errorf("AddressKey(%q) = %q, want %q", got.Addr, consent.AddressKey(got.Addr), want.Key)
		}
	}
}

// maxLengthAddress returns an ASCII address of exactly n octets (n >= 70)
// with a 64-octet local part and domain labels of at most 63 octets.
func maxLengthAddress(n int) string {
	want := n - 65 // octets left for the domain after the local part and "@"
	domain := "com"
	for len(domain) < want {
		room := want - len(domain) - 1 // minus the dot before the new label
		l := min(63, room)
		if room-l == 1 { // a single octet left could not hold ".x"
			l--
		}
		domain = strings.Repeat("b", l) + "." + domain
	}
	return strings.Repeat("a", 64) + "@" + domain
}

func TestMaxLengthAddressHelper(t *testing.T) {
	for _, n := range []int{254, 255} {
		if got := len(maxLengthAddress(n)); got != n {
			t.Errorf("len(maxLengthAddress(%d)): got %d, want %d", n, got, n)
		}
	}
}
