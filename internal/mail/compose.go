package mail

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"optin/internal/consent"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Outgoing is a built mail, ready for a transport: its SMTP envelope and
// its content.
type Outgoing struct {
	// From and To are the envelope sender and recipient in angle
	// brackets, as MAIL FROM and RCPT TO take them.
	From, To string
	// Data is the RFC 5322 message: CRLF line ends, no line longer than
	// 998 octets, no line that starts with a dot, a 7-bit body (only an
	// address in From or To may be UTF-8, RFC 6532).
	Data []byte
}

// boundary separates the text and HTML parts. Both parts are
// quoted-printable, in which "=" only ever starts an escape ("=3D") or a
// soft line break, so "=_" cannot occur in them (RFC 2045 6.7 suggests
// this); a fixed boundary is therefore safe.
const boundary = "=_optin-alternative"

// Build turns m into an Outgoing mail from the given sender, dated date.
// Every header value that could carry outside input is encoded (RFC 2047)
// when it holds anything but printable ASCII or is too long to fold, so
// CR and LF never reach the header section raw (RFC 5322, section 2.2); the
// List-Unsubscribe URL is checked instead, as it must stay readable. The text part and the HTML part
// (when m has one; then the mail is multipart/alternative) are
// quoted-printable with lines of at most 76 characters. Every mail says
// Auto-Submitted: auto-generated. Build replaced
// go-mail's message writer, which was a fifth of the outbox's CPU.
func Build(from string, m Message, date time.Time) (*Outgoing, error) {
	sender, err := parseSender(from)
	if err != nil {
		return nil, err
	}
	rcpt, err := mail.ParseAddress(m.To)
	if err != nil {
		return nil, fmt.Errorf("mail: to: %w", err)
	}
	if !printableASCII(m.MessageID) || m.MessageID == "" || len(m.MessageID) > 250 ||
		strings.ContainsAny(m.MessageID, "<> ") {
		return nil, errors.New("mail: unsafe Message-ID")
	}
	o := &Outgoing{From: sender.envelope, To: angle(consent.WireAddress(rcpt.Address))}
	fromHeader := sender.header
	// Addresses may be UTF-8 (RFC 6532), which encoded words must not
	// carry; they go out as they are, but never with a control character.
	if hasControl(fromHeader) || hasControl(o.To) {
		return nil, errors.New("mail: control character in an address")
	}
	if len(fromHeader) > 900 || len(o.To) > 900 {
		return nil, errors.New("mail: address too long for a header line")
	}
	b := make([]byte, 0, 1024+len(m.Text)*11/10+len(m.HTML)*11/10)
	b = appendHeader(b, "Date", date.Format(time.RFC1123Z))
	b = appendFolded(b, "From", fromHeader)
	b = appendFolded(b, "To", o.To)
	b = appendHeader(b, "Subject", m.Subject)
	b = appendHeader(b, "Message-ID", "<"+m.MessageID+">")
	// Every mail optin sends is written by a program, not by a person:
	// RFC 3834 section 5 asks auto-responders (vacation notices, "out of
	// office") not to answer such a mail.
	b = append(b, "Auto-Submitted: auto-generated\r\n"...)
	if m.Unsubscribe != "" {
		if err := checkHeaderURL(m.Unsubscribe); err != nil {
			return nil, err
		}
		value := "<" + m.Unsubscribe + ">"
		if m.UnsubscribeMailto != "" {
			if err := checkHeaderMailto(m.UnsubscribeMailto); err != nil {
				return nil, err
			}
			value += ", <" + m.UnsubscribeMailto + ">"
		}
		b = appendHeader(b, "List-Unsubscribe", value)
		b = appendHeader(b, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
	}
	if m.ListID != "" {
		b = appendHeader(b, "List-Id", m.ListID)
	}
	b = append(b, "MIME-Version: 1.0\r\n"...)
	if m.HTML == "" {
		b = appendPart(b, "text/plain", m.Text)
		if b[len(b)-1] != '\n' {
			b = append(b, "\r\n"...)
		}
	} else {
		// The line break before a boundary belongs to the boundary (RFC
		// 2046 5.1.1), so each part's own last line break survives.
		b = append(b, "Content-Type: multipart/alternative;\r\n boundary=\""+boundary+"\"\r\n\r\n"...)
		b = append(b, "--"+boundary+"\r\n"...)
		b = appendPart(b, "text/plain", m.Text)
		b = append(b, "\r\n--"+boundary+"\r\n"...)
		b = appendPart(b, "text/html", m.HTML)
		b = append(b, "\r\n--"+boundary+"--\r\n"...)
	}
	o.Data = b
	return o, nil
}

// sender is a From address as Build writes it: as the envelope's MAIL
// FROM path and as the From header.
type sender struct {
	from             string // as configured
	envelope, header string
}

// lastSender is the sender Build parsed last: every mail of a service
// has the same From, which was parsed again for each one.
var lastSender atomic.Pointer[sender]

// parseSender parses from, or returns it as parsed before.
func parseSender(from string) (*sender, error) {
	if s := lastSender.Load(); s != nil && s.from == from {
		return s, nil
	}
	a, err := mail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("mail: from: %w", err)
	}
	a.Address = consent.WireAddress(a.Address)
	s := &sender{from: from, envelope: angle(a.Address), header: a.String()}
	lastSender.Store(s)
	return s, nil
}

