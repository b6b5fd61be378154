package mail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"time"

	"github.com/wneessen/go-mail/smtp"
)

// pipeliner sends a batch of messages over one SMTP session with command
// pipelining (RFC 2920), when the relay offers it. go-mail dials, says
// EHLO, starts TLS and authenticates; the transactions then run over the
// session's exported textproto connection, with the round trips cut from
// five per mail (MAIL, RCPT, DATA, the content, RSET) to one: MAIL, RCPT
// and DATA go out together, the content only after the relay's 354, and
// the next mail's MAIL, RCPT and DATA ride in the same write as the
// content before them. A successful end of data ends the transaction
// (RFC 5321 4.1.1.4), so no RSET is needed between mails; a failed one is
// reset before anything else is sent.
type pipeliner struct {
	sc      *smtp.Client
	timeout time.Duration
	params  string // MAIL FROM parameters, as go-mail would send them
	out     []byte // the next write
}

func newPipeliner(sc *smtp.Client, timeout time.Duration) *pipeliner {
	p := &pipeliner{sc: sc, timeout: timeout}
	if ok, _ := sc.Extension("8BITMIME"); ok {
		p.params += " BODY=8BITMIME"
	}
	if ok, _ := sc.Extension("SMTPUTF8"); ok {
		p.params += " SMTPUTF8"
	}
	return p
}

// send delivers msgs in order and returns one error per message (nil:
// accepted) and whether the session broke (an I/O error), in which case
// the caller must close it. The messages left without an answer then
// carry errSessionLost. Once ctx is done no further message is begun;
// those left carry ctx's error.
func (p *pipeliner) send(ctx context.Context, msgs []*Outgoing) (errs []error, broken bool) {
	errs = make([]error, len(msgs))
	next := func(i int) int { // the first message from i on that can be sent
		for i < len(msgs) && errs[i] != nil {
			i++
		}
		if i < len(msgs) && ctx.Err() != nil {
			failRest(errs, i, fmt.Errorf("mail: send: %w", ctx.Err()))
			return len(msgs)
		}
		return i
	}
	lost := func(from int, err error) ([]error, bool) {
		failRest(errs, from, fmt.Errorf("%w: %w", errSessionLost, err))
		return errs, true
	}

	i := next(0)
	p.out = p.out[:0]
	if i < len(msgs) {
		p.out = p.appendEnvelope(p.out, msgs[i])
	}
	// After a failed transaction an RSET (and before it, perhaps, the end
	// of an empty DATA) went out ahead of message i's envelope.
	var reset, emptyData bool
	settle := func() error {
		if emptyData {
			if _, _, err := p.sc.Text.ReadResponse(250); isIO(err) {
				return err
			}
		}
		_, _, err := p.sc.Text.ReadResponse(250) // a refused RSET leaves the state unknown
		reset, emptyData = false, false
		return err
	}
	for i < len(msgs) {
		if err := p.flush(ctx); err != nil {
			return lost(i, err)
		}
		if reset {
			if err := settle(); err != nil {
				return lost(i, err)
			}
		}
		// The replies to MAIL, each RCPT and DATA, in order.
		var refused error
		_, _, err := p.sc.Text.ReadResponse(250)
		if isIO(err) {
			return lost(i, err)
		}
		if err != nil {
			refused = mailFromRefused(err) // the sender's setup, not this mail: temporary
		}
		_, _, err = p.sc.Text.ReadResponse(25)
		if isIO(err) {
			return lost(i, err)
		}
		rcptOK := err == nil
		if !rcptOK && refused == nil {
			refused = classify("RCPT TO", err)
		}
		code, _, err := p.sc.Text.ReadResponse(354)
		if isIO(err) {
			return lost(i, err)
		}
		if err != nil && refused == nil {
			refused = classify("DATA", err)
		}

		p.out = p.out[:0]
		if code == 354 && refused != nil {
			// A relay that opened DATA although the envelope failed
			// (RFC 2920 3.1 says it should not).
			if rcptOK {
				// It would deliver even an empty content to the
				// recipients it took: leave rather than end the DATA.
				errs[i] = refused
				return lost(i+1, errors.New("mail: the relay opened DATA for a refused envelope"))
			}
			p.out = append(p.out, ".\r\n"...)
			emptyData, code = true, 0
		}
		if code != 354 {
			// The transaction failed: reset it, even after the last
			// message, so the pooled session starts the next batch clean.
			errs[i] = refused
			p.out = append(p.out, "RSET\r\n"...)
			reset = true
			if following := next(i + 1); following < len(msgs) {
				p.out = p.appendEnvelope(p.out, msgs[following])
				i = following
				continue
			}
			if err := p.flush(ctx); err != nil {
				return errs, true
			}
			return errs, settle() != nil
		}
		// DATA is open: the content, then the next envelope in the same write.
		p.out = appendDotStuffed(p.out, msgs[i].Data)
		following := next(i + 1)
		if following < len(msgs) {
			p.out = p.appendEnvelope(p.out, msgs[following])
		}
		if err := p.flush(ctx); err != nil {
			return lost(i, err)
		}
		_, _, err = p.sc.Text.ReadResponse(250)
		if isIO(err) {
			return lost(i, err)
		}
		if err != nil {
			errs[i] = classify("end of data", err)
		}
		p.out = p.out[:0] // the next envelope is already out
		i = following
	}
	return errs, false
}

