package smtptest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	mail "github.com/wneessen/go-mail"
)

func newMsg(t *testing.T, from, to, subject, body string) *mail.Msg {
	t.Helper()
	m := mail.NewMsg()
	if err := m.From(from); err != nil {
		t.Fatalf("From: %v", err)
	}
	if err := m.To(to); err != nil {
		t.Fatalf("To: %v", err)
	}
	m.Subject(subject)
	m.SetBodyString(mail.TypeTextPlain, body)
	return m
}

func newClient(t *testing.T, s *Server, opts ...mail.Option) *mail.Client {
	t.Helper()
	base := []mail.Option{
		mail.WithPort(s.Port()),
		mail.WithTLSPolicy(mail.NoTLS),
		mail.WithTimeout(5 * time.Second),
	}
	c, err := mail.NewClient(s.Host(), append(base, opts...)...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func hasBareLF(b []byte) bool {
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			return true
		}
	}
	return false
}

func TestSendAndMessages(t *testing.T) {
	s := Start(t, Options{})
	c := newClient(t, s)
	if err := c.DialAndSend(newMsg(t, "sender@example.com", "rcpt@example.org", "Hello", "line one\nline two\n.dot line\n")); err != nil {
		t.Fatalf("DialAndSend: %v", err)
	}

	msgs := s.Messages()
	if len(msgs) != 1 || s.Count() != 1 {
		t.Fatalf("got %d messages (Count %d), want 1", len(msgs), s.Count())
	}
	m := msgs[0]
	if m.From != "sender@example.com" {
		t.Errorf("From = %q", m.From)
	}
	if len(m.To) != 1 || m.To[0] != "rcpt@example.org" {
		t.Errorf("To = %q", m.To)
	}
	if m.Received.IsZero() || time.Since(m.Received) > time.Minute {
		t.Errorf("Received = %v", m.Received)
	}
	for _, want := range []string{"Subject: Hello\r\n", "line one\r\nline two\r\n.dot line\r\n"} {
		if !bytes.Contains(m.Data, []byte(want)) {
			t.Errorf("Data missing %q:\n%s", want, m.Data)
		}
	}
	if hasBareLF(m.Data) {
		t.Errorf("Data contains bare LF:\n%q", m.Data)
	}
	if s.Sessions() != 1 {
		t.Errorf("Sessions = %d, want 1", s.Sessions())
	}

	// Messages returns a copy.
	msgs[0].Data[0] = 'X'
	msgs[0].To[0] = "changed"
	if again := s.Messages()[0]; again.Data[0] == 'X' || again.To[0] == "changed" {
		t.Error("Messages did not return a copy")
	}

	s.Reset()
	if s.Count() != 0 || len(s.Messages()) != 0 {
		t.Errorf("after Reset Count = %d", s.Count())
	}
}

func TestAddrHostPort(t *testing.T) {
	s := Start(t, Options{})
	if s.Host() != "127.0.0.1" {
		t.Errorf("Host = %q", s.Host())
	}
	if s.Port() <= 0 {
		t.Errorf("Port = %d", s.Port())
	}
	if want := fmt.Sprintf("127.0.0.1:%d", s.Port()); s.Addr() != want {
		t.Errorf("Addr = %q, want %q", s.Addr(), want)
	}
}

