package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// ConfigError is the relay's refusal of optin's configuration: a TLS mode
// it does not speak, a login it does not accept, a certificate optin
// cannot trust, a sender it does not take, or a host name that does not
// resolve. Retrying does not help until the configuration or the relay
// changes; the worker keeps the mails queued and retries them all the
// same, so nothing is lost once it does.
type ConfigError struct {
	// Key is the configuration key to look at, such as "mail.smtp.tls".
	Key string
	// Reason says what is wrong and what to set, in optin's words.
	Reason string
	Err    error
}

func (e *ConfigError) Error() string { return e.Reason }

func (e *ConfigError) Unwrap() error { return e.Err }

// setupError explains why a session with the relay could not be set up
// (dial, greeting, EHLO, TLS, AUTH): a *ConfigError when the relay
// refuses the configuration, else err with the relay's address.
func setupError(cfg SMTPConfig, err error) error {
	cfgErr := func(key, reason string, args ...any) error {
		return &ConfigError{Key: key, Reason: fmt.Sprintf(reason, args...), Err: err}
	}
	var (
		dnsErr     *net.DNSError
		hostErr    x509.HostnameError
		unknownCA  x509.UnknownAuthorityError
		invalidErr x509.CertificateInvalidError
		verifyErr  *tls.CertificateVerificationError
		recordErr  tls.RecordHeaderError
		reply      *textproto.Error
	)
	switch {
	case errors.As(err, &dnsErr):
		return cfgErr("mail.smtp.host", "mail.smtp.host %q does not resolve (%s); check the name", cfg.Host, dnsErr.Err)
	case errors.As(err, &hostErr):
		return cfgErr("mail.smtp.host", "the relay's certificate is not valid for %q; set mail.smtp.host to a name "+
			"its certificate names", cfg.Host)
	case errors.As(err, &unknownCA):
		return cfgErr("mail.smtp.ca_file", "the relay's certificate is signed by a CA optin does not trust; set "+
			"mail.smtp.ca_file to that CA's certificate (PEM)")
	case errors.As(err, &invalidErr):
		return cfgErr("mail.smtp.host", "the relay's certificate is not valid (%v); the relay must renew it", invalidErr)
	case errors.As(err, &verifyErr):
		return cfgErr("mail.smtp.ca_file", "the relay's certificate does not verify (%v)", verifyErr.Err)
	case errors.As(err, &recordErr):
		return cfgErr("mail.smtp.tls", "the relay does not speak TLS on connect; set mail.smtp.tls to \"starttls\" "+
			"(usually port 587), or mail.smtp.port to its implicit-TLS port (usually 465)")
	case strings.Contains(err.Error(), "does not support STARTTLS"): // go-mail's words; a test pins them
		return cfgErr("mail.smtp.tls", "the relay does not offer STARTTLS; set mail.smtp.tls to \"mandatory\" if it "+
			"speaks TLS on connect (usually port 465), or to \"none\" only on a network you trust")
	case errors.As(err, &reply) && isAuthRefusal(reply.Code):
		return cfgErr("mail.smtp.username", "the relay refuses the login (%d %s); check mail.smtp.username and "+
			"mail.smtp.password", reply.Code, reply.Msg)
	case errors.Is(err, gomail.ErrNoSupportedAuthDiscovered) || strings.Contains(err.Error(), "does not support SMTP AUTH"):
		advice := "leave mail.smtp.username empty if it needs no login"
		if cfg.TLS == "none" {
			advice = "set mail.smtp.tls to \"starttls\" (many relays offer a login only after STARTTLS), or " + advice
		}
		return cfgErr("mail.smtp.username", "the relay offers no login optin can use on this connection; %s", advice)
	}
	return fmt.Errorf("mail: dial %s: %w", net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)), err)
}

// isAuthRefusal reports whether an SMTP reply code refuses a login:
// 530 authentication required, 534 mechanism too weak, 535 credentials
// invalid, 538 encryption required (RFC 4954 section 6).
func isAuthRefusal(code int) bool {
	return code == 530 || code == 534 || code == 535 || code == 538
}

