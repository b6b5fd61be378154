package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
	"optin/internal/i18n"
	"optin/internal/token"
)

// pageData is what every page template gets.
type pageData struct {
	L        i18n.Localizer
	Title    string
	Message  string
	Action   string
	Button   string
	LinkURL  string
	LinkText string
	Topics   []consent.Topic
	Wording  string
	Notice   string
	// Button2 offers "all topics" on the unsubscribe page.
	Button2    string
	PrefTopics []prefTopic
	// Privacy is the privacy notice's URL, linked under forms.
	Privacy string
	// PoW, when set, is the challenge URL of a proof-of-work form, and
	// Script the script that solves it.
	PoW    string
	Script string
	// Sender and Postal name the controller (privacy page).
	Sender string
	Postal string
	// Retention, Recipients and Rights explain the data (privacy page).
	Retention  string
	Recipients string
	Rights     string
	// Email and Name are the address and name a preference page manages,
	// or what a refused signup form had typed; Checked its ticked topics.
	Email   string
	Name    string
	Checked map[string]bool
	// Channels are the optional channels a form offers with each topic;
	// AskPhone and AskPost whether the page asks for a phone number and
	// a postal address, and Phone and PostalAddress the ones it shows.
	// PhoneLabel is the catalog key of the number's label (phoneLabel).
	Channels             []channelOption
	AskPhone, AskPost    bool
	PhoneLabel           string
	Phone, PostalAddress string
	// Danger styles an action page's button as one that cannot be undone.
	Danger bool
	// Brand presents the operator; page fills in the configured one when
	// a handler set none.
	Brand consent.Brand
	// Interaction is the token an action page's script puts in its form
	// when a person's pointer or key touches the page.
	Interaction string
	// VerifyURL links the receipt checker (GET /ledger/verify) in the
	// page's language; VerifyKeys fills in its key field and
	// VerifyStrings are its script's strings.
	VerifyURL     string
	VerifyKeys    string
	VerifyStrings map[string]string
}

// keyedError is an error with the catalog key of the message a browser
// page shows for it; the JSON answer keeps the error's English message.
type keyedError struct {
	error
	key string
}

func (e keyedError) Unwrap() error { return e.error }

// keyed attaches the catalog key of its page message to err.
func keyed(err error, key string) error {
	if err == nil {
		return nil
	}
	return keyedError{err, key}
}

// errorStatus is the HTTP status of err: 413 for a body over the limit,
// else the status of its code.
func errorStatus(err error) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return statusOf(consent.ErrorCode(err))
}

// pageMessage returns err's message for a browser page in l's language:
// the key attached with keyed, else the generic message of its code.
func pageMessage(l i18n.Localizer, err error) string { return messageFor(l, err, "error.") }

// messageFor returns err's message in l's language: the key attached with
// keyed, else prefix followed by its code (or too_large).
func messageFor(l i18n.Localizer, err error, prefix string) string {
	var k keyedError
	if errors.As(err, &k) {
		return l.T(k.key)
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return l.T(prefix + "too_large")
	}
	return l.T(prefix + consent.ErrorCode(err))
}

// wording is the exact consent wording form f shows in l's language,
// including the notice under it, which names the sender by the site name
// the page and the mails show; its hash goes into the ledger.
func (s *Server) wording(f *consent.Form, topics []consent.Topic, l i18n.Localizer) consent.Wording {
	notice := l.T("form.notice", s.brandFor(f).SiteName)
	if s.cfg.PostalAddress != "" {
		notice += "\n" + s.cfg.PostalAddress // a line of its own
	}
	w := f.WordingFor(l.Locale, consent.TopicsIn(topics, l.Locale), l.T("form.default_wording"), notice)
	w.Channels = channelLabels(l, f.Channels)
	return w
}

