// Package token issues and verifies the signed links (JWTs) used by the
// double-opt-in email service: confirmation, "not me", unsubscribe,
// preference and re-awaken links.
//
// Tokens are compact JWS strings signed with HMAC-SHA256. Every purpose is
// cryptographically separated from every other one: it has its own JWT
// audience, its own "typ" header and its own HMAC key derived from the
// configured secret, so a token minted for one purpose can never be accepted
// for another.
//
// Verify reports failures as ErrInvalid or ErrExpired only. ErrExpired is
// returned exclusively for tokens whose signature is genuine and whose other
// claims are all correct, so callers may safely act on it (for example by
// offering to send a fresh link).
package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"optin/internal/jsonenc"
)

// Purpose names what a token may be used for; each purpose is its own JWT
// audience, typ and derived key.
type Purpose string

// The purposes a token can be issued for.
const (
	// Confirm tokens confirm a pending subscription.
	Confirm Purpose = "confirm"
	// NotMe tokens let the recipient of a confirmation email report that they
	// did not request it.
	NotMe Purpose = "not-me"
	// Unsubscribe tokens unsubscribe a subscriber.
	Unsubscribe Purpose = "unsubscribe"
	// Preferences tokens open a subscriber's preference page.
	Preferences Purpose = "preferences"
	// Reawaken tokens re-activate a dormant subscription.
	Reawaken Purpose = "reawaken"
	// Interaction tokens are what a confirmation page's script puts in
	// its form when a person's pointer or key touched the page; the
	// subject is the link's own subject.
	Interaction Purpose = "interaction"
)

// PreferencesTTL is the lifetime of a preference-center link, mailed or
// handed out by an operator.
const PreferencesTTL = 30 * 24 * time.Hour

// Key is one signing secret. ID is sent as the JWT "kid" header and must
// match ^[A-Za-z0-9_-]{1,32}$; Secret must be at least 32 bytes long and
// should come from a cryptographically secure random source.
type Key struct {
	ID     string
	Secret []byte
}

// Claims is the application-level content of a token.
type Claims struct {
	// Subject is an opaque identifier (never an email address). Required.
	Subject string
	// Topic is an optional topic identifier, carried as the JSON claim "tpc"
	// and omitted when empty.
	Topic string
	// IssuedAt is set by Issue from the issuer's clock; any value passed to
	// Issue is ignored. Verify returns it with one-second precision.
	IssuedAt time.Time
	// ExpiresAt is the expiry time. Required. Tokens carry it with
	// one-second precision (truncated).
	ExpiresAt time.Time
}

// ErrInvalid is returned by Verify for malformed or tampered tokens, a wrong
// alg, aud, typ, iss or kid, missing claims and any other verification
// failure that is not a plain expiry.
var ErrInvalid = errors.New("token: invalid")

// ErrExpired is returned by Verify only when the signature verified and
// everything else about the token is right, but its exp (plus leeway) has
// passed.
var ErrExpired = errors.New("token: expired")

const (
	// maxTokenLen is the longest token string Verify accepts and Issue
	// produces.
	maxTokenLen = 4096
	// minSecretLen is the shortest accepted Key.Secret.
	minSecretLen = 32
	// maxKeyIDLen is the longest accepted Key.ID.
	maxKeyIDLen = 32
	// leeway is the allowed clock skew for exp and iat.
	leeway = 30 * time.Second
	// deriveLabel prefixes the purpose in the per-purpose key derivation.
	deriveLabel = "optin token v1 "
)

// purposes returns every known purpose. It is a function rather than a
// package-level variable so that no package state can be mutated.
func purposes() []Purpose {
	return []Purpose{Confirm, NotMe, Unsubscribe, Preferences, Reawaken, Interaction}
}

// typ returns the JWT "typ" header value for tokens of purpose p.
func (p Purpose) typ() string { return string(p) + "+jwt" }

// jwtClaims is the wire format of a token's payload.
type jwtClaims struct {
	Topic string `json:"tpc,omitempty"`
	jwt.RegisteredClaims
}

// purposeState holds everything needed to issue and verify tokens of one
// purpose. It is immutable after NewIssuer returns.
type purposeState struct {
	purpose Purpose
	typ     string
	// keys maps a kid to the HMAC key derived for this purpose.
	keys map[string][]byte
	// signKey is the derived key of keys[0] passed to NewIssuer.
	signKey []byte
	parser  *jwt.Parser
	// head is the encoded JOSE header of the tokens Issue signs, made once
	// by the jwt library (see issueHead).
	head string
	// macs holds HMAC-SHA256 states keyed with signKey, for reuse.
	macs sync.Pool
}

