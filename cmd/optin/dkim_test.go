package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"optin/internal/smtptest"
)

var txtRE = regexp.MustCompile(`"([^"]*)"`)

// TestCLIDKIMKeygen: "optin dkim keygen" writes a private key readable by
// its owner only and prints the TXT record; with that key configured,
// "optin mail test" sends a mail whose signature an independent verifier
// accepts against the printed record. An existing key file is never
// overwritten.
func TestCLIDKIMKeygen(t *testing.T) {
	for _, kind := range []string{"rsa", "ed25519"} {
		t.Run(kind, func(t *testing.T) {
			keyFile := filepath.Join(t.TempDir(), "dkim.pem")
			out, err := runCLI(t, "dkim", "keygen", "--domain", "example.com", "--selector", "s1", "--out", keyFile, "--type", kind)
			if err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("key file: %v, %v; want mode 0600", fi, err)
			}
			if !strings.Contains(out, "s1._domainkey.example.com. IN TXT") {
				t.Fatalf("output %q lacks the TXT record", out)
			}
			var record string
			for _, m := range txtRE.FindAllStringSubmatch(out, -1) {
				record += m[1]
			}
			before, _ := os.ReadFile(keyFile)
			if _, err := runCLI(t, "dkim", "keygen", "--domain", "example.com", "--selector", "s1", "--out", keyFile); err == nil {
				t.Error("keygen overwrote an existing key file")
			}
			if after, _ := os.ReadFile(keyFile); !bytes.Equal(before, after) {
				t.Error("the key file changed")
			}

			srv := smtptest.Start(t, smtptest.Options{})
			cfgPath := relayConfig(t, srv, "none")
			f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("  dkim: {domain: example.com, selector: s1, private_key_file: " + keyFile + "}\n")
			f.Close()
			if _, err := runCLI(t, "mail", "test", "--to", "ops@example.com", "--config", cfgPath); err != nil {
				t.Fatal(err)
			}
			vs, err := dkim.VerifyWithOptions(bytes.NewReader(srv.Messages()[0].Data), &dkim.VerifyOptions{
				LookupTXT: func(name string) ([]string, error) { return []string{record}, nil }})
			if err != nil || len(vs) != 1 || vs[0].Err != nil {
				t.Fatalf("verify: %v %+v", err, vs)
			}
		})
	}
	if _, err := runCLI(t, "dkim", "keygen", "--domain", "example.com", "--selector", "s1",
		"--out", filepath.Join(t.TempDir(), "k"), "--type", "dsa"); err == nil {
		t.Error("keygen accepted --type dsa")
	}
}
