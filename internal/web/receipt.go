package web

import (
	"crypto/rand"
	"net/http"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
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
