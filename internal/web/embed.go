package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"optin/internal/consent"
	"optin/internal/i18n"

	"github.com/gin-gonic/gin"
)

// initAbuse sets up the abuse defences besides the per-IP limiters made in
// New: the per-subnet limiters, the global brake on confirmation mails and
// the proof-of-work guard.
func (s *Server) initAbuse(cfg Config) error {
	s.signupNet = newLimiter(cfg.Store, "signup-net", Rate{N: cfg.SignupLimit.N * subnetFactor, Per: cfg.SignupLimit.Per})
	s.manageNet = newLimiter(cfg.Store, "manage-net", Rate{N: cfg.ManageLimit.N * subnetFactor, Per: cfg.ManageLimit.Per})
	s.brake = newBrake(cfg.Store, cfg.ConfirmBrake)
	s.pow = &powGuard{key: cfg.Tokens.ChallengeKey(), store: cfg.Store}
	return nil
}

// embedTopic is one checkbox of an embedded form.
type embedTopic struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// embedChannel is one channel box an embedded form puts under each
// topic.
type embedChannel struct {
	ID    consent.Channel `json:"id"`
	Label string          `json:"label"`
}

// embedData is everything embed.js needs to render one form: the exact
// wording the hosted page shows and the interface strings in one language.
// It reaches the script as JSON, and the script writes every string with
// textContent, never as HTML.
type embedData struct {
	Form      string       `json:"form"`
	Action    string       `json:"action"`
	Challenge string       `json:"challenge,omitempty"`
	PoWBits   int          `json:"pow_bits"`
	Locale    string       `json:"locale"`
	Wording   string       `json:"wording"`
	Notice    string       `json:"notice"`
	Privacy   string       `json:"privacy"`
	Topics    []embedTopic `json:"topics"`
	// Channels are the channels the form offers under each topic
	// besides email, with their labels; the script asks for the phone
	// number and postal address they need.
	Channels []embedChannel    `json:"channels,omitempty"`
	T        map[string]string `json:"t"`
	// CSS is the form's stylesheet; Origins are the page origins whose
	// signups optin takes (its own and the form's allowed ones), so the
	// script can say in the browser console why it cannot work elsewhere.
	CSS     string   `json:"css"`
	Origins []string `json:"origins"`
}

// embedStrings returns the catalog keys embed.js shows, by the name it
// uses.
func embedStrings() map[string]string {
	return map[string]string{
		"title": "form.title", "email": "form.email", "name": "form.name", "honeypot": "form.honeypot",
		"submit": "form.submit", "privacy": "form.privacy", "thanks": "thanks.message", "working": "embed.working",
		"no_topic": "signup.error.topics", "network": "embed.network",
		"invalid": "error.invalid", "forbidden": "error.forbidden", "rate_limited": "error.rate_limited",
		"too_large": "error.too_large", "not_found": "error.not_found", "proof_of_work": "signup.error.pow",
		"internal": "error.internal", "also": "channels.also", "also_for": "channels.also_for",
		"phone": "channels.phone_label", "phone_example": "channels.phone_example", "postal": "channels.postal_label",
	}
}

