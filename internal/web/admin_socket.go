package web

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
)

// SocketHandler returns the handler of the admin socket (data_dir/
// socket/admin.sock), through which the optin CLI acts on a running service
// instead of fighting it for the database file. It serves, without API
// keys, POST /apikeys, GET /apikeys, DELETE /apikeys/{id}, GET
// /ledger/verify, GET /ledger/key, POST /imports and GET /campaigns/{id} with the admin API's bodies and
// answers, and GET /counters/check and POST /counters/rebuild
// ({"differences": [consent.CounterDiff...]}: those found, or corrected). Access is controlled by the file modes of the socket (0600)
// and of its directory (0700): owner only; writes are audited as the actor "cli".
func (s *Server) SocketHandler() http.Handler {
	e := gin.New()
	e.Use(s.recoverer(), func(c *gin.Context) {
		c.Set(ctxKey, consent.APIKey{Name: "cli", Role: consent.RoleAdmin})
		c.Next()
	}, adminBodyLimit)
	e.NoRoute(func(c *gin.Context) { s.fail(c, consent.Errorf(consent.ENotFound, "not found")) })
	e.GET("/apikeys", s.handleAPIKeys)
	e.POST("/apikeys", s.handleAPIKeyCreate)
	e.DELETE("/apikeys/:id", s.handleAPIKeyRevoke)
	e.GET("/ledger/verify", s.handleLedgerVerify)
	e.GET("/ledger/key", s.handleLedgerKey)
	e.POST("/imports", s.handleImport)
	e.GET("/campaigns/:id", s.handleCampaign)
	e.GET("/counters/check", func(c *gin.Context) { s.counters(c, s.store.CheckCounters) })
	e.POST("/counters/rebuild", func(c *gin.Context) { s.counters(c, s.store.RebuildCounters) })
	return e
}

// counters answers with the counter differences fn finds (or corrects).
func (s *Server) counters(c *gin.Context, fn func(context.Context) ([]consent.CounterDiff, error)) {
	diff, err := fn(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	if diff == nil {
		diff = []consent.CounterDiff{}
	}
	c.JSON(http.StatusOK, gin.H{"differences": diff})
}
