package web

import (
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
)

// registerAdmin adds the admin API routes under /api/v1.
func (s *Server) registerAdmin(g *gin.RouterGroup) {
	g.Use(s.authenticate)
	read := allow(consent.RoleAdmin, consent.RoleMarketer, consent.RoleViewer)
	g.GET("/topics", read, s.handleTopics)
	g.GET("/forms/:id", read, s.handleFormGet)
	g.GET("/subscribers", read, s.handleSubscribers)
	g.GET("/subscribers/:id", read, s.handleSubscriber)
	g.GET("/subscribers/:id/consents", read, s.handleConsents)
	g.GET("/ledger/verify", read, s.handleLedgerVerify)
}

const ctxKey = "optin.apikey"

// authenticate resolves the Bearer API key; 401 without a valid one.
func (s *Server) authenticate(c *gin.Context) {
	secret, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok || secret == "" {
		c.Header("WWW-Authenticate", `Bearer realm="optin"`)
		s.fail(c, consent.Errorf(consent.EUnauthorized, "missing or invalid API key"))
		return
	}
	key, err := s.store.APIKey(c.Request.Context(), consent.HashAPIKey(strings.TrimSpace(secret)))
	if err != nil {
		c.Header("WWW-Authenticate", `Bearer realm="optin"`)
		s.fail(c, err)
		return
	}
	c.Set(ctxKey, key)
	c.Next()
}

// allow lets only the given roles through; others get 403.
func allow(roles ...consent.Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		key := c.MustGet(ctxKey).(consent.APIKey)
		if !slices.Contains(roles, key.Role) {
			writeJSONError(c, http.StatusForbidden, consent.EForbidden, "your API key's role may not do this")
			return
		}
		c.Next()
	}
}

func (s *Server) handleTopics(c *gin.Context) {
	ts, err := s.store.Topics(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": ts})
}

func (s *Server) handleFormGet(c *gin.Context) {
	f, err := s.store.Form(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, f)
}

// subscriberView is a subscriber as the admin API shows it.
type subscriberView struct {
	*consent.Subscriber
	Lifecycle consent.Lifecycle `json:"lifecycle"`
}

func (s *Server) view(sub *consent.Subscriber) subscriberView {
	return subscriberView{Subscriber: sub, Lifecycle: sub.Lifecycle(s.store.Now(), s.cfg.DormantAfter)}
}

// handleSubscribers looks subscribers up. With q set to an e-mail address
// it finds that subscriber.
func (s *Server) handleSubscribers(c *gin.Context) {
	q := c.Query("q")
	if q == "" {
		s.fail(c, consent.Errorf(consent.EInvalid, "q (an email address) is required"))
		return
	}
	items := []subscriberView{}
	if addr, err := consent.ParseAddress(q); err == nil {
		sub, err := s.store.SubscriberByAddress(c.Request.Context(), addr)
		switch consent.ErrorCode(err) {
		case "":
			items = append(items, s.view(sub))
		case consent.ENotFound:
		default:
			s.fail(c, err)
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"items": items, "next_cursor": ""})
}

func (s *Server) handleSubscriber(c *gin.Context) {
	sub, err := s.store.Subscriber(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s.view(sub))
}

// handleConsents returns the subscriber's ledger events: the proof of
// consent, with the wording each one cites.
func (s *Server) handleConsents(c *gin.Context) {
	if _, err := s.store.Subscriber(c.Request.Context(), c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	evs, err := s.store.Events(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": evs})
}

func (s *Server) handleLedgerVerify(c *gin.Context) {
	rep, err := s.store.VerifyLedger(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, rep)
}
