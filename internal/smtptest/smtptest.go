// Package smtptest provides a real, in-process SMTP server (built on
// github.com/emersion/go-smtp) for tests. (The load tests' sink is
// internal/bench.Sink.)
//
// The server records every accepted message (with the name the client gave
// in EHLO), can require AUTH PLAIN, can offer STARTTLS or implicit TLS
// (SMTPS), can inject DATA failures with a chosen SMTP code, can hold the
// reply to DATA until the test releases it (HoldData), and can simulate an
// outage (Stop) followed by recovery on the same port (Restart).
//
// This file deliberately does not import "testing"; the testing.TB helper
// lives in start.go.
package smtptest

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Server limits and timeouts applied to every listening instance.
const (
	maxMessageBytes = 10 << 20 // 10 MiB
	maxRecipients   = 100
	ioTimeout       = 30 * time.Second

	// restartBindWindow bounds how long Restart keeps retrying to re-bind the
	// same port (e.g. while the kernel still holds it).
	restartBindWindow = 3 * time.Second
	restartBindPause  = 25 * time.Millisecond

	// stopGrace bounds how long Stop waits for session goroutines to exit
	// after their connections have been closed.
	stopGrace = 5 * time.Second
)

// ErrClosed is returned by Restart after Close.
var ErrClosed = errors.New("smtptest: server closed")

// Message is one mail the server accepted.
type Message struct {
	From     string
	To       []string
	Data     []byte // the raw message as received (CRLF line endings); nil in Discard mode
	Received time.Time
	// Helo is the name the client gave in EHLO (or HELO).
	Helo string
}

// Options configures a Server.
type Options struct {
	// TLS, when set, makes the server offer STARTTLS with this config.
	TLS *tls.Config
	// ImplicitTLS, when true (and TLS set), makes the listener speak TLS from
	// the first byte (SMTPS) instead of offering STARTTLS.
	ImplicitTLS bool
	// Username and Password, when Username is set, make AUTH PLAIN mandatory
	// (MAIL FROM is refused before a successful AUTH) and checked against
	// these credentials. Without TLS, AUTH is allowed over plaintext; with
	// TLS (STARTTLS mode) AUTH is only offered after STARTTLS.
	Username, Password string
}

// Server is an in-process SMTP server. All methods are safe for concurrent
// use.
type Server struct {
	opts Options

	bindAddr string // address passed to net.Listen on (re)start: original host + bound port
	addr     string // dialable host:port
	host     string
	port     int

	sessions atomic.Int64
	discard  atomic.Bool

	mu       sync.Mutex
	msgs     []Message
	notify   chan struct{} // closed and replaced whenever msgs grows
	failN    int
	failCode int
	failMsg  string
	refuse   map[string]int // recipient -> RCPT reply code
	dropIn   int            // > 0: the dropIn-th MAIL from now closes its connection
	slowData time.Duration  // how long each DATA takes
	hold     *Hold          // DATA replies held back; nil for none
	down     chan struct{}  // closed when the running instance stops

	life      sync.Mutex // serialises New/Stop/Restart/Close
	srv       *smtp.Server
	ln        *trackingListener
	serveDone chan struct{}
	running   bool
	closed    bool
}

// New starts listening on addr (e.g. "127.0.0.1:0") immediately and serves
// in the background until Stop or Close.
func New(addr string, opts Options) (*Server, error) {
	if opts.ImplicitTLS && opts.TLS == nil {
		return nil, errors.New("smtptest: ImplicitTLS requires Options.TLS")
	}
	s := &Server{
		opts:   opts,
		notify: make(chan struct{}),
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smtptest: listen %s: %w", addr, err)
	}
	tcpAddr, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		ln.Close()
		return nil, fmt.Errorf("smtptest: unexpected listener address %T", ln.Addr())
	}
	bindHost, _, err := net.SplitHostPort(addr)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("smtptest: bad address %q: %w", addr, err)
	}
	s.port = tcpAddr.Port
	s.bindAddr = net.JoinHostPort(bindHost, strconv.Itoa(s.port))
	// A wildcard bind is not dialable everywhere; report loopback instead.
	if tcpAddr.IP == nil || tcpAddr.IP.IsUnspecified() {
		if ip := net.ParseIP(bindHost); ip != nil && ip.To4() == nil {
			s.host = "::1"
		} else {
			s.host = "127.0.0.1"
		}
	} else {
		s.host = tcpAddr.IP.String()
	}
	s.addr = net.JoinHostPort(s.host, strconv.Itoa(s.port))

	s.life.Lock()
	defer s.life.Unlock()
	s.serveLocked(ln)
	return s, nil
}

