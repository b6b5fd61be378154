package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// Transport hands one message to the next hop. Implementations are safe for
// concurrent use.
type Transport interface {
	// SendBatch hands msgs (built from ms) to the next hop in order and
	// returns one error per message: nil when it was accepted.
	SendBatch(ctx context.Context, msgs []*Outgoing, ms []Message) []error
	Close() error
}

// ErrPermanent marks a delivery failure that retrying cannot fix, such as
// a 5xx answer to RCPT or DATA.
var ErrPermanent = errors.New("mail: permanent failure")

// FileTransport writes each message as an .eml file into a directory and
// logs its main link: the development transport.
type FileTransport struct {
	Dir string
	Log *slog.Logger
}

// Send writes msg to Dir/<message-id>.eml and fsyncs it before returning.
func (f *FileTransport) Send(ctx context.Context, msg *Outgoing, m Message) error {
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return err
	}
	path := f.Path(m.MessageID)
	tmp, err := os.CreateTemp(f.Dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(msg.Data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if f.Log != nil {
		f.Log.Info("mail written (file transport)", "file", path, "link", m.Link)
	}
	return nil
}

// Path returns the file Send writes the mail with messageID to.
func (f *FileTransport) Path(messageID string) string {
	return filepath.Join(f.Dir, strings.NewReplacer("@", "_at_", "/", "_").Replace(messageID)+".eml")
}

// SendBatch writes each message with Send.
func (f *FileTransport) SendBatch(ctx context.Context, msgs []*Outgoing, ms []Message) []error {
	errs := make([]error, len(msgs))
	for i := range msgs {
		errs[i] = f.Send(ctx, msgs[i], ms[i])
	}
	return errs
}

// Close does nothing.
func (f *FileTransport) Close() error { return nil }

// SMTPConfig configures an SMTPTransport.
type SMTPConfig struct {
	Host     string
	Port     int
	Username string
	Password string
	// TLS is "mandatory" (implicit TLS), "starttls" (STARTTLS required) or
	// "none".
	TLS string
	// TLSConfig overrides the TLS client settings (tests use it to trust
	// their own CA); nil means RootCAs and Host as server name.
	TLSConfig *tls.Config
	// RootCAs are the CAs the relay's certificate may be signed by; nil
	// means the system's.
	RootCAs *x509.CertPool
	// Helo is the name given in EHLO; empty means the machine's host name.
	Helo string
	// Conns is the number of SMTP connections kept open; default 8.
	Conns int
	// Timeout bounds each SMTP command; default 30 s.
	Timeout time.Duration
	// noPipelining sends one command at a time even to a relay that
	// offers PIPELINING; tests use it to cover that path.
	noPipelining bool
}

// SMTPTransport sends through an SMTP relay over a small pool of reused
// connections. A connection that fails is closed (its socket, even when
// the relay no longer answers QUIT) and redialled on the next send.
type SMTPTransport struct {
	cfg    SMTPConfig
	client *gomail.Client // settings and dialling; holds no connection itself
	pool   chan *conn
	all    []*conn
}

// conn is one pooled SMTP session; sc is nil until dialled.
type conn struct {
	sc   *smtp.Client
	pipe *pipeliner // nil when the relay does not offer PIPELINING
}

// NewSMTPTransport returns a transport; it dials lazily.
func NewSMTPTransport(cfg SMTPConfig) (*SMTPTransport, error) {
	if cfg.Conns <= 0 {
		cfg.Conns = 8
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	t := &SMTPTransport{cfg: cfg, client: c, pool: make(chan *conn, cfg.Conns)}
	for range cfg.Conns {
		pc := &conn{}
		t.all = append(t.all, pc)
		t.pool <- pc
	}
	return t, nil
}

func newClient(cfg SMTPConfig) (*gomail.Client, error) {
	opts := []gomail.Option{gomail.WithPort(cfg.Port), gomail.WithTimeout(cfg.Timeout)}
	tlsConf := cfg.TLSConfig
	if tlsConf == nil {
		tlsConf = &tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs}
	}
	if cfg.Helo != "" {
		opts = append(opts, gomail.WithHELO(cfg.Helo))
	}
	switch cfg.TLS {
	case "mandatory":
		opts = append(opts, gomail.WithSSL(), gomail.WithTLSConfig(tlsConf))
	case "starttls":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory), gomail.WithTLSConfig(tlsConf))
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		return nil, fmt.Errorf("mail: unknown tls mode %q", cfg.TLS)
	}
	if cfg.Username != "" {
		auth := gomail.SMTPAuthAutoDiscover
		if cfg.TLS == "none" {
			auth = gomail.SMTPAuthPlainNoEnc // the operator chose no TLS
		}
		opts = append(opts, gomail.WithSMTPAuth(auth), gomail.WithUsername(cfg.Username),
			gomail.WithPassword(cfg.Password))
	}
	c, err := gomail.NewClient(cfg.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("mail: smtp client: %w", err)
	}
	return c, nil
}