// angle returns addr as an SMTP path: <addr>, quoted where RFC 5322 asks.
func angle(addr string) string {
	return (&mail.Address{Address: addr}).String()
}

// appendPart appends the header and quoted-printable body of a UTF-8 part
// of type ct.
func appendPart(b []byte, ct, body string) []byte {
	b = append(b, "Content-Type: "...)
	b = append(b, ct...)
	b = append(b, "; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"...)
	return appendQuotedPrintable(b, body)
}

// printableASCII reports whether s holds only printable ASCII and spaces.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// hasControl reports whether s holds an ASCII control character.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// maxHeaderLine is the line length headers are folded at (RFC 5322 2.1.1
// recommends 78; 998 is the limit).
const maxHeaderLine = 78

// appendHeader appends the header field name: value. A value that holds
// anything but printable ASCII, or that might not fold into lines of at
// most 998 octets, goes out as RFC 2047 encoded words (UTF-8, Q), which
// hold no raw space or control character and fold into lines of at most
// 76.
func appendHeader(b []byte, name, value string) []byte {
	if !printableASCII(value) || len(name)+2+len(value) > 998 {
		value = encodeWords(value, 76-len(name)-2)
	}
	return appendFolded(b, name, value)
}

// encodeWords returns s as RFC 2047 encoded words in UTF-8 and the Q
// encoding, separated by single spaces: each at most 75 characters long
// (the first at most first), split only between characters (RFC 2047 2,
// 5). Letters, digits and !*+-/ stand for themselves, a space is "_",
// every other byte is =XX.
func encodeWords(s string, first int) string {
	const prefix, suffix = "=?UTF-8?q?", "?="
	var b []byte
	limit, n, open := first, 0, false // n: length of the open word
	for i := 0; i < len(s); {
		_, size := utf8.DecodeRuneInString(s[i:])
		width := 0
		for _, c := range []byte(s[i : i+size]) {
			if qWordLiteral(c) {
				width++
			} else {
				width += 3
			}
		}
		if !open || n+width+len(suffix) > limit {
			if open {
				b = append(b, suffix+" "...)
				limit = 75
			}
			b = append(b, prefix...)
			n, open = len(prefix), true
		}
		for _, c := range []byte(s[i : i+size]) {
			switch {
			case c == ' ':
				b = append(b, '_')
			case qWordLiteral(c):
				b = append(b, c)
			default:
				b = appendEscape(b, c)
			}
		}
		n += width
		i += size
	}
	if open {
		b = append(b, suffix...)
	}
	return string(b)
}

// appendEscape appends c as "=" and two upper-case hex digits, the escape
// of both quoted-printable (RFC 2045 6.7) and the Q encoding (RFC 2047
// 4.2).
func appendEscape(b []byte, c byte) []byte {
	const hex = "0123456789ABCDEF"
	return append(b, '=', hex[c>>4], hex[c&0x0f])
}

