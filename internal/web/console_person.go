package web

import (
	"cmp"
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
)

// personPage is the data of one person's page and of their consent
// receipt.
type personPage struct {
	Sub           *consent.Subscriber
	Lifecycle     consent.Lifecycle
	Subscriptions []subscriptionRow
	Events        []eventRow
	// Generated is when the page was made (the receipt's date).
	Generated time.Time
	// Sender and Postal name the controller on the receipt.
	Sender, Postal string
	// Now fills the activity form: now, in UTC, to the minute.
	Now string
	// Kinds are the activity kinds; CustomerKinds those that make a
	// customer.
	Kinds, CustomerKinds []consent.ActivityKind
	// Assessments are the current legitimate-interest assessments an
	// activity may cite; UnderLI says the person's activities must cite
	// one (they hold a subscription on legitimate interest).
	Assessments []*consent.Assessment
	UnderLI     bool
	// Withdrawable are the person's subscriptions an operator may still
	// withdraw: every one not unsubscribed yet.
	Withdrawable []subscriptionRow
	// PrefLink, when set, is a preference link just minted, valid until
	// PrefExpires.
	PrefLink    string
	PrefExpires time.Time
}

// subscriptionRow is one topic of the person's subscriptions.
type subscriptionRow struct {
	ID     string
	Topic  string // its name
	Status consent.Status
	Basis  consent.Basis
	Since  time.Time
	// Assessment is the legitimate-interest assessment the subscription
	// rests on, if its import cited one.
	Assessment string
	// Channels are the channels that carry the topic now; Frequency the
	// person's choice of how often.
	Channels  []consent.Channel
	Frequency consent.Frequency
}

// eventRow is one ledger event about the person, as the timeline shows
// it: what, when, from where, the exact wording they saw and the mail.
type eventRow struct {
	Seq       uint64
	Time      time.Time
	Type      consent.EventType
	Topics    []string // names
	Basis     consent.Basis
	Source    string
	Page      string
	IP        string
	UserAgent string
	// Wording is the exact text shown, WordingHash its SHA-256.
	Wording     *consent.Wording
	WordingHash string
	MessageID   string
	Request     string
	Hash        string
	// Activity and OccurredAt are an activity's kind and time; Field is
	// what a rectification corrected; Note is the personal record's note
	// (a reason, a new name, a previous address).
	Activity   consent.ActivityKind
	OccurredAt time.Time
	Field      string
	Note       string
	// Assessment is the legitimate-interest assessment the event cites,
	// AssessmentID its id (shown alone if the record is missing).
	Assessment   *consent.Assessment
	AssessmentID string
	// Check is a confirmation's verdict on who clicked: a person or a
	// mail scanner.
	Check *consent.Check
	// Channel and Frequency are a channel or frequency event's subject;
	// Contact the phone number or postal address its personal record
	// holds.
	Channel   consent.Channel
	Frequency consent.Frequency
	Contact   string
}

// datetimeLocal is the value format of an HTML datetime-local field.
const datetimeLocal = "2006-01-02T15:04"

// person loads subscriber id, their subscriptions and their ledger
// events.
func (s *Server) person(ctx context.Context, id string) (personPage, error) {
	sub, err := s.store.Subscriber(ctx, id)
	if err != nil {
		return personPage{}, err
	}
	evs, err := s.store.Events(ctx, id)
	if err != nil {
		return personPage{}, err
	}
	_, names, err := s.topicNames(ctx)
	if err != nil {
		return personPage{}, err
	}
	list, err := s.store.Assessments(ctx)
	if err != nil {
		return personPage{}, err
	}
	now := s.store.Now()
	p := personPage{Sub: sub, Lifecycle: sub.Lifecycle(now, s.cfg.DormantAfter), Generated: now,
		Sender: s.cfg.Sender, Postal: s.cfg.PostalAddress, Now: now.Format(datetimeLocal),
		Kinds: consent.ActivityKinds, CustomerKinds: s.cfg.CustomerActivities, UnderLI: sub.UnderLegitimateInterest()}
	for _, v := range assessmentViews(list) {
		if v.SupersededBy == "" {
			p.Assessments = append(p.Assessments, v.Assessment)
		}
	}
	for _, id := range sortedKeys(sub.Subscriptions) {
		x := sub.Subscriptions[id]
		row := subscriptionRow{ID: id, Topic: names.name(id), Status: x.Status, Basis: x.Basis, Since: x.Since, Assessment: x.Assessment,
			Channels: x.Effective(), Frequency: x.Frequency}
		p.Subscriptions = append(p.Subscriptions, row)
		if x.Status != consent.StatusUnsubscribed {
			p.Withdrawable = append(p.Withdrawable, row)
		}
	}
	for _, ev := range evs {
		row := eventRow{Seq: ev.Seq, Time: ev.Time, Type: ev.Type, Basis: ev.Basis, Source: ev.Source, Page: ev.Page,
			Wording: ev.WordingText, WordingHash: ev.Wording, MessageID: ev.MessageID, Request: ev.Request, Hash: ev.Hash,
			Activity: ev.Activity, OccurredAt: ev.OccurredAt, Field: ev.Field,
			Assessment: ev.AssessmentRecord, AssessmentID: ev.Assessment, Check: ev.Check, Channel: ev.Channel, Frequency: ev.Frequency}
		for _, t := range ev.Topics {
			row.Topics = append(row.Topics, names.name(t))
		}
		if ev.Personal != nil {
			row.IP, row.UserAgent, row.Note = ev.Personal.IP, ev.Personal.UserAgent, ev.Personal.Note
			row.Contact = cmp.Or(ev.Personal.Phone, ev.Personal.PostalAddress)
		}
		p.Events = append(p.Events, row)
	}
	return p, nil
}