// Send delivers one message; see SendBatch.
func (t *SMTPTransport) Send(ctx context.Context, msg *Outgoing, m Message) error {
	return t.SendBatch(ctx, []*Outgoing{msg}, []Message{m})[0]
}

// errSessionLost marks a message that got no answer because the SMTP
// session broke before or while it was sent.
var errSessionLost = errors.New("mail: the SMTP session broke")

// SendBatch delivers msgs in one SMTP session on a pooled connection,
// dialling it if needed, with command pipelining when the relay offers it
// (see pipeliner) and one command at a time otherwise. A
// 5xx answer to RCPT or DATA wraps ErrPermanent; anything else is
// temporary: a refused connection or a 4xx, and a *ConfigError when the
// relay refuses the configuration (TLS mode, login, certificate, host
// name, a 5xx to MAIL FROM). When the session breaks, the messages it left
// unanswered are sent once more on a fresh connection: a pooled session
// the relay has closed in the meantime costs no retry delay.
func (t *SMTPTransport) SendBatch(ctx context.Context, msgs []*Outgoing, ms []Message) []error {
	errs := make([]error, len(msgs))
	var pc *conn
	select {
	case pc = <-t.pool:
	case <-ctx.Done():
		for i := range errs {
			errs[i] = ctx.Err()
		}
		return errs
	}
	defer func() { t.pool <- pc }()
	var todo []int // indexes of the messages still to send
	for i, msg := range msgs {
		if strings.ContainsAny(msg.From, "\r\n") || strings.ContainsAny(msg.To, "\r\n") {
			errs[i] = fmt.Errorf("%w: line break in an envelope address", ErrPermanent)
			continue
		}
		todo = append(todo, i)
	}
	for attempt := 0; attempt < 2 && len(todo) > 0; attempt++ {
		if err := ctx.Err(); err != nil {
			for _, i := range todo {
				if errs[i] == nil { // not yet tried
					errs[i] = fmt.Errorf("mail: send: %w", err)
				}
			}
			break
		}
		if err := t.open(ctx, pc); err != nil {
			for _, i := range todo {
				errs[i] = err
			}
			return errs
		}
		batch := make([]*Outgoing, len(todo))
		for k, i := range todo {
			batch[k] = msgs[i]
		}
		// Once ctx is done, close the session: that ends a read or write
		// go-mail's client waits in, which ctx alone does not.
		sc := pc.sc
		stop := context.AfterFunc(ctx, func() { _ = sc.Text.Close() })
		var berrs []error
		var broken bool
		if pc.pipe != nil {
			berrs, broken = pc.pipe.send(ctx, batch)
		} else {
			berrs, broken = t.sendOneByOne(ctx, pc.sc, batch)
		}
		broken = !stop() || broken
		var again []int
		for k, i := range todo {
			errs[i] = berrs[k]
			if errors.Is(berrs[k], errSessionLost) {
				again = append(again, i)
			}
		}
		if !broken {
			break
		}
		pc.drop()
		todo = again
	}
	return errs
}

// sendOneByOne sends msgs one command at a time, for relays without
// PIPELINING, and classifies the outcome like pipeliner.send. A refused
// mail is followed by RSET, so the session stays usable. Each mail gets
// the command timeout anew, bounded by ctx's deadline; once ctx is done
// no further mail is begun.
func (t *SMTPTransport) sendOneByOne(ctx context.Context, sc *smtp.Client, msgs []*Outgoing) (errs []error, broken bool) {
	errs = make([]error, len(msgs))
	lost := func(from int, err error) ([]error, bool) {
		failRest(errs, from, fmt.Errorf("%w: %w", errSessionLost, err))
		return errs, true
	}
	for i, msg := range msgs {
		if err := ctx.Err(); err != nil {
			failRest(errs, i, fmt.Errorf("mail: send: %w", err))
			return errs, false
		}
		if err := sc.UpdateDeadline(commandTimeout(ctx, t.cfg.Timeout)); err != nil {
			return lost(i, err)
		}
		step, err := "MAIL FROM", sc.Mail(msg.From)
		if err == nil {
			step, err = "RCPT TO", sc.Rcpt(msg.To)
		}
		if err == nil {
			step = "DATA"
			_, err = sendData(sc, msg.Data)
		}
		switch {
		case err == nil:
			continue
		case isIO(err):
			return lost(i, err)
		case step == "MAIL FROM":
			errs[i] = mailFromRefused(err)
		default:
			errs[i] = classify(step, err)
		}
		if err := sc.Reset(); err != nil {
			return lost(i+1, err)
		}
	}
	return errs, false
}