// page renders a page template with status.
func (s *Server) page(c *gin.Context, status int, name string, d pageData) {
	if d.Brand.SiteName == "" {
		d.Brand = s.brandFor(nil)
	}
	if src := s.imgSource(d.Brand.LogoURL); src != "" {
		c.Header("Content-Security-Policy", c.Writer.Header().Get("Content-Security-Policy")+"; img-src "+src)
	}
	c.Header("Cache-Control", "no-store")
	c.Status(status)
	c.Header("Content-Type", "text/html; charset=utf-8")
	if err := s.pages[name].ExecuteTemplate(c.Writer, "layout", d); err != nil {
		s.cfg.Log.Error("rendering page", "page", name, "err", err)
	}
}

// localizer picks the page language: an explicit choice, then the form's
// locale, then the browser's Accept-Language.
func (s *Server) localizer(c *gin.Context, explicit ...string) i18n.Localizer {
	cands := append(slices.Clone(explicit), i18n.AcceptLanguage(c.GetHeader("Accept-Language"))...)
	cands = slices.DeleteFunc(cands, func(l string) bool { return l == "" })
	return s.cfg.Catalog.For(s.cfg.Catalog.Pick(cands...))
}

// messagePage renders a page with a title and a message from the catalog.
func (s *Server) messagePage(c *gin.Context, status int, l i18n.Localizer, key string, extra pageData) {
	extra.L = l
	extra.Title = l.T(key + ".title")
	extra.Message = l.T(key + ".message")
	s.page(c, status, "message", extra)
}

// formTopics returns the topics a form offers, in the form's order.
func (s *Server) formTopics(c *gin.Context, f *consent.Form) ([]consent.Topic, error) {
	ts := make([]consent.Topic, 0, len(f.Topics))
	for _, id := range f.Topics {
		t, err := s.store.Topic(c.Request.Context(), id)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// loadForm returns the form named in the path, answering 404 if unknown.
func (s *Server) loadForm(c *gin.Context, html bool) (*consent.Form, []consent.Topic, bool) {
	f, err := s.store.Form(c.Request.Context(), c.Param("form"))
	var topics []consent.Topic
	if err == nil {
		topics, err = s.formTopics(c, &f)
	}
	if err != nil {
		if html && consent.ErrorCode(err) == consent.ENotFound {
			l := s.localizer(c, c.Query("locale"))
			s.page(c, http.StatusNotFound, "message", pageData{L: l, Title: l.T("error.title"), Message: l.T("error.not_found")})
			return nil, nil, false
		}
		s.fail(c, err)
		return nil, nil, false
	}
	return &f, topics, true
}

func (s *Server) handleFormPage(c *gin.Context) {
	f, topics, ok := s.loadForm(c, true)
	if !ok {
		return
	}
	s.formPage(c, http.StatusOK, f, topics, s.localizer(c, c.Query("locale"), f.Locale), "")
}

// formPage renders the hosted form of f, with msg as an error. Its CSP
// lets the form's allowed origins frame it and lets the form post to
// optin and follow the redirect to the success URL; a proof-of-work form
// also runs embed.js from optin, which solves the challenge.
// formPage renders the hosted form; typed, when set, is a refused
// signup's page data whose values the form shows again.
func (s *Server) formPage(c *gin.Context, status int, f *consent.Form, topics []consent.Topic, l i18n.Localizer, msg string, typed ...pageData) {
	w := s.wording(f, topics, l)
	origins := cspSources(f.AllowedOrigins)
	formAction := append([]string{"'self'"}, origins...)
	if u, ok := successURL(f); ok {
		formAction = append(formAction, cspSources([]string{u.Scheme + "://" + u.Host})...)
	}
	csp := "default-src 'none'; style-src 'unsafe-inline'; form-action " + strings.Join(formAction, " ") +
		"; frame-ancestors " + strings.Join(append([]string{"'self'"}, origins...), " ") + "; base-uri 'none'"
	d := pageData{L: l, Action: "/f/" + url.PathEscape(f.ID), Topics: consent.TopicsIn(topics, l.Locale), Wording: w.Text, Notice: w.Notice,
		Message: msg, Privacy: s.privacyURL(f), Brand: s.brandFor(f)}
	d.Channels = channelOptions(l, "", f.Channels, nil)
	d.AskPhone, d.AskPost = asks(f.Channels)
	d.PhoneLabel = phoneLabel(f.Channels)
	if len(typed) > 0 {
		d.Email, d.Name, d.Checked = typed[0].Email, typed[0].Name, typed[0].Checked
		d.Phone, d.PostalAddress = typed[0].Phone, typed[0].PostalAddress
	}
	if f.PoWBits() > 0 {
		csp += "; script-src 'self'; connect-src 'self'"
		d.PoW = d.Action + "/challenge"
		d.Script = d.Action + "/embed.js?locale=" + url.QueryEscape(l.Locale)
	}
	c.Header("Content-Security-Policy", csp)
	s.page(c, status, "form", d)
}

// cspSources returns the origins that are safe to put in a CSP source
// list: scheme://host[:port] with http(s) and nothing else.
func cspSources(origins []string) []string {
	var out []string
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.Scheme+"://"+u.Host != o || strings.ContainsAny(o, " ;,'\"\\") {
			continue
		}
		out = append(out, o)
	}
	return out
}

// successURL returns the form's success URL when it is an absolute
// http(s) URL; anything else is never redirected to.
func successURL(f *consent.Form) (*url.URL, bool) {
	u, err := url.Parse(f.SuccessURL)
	if f.SuccessURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		strings.ContainsAny(f.SuccessURL, "\r\n") {
		return nil, false
	}
	return u, true
}

// privacyURL is the privacy notice linked under form f: its own http(s)
// URL, else optin's /privacy page.
func (s *Server) privacyURL(f *consent.Form) string {
	if u, err := url.Parse(f.PrivacyURL); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		return f.PrivacyURL
	}
	return s.cfg.BaseURL + "/privacy"
}