// personView renders the person's page, or their receipt, with status
// and notice; more, when given, adds to the page's data.
func (s *Server) personView(c *gin.Context, name, titleKey string, status int, notice string, bad bool, more ...func(*personPage)) {
	p, err := s.person(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	for _, f := range more {
		f(&p)
	}
	d := s.consoleBase(c, titleKey, "subscribers")
	d.P, d.Notice, d.Error = p, notice, bad
	s.consolePage(c, status, name, d)
}

// personRefused shows the person's page again with the message of key,
// as status: a write that changed nothing.
func (s *Server) personRefused(c *gin.Context, status int, key string) {
	s.personView(c, "person", "console.person.title", status, s.localizer(c).T(key), true)
}

// personNotice returns the message key of what the person page says
// after one of its writes (?done=), "" for anything else.
func personNotice(done string) string {
	switch done {
	case "activity", "renamed", "address", "renamed_address", "unchanged", "withdrawn", "withdrawn_already",
		"preferences_mailed", "preferences_held":
		return "console.person.done_" + done
	}
	return ""
}

// handleConsolePerson shows one person: their subscriptions, the consent
// timeline and the actions their role allows.
func (s *Server) handleConsolePerson(c *gin.Context) {
	notice := ""
	if key := personNotice(c.Query("done")); key != "" {
		notice = s.localizer(c).T(key)
	}
	s.personView(c, "person", "console.person.title", http.StatusOK, notice, false)
}

// personDoneURL is the person's page saying what a write did.
func personDoneURL(id, done string) string {
	return "/admin/subscribers/" + url.PathEscape(id) + "?done=" + done
}

// handleConsoleReceipt shows the printable consent receipt.
func (s *Server) handleConsoleReceipt(c *gin.Context) {
	s.personView(c, "receipt", "console.receipt.title", http.StatusOK, "", false)
}

// handleConsolePersonExport downloads the person's export file, the same
// file as the self-service export, and audits the download.
func (s *Server) handleConsolePersonExport(c *gin.Context) {
	ctx := c.Request.Context()
	exp, err := s.store.Export(ctx, c.Param("id"))
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	if err := s.store.AuditRead(ctx, actor(c), "export", "subscriber:"+exp.Subscriber.ID, 1); err != nil {
		s.consoleFail(c, err)
		return
	}
	s.writeExport(c, exp)
}

// handleConsoleActivity records an activity (fields kind, at: a
// datetime-local value in UTC, reason) under the signed-in key, as the
// API does; the customer kinds drive the lifecycle.
func (s *Server) handleConsoleActivity(c *gin.Context) {
	id := c.Param("id")
	at, err := time.ParseInLocation(datetimeLocal, strings.TrimSpace(c.PostForm("at")), time.UTC)
	var act consent.Activity
	if err == nil {
		act, err = consent.NewActivity(consent.ActivityKind(c.PostForm("kind")), at, c.PostForm("reason"), s.store.Now())
		act.Assessment = c.PostForm("assessment")
	}
	if err != nil {
		key := "console.person.activity_invalid"
		if consent.ErrorCode(err) == consent.EInvalid && !at.IsZero() && at.After(s.store.Now()) {
			key = "console.person.activity_future"
		}
		s.personRefused(c, http.StatusBadRequest, key)
		return
	}
	customer := slices.Contains(s.cfg.CustomerActivities, act.Kind)
	if _, err := s.store.RecordActivity(c.Request.Context(), actor(c), id, act, customer); err != nil {
		if consent.ErrorCode(err) == consent.EInvalid {
			// NewActivity passed, so the store refused the assessment
			// cited (or its absence).
			s.personView(c, "person", "console.person.title", http.StatusBadRequest,
				s.refusal(c, "console.person.activity_refused", err), true)
			return
		}
		s.consoleFail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, personDoneURL(id, "activity"))
}

// handleConsoleRectify corrects the person's name, address, phone
// number and postal address (fields name, email, phone, postal_address;
// a field not sent stays as it is) as PATCH /api/v1/subscribers/{id}
// does: the name, number and postal address at once, a new address only
// once it confirms by double opt-in.
func (s *Server) handleConsoleRectify(c *gin.Context) {
	var b rectifyBody
	if name, ok := c.GetPostForm("name"); ok {
		b.Name = &name
	}
	if phone, ok := c.GetPostForm("phone"); ok {
		b.Phone = &phone
	}
	if addr, ok := c.GetPostForm("postal_address"); ok {
		b.PostalAddress = &addr
	}
	if email := strings.TrimSpace(c.PostForm("email")); email != "" {
		b.Email = &email
	}
	id := c.Param("id")
	res, err := s.rectify(c.Request.Context(), actor(c), id, b)
	switch consent.ErrorCode(err) {
	case "":
	case consent.EInvalid:
		s.personRefused(c, http.StatusBadRequest, "console.person.rectify_invalid")
		return
	case consent.EConflict:
		s.personRefused(c, http.StatusConflict, "console.person.rectify_taken")
		return
	case consent.EForbidden:
		s.personRefused(c, http.StatusForbidden, "console.person.rectify_blocked")
		return
	default:
		s.consoleFail(c, err)
		return
	}
	done := "unchanged"
	switch {
	case res.Contact && res.AddressPending:
		done = "corrected_address"
	case res.Contact:
		done = "corrected"
	case res.Renamed && res.AddressPending:
		done = "renamed_address"
	case res.Renamed:
		done = "renamed"
	case res.AddressPending:
		done = "address"
	}
	c.Redirect(http.StatusSeeOther, personDoneURL(id, done))
}

// handleConsoleWithdraw unsubscribes the person on their word (fields
// topic, "" for every topic, and reason) as POST
// /api/v1/subscribers/{id}/unsubscribe does.
func (s *Server) handleConsoleWithdraw(c *gin.Context) {
	id := c.Param("id")
	changed, err := s.store.WithdrawFor(c.Request.Context(), actor(c), id, c.PostForm("topic"), c.PostForm("reason"))
	if consent.ErrorCode(err) == consent.EInvalid {
		s.personRefused(c, http.StatusBadRequest, "console.person.withdraw_invalid")
		return
	}
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	done := "withdrawn"
	if len(changed) == 0 {
		done = "withdrawn_already"
	}
	c.Redirect(http.StatusSeeOther, personDoneURL(id, done))
}

// handleConsolePreferenceLink gives the operator the person's preference
// link: minted and shown on the page to copy, as POST
// /api/v1/subscribers/{id}/preference-link does, or, with send=mail,
// mailed to the person as POST /manage would (at most once an hour, never
// to an address an operator blocked). Both are audited.
func (s *Server) handleConsolePreferenceLink(c *gin.Context) {
	ctx, id := c.Request.Context(), c.Param("id")
	if c.PostForm("send") != "mail" {
		link, expires, err := s.preferenceLink(ctx, actor(c), id)
		if err != nil {
			s.consoleFail(c, err)
			return
		}
		s.personView(c, "person", "console.person.title", http.StatusOK, "", false, func(p *personPage) {
			p.PrefLink, p.PrefExpires = link, expires
		})
		return
	}
	sub, err := s.store.Subscriber(ctx, id)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	addr, err := consent.ParseAddress(sub.Email)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	queued, err := s.store.RequestPreferencesMail(ctx, addr)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	n, done := 0, "preferences_held"
	if queued {
		n, done = 1, "preferences_mailed"
		if s.cfg.Outbox != nil {
			s.cfg.Outbox.Notify()
		}
	}
	if err := s.store.AuditRead(ctx, actor(c), "subscriber.preference_mail", id, n); err != nil {
		s.consoleFail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, personDoneURL(id, done))
}

// handleConsoleErase erases the person once the operator has typed their
// address (field confirm) to show they mean this person: the same
// erasure as the API's, audited under the signed-in key.
func (s *Server) handleConsoleErase(c *gin.Context) {
	ctx := c.Request.Context()
	sub, err := s.store.Subscriber(ctx, c.Param("id"))
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	raw := strings.TrimSpace(c.PostForm("confirm"))
	typed, terr := consent.ParseAddress(raw)
	held, herr := consent.ParseAddress(sub.Email)
	if !strings.EqualFold(raw, sub.Email) && (terr != nil || herr != nil || typed.Key != held.Key) {
		s.personRefused(c, http.StatusBadRequest, "console.person.erase_mismatch")
		return
	}
	if err := s.store.EraseSubscriber(ctx, actor(c), sub.ID); err != nil {
		s.consoleFail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/admin/subscribers?done=erased")
}