// Addr returns the host:port actually bound (stable across Stop/Restart).
func (s *Server) Addr() string { return s.addr }

// Host returns the host part of Addr.
func (s *Server) Host() string { return s.host }

// Port returns the TCP port actually bound (stable across Stop/Restart).
func (s *Server) Port() int { return s.port }

// Messages returns a copy of the accepted messages, in arrival order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.copyLocked()
}

func (s *Server) copyLocked() []Message {
	out := make([]Message, len(s.msgs))
	for i, m := range s.msgs {
		out[i] = Message{
			From:     m.From,
			To:       slices.Clone(m.To),
			Data:     bytes.Clone(m.Data),
			Received: m.Received,
			Helo:     m.Helo,
		}
	}
	return out
}

// Count returns the number of accepted messages (since the last Reset).
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// Wait blocks until at least n messages have been accepted or ctx is done.
// On ctx expiry it returns the messages received so far together with
// ctx.Err().
func (s *Server) Wait(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			out := s.copyLocked()
			s.mu.Unlock()
			return out, nil
		}
		ch := s.notify
		s.mu.Unlock()

		select {
		case <-ch:
		case <-ctx.Done():
			return s.Messages(), ctx.Err()
		}
	}
}

// Reset forgets all stored messages. It does not touch Sessions, FailNext
// or Discard state.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = nil
}

// FailNext makes the next n DATA commands fail with the given SMTP code and
// message (e.g. 451 for a temporary, 550 for a permanent failure). The
// enhanced status code is derived from the class (4xx → 4.0.0, 5xx → 5.0.0).
// A call replaces any pending injection; n <= 0 cancels it.
func (s *Server) FailNext(n int, code int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		s.failN, s.failCode, s.failMsg = 0, 0, ""
		return
	}
	s.failN, s.failCode, s.failMsg = n, code, msg
}

// RefuseRcpt makes RCPT TO for the address to fail with code (e.g. 550 for
// an unknown mailbox, 451 for a temporary problem) until it is called
// again with code 0.
func (s *Server) RefuseRcpt(to string, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse == nil {
		s.refuse = map[string]int{}
	}
	if code == 0 {
		delete(s.refuse, to)
		return
	}
	s.refuse[to] = code
}

// DropOnMail makes the n-th MAIL command from now close its connection
// instead of answering, as a relay that goes away between two mails; n <= 0
// cancels it.
func (s *Server) DropOnMail(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropIn = max(n, 0)
}

// SlowData makes every DATA take d between the end of the content and
// the final reply, as a relay that filters content before queueing it.
func (s *Server) SlowData(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slowData = d
}

// dropNow counts a MAIL command down to the one DropOnMail asked for.
func (s *Server) dropNow() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropIn == 0 {
		return false
	}
	s.dropIn--
	return s.dropIn == 0
}

// Hold is a hold on DATA replies, set by HoldData.
type Hold struct {
	to       string
	arrived  chan struct{} // closed when the first held DATA waits
	released chan struct{} // closed by Release
	arrive   sync.Once
	release  sync.Once
}

// HoldData makes each DATA of a transaction to the recipient to (any
// transaction when to is "") wait, with the content read and before the
// reply, until the hold is released or the server stops (which closes the
// connection, so that mail gets no reply). It stands for a relay that
// hangs, or lets a test act while a mail is being sent. A call replaces
// the hold before it, which it releases.
func (s *Server) HoldData(to string) *Hold {
	h := &Hold{to: to, arrived: make(chan struct{}), released: make(chan struct{})}
	s.mu.Lock()
	old := s.hold
	s.hold = h
	s.mu.Unlock()
	if old != nil {
		old.Release()
	}
	return h
}

// Arrived is closed once a DATA waits on the hold.
func (h *Hold) Arrived() <-chan struct{} { return h.arrived }

// Release lets the held DATA (and any later one) answer. It is idempotent.
func (h *Hold) Release() { h.release.Do(func() { close(h.released) }) }

// holdFor returns the hold that applies to a transaction to rcpts, and
// the channel closed when the running instance stops.
func (s *Server) holdFor(rcpts []string) (*Hold, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold == nil || (s.hold.to != "" && !slices.Contains(rcpts, s.hold.to)) {
		return nil, nil
	}
	return s.hold, s.down
}

