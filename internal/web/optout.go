package web

import (
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
	"optin/internal/i18n"
	"optin/internal/token"
)

// prefTopic is one checkbox of the preference center.
type prefTopic struct {
	ID          string
	Name        string
	Description string
	On          bool
	// Basis is the lawful basis of the person's subscription, worded for
	// the page; "" for a topic the person does not hold.
	Basis string
	// Channels are the optional channels the page offers for the topic;
	// Frequencies the topic's frequency choices, if it has any.
	Channels    []channelOption
	Frequencies []freqOption
}

// linkClaims verifies a token of purpose p. With acceptExpired, a genuine
// but expired token is accepted too: withdrawal must keep working (CASL
// s. 11(2) asks at least 60 days; GDPR Art. 7(3) asks it be as easy as
// consenting).
// On failure it renders the error page and returns ok=false.
func (s *Server) linkClaims(c *gin.Context, p token.Purpose, acceptExpired bool) (token.Claims, bool) {
	claims, err := s.cfg.Tokens.Verify(p, c.Param("token"))
	switch {
	case err == nil, acceptExpired && errors.Is(err, token.ErrExpired):
		return claims, true
	case errors.Is(err, token.ErrExpired):
		l := s.localizer(c)
		s.messagePage(c, http.StatusGone, l, "expired", pageData{LinkURL: "/manage", LinkText: l.T("manage.title")})
	default:
		s.messagePage(c, http.StatusBadRequest, s.localizer(c), "invalid", pageData{})
	}
	return token.Claims{}, false
}

// subscriberLocalizer returns the page language for a subscriber, who may
// be gone (erased).
func (s *Server) subscriberLocalizer(c *gin.Context, id string) (*consent.Subscriber, i18n.Localizer, error) {
	sub, err := s.store.Subscriber(c.Request.Context(), id)
	if err != nil {
		return nil, s.localizer(c), err
	}
	return sub, s.localizer(c, sub.Locale), nil
}

// handleUnsubscribePage shows one button; it changes nothing, since
// anti-spam software fetches the links in mail (RFC 8058, section 1).
func (s *Server) handleUnsubscribePage(c *gin.Context) {
	claims, ok := s.linkClaims(c, token.Unsubscribe, true)
	if !ok {
		return
	}
	sub, l, err := s.subscriberLocalizer(c, claims.Subject)
	if err != nil && consent.ErrorCode(err) != consent.ENotFound {
		s.fail(c, err)
		return
	}
	d := pageData{L: l, Title: l.T("unsubscribe.title"), Action: c.Request.URL.Path, Button: l.T("unsubscribe.button")}
	if claims.Topic == "" {
		d.Message = l.T("unsubscribe.message_all")
	} else {
		d.Message = l.T("unsubscribe.message_topic", s.topicsOf(c, l, []string{claims.Topic})[0].Name)
		d.Button2 = l.T("unsubscribe.button_all")
	}
	if sub != nil {
		// /manage mails a preference link to the address. The unsubscribe
		// URL itself travels in mail headers, where relays and anyone the
		// mail is forwarded to can see it: it may withdraw, never more.
		d.LinkURL, d.LinkText = "/manage", l.T("unsubscribe.preferences")
	}
	s.page(c, http.StatusOK, "unsubscribe", d)
}

// handleUnsubscribe is the RFC 8058 one-click endpoint and the page's
// button: no cookie, session or CSRF token is read; the token alone says
// who and which topic. It answers 200, never a redirect, and is
// idempotent. The withdrawal and the suppression are on disk before the
// answer, and the send-time check keeps queued mail from going out
// (GDPR Art. 21(3)).
func (s *Server) handleUnsubscribe(c *gin.Context) {
	claims, ok := s.linkClaims(c, token.Unsubscribe, true)
	if !ok {
		return
	}
	channel := consent.ChannelPage
	if c.PostForm("List-Unsubscribe") == "One-Click" {
		channel = consent.ChannelOneClick
	}
	topic := claims.Topic
	if c.PostForm("scope") == "all" {
		topic = ""
	}
	in := consent.ConfirmInput{IP: clientIP(c), UserAgent: userAgent(c)}
	if _, err := s.store.Unsubscribe(c.Request.Context(), claims.Subject, topic, channel, in); err != nil {
		s.fail(c, err)
		return
	}
	_, l, _ := s.subscriberLocalizer(c, claims.Subject)
	s.messagePage(c, http.StatusOK, l, "unsubscribed", pageData{})
}