func (s *Server) handleThanks(c *gin.Context) {
	f, _, ok := s.loadForm(c, true)
	if !ok {
		return
	}
	s.messagePage(c, http.StatusOK, s.localizer(c, c.Query("locale"), f.Locale), "thanks", pageData{Brand: s.brandFor(f)})
}

// signupBody is the signup request, urlencoded, multipart or JSON.
type signupBody struct {
	Email   string   `json:"email" form:"email"`
	Name    string   `json:"name" form:"name"`
	Topics  []string `json:"topics" form:"topics"`
	Locale  string   `json:"locale" form:"locale"`
	Page    string   `json:"page" form:"page"`
	Website string   `json:"website" form:"website"`
	// Channels are the optional channels chosen, each topic:channel
	// (sms, phone or post) for a topic ticked and a channel the form
	// offers; Phone and PostalAddress what they need.
	Channels      []string `json:"channels" form:"channels"`
	Phone         string   `json:"phone" form:"phone"`
	PostalAddress string   `json:"postal_address" form:"postal_address"`
	// PoWChallenge and PoWNonce answer a proof-of-work form's challenge.
	PoWChallenge string `json:"pow_challenge" form:"pow_challenge"`
	PoWNonce     string `json:"pow_nonce" form:"pow_nonce"`
}

// wantsJSON reports whether the client asked for a JSON answer.
func wantsJSON(c *gin.Context) bool {
	return strings.Contains(c.GetHeader("Accept"), "application/json") ||
		strings.HasPrefix(c.ContentType(), "application/json")
}

// requestOrigin returns the Origin header, or the origin of the Referer
// when there is no Origin; "" when neither is present.
func requestOrigin(c *gin.Context) string {
	if o := c.GetHeader("Origin"); o != "" {
		return o
	}
	if u, err := url.Parse(c.GetHeader("Referer")); err == nil && u.Host != "" {
		return u.Scheme + "://" + u.Host
	}
	return ""
}

// originAllowed reports whether a browser on origin may post to form f:
// optin's own pages and the form's allowed origins may (see sameOrigin);
// requests without any origin (servers, curl) are not browser cross-site
// requests. A refusal is logged (see originLog).
func (s *Server) originAllowed(f *consent.Form, origin string) bool {
	if origin == "" || sameOrigin(origin, s.origin) ||
		slices.ContainsFunc(f.AllowedOrigins, func(o string) bool { return sameOrigin(origin, o) }) {
		return true
	}
	s.originLog.refused(s.store.Now(), f.ID, origin, append([]string{s.origin}, f.AllowedOrigins...))
	return false
}

