package mail

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"optin/internal/smtptest"
)

// sendOne builds the test message and sends it through tr.
func sendOne(t *testing.T, tr Transport) error {
	t.Helper()
	m := testMessage()
	msg, err := Build(testFrom, m, testDate)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return tr.SendBatch(ctx, []*Outgoing{msg}, []Message{m})[0]
}

func newTransport(t *testing.T, cfg SMTPConfig) *SMTPTransport {
	t.Helper()
	tr, err := NewSMTPTransport(cfg)
	if err != nil {
		t.Fatalf("NewSMTPTransport: %v", err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Logf("closing transport: %v", err)
		}
	})
	return tr
}

func TestSMTPTransportModes(t *testing.T) {
	serverTLS, roots, err := smtptest.SelfSignedTLS()
	if err != nil {
		t.Fatal(err)
	}
	clientTLS := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	tests := []struct {
		name     string
		server   smtptest.Options
		tls      string
		user     string
		password string
		wantErr  bool
	}{
		{name: "plain", tls: "none"},
		{name: "plain with auth", server: smtptest.Options{Username: "u", Password: "p"}, tls: "none",
			user: "u", password: "p"},
		{name: "starttls with auth", server: smtptest.Options{TLS: serverTLS, Username: "u", Password: "p"},
			tls: "starttls", user: "u", password: "p"},
		{name: "implicit tls with auth", server: smtptest.Options{TLS: serverTLS, ImplicitTLS: true,
			Username: "u", Password: "p"}, tls: "mandatory", user: "u", password: "p"},
		{name: "wrong password", server: smtptest.Options{Username: "u", Password: "p"}, tls: "none",
			user: "u", password: "wrong", wantErr: true},
		{name: "starttls required but not offered", tls: "starttls", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.Start(t, tt.server)
			tr := newTransport(t, SMTPConfig{Host: srv.Host(), Port: srv.Port(), TLS: tt.tls, TLSConfig: clientTLS,
				Username: tt.user, Password: tt.password, Conns: 1, Timeout: 5 * time.Second})
			err := sendOne(t, tr)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Send: got nil error, want one")
				}
				if errors.Is(err, ErrPermanent) {
					t.Errorf("Send: got %v, want a temporary error (a relay or configuration problem)", err)
				}
				if got := srv.Count(); got != 0 {
					t.Errorf("received mails: got %d, want 0", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			msgs := srv.Messages()
			if len(msgs) != 1 {
				t.Fatalf("received mails: got %d, want 1", len(msgs))
			}
			if want := []byte("Message-ID: <" + testMessage().MessageID + ">"); !bytes.Contains(msgs[0].Data, want) {
				t.Errorf("received mail lacks %q", want)
			}
		})
	}
}

func TestSMTPTransportUnknownTLSMode(t *testing.T) {
	if _, err := NewSMTPTransport(SMTPConfig{Host: "127.0.0.1", Port: 25, TLS: "opportunistic"}); err == nil {
		t.Errorf("NewSMTPTransport with TLS %q: got nil error, want one", "opportunistic")
	}
}

// TestSMTPTransportErrors checks how SMTP answers to DATA are classified:
// 5xx is permanent, 4xx temporary, even after the transport's one redial.
func TestSMTPTransportErrors(t *testing.T) {
	tests := []struct {
		code          int
		wantPermanent bool
	}{
		{550, true},
		{554, true},
		{421, false},
		{451, false},
		{452, false},
	}
	for _, tt := range tests {
		srv := smtptest.Start(t, smtptest.Options{})
		srv.FailNext(2, tt.code, "injected")
		tr := newTransport(t, SMTPConfig{Host: srv.Host(), Port: srv.Port(), TLS: "none", Conns: 1})
		err := sendOne(t, tr)
		if err == nil {
			t.Errorf("DATA answered %d: got nil error, want one", tt.code)
			continue
		}
		if got := errors.Is(err, ErrPermanent); got != tt.wantPermanent {
			t.Errorf("DATA answered %d: got %v, want permanent=%v", tt.code, err, tt.wantPermanent)
		}
	}
}

