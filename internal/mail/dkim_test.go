package mail

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"optin/internal/smtptest"
)

// testDKIM returns a signer with an RSA and an Ed25519 key under
// optin.test (selectors "rsa" and "ed") and the TXT records a verifier
// looks them up by.
func testDKIM(t testing.TB) (*DKIMSigner, map[string]string) {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, ek, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	records := map[string]string{}
	for sel, pub := range map[string]any{"rsa": rk.Public(), "ed": ek.Public()} {
		rec, err := DKIMRecord(pub)
		if err != nil {
			t.Fatal(err)
		}
		records[sel+"._domainkey.optin.test"] = rec
	}
	s, err := NewDKIMSigner([]DKIMKey{{Domain: "optin.test", Selector: "rsa", Key: rk},
		{Domain: "optin.test", Selector: "ed", Key: ek}}, func() time.Time { return testDate })
	if err != nil {
		t.Fatal(err)
	}
	return s, records
}

// verifyDKIM checks raw's signatures with go-msgauth, an implementation
// independent of optin's signer, resolving keys from records.
func verifyDKIM(raw []byte, records map[string]string) ([]*dkim.Verification, error) {
	return dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			if r, ok := records[name]; ok {
				return []string{r}, nil
			}
			return nil, fmt.Errorf("no TXT record at %s", name)
		},
	})
}

// TestDKIMSignedMailVerifiesAfterSMTP signs mails, sends them pipelined
// through the SMTP transport to a real SMTP server and verifies the bytes
// it received with an independent verifier: both keys' signatures hold
// and cover the one-click unsubscribe fields (RFC 8058 3.1).
func TestDKIMSignedMailVerifiesAfterSMTP(t *testing.T) {
	signer, records := testDKIM(t)
	srv := smtptest.Start(t, smtptest.Options{})
	tr := newTransport(t, SMTPConfig{Host: srv.Host(), Port: srv.Port(), TLS: "none", Conns: 1, Timeout: 5 * time.Second})

	var msgs []*Outgoing
	var ms []Message
	for i, text := range []string{"Hello Ada,\n\n.a line with a dot\n  spaced   out \t\n\n\n", "Hello Bob,\n"} {
		m := testMessage()
		m.MessageID = fmt.Sprintf("m%d@optin.test", i)
		m.Subject = strings.Repeat("A long subject that the builder folds ", 3)
		m.Text = text
		m.Unsubscribe = "https://optin.test/unsubscribe/tok" + fmt.Sprint(i)
		m.ListID = "<all.optin.optin.test>"
		msg, err := Build(testFrom, m, testDate)
		if err != nil {
			t.Fatal(err)
		}
		if err := signer.Sign(msg); err != nil {
			t.Fatal(err)
		}
		msgs, ms = append(msgs, msg), append(ms, m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for i, err := range tr.SendBatch(ctx, msgs, ms) {
		if err != nil {
			t.Fatalf("mail %d: %v", i, err)
		}
	}
	got, err := srv.Wait(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range got {
		vs, err := verifyDKIM(m.Data, records)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 2 {
			t.Fatalf("got %d signatures, want 2 (one per key)", len(vs))
		}
		for _, v := range vs {
			if v.Err != nil {
				t.Errorf("signature of d=%s: %v\n%s", v.Domain, v.Err, m.Data)
			}
			for _, h := range []string{"from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"} {
				if !slices.ContainsFunc(v.HeaderKeys, func(k string) bool { return strings.EqualFold(k, h) }) {
					t.Errorf("h= lacks %s: %v", h, v.HeaderKeys)
				}
			}
		}
	}

	// What a receiver must not accept: a changed one-click target, a
	// second List-Unsubscribe field added on the way, a changed body.
	raw := got[0].Data
	for name, bad := range map[string][]byte{
		"changed List-Unsubscribe": bytes.Replace(raw, []byte("unsubscribe/tok0"), []byte("unsubscribe/evil"), 1),
		"added List-Unsubscribe":   bytes.Replace(raw, []byte("\r\n\r\n"), []byte("\r\nList-Unsubscribe: <https://evil.test/>\r\n\r\n"), 1),
		"changed body":             bytes.Replace(raw, []byte("Hello Ada"), []byte("Hello Eve"), 1),
	} {
		vs, err := verifyDKIM(bad, records)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			if v.Err == nil {
				t.Errorf("%s: the signature of s=%s still verifies", name, v.Domain)
			}
		}
	}
}

func TestNewDKIMSignerRefusesWeakKeys(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, ek, _ := ed25519.GenerateKey(rand.Reader)
	for name, keys := range map[string][]DKIMKey{
		"none":        nil,
		"rsa 1024":    {{Domain: "optin.test", Selector: "s", Key: small}},
		"bad domain":  {{Domain: "optin.test\r\nX: y", Selector: "s", Key: ek}},
		"no selector": {{Domain: "optin.test", Key: ek}},
	} {
		if _, err := NewDKIMSigner(keys, nil); err == nil {
			t.Errorf("%s: NewDKIMSigner accepted it", name)
		}
	}
}

func TestNewDKIMKeyRoundTrip(t *testing.T) {
	for _, kind := range []string{"rsa", "ed25519"} {
		pemKey, rec, err := NewDKIMKey(kind, "optin.test", "s1")
		if err != nil {
			t.Fatal(err)
		}
		key, err := ParseDKIMKey(pemKey)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		s, err := NewDKIMSigner([]DKIMKey{{Domain: "optin.test", Selector: "s1", Key: key}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := Build(testFrom, testMessage(), testDate)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Sign(msg); err != nil {
			t.Fatal(err)
		}
		vs, err := verifyDKIM(msg.Data, map[string]string{"s1._domainkey.optin.test": rec})
		if err != nil || len(vs) != 1 || vs[0].Err != nil {
			t.Errorf("%s: verification: %v %+v", kind, err, vs)
		}
		line := ZoneLine("optin.test", "s1", rec)
		if !strings.HasPrefix(line, "s1._domainkey.optin.test. IN TXT ( \"v=DKIM1; k="+strings.TrimSuffix(kind, "25519")) {
			t.Errorf("zone line %q", line)
		}
	}
	if _, err := ParseDKIMKey([]byte("not a key")); err == nil {
		t.Error("ParseDKIMKey accepted a file with no key")
	}
}

// BenchmarkDKIMSign measures signing one built mail with an RSA-2048 and
// an Ed25519 key: the CPU DKIM adds to each mail of the outbox.
func BenchmarkDKIMSign(b *testing.B) {
	signer, _ := testDKIM(b)
	m := testMessage()
	m.Unsubscribe = "https://optin.test/unsubscribe/tok"
	msg, err := Build(testFrom, m, testDate)
	if err != nil {
		b.Fatal(err)
	}
	data := msg.Data
	b.ReportAllocs()
	for b.Loop() {
		msg.Data = data
		if err := signer.Sign(msg); err != nil {
			b.Fatal(err)
		}
	}
}
