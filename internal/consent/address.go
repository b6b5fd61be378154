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
)

// Address is a validated e-mail address.
type Address struct {
	// Addr is the address to deliver to: NFC-normalized, the local part as
	// the person typed it, the domain lower-cased.
	Addr string
	// Key is the case-folded form used to find a subscriber and to compute
	// the suppression hash. optin treats local parts as case-insensitive, as
	// practically every mailbox provider does (a documented policy, R32).
	Key string
}

// ParseAddress validates s as a bare addr-spec (R27-R33) and returns it in
// normalized form. Surrounding white space is ignored. It rejects display
// names, comments, angle brackets, group syntax, quoted local parts, domain
// literals, domains without a dot, control characters and addresses over the
// RFC length limits (counted in UTF-8 octets). UTF-8 local parts and domains
// are accepted (RFC 6532). Every rejection is an EInvalid *Error.
func ParseAddress(s string) (Address, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Address{}, Errorf(EInvalid, "email is required")
	}
	if !utf8.ValidString(s) {
		return Address{}, Errorf(EInvalid, "email is not valid UTF-8")
	}
	s = norm.NFC.String(s)
	if len(s) > maxAddressOctets {
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
	switch {
	case len(local) > maxLocalOctets:
		return Address{}, Errorf(EInvalid, "email local part is longer than %d octets", maxLocalOctets)
	case len(domain) > maxDomainOctets:
		return Address{}, Errorf(EInvalid, "email domain is longer than %d octets", maxDomainOctets)
	case strings.HasPrefix(domain, "["):
		return Address{}, Errorf(EInvalid, "email domain must be a name, not an IP literal")
	case !validDomain(strings.ToLower(domain)):
		return Address{}, Errorf(EInvalid, "email domain %q is not a valid domain name", domain)
	}
	addr := local + "@" + strings.ToLower(domain)
	return Address{Addr: addr, Key: AddressKey(addr)}, nil
}

// AddressKey returns the case-folded key of an address already normalized
// by ParseAddress (such as a stored Subscriber.Email).
func AddressKey(addr string) string { return strings.ToLower(addr) }

// domainProfile validates domain names as IDNA2008 registration does:
// only letters, digits and hyphens (or valid Unicode labels), which
// refuses look-alike forms such as full-width letters and invisible
// characters that would give one mailbox several keys.
var domainProfile = idna.New(idna.ValidateForRegistration(), idna.StrictDomainName(true))

// validDomain reports whether d is a valid host name with at least two
// labels and a top-level label that is not all digits (no bare IPs).
func validDomain(d string) bool {
	ascii, err := domainProfile.ToASCII(d)
	if err != nil {
		return false
	}
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 {
		return false
	}
	tld := labels[len(labels)-1]
	return strings.TrimLeft(tld, "0123456789") != ""
}