// mailFromRefused explains a refused MAIL FROM. It concerns the sender,
// not the mail: a 530 asks for a login and another 5xx refuses mail.from
// (both the configuration's); anything else is temporary.
func mailFromRefused(err error) error {
	var reply *textproto.Error
	if errors.As(err, &reply) {
		switch {
		case reply.Code == 530:
			return &ConfigError{Key: "mail.smtp.username", Err: err, Reason: fmt.Sprintf("the relay requires a login "+
				"(%d %s); set mail.smtp.username and mail.smtp.password", reply.Code, reply.Msg)}
		case reply.Code >= 500 && reply.Code != 502 && reply.Code != 503:
			return &ConfigError{Key: "mail.from", Err: err, Reason: fmt.Sprintf("the relay refuses the sender "+
				"address (%d %s); check mail.from, and that the login may send as it", reply.Code, reply.Msg)}
		}
	}
	return fmt.Errorf("mail: MAIL FROM refused: %w", err)
}

// relayState is the worker's view of the relay: up until a send fails for
// want of it, then down, with the reason, until it accepts a mail again.
// The worker logs its changes rather than each mail that waits: an outage
// of seconds fails thousands of mails.
type relayState struct {
	mu     sync.Mutex
	begun  uint64 // sends (batches and checks) begun
	okFrom uint64 // the latest send begun that the relay accepted
	down   bool
	since  time.Time
	cause  error // why it is down
	failed int   // mails that failed while it was down
}

// checker is a transport that can check its relay without sending.
type checker interface {
	Check(ctx context.Context) error
}

// check asks the transport to reach its relay, so that a configuration
// it refuses shows at start, before the first mail.
func (w *Worker) check(ctx context.Context, c checker) {
	ticket := w.beginSend()
	err := c.Check(ctx)
	if ctx.Err() == nil {
		w.noteRelay(ticket, err == nil, 0, err)
	}
}

// beginSend returns the ticket of a send about to begin, for noteRelay.
func (w *Worker) beginSend() uint64 {
	w.relay.mu.Lock()
	defer w.relay.mu.Unlock()
	w.relay.begun++
	return w.relay.begun
}

// noteRelay records what the send with ticket taught about the relay:
// whether it accepted a mail (or a check), how many mails failed
// temporarily, and why. It logs the relay going down, the reason
// changing from one kind to another while it is down (say from a refused
// connection to a refused login), and the relay coming back, with the
// number of mails that failed in between; it reports the last. A send
// that began before the latest accepted one cannot mark the relay down:
// its failure may be older than the recovery.
func (w *Worker) noteRelay(ticket uint64, accepted bool, failed int, cause error) (recovered bool) {
	r := &w.relay
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case accepted:
		r.okFrom = max(r.okFrom, ticket)
		if !r.down {
			return false
		}
		w.Log.Info("outbox: the mail relay accepts mail again", "failed_meanwhile", r.failed,
			"down_for", w.Now().Sub(r.since).Round(time.Millisecond))
		r.down, r.cause, r.failed = false, nil, 0
		return true
	case cause == nil || ticket < r.okFrom:
		return false
	}
	changed := !r.down || configKey(cause) != configKey(r.cause)
	if !r.down {
		r.down, r.since = true, w.Now()
	}
	r.cause = cause
	r.failed += failed
	if changed {
		var ce *ConfigError
		if errors.As(cause, &ce) {
			w.Log.Error("outbox: the mail relay refuses optin's configuration; mails stay queued and are retried",
				"reason", ce.Reason, "key", ce.Key)
		} else {
			w.Log.Warn("outbox: the mail relay fails; mails stay queued and are retried", "err", cause)
		}
	}
	return false
}

// RelayError returns why the relay fails while it does: the error of the
// last send to it (or of the check at start) when none was accepted
// since; nil while it takes mail. Unlike Ready it reports every failure
// of the relay as a whole (a refused connection, a timeout, a 4xx to the
// sender), not only a refusal of optin's configuration.
func (w *Worker) RelayError() error {
	w.relay.mu.Lock()
	defer w.relay.mu.Unlock()
	if !w.relay.down {
		return nil
	}
	return w.relay.cause
}

// configKey returns the key of err's *ConfigError, or "" for none.
func configKey(err error) string {
	var ce *ConfigError
	if errors.As(err, &ce) {
		return ce.Key
	}
	return ""
}

// Ready returns an error, with the reason, while the relay refuses
// optin's configuration: the last send to it (or the check at start)
// failed with a *ConfigError and none was accepted since. /readyz
// answers 503 with it. Other failures (a relay that is down or slow) do
// not make optin unready: the outbox holds the mail until it is back.
func (w *Worker) Ready() error {
	w.relay.mu.Lock()
	defer w.relay.mu.Unlock()
	var ce *ConfigError
	if w.relay.down && errors.As(w.relay.cause, &ce) {
		return fmt.Errorf("the mail relay refuses optin's configuration: %s", ce.Reason)
	}
	return nil
}
