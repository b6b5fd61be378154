package web

import (
	"context"
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
	camp, err := s.createCampaign(c.Request.Context(), actor(c), in)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, campaignView(camp))
}

// createCampaign checks that in's mail is written in languages optin
// ships and stores it as a draft under a; the store validates the rest.
func (s *Server) createCampaign(ctx context.Context, a consent.Actor, in consent.CampaignInput) (*consent.Campaign, error) {
	if err := in.CheckLocales(s.cfg.Catalog.Locales()); err != nil {
		return nil, err
	}
	return s.store.CreateCampaign(ctx, a, in)
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

// handleCampaignAudience lists one page of the campaign's audience: who
// is in and who is left out with the reason (query only: in, out or a
// reason; cursor and limit as every listing); it sends and changes
// nothing.
func (s *Server) handleCampaignAudience(c *gin.Context) {
	page, err := s.campaignAudience(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

// campaignAudience reads the page a request asks for (only, cursor,
// limit) and lists it.
func (s *Server) campaignAudience(c *gin.Context) (consent.AudiencePage, error) {
	cursor, limit, err := pageParams(c)
	if err != nil {
		return consent.AudiencePage{}, err
	}
	q := consent.AudienceQuery{Cursor: cursor, Limit: limit, Only: c.Query("only")}
	if err := q.CheckOnly(); err != nil {
		return consent.AudiencePage{}, err
	}
	return s.store.CampaignAudience(c.Request.Context(), c.Param("id"), s.campaignPolicy(), q)
}

// handleCampaignStart starts a draft campaign or resumes a paused one. A
// campaign mail is marketing: without a configured postal address to put
// in it, nothing starts (CAN-SPAM, 15 U.S.C. 7704(a)(5)(A)(iii)).
func (s *Server) handleCampaignStart(c *gin.Context) {
	camp, err := s.startCampaign(c.Request.Context(), actor(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, campaignView(camp))
}

// startCampaign starts or resumes campaign id under a, once the config
// has the postal address every campaign mail must carry.
func (s *Server) startCampaign(ctx context.Context, a consent.Actor, id string) (*consent.Campaign, error) {
	if s.cfg.PostalAddress == "" {
		return nil, keyed(consent.Errorf(consent.EConflict,
			"set mail.postal_address in the config first: every campaign mail must show the sender's postal address"),
			"console.campaign.no_postal")
	}
	return s.store.StartCampaign(ctx, a, id)
}

// campaignChange is a store call that changes one campaign's state.
type campaignChange func(ctx context.Context, a consent.Actor, id string) (*consent.Campaign, error)

// handleCampaignChange answers a state change of campaign {id} (pause:
// queue no more mail; cancel: end it for good, withholding the first
// mails not yet sent, with no reminder or lapse to follow) with the
// campaign.
func (s *Server) handleCampaignChange(change campaignChange) gin.HandlerFunc {
	return func(c *gin.Context) {
		camp, err := change(c.Request.Context(), actor(c), c.Param("id"))
		if err != nil {
			s.fail(c, err)
			return
		}
		c.JSON(http.StatusOK, campaignView(camp))
	}
}