func (s *Server) handlePreflight(c *gin.Context) {
	f, _, ok := s.loadForm(c, false)
	if !ok {
		return
	}
	origin := c.GetHeader("Origin")
	if origin == "" || !s.originAllowed(f, origin) {
		s.fail(c, consent.Errorf(consent.EForbidden, "origin not allowed for this form"))
		return
	}
	s.cors(c, origin)
	c.Header("Access-Control-Allow-Methods", "POST")
	c.Header("Access-Control-Allow-Headers", "Content-Type, Accept")
	c.Header("Access-Control-Max-Age", "600")
	c.Status(http.StatusNoContent)
}

func (s *Server) cors(c *gin.Context, origin string) {
	c.Header("Vary", "Origin")
	if origin != "" {
		c.Header("Access-Control-Allow-Origin", origin)
	}
}

// handleSignup takes a signup. Every refusal comes before the store is
// touched, and the answer to an accepted one is the same whatever the
// address's state, so the form tells no one who is subscribed. Defences
// in order: the form's origin allow-list
// (403), the per-IP and per-subnet limits (429), input validation (400),
// the form's proof of work (400), the honeypot (same answer, nothing
// stored) and the global brake on confirmation mails (429).
func (s *Server) handleSignup(c *gin.Context) {
	jsonOut := wantsJSON(c)
	f, topics, ok := s.loadForm(c, !jsonOut)
	if !ok {
		return
	}
	origin := requestOrigin(c)
	if !s.originAllowed(f, origin) {
		s.signupError(c, jsonOut, f, topics, keyed(consent.Errorf(consent.EForbidden, "origin not allowed for this form"), "error.forbidden"))
		return
	}
	if c.GetHeader("Origin") != "" {
		s.cors(c, origin)
	}
	ip := clientIP(c)
	if ok, wait, err := allowIP(c.Request.Context(), s.signup, s.signupNet, ip, time.Now()); !ok {
		if err == nil {
			retryAfter(c, wait)
			err = consent.Errorf(consent.ERateLimited, "too many signups from your network; try again later")
		}
		s.signupError(c, jsonOut, f, topics, err)
		return
	}

	var body signupBody
	var err error
	if strings.HasPrefix(c.ContentType(), "application/json") {
		// Decoded as gin's JSON binding does, without its validator,
		// which walked the struct for tags it does not have on every
		// signup.
		err = json.NewDecoder(c.Request.Body).Decode(&body)
	} else {
		err = c.ShouldBind(&body)
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) {
			err = keyed(consent.Errorf(consent.EInvalid, "could not read the request body"), "signup.error.body")
		}
		s.signupError(c, jsonOut, f, topics, err)
		return
	}
	l := s.localizer(c, body.Locale, f.Locale)
	in, err := s.validateSignup(c, f, body, l, ip)
	if err == nil && f.PoWBits() > 0 {
		err = s.pow.verify(c.Request.Context(), f.ID, f.PoWBits(), body.PoWChallenge, body.PoWNonce, s.store.Now())
	}
	if err != nil {
		s.signupError(c, jsonOut, f, topics, err)
		return
	}
	// Every signup that gets this far takes from the brake, before the
	// store says whether a mail is queued, and none is ever given back:
	// whether the brake refuses the next one must not depend on the
	// state of this address (known, unknown, blocked) or the honeypot.
	if ok, wait, err := s.brake.allow(c.Request.Context(), "", time.Now()); !ok {
		if err == nil {
			retryAfter(c, wait)
			err = consent.Errorf(consent.ERateLimited, "too many signups right now; try again shortly")
		}
		s.signupError(c, jsonOut, f, topics, err)
		return
	}
	if body.Website == "" { // a filled honeypot gets the same answer and changes nothing
		res, err := s.store.Signup(c.Request.Context(), in, s.wording(f, topics, l))
		if err != nil {
			s.signupError(c, jsonOut, f, topics, err)
			return
		}
		if res.Queued && s.cfg.Outbox != nil {
			s.cfg.Outbox.Notify()
		}
	}
	if jsonOut {
		c.Data(http.StatusAccepted, "application/json; charset=utf-8", pendingJSON)
		return
	}
	// Only ever the form's own success URL: nothing in the request can
	// choose where the browser goes.
	target := "/f/" + url.PathEscape(f.ID) + "/thanks"
	if s.localizer(c, f.Locale).Locale != l.Locale {
		// The thanks page would pick another language on its own: name it.
		target += "?locale=" + url.QueryEscape(l.Locale)
	}
	if u, ok := successURL(f); ok {
		target = u.String()
	}
	c.Redirect(http.StatusSeeOther, target)
}