// Issuer signs and verifies tokens. Safe for concurrent use.
type Issuer struct {
	issuer   string
	now      func() time.Time
	purposes map[Purpose]*purposeState
	// challengeKey is derived from the signing key for stateless
	// challenges that are not tokens (see ChallengeKey).
	challengeKey []byte
}

// NewIssuer returns an Issuer that stamps tokens with the JWT issuer claim
// issuer. keys[0] signs new tokens; every key in keys is accepted when
// verifying (selected by the token's "kid" header), which allows key
// rotation by prepending a new key and later dropping the old one.
//
// NewIssuer fails if issuer is empty, keys is empty, a key ID is empty,
// duplicated or does not match ^[A-Za-z0-9_-]{1,32}$, or a secret is shorter
// than 32 bytes. If now is nil, time.Now is used. The secrets are not
// retained: per-purpose keys are derived from them once, here.
func NewIssuer(issuer string, keys []Key, now func() time.Time) (*Issuer, error) {
	if issuer == "" {
		return nil, errors.New("token: empty issuer")
	}
	if len(keys) == 0 {
		return nil, errors.New("token: no keys")
	}
	if now == nil {
		now = time.Now
	}
	seen := make(map[string]bool, len(keys))
	for n, k := range keys {
		if !validKeyID(k.ID) {
			return nil, fmt.Errorf("token: key %d: invalid key ID %q (want 1-32 of [A-Za-z0-9_-])", n, k.ID)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("token: key %d: duplicate key ID %q", n, k.ID)
		}
		seen[k.ID] = true
		if len(k.Secret) < minSecretLen {
			return nil, fmt.Errorf("token: key %q: secret is %d bytes, need at least %d", k.ID, len(k.Secret), minSecretLen)
		}
	}

	i := &Issuer{
		issuer:       issuer,
		now:          now,
		purposes:     make(map[Purpose]*purposeState, len(purposes())),
		challengeKey: deriveKey(keys[0].Secret, challengePurpose),
	}
	for _, p := range purposes() {
		ps := &purposeState{
			purpose: p,
			typ:     p.typ(),
			keys:    make(map[string][]byte, len(keys)),
		}
		for _, k := range keys {
			ps.keys[k.ID] = deriveKey(k.Secret, p)
		}
		ps.signKey = ps.keys[keys[0].ID]
		head, err := issueHead(keys[0].ID, ps.typ)
		if err != nil {
			return nil, err
		}
		ps.head = head
		signKey := ps.signKey
		ps.macs.New = func() any { return hmac.New(sha256.New, signKey) }
		ps.parser = jwt.NewParser(
			jwt.WithValidMethods([]string{"HS256"}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithIssuer(issuer),
			jwt.WithAudience(string(p)),
			jwt.WithLeeway(leeway),
			jwt.WithTimeFunc(now),
			// Reject non-canonical base64 so that a token string cannot be
			// altered (e.g. in the unused low bits of the last character)
			// and still verify.
			jwt.WithStrictDecoding(),
		)
		i.purposes[p] = ps
	}
	return i, nil
}

// challengePurpose labels the derivation of ChallengeKey; it is no token
// purpose, so no token verifies under that key.
const challengePurpose Purpose = "challenge"

// ChallengeKey returns a 32-byte HMAC key derived from the signing key,
// for stateless challenges that every instance with the same keys must
// accept alike (the proof-of-work challenges of signup forms). Rotating
// the signing key voids challenges made under the old one.
func (i *Issuer) ChallengeKey() []byte { return i.challengeKey }

// validKeyID reports whether id matches ^[A-Za-z0-9_-]{1,32}$.
func validKeyID(id string) bool {
	if len(id) == 0 || len(id) > maxKeyIDLen {
		return false
	}
	for n := 0; n < len(id); n++ {
		c := id[n]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// deriveKey returns HMAC-SHA256(secret, "optin token v1 "+purpose), the HMAC
// key actually used for tokens of purpose p.
func deriveKey(secret []byte, p Purpose) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(deriveLabel + string(p)))
	return m.Sum(nil)
}

// Issue returns a signed token of purpose p carrying c. IssuedAt is set from
// the issuer's clock. Issue fails for an unknown purpose, an empty Subject or
// a zero ExpiresAt, and if the resulting token would be longer than Verify
// accepts.
func (i *Issuer) Issue(p Purpose, c Claims) (string, error) {
	ps, ok := i.purposes[p]
	if !ok {
		return "", fmt.Errorf("token: unknown purpose %q", p)
	}
	if c.Subject == "" {
		return "", errors.New("token: empty subject")
	}
	if c.ExpiresAt.IsZero() {
		return "", errors.New("token: zero expiry")
	}
	s := ps.sign(appendClaims(make([]byte, 0, 256), c.Topic, i.issuer, c.Subject, string(p),
		c.ExpiresAt.Unix(), i.now().Unix()))
	if len(s) > maxTokenLen {
		return "", fmt.Errorf("token: token is %d bytes, longer than the %d accepted by Verify", len(s), maxTokenLen)
	}
	return s, nil
}

// issueHead returns the encoded JOSE header of an HS256 token with kid and
// typ, as the jwt library writes it.
func issueHead(kid, typ string) (string, error) {
	t := jwt.New(jwt.SigningMethodHS256)
	t.Header["kid"] = kid
	t.Header["typ"] = typ
	ss, err := t.SigningString()
	if err != nil {
		return "", fmt.Errorf("token: header: %w", err)
	}
	head, _, _ := strings.Cut(ss, ".")
	return head, nil
}

// sign returns the compact JWS of the JSON claims c: the same bytes as the
// jwt library's Token.SignedString with HS256 (a test holds them equal),
// but with the header encoded once, the claims written by appendClaims and
// the HMAC state reused, which made issuing about three times as fast
// (two tokens go into every confirmation mail).
func (ps *purposeState) sign(c []byte) string {
	enc := base64.RawURLEncoding
	b := make([]byte, 0, len(ps.head)+2+enc.EncodedLen(len(c))+enc.EncodedLen(sha256.Size))
	b = append(b, ps.head...)
	b = append(b, '.')
	b = enc.AppendEncode(b, c)
	m := ps.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(b)
	var sum [sha256.Size]byte
	sig := m.Sum(sum[:0])
	ps.macs.Put(m)
	b = append(b, '.')
	return string(enc.AppendEncode(b, sig))
}

// appendClaims appends the claims as encoding/json writes jwtClaims with
// one audience, whole-second times and no nbf or jti: the fields in
// struct order, empty strings left out, strings escaped the same way.
func appendClaims(b []byte, topic, iss, sub, aud string, exp, iat int64) []byte {
	b = append(b, '{')
	for _, f := range [...]struct{ name, v string }{{"tpc", topic}, {"iss", iss}, {"sub", sub}} {
		if f.v != "" {
			b = append(b, '"')
			b = append(b, f.name...)
			b = append(b, `":`...)
			b = jsonenc.AppendString(b, f.v)
			b = append(b, ',')
		}
	}
	b = append(b, `"aud":[`...)
	b = jsonenc.AppendString(b, aud)
	b = append(b, `],"exp":`...)
	b = strconv.AppendInt(b, exp, 10)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, iat, 10)
	return append(b, '}')
}