// preferencesSubscriber verifies a preferences token and loads its
// subscriber, rendering 400/410 pages itself.
func (s *Server) preferencesSubscriber(c *gin.Context) (*consent.Subscriber, i18n.Localizer, bool) {
	claims, ok := s.linkClaims(c, token.Preferences, false)
	if !ok {
		return nil, i18n.Localizer{}, false
	}
	sub, l, err := s.subscriberLocalizer(c, claims.Subject)
	switch consent.ErrorCode(err) {
	case "":
		return sub, l, true
	case consent.ENotFound:
		s.messagePage(c, http.StatusGone, l, "gone", pageData{})
	default:
		s.fail(c, err)
	}
	return nil, l, false
}

// preferencesPage renders the preference center of sub with msg, at
// status. shown, when set, is a refused choice, which the page shows
// again instead of what sub holds.
func (s *Server) preferencesPage(c *gin.Context, status int, sub *consent.Subscriber, l i18n.Localizer, msg string, shown *consent.PreferenceChoice) {
	topics := s.preferenceTopics(c, sub, l)
	view := heldChoice(sub)
	if shown != nil {
		view = *shown
	}
	pts := make([]prefTopic, len(topics))
	var offered []consent.Channel
	for i, t := range topics {
		st := sub.Subscriptions[t.ID]
		pts[i] = prefTopic{ID: t.ID, Name: t.Name, Description: t.Description, On: slices.Contains(view.Topics, t.ID)}
		if st != nil && st.Status == consent.StatusConfirmed && st.Basis != "" {
			pts[i].Basis = l.T("preferences.basis." + string(st.Basis))
		}
		chs := s.preferenceChannels(sub, t.ID)
		pts[i].Channels = channelOptions(l, t.ID, chs, view.Channels[t.ID])
		offered = append(offered, chs...)
		for _, f := range t.Frequencies {
			pts[i].Frequencies = append(pts[i].Frequencies, freqOption{ID: f, Label: l.T("frequency." + string(f)), On: view.Frequency[t.ID] == f})
		}
	}
	d := pageData{L: l, Action: c.Request.URL.Path, Message: msg, PrefTopics: pts, Wording: l.T("preferences.wording"),
		Email: sub.Email, Name: sub.Name, Phone: view.Phone, PostalAddress: view.PostalAddress, VerifyURL: verifyURL(l)}
	d.AskPhone, d.AskPost = asks(offered)
	d.PhoneLabel = phoneLabel(offered)
	s.page(c, status, "preferences", d)
}

// heldChoice is what sub holds, as the preference page shows it: the
// confirmed topics with their channels and frequencies, the number and
// the address.
func heldChoice(sub *consent.Subscriber) consent.PreferenceChoice {
	ch := consent.PreferenceChoice{ChannelChoice: consent.ChannelChoice{Channels: map[string][]consent.Channel{},
		Phone: sub.Phone, PostalAddress: sub.PostalAddress}, Frequency: map[string]consent.Frequency{}}
	for _, t := range sortedKeys(sub.Subscriptions) {
		if st := sub.Subscriptions[t]; st.Status == consent.StatusConfirmed {
			ch.Topics = append(ch.Topics, t)
			ch.Channels[t], ch.Frequency[t] = st.Channels, st.Frequency
		}
	}
	return ch
}

// preferenceChannels are the optional channels the preference page offers
// for topic: those preferences.channels names, and any sub holds on it,
// so it can be taken back.
func (s *Server) preferenceChannels(sub *consent.Subscriber, topic string) []consent.Channel {
	var held []consent.Channel
	if st := sub.Subscriptions[topic]; st != nil {
		held = st.Channels
	}
	var out []consent.Channel
	for _, c := range consent.OptionalChannels {
		if slices.Contains(s.cfg.PreferenceChannels, c) || slices.Contains(held, c) {
			out = append(out, c)
		}
	}
	return out
}

