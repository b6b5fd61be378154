package web

import (
	"crypto/rand"
	"net/http"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
)

// webhookCreated is the answer to POST /webhooks: the endpoint and its
// signing secret, shown this once.
type webhookCreated struct {
	consent.WebhookInfo
	Secret string `json:"secret"`
}

func (s *Server) handleWebhooks(c *gin.Context) {
	hooks, err := s.store.Webhooks(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": hooks})
}

// handleWebhookCreate registers an endpoint; the answer carries its
// secret, which no later call shows.
func (s *Server) handleWebhookCreate(c *gin.Context) {
	var in consent.WebhookInput
	if err := bindJSON(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	w, err := consent.NewWebhook(rand.Reader, in)
	if err != nil {
		s.fail(c, err)
		return
	}
	if w, err = s.store.CreateWebhook(c.Request.Context(), actor(c), w); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, webhookCreated{WebhookInfo: w.Info(0, 0), Secret: w.Secret})
}

func (s *Server) handleWebhookDelete(c *gin.Context) {
	if err := s.store.DeleteWebhook(c.Request.Context(), actor(c), c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// handleWebhookRedeliver queues the endpoint's parked deliveries again.
func (s *Server) handleWebhookRedeliver(c *gin.Context) {
	n, err := s.store.RedeliverWebhook(c.Request.Context(), actor(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"redelivered": n})
}
