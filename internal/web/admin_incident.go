package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
	"optin/internal/transfer"
)

// incidentView is an incident as the admin API shows it, with the
// deadline for notifying the supervisory authority.
type incidentView struct {
	*consent.Incident
	Deadline time.Time `json:"notify_authority_by"`
}

// handleIncidentCreate records a personal data breach in the register
// (GDPR Art. 33(5)).
func (s *Server) handleIncidentCreate(c *gin.Context) {
	var in consent.IncidentInput
	if err := bindJSON(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	inc, err := s.store.CreateIncident(c.Request.Context(), actor(c), in)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, incidentView{inc, inc.Deadline()})
}

func (s *Server) handleIncident(c *gin.Context) {
	inc, err := s.store.Incident(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, incidentView{inc, inc.Deadline()})
}

// handleIncidentAffected streams the people whose data existed in the
// incident's window, as CSV or NDJSON in the bulk export's columns,
// audited. Unlike a marketing export it includes suppressed addresses:
// they are affected too.
func (s *Server) handleIncidentAffected(c *gin.Context) {
	ctx := c.Request.Context()
	inc, err := s.store.Incident(ctx, c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	format := c.DefaultQuery("format", transfer.FormatCSV)
	now := s.store.Now()
	ex, err := transfer.NewExporter(c.Writer, format, now, s.cfg.DormantAfter)
	if err != nil {
		s.fail(c, err)
		return
	}
	extendDeadlines(c, false)
	c.Header("Content-Type", ex.ContentType())
	c.Header("Content-Disposition", `attachment; filename="incident-`+inc.ID+`-affected.`+format+`"`)
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusOK)
	n := 0
	if err = ex.Begin(); err == nil {
		err = s.store.EachAffected(ctx, inc, func(sub *consent.Subscriber) error {
			n++
			return ex.Write(sub)
		})
	}
	if ferr := ex.Flush(); err == nil {
		err = ferr
	}
	if aerr := s.store.AuditRead(context.WithoutCancel(ctx), actor(c), "incident.affected", inc.ID, n); aerr != nil {
		s.cfg.Log.Error("auditing an incident's affected list", "err", aerr)
	}
	if err != nil {
		s.cfg.Log.Warn("incident's affected list cut short", "incident", inc.ID, "err", err)
	}
}

// handleIncidentReport answers a plain-text report of the incident for
// the supervisory authority (the content GDPR Art. 33(3) asks for, as far
// as optin knows it), with the 72-hour deadline.
func (s *Server) handleIncidentReport(c *gin.Context) {
	ctx := c.Request.Context()
	inc, err := s.store.Incident(ctx, c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	affected := 0
	if err := s.store.EachAffected(ctx, inc, func(*consent.Subscriber) error { affected++; return nil }); err != nil {
		s.fail(c, err)
		return
	}
	now := s.store.Now()
	var b strings.Builder
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }
	fmt.Fprintf(&b, "Personal data breach report (GDPR Art. 33)\n\n")
	fmt.Fprintf(&b, "Controller: %s\n", s.cfg.Sender)
	if s.cfg.PostalAddress != "" {
		fmt.Fprintf(&b, "Address: %s\n", s.cfg.PostalAddress)
	}
	fmt.Fprintf(&b, "Incident: %s, recorded %s by %s\n", inc.ID, ts(inc.Created), inc.By)
	fmt.Fprintf(&b, "Discovered: %s\n", ts(inc.DiscoveredAt))
	fmt.Fprintf(&b, "Notify the supervisory authority by: %s", ts(inc.Deadline()))
	if left := inc.Deadline().Sub(now); left > 0 {
		fmt.Fprintf(&b, " (%d hours left)\n", int(left.Hours()))
	} else {
		fmt.Fprintf(&b, " (passed; Art. 33(1) asks for the reasons of the delay)\n")
	}
	fmt.Fprintf(&b, "Window of exposure: %s to %s\n", ts(inc.From), ts(inc.To))
	fmt.Fprintf(&b, "Categories of personal data: %s\n", strings.Join(inc.DataCategories, ", "))
	fmt.Fprintf(&b, "Approximate number of data subjects concerned: %d (subscribers whose data existed in the window)\n", affected)
	if inc.Notified.IsZero() {
		fmt.Fprintf(&b, "Data subjects informed (Art. 34): not yet\n")
	} else {
		fmt.Fprintf(&b, "Data subjects informed (Art. 34): %d notices queued on %s\n", inc.NoticesQueued, ts(inc.Notified))
	}
	fmt.Fprintf(&b, "\nDescription:\n%s\n", inc.Description)
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(b.String()))
}

// handleIncidentNotify queues a notice to every person the incident
// affects (GDPR Art. 34), once, with the operator's text: sent despite
// marketing opt-outs, never to erased people.
func (s *Server) handleIncidentNotify(c *gin.Context) {
	var b struct {
		Message string `json:"message"`
	}
	if err := bindJSON(c, &b); err != nil {
		s.fail(c, err)
		return
	}
	text, err := consent.ParseNoticeText(b.Message)
	if err != nil {
		s.fail(c, err)
		return
	}
	n, err := s.store.NotifyIncident(c.Request.Context(), actor(c), c.Param("id"), text)
	if err != nil {
		s.fail(c, err)
		return
	}
	if n > 0 && s.cfg.Outbox != nil {
		s.cfg.Outbox.Notify()
	}
	c.JSON(http.StatusAccepted, gin.H{"queued": n})
}
