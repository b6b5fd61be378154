package mail

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"
)

// MinRSABits is the least RSA key size optin signs with: RFC 8301 3.2
// requires at least 1024 bits, and receivers now expect 2048.
const MinRSABits = 2048

// DKIMKey is one key optin signs its mail with (RFC 6376): the signing
// domain (d=), the selector (s=) under which its public key is published,
// and the private key, RSA of at least MinRSABits or Ed25519 (RFC 8463).
type DKIMKey struct {
	Domain   string
	Selector string
	Key      crypto.Signer
}

// dkimSigned are the header fields each signature covers: RFC 6376
// 5.4.1's list, and RFC 8058 3.1's List-Unsubscribe and
// List-Unsubscribe-Post, without which receivers ignore one-click
// unsubscribe. Each is signed once more than it occurs ("oversigned",
// RFC 6376 8.15), so a field added on the way breaks the signature.
var dkimSigned = []string{"From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe",
	"List-Unsubscribe-Post", "List-Id", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	"Auto-Submitted"}

// DKIMSigner adds a DKIM-Signature field per key to built mails, with
// relaxed canonicalization of header and body (RFC 6376 3.4.2, 3.4.4),
// which survives a relay's re-folding of header lines. Several keys let a
// new key be published and used beside the old one before the old one
// goes (rotation). It is safe for concurrent use.
type DKIMSigner struct {
	keys []DKIMKey
	now  func() time.Time
}

// NewDKIMSigner returns a signer for keys; now is the clock of the t= tag
// (nil means time.Now). It refuses an empty list, a key of another kind
// than RSA or Ed25519, an RSA key under MinRSABits, and a domain or
// selector that is not a plain DNS name.
func NewDKIMSigner(keys []DKIMKey, now func() time.Time) (*DKIMSigner, error) {
	if len(keys) == 0 {
		return nil, errors.New("mail: dkim: no key")
	}
	for _, k := range keys {
		if !dnsName(k.Domain) || !dnsName(k.Selector) {
			return nil, fmt.Errorf("mail: dkim: domain %q and selector %q must be DNS names", k.Domain, k.Selector)
		}
		if _, err := dkimAlgorithm(k.Key); err != nil {
			return nil, err
		}
	}
	if now == nil {
		now = time.Now
	}
	return &DKIMSigner{keys: append([]DKIMKey(nil), keys...), now: now}, nil
}

// dkimAlgorithm returns the a= tag for key, or why optin does not sign
// with it.
func dkimAlgorithm(key crypto.Signer) (string, error) {
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < MinRSABits {
			return "", fmt.Errorf("mail: dkim: RSA key of %d bits; at least %d are needed", pub.N.BitLen(), MinRSABits)
		}
		return "rsa-sha256", nil
	case ed25519.PublicKey:
		return "ed25519-sha256", nil
	default:
		return "", fmt.Errorf("mail: dkim: unsupported key type %T; use RSA or Ed25519", pub)
	}
}

// dnsName reports whether s is a DNS name of letters, digits, hyphens
// and underscores in dot-separated labels.
func dnsName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Sign puts a DKIM-Signature field for each key in front of o's header.
// o.Data must be as Build writes it: CRLF line ends, a header section
// ended by an empty line.
func (s *DKIMSigner) Sign(o *Outgoing) error {
	end := bytes.Index(o.Data, []byte("\r\n\r\n"))
	if end < 0 {
		return errors.New("mail: dkim: the mail has no end of header")
	}
	head, body := o.Data[:end+2], o.Data[end+4:]
	bh := sha256.New()
	relaxedBody(bh, body)
	bodyHash := base64.StdEncoding.EncodeToString(bh.Sum(nil))

	names, fields := selectFields(splitFields(head))
	hh := sha256.New()
	var canon []byte
	for _, f := range fields {
		canon = relaxedField(canon[:0], f)
		canon = append(canon, "\r\n"...)
		hh.Write(canon)
	}
	t := strconv.FormatInt(s.now().Unix(), 10)
	var out []byte
	for _, k := range s.keys {
		algo, err := dkimAlgorithm(k.Key)
		if err != nil {
			return err
		}
		tags := "v=1; a=" + algo + "; c=relaxed/relaxed; d=" + k.Domain + "; s=" + k.Selector +
			"; t=" + t + "; h=" + strings.Join(names, " : ") + "; bh=" + bodyHash + "; b="
		field := appendFolded(nil, "DKIM-Signature", tags)
		field = field[:len(field)-2] // the signature goes on after "b="
		h := cloneHash(hh)
		h.Write(relaxedField(nil, field))
		digest := h.Sum(nil)
		opts := crypto.SignerOpts(crypto.SHA256)
		if algo == "ed25519-sha256" {
			opts = crypto.Hash(0) // RFC 8463 3: Ed25519 signs the SHA-256 digest itself
		}
		sig, err := k.Key.Sign(rand.Reader, digest, opts)
		if err != nil {
			return fmt.Errorf("mail: dkim: %w", err)
		}
		out = append(out, field...)
		out = appendBase64Folded(out, base64.StdEncoding.EncodeToString(sig))
	}
	o.Data = append(out, o.Data...)
	return nil
}

// cloneHash returns a copy of h's state.
func cloneHash(h hash.Hash) hash.Hash {
	c, err := h.(hash.Cloner).Clone()
	if err != nil {
		panic(err) // sha256 digests clone
	}
	return c
}

// appendBase64Folded appends the signature b64 in lines of at most 76
// characters; white space inside b= is ignored (RFC 6376 3.5).
func appendBase64Folded(b []byte, b64 string) []byte {
	const first, rest = 40, 72
	n := min(first, len(b64))
	b = append(b, b64[:n]...)
	for b64 = b64[n:]; b64 != ""; b64 = b64[n:] {
		n = min(rest, len(b64))
		b = append(b, "\r\n "...)
		b = append(b, b64[:n]...)
	}
	return append(b, "\r\n"...)
}