// TestSMTPTransportIdleConnection checks that a pooled connection left idle
// past the command timeout is replaced, not fatal.
func TestSMTPTransportIdleConnection(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	tr := newTransport(t, SMTPConfig{Host: srv.Host(), Port: srv.Port(), TLS: "none", Conns: 1,
		Timeout: 100 * time.Millisecond})
	if err := sendOne(t, tr); err != nil {
		t.Fatalf("first Send: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // let the connection's deadline pass
	if err := sendOne(t, tr); err != nil {
		t.Fatalf("Send after idling past the timeout: %v", err)
	}
	if got, want := srv.Count(), 2; got != want {
		t.Errorf("received mails: got %d, want %d", got, want)
	}
}

// TestSMTPTransportReusesConnections checks that sends share the pooled
// sessions: never more than Conns for any number of mails.
func TestSMTPTransportReusesConnections(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	tr := newTransport(t, SMTPConfig{Host: srv.Host(), Port: srv.Port(), TLS: "none", Conns: 2})
	for i := range 10 {
		if err := sendOne(t, tr); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	if got, want := srv.Count(), 10; got != want {
		t.Errorf("received mails: got %d, want %d", got, want)
	}
	if got := srv.Sessions(); got > 2 {
		t.Errorf("SMTP sessions for 10 sends over 2 pooled connections: got %d, want at most 2", got)
	}
}

// TestSMTPTransportNoSocketLeak: sessions broken by a relay restart are
// closed, not left open, however often it happens.
func TestSMTPTransportNoSocketLeak(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	tr := newTransport(t, SMTPConfig{Host: srv.Host(), Port: srv.Port(), TLS: "none", Conns: 1})
	openFDs := func() int {
		entries, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("cannot count file descriptors: %v", err)
		}
		return len(entries)
	}
	if err := sendOne(t, tr); err != nil {
		t.Fatalf("first send: %v", err)
	}
	before := openFDs()
	for i := range 10 {
		if err := srv.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
		if err := sendOne(t, tr); err != nil { // the pooled session is dead; redialled
			t.Fatalf("send %d after restart: %v", i, err)
		}
	}
	if after := openFDs(); after > before+2 {
		t.Errorf("open file descriptors: %d before, %d after 10 broken sessions", before, after)
	}
}

// TestSMTPTransportHelo: the relay sees the configured EHLO name.
func TestSMTPTransportHelo(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	tr := newTransport(t, SMTPConfig{Host: srv.Host(), Port: srv.Port(), TLS: "none", Conns: 1,
		Helo: "mail.example.org"})
	if err := sendOne(t, tr); err != nil {
		t.Fatal(err)
	}
	if got, want := srv.Messages()[0].Helo, "mail.example.org"; got != want {
		t.Errorf("EHLO name: got %q, want %q", got, want)
	}
}

// TestSMTPTransportConfigErrors: a relay that refuses optin's
// configuration gets a *ConfigError naming the key to set, in optin's
// words, and it stays temporary (the mails wait in the outbox).
func TestSMTPTransportConfigErrors(t *testing.T) {
	serverTLS, roots, err := smtptest.SelfSignedTLS()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		server     smtptest.Options
		cfg        SMTPConfig
		wantKey    string
		wantReason string
	}{
		{name: "starttls not offered", cfg: SMTPConfig{TLS: "starttls"},
			wantKey: "mail.smtp.tls", wantReason: `the relay does not offer STARTTLS; set mail.smtp.tls to "mandatory"`},
		{name: "implicit tls to a plain relay", cfg: SMTPConfig{TLS: "mandatory"},
			wantKey: "mail.smtp.tls", wantReason: "the relay does not speak TLS on connect"},
		{name: "wrong password", server: smtptest.Options{Username: "u", Password: "p"},
			cfg:     SMTPConfig{TLS: "none", Username: "u", Password: "wrong"},
			wantKey: "mail.smtp.username", wantReason: "the relay refuses the login (535"},
		{name: "login required but none set", server: smtptest.Options{Username: "u", Password: "p"},
			cfg:     SMTPConfig{TLS: "none"},
			wantKey: "mail.smtp.username", wantReason: "the relay requires a login (530"},
		{name: "login set but not offered", cfg: SMTPConfig{TLS: "none", Username: "u", Password: "p"},
			wantKey: "mail.smtp.username", wantReason: `the relay offers no login optin can use on this connection; set mail.smtp.tls to "starttls"`},
		{name: "untrusted certificate", server: smtptest.Options{TLS: serverTLS}, cfg: SMTPConfig{TLS: "starttls"},
			wantKey: "mail.smtp.ca_file", wantReason: "the relay's certificate is signed by a CA optin does not trust"},
		{name: "certificate for another name", server: smtptest.Options{TLS: serverTLS, ImplicitTLS: true},
			cfg: SMTPConfig{TLS: "mandatory", TLSConfig: &tls.Config{RootCAs: roots, ServerName: "relay.example.com",
				MinVersion: tls.VersionTLS12}},
			wantKey: "mail.smtp.host", wantReason: "the relay's certificate is not valid for"},
		{name: "host does not resolve", cfg: SMTPConfig{Host: "relay.invalid", TLS: "none"},
			wantKey: "mail.smtp.host", wantReason: `mail.smtp.host "relay.invalid" does not resolve`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.Start(t, tt.server)
			cfg := tt.cfg
			if cfg.Host == "" {
				cfg.Host = srv.Host()
			}
			cfg.Port, cfg.Conns, cfg.Timeout = srv.Port(), 1, 5*time.Second
			err := sendOne(t, newTransport(t, cfg))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Send: got %v, want a *ConfigError", err)
			}
			if ce.Key != tt.wantKey || !strings.HasPrefix(ce.Reason, tt.wantReason) {
				t.Errorf("ConfigError: got key %q, reason %q; want key %q, reason starting %q", ce.Key, ce.Reason,
					tt.wantKey, tt.wantReason)
			}
			if errors.Is(err, ErrPermanent) {
				t.Errorf("Send: got a permanent error, want a temporary one (the mails wait for a fixed configuration)")
			}
			if strings.Contains(err.Error(), "TLSMandatory") {
				t.Errorf("Send: got %q, want optin's words rather than go-mail's", err)
			}
			if got := srv.Count(); got != 0 {
				t.Errorf("received mails: got %d, want 0", got)
			}
		})
	}
}
