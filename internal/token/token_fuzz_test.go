package token_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"optin/internal/token"
)

// fuzzNow is the fixed clock of the fuzzed issuers, a whole second so that
// expiry arithmetic is exact.
var fuzzNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

var fuzzPurposes = []token.Purpose{token.Confirm, token.NotMe, token.Unsubscribe, token.Preferences, token.Reawaken, token.Interaction}

// fuzzIssuers returns the issuer under test (signing with k1, also
// accepting k2) and one with a different secret under the same key ID.
func fuzzIssuers(f *testing.F) (iss, forger *token.Issuer) {
	now := func() time.Time { return fuzzNow }
	iss, err := token.NewIssuer("https://optin.example", []token.Key{
		{ID: "k1", Secret: bytes.Repeat([]byte{'A'}, 32)},
		{ID: "k2", Secret: bytes.Repeat([]byte{'B'}, 32)},
	}, now)
	if err != nil {
		f.Fatalf("NewIssuer: got err %v, want nil", err)
	}
	forger, err = token.NewIssuer("https://optin.example", []token.Key{{ID: "k1", Secret: bytes.Repeat([]byte{'C'}, 32)}}, now)
	if err != nil {
		f.Fatalf("NewIssuer: got err %v, want nil", err)
	}
	return iss, forger
}

// FuzzVerify checks Verify on arbitrary strings and on tokens with one
// byte replaced.
//
// For an arbitrary string s and every purpose, Verify must not panic, must
// fail only with ErrInvalid or ErrExpired (never both), must return a
// non-empty Subject whenever it does not fail with ErrInvalid, and must
// accept s for at most one purpose.
//
// A token issued for fuzzed claims must verify for its purpose with the
// claims given (times in whole seconds), fail with ErrExpired exactly when
// exp + 30s leeway is not after the clock, fail with ErrInvalid for every
// other purpose and under an issuer with another secret for the same key
// ID. The token with the byte at a fuzzed position replaced by a fuzzed
// byte must fail with ErrInvalid (not ErrExpired) unless it is unchanged:
// any change to the header or payload breaks the HMAC, and strict base64
// decoding refuses the non-canonical last character of the signature.
//
// Seeds: testdata/fuzz/FuzzVerify.
func FuzzVerify(f *testing.F) {
	iss, forger := fuzzIssuers(f)
	f.Fuzz(func(t *testing.T, s string, purpose uint8, subject, topic string, expSeconds int32, pos uint16, val byte) {
		fuzzCheckArbitrary(t, iss, s)

		p := fuzzPurposes[int(purpose)%len(fuzzPurposes)]
		exp := fuzzNow.Add(time.Duration(expSeconds) * time.Second)
		tok, err := iss.Issue(p, token.Claims{Subject: subject, Topic: topic, ExpiresAt: exp})
		if subject == "" {
			if err == nil {
				t.Fatalf("Issue with empty subject: got token %q, want error", tok)
			}
			return
		}
		if err != nil {
			// Issue refuses tokens longer than the 4096 bytes Verify
			// accepts; the fixed header, claims and signature take
			// about 250 of them.
			if n := len(jsonQuote(t, subject)) + len(jsonQuote(t, topic)); (n*4+2)/3+400 > 4096 {
				return
			}
			t.Fatalf("Issue(%q, sub %q, tpc %q, exp %v): got err %v, want nil", p, subject, topic, exp, err)
		}
		if len(tok) > 4096 {
			t.Fatalf("Issue: got a %d-byte token, want at most 4096", len(tok))
		}

		got, err := iss.Verify(p, tok)
		wantExpired := expSeconds <= -30
		switch {
		case wantExpired && !errors.Is(err, token.ErrExpired):
			t.Fatalf("Verify(%q) of a token with exp %ds from now: got err %v, want ErrExpired", p, expSeconds, err)
		case !wantExpired && err != nil:
			t.Fatalf("Verify(%q) of a token with exp %ds from now: got err %v, want nil", p, expSeconds, err)
		}
		want := token.Claims{Subject: jsonRoundTrip(t, subject), Topic: jsonRoundTrip(t, topic), IssuedAt: fuzzNow, ExpiresAt: exp}
		if !got.IssuedAt.Equal(want.IssuedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) || got.Subject != want.Subject || got.Topic != want.Topic {
			t.Fatalf("Verify(%q): got claims %+v, want %+v", p, got, want)
		}
		for _, other := range fuzzPurposes {
			if other == p {
				continue
			}
			if _, err := iss.Verify(other, tok); !fuzzInvalidOnly(err) {
				t.Fatalf("Verify(%q) of a %q token: got err %v, want ErrInvalid", other, p, err)
			}
		}
		if _, err := forger.Verify(p, tok); !fuzzInvalidOnly(err) {
			t.Fatalf("Verify under another secret with the same kid: got err %v, want ErrInvalid", err)
		}

		b := []byte(tok)
		b[int(pos)%len(b)] = val
		mut := string(b)
		_, err = iss.Verify(p, mut)
		switch {
		case mut == tok:
			if wantExpired != errors.Is(err, token.ErrExpired) || (!wantExpired && err != nil) {
				t.Fatalf("Verify of the unchanged token: got err %v", err)
			}
		case !fuzzInvalidOnly(err):
			t.Fatalf("Verify(%q) of token %q with byte %d changed to %q (%q): got err %v, want ErrInvalid",
				p, tok, int(pos)%len(b), val, mut, err)
		}
	})
}

// fuzzCheckArbitrary checks Verify of an arbitrary string s for every
// purpose.
func fuzzCheckArbitrary(t *testing.T, iss *token.Issuer, s string) {
	t.Helper()
	accepted := 0
	for _, p := range fuzzPurposes {
		c, err := iss.Verify(p, s)
		invalid, expired := errors.Is(err, token.ErrInvalid), errors.Is(err, token.ErrExpired)
		switch {
		case err != nil && invalid == expired:
			t.Fatalf("Verify(%q, %q): got err %v, want exactly one of ErrInvalid and ErrExpired", p, s, err)
		case invalid:
			if c != (token.Claims{}) {
				t.Fatalf("Verify(%q, %q): got claims %+v with ErrInvalid, want none", p, s, c)
			}
			continue
		case c.Subject == "" || c.ExpiresAt.IsZero() || c.IssuedAt.IsZero():
			t.Fatalf("Verify(%q, %q): got claims %+v with err %v, want non-empty sub, exp and iat", p, s, c, err)
		}
		accepted++
		if strings.Count(s, ".") != 2 {
			t.Fatalf("Verify(%q, %q): accepted a string that is not a three-part compact JWS", p, s)
		}
	}
	if accepted > 1 {
		t.Fatalf("Verify(%q): accepted for %d purposes, want at most 1", s, accepted)
	}
}

// fuzzInvalidOnly reports whether err is ErrInvalid and not ErrExpired.
func fuzzInvalidOnly(err error) bool {
	return errors.Is(err, token.ErrInvalid) && !errors.Is(err, token.ErrExpired)
}

// jsonQuote returns s as a JSON string.
func jsonQuote(t *testing.T, s string) []byte {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("json.Marshal(%q): got err %v, want nil", s, err)
	}
	return b
}

// jsonRoundTrip returns s as it comes out of a JSON claim: encoding/json
// replaces each invalid UTF-8 byte with U+FFFD.
func jsonRoundTrip(t *testing.T, s string) string {
	t.Helper()
	b := jsonQuote(t, s)
	var out string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("json.Unmarshal(%q): got err %v, want nil", b, err)
	}
	return out
}
