package web

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
	"optin/internal/i18n"
	"optin/internal/token"
)

// reawakenLink verifies a reawaken token and loads what it names. It
// renders the error page itself and returns ok=false on failure: 400 for
// a malformed or forged token, 410 for an expired one or one whose
// campaign, recipient or subscriber is gone.
func (s *Server) reawakenLink(c *gin.Context) (consent.ReawakenLink, i18n.Localizer, bool) {
	claims, ok := s.linkClaims(c, token.Reawaken, false)
	if !ok {
		return consent.ReawakenLink{}, i18n.Localizer{}, false
	}
	campaign, subscriber, ok := consent.ParseReawakenSubject(claims.Subject)
	if !ok {
		s.messagePage(c, http.StatusBadRequest, s.localizer(c), "invalid", pageData{})
		return consent.ReawakenLink{}, i18n.Localizer{}, false
	}
	link, err := s.store.Reawaken(c.Request.Context(), campaign, subscriber)
	switch consent.ErrorCode(err) {
	case "":
		return link, s.localizer(c, link.Subscriber.Locale), true
	case consent.ENotFound:
		s.messagePage(c, http.StatusGone, s.localizer(c), "gone", pageData{})
	default:
		s.fail(c, err)
	}
	return consent.ReawakenLink{}, i18n.Localizer{}, false
}

// reawakenWording is the exact wording the "keep me subscribed" page
// shows, naming the sender by the site name its mail shows; its hash goes
// into the reconfirmed ledger event and its text is stored once, like the
// preference center's.
func (s *Server) reawakenWording(c *gin.Context, link consent.ReawakenLink, l i18n.Localizer) (consent.Wording, consent.Topic) {
	t := s.topicsOf(c, l, []string{link.Campaign.Topic})[0]
	return consent.Wording{Form: link.Campaign.Source(), Version: 1, Locale: l.Locale,
		Text: l.T("reawaken.wording", s.brandFor(nil).SiteName), Topics: map[string]string{t.ID: t.Name}}, t
}

// keepable reports whether "keep me subscribed" would still keep the
// subscription link asks about (consent.PlanReconfirm).
func keepable(link consent.ReawakenLink) bool {
	sub := link.Subscriber.Subscriptions[link.Campaign.Topic]
	return sub != nil && sub.Status == consent.StatusConfirmed &&
		(link.Recipient.State == consent.RecipientQueued || link.Recipient.State == consent.RecipientSent)
}

// reawakenClosed renders the page for a subscription that can no longer
// be kept, with a link to the preference center's request form.
func (s *Server) reawakenClosed(c *gin.Context, l i18n.Localizer) {
	s.messagePage(c, http.StatusGone, l, "reawaken_closed", pageData{LinkURL: "/manage", LinkText: l.T("manage.title")})
}

// handleReawakenPage shows the reawaken mail's "keep me subscribed"
// page: the wording and one button. It changes nothing: mail scanners
// open links too (RFC 8058, section 1), so only the button's POST counts.
func (s *Server) handleReawakenPage(c *gin.Context) {
	link, l, ok := s.reawakenLink(c)
	if !ok {
		return
	}
	if link.Recipient.State == consent.RecipientReconfirmed {
		s.messagePage(c, http.StatusOK, l, "reawaken_done", pageData{})
		return
	}
	if !keepable(link) {
		s.reawakenClosed(c, l)
		return
	}
	w, t := s.reawakenWording(c, link, l)
	// keepable saw the subscription; a customer never subscribed.
	worded := consent.ReawakenWording(link.Subscriber.Subscriptions[link.Campaign.Topic].Basis)
	d := pageData{L: l, Title: l.T("reawaken.title" + worded), Message: w.Text, Topics: []consent.Topic{t},
		Button: l.T("reawaken.button" + worded), Action: c.Request.URL.Path}
	d.LinkURL, d.LinkText = "/manage", l.T("unsubscribe.preferences") // mails a preference link; see handleUnsubscribePage
	s.withInteraction(c, &d, consent.ReawakenSubject(link.Campaign.ID, link.Subscriber.ID))
	s.page(c, http.StatusOK, "action", d)
}

// handleReawaken records "keep me subscribed": a reconfirmed ledger event
// citing the campaign, the page's wording, IP, user agent and scanner
// check, and a refreshed subscription. Repeating it changes nothing. A
// click held as a mail scanner's changes nothing either (handleConfirm).
func (s *Server) handleReawaken(c *gin.Context) {
	link, l, ok := s.reawakenLink(c)
	if !ok {
		return
	}
	r := link.Recipient
	k := click{kind: "reawaken", subject: consent.ReawakenSubject(link.Campaign.ID, link.Subscriber.ID),
		sent: r.Queued, from: s.lastSeenFrom(c.Request.Context(), link.Subscriber.ID)}
	for _, t := range []time.Time{r.Sent, r.Reminded} {
		if t.After(k.sent) {
			k.sent = t // the latest mail, the reminder once it went
		}
	}
	check := s.check(c, k)
	if keepable(link) && s.held(c, l, k, check) {
		return
	}
	w, _ := s.reawakenWording(c, link, l)
	in := consent.ConfirmInput{IP: clientIP(c), UserAgent: userAgent(c), Check: &check}
	already, err := s.store.Reconfirm(c.Request.Context(), link.Campaign.ID, link.Subscriber.ID, w, in)
	if err == nil && !already {
		s.countClick(k.kind, check.Class, "recorded")
	}
	switch consent.ErrorCode(err) {
	case "":
		s.messagePage(c, http.StatusOK, l, "reawaken_done", pageData{})
	case consent.EExpired:
		s.reawakenClosed(c, l)
	case consent.ENotFound:
		s.messagePage(c, http.StatusGone, l, "gone", pageData{})
	default:
		s.fail(c, err)
	}
}
