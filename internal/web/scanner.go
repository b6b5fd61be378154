package web

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
	"optin/internal/i18n"
	"optin/internal/scanner"
	"optin/internal/token"
)

// interactionTTL is how long a page's interaction token counts: a person
// presses the button within minutes of opening the page.
const interactionTTL = 30 * time.Minute

// interactionScript marks a page's form when a person's pointer or key
// touches the page; events that scripts make (isTrusted false) do not
// count. Without script the form works the same.
const interactionScript = `(function () {
  "use strict";
  var form = document.querySelector("form[data-interaction]");
  if (!form) { return; }
  var field = form.querySelector("input[name=interaction]");
  function mark(e) {
    if (e.isTrusted) { field.value = form.getAttribute("data-interaction"); }
  }
  ["pointerdown", "keydown", "touchstart"].forEach(function (t) {
    document.addEventListener(t, mark, { capture: true, passive: true });
  });
})();
`

// actionCSP is the policy of a page whose form carries an interaction
// token: the default one plus optin's own script.
const actionCSP = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (s *Server) handleInteractionJS(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=3600")
	c.Data(http.StatusOK, "text/javascript; charset=utf-8", []byte(interactionScript))
}

// withInteraction gives an action page for the link whose subject is
// subject an interaction token and the script that fills it in.
func (s *Server) withInteraction(c *gin.Context, d *pageData, subject string) {
	tok, err := s.cfg.Tokens.Issue(token.Interaction, token.Claims{Subject: subject, ExpiresAt: s.store.Now().Add(interactionTTL)})
	if err != nil {
		s.cfg.Log.Error("issuing an interaction token", "err", err)
		return // the page works without: the click counts as likely_person
	}
	d.Interaction = tok
	c.Header("Content-Security-Policy", actionCSP)
}

// click is one press of a confirmation, "not me" or "keep me subscribed"
// button, for the metrics: kind names the button.
type click struct {
	kind    string // "confirm", "not_me" or "reawaken"
	subject string // the link's subject, which its interaction token names
	sent    time.Time
	// from is the address the person used before (the signup's); ""
	// when unknown.
	from string
}

// check gathers the signals of the click c and classifies it. The client
// address comes through the trusted-proxy logic only (clientIP).
func (s *Server) check(c *gin.Context, k click) consent.Check {
	ip := clientIP(c)
	claims, err := s.cfg.Tokens.Verify(token.Interaction, c.PostForm("interaction"))
	sig := consent.Signals{
		SinceMail:       s.store.Now().Sub(k.sent),
		ScannerNetwork:  s.scanners.Lookup(ip),
		AutomationAgent: scanner.Automation(c.Request.UserAgent()),
		SignupAddress:   scanner.SameAddress(ip, k.from),
		OtherNetwork:    k.from != "" && !scanner.SameNetwork(ip, k.from),
		Interaction:     err == nil && claims.Subject == k.subject,
	}
	return consent.Classify(sig, s.cfg.Scanners)
}

// held answers a click the scanner policy holds: nothing changed, and the
// link still works for the person. It reports whether it answered.
func (s *Server) held(c *gin.Context, l i18n.Localizer, k click, ch consent.Check) bool {
	if !s.cfg.Scanners.Holds(ch) {
		return false
	}
	s.countClick(k.kind, ch.Class, "held")
	s.cfg.Log.Info("click held as a suspected mail scanner", "kind", k.kind, "reasons", ch.Reasons, "network", ch.ScannerNetwork)
	s.messagePage(c, http.StatusOK, l, "held", pageData{})
	return true
}

// countClick counts a click by kind, class and outcome ("recorded" or
// "held"), when the server has metrics.
func (s *Server) countClick(kind string, class consent.ConfirmClass, outcome string) {
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.click(kind, class, outcome)
	}
}

// requestFrom returns the address request req was made from (its own
// record, or an older request's requested event); "" when unknown.
func (s *Server) requestFrom(ctx context.Context, req *consent.Request) string {
	if req.IP != "" {
		return req.IP
	}
	// A request stored before requests kept their IP: its requested
	// event's personal record has it.
	evs, err := s.store.Events(ctx, req.Subscriber)
	if err != nil {
		return ""
	}
	for _, e := range evs {
		if e.Type == consent.EventRequested && e.Request == req.ID && e.Personal != nil {
			return e.Personal.IP
		}
	}
	return ""
}

// lastSeenFrom returns the address of the person's last consent act
// (a signup, a confirmation, a "keep me subscribed", a preference
// change); "" when unknown.
func (s *Server) lastSeenFrom(ctx context.Context, subscriber string) string {
	evs, err := s.store.Events(ctx, subscriber)
	if err != nil {
		return ""
	}
	for i := len(evs) - 1; i >= 0; i-- {
		switch e := evs[i]; e.Type {
		case consent.EventRequested, consent.EventConfirmed, consent.EventReconfirmed, consent.EventPreferencesUpdated:
			if e.Personal != nil && e.Personal.IP != "" {
				return e.Personal.IP
			}
		}
	}
	return ""
}

// mailSent is when the mail of req left: Sent, or, until the outbox has
// recorded it, when the request was made (the mail left after that).
func mailSent(req *consent.Request) time.Time {
	if req.Sent.IsZero() {
		return req.Created
	}
	return req.Sent
}
