package app

import (
	"net/http"
	"testing"

	"optin/internal/config"
	"optin/internal/smtptest"
)

// TestRelaySettings: a relay whose certificate is signed by a private CA
// is trusted through mail.smtp.ca_file, and it sees mail.smtp.helo in
// EHLO.
func TestRelaySettings(t *testing.T) {
	srvTLS, _, err := smtptest.SelfSignedTLS()
	if err != nil {
		t.Fatal(err)
	}
	caFile := smtptest.CAFile(t, srvTLS)
	s := startServiceWith(t, smtptest.Options{TLS: srvTLS}, func(c *config.Config) {
		c.Mail.SMTP.TLS = config.TLSStartTLS
		c.Mail.SMTP.CAFile = caFile
		c.Mail.SMTP.Helo = "newsletter.example.com"
	})
	if r := s.signupJSON("ca@example.com", "news"); r.status != http.StatusAccepted {
		t.Fatalf("signup: got %d", r.status)
	}
	msgs := s.waitMails(1)
	if got, want := msgs[0].Helo, "newsletter.example.com"; got != want {
		t.Errorf("EHLO name seen by the relay: got %q, want %q", got, want)
	}
}