// pendingJSON is the answer to an API signup, written as it is: what
// c.JSON wrote for {"status": "pending"}, without encoding a map each time.
var pendingJSON = []byte(`{"status":"pending"}`)

// validateSignup checks a signup body and turns it into a SignupInput
// from the client at ip (clientIP).
func (s *Server) validateSignup(c *gin.Context, f *consent.Form, b signupBody, l i18n.Localizer, ip string) (consent.SignupInput, error) {
	addr, err := consent.ParseAddress(b.Email)
	if err != nil {
		return consent.SignupInput{}, keyed(err, "signup.error.email")
	}
	name, err := consent.ParseName(b.Name)
	if err != nil {
		return consent.SignupInput{}, keyed(err, "signup.error.name")
	}
	if len(b.Topics) == 0 {
		return consent.SignupInput{}, keyed(consent.Errorf(consent.EInvalid, "tick at least one topic"), "signup.error.topics")
	}
	if len(b.Topics) > len(f.Topics) {
		return consent.SignupInput{}, keyed(consent.Errorf(consent.EInvalid, "too many topics"), "signup.error.topic_unknown")
	}
	for _, t := range b.Topics {
		if !f.Offers(t) {
			return consent.SignupInput{}, keyed(consent.Errorf(consent.EInvalid, "topic %q is not offered by this form", consent.Truncate(t, 64)), "signup.error.topic_unknown")
		}
	}
	from := c.GetHeader("Referer")
	if from == "" {
		from = c.GetHeader("Origin") // the embedding site, when the browser sends no Referer
	}
	page, err := cleanPage(b.Page, from)
	if err != nil {
		return consent.SignupInput{}, keyed(err, "signup.error.page")
	}
	chosen, err := parseChannelFields(b.Channels, func(string) []consent.Channel { return f.Channels })
	if err != nil {
		return consent.SignupInput{}, err
	}
	channels, err := checkChoice(consent.ChannelChoice{Channels: chosen, Phone: b.Phone, PostalAddress: b.PostalAddress}, b.Topics)
	if err != nil {
		return consent.SignupInput{}, err
	}
	return consent.SignupInput{Form: f, Address: addr, Name: name, Locale: l.Locale, Topics: b.Topics, Channels: channels,
		Page: page, IP: ip, UserAgent: userAgent(c)}, nil
}

