package consent

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// Address length limits in octets (RFC 5321 4.5.3.1, RFC 3696 erratum 1690).
const (
	maxLocalOctets   = 64
	maxDomainOctets  = 255
	maxAddressOctets = 254
	// maxInputOctets bounds the work spent on input; the limits above
	// apply to the canonical form, which may be shorter than what was typed
	// (an A-label is longer than its U-label).
	maxInputOctets = 1024
)

// Address is a validated e-mail address.
type Address struct {
	// Addr is the address to deliver to: NFC-normalized, the local part as
	// the person typed it, the domain in its canonical Unicode form (see
	// ParseAddress).
	Addr string
	// Key is the case-folded form used to find a subscriber and to compute
	// the suppression hash. optin treats local parts as case-insensitive, as
	// practically every mailbox provider does: a documented policy, since
	// RFC 5321 section 2.4 lets a local part be case-sensitive.
	Key string
}

// ParseAddress validates s as a bare addr-spec (RFC 5322 section 3.4.1)
// and returns it in normalized form. Surrounding white space is ignored.
// It rejects display names, comments, angle brackets, group syntax, quoted
// local parts, domain literals, domains without a dot, control characters
// and addresses over the RFC length limits (counted in UTF-8 octets).
// UTF-8 local parts and domains are accepted (RFC 6532). Every rejection
// is an EInvalid *Error.
//
// One mailbox has one Address however its domain is spelled: the domain is
// lower-cased, checked as IDNA2008 registration does, and written with
// U-labels (UTS #46 ToUnicode), so "a@xn--bcher-kva.example" and
// "a@BÜCHER.example" both become "a@bücher.example". The length limits
// apply to that canonical form.
func ParseAddress(s string) (Address, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Address{}, Errorf(EInvalid, "email is required")
	}
	if !utf8.ValidString(s) {
		return Address{}, Errorf(EInvalid, "email is not valid UTF-8")
	}
	s = norm.NFC.String(s)
	if len(s) > maxInputOctets {
		return Address{}, Errorf(EInvalid, "email is longer than %d octets", maxAddressOctets)
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return Address{}, Errorf(EInvalid, "email must be a bare address such as name@example.com")
		}
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return Address{}, Errorf(EInvalid, "email must be a bare address such as name@example.com")
	}
	at := strings.LastIndexByte(s, '@')
	local, domain := s[:at], s[at+1:]
	if strings.HasPrefix(domain, "[") {
		return Address{}, Errorf(EInvalid, "email domain must be a name, not an IP literal")
	}
	canonical, ok := canonicalDomain(domain)
	if !ok {
		return Address{}, Errorf(EInvalid, "email domain %q is not a valid domain name", domain)
	}
	addr := local + "@" + canonical
	switch {
	case len(local) > maxLocalOctets:
		return Address{}, Errorf(EInvalid, "email local part is longer than %d octets", maxLocalOctets)
	case len(canonical) > maxDomainOctets:
		return Address{}, Errorf(EInvalid, "email domain is longer than %d octets", maxDomainOctets)
	case len(addr) > maxAddressOctets:
		return Address{}, Errorf(EInvalid, "email is longer than %d octets", maxAddressOctets)
	}
	return Address{Addr: addr, Key: AddressKey(addr)}, nil
}

// AddressKey returns the case-folded key of an address already normalized
// by ParseAddress (such as a stored Subscriber.Email).
func AddressKey(addr string) string { return strings.ToLower(addr) }

// WireAddress returns addr as it goes to the relay: with its domain in
// A-labels when its local part is ASCII, so the mail needs no SMTPUTF8
// (RFC 6531), which not every relay offers; an address with a UTF-8 local
// part, or whose domain does not convert, is returned as it is.
func WireAddress(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || !isASCII(addr[:at]) || isASCII(addr[at+1:]) {
		return addr
	}
	ascii, err := domainProfile.ToASCII(addr[at+1:])
	if err != nil {
		return addr
	}
	return addr[:at+1] + ascii
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// domainProfile validates domain names as IDNA2008 registration does:
// only letters, digits and hyphens (or valid Unicode labels), which
// refuses look-alike forms such as full-width letters and invisible
// characters that would give one mailbox several keys.
var domainProfile = idna.New(idna.ValidateForRegistration(), idna.StrictDomainName(true))

// foldDomainCase lower-cases d as UTS #46 mapping does: every letter to
// its small form but Cherokee, whose small letters map to the capitals
// (Unicode 8), so the capitals are the valid form and stay.
func foldDomainCase(d string) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Cherokee, r) {
			return r
		}
		return unicode.ToLower(r)
	}, d)
}

// canonicalDomain returns d with its case folded (foldDomainCase) and its
// labels as U-labels (an A-label "xn--..." decoded), when d is a valid
// host name with at least two labels and a top-level label that is not
// all digits (no bare IPs). Every label d accepts is already in UTS #46
// mapped form (the registration profile refuses what mapping would
// change, case aside), so the result is UTS #46 ToUnicode of d, and a
// fixed point.
func canonicalDomain(d string) (string, bool) {
	if c, ok := plainDomain(d); ok {
		return c, true
	}
	return idnaDomain(d)
}

// plainDomain is canonicalDomain for the names of nearly every signup:
// labels of ASCII letters, digits and hyphens that are not A-labels, which
// the IDNA profile would only lower-case. It answers ok only for such a
// name that canonicalDomain accepts, without the profile's mapping and
// its allocations (a few percent of a signup's CPU); anything else is
// left to idnaDomain.
func plainDomain(d string) (string, bool) {
	if len(d) > 253 {
		return "", false
	}
	upper, labels, start := false, 0, 0
	for i := 0; i <= len(d); i++ {
		if i < len(d) && d[i] != '.' {
			c := d[i]
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
			case 'A' <= c && c <= 'Z':
				upper = true
			default:
				return "", false
			}
			continue
		}
		l := d[start:i]
		// Empty, too long, a hyphen at either end, or "--" in the third
		// and fourth places (an A-label "xn--", or what IDNA reserves).
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' || len(l) >= 4 && l[2:4] == "--" {
			return "", false
		}
		labels++
		start = i + 1
	}
	if labels < 2 || strings.TrimLeft(d[strings.LastIndexByte(d, '.')+1:], "0123456789") == "" {
		return "", false
	}
	if upper {
		d = strings.ToLower(d)
	}
	return d, true
}

// idnaDomain is canonicalDomain through the IDNA profile.
func idnaDomain(d string) (string, bool) {
	ascii, err := domainProfile.ToASCII(foldDomainCase(d))
	if err != nil {
		return "", false
	}
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 || strings.TrimLeft(labels[len(labels)-1], "0123456789") == "" {
		return "", false
	}
	u, err := domainProfile.ToUnicode(ascii)
	if err != nil {
		return "", false
	}
	return u, true
}
