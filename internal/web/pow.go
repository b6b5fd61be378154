package web

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"math/bits"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
)

// codeProofOfWork is the error code of a signup to a proof-of-work form
// that lacks a valid, unused, solved challenge (400).
const codeProofOfWork = "proof_of_work"

// powTTL is how long a proof-of-work challenge can be used.
const powTTL = 5 * time.Minute

// powGuard issues and checks the self-hosted proof-of-work challenges of
// forms that enable them. A challenge is stateless: the base64url payload
// {form, random nonce, expiry} and its HMAC, under a key derived from the
// token signing key (token.Issuer.ChallengeKey), so every instance accepts
// the challenges of every other. The client must find a decimal counter
// such that SHA-256(challenge || counter) starts with the form's number of
// zero bits. A solved challenge is accepted once: the store keeps its
// nonce, for every instance, until it expires.
type powGuard struct {
	key   []byte
	store consent.LimitStore
}

// mac returns the HMAC-SHA256 of payload.
func (g *powGuard) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, g.key)
	m.Write(payload)
	return m.Sum(nil)
}

// issue returns a new challenge for form, valid until the returned time.
func (g *powGuard) issue(form string, now time.Time) (string, time.Time, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return "", time.Time{}, err
	}
	exp := now.Add(powTTL).Truncate(time.Second)
	payload := make([]byte, 0, 24+len(form))
	payload = binary.BigEndian.AppendUint64(payload, uint64(exp.Unix()))
	payload = append(payload, nonce...)
	payload = append(payload, form...)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(g.mac(payload)), exp, nil
}

// errPoW is the error for any failed proof-of-work check.
func errPoW(msg string) error {
	return keyed(consent.Errorf(codeProofOfWork, "%s", msg), "signup.error.pow")
}

// verify checks that counter solves challenge for form with at least
// zeroBits leading zero bits, and uses the challenge up.
func (g *powGuard) verify(ctx context.Context, form string, zeroBits int, challenge, counter string, now time.Time) error {
	if challenge == "" || counter == "" {
		return errPoW("this form needs a solved proof-of-work challenge: GET /f/{form}/challenge, then send pow_challenge and pow_nonce")
	}
	if len(challenge) > 512 || len(counter) > 20 {
		return errPoW("proof-of-work challenge or nonce too long")
	}
	for _, r := range counter {
		if r < '0' || r > '9' {
			return errPoW("pow_nonce must be a decimal number")
		}
	}
	enc := base64.RawURLEncoding
	p, m, ok := bytes.Cut([]byte(challenge), []byte("."))
	payload, err1 := enc.DecodeString(string(p))
	sum, err2 := enc.DecodeString(string(m))
	if !ok || err1 != nil || err2 != nil || len(payload) < 24 || !hmac.Equal(sum, g.mac(payload)) {
		return errPoW("proof-of-work challenge is not genuine")
	}
	exp := time.Unix(int64(binary.BigEndian.Uint64(payload[:8])), 0)
	nonce := string(payload[8:24])
	if string(payload[24:]) != form {
		return errPoW("proof-of-work challenge is for another form")
	}
	if !now.Before(exp) {
		return errPoW("proof-of-work challenge expired; fetch a new one")
	}
	h := sha256.Sum256([]byte(challenge + counter))
	if leadingZeroBits(h[:]) < zeroBits {
		return errPoW("proof-of-work nonce does not solve the challenge")
	}
	fresh, err := g.store.SpendNonce(ctx, "pow:"+base64.RawURLEncoding.EncodeToString([]byte(nonce)), now, exp)
	if err != nil {
		return err
	}
	if !fresh {
		return errPoW("proof-of-work challenge already used; fetch a new one")
	}
	return nil
}

// leadingZeroBits counts the zero bits at the start of b.
func leadingZeroBits(b []byte) int {
	n := 0
	for _, x := range b {
		if x != 0 {
			return n + bits.LeadingZeros8(x)
		}
		n += 8
	}
	return n
}

// handleChallenge hands out a proof-of-work challenge for the form, to
// optin's own pages and the form's allowed origins.
func (s *Server) handleChallenge(c *gin.Context) {
	f, _, ok := s.loadForm(c, false)
	if !ok {
		return
	}
	origin := c.GetHeader("Origin")
	if !s.originAllowed(f, origin) {
		s.fail(c, consent.Errorf(consent.EForbidden, "origin not allowed for this form"))
		return
	}
	s.cors(c, origin)
	ch, exp, err := s.pow.issue(f.ID, s.store.Now())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"challenge": ch, "bits": f.PoWBits(), "expires": exp.UTC().Format(time.RFC3339)})
}