// splitFields cuts a header section into its fields, each with its
// continuation lines and without the final CRLF.
func splitFields(head []byte) [][]byte {
	var fields [][]byte
	for len(head) > 0 {
		i := 0
		for {
			j := bytes.Index(head[i:], []byte("\r\n"))
			if j < 0 {
				i = len(head)
				break
			}
			i += j + 2
			if i >= len(head) || head[i] != ' ' && head[i] != '\t' {
				break
			}
		}
		fields = append(fields, bytes.TrimSuffix(head[:i], []byte("\r\n")))
		head = head[i:]
	}
	return fields
}

// selectFields returns the h= names and the fields they sign, in order:
// for a name that occurs n times, the instances from the last upwards
// (RFC 6376 5.4.2), and the name once more with no field, so an added
// instance breaks the signature (8.15).
func selectFields(all [][]byte) (names []string, fields [][]byte) {
	for _, name := range dkimSigned {
		for i := len(all) - 1; i >= 0; i-- {
			if n, _, ok := bytes.Cut(all[i], []byte(":")); ok && strings.EqualFold(string(bytes.TrimRight(n, " \t")), name) {
				names, fields = append(names, name), append(fields, all[i])
			}
		}
		names = append(names, name)
	}
	return names, fields
}

// relaxedField appends field in the relaxed header canonical form (RFC
// 6376 3.4.2), without a line end: the name in lower case, unfolded, each
// run of white space one space, none around the colon or at the end.
func relaxedField(b, field []byte) []byte {
	name, value, _ := bytes.Cut(field, []byte(":"))
	b = append(b, bytes.ToLower(bytes.TrimRight(name, " \t"))...)
	b = append(b, ':')
	space, started := false, false
	for _, c := range value {
		switch c {
		case '\r', '\n':
		case ' ', '\t':
			space = true
		default:
			if space && started {
				b = append(b, ' ')
			}
			space, started = false, true
			b = append(b, c)
		}
	}
	return b
}

// relaxedBody writes body in the relaxed body canonical form (RFC 6376
// 3.4.4) to w: each run of white space one space, none at a line's end,
// no empty lines at the end, and a non-empty body ending in CRLF.
func relaxedBody(w hash.Hash, body []byte) {
	var line []byte
	empty := 0 // empty lines held back: they count only if a line follows
	for len(body) > 0 {
		raw := body
		body = nil
		if i := bytes.Index(raw, []byte("\r\n")); i >= 0 {
			raw, body = raw[:i], raw[i+2:]
		}
		line = line[:0]
		space := false
		for _, c := range raw {
			if c == ' ' || c == '\t' {
				space = true
				continue
			}
			if space {
				line = append(line, ' ')
				space = false
			}
			line = append(line, c)
		}
		if len(line) == 0 {
			empty++
			continue
		}
		for ; empty > 0; empty-- {
			w.Write([]byte("\r\n"))
		}
		line = append(line, "\r\n"...)
		w.Write(line)
	}
}

// ParseDKIMKey reads a PEM private key (PKCS #8, or PKCS #1 for RSA) as
// "optin dkim keygen" writes it.
func ParseDKIMKey(pemData []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(pemData)
	if block == nil {
		return nil, errors.New("mail: dkim: no PEM block in the key file")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("mail: dkim: PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("mail: dkim: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("mail: dkim: unsupported key type %T", key)
	}
	if _, err := dkimAlgorithm(signer); err != nil {
		return nil, err
	}
	return signer, nil
}

// NewDKIMKey makes a private key of kind "rsa" (MinRSABits) or "ed25519"
// and returns it PEM-encoded (PKCS #8) with the TXT record that publishes
// its public key at selector._domainkey.domain (RFC 6376 3.6.1).
func NewDKIMKey(kind, domain, selector string) (pemKey []byte, record string, err error) {
	if !dnsName(domain) || !dnsName(selector) {
		return nil, "", fmt.Errorf("mail: dkim: domain %q and selector %q must be DNS names", domain, selector)
	}
	var key crypto.Signer
	switch kind {
	case "rsa":
		key, err = rsa.GenerateKey(rand.Reader, MinRSABits)
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, "", fmt.Errorf("mail: dkim: key type must be rsa or ed25519: %q", kind)
	}
	if err != nil {
		return nil, "", fmt.Errorf("mail: dkim: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, "", fmt.Errorf("mail: dkim: %w", err)
	}
	txt, err := DKIMRecord(key.Public())
	if err != nil {
		return nil, "", err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), txt, nil
}

// DKIMRecord returns the TXT record value for pub: "v=DKIM1; k=rsa;
// p=<SubjectPublicKeyInfo>" or "v=DKIM1; k=ed25519; p=<the 32 key
// bytes>" (RFC 8463 4).
func DKIMRecord(pub crypto.PublicKey) (string, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(p)
		if err != nil {
			return "", fmt.Errorf("mail: dkim: %w", err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(p), nil
	}
	return "", fmt.Errorf("mail: dkim: unsupported key type %T", pub)
}

// ZoneLine returns record as a DNS zone file line for
// selector._domainkey.domain, cut into quoted strings of at most 255
// characters as TXT records need (RFC 1035 3.3.14).
func ZoneLine(domain, selector, record string) string {
	var parts []string
	for record != "" {
		n := min(255, len(record))
		parts = append(parts, `"`+record[:n]+`"`)
		record = record[n:]
	}
	return selector + "._domainkey." + domain + ". IN TXT ( " + strings.Join(parts, " ") + " )"
}