func TestConnectionReuse(t *testing.T) {
	s := Start(t, Options{})
	c := newClient(t, s)
	if err := c.DialWithContext(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("Dial: %v", err)
	}
	for i := range 3 {
		if err := c.Send(newMsg(t, "a@example.com", "b@example.com", fmt.Sprintf("msg %d", i), "body")); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := s.Sessions(); got != 1 {
		t.Errorf("Sessions = %d, want 1", got)
	}
	if got := s.Count(); got != 3 {
		t.Errorf("Count = %d, want 3", got)
	}
	for i, m := range s.Messages() {
		if want := fmt.Sprintf("Subject: msg %d\r\n", i); !bytes.Contains(m.Data, []byte(want)) {
			t.Errorf("message %d out of order / missing %q", i, want)
		}
	}
}

func TestTLSAndAuth(t *testing.T) {
	srvTLS, pool, err := SelfSignedTLS()
	if err != nil {
		t.Fatalf("SelfSignedTLS: %v", err)
	}
	clientTLS := func() *tls.Config {
		return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	}
	auth := func(user, pass string) []mail.Option {
		return []mail.Option{mail.WithSMTPAuth(mail.SMTPAuthPlain), mail.WithUsername(user), mail.WithPassword(pass)}
	}

	tests := []struct {
		name       string
		opts       Options
		client     []mail.Option
		wantErr    string // substring; "" means success
		wantRecvd  int
		wantNoAuth bool
	}{
		{
			name:      "starttls",
			opts:      Options{TLS: srvTLS},
			client:    []mail.Option{mail.WithTLSPolicy(mail.TLSMandatory), mail.WithTLSConfig(clientTLS())},
			wantRecvd: 1,
		},
		{
			name:    "starttls untrusted cert",
			opts:    Options{TLS: srvTLS},
			client:  []mail.Option{mail.WithTLSPolicy(mail.TLSMandatory)},
			wantErr: "certificate",
		},
		{
			name:    "starttls mandatory but not offered",
			opts:    Options{},
			client:  []mail.Option{mail.WithTLSPolicy(mail.TLSMandatory), mail.WithTLSConfig(clientTLS())},
			wantErr: "STARTTLS",
		},
		{
			name:      "implicit tls",
			opts:      Options{TLS: srvTLS, ImplicitTLS: true},
			client:    []mail.Option{mail.WithSSL(), mail.WithTLSConfig(clientTLS())},
			wantRecvd: 1,
		},
		{
			name:      "auth plain ok",
			opts:      Options{Username: "user", Password: "secret"},
			client:    auth("user", "secret"),
			wantRecvd: 1,
		},
		{
			name:    "auth plain wrong password",
			opts:    Options{Username: "user", Password: "secret"},
			client:  auth("user", "wrong"),
			wantErr: "535",
		},
		{
			name:    "auth plain wrong user",
			opts:    Options{Username: "user", Password: "secret"},
			client:  auth("other", "secret"),
			wantErr: "535",
		},
		{
			name:    "auth required but not attempted",
			opts:    Options{Username: "user", Password: "secret"},
			wantErr: "530",
		},
		{
			name:    "auth not offered by server",
			opts:    Options{},
			client:  auth("user", "secret"),
			wantErr: "not support SMTP AUTH",
		},
		{
			name: "auth after starttls",
			opts: Options{TLS: srvTLS, Username: "user", Password: "secret"},
			client: append([]mail.Option{mail.WithTLSPolicy(mail.TLSMandatory), mail.WithTLSConfig(clientTLS())},
				auth("user", "secret")...),
			wantRecvd: 1,
		},
		{
			name: "auth over implicit tls",
			opts: Options{TLS: srvTLS, ImplicitTLS: true, Username: "user", Password: "secret"},
			client: append([]mail.Option{mail.WithSSL(), mail.WithTLSConfig(clientTLS())},
				auth("user", "secret")...),
			wantRecvd: 1,
		},
		{
			// With STARTTLS configured, AUTH is only advertised after STARTTLS.
			name:    "auth without starttls when tls configured",
			opts:    Options{TLS: srvTLS, Username: "user", Password: "secret"},
			client:  auth("user", "secret"),
			wantErr: "not support SMTP AUTH",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, tt.opts)
			c := newClient(t, s, tt.client...)
			err := c.DialAndSendWithContext(ctxTimeout(t, 5*time.Second), newMsg(t, "a@example.com", "b@example.com", "tls", "body"))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("DialAndSend: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("DialAndSend succeeded, want error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
			if got := s.Count(); got != tt.wantRecvd {
				t.Errorf("Count = %d, want %d", got, tt.wantRecvd)
			}
		})
	}
}

func TestImplicitTLSRequiresConfig(t *testing.T) {
	if _, err := New("127.0.0.1:0", Options{ImplicitTLS: true}); err == nil {
		t.Fatal("New with ImplicitTLS and no TLS config succeeded")
	}
}