func (s *Server) dataDelay() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slowData
}

// refusal returns the injected RCPT failure for to, if any.
func (s *Server) refusal(to string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code, ok := s.refuse[to]; ok {
		return injectedError(code, "recipient refused")
	}
	return nil
}

// Sessions returns the number of TCP connections accepted so far (across
// restarts). A STARTTLS upgrade does not count as a new session.
func (s *Server) Sessions() int { return int(s.sessions.Load()) }

// Discard switches discard mode: when on, messages are still counted and
// their envelope recorded, but Data is not kept (Messages returns nil Data).
func (s *Server) Discard(on bool) { s.discard.Store(on) }

// Stop simulates an outage: it closes the listener and every live SMTP
// connection and waits for the session goroutines to finish. New connections
// are refused until Restart. Addr/Port stay reserved in the struct (but the
// port itself is released to the OS). Stop on a stopped server is a no-op.
func (s *Server) Stop() error {
	s.life.Lock()
	defer s.life.Unlock()
	return s.stopLocked()
}

// Restart listens again on the same port (retrying briefly if the port is
// not yet bindable) and serves in the background. Restart on a running
// server is a no-op; after Close it returns ErrClosed.
func (s *Server) Restart() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.running {
		return nil
	}
	deadline := time.Now().Add(restartBindWindow)
	for {
		ln, err := net.Listen("tcp", s.bindAddr)
		if err == nil {
			s.serveLocked(ln)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("smtptest: restart listen %s: %w", s.bindAddr, err)
		}
		time.Sleep(restartBindPause)
	}
}

// Close stops the server for good. It is idempotent.
func (s *Server) Close() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.stopLocked()
}

func (s *Server) serveLocked(raw net.Listener) {
	tl := &trackingListener{
		Listener: raw,
		conns:    make(map[*trackedConn]struct{}),
		onAccept: func() { s.sessions.Add(1) },
	}
	var ln net.Listener = tl
	if s.opts.ImplicitTLS {
		ln = tls.NewListener(tl, s.opts.TLS)
	}

	s.mu.Lock()
	s.down = make(chan struct{})
	s.mu.Unlock()
	srv := smtp.NewServer(&backend{s: s})
	srv.Domain = "localhost"
	srv.MaxMessageBytes = maxMessageBytes
	srv.MaxRecipients = maxRecipients
	srv.ReadTimeout = ioTimeout
	srv.WriteTimeout = ioTimeout
	srv.EnableSMTPUTF8 = true
	srv.AllowInsecureAuth = s.opts.TLS == nil
	srv.TLSConfig = s.opts.TLS
	srv.ErrorLog = log.New(io.Discard, "", 0)

	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()

	s.srv, s.ln, s.serveDone, s.running = srv, tl, done, true
}

func (s *Server) stopLocked() error {
	if !s.running {
		return nil
	}
	s.running = false
	s.mu.Lock()
	close(s.down) // held DATA gives up
	s.mu.Unlock()

	// Closing the tracking listener refuses new connections and closes all
	// live ones; Serve then returns because Accept fails.
	err := s.ln.Close()
	<-s.serveDone

	// No more wg.Add can happen now; wait for the per-connection goroutines.
	ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	if serr := s.srv.Shutdown(ctx); serr != nil && err == nil {
		err = serr
	}
	s.srv, s.ln, s.serveDone = nil, nil, nil
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// record stores an accepted message, or returns the injected failure.
func (s *Server) record(from string, to []string, data []byte, helo string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failN > 0 {
		s.failN--
		return injectedError(s.failCode, s.failMsg)
	}
	s.msgs = append(s.msgs, Message{
		From:     from,
		To:       to,
		Data:     data,
		Received: time.Now(),
		Helo:     helo,
	})
	close(s.notify)
	s.notify = make(chan struct{})
	return nil
}

func injectedError(code int, msg string) *smtp.SMTPError {
	ec := smtp.EnhancedCodeNotSet
	switch code / 100 {
	case 4:
		ec = smtp.EnhancedCode{4, 0, 0}
	case 5:
		ec = smtp.EnhancedCode{5, 0, 0}
	}
	if msg == "" {
		msg = "injected failure"
	}
	return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}
}

// --- go-smtp backend -------------------------------------------------------

type backend struct{ s *Server }

