// Package inbound is optin's inbound SMTP listener (over go-smtp): it
// takes the delivery status notifications (RFC 3464) and abuse reports
// (RFC 5965) that come back to the VERP return path, and mailto:
// unsubscribes (RFC 2369), for mail.return_path_domain and no other
// domain, so it never relays.
package inbound

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/net/netutil"
	"golang.org/x/time/rate"

	"optin/internal/consent"
	optmail "optin/internal/mail"
	"optin/internal/token"
)

// Store is what the listener changes.
type Store interface {
	RecordFeedback(ctx context.Context, a *consent.Actor, fb consent.Feedback, p consent.SoftBouncePolicy) (consent.FeedbackResult, error)
	Unsubscribe(ctx context.Context, id, topic, channel string, in consent.ConfirmInput) ([]string, error)
}

// Tokens verifies the unsubscribe token of a mailto: unsubscribe.
type Tokens interface {
	Verify(p token.Purpose, s string) (token.Claims, error)
}

// Local parts the listener takes mail for besides VERP addresses:
// postmaster (RFC 5321 4.5.1) and abuse (RFC 2142) may receive abuse
// reports; UnsubscribeLocal takes mailto: unsubscribes.
const (
	UnsubscribeLocal = "unsubscribe"
	postmasterLocal  = "postmaster"
	abuseLocal       = "abuse"
)

// Limits of the listener.
const (
	// MaxMessageBytes is the largest mail taken: a report returns the
	// mail it is about, and optin's mails are small.
	MaxMessageBytes = 1 << 20
	maxRecipients   = 10
	// Timeout bounds each read and write on a connection.
	Timeout = time.Minute
	// maxSessions bounds the connections served at once; more wait.
	maxSessions = 32
)

// Config configures a Server.
type Config struct {
	// Addr is the address to listen on (mail.inbound.listen).
	Addr       string
	ReturnPath *optmail.ReturnPath
	Store      Store
	Tokens     Tokens
	SoftBounce consent.SoftBouncePolicy
	// PerMinute is how many mails the listener takes a minute, over all
	// clients; more get a temporary refusal. Default 120.
	PerMinute int
	Log       *slog.Logger
}

// Server is the inbound listener.
type Server struct {
	cfg  Config
	srv  *smtp.Server
	ln   net.Listener
	rate *rate.Limiter
	// ctx ends with Close, cutting off the store writes in progress (the
	// sender then retries).
	ctx    context.Context
	cancel context.CancelFunc
}

// Listen binds cfg.Addr; Serve then takes mail on it.
func Listen(cfg Config) (*Server, error) {
	if cfg.ReturnPath == nil || cfg.Store == nil || cfg.Tokens == nil {
		return nil, errors.New("inbound: need a return path, a store and tokens")
	}
	if cfg.PerMinute <= 0 {
		cfg.PerMinute = 120
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("inbound: %w", err)
	}
	s := &Server{cfg: cfg, ln: netutil.LimitListener(ln, maxSessions),
		rate: rate.NewLimiter(rate.Every(time.Minute/time.Duration(cfg.PerMinute)), cfg.PerMinute)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.srv = smtp.NewServer(backend{s})
	s.srv.Domain = cfg.ReturnPath.Domain()
	s.srv.MaxMessageBytes = MaxMessageBytes
	s.srv.MaxRecipients = maxRecipients
	s.srv.ReadTimeout, s.srv.WriteTimeout = Timeout, Timeout
	s.srv.ErrorLog = discardLogger{}
	return s, nil
}

// Addr is the address the listener is bound to.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve takes mail until Close; it returns nil after Close.
func (s *Server) Serve() error { return s.srv.Serve(s.ln) }

// Close stops listening and ends the open sessions; it may be called
// before Serve, and more than once.
func (s *Server) Close() error {
	s.cancel()
	_ = s.srv.Close() // ErrServerClosed the second time
	if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: b.s, remote: c.Conn().RemoteAddr().String()}, nil
}

// session is one SMTP session; it collects one transaction's recipients.
type session struct {
	s      *Server
	remote string
	rcpts  []string // local parts
}

var (
	errRelay    = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "relaying denied"}
	errNoUser   = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
	errBusy     = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "too many mails, try again later"}
	errInternal = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "cannot take the mail now, try again later"}
)

func (ss *session) AuthMechanisms() []string { return nil }

func (ss *session) Mail(string, *smtp.MailOptions) error {
	if !ss.s.rate.Allow() {
		return errBusy
	}
	return nil
}

// Rcpt takes only the return path domain's VERP, unsubscribe, postmaster
// and abuse addresses.
func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	i := strings.LastIndexByte(to, '@')
	if i <= 0 || !strings.EqualFold(to[i+1:], ss.s.cfg.ReturnPath.Domain()) {
		return errRelay
	}
	local := strings.ToLower(to[:i])
	switch {
	case local == UnsubscribeLocal, local == postmasterLocal, local == abuseLocal, optmail.IsVERP(local):
	default:
		return errNoUser
	}
	ss.rcpts = append(ss.rcpts, local)
	return nil
}

