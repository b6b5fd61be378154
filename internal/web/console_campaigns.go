package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
)

// campaignRow is a campaign as the list shows it.
type campaignRow struct {
	*consent.Campaign
	TopicName string
}

// handleConsoleCampaigns lists the reawaken campaigns with their state
// and counts.
func (s *Server) handleConsoleCampaigns(c *gin.Context) {
	ctx := c.Request.Context()
	camps, err := s.store.Campaigns(ctx)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	_, names, err := s.topicNames(ctx)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	rows := make([]campaignRow, 0, len(camps))
	for _, camp := range camps {
		rows = append(rows, campaignRow{Campaign: campaignView(camp), TopicName: names.name(camp.Topic)})
	}
	d := s.consoleBase(c, "console.campaigns.title", "campaigns")
	d.P = rows
	s.consolePage(c, http.StatusOK, "campaigns", d)
}

// newCampaignPage is the data of the new-campaign form.
type newCampaignPage struct {
	In         consent.CampaignInput
	Topics     []consent.Topic
	Lifecycles []consent.Lifecycle
	Locales    []string
	// NoActivitySince is the audience's date in the form's date field.
	NoActivitySince string
}

// handleConsoleCampaignNew shows the form for a new campaign.
func (s *Server) handleConsoleCampaignNew(c *gin.Context) {
	in := consent.CampaignInput{Deadline: consent.DefaultCampaignDeadline.String(), Rate: consent.DefaultCampaignRate}
	s.newCampaignView(c, http.StatusOK, in, "")
}

// newCampaignView renders the new-campaign form with in filled in and
// notice, when set, as an error.
func (s *Server) newCampaignView(c *gin.Context, status int, in consent.CampaignInput, notice string) {
	topics, err := s.store.Topics(c.Request.Context())
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	p := newCampaignPage{In: in, Topics: topics, Lifecycles: lifecycles(), Locales: s.cfg.Catalog.Locales()}
	if t, err := time.Parse(time.RFC3339, in.Audience.NoActivitySince); err == nil {
		p.NoActivitySince = t.Format(time.DateOnly)
	}
	d := s.consoleBase(c, "console.campaigns.new", "campaigns")
	d.P = p
	if notice != "" {
		d.Notice, d.Error = notice, true
	}
	s.consolePage(c, status, "campaign_new", d)
}

// campaignInput reads a campaign from the console's form: name, topic,
// lifecycle and audience_topics (repeated), consent_older_than,
// no_activity_since (a date, from midnight UTC), deadline, reminder,
// rate, and subject_<locale> and body_<locale> for each language written.
func (s *Server) campaignInput(c *gin.Context) (consent.CampaignInput, error) {
	in := consent.CampaignInput{Name: c.PostForm("name"), Topic: c.PostForm("topic"), Deadline: strings.TrimSpace(c.PostForm("deadline")),
		Reminder: strings.TrimSpace(c.PostForm("reminder")), Templates: map[string]consent.CampaignTemplate{},
		Audience: consent.AudienceInput{Topics: c.PostFormArray("audience_topics"),
			ConsentOlderThan: strings.TrimSpace(c.PostForm("consent_older_than"))}}
	for _, l := range c.PostFormArray("lifecycle") {
		in.Audience.Lifecycle = append(in.Audience.Lifecycle, consent.Lifecycle(l))
	}
	for _, loc := range s.cfg.Catalog.Locales() {
		t := consent.CampaignTemplate{Subject: c.PostForm("subject_" + loc), Body: c.PostForm("body_" + loc)}
		if strings.TrimSpace(t.Subject) != "" || strings.TrimSpace(t.Body) != "" {
			in.Templates[loc] = t
		}
	}
	var err error
	if day := strings.TrimSpace(c.PostForm("no_activity_since")); day != "" {
		t, perr := time.Parse(time.DateOnly, day)
		if perr != nil {
			err = consent.Errorf(consent.EInvalid, "audience.no_activity_since must be a date such as 2025-01-31")
		}
		in.Audience.NoActivitySince = t.Format(time.RFC3339)
	}
	if rate := strings.TrimSpace(c.PostForm("rate")); rate != "" {
		n, aerr := strconv.Atoi(rate)
		if aerr != nil {
			err = consent.Errorf(consent.EInvalid, "rate must be a whole number of mails a second")
		}
		in.Rate = n
	}
	return in, err
}