// preferenceChoice reads the preference page's post: the topics ticked,
// the channels ticked for them (each offered for its topic), the phone
// number and postal address they need, and each topic's frequency (one it
// offers, or "" for none). A bad choice is EInvalid with the page message
// saying what to fix; the choice read so far comes back for the page to
// show again.
func (s *Server) preferenceChoice(c *gin.Context, sub *consent.Subscriber, topics []consent.Topic) (consent.PreferenceChoice, error) {
	ch := consent.PreferenceChoice{Topics: c.PostFormArray("topics"), Frequency: map[string]consent.Frequency{},
		ChannelChoice: consent.ChannelChoice{Phone: c.PostForm("phone"), PostalAddress: c.PostForm("postal_address")}}
	chosen, err := parseChannelFields(c.PostFormArray("channels"), func(t string) []consent.Channel { return s.preferenceChannels(sub, t) })
	if err != nil {
		return ch, err
	}
	ch.Channels = map[string][]consent.Channel{}
	for t, cs := range chosen {
		if slices.Contains(ch.Topics, t) { // a topic switched off takes its channels with it
			ch.Channels[t] = cs
		}
	}
	for _, t := range topics {
		v := consent.Frequency(c.PostForm("frequency." + t.ID))
		if v != "" && !slices.Contains(t.Frequencies, v) {
			return ch, keyed(consent.Errorf(consent.EInvalid, "frequency of topic %q must be one it offers", t.ID), "frequency.error")
		}
		if v != "" {
			ch.Frequency[t.ID] = v
		}
	}
	if _, err := checkChoice(ch.ChannelChoice, ch.Topics); err != nil {
		return ch, err
	}
	return ch, nil
}

// preferenceTopics are the topics a preference page in l's language
// offers: every topic of the catalog, so the person can add one, and any
// the person holds that the catalog no longer lists.
func (s *Server) preferenceTopics(c *gin.Context, sub *consent.Subscriber, l i18n.Localizer) []consent.Topic {
	all, err := s.store.Topics(c.Request.Context())
	if err != nil {
		all = nil // the page still shows the person's own topics
	}
	have := make(map[string]bool, len(all))
	for _, t := range all {
		have[t.ID] = true
	}
	all = consent.TopicsIn(all, l.Locale)
	for _, t := range s.topicsOf(c, l, sortedKeys(sub.Subscriptions)) {
		if !have[t.ID] {
			all = append(all, t)
		}
	}
	return all
}

func (s *Server) handlePreferencesPage(c *gin.Context) {
	sub, l, ok := s.preferencesSubscriber(c)
	if !ok {
		return
	}
	s.preferencesPage(c, http.StatusOK, sub, l, "", nil)
}