// flush writes p.out as one write (bufio writes a large buffer straight
// through) and sets the deadline for it and the replies it asks for: the
// command timeout, but no later than ctx's deadline.
func (p *pipeliner) flush(ctx context.Context) error {
	if len(p.out) == 0 {
		return nil
	}
	if err := p.sc.UpdateDeadline(commandTimeout(ctx, p.timeout)); err != nil {
		return err
	}
	w := p.sc.Text.W
	if _, err := w.Write(p.out); err != nil {
		return err
	}
	return w.Flush()
}

// failRest gives err to every message from from on that has no outcome
// yet.
func failRest(errs []error, from int, err error) {
	for j := from; j < len(errs); j++ {
		if errs[j] == nil {
			errs[j] = err
		}
	}
}

// commandTimeout is how long the next command and its reply may take:
// timeout, but not past ctx's deadline.
func commandTimeout(ctx context.Context, timeout time.Duration) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	return timeout
}

func (p *pipeliner) appendEnvelope(b []byte, msg *Outgoing) []byte {
	b = append(b, "MAIL FROM:"...)
	b = append(b, msg.From...)
	b = append(b, p.params...)
	b = append(b, "\r\nRCPT TO:"...)
	b = append(b, msg.To...)
	return append(b, "\r\nDATA\r\n"...)
}

// appendDotStuffed appends msg as SMTP DATA content (RFC 5321 4.5.2):
// every line ends in CRLF, a line that starts with a dot gets a second
// one, and a line with a single dot ends it. A bare CR or LF counts as a
// line break and becomes CRLF, so no relay can read a line end of its own
// (the "SMTP smuggling" of a lone CR before a dot) into the content.
// Build writes neither a bare line break nor a line that starts with a
// dot; this is the transport's own guarantee, whatever it is handed.
func appendDotStuffed(b, msg []byte) []byte {
	if wireReady(msg) {
		b = append(b, msg...)
		return append(b, ".\r\n"...)
	}
	for len(msg) > 0 {
		line := msg
		msg = nil
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line, msg = line[:i], line[i+1:]
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		for {
			j := bytes.IndexByte(line, '\r')
			if j < 0 {
				break
			}
			b = appendDataLine(b, line[:j])
			line = line[j+1:]
		}
		b = appendDataLine(b, line)
	}
	return append(b, ".\r\n"...)
}

// wireReady reports whether msg needs no stuffing: it ends in CRLF, every
// CR and LF is part of a CRLF, and no line starts with a dot. Built mails
// are; the check, one pass from line end to line end, scans them many
// times faster than stuffing them.
func wireReady(msg []byte) bool {
	if !bytes.HasSuffix(msg, []byte("\r\n")) || msg[0] == '.' {
		return false
	}
	for len(msg) > 0 {
		i := bytes.IndexByte(msg, '\n') // found: msg ends in CRLF
		if i == 0 || msg[i-1] != '\r' || bytes.IndexByte(msg[:i-1], '\r') >= 0 {
			return false
		}
		msg = msg[i+1:]
		if len(msg) > 0 && msg[0] == '.' {
			return false
		}
	}
	return true
}

func appendDataLine(b, line []byte) []byte {
	if len(line) > 0 && line[0] == '.' {
		b = append(b, '.')
	}
	b = append(b, line...)
	return append(b, "\r\n"...)
}

// isIO reports whether err is a broken session rather than a reply.
func isIO(err error) bool {
	if err == nil {
		return false // before te, which errors.As makes escape: no allocation per reply
	}
	var te *textproto.Error
	return !errors.As(err, &te)
}

// classify turns a refusal of a mail (not of the sender) into a permanent
// error for a 5xx reply and a temporary one otherwise. 502 and 503 say the
// commands came out of order, which is optin's problem, not the mail's.
func classify(step string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 && te.Code < 600 && te.Code != 502 && te.Code != 503 {
		return fmt.Errorf("%w: %s: %v", ErrPermanent, step, err)
	}
	return fmt.Errorf("mail: %s: %w", step, err)
}