// qWordLiteral reports whether c may stand for itself in a Q-encoded
// word anywhere in a header (RFC 2047 5 (3)); a space becomes "_".
func qWordLiteral(c byte) bool {
	return c == ' ' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '!' || c == '*' || c == '+' || c == '-' || c == '/'
}

// appendFolded appends the header field name: value, folded where a line
// would grow past maxHeaderLine: before a space that precedes a word, so
// no line holds white space alone (RFC 5322 3.2.2) and unfolding gives
// back the value (2.2.3). value must hold no control character.
func appendFolded(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	n := len(name) + 2 // length of the current line
	for first := true; ; first = false {
		word, rest, more := cutSpace(value)
		if !first {
			if word != "" && n+1+len(word) > maxHeaderLine {
				b = append(b, "\r\n"...)
				n = 0
			}
			b = append(b, ' ')
			n++
		}
		b = append(b, word...)
		n += len(word)
		if !more {
			break
		}
		value = rest
	}
	return append(b, "\r\n"...)
}

func cutSpace(s string) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// maxQPLine is the longest line of quoted-printable text, soft line
// break included (RFC 2045 6.7 rule 5).
const maxQPLine = 76

// appendQuotedPrintable appends s encoded as quoted-printable text (RFC
// 2045 6.7). LF and CRLF are line breaks and become CRLF; a lone CR is
// encoded. Besides what the RFC demands ("=", bytes outside printable
// ASCII, space or tab before a line end), a dot that starts a line is
// encoded, so the result never needs SMTP dot-stuffing.
func appendQuotedPrintable(b []byte, s string) []byte {
	n := 0 // length of the current output line
	for i := 0; i < len(s); {
		c := s[i]
		if c == '\n' || c == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			if c == '\r' {
				i++
			}
			b = append(b, "\r\n"...)
			n = 0
			i++
			continue
		}
		// Copy a run of bytes that stay as they are, as far as the line
		// has room (one place is kept for a soft break's "=").
		if n > 0 || c != '.' {
			j, end := i, min(len(s), i+maxQPLine-1-n)
			for j < end && qpLiteral[s[j]] {
				j++
			}
			if j > i && (s[j-1] == ' ' || s[j-1] == '\t') && endsLine(s, j) {
				j-- // white space may not end a line
			}
			if j > i {
				b = append(b, s[i:j]...)
				n += j - i
				i = j
				continue
			}
		}
		// One byte: encoded, or the first of a new line.
		literal := qpLiteral[c] && !((c == ' ' || c == '\t') && endsLine(s, i+1))
		width := 1
		if !literal {
			width = 3
		}
		if n+width > maxQPLine-1 {
			b = append(b, "=\r\n"...)
			n = 0
		}
		if c == '.' && n == 0 {
			literal, width = false, 3
		}
		if literal {
			b = append(b, c)
		} else {
			b = appendEscape(b, c)
		}
		n += width
		i++
	}
	return b
}

// qpLiteral marks the bytes quoted-printable may carry as they are:
// printable ASCII but "=", and space and tab where no line ends.
var qpLiteral = func() (t [256]bool) {
	for c := '!'; c <= '~'; c++ {
		t[c] = c != '='
	}
	t[' '], t['\t'] = true, true
	return t
}()

// endsLine reports whether a line of s ends at i.
func endsLine(s string, i int) bool {
	return i == len(s) || s[i] == '\n' || s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n'
}

// ProbeMessage returns the mail "optin mail test" sends from from to to:
// plain text, saying what it is, with a Message-ID of random bits at
// from's domain.
func ProbeMessage(from, to string, random io.Reader) (Message, error) {
	sender, err := mail.ParseAddress(from)
	if err != nil {
		return Message{}, fmt.Errorf("mail: from: %w", err)
	}
	id := make([]byte, 16)
	if _, err := io.ReadFull(random, id); err != nil {
		return Message{}, fmt.Errorf("mail: message id: %w", err)
	}
	return Message{
		To:        to,
		MessageID: hex.EncodeToString(id) + sender.Address[strings.LastIndexByte(sender.Address, '@'):],
		Subject:   "optin test mail",
		Text: "This mail was sent by \"optin mail test\" to check optin's mail settings.\n" +
			"It needs no answer.\n",
	}, nil
}