func (s *Server) handlePreferences(c *gin.Context) {
	sub, l, ok := s.preferencesSubscriber(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	in := consent.ConfirmInput{IP: clientIP(c), UserAgent: userAgent(c)}
	var err error
	msg := l.T("preferences.saved")
	switch c.PostForm("action") {
	case "unsubscribe_all":
		_, err = s.store.Unsubscribe(ctx, sub.ID, "", consent.ChannelPreferences, in)
	case "rectify":
		msg, err = s.rectifyFromPreferences(c, sub, l)
	default:
		topics := s.preferenceTopics(c, sub, l)
		var choice consent.PreferenceChoice
		if choice, err = s.preferenceChoice(c, sub, topics); err == nil {
			err = s.store.UpdatePreferences(ctx, sub.ID, choice, s.preferenceWording(sub, topics, l), in)
		}
		if consent.ErrorCode(err) == consent.EInvalid {
			s.preferencesPage(c, http.StatusBadRequest, sub, l, pageMessage(l, err), &choice)
			return
		}
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	if sub, err = s.store.Subscriber(ctx, sub.ID); err != nil {
		s.fail(c, err)
		return
	}
	s.preferencesPage(c, http.StatusOK, sub, l, msg, nil)
}

// preferenceWording is the exact wording the preference page shows in
// l's language: its text, the topics' names, and the channels and
// frequencies it offers.
func (s *Server) preferenceWording(sub *consent.Subscriber, topics []consent.Topic, l i18n.Localizer) consent.Wording {
	w := consent.Wording{Form: "preferences", Version: 1, Locale: l.Locale, Text: l.T("preferences.wording"),
		Topics: make(map[string]string, len(topics))}
	var offered []consent.Channel
	for _, t := range topics {
		w.Topics[t.ID] = t.Name
		offered = append(offered, s.preferenceChannels(sub, t.ID)...)
		for _, f := range t.Frequencies {
			if w.Frequencies == nil {
				w.Frequencies = map[string]string{}
			}
			w.Frequencies[string(f)] = l.T("frequency." + string(f))
		}
	}
	w.Channels = channelLabels(l, offered)
	return w
}

// rectifyFromPreferences applies the person's own correction (GDPR Art.
// 16) from the preference page: the name at once, a new address once it
// confirms. It returns the message the page shows.
func (s *Server) rectifyFromPreferences(c *gin.Context, sub *consent.Subscriber, l i18n.Localizer) (string, error) {
	name := c.PostForm("name")
	b := rectifyBody{Name: &name}
	if e := strings.TrimSpace(c.PostForm("email")); e != "" {
		b.Email = &e
	}
	ch, err := b.rectification()
	if err != nil {
		return "", err
	}
	res, err := s.store.Rectify(c.Request.Context(), nil, sub.ID, ch, consent.ChannelPreferences)
	if err != nil {
		return "", err
	}
	if res.AddressPending {
		if s.cfg.Outbox != nil {
			s.cfg.Outbox.Notify()
		}
		return l.T("preferences.address_pending", ch.Email.Addr), nil
	}
	return l.T("preferences.rectified"), nil
}

// exportAbout is the part of an export that explains the data (Art. 15(1)).
type exportAbout struct {
	Controller    string            `json:"controller"`
	PostalAddress string            `json:"postal_address,omitempty"`
	Purposes      map[string]string `json:"purposes"`
	Basis         string            `json:"basis"`
	Retention     string            `json:"retention"`
	Access        string            `json:"access"`
	Rights        string            `json:"rights"`
}

// handleExport serves everything held about the person as a JSON download
// (Art. 15, 20). After erasure it answers 410.
func (s *Server) handleExport(c *gin.Context) {
	claims, ok := s.linkClaims(c, token.Preferences, false)
	if !ok {
		return
	}
	exp, err := s.store.Export(c.Request.Context(), claims.Subject)
	if consent.ErrorCode(err) == consent.ENotFound {
		writeJSONError(c, http.StatusGone, "gone", "no data is held for this link")
		return
	} else if err != nil {
		s.fail(c, err)
		return
	}
	s.writeExport(c, exp)
}

// writeExport answers with exp as the person's export file (schema
// consent.ExportSchema), explained in the person's language: the same file
// whether the person downloads it or an operator does for them.
func (s *Server) writeExport(c *gin.Context, exp consent.Export) {
	l := s.localizer(c, exp.Subscriber.Locale)
	hooks, err := s.store.Webhooks(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	purposes := map[string]string{}
	for _, t := range s.topicsOf(c, l, sortedKeys(exp.Subscriber.Subscriptions)) {
		purposes[t.ID] = t.Name
	}
	c.Header("Content-Disposition", `attachment; filename="optin-export-`+exp.Generated.Format("20060102")+`.json"`)
	c.Header("Cache-Control", "no-store")
	c.IndentedJSON(http.StatusOK, struct {
		consent.Export
		About exportAbout `json:"about"`
	}{exp, exportAbout{Controller: s.cfg.Sender, PostalAddress: s.cfg.PostalAddress, Purposes: purposes,
		Basis: l.T("privacy.basis"), Retention: s.retentionText(l), Access: accessText(l, hooks), Rights: l.T("privacy.rights")}})
}

// handleErase erases the person (Art. 17); only the suppression hash and
// an erased ledger event remain.
// handleErasePage asks, on a page of its own, whether the person really
// wants everything erased; only its button's POST erases.
func (s *Server) handleErasePage(c *gin.Context) {
	claims, ok := s.linkClaims(c, token.Preferences, false)
	if !ok {
		return
	}
	if _, err := s.store.Subscriber(c.Request.Context(), claims.Subject); consent.ErrorCode(err) == consent.ENotFound {
		s.messagePage(c, http.StatusGone, s.localizer(c), "gone", pageData{})
		return
	}
	_, l, _ := s.subscriberLocalizer(c, claims.Subject)
	s.page(c, http.StatusOK, "action", pageData{L: l, Title: l.T("preferences.erase_title"), Message: l.T("preferences.erase_message"),
		Button: l.T("preferences.erase_confirm"), Action: c.Request.URL.Path, Danger: true,
		LinkURL: strings.TrimSuffix(c.Request.URL.Path, "/erase"), LinkText: l.T("preferences.erase_back")})
}

func (s *Server) handleErase(c *gin.Context) {
	claims, ok := s.linkClaims(c, token.Preferences, false)
	if !ok {
		return
	}
	_, l, _ := s.subscriberLocalizer(c, claims.Subject)
	err := s.store.Erase(c.Request.Context(), claims.Subject, consent.ChannelPreferences)
	switch consent.ErrorCode(err) {
	case "":
		s.messagePage(c, http.StatusOK, l, "erased", pageData{})
	case consent.ENotFound:
		s.messagePage(c, http.StatusGone, l, "gone", pageData{})
	default:
		s.fail(c, err)
	}
}

func (s *Server) handleManagePage(c *gin.Context) {
	s.page(c, http.StatusOK, "manage", pageData{L: s.localizer(c, c.Query("locale"))})
}

// handleManage mails a fresh preference link to a known address. Known or
// not, the answer is the same, so it tells no one who is subscribed; it
// is rate-limited per client IP.
func (s *Server) handleManage(c *gin.Context) {
	jsonOut := wantsJSON(c)
	if ok, wait, err := allowIP(c.Request.Context(), s.manage, s.manageNet, clientIP(c), time.Now()); !ok {
		if err == nil {
			retryAfter(c, wait)
			err = consent.Errorf(consent.ERateLimited, "too many requests from your network; try again later")
		}
		if jsonOut {
			s.fail(c, err)
		} else {
			l := s.localizer(c, c.PostForm("locale"))
			s.page(c, http.StatusTooManyRequests, "manage", pageData{L: l, Message: pageMessage(l, err)})
		}
		return
	}
	var body struct {
		Email  string `json:"email" form:"email"`
		Locale string `json:"locale" form:"locale"`
	}
	var err error
	if strings.HasPrefix(c.ContentType(), "application/json") {
		err = c.ShouldBindJSON(&body)
	} else {
		err = c.ShouldBind(&body)
	}
	var mbe *http.MaxBytesError
	if err != nil && !errors.As(err, &mbe) {
		err = keyed(consent.Errorf(consent.EInvalid, "could not read the request body"), "signup.error.body")
	}
	var addr consent.Address
	if err == nil {
		addr, err = consent.ParseAddress(body.Email)
		err = keyed(err, "signup.error.email")
	}
	l := s.localizer(c, body.Locale)
	if err != nil {
		if jsonOut {
			s.fail(c, err)
		} else {
			s.page(c, errorStatus(err), "manage", pageData{L: l, Message: pageMessage(l, err)})
		}
		return
	}
	queued, err := s.store.RequestPreferencesMail(c.Request.Context(), addr)
	if err != nil {
		s.fail(c, err)
		return
	}
	if queued && s.cfg.Outbox != nil {
		s.cfg.Outbox.Notify()
	}
	if jsonOut {
		c.JSON(http.StatusAccepted, gin.H{"status": "accepted"})
		return
	}
	s.page(c, http.StatusOK, "message", pageData{L: l, Title: l.T("manage.sent_title"), Message: l.T("manage.sent_message")})
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
