package web

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
)

// campaignPolicy is the operator's settings the audience rule applies.
func (s *Server) campaignPolicy() consent.CampaignPolicy {
	return consent.CampaignPolicy{DormantAfter: s.cfg.DormantAfter}
}

// campaignView is a campaign as the admin API shows it: the walk's
// cursor (a subscriber id) stays inside.
func campaignView(c *consent.Campaign) *consent.Campaign {
	v := *c
	v.Cursor = ""
	return &v
}

// handleCampaignCreate stores a draft reawaken campaign after validating
// every field (400 with the field's problem).
func (s *Server) handleCampaignCreate(c *gin.Context) {
	var in consent.CampaignInput
	if err := bindJSON(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	if err := in.CheckLocales(s.cfg.Catalog.Locales()); err != nil {
		s.fail(c, err)
		return
	}
	camp, err := s.store.CreateCampaign(c.Request.Context(), actor(c), in)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, campaignView(camp))
}

func (s *Server) handleCampaigns(c *gin.Context) {
	cs, err := s.store.Campaigns(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	items := make([]*consent.Campaign, len(cs))
	for i, camp := range cs {
		items[i] = campaignView(camp)
	}
	c.JSON(http.StatusOK, gin.H{"items": items})
}

// handleCampaign shows a campaign with its live counts.
func (s *Server) handleCampaign(c *gin.Context) {
	camp, err := s.store.Campaign(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, campaignView(camp))
}

// handleCampaignPreview counts the audience and the exclusions by reason;
// it sends nothing and changes nothing.
func (s *Server) handleCampaignPreview(c *gin.Context) {
	pv, err := s.store.PreviewCampaign(c.Request.Context(), c.Param("id"), s.campaignPolicy())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, pv)
}

// handleCampaignStart starts a draft campaign or resumes a paused one. A
// campaign mail is marketing: without a configured postal address to put
// in it, nothing starts (CAN-SPAM, 15 U.S.C. 7704(a)(5)(A)(iii)).
func (s *Server) handleCampaignStart(c *gin.Context) {
	if s.cfg.PostalAddress == "" {
		s.fail(c, consent.Errorf(consent.EConflict,
			"set mail.postal_address in the config first: every campaign mail must show the sender's postal address"))
		return
	}
	camp, err := s.store.StartCampaign(c.Request.Context(), actor(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, campaignView(camp))
}

// handleCampaignPause stops a running campaign from queuing mail.
func (s *Server) handleCampaignPause(c *gin.Context) {
	camp, err := s.store.PauseCampaign(c.Request.Context(), actor(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, campaignView(camp))
}