func TestFailNext(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		msg      string
		wantTemp bool
		wantESC  string
	}{
		{"temporary 451", 451, "try again later", true, "4.0.0"},
		{"temporary 421", 421, "", true, "4.0.0"},
		{"permanent 550", 550, "mailbox unavailable", false, "5.0.0"},
		{"permanent 554", 554, "", false, "5.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, Options{})
			s.FailNext(2, tt.code, tt.msg)
			c := newClient(t, s)

			for i := range 2 {
				err := c.DialAndSend(newMsg(t, "a@example.com", "b@example.com", "fail", "body"))
				if err == nil {
					t.Fatalf("attempt %d: DialAndSend succeeded, want %d", i, tt.code)
				}
				var se *mail.SendError
				if !errors.As(err, &se) {
					t.Fatalf("attempt %d: error %T (%v) is not *mail.SendError", i, err, err)
				}
				if se.IsTemp() != tt.wantTemp {
					t.Errorf("attempt %d: IsTemp = %v, want %v (%v)", i, se.IsTemp(), tt.wantTemp, err)
				}
				if se.ErrorCode() != tt.code {
					t.Errorf("attempt %d: ErrorCode = %d, want %d", i, se.ErrorCode(), tt.code)
				}
				if se.EnhancedStatusCode() != tt.wantESC {
					t.Errorf("attempt %d: EnhancedStatusCode = %q, want %q", i, se.EnhancedStatusCode(), tt.wantESC)
				}
				if tt.msg != "" && !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("attempt %d: error %q lacks message %q", i, err, tt.msg)
				}
			}
			if s.Count() != 0 {
				t.Fatalf("failed messages were stored: Count = %d", s.Count())
			}
			// Injection exhausted: the third send succeeds.
			if err := c.DialAndSend(newMsg(t, "a@example.com", "b@example.com", "ok", "body")); err != nil {
				t.Fatalf("send after FailNext exhausted: %v", err)
			}
			if s.Count() != 1 {
				t.Fatalf("Count = %d, want 1", s.Count())
			}
		})
	}
}

func TestFailNextCancel(t *testing.T) {
	s := Start(t, Options{})
	s.FailNext(5, 451, "x")
	s.FailNext(0, 0, "")
	if err := newClient(t, s).DialAndSend(newMsg(t, "a@example.com", "b@example.com", "ok", "body")); err != nil {
		t.Fatalf("DialAndSend: %v", err)
	}
}

func TestInjectedErrorShape(t *testing.T) {
	tests := []struct {
		code int
		want smtp.EnhancedCode
	}{
		{451, smtp.EnhancedCode{4, 0, 0}},
		{550, smtp.EnhancedCode{5, 0, 0}},
	}
	for _, tt := range tests {
		e := injectedError(tt.code, "m")
		if e.Code != tt.code || e.EnhancedCode != tt.want || e.Message != "m" {
			t.Errorf("injectedError(%d) = %+v", tt.code, e)
		}
	}
}

func TestStopRestart(t *testing.T) {
	s := Start(t, Options{})
	addr := s.Addr()
	c := newClient(t, s)

	// A live session must be cut by Stop.
	live := newClient(t, s)
	if err := live.DialWithContext(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("Dial live: %v", err)
	}
	t.Cleanup(func() { _ = live.Close() })

	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Fatal("dial succeeded while stopped")
	}
	if err := c.DialAndSend(newMsg(t, "a@example.com", "b@example.com", "down", "body")); err == nil {
		t.Fatal("DialAndSend succeeded while stopped")
	}
	if err := live.Send(newMsg(t, "a@example.com", "b@example.com", "live", "body")); err == nil {
		t.Fatal("Send on live session succeeded after Stop")
	}
	if s.Addr() != addr {
		t.Fatalf("Addr changed to %q", s.Addr())
	}

	if err := s.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if err := s.Restart(); err != nil {
		t.Fatalf("second Restart: %v", err)
	}
	if s.Addr() != addr {
		t.Fatalf("Addr changed to %q after Restart", s.Addr())
	}
	if err := c.DialAndSend(newMsg(t, "a@example.com", "b@example.com", "up", "body")); err != nil {
		t.Fatalf("DialAndSend after Restart: %v", err)
	}
	if s.Count() != 1 {
		t.Fatalf("Count = %d, want 1", s.Count())
	}

	// Repeated outage cycles keep working.
	for i := range 3 {
		if err := s.Stop(); err != nil {
			t.Fatalf("cycle %d Stop: %v", i, err)
		}
		if err := s.Restart(); err != nil {
			t.Fatalf("cycle %d Restart: %v", i, err)
		}
	}
	if err := c.DialAndSend(newMsg(t, "a@example.com", "b@example.com", "again", "body")); err != nil {
		t.Fatalf("DialAndSend after cycles: %v", err)
	}

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Restart(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Restart after Close = %v, want ErrClosed", err)
	}
}

