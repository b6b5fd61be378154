package web

import (
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
	// PurchaseAt fills the purchase form: now, in UTC, to the minute.
	PurchaseAt string
}

// subscriptionRow is one topic of the person's subscriptions.
type subscriptionRow struct {
	Topic  string // its name
	Status consent.Status
	Basis  consent.Basis
	Since  time.Time
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
	now := s.store.Now()
	p := personPage{Sub: sub, Lifecycle: sub.Lifecycle(now, s.cfg.DormantAfter), Generated: now,
		Sender: s.cfg.Sender, Postal: s.cfg.PostalAddress, PurchaseAt: now.Format(datetimeLocal)}
	for _, id := range sortedKeys(sub.Subscriptions) {
		x := sub.Subscriptions[id]
		p.Subscriptions = append(p.Subscriptions, subscriptionRow{Topic: names.name(id), Status: x.Status, Basis: x.Basis, Since: x.Since})
	}
	for _, ev := range evs {
		row := eventRow{Seq: ev.Seq, Time: ev.Time, Type: ev.Type, Basis: ev.Basis, Source: ev.Source, Page: ev.Page,
			Wording: ev.WordingText, WordingHash: ev.Wording, MessageID: ev.MessageID, Request: ev.Request, Hash: ev.Hash}
		for _, t := range ev.Topics {
			row.Topics = append(row.Topics, names.name(t))
		}
		if ev.Personal != nil {
			row.IP, row.UserAgent = ev.Personal.IP, ev.Personal.UserAgent
		}
		p.Events = append(p.Events, row)
	}
	return p, nil
}

// personView renders the person's page, or their receipt, with status
// and notice.
func (s *Server) personView(c *gin.Context, name, titleKey string, status int, notice string, bad bool) {
	p, err := s.person(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	d := s.consoleBase(c, titleKey, "subscribers")
	d.P, d.Notice, d.Error = p, notice, bad
	s.consolePage(c, status, name, d)
}

// handleConsolePerson shows one person: their subscriptions, the consent
// timeline and the actions their role allows.
func (s *Server) handleConsolePerson(c *gin.Context) {
	notice := ""
	if done := c.Query("done"); done == "activity" {
		notice = s.localizer(c).T("console.person.done_activity")
	}
	s.personView(c, "person", "console.person.title", http.StatusOK, notice, false)
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
	}
	if err != nil {
		key := "console.person.activity_invalid"
		if consent.ErrorCode(err) == consent.EInvalid && !at.IsZero() && at.After(s.store.Now()) {
			key = "console.person.activity_future"
		}
		s.personView(c, "person", "console.person.title", http.StatusBadRequest, s.localizer(c).T(key), true)
		return
	}
	customer := slices.Contains(s.cfg.CustomerActivities, act.Kind)
	if _, err := s.store.RecordActivity(c.Request.Context(), actor(c), id, act, customer); err != nil {
		if consent.ErrorCode(err) == consent.EInvalid {
			s.personView(c, "person", "console.person.title", http.StatusBadRequest, s.localizer(c).T("console.person.activity_future"), true)
			return
		}
		s.consoleFail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/admin/subscribers/"+url.PathEscape(id)+"?done=activity")
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
		s.personView(c, "person", "console.person.title", http.StatusBadRequest, s.localizer(c).T("console.person.erase_mismatch"), true)
		return
	}
	if err := s.store.EraseSubscriber(ctx, actor(c), sub.ID); err != nil {
		s.consoleFail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/admin/subscribers?done=erased")
}