// cleanPage returns the page the form was used on, from the page field or
// else the Referer (or Origin), without query or fragment (they may carry personal
// data). A page field that is not an absolute http(s) URL is an error.
func cleanPage(page, referer string) (string, error) {
	explicit := page != ""
	if !explicit {
		page = referer
	}
	if page == "" {
		return "", nil
	}
	u, err := url.Parse(page)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(page) > 2048 {
		if !explicit {
			return "", nil
		}
		return "", consent.Errorf(consent.EInvalid, "page must be an absolute http(s) URL of at most 2048 characters")
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String(), nil
}

// signupError answers a refused signup: JSON for API clients, else the
// form again with the error in the page's language and the error's status.
func (s *Server) signupError(c *gin.Context, jsonOut bool, f *consent.Form, topics []consent.Topic, err error) {
	if jsonOut || (consent.ErrorCode(err) == consent.EInternal && errorStatus(err) == http.StatusInternalServerError) {
		s.fail(c, err)
		return
	}
	l := s.localizer(c, c.PostForm("locale"), f.Locale)
	typed := pageData{Email: consent.Truncate(c.PostForm("email"), 254), Name: consent.Truncate(c.PostForm("name"), 400),
		Checked: map[string]bool{}}
	for _, t := range c.PostFormArray("topics") {
		typed.Checked[t] = true
	}
	for _, v := range c.PostFormArray("channels") {
		typed.Checked[v] = true // topic:channel, which no topic id can be
	}
	typed.Phone, typed.PostalAddress = consent.Truncate(c.PostForm("phone"), 64), consent.Truncate(c.PostForm("postal_address"), 1200)
	s.formPage(c, errorStatus(err), f, topics, l, pageMessage(l, err), typed)
}

// linkRequest verifies a confirm or not-me token and loads its request.
// It renders the error page itself and returns ok=false on failure:
// 400 for a malformed or forged token, 410 for an expired one or a
// request that no longer exists.
func (s *Server) linkRequest(c *gin.Context, p token.Purpose) (*consent.Request, i18n.Localizer, bool) {
	claims, err := s.cfg.Tokens.Verify(p, c.Param("token"))
	if err != nil && !errors.Is(err, token.ErrExpired) {
		s.messagePage(c, http.StatusBadRequest, s.localizer(c), "invalid", pageData{})
		return nil, i18n.Localizer{}, false
	}
	req, rerr := s.store.Request(c.Request.Context(), claims.Subject)
	if rerr != nil && consent.ErrorCode(rerr) != consent.ENotFound {
		s.fail(c, rerr)
		return nil, i18n.Localizer{}, false
	}
	if err != nil || rerr != nil {
		var extra pageData
		l := s.localizer(c)
		if req != nil {
			l = s.localizer(c, req.Locale)
			extra = s.requestPage(c, req, signupAgain(req, l))
		}
		s.messagePage(c, http.StatusGone, l, "expired", extra)
		return nil, i18n.Localizer{}, false
	}
	return req, s.localizer(c, req.Locale), true
}

// signupAgain links an expired request's page back to its form; a request
// from an import has none.
func signupAgain(req *consent.Request, l i18n.Localizer) pageData {
	if req.Form == "" {
		return pageData{}
	}
	return pageData{LinkURL: "/f/" + url.PathEscape(req.Form), LinkText: l.T("expired.link")}
}

// requestPage returns the data of a page about request req: its form's
// brand, and extra.
func (s *Server) requestPage(c *gin.Context, req *consent.Request, extra pageData) pageData {
	extra.Brand = s.formBrand(c.Request.Context(), req.Form)
	return extra
}

// topicsOf returns the topics with the given ids as a page in l's
// language shows them; a topic since deleted keeps its id as its name.
func (s *Server) topicsOf(c *gin.Context, l i18n.Localizer, ids []string) []consent.Topic {
	ts := make([]consent.Topic, 0, len(ids))
	for _, id := range ids {
		t, err := s.store.Topic(c.Request.Context(), id)
		if err != nil {
			t = consent.Topic{ID: id, Name: id}
		}
		ts = append(ts, t.In(l.Locale))
	}
	return ts
}

// handleConfirmPage shows what a confirmation covers and a button. It
// changes nothing: mail scanners fetch links (RFC 8058, section 1), and
// consent takes a deliberate act, the button's POST.
func (s *Server) handleConfirmPage(c *gin.Context) {
	req, l, ok := s.linkRequest(c, token.Confirm)
	if !ok {
		return
	}
	topics := s.topicsOf(c, l, req.Topics)
	done, title, message, button := "confirmed", "confirm.title", "confirm.message", "confirm.button"
	if req.NewEmail != "" { // an address change (GDPR Art. 16)
		done, title, message, button = "address_confirmed", "confirm.address_title", "confirm.address_message", "confirm.address_button"
	}
	if !req.Confirmed.IsZero() {
		s.messagePage(c, http.StatusOK, l, done, s.requestPage(c, req, pageData{Topics: topics}))
		return
	}
	if !req.Open(s.store.Now()) {
		s.messagePage(c, http.StatusGone, l, "expired", s.requestPage(c, req, signupAgain(req, l)))
		return
	}
	d := s.requestPage(c, req, pageData{L: l, Title: l.T(title), Message: l.T(message), Button: l.T(button), Action: c.Request.URL.Path, Topics: topics})
	s.withInteraction(c, &d, req.ID)
	s.page(c, http.StatusOK, "action", d)
}

// handleConfirm confirms the request, unless the click looks like a mail
// scanner's and the policy holds such clicks: then nothing changes and
// the link keeps working for the person (see consent.Classify).
func (s *Server) handleConfirm(c *gin.Context) {
	req, l, ok := s.linkRequest(c, token.Confirm)
	if !ok {
		return
	}
	k := click{kind: "confirm", subject: req.ID, sent: mailSent(req), from: s.requestFrom(c.Request.Context(), req)}
	check := s.check(c, k)
	if req.Open(s.store.Now()) && s.held(c, l, k, check) {
		return
	}
	res, err := s.store.Confirm(c.Request.Context(), req.ID, consent.ConfirmInput{IP: clientIP(c), UserAgent: userAgent(c), Check: &check})
	if err == nil && !res.Already {
		s.countClick(k.kind, check.Class, "recorded")
	}
	switch consent.ErrorCode(err) {
	case "":
		if res.NewEmail != "" {
			s.messagePage(c, http.StatusOK, l, "address_confirmed", s.requestPage(c, req, pageData{}))
			return
		}
		data := s.requestPage(c, req, pageData{Topics: s.topicsOf(c, l, res.Topics)})
		if s.cfg.Ledger != nil {
			if data.LinkURL, err = s.receiptLink(req.Subscriber); err != nil {
				s.fail(c, err)
				return
			}
			data.LinkText = l.T("confirmed.receipt")
			data.VerifyURL = verifyURL(l)
		}
		s.messagePage(c, http.StatusOK, l, "confirmed", data)
	case consent.EExpired, consent.ENotFound:
		s.messagePage(c, http.StatusGone, l, "expired", s.requestPage(c, req, signupAgain(req, l)))
	default:
		s.fail(c, err)
	}
}

func (s *Server) handleNotMePage(c *gin.Context) {
	req, l, ok := s.linkRequest(c, token.NotMe)
	if !ok {
		return
	}
	d := s.requestPage(c, req, pageData{L: l, Title: l.T("notme.title"), Message: l.T("notme.message"), Button: l.T("notme.button"), Action: c.Request.URL.Path})
	s.withInteraction(c, &d, req.ID)
	s.page(c, http.StatusOK, "action", d)
}

// handleNotMe cancels the request, or withdraws its topics when it was
// confirmed meanwhile. It also serves as the confirmation mail's RFC 8058
// one-click target, so it answers 200 and never redirects. A scanner
// that submits the page's form must not cancel what the person may still
// confirm: such a click is held like a confirmation. The one-click POST
// (RFC 8058, section 3.1: "List-Unsubscribe=One-Click") is the mailbox
// provider acting on the person's command and is always honoured.
func (s *Server) handleNotMe(c *gin.Context) {
	req, l, ok := s.linkRequest(c, token.NotMe)
	if !ok {
		return
	}
	if c.PostForm("List-Unsubscribe") != "One-Click" && req.Canceled.IsZero() {
		k := click{kind: "not_me", subject: req.ID, sent: mailSent(req), from: s.requestFrom(c.Request.Context(), req)}
		check := s.check(c, k)
		if s.held(c, l, k, check) {
			return
		}
		s.countClick(k.kind, check.Class, "recorded")
	}
	if err := s.store.NotMe(c.Request.Context(), req.ID, consent.ConfirmInput{IP: clientIP(c), UserAgent: userAgent(c)}); err != nil {
		s.fail(c, err)
		return
	}
	if !req.Confirmed.IsZero() {
		s.messagePage(c, http.StatusOK, l, "unsubscribed", s.requestPage(c, req, pageData{}))
		return
	}
	s.messagePage(c, http.StatusOK, l, "notme_done", s.requestPage(c, req, pageData{}))
}