func TestStopRestartImplicitTLS(t *testing.T) {
	srvTLS, pool, err := SelfSignedTLS()
	if err != nil {
		t.Fatal(err)
	}
	s := Start(t, Options{TLS: srvTLS, ImplicitTLS: true})
	c := newClient(t, s, mail.WithSSL(), mail.WithTLSConfig(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}))
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.DialAndSend(newMsg(t, "a@example.com", "b@example.com", "tls", "body")); err != nil {
		t.Fatalf("DialAndSend: %v", err)
	}
}

func TestWait(t *testing.T) {
	s := Start(t, Options{})

	short := ctxTimeout(t, 50*time.Millisecond)
	start := time.Now()
	msgs, err := s.Wait(short, 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait err = %v, want DeadlineExceeded", err)
	}
	if len(msgs) != 0 {
		t.Fatalf("Wait returned %d messages", len(msgs))
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Wait took %v", el)
	}

	// Already satisfied: returns immediately.
	if msgs, err := s.Wait(context.Background(), 0); err != nil || len(msgs) != 0 {
		t.Fatalf("Wait(0) = %d, %v", len(msgs), err)
	}

	errc := make(chan error, 1)
	go func() {
		c, err := mail.NewClient(s.Host(), mail.WithPort(s.Port()), mail.WithTLSPolicy(mail.NoTLS))
		if err != nil {
			errc <- err
			return
		}
		for i := range 2 {
			m := mail.NewMsg()
			_ = m.From("a@example.com")
			_ = m.To("b@example.com")
			m.Subject(fmt.Sprintf("w%d", i))
			m.SetBodyString(mail.TypeTextPlain, "body")
			if err := c.DialAndSend(m); err != nil {
				errc <- err
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		errc <- nil
	}()
	msgs, err = s.Wait(ctxTimeout(t, 10*time.Second), 2)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if len(msgs) < 2 {
		t.Fatalf("Wait returned %d messages", len(msgs))
	}
	if err := <-errc; err != nil {
		t.Fatalf("sender: %v", err)
	}
}

func TestDiscard(t *testing.T) {
	s := Start(t, Options{})
	s.Discard(true)
	c := newClient(t, s)
	if err := c.DialAndSend(newMsg(t, "a@example.com", "b@example.com", "d", "body")); err != nil {
		t.Fatalf("DialAndSend: %v", err)
	}
	s.Discard(false)
	if err := c.DialAndSend(newMsg(t, "a@example.com", "b@example.com", "k", "body")); err != nil {
		t.Fatalf("DialAndSend: %v", err)
	}
	msgs := s.Messages()
	if len(msgs) != 2 || s.Count() != 2 {
		t.Fatalf("got %d messages, want 2", len(msgs))
	}
	if msgs[0].Data != nil {
		t.Errorf("discarded message kept Data (%d bytes)", len(msgs[0].Data))
	}
	if msgs[0].From != "a@example.com" || len(msgs[0].To) != 1 {
		t.Errorf("discarded message envelope = %+v", msgs[0])
	}
	if len(msgs[1].Data) == 0 {
		t.Error("kept message has no Data")
	}
}

func TestMultipleRecipients(t *testing.T) {
	s := Start(t, Options{})
	m := newMsg(t, "a@example.com", "b@example.com", "multi", "body")
	if err := m.Cc("c@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := m.Bcc("d@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := newClient(t, s).DialAndSend(m); err != nil {
		t.Fatalf("DialAndSend: %v", err)
	}
	got := s.Messages()[0].To
	want := []string{"b@example.com", "c@example.com", "d@example.com"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("To = %q, want %q", got, want)
	}
}

func TestConcurrentSenders(t *testing.T) {
	s := Start(t, Options{})
	const senders, perSender = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := mail.NewClient(s.Host(), mail.WithPort(s.Port()), mail.WithTLSPolicy(mail.NoTLS))
			if err != nil {
				errs <- err
				return
			}
			if err := c.DialWithContext(context.Background()); err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := range perSender {
				m := mail.NewMsg()
				_ = m.From("a@example.com")
				_ = m.To("b@example.com")
				m.Subject(fmt.Sprintf("%d-%d", i, j))
				m.SetBodyString(mail.TypeTextPlain, "body")
				if err := c.Send(m); err != nil {
					errs <- err
					return
				}
				_ = s.Count()
				_ = s.Messages()
			}
		}()
	}
	msgs, err := s.Wait(ctxTimeout(t, 20*time.Second), senders*perSender)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("sender: %v", e)
	}
	if err != nil {
		t.Fatalf("Wait: %v (got %d)", err, len(msgs))
	}
	if s.Sessions() != senders {
		t.Errorf("Sessions = %d, want %d", s.Sessions(), senders)
	}
}