// Data reads the mail and acts on it for each recipient before it
// answers: 250 means the report is recorded (or was junk, logged and
// dropped: refusing it would send a bounce to a forged sender); a store
// failure is a temporary refusal, so the sender tries again.
func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ss.s.ctx, Timeout)
	defer cancel()
	for _, local := range ss.rcpts {
		var err error
		if local == UnsubscribeLocal {
			err = ss.s.unsubscribe(ctx, data)
		} else {
			err = ss.s.report(ctx, local, data)
		}
		if err != nil {
			ss.s.cfg.Log.Error("inbound: recording a report failed; the sender will retry", "remote", ss.remote, "err", err)
			return errInternal
		}
	}
	return nil
}

func (ss *session) Reset()        { ss.rcpts = nil }
func (ss *session) Logout() error { return nil }

// junk logs a mail that changes nothing: not a report, a forged one, or
// one about nothing optin acts on.
func (s *Server) junk(why string, args ...any) {
	s.cfg.Log.Warn("inbound: ignored a mail: "+why, args...)
}

// unsubscribe honours a mailto: unsubscribe: the subject carries the
// unsubscribe token of the mail's List-Unsubscribe, which works even
// after it expired, as the https form does.
func (s *Server) unsubscribe(ctx context.Context, data []byte) error {
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		s.junk("unsubscribe mail that does not parse")
		return nil
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		subject = msg.Header.Get("Subject")
	}
	fields := strings.Fields(subject)
	if len(fields) == 0 {
		s.junk("unsubscribe mail without a token")
		return nil
	}
	claims, err := s.cfg.Tokens.Verify(token.Unsubscribe, fields[len(fields)-1])
	if err != nil && !errors.Is(err, token.ErrExpired) {
		s.junk("unsubscribe mail with an invalid token")
		return nil
	}
	changed, err := s.cfg.Store.Unsubscribe(ctx, claims.Subject, claims.Topic, consent.ChannelEmail, consent.ConfirmInput{})
	if err != nil {
		return err
	}
	s.cfg.Log.Info("inbound: unsubscribed by mail", "subscriber", claims.Subject, "topics", changed)
	return nil
}

// report records a DSN or an abuse report sent to local: a VERP address,
// or postmaster or abuse, where the VERP address is read from the
// reported mail's Return-Path.
func (s *Server) report(ctx context.Context, local string, data []byte) error {
	r, err := ParseReport(data)
	if err != nil {
		s.junk("not a delivery status notification or abuse report", "to", local)
		return nil
	}
	verp := local
	if !optmail.IsVERP(verp) && r.Original != nil {
		if a, err := mail.ParseAddress(r.Original.Get("Return-Path")); err == nil {
			if i := strings.LastIndexByte(a.Address, '@'); i > 0 && strings.EqualFold(a.Address[i+1:], s.cfg.ReturnPath.Domain()) {
				verp = a.Address[:i]
			}
		}
	}
	var candidates []consent.Address
	add := func(s string) {
		if a, err := consent.ParseAddress(s); err == nil {
			candidates = append(candidates, a)
		}
	}
	for _, rc := range r.Recipients {
		for _, a := range rc.Addresses {
			add(a)
		}
	}
	for _, a := range r.OriginalRcptTo {
		add(a)
	}
	if r.Original != nil {
		if to, err := r.Original.AddressList("To"); err == nil {
			for _, a := range to {
				add(a.Address)
			}
		}
	}
	messageID, addr, ok := s.cfg.ReturnPath.Check(verp, candidates)
	if !ok {
		s.junk("a report about no mail optin sent (forged or garbled)", "type", r.Type)
		return nil
	}
	fb := consent.Feedback{Address: addr, MessageID: messageID, Channel: consent.ChannelEmail}
	switch r.Type {
	case "feedback-report":
		if r.FeedbackType != "abuse" && r.FeedbackType != "fraud" {
			s.junk("an abuse report of a type that is no complaint", "feedback_type", r.FeedbackType)
			return nil
		}
		fb.Kind, fb.Status = consent.FeedbackComplaint, r.FeedbackType
	default:
		rc, ok := recipientFor(r.Recipients, addr)
		if !ok {
			s.junk("a delivery status notification that reports no failure", "message_id", messageID)
			return nil
		}
		fb.Kind, fb.Status = consent.FeedbackSoftBounce, rc.Status
		if rc.Action == "failed" && strings.HasPrefix(rc.Status, "5.") {
			fb.Kind = consent.FeedbackBounce
		}
	}
	res, err := s.cfg.Store.RecordFeedback(ctx, nil, fb, s.cfg.SoftBounce)
	if err != nil {
		return err
	}
	s.cfg.Log.Info("inbound: report recorded", "kind", fb.Kind, "status", fb.Status, "message_id", messageID,
		"suppressed", res.Suppressed, "soft_bounces", res.SoftBounces)
	return nil
}

// recipientFor returns the failed or delayed recipient of a DSN that
// names addr, else the first failed or delayed one (the report was
// matched through the returned mail's To).
func recipientFor(rs []Recipient, addr consent.Address) (Recipient, bool) {
	var first *Recipient
	for i, rc := range rs {
		if rc.Status == "" || rc.Action != "failed" && rc.Action != "delayed" {
			continue
		}
		for _, a := range rc.Addresses {
			if p, err := consent.ParseAddress(a); err == nil && p.Key == addr.Key {
				return rc, true
			}
		}
		if first == nil {
			first = &rs[i]
		}
	}
	if first == nil {
		return Recipient{}, false
	}
	return *first, true
}