// sendData sends DATA, then data stuffed by appendDotStuffed as on the
// pipelined path (textproto's DotWriter would let a lone CR through), and
// returns the relay's verdict, such as "250 2.0.0 Ok: queued as 4F2B1".
func sendData(sc *smtp.Client, data []byte) (string, error) {
	if err := sc.Text.PrintfLine("DATA"); err != nil {
		return "", err
	}
	if _, _, err := sc.Text.ReadResponse(354); err != nil {
		return "", err
	}
	if _, err := sc.Text.W.Write(appendDotStuffed(nil, data)); err != nil {
		return "", err
	}
	if err := sc.Text.W.Flush(); err != nil {
		return "", err
	}
	code, msg, err := sc.Text.ReadResponse(250)
	return fmt.Sprintf("%d %s", code, msg), err
}

// dial opens a session with the relay (connection, greeting, EHLO, TLS
// and login, done by go-mail); a failure is explained by setupError. It
// returns when ctx is done, even though go-mail bounds all but the
// connection by the command timeout alone: the dial then ends on its own
// and closes what it opened.
func (t *SMTPTransport) dial(ctx context.Context) (*smtp.Client, error) {
	type dialled struct {
		sc  *smtp.Client
		err error
	}
	ch := make(chan dialled, 1)
	go func() {
		sc, err := t.client.DialToSMTPClientWithContext(ctx)
		ch <- dialled{sc, err}
	}()
	select {
	case d := <-ch:
		if d.err != nil {
			return nil, setupError(t.cfg, d.err)
		}
		return d.sc, nil
	case <-ctx.Done():
		go func() {
			if d := <-ch; d.sc != nil {
				_ = d.sc.Close()
			}
		}()
		return nil, fmt.Errorf("mail: dial: %w", ctx.Err())
	}
}

// Check makes sure a pooled session with the relay is open, dialling one
// if none is, and sends no mail: the outbox worker calls it at start, so
// a configuration the relay refuses shows before the first mail. The
// session stays in the pool for the next send.
func (t *SMTPTransport) Check(ctx context.Context) error {
	var pc *conn
	select {
	case pc = <-t.pool:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { t.pool <- pc }()
	return t.open(ctx, pc)
}

// open dials pc's session unless it is open, and sets up pipelining when
// the relay offers it.
func (t *SMTPTransport) open(ctx context.Context, pc *conn) error {
	if pc.sc != nil {
		return nil
	}
	sc, err := t.dial(ctx)
	if err != nil {
		return err
	}
	pc.sc = sc
	if ok, _ := sc.Extension("PIPELINING"); ok && !t.cfg.noPipelining {
		pc.pipe = newPipeliner(sc, t.cfg.Timeout)
	}
	return nil
}

// SendTest sends msg on a session of its own, one command at a time, and
// returns the relay's answer to its content, such as "250 2.0.0 Ok:
// queued as 4F2B1". A refusal is explained as SendBatch explains it.
func (t *SMTPTransport) SendTest(ctx context.Context, msg *Outgoing) (string, error) {
	sc, err := t.dial(ctx)
	if err != nil {
		return "", err
	}
	defer func() { _ = t.client.CloseWithSMTPClient(sc) }()
	if err := sc.UpdateDeadline(commandTimeout(ctx, t.cfg.Timeout)); err != nil {
		return "", err
	}
	if err := sc.Mail(msg.From); err != nil {
		return "", mailFromRefused(err)
	}
	if err := sc.Rcpt(msg.To); err != nil {
		return "", classify("RCPT TO", err)
	}
	reply, err := sendData(sc, msg.Data)
	if err != nil {
		return "", classify("DATA", err)
	}
	return reply, nil
}

// drop closes the session's socket without waiting for the relay.
func (pc *conn) drop() {
	if pc.sc != nil {
		_ = pc.sc.Close()
		pc.sc = nil
	}
	pc.pipe = nil
}

// Close says QUIT on every pooled session that is still open and closes
// its socket. Errors are ignored: a relay may have dropped an idle session
// already, and nothing is lost either way. Close must not run while sends
// are in progress.
func (t *SMTPTransport) Close() error {
	for _, pc := range t.all {
		if pc.sc != nil {
			_ = t.client.CloseWithSMTPClient(pc.sc)
			pc.drop()
		}
	}
	return nil
}