// Verify checks that s is a genuine, unexpired token of purpose p issued by
// this Issuer (under any of its keys) and returns its claims.
//
// Every failure wraps ErrInvalid, except a token that is correct in every
// respect but past its expiry (with 30s leeway), which wraps ErrExpired and
// comes with the token's (authentic) claims. Use errors.Is to tell them apart.
func (i *Issuer) Verify(p Purpose, s string) (Claims, error) {
	ps, ok := i.purposes[p]
	if !ok {
		return Claims{}, fmt.Errorf("%w: unknown purpose %q", ErrInvalid, p)
	}
	if len(s) > maxTokenLen {
		return Claims{}, fmt.Errorf("%w: token longer than %d bytes", ErrInvalid, maxTokenLen)
	}
	if !compactJWSChars(s) {
		return Claims{}, fmt.Errorf("%w: token contains characters outside base64url and '.'", ErrInvalid)
	}

	var jc jwtClaims
	t, err := ps.parser.ParseWithClaims(s, &jc, ps.keyfunc)
	expired := false
	if err != nil {
		// jwt v5 validates claims only after the signature verified, so a
		// claims error that consists solely of "expired" proves the token
		// is genuine and otherwise valid. Anything else is invalid.
		if !onlyExpired(err) {
			return Claims{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		expired = true
	} else if t == nil || !t.Valid {
		return Claims{}, fmt.Errorf("%w: token not valid", ErrInvalid)
	}

	// Defence in depth: re-check the claims ourselves, independently of the
	// parser options, and more strictly (exactly one audience, iat and sub
	// required).
	if err := i.checkClaims(p, &jc); err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	claims := Claims{
		Subject:   jc.Subject,
		Topic:     jc.Topic,
		IssuedAt:  jc.IssuedAt.Time,
		ExpiresAt: jc.ExpiresAt.Time,
	}
	if expired {
		// The claims are authentic; callers may use them to explain the
		// expiry (e.g. link to the form again), never to act as if valid.
		return claims, fmt.Errorf("%w: exp %s has passed", ErrExpired, jc.ExpiresAt.Time.UTC().Format(time.RFC3339))
	}
	return claims, nil
}

// keyfunc selects the derived HMAC key for a token being verified as a token
// of purpose ps.purpose. It enforces HS256, the exact header set, the
// purpose's typ and a known kid. Keys are looked up only in the fixed map
// built by NewIssuer.
func (ps *purposeState) keyfunc(t *jwt.Token) (any, error) {
	if t.Method != jwt.SigningMethodHS256 {
		return nil, fmt.Errorf("unexpected signing method %v", t.Header["alg"])
	}
	for h := range t.Header {
		switch h {
		case "alg", "kid", "typ":
		default:
			// We never issue other header parameters; "crit", "jku",
			// "jwk", "x5u" and friends in particular are refused.
			return nil, fmt.Errorf("unexpected header parameter %q", h)
		}
	}
	typ, ok := t.Header["typ"].(string)
	if !ok || typ != ps.typ {
		return nil, fmt.Errorf("typ header %v, want %q", t.Header["typ"], ps.typ)
	}
	kid, ok := t.Header["kid"].(string)
	if !ok {
		return nil, errors.New("missing kid header")
	}
	key, ok := ps.keys[kid]
	if !ok {
		return nil, fmt.Errorf("unknown kid %q", kid)
	}
	return key, nil
}

// checkClaims independently verifies the claims of a token whose signature
// has been verified: issuer, exactly one audience equal to p, non-empty
// subject, present exp and iat, iat not in the future beyond the leeway, and
// no nbf in the future beyond the leeway. It does not check exp.
func (i *Issuer) checkClaims(p Purpose, c *jwtClaims) error {
	if c.Issuer != i.issuer {
		return fmt.Errorf("issuer %q, want %q", c.Issuer, i.issuer)
	}
	if len(c.Audience) != 1 || c.Audience[0] != string(p) {
		return fmt.Errorf("audience %q, want [%q]", []string(c.Audience), p)
	}
	if c.Subject == "" {
		return errors.New("missing sub")
	}
	if c.ExpiresAt == nil {
		return errors.New("missing exp")
	}
	if c.IssuedAt == nil {
		return errors.New("missing iat")
	}
	now := i.now()
	if now.Before(c.IssuedAt.Add(-leeway)) {
		return errors.New("iat is in the future")
	}
	if c.NotBefore != nil && now.Before(c.NotBefore.Add(-leeway)) {
		return errors.New("nbf is in the future")
	}
	return nil
}

// compactJWSChars reports whether s consists only of the base64url alphabet
// and '.', the only characters that can appear in an unpadded compact JWS.
// In particular it rejects every non-ASCII byte.
func compactJWSChars(s string) bool {
	for n := 0; n < len(s); n++ {
		c := s[n]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// onlyExpired reports whether err is a jwt claims-validation error whose only
// cause is jwt.ErrTokenExpired. Because jwt v5 validates claims only after
// verifying the signature, such an error proves the signature was genuine.
// Any other shape of error, including one that combines expiry with another
// claim failure, yields false (fail closed).
func onlyExpired(err error) bool {
	if !errors.Is(err, jwt.ErrTokenExpired) || !errors.Is(err, jwt.ErrTokenInvalidClaims) {
		return false
	}
	for _, leaf := range errorLeaves(err, nil) {
		if leaf != jwt.ErrTokenInvalidClaims && leaf != jwt.ErrTokenExpired {
			return false
		}
	}
	return true
}

// errorLeaves appends to dst every error in err's tree that wraps nothing.
func errorLeaves(err error, dst []error) []error {
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			dst = errorLeaves(inner, dst)
		}
	case interface{ Unwrap() error }:
		if inner := e.Unwrap(); inner != nil {
			return errorLeaves(inner, dst)
		}
		dst = append(dst, err)
	default:
		if err != nil {
			dst = append(dst, err)
		}
	}
	return dst
}
