package app

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

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

// TestReadyzWhileRelayRefusesConfig: while the relay refuses optin's
// configuration (here: no STARTTLS), /readyz answers 503 with the reason
// in optin's words and the mail waits in the outbox; once the relay
// accepts, the mail goes out and /readyz answers 200.
func TestReadyzWhileRelayRefusesConfig(t *testing.T) {
	srvTLS, _, err := smtptest.SelfSignedTLS()
	if err != nil {
		t.Fatal(err)
	}
	s := startService(t, func(c *config.Config) {
		c.Mail.SMTP.TLS = config.TLSStartTLS
		c.Mail.SMTP.CAFile = smtptest.CAFile(t, srvTLS)
	})
	waitStatus := func(want int) response {
		t.Helper()
		deadline := time.Now().Add(patience)
		for {
			r := s.do("GET", "/readyz", "", "")
			if r.status == want {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz: got %d %s, want %d", r.status, r.body, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	r := waitStatus(http.StatusServiceUnavailable)
	if want := "the relay does not offer STARTTLS; set mail.smtp.tls to"; !strings.Contains(r.body, want) {
		t.Errorf("/readyz body: got %s, want it to contain %q", r.body, want)
	}
	if r := s.signupJSON("waits@example.com", "news"); r.status != http.StatusAccepted {
		t.Fatalf("signup: got %d", r.status)
	}
	s.waitFailed(1, 2)
	if _, parked, err := s.app.DB.OutboxDepth(context.Background()); err != nil || parked != 0 {
		t.Errorf("parked jobs: got %d (%v), want 0", parked, err)
	}
	waitStatus(http.StatusServiceUnavailable)

	// The relay is set up for STARTTLS, on the same port.
	if err := s.smtp.Close(); err != nil {
		t.Fatal(err)
	}
	relay, err := smtptest.New(s.smtp.Addr(), smtptest.Options{TLS: srvTLS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	s.smtp = relay
	if got := s.waitMails(1); got[0].To[0] != "waits@example.com" {
		t.Errorf("mail to %q, want waits@example.com", got[0].To[0])
	}
	waitStatus(http.StatusOK)
}

// waitFailed waits until the outbox holds n jobs that each failed at least
// attempts times.
func (s *service) waitFailed(n, attempts int) {
	s.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		jobs, err := s.app.DB.DueJobs(context.Background(), s.clock.Now().Add(24*time.Hour), n+1, nil)
		if err != nil {
			s.t.Fatal(err)
		}
		failed := 0
		for _, j := range jobs {
			if j.Attempts >= attempts {
				failed++
			}
		}
		if failed == n && len(jobs) == n {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("jobs that failed %d times: got %d of %d queued, want %d", attempts, failed, len(jobs), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestShutdownWhileRelayHangs: with the relay hanging in DATA, shutdown
// stops taking jobs at once, abandons the sends still waiting after the
// grace and closes; the abandoned mails are still in the outbox when the
// database is opened again.
func TestShutdownWhileRelayHangs(t *testing.T) {
	const n = 20
	s := startService(t, func(c *config.Config) { c.ShutdownGrace = config.Duration(time.Second) })
	hold := s.smtp.HoldData("")
	for i := range n {
		if r := s.signupJSON(fmt.Sprintf("hang%02d@example.com", i), "news"); r.status != http.StatusAccepted {
			t.Fatalf("signup %d: got %d", i, r.status)
		}
	}
	select {
	case <-hold.Arrived():
	case <-time.After(patience):
		t.Fatal("no mail reached DATA")
	}
	s.stop()
	s.stop = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(patience):
		t.Fatal("Serve did not return after the shutdown signal, with the relay hanging")
	}
	db, err := OpenStore(s.app.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	queued, parked, err := db.OutboxDepth(context.Background())
	if err != nil || queued != n || parked != 0 {
		t.Errorf("outbox after shutdown: got %d queued, %d parked (%v), want %d queued", queued, parked, err, n)
	}
	if got := s.smtp.Count(); got != 0 {
		t.Errorf("mails accepted by the hanging relay: got %d, want 0", got)
	}
}

// lockedBuffer is a bytes.Buffer safe for the service's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestStartupWarnings: on a public base_url, each development default
// left in place (mail.from at localhost, the file transport, no postal
// address) is logged once at start, and the app returns the list.
func TestStartupWarnings(t *testing.T) {
	s := startService(t, func(c *config.Config) {
		c.BaseURL = "https://news.example.com"
		c.Mail.Transport, c.Mail.From, c.Mail.PostalAddress = config.TransportFile, config.Default().Mail.From, ""
	})
	if got := s.app.StartupWarnings(); len(got) != 3 {
		t.Errorf("StartupWarnings: got %q, want 3 (mail.from, mail.transport, mail.postal_address)", got)
	}
	for deadline := time.Now().Add(patience); !strings.Contains(s.logs.String(), "optin listening"); {
		if time.Now().After(deadline) {
			t.Fatal("the service did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.shutdown()
	out := s.logs.String()
	for _, key := range []string{"mail.from", "mail.transport", "mail.postal_address"} {
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "level=WARN") && strings.Contains(l, "startup warning: "+key) {
				lines = append(lines, l)
			}
		}
		if len(lines) != 1 || !strings.Contains(lines[0], "set "+key) {
			t.Errorf("warnings about %s: got %q, want one line saying what to set", key, lines)
		}
	}
}
