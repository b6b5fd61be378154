package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Sink is the SMTP server of load tests, in the spirit of Postfix's
// smtp-sink: it accepts every mail, notes when it arrived and for whom,
// and throws the content away (a sink made by NewLinkSink keeps the
// first confirmation link in it, which optin-bench signup --confirm
// clicks). It speaks just enough ESMTP for a relay
// client (EHLO with PIPELINING, MAIL, RCPT, DATA, RSET, NOOP, QUIT; no
// TLS, no AUTH) and answers pipelined commands in one write once it has
// read all it was sent. It exists because go-smtp, the server of the
// tests, reads mail content a byte at a time: on the two cores shared by
// optin, the load generator and the sink, that sink took more CPU per mail
// than optin's whole mail path, and a real relay runs on a machine of its
// own. The tests keep using go-smtp (internal/smtptest).
type Sink struct {
	ln       net.Listener
	links    bool // keep each mail's confirmation link
	sessions atomic.Int64
	wg       sync.WaitGroup

	mu     sync.Mutex
	got    []Delivery
	notify chan struct{} // closed and replaced whenever got grows
	conns  map[net.Conn]struct{}
	closed bool
}

// Delivery is one recipient of one accepted mail.
type Delivery struct {
	To string    // the RCPT TO address, without angle brackets
	At time.Time // when the end of its DATA was read
	// Link is the path of the mail's first confirmation link,
	// "/confirm/TOKEN" ("" for none), found in its text part however
	// quoted-printable broke its lines.
	Link string
}

// sinkTimeout bounds how long a session waits for a command or content.
const sinkTimeout = 5 * time.Minute

// NewSink listens on addr and serves until Close.
func NewSink(addr string) (*Sink, error) { return newSink(addr, false) }

// NewLinkSink is NewSink keeping each mail's confirmation link
// (Delivery.Link), at the cost of scanning the mails.
func NewLinkSink(addr string) (*Sink, error) { return newSink(addr, true) }

func newSink(addr string, links bool) (*Sink, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Sink{ln: ln, links: links, notify: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Addr returns the address the sink listens on.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Sessions returns how many SMTP connections the sink accepted.
func (s *Sink) Sessions() int { return int(s.sessions.Load()) }

// Count returns how many deliveries the sink accepted.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// Wait returns the deliveries accepted so far once there are at least n,
// or when ctx is done.
func (s *Sink) Wait(ctx context.Context, n int) []Delivery {
	for {
		s.mu.Lock()
		got, notify := s.got, s.notify
		s.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return got
		}
	}
}

// Close stops listening, closes every session and waits for them.
func (s *Sink) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Sink) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.sessions.Add(1)
		go func() {
			defer s.wg.Done()
			_ = s.session(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// errLineTooLong ends a session whose command line fills the buffer.
var errLineTooLong = errors.New("sink: command line too long")

// session runs one SMTP session on c.
func (s *Sink) session(c net.Conn) error {
	r := bufio.NewReaderSize(c, 64<<10)
	out := []byte("220 optin-bench sink ESMTP\r\n")
	var rcpts []string
	for {
		if r.Buffered() == 0 { // all read is answered: send before waiting
			if _, err := c.Write(out); err != nil {
				return err
			}
			out = out[:0]
		}
		_ = c.SetDeadline(time.Now().Add(sinkTimeout))
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return errLineTooLong
		}
		if err != nil {
			return err
		}
		verb := string(bytes.ToUpper(line[:min(4, len(line))]))
		switch verb {
		case "EHLO":
			out = append(out, "250-optin-bench sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"...)
		case "HELO":
			out = append(out, "250 optin-bench sink\r\n"...)
		case "MAIL":
			rcpts = rcpts[:0]
			out = append(out, "250 2.1.0 OK\r\n"...)
		case "RCPT":
			to := line
			if i := bytes.IndexByte(to, '<'); i >= 0 {
				to = to[i+1:]
			}
			if i := bytes.IndexByte(to, '>'); i >= 0 {
				to = to[:i]
			}
			rcpts = append(rcpts, string(to))
			out = append(out, "250 2.1.5 OK\r\n"...)
		case "DATA":
			if len(rcpts) == 0 {
				out = append(out, "503 5.5.1 no valid recipients\r\n"...)
				continue
			}
			out = append(out, "354 end with <CRLF>.<CRLF>\r\n"...)
			if _, err := c.Write(out); err != nil {
				return err
			}
			out = out[:0]
			link, err := readContent(r, s.links)
			if err != nil {
				return err
			}
			s.deliver(rcpts, time.Now(), link)
			rcpts = rcpts[:0]
			out = append(out, "250 2.0.0 OK\r\n"...)
		case "RSET":
			rcpts = rcpts[:0]
			out = append(out, "250 2.0.0 OK\r\n"...)
		case "NOOP":
			out = append(out, "250 2.0.0 OK\r\n"...)
		case "QUIT":
			_, err := c.Write(append(out, "221 2.0.0 bye\r\n"...))
			return err
		default:
			out = append(out, "502 5.5.2 command not implemented\r\n"...)
		}
	}
}

// readContent reads mail content up to and including the line with a
// single dot, and with links returns the path of the first confirmation
// link in it (see Delivery.Link).
func readContent(r *bufio.Reader, links bool) (link string, err error) {
	lineStart := true
	var text []byte // the content's first maxScan bytes, dot-unstuffed
	for {
		line, err := r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		if lineStart && err == nil && (string(line) == ".\r\n" || string(line) == ".\n") {
			return findLink(text), nil
		}
		if lineStart {
			// The client doubled a line's leading dot (RFC 5321 4.5.2).
			line = bytes.TrimPrefix(line, []byte("."))
		}
		if links && len(text) < maxScan {
			text = append(text, line[:min(len(line), maxScan-len(text))]...)
		}
		lineStart = err == nil // a full buffer leaves the line unfinished
	}
}

// maxScan is how much of a mail findLink looks at: optin's confirmation
// mail has its text part, with the link, well within it.
const maxScan = 16 << 10

// confirmPath starts a confirmation link's path.
var confirmPath = []byte("/confirm/")

// findLink returns the path of the first confirmation link in text, a
// mail as sent: its quoted-printable soft breaks ("=" at a line's end)
// joined and "=2E" (a dot that began a line) decoded, which is all that
// encoding does to a link (base64url and dots; "=" itself never appears).
func findLink(text []byte) string {
	text = bytes.ReplaceAll(text, []byte("=\r\n"), nil)
	text = bytes.ReplaceAll(text, []byte("=\n"), nil)
	text = bytes.ReplaceAll(text, []byte("=2E"), []byte("."))
	i := bytes.Index(text, confirmPath)
	if i < 0 {
		return ""
	}
	end := i + len(confirmPath)
	for end < len(text) {
		c := text[end]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			break
		}
		end++
	}
	return string(text[i:end])
}

func (s *Sink) deliver(rcpts []string, at time.Time, link string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, to := range rcpts {
		s.got = append(s.got, Delivery{To: to, At: at, Link: link})
	}
	close(s.notify)
	s.notify = make(chan struct{})
}