// NewSession is called per EHLO/HELO (and again after STARTTLS), not per
// TCP connection; connections are counted in trackingListener instead.
func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: b.s, conn: c}, nil
}

type session struct {
	s      *Server
	conn   *smtp.Conn
	authed bool
	inTx   bool // MAIL accepted, transaction not yet ended
	from   string
	to     []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) authRequired() bool { return ss.s.opts.Username != "" }

func (ss *session) AuthMechanisms() []string {
	if !ss.authRequired() {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if !ss.authRequired() || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && identity != username {
			return smtp.ErrAuthFailed
		}
		userOK := subtle.ConstantTimeCompare([]byte(username), []byte(ss.s.opts.Username)) == 1
		passOK := subtle.ConstantTimeCompare([]byte(password), []byte(ss.s.opts.Password)) == 1
		if !userOK || !passOK {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

// errAuthRequired is the reply to MAIL or RCPT before a required AUTH
// (RFC 4954 section 6; go-smtp's own ErrAuthRequired says 502).
var errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.authRequired() && !ss.authed {
		return errAuthRequired
	}
	if ss.s.dropNow() {
		ss.conn.Close()
		return errors.New("smtptest: connection dropped")
	}
	if ss.inTx {
		// Like Postfix: a transaction left open (say after a refused
		// RCPT) must be ended with RSET first.
		return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "nested MAIL command"}
	}
	ss.inTx, ss.from, ss.to = true, from, nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.authRequired() && !ss.authed {
		return errAuthRequired
	}
	if err := ss.s.refusal(to); err != nil {
		return err
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	var data []byte
	if ss.s.discard.Load() {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
	} else {
		var err error
		if data, err = io.ReadAll(r); err != nil {
			return err
		}
	}
	// The content is all read (and the 354 sent) before the delay, so
	// the client waits for the final reply, as with a filtering relay.
	if d := ss.s.dataDelay(); d > 0 {
		time.Sleep(d)
	}
	if h, down := ss.s.holdFor(ss.to); h != nil {
		h.arrive.Do(func() { close(h.arrived) })
		select {
		case <-h.released:
		case <-down:
			return errors.New("smtptest: stopped while holding DATA")
		}
	}
	return ss.s.record(ss.from, slices.Clone(ss.to), data, ss.conn.Hostname())
}

func (ss *session) Reset() {
	ss.inTx, ss.from, ss.to = false, "", nil
}

func (ss *session) Logout() error { return nil }

// --- connection tracking ---------------------------------------------------

// trackingListener counts accepted connections and remembers live ones so
// Stop can close them all, including ones go-smtp has not registered yet.
type trackingListener struct {
	net.Listener
	onAccept func()

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	l.onAccept()
	return tc, nil
}

// Close closes the listener and every live connection. It is idempotent.
func (l *trackingListener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	conns := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()

	err := l.Listener.Close()
	for _, c := range conns {
		c.Close()
	}
	return err
}

func (l *trackingListener) forget(c *trackedConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// trackedConn is one accepted connection. It holds the server's replies
// back until the server next reads from the socket, and then sends them
// in one write: RFC 2920 section 3.2 lets a server group the replies to
// pipelined commands as long as it sends them before it waits for more
// input, which is what Postfix does. go-smtp flushes every reply on its
// own, which cost the load-test sink four writes per mail.
type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once

	mu  sync.Mutex
	out []byte // replies not yet sent
}

// Write queues p until the next Read or Close.
func (c *trackedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out = append(c.out, p...)
	return len(p), nil
}

// Read sends the queued replies, then reads. go-smtp reads through a
// bufio.Reader, so Read runs only when every command received so far has
// been answered.
func (c *trackedConn) Read(p []byte) (int, error) {
	if err := c.flush(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// flush sends the queued replies in one write, without holding mu while
// it blocks, so Close from another goroutine is never held up.
func (c *trackedConn) flush() error {
	c.mu.Lock()
	out := c.out
	c.out = nil
	c.mu.Unlock()
	if len(out) == 0 {
		return nil
	}
	_, err := c.Conn.Write(out)
	return err
}

// Close sends what is queued, as a server that wrote at once would have,
// and closes the connection. The queued bytes count as written for the
// layer above, so they get a deadline of their own: crypto/tls sets the
// write deadline to now right after queuing its close_notify alert.
func (c *trackedConn) Close() error {
	c.once.Do(func() { c.l.forget(c) })
	_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.flush()
	return c.Conn.Close()
}
