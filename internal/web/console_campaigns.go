package web

import (
	"net/http"
	"net/url"
	"slices"
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

// mailPreviewCSP is the Content-Security-Policy of a campaign mail's HTML
// part shown on its own: the mail's inline styles, nothing else, and no
// script or form even in a sandbox.
const mailPreviewCSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-ancestors 'none'; base-uri 'none'"

// campaignMailPage is the data of a campaign's mail preview.
type campaignMailPage struct {
	Camp    *consent.Campaign
	Locales []string
	Locale  string
	Bases   []consent.Basis
	Basis   consent.Basis
	Subject string
	Text    string
}

// sampleParams reads the preview's language (locale, default en) and the
// sample person's basis (basis: consent or soft_opt_in), from the query
// or the form.
func (s *Server) sampleParams(c *gin.Context) (string, consent.Basis, error) {
	locale, basis := c.DefaultQuery("locale", c.PostForm("locale")), consent.Basis(c.DefaultQuery("basis", c.PostForm("basis")))
	if locale == "" {
		locale = "en"
	}
	if basis == "" {
		basis = consent.BasisConsent
	}
	if !slices.Contains(s.cfg.Catalog.Locales(), locale) {
		return "", "", consent.Errorf(consent.EInvalid, "locale must be one of %s", strings.Join(s.cfg.Catalog.Locales(), ", "))
	}
	if basis != consent.BasisConsent && basis != consent.BasisSoftOptIn {
		return "", "", consent.Errorf(consent.EInvalid, "basis must be consent or soft_opt_in: nobody else is ever asked")
	}
	return locale, basis, nil
}

// campaignSample loads campaign c.Param("id") with its topic and reads the
// sample's language and basis.
func (s *Server) campaignSample(c *gin.Context) (*consent.Campaign, consent.Topic, string, consent.Basis, error) {
	ctx := c.Request.Context()
	if s.cfg.CampaignMail == nil {
		return nil, consent.Topic{}, "", "", consent.Errorf(consent.EConflict, "this process does not send mail")
	}
	camp, err := s.store.Campaign(ctx, c.Param("id"))
	if err != nil {
		return nil, consent.Topic{}, "", "", err
	}
	topic, err := s.store.Topic(ctx, camp.Topic)
	if err != nil {
		return nil, consent.Topic{}, "", "", err
	}
	locale, basis, err := s.sampleParams(c)
	return camp, topic, locale, basis, err
}

// handleConsoleCampaignMail previews the campaign's mail as a sample
// person writing in the chosen language and holding the topic on the
// chosen basis would get it: subject and text part here, the HTML part
// (part=html) on its own under a CSP that allows its styles and nothing
// else. The sample's links change nothing.
func (s *Server) handleConsoleCampaignMail(c *gin.Context) {
	camp, topic, locale, basis, err := s.campaignSample(c)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	subject, text, html, err := s.cfg.CampaignMail.Sample(camp, topic, locale, basis)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	if c.Query("part") == "html" {
		c.Header("Content-Security-Policy", mailPreviewCSP)
		c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(html))
		return
	}
	d := s.consoleBase(c, "console.mail.title", "campaigns")
	if c.Query("done") == "test_sent" {
		d.Notice = d.L.T("console.mail.test_sent")
	}
	d.P = campaignMailPage{Camp: campaignView(camp), Locales: s.cfg.Catalog.Locales(), Locale: locale,
		Bases: []consent.Basis{consent.BasisConsent, consent.BasisSoftOptIn}, Basis: basis, Subject: subject, Text: text}
	s.consolePage(c, http.StatusOK, "campaign_mail", d)
}

// handleConsoleCampaignTest sends the previewed mail, marked as a test,
// to the address the operator typed (field to): straight to the mail
// server, recorded for no subscriber, audited as campaign.test_send
// without the address; at most 20 an hour per API key.
func (s *Server) handleConsoleCampaignTest(c *gin.Context) {
	camp, topic, locale, basis, err := s.campaignSample(c)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	to, err := consent.ParseAddress(c.PostForm("to"))
	if err != nil {
		s.consoleFail(c, consent.Errorf(consent.EInvalid, "to: %s", consent.ErrorMessage(err)))
		return
	}
	a := actor(c)
	if ok, wait, err := s.testSends.allow(c.Request.Context(), a.KeyID, s.store.Now()); !ok {
		if err == nil {
			retryAfter(c, wait)
			err = consent.Errorf(consent.ERateLimited, "too many test sends; try again later")
		}
		s.consoleFail(c, err)
		return
	}
	ctx := c.Request.Context()
	if err := s.cfg.CampaignMail.SendTest(ctx, camp, topic, locale, basis, to.Addr); err != nil {
		// The relay's answer may quote the address: not logged.
		s.cfg.Log.Warn("campaign test send failed", "campaign", camp.ID)
		s.consoleFail(c, keyed(consent.Errorf(consent.EConflict, "the mail server did not take the test mail"), "console.mail.test_failed"))
		return
	}
	if err := s.store.AuditRead(ctx, a, "campaign.test_send", camp.ID, 1); err != nil {
		s.consoleFail(c, err)
		return
	}
	q := url.Values{"locale": {locale}, "basis": {string(basis)}, "done": {"test_sent"}}
	c.Redirect(http.StatusSeeOther, "/admin/campaigns/"+url.PathEscape(camp.ID)+"/mail?"+q.Encode())
}
