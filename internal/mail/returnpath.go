package mail

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"strings"

	"optin/internal/consent"
)

// ReturnPath makes and checks VERP envelope senders: each mail goes out
// with MAIL FROM:<b-ID-MAC@domain>, where ID is the local part of its
// Message-ID and MAC a keyed hash of that ID and the recipient's
// address. A bounce comes back to that address (RFC 5321 4.5.5), so it
// names the mail; the MAC proves that optin sent that mail to the address
// the report names, so a forged report about any other address is
// recognised and changes nothing.
type ReturnPath struct {
	domain   string
	idDomain string
	keys     [][]byte
}

// verpPrefix starts every VERP local part.
const verpPrefix = "b-"

// verpMACLen is the MAC's length in bytes: 80 bits, 16 characters.
const verpMACLen = 10

var verpEncoding = base32.HexEncoding.WithPadding(base32.NoPadding)

// NewReturnPath returns a ReturnPath for bounces to domain about mails
// whose Message-IDs end in "@"+idDomain. keys are MAC keys: the first
// makes addresses, each of them is accepted in a report (rotation).
func NewReturnPath(domain, idDomain string, keys [][]byte) (*ReturnPath, error) {
	if !dnsName(domain) || len(keys) == 0 {
		return nil, errors.New("mail: return path: need a domain name and a key")
	}
	return &ReturnPath{domain: strings.ToLower(domain), idDomain: strings.ToLower(idDomain), keys: keys}, nil
}

// Domain is the domain bounces go to.
func (r *ReturnPath) Domain() string { return r.domain }

// Address returns the envelope sender for the mail with messageID to rcpt.
// ok is false for a Message-ID that is not optin's (another domain, or a
// local part other than up to 40 letters and digits) and for an address
// that does not parse: such a mail goes out with the plain sender.
func (r *ReturnPath) Address(messageID, rcpt string) (addr string, ok bool) {
	id, ok := r.localID(messageID)
	if !ok {
		return "", false
	}
	a, err := consent.ParseAddress(rcpt)
	if err != nil {
		return "", false
	}
	return verpPrefix + id + "-" + r.mac(r.keys[0], id, a.Key) + "@" + r.domain, true
}

// localID returns messageID's local part when it fits a VERP local part.
func (r *ReturnPath) localID(messageID string) (string, bool) {
	id, domain, ok := strings.Cut(strings.ToLower(messageID), "@")
	if !ok || domain != r.idDomain || id == "" || len(id) > 40 {
		return "", false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return "", false
		}
	}
	return id, true
}

func (r *ReturnPath) mac(key []byte, id, addrKey string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("optin return path\x00" + id + "\x00" + addrKey))
	return strings.ToLower(verpEncoding.EncodeToString(m.Sum(nil)[:verpMACLen]))
}

// IsVERP reports whether local has the shape of a VERP local part.
func IsVERP(local string) bool {
	return strings.HasPrefix(strings.ToLower(local), verpPrefix)
}

// Check returns the Message-ID named by the VERP local part local and the
// first of candidates its MAC was made for. ok is false when local is not
// a VERP local part or no candidate matches: a forged or garbled report.
func (r *ReturnPath) Check(local string, candidates []consent.Address) (messageID string, addr consent.Address, ok bool) {
	local = strings.ToLower(local)
	rest, found := strings.CutPrefix(local, verpPrefix)
	if !found {
		return "", consent.Address{}, false
	}
	i := strings.LastIndexByte(rest, '-')
	if i <= 0 {
		return "", consent.Address{}, false
	}
	id, mac := rest[:i], rest[i+1:]
	for _, c := range candidates {
		for _, k := range r.keys {
			if hmac.Equal([]byte(mac), []byte(r.mac(k, id, c.Key))) {
				return id + "@" + r.idDomain, c, true
			}
		}
	}
	return "", consent.Address{}, false
}