// handleEmbedJS serves the script that renders form f into every
// <div data-optin-form="{f}"> of the page that loads it, and solves the
// proof of work of optin's own hosted page. The language is ?locale=, then
// the form's, then the browser's. It may be cached for five minutes.
func (s *Server) handleEmbedJS(c *gin.Context) {
	f, topics, ok := s.loadForm(c, false)
	if !ok {
		return
	}
	l := s.localizer(c, c.Query("locale"), f.Locale)
	w := s.wording(f, topics, l)
	action := s.cfg.BaseURL + "/f/" + url.PathEscape(f.ID)
	d := embedData{Form: f.ID, Action: action, PoWBits: f.PoWBits(), Locale: l.Locale, Wording: w.Text,
		Notice: w.Notice, Privacy: s.privacyURL(f), Topics: make([]embedTopic, len(topics)), T: map[string]string{},
		CSS: action + "/embed.css", Origins: append([]string{s.origin}, f.AllowedOrigins...)}
	if d.PoWBits > 0 {
		d.Challenge = action + "/challenge"
	}
	for i, t := range topics {
		t = t.In(l.Locale)
		d.Topics[i] = embedTopic{ID: t.ID, Name: t.Name, Description: t.Description}
	}
	for _, c := range f.Channels {
		d.Channels = append(d.Channels, embedChannel{ID: c, Label: l.T("channel." + string(c))})
	}
	for name, key := range embedStrings() {
		d.T[name] = l.T(key)
	}
	d.T["phone"] = l.T(phoneLabel(f.Channels))
	// encoding/json escapes <, >, &, U+2028 and U+2029: the data cannot
	// end the script or break out of the string literal.
	b, err := json.Marshal(d)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]byte, 0, len(s.embedJS)+len(b)+64)
	out = append(out, "(function (D) {\n\"use strict\";\n"...)
	out = append(out, s.embedJS...)
	out = append(out, "\n})("...)
	out = append(out, b...)
	out = append(out, ");\n"...)
	c.Header("Cache-Control", "public, max-age=300")
	c.Header("Vary", "Accept-Language")
	c.Header("Cross-Origin-Resource-Policy", "cross-origin")
	c.Data(http.StatusOK, "application/javascript; charset=utf-8", out)
}

// handleEmbedCSS serves the stylesheet embed.js adds for form f: the
// form's brand as the defaults of its custom properties, then the rules.
func (s *Server) handleEmbedCSS(c *gin.Context) {
	f, _, ok := s.loadForm(c, false)
	if !ok {
		return
	}
	b := s.brandFor(f) // checked colours: nothing here can end the declaration
	css := ".optin-form{--optin-brand-accent:" + b.Accent() + ";--optin-brand-on-accent:" + b.OnAccent() + "}\n"
	c.Header("Cache-Control", "public, max-age=300")
	c.Header("Cross-Origin-Resource-Policy", "cross-origin")
	c.Data(http.StatusOK, "text/css; charset=utf-8", append([]byte(css), s.embedCSS...))
}

// handlePrivacy renders the privacy notice forms link to by default: who
// the controller is, what is collected and why, how long it is kept and
// the person's rights (GDPR Art. 13).
func (s *Server) handlePrivacy(c *gin.Context) {
	topics, err := s.store.Topics(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	hooks, err := s.store.Webhooks(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	l := s.localizer(c, c.Query("locale"))
	s.page(c, http.StatusOK, "privacy", pageData{L: l, Title: l.T("privacy.title"), Topics: consent.TopicsIn(topics, l.Locale),
		Sender: s.cfg.Sender, Postal: s.cfg.PostalAddress, Retention: s.retentionText(l),
		Recipients: recipientsText(l, hooks), Rights: l.T("privacy.rights")})
}

// accessText says who sees the person's data: the roles and processors
// (privacy.access) and the recipients webhooks add (GDPR Art. 15(1)(c)).
func accessText(l i18n.Localizer, hooks []consent.WebhookInfo) string {
	if r := recipientsText(l, hooks); r != "" {
		return l.T("privacy.access") + " " + r
	}
	return l.T("privacy.access")
}

// recipientsText names the recipients webhooks add (GDPR Art. 13(1)(e)):
// with an endpoint of scope contact, that address and name go out; with
// evidence endpoints only, that they do not; "" without endpoints.
func recipientsText(l i18n.Localizer, hooks []consent.WebhookInfo) string {
	text := ""
	for _, h := range hooks {
		if h.Scope == consent.ScopeContact {
			return l.T("privacy.recipients_contact")
		}
		text = l.T("privacy.recipients_evidence")
	}
	return text
}

// retentionText states how long personal data is kept, with the days
// this service is configured for.
func (s *Server) retentionText(l i18n.Localizer) string {
	return l.T("privacy.retention", int(s.cfg.PendingRetention/consent.Day), int(s.cfg.OptedOutRetention/consent.Day))
}
