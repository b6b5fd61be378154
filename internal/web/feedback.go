package web

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
)

// feedbackBody is POST /api/v1/feedback: a bounce or complaint the relay
// reports (docs/api.md#bounces-and-complaints-from-the-relay).
type feedbackBody struct {
	Type      consent.FeedbackKind `json:"type"`
	Email     string               `json:"email"`
	MessageID string               `json:"message_id"`
	Status    string               `json:"status"`
}

// handleFeedback records a relay's bounce or complaint report, audited
// under the calling key; it answers what changed.
func (s *Server) handleFeedback(c *gin.Context) {
	var b feedbackBody
	if err := bindJSON(c, &b); err != nil {
		s.fail(c, err)
		return
	}
	addr, err := consent.ParseAddress(b.Email)
	if err != nil {
		s.fail(c, err)
		return
	}
	a := actor(c)
	fb := consent.Feedback{Kind: b.Type, Address: addr, MessageID: b.MessageID, Status: b.Status, Channel: consent.ChannelRelay}
	res, err := s.store.RecordFeedback(c.Request.Context(), &a, fb, s.cfg.SoftBounce)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"suppressed": res.Suppressed, "soft_bounces": res.SoftBounces})
}
