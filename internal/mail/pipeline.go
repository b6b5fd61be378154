package mail

import (
	"bytes"
	"errors"
	"fmt"
	"net/textproto"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
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
// (RFC 5321 4.1.1.4), so no RSET is needed between mails.
type pipeliner struct {
	sc      *smtp.Client
	timeout time.Duration
	params  string       // MAIL FROM parameters, as go-mail would send them
	out     []byte       // the next write
	raw     bytes.Buffer // one message as go-mail writes it
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

// envelope is one message's MAIL FROM and RCPT TO arguments.
type envelope struct {
	from  string
	rcpts []string
}

func envelopeOf(msg *gomail.Msg) (envelope, error) {
	from, err := msg.GetSender(false)
	if err != nil {
		return envelope{}, err
	}
	rcpts, err := msg.GetRecipients()
	if err != nil {
		return envelope{}, err
	}
	for _, a := range append([]string{from}, rcpts...) {
		if strings.ContainsAny(a, "\r\n") {
			return envelope{}, errors.New("mail: line break in an envelope address")
		}
	}
	return envelope{from: from, rcpts: rcpts}, nil
}

// send delivers msgs in order and returns one error per message (nil:
// accepted) and whether the session broke (an I/O error), in which case
// the caller must close it. The messages left without an answer then
// carry errSessionLost.
func (p *pipeliner) send(msgs []*gomail.Msg) (errs []error, broken bool) {
	errs = make([]error, len(msgs))
	envs := make([]envelope, len(msgs))
	for i, msg := range msgs {
		env, err := envelopeOf(msg)
		if err != nil {
			errs[i] = fmt.Errorf("%w: %v", ErrPermanent, err)
			continue
		}
		envs[i] = env
	}
	next := func(i int) int { // the first message from i on that can be sent
		for i < len(msgs) && errs[i] != nil {
			i++
		}
		return i
	}
	fail := func(from int, err error) {
		for j := from; j < len(msgs); j++ {
			if errs[j] == nil {
				errs[j] = fmt.Errorf("%w: %w", errSessionLost, err)
			}
		}
	}

	i := next(0)
	p.out = p.out[:0]
	if i < len(msgs) {
		p.out = p.appendEnvelope(p.out, envs[i])
	}
	resetPending := false // an RSET went out before message i's envelope
	for i < len(msgs) {
		if err := p.flush(); err != nil {
			fail(i, err)
			return errs, true
		}
		if resetPending {
			if _, _, err := p.sc.Text.ReadResponse(250); err != nil {
				fail(i, err)
				return errs, true
			}
			resetPending = false
		}
		// The replies to MAIL, each RCPT and DATA, in order.
		var refused error
		_, _, err := p.sc.Text.ReadResponse(250)
		if isIO(err) {
			fail(i, err)
			return errs, true
		}
		if err != nil {
			refused = fmt.Errorf("mail: MAIL FROM refused: %w", err) // the sender's setup, not this mail: temporary
		}
		okRcpts := 0
		for range envs[i].rcpts {
			_, _, err := p.sc.Text.ReadResponse(25)
			if isIO(err) {
				fail(i, err)
				return errs, true
			}
			if err == nil {
				okRcpts++
			} else if refused == nil {
				refused = classify("RCPT TO", err)
			}
		}
		code, _, err := p.sc.Text.ReadResponse(354)
		if isIO(err) {
			fail(i, err)
			return errs, true
		}
		if err != nil && refused == nil {
			refused = classify("DATA", err)
		}

		p.out = p.out[:0]
		following := next(i + 1)
		if code == 354 && (refused != nil || okRcpts == 0) {
			// A relay that opened DATA although the envelope failed
			// (RFC 2920 3.1 says it should not): end it empty and reset.
			p.out = append(p.out, ".\r\n"...)
			if err := p.flush(); err != nil {
				fail(i, err)
				return errs, true
			}
			if _, _, err := p.sc.Text.ReadResponse(250); isIO(err) {
				fail(i, err)
				return errs, true
			}
			p.out = p.out[:0]
			code = 0
		}
		if code != 354 {
			if refused == nil {
				refused = errors.New("mail: DATA refused")
			}
			errs[i] = refused
			if following < len(msgs) {
				p.out = append(p.out, "RSET\r\n"...)
				p.out = p.appendEnvelope(p.out, envs[following])
				resetPending = true
			}
			i = following
			continue
		}
		// DATA is open: the content, then the next envelope in the same write.
		p.raw.Reset()
		if _, err := msgs[i].WriteTo(&p.raw); err != nil {
			// Nothing of it went out yet, and ending the open DATA now
			// would deliver an empty mail: drop the session instead.
			errs[i] = fmt.Errorf("%w: writing the message: %v", ErrPermanent, err)
			fail(following, err)
			return errs, true
		}
		p.out = appendDotStuffed(p.out, p.raw.Bytes())
		if following < len(msgs) {
			p.out = p.appendEnvelope(p.out, envs[following])
		}
		if err := p.flush(); err != nil {
			fail(i, err)
			return errs, true
		}
		_, _, err = p.sc.Text.ReadResponse(250)
		if isIO(err) {
			fail(i, err)
			return errs, true
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
// through) and renews the session's deadline.
func (p *pipeliner) flush() error {
	if len(p.out) == 0 {
		return nil
	}
	if err := p.sc.UpdateDeadline(p.timeout); err != nil {
		return err
	}
	w := p.sc.Text.W
	if _, err := w.Write(p.out); err != nil {
		return err
	}
	return w.Flush()
}

func (p *pipeliner) appendEnvelope(b []byte, env envelope) []byte {
	b = append(b, "MAIL FROM:"...)
	b = append(b, env.from...)
	b = append(b, p.params...)
	b = append(b, "\r\n"...)
	for _, r := range env.rcpts {
		b = append(b, "RCPT TO:"...)
		b = append(b, r...)
		b = append(b, "\r\n"...)
	}
	return append(b, "DATA\r\n"...)
}

// appendDotStuffed appends msg as SMTP DATA content (RFC 5321 4.5.2):
// every line ends in CRLF, a line that starts with a dot gets a second
// one, and a line with a single dot ends it.
func appendDotStuffed(b, msg []byte) []byte {
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) > 0 && line[0] == '.' {
			b = append(b, '.')
		}
		b = append(b, line...)
		b = append(b, "\r\n"...)
	}
	return append(b, ".\r\n"...)
}

// isIO reports whether err is a broken session rather than a reply.
func isIO(err error) bool {
	var te *textproto.Error
	return err != nil && !errors.As(err, &te)
}

// classify turns a refusal of a mail (not of the sender) into a permanent
// error for a 5xx reply and a temporary one otherwise.
func classify(step string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 && te.Code < 600 {
		return fmt.Errorf("%w: %s: %v", ErrPermanent, step, err)
	}
	return fmt.Errorf("mail: %s: %w", step, err)
}