// handleConsoleCampaignCreate stores a draft campaign as POST
// /api/v1/campaigns does, audited under the signed-in key, and goes to
// its page; a refusal shows the form again with the problem.
func (s *Server) handleConsoleCampaignCreate(c *gin.Context) {
	in, err := s.campaignInput(c)
	var camp *consent.Campaign
	if err == nil {
		camp, err = s.createCampaign(c.Request.Context(), actor(c), in)
	}
	if consent.ErrorCode(err) == consent.EInvalid {
		s.newCampaignView(c, http.StatusBadRequest, in, s.refusal(c, "console.campaigns.refused", err))
		return
	}
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/admin/campaigns/"+url.PathEscape(camp.ID))
}

// campaignPage is the data of one campaign's page.
type campaignPage struct {
	Camp      *consent.Campaign
	TopicName string
	// Audience names the audience's topics.
	AudienceTopics []string
	Reasons        []string
	// Preview, when set, is the audience counted just now.
	Preview *consent.CampaignPreview
	// Postal is false when no postal address is configured: the
	// campaign cannot start.
	Postal bool
}

// handleConsoleCampaign shows one campaign: its settings and mail, its
// live counts, and the preview, start and pause its state allows.
func (s *Server) handleConsoleCampaign(c *gin.Context) {
	notice := ""
	switch done := c.Query("done"); done {
	case "started", "paused", "cancelled":
		notice = s.localizer(c).T("console.campaign.done_" + done)
	}
	s.showCampaign(c, nil, notice)
}

// showCampaign renders campaign c.Param("id") with preview, when set,
// and notice.
func (s *Server) showCampaign(c *gin.Context, preview *consent.CampaignPreview, notice string) {
	ctx := c.Request.Context()
	camp, err := s.store.Campaign(ctx, c.Param("id"))
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	_, names, err := s.topicNames(ctx)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	p := campaignPage{Camp: campaignView(camp), TopicName: names.name(camp.Topic), Reasons: consent.ExclusionReasons(),
		Preview: preview, Postal: s.cfg.PostalAddress != ""}
	for _, t := range camp.Audience.Topics {
		p.AudienceTopics = append(p.AudienceTopics, names.name(t))
	}
	d := s.consoleBase(c, "console.campaign.title", "campaigns")
	d.Title, d.P, d.Notice = camp.Name, p, notice
	s.consolePage(c, http.StatusOK, "campaign", d)
}

// handleConsoleCampaignPreview counts the campaign's audience and the
// exclusions by reason, as POST /api/v1/campaigns/{id}/preview does: it
// sends nothing and changes nothing.
func (s *Server) handleConsoleCampaignPreview(c *gin.Context) {
	pv, err := s.store.PreviewCampaign(c.Request.Context(), c.Param("id"), s.campaignPolicy())
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	s.showCampaign(c, &pv, "")
}

// handleConsoleCampaignStart starts or resumes a campaign as POST
// /api/v1/campaigns/{id}/start does.
func (s *Server) handleConsoleCampaignStart(c *gin.Context) {
	if _, err := s.startCampaign(c.Request.Context(), actor(c), c.Param("id")); err != nil {
		s.consoleFail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/admin/campaigns/"+url.PathEscape(c.Param("id"))+"?done=started")
}

// handleConsoleCampaignChange changes a campaign's state as POST
// /api/v1/campaigns/{id}/pause or /cancel does, and shows the campaign
// with the notice for done.
func (s *Server) handleConsoleCampaignChange(change campaignChange, done string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if _, err := change(c.Request.Context(), actor(c), c.Param("id")); err != nil {
			s.consoleFail(c, err)
			return
		}
		c.Redirect(http.StatusSeeOther, "/admin/campaigns/"+url.PathEscape(c.Param("id"))+"?done="+done)
	}
}

// campaignAudiencePage is the data of a campaign's audience list.
type campaignAudiencePage struct {
	Camp    *consent.Campaign
	Reasons []string
	Only    string
	Cursor  string
	Page    consent.AudiencePage
}

// handleConsoleCampaignAudience lists who the campaign would ask now and
// who it leaves out with the reason, a page at a time, as GET
// /api/v1/campaigns/{id}/audience does; it sends and changes nothing.
func (s *Server) handleConsoleCampaignAudience(c *gin.Context) {
	camp, err := s.store.Campaign(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	page, err := s.campaignAudience(c)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	d := s.consoleBase(c, "console.audience.title", "campaigns")
	d.P = campaignAudiencePage{Camp: campaignView(camp), Reasons: consent.ExclusionReasons(), Only: c.Query("only"),
		Cursor: c.Query("cursor"), Page: page}
	s.consolePage(c, http.StatusOK, "campaign_audience", d)
}