func TestCloseIdempotent(t *testing.T) {
	s, err := New("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		conn.Close()
		t.Fatal("dial succeeded after Close")
	}
}

// TestPipelinedRepliesGrouped: the replies to pipelined commands leave in
// one write once the server has read all it was sent (RFC 2920 3.2), so
// one read on the client side gets every one of them.
func TestPipelinedRepliesGrouped(t *testing.T) {
	s := Start(t, Options{})
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64<<10)
	if n, err := c.Read(buf); err != nil || !bytes.HasPrefix(buf[:n], []byte("220 ")) {
		t.Fatalf("greeting: %q, %v", buf[:n], err)
	}
	for round := range 20 {
		cmds := "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
		if round == 0 {
			cmds = "EHLO client.example\r\n" + cmds
		} else {
			cmds = "Subject: x\r\n\r\nbody\r\n.\r\n" + cmds // the previous mail's content
		}
		if _, err := c.Write([]byte(cmds)); err != nil {
			t.Fatal(err)
		}
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(buf[:n]); !strings.HasSuffix(got, "\r\n") || !strings.Contains(got, "\r\n354 ") {
			t.Fatalf("round %d: one read got %q, want every reply up to the 354", round, got)
		}
	}
}

// TestHoldData: a held DATA answers only after Release; a hold for another
// recipient lets mail through; Stop ends a hold that was never released.
func TestHoldData(t *testing.T) {
	s := Start(t, Options{})
	c := newClient(t, s)
	other := s.HoldData("held@example.com")
	if err := c.DialAndSend(newMsg(t, "a@example.com", "free@example.com", "free", "body")); err != nil {
		t.Fatalf("send to a recipient not held: %v", err)
	}

	h := s.HoldData("") // replaces and releases the first hold
	select {
	case <-other.released:
	default:
		t.Error("HoldData did not release the hold it replaced")
	}
	sent := make(chan error, 1)
	go func() { sent <- c.DialAndSend(newMsg(t, "a@example.com", "held@example.com", "held", "body")) }()
	select {
	case <-h.Arrived():
	case <-time.After(5 * time.Second):
		t.Fatal("the held DATA never arrived")
	}
	select {
	case err := <-sent:
		t.Fatalf("send returned while held: %v", err)
	default:
	}
	if got := s.Count(); got != 1 {
		t.Errorf("Count while held = %d, want 1", got)
	}
	h.Release()
	if err := <-sent; err != nil {
		t.Fatalf("send after Release: %v", err)
	}
	if got := s.Count(); got != 2 {
		t.Errorf("Count after Release = %d, want 2", got)
	}

	h = s.HoldData("")
	go func() { sent <- c.DialAndSend(newMsg(t, "a@example.com", "b@example.com", "stopped", "body")) }()
	select {
	case <-h.Arrived():
	case <-time.After(5 * time.Second):
		t.Fatal("the held DATA never arrived")
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop with a held DATA: %v", err)
	}
	if err := <-sent; err == nil {
		t.Error("send held through Stop succeeded, want an error")
	}
	if got := s.Count(); got != 2 {
		t.Errorf("Count after Stop = %d, want 2 (the held mail was never accepted)", got)
	}
}

// TestHelo: the server records the name the client gave in EHLO.
func TestHelo(t *testing.T) {
	s := Start(t, Options{})
	c := newClient(t, s, mail.WithHELO("mta.example.org"))
	if err := c.DialAndSend(newMsg(t, "a@example.com", "b@example.com", "helo", "body")); err != nil {
		t.Fatal(err)
	}
	if got := s.Messages()[0].Helo; got != "mta.example.org" {
		t.Errorf("Helo = %q, want %q", got, "mta.example.org")
	}
}
