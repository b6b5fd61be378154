package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"optin/internal/smtptest"
)

// relayConfig writes a config that sends through srv with the given TLS
// mode.
func relayConfig(t *testing.T, srv *smtptest.Server, tls string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "optin.yaml")
	yml := fmt.Sprintf("data_dir: %s\nmail:\n  transport: smtp\n  from: \"News <news@example.com>\"\n"+
		"  smtp: {host: %s, port: %d, tls: %s}\n", filepath.Join(dir, "data"), srv.Host(), srv.Port(), tls)
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCLIMailTest: "optin mail test" sends one mail through the relay and
// prints its answer; a relay that refuses the configuration is an error
// in optin's words (exit 1); --help succeeds.
func TestCLIMailTest(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	out, err := runCLI(t, "mail", "test", "--to", "ops@example.com", "--config", relayConfig(t, srv, "none"))
	if err != nil {
		t.Fatalf("mail test: %v", err)
	}
	if !strings.Contains(out, "accepted the test mail to ops@example.com: 250 ") {
		t.Errorf("output: got %q, want the relay's 250 answer", out)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 || msgs[0].To[0] != "ops@example.com" || msgs[0].From != "news@example.com" {
		t.Fatalf("relay got %+v, want one mail from news@example.com to ops@example.com", msgs)
	}
	if !strings.Contains(string(msgs[0].Data), "Subject: optin test mail\r\n") {
		t.Errorf("test mail:\n%s\nwant the subject \"optin test mail\"", msgs[0].Data)
	}

	_, err = runCLI(t, "mail", "test", "--to", "ops@example.com", "--config", relayConfig(t, srv, "starttls"))
	if err == nil || !strings.Contains(err.Error(), "the relay does not offer STARTTLS; set mail.smtp.tls to") {
		t.Errorf("mail test to a relay without STARTTLS: got %v, want optin's explanation", err)
	}
	if _, err := runCLI(t, "mail", "test", "--to", "not an address", "--config", relayConfig(t, srv, "none")); err == nil ||
		!strings.Contains(err.Error(), "--to") {
		t.Errorf("mail test to a bad address: got %v, want an error naming --to", err)
	}
	if _, err := runCLI(t, "mail", "test", "--config", relayConfig(t, srv, "none")); err == nil {
		t.Error("mail test without --to: got nil error")
	}
	if got := srv.Count(); got != 1 {
		t.Errorf("mails at the relay: got %d, want 1", got)
	}
	if _, err := runCLI(t, "mail", "test", "--help"); err != nil {
		t.Errorf("mail test --help: got %v, want nil (exit 0)", err)
	}
}

// TestCLIMailTestFile: with the file transport the test mail is written,
// and the output says so.
func TestCLIMailTestFile(t *testing.T) {
	path, cfg := writeConfig(t)
	out, err := runCLI(t, "mail", "test", "--to", "ops@example.com", "--config", path)
	if err != nil {
		t.Fatalf("mail test: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(cfg.DataDir, "mail", "*.eml"))
	if len(files) != 1 || !strings.Contains(out, files[0]) || !strings.Contains(out, "not sent") {
		t.Errorf("output %q, files %q: want the one .eml file named, not sent", out, files)
	}
}
