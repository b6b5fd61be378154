package web

import (
	"crypto/rand"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
	"optin/internal/i18n"
	"optin/internal/ledger"
	"optin/internal/token"
)

// Consent receipts (docs/receipts.md): the events about one person, the
// wording they saw, an inclusion proof of each and the signed head they
// lead to, downloadable by the person (with a preference link), and by
// operators from the admin API and the console.

// handleReceipt serves the person's receipt, with their preference link.
func (s *Server) handleReceipt(c *gin.Context) {
	claims, ok := s.linkClaims(c, token.Preferences, false)
	if !ok {
		return
	}
	r, err := s.receipt(c, claims.Subject)
	if consent.ErrorCode(err) == consent.ENotFound {
		writeJSONError(c, http.StatusGone, "gone", "no data is held for this link")
		return
	}
	s.writeReceipt(c, r, err)
}

// handleSubscriberReceipt serves subscriber id's receipt to an operator
// (admin API and console).
func (s *Server) handleSubscriberReceipt(c *gin.Context) {
	r, err := s.receipt(c, c.Param("id"))
	s.writeReceipt(c, r, err)
}

// receipt builds subscriber id's receipt.
func (s *Server) receipt(c *gin.Context, id string) (ledger.Receipt, error) {
	if s.cfg.Ledger == nil {
		return ledger.Receipt{}, consent.Errorf(consent.ENotFound, "this server signs no ledger heads")
	}
	ctx := c.Request.Context()
	sub, err := s.store.Subscriber(ctx, id)
	if err != nil {
		return ledger.Receipt{}, err
	}
	events, err := s.store.Events(ctx, id)
	if err != nil {
		return ledger.Receipt{}, err
	}
	names := map[string]string{}
	// Topic names in the person's language, as their mails and pages show them.
	for _, t := range s.topicsOf(c, s.cfg.Catalog.For(s.cfg.Catalog.Pick(sub.Locale)), sortedKeys(sub.Subscriptions)) {
		names[t.ID] = t.Name
	}
	in := ledger.ReceiptInput{ID: rand.Text(), Now: s.store.Now(), Language: sub.Locale,
		Controller:    ledger.Controller{Name: s.cfg.Sender, PostalAddress: s.cfg.PostalAddress, URL: s.cfg.BaseURL},
		PrivacyNotice: s.cfg.BaseURL + "/privacy", Subscriber: sub, Topics: names, Events: events}
	return s.cfg.Ledger.Receipt(ctx, in, s.hashReader(c))
}

// writeReceipt answers with r as a file to keep, or with err.
func (s *Server) writeReceipt(c *gin.Context, r ledger.Receipt, err error) {
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Content-Disposition", `attachment; filename="consent-receipt-`+r.IssuedAt.Format("20060102")+`.json"`)
	c.Header("Cache-Control", "no-store")
	c.IndentedJSON(http.StatusOK, r)
}

// receiptLink returns the URL of subscriber id's receipt under a fresh
// preference link, for the page shown after confirming.
func (s *Server) receiptLink(id string) (string, error) {
	tok, err := s.cfg.Tokens.Issue(token.Preferences, token.Claims{Subject: id, ExpiresAt: s.store.Now().Add(token.PreferencesTTL)})
	if err != nil {
		return "", err
	}
	return s.cfg.BaseURL + "/preferences/" + tok + "/receipt", nil
}

// The receipt checker: a page that checks a receipt in the person's
// browser (templates/pages/verify.js) as `optin receipt verify` does, with
// no request to the server, so it also works saved to disk. Its policy
// lets the page load its script and nothing else: no connection, no form
// submission.
const verifyCSP = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// verifyStrings are the catalog keys verify.js shows, by the name it uses:
// verify.<name>.
var verifyStrings = []string{"working", "ok", "failed", "unsupported", "checks", "events",
	"col.seq", "col.time", "col.type", "col.topics", "col.proven",
	"check.receipt", "check.key", "check.signature", "check.head", "check.leaf", "check.seq", "check.person",
	"check.shown", "check.personal", "check.wording", "check.inclusion", "check.saved_head"}

// verifyURL is the receipt checker's address in l's language, relative to
// the server.
func verifyURL(l i18n.Localizer) string { return "/ledger/verify?locale=" + url.QueryEscape(l.Locale) }

// handleVerifyPage serves the receipt checker in the language of
// ?locale=, else the browser's, with the ledger's current verifier keys
// filled in.
func (s *Server) handleVerifyPage(c *gin.Context) {
	l := s.localizer(c, c.Query("locale"))
	d := pageData{L: l, VerifyStrings: map[string]string{}}
	for _, k := range verifyStrings {
		d.VerifyStrings[k] = l.T("verify." + k)
	}
	if s.cfg.Ledger != nil {
		d.VerifyKeys = strings.Join(s.cfg.Ledger.VerifierKeys(), "\n")
	}
	c.Header("Content-Security-Policy", verifyCSP)
	s.page(c, http.StatusOK, "verify", d)
}

// handleVerifyJS serves the receipt checker's script.
func (s *Server) handleVerifyJS(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=300")
	c.Data(http.StatusOK, "text/javascript; charset=utf-8", s.verifyJS)
}
