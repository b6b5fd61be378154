package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
	"optin/internal/token"
)

// maxImportBody caps the body of POST /api/v1/imports; every other admin
// route keeps maxBody.
const maxImportBody = 1 << 30

// Role sets for the admin routes: admin (everything), marketer
// (subscribers, imports, exports, campaigns, stats), viewer (read-only).
// Bulk personal data (exports, backups) is not a viewer's "read".
var (
	rolesRead   = []consent.Role{consent.RoleAdmin, consent.RoleMarketer, consent.RoleViewer}
	rolesMarket = []consent.Role{consent.RoleAdmin, consent.RoleMarketer}
	rolesAdmin  = []consent.Role{consent.RoleAdmin}
)

// registerAdmin adds the admin API routes under /api/v1.
func (s *Server) registerAdmin(g *gin.RouterGroup) {
	g.Use(adminBodyLimit)
	g.GET("/openapi.yaml", s.handleOpenAPI) // public: the contract is no secret
	g.Use(s.authenticate)
	read, market, admin := allow(rolesRead...), allow(rolesMarket...), allow(rolesAdmin...)

	g.GET("/topics", read, s.handleTopics)
	g.POST("/topics", admin, s.handleTopicCreate)
	g.PUT("/topics/:id", admin, s.handleTopicUpdate)
	g.GET("/forms", read, s.handleForms)
	g.POST("/forms", admin, s.handleFormCreate)
	g.GET("/forms/:id", read, s.handleFormGet)
	g.PUT("/forms/:id", admin, s.handleFormUpdate)
	g.DELETE("/forms/:id", admin, s.handleFormDelete)
	g.GET("/forms/:id/snippet", read, s.handleFormSnippet)

	g.GET("/subscribers", read, s.handleSubscribers)
	g.GET("/subscribers/:id", read, s.handleSubscriber)
	g.GET("/subscribers/:id/consents", read, s.handleConsents)
	g.GET("/subscribers/:id/receipt", read, s.handleSubscriberReceipt)
	g.PATCH("/subscribers/:id", market, s.handleSubscriberPatch)
	g.POST("/subscribers/:id/preference-link", market, s.handlePreferenceLink)
	g.POST("/subscribers/:id/unsubscribe", market, s.handleWithdrawFor)
	g.POST("/subscribers/:id/activity", market, s.handleActivity)
	g.DELETE("/subscribers/:id", market, s.handleSubscriberErase)

	g.POST("/imports", market, s.handleImport)
	g.GET("/exports/subscribers", market, s.handleSubscriberExport)

	g.GET("/suppressions", read, s.handleSuppressions)
	g.POST("/suppressions", admin, s.handleSuppressionAdd)
	g.DELETE("/suppressions/:hash", admin, s.handleSuppressionDelete)
	g.POST("/feedback", admin, s.handleFeedback)

	g.GET("/campaigns", read, s.handleCampaigns)
	g.POST("/campaigns", market, s.handleCampaignCreate)
	g.GET("/campaigns/:id", read, s.handleCampaign)
	g.POST("/campaigns/:id/preview", market, s.handleCampaignPreview)
	g.GET("/campaigns/:id/audience", market, s.handleCampaignAudience)
	g.POST("/campaigns/:id/start", market, s.handleCampaignStart)
	g.POST("/campaigns/:id/pause", market, s.handleCampaignChange(s.store.PauseCampaign))
	g.POST("/campaigns/:id/cancel", market, s.handleCampaignChange(s.store.CancelCampaign))

	g.GET("/stats", read, s.handleStats)
	g.GET("/audit", read, s.handleAudit)
	g.POST("/incidents", admin, s.handleIncidentCreate)
	g.GET("/incidents/:id", admin, s.handleIncident)
	g.GET("/incidents/:id/affected", admin, s.handleIncidentAffected)
	g.GET("/incidents/:id/report", admin, s.handleIncidentReport)
	g.POST("/incidents/:id/notify", admin, s.handleIncidentNotify)
	g.GET("/assessments", read, s.handleAssessments)
	g.POST("/assessments", admin, s.handleAssessmentCreate)
	g.GET("/assessments/:id", read, s.handleAssessment)
	g.GET("/ledger/verify", read, s.handleLedgerVerify)
	g.GET("/backup", admin, s.handleBackup)

	g.GET("/webhooks", admin, s.handleWebhooks)
	g.POST("/webhooks", admin, s.handleWebhookCreate)
	g.DELETE("/webhooks/:id", admin, s.handleWebhookDelete)
	g.POST("/webhooks/:id/redeliver", admin, s.handleWebhookRedeliver)

	g.GET("/apikeys", admin, s.handleAPIKeys)
	g.POST("/apikeys", admin, s.handleAPIKeyCreate)
	g.DELETE("/apikeys/:id", admin, s.handleAPIKeyRevoke)
}

// adminBodyLimit caps request bodies of the admin API and the console:
// 1 GiB for imports, which stream, 64 KiB for everything else.
func adminBodyLimit(c *gin.Context) {
	n := int64(maxBody)
	if strings.HasSuffix(c.FullPath(), "/imports") {
		n = maxImportBody
	}
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
	}
	c.Next()
}

const ctxKey = "optin.apikey"

// authenticate resolves the Bearer API key; 401 without a valid one. It
// records the key's last use, at most once a minute.
func (s *Server) authenticate(c *gin.Context) {
	secret, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok || strings.TrimSpace(secret) == "" {
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
	if err := s.store.TouchAPIKey(c.Request.Context(), key); err != nil {
		s.cfg.Log.Warn("recording API key use", "key", key.Name, "err", err)
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

// actor is who makes the current admin request.
func actor(c *gin.Context) consent.Actor { return consent.ActorOf(c.MustGet(ctxKey).(consent.APIKey)) }

// bindJSON decodes the request body into v strictly: unknown fields and
// trailing data are EInvalid, so typos do not pass silently.
func bindJSON(c *gin.Context, v any) error {
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return consent.Errorf(consent.EInvalid, "a JSON body is required")
		}
		return consent.Errorf(consent.EInvalid, "invalid JSON body: %v", err)
	}
	return nil
}

// pageParams reads cursor and limit (1-500, default 50).
func pageParams(c *gin.Context) (cursor string, limit int, err error) {
	limit = 50
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return "", 0, consent.Errorf(consent.EInvalid, "limit must be a number from 1 to 500")
		}
		limit = n
	}
	cursor = c.Query("cursor")
	if len(cursor) > 200 {
		return "", 0, consent.Errorf(consent.EInvalid, "cursor must be a value from next_cursor")
	}
	return cursor, limit, nil
}

// subscriberView is a subscriber as the admin API shows it.
type subscriberView struct {
	*consent.Subscriber
	Lifecycle consent.Lifecycle `json:"lifecycle"`
}

func (s *Server) view(sub *consent.Subscriber) subscriberView {
	return subscriberView{Subscriber: sub, Lifecycle: sub.Lifecycle(s.store.Now(), s.cfg.DormantAfter)}
}

// subscriberFilter reads the filter of a subscriber listing or export
// (status, topic, lifecycle, q) through get, which reads a query or form
// field. Bad values are EInvalid.
func (s *Server) subscriberFilter(get func(string) string) (consent.SubscriberFilter, error) {
	f := consent.SubscriberFilter{Status: consent.Status(get("status")), Topic: get("topic"),
		Lifecycle: consent.Lifecycle(get("lifecycle")), DormantAfter: s.cfg.DormantAfter, Query: strings.TrimSpace(get("q"))}
	switch f.Status {
	case "", consent.StatusPending, consent.StatusConfirmed, consent.StatusUnsubscribed, consent.StatusLapsed:
	default:
		return f, consent.Errorf(consent.EInvalid, "status must be pending, confirmed, unsubscribed or lapsed")
	}
	switch f.Lifecycle {
	case "", consent.LifecycleProspect, consent.LifecycleCustomer, consent.LifecycleDormant:
	default:
		return f, consent.Errorf(consent.EInvalid, "lifecycle must be prospect, customer or dormant")
	}
	if ch := get("channel"); ch != "" {
		c, err := consent.ParseChannel(ch)
		if err != nil {
			return f, err
		}
		if f.Status != "" && f.Status != consent.StatusConfirmed {
			return f, consent.Errorf(consent.EInvalid, "channel matches confirmed subscriptions only")
		}
		f.Channel, f.Status = c, consent.StatusConfirmed
	}
	if len(f.Query) > 254 || len(f.Topic) > 64 {
		return f, consent.Errorf(consent.EInvalid, "q or topic is too long")
	}
	var err error
	if f.CreatedSince, err = createdBound("created_since", get("created_since"), false); err != nil {
		return f, err
	}
	if f.CreatedBefore, err = createdBound("created_until", get("created_until"), true); err != nil {
		return f, err
	}
	return f, nil
}

// createdBound parses a creation-time filter: a date (a whole UTC day)
// or an RFC 3339 time; "" is none. With until it returns the first
// moment after the bound, which the filter excludes.
func createdBound(name, v string, until bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.Parse(time.DateOnly, v); err == nil {
		if until {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, consent.Errorf(consent.EInvalid, "%s must be a date such as 2025-01-31 or an RFC 3339 time", name)
	}
	if until {
		t = t.Add(time.Millisecond)
	}
	return t.UTC(), nil
}

// handleSubscribers lists subscribers by status, topic, lifecycle and a
// text search, a page at a time.
func (s *Server) handleSubscribers(c *gin.Context) {
	cursor, limit, err := pageParams(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	f, err := s.subscriberFilter(c.Query)
	if err != nil {
		s.fail(c, err)
		return
	}
	f.Cursor, f.Limit = cursor, limit
	subs, next, err := s.store.FindSubscribers(c.Request.Context(), f)
	if err != nil {
		s.fail(c, err)
		return
	}
	items := make([]subscriberView, 0, len(subs))
	for _, sub := range subs {
		items = append(items, s.view(sub))
	}
	c.JSON(http.StatusOK, gin.H{"items": items, "next_cursor": next})
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

// activityBody is POST /subscribers/{id}/activity.
type activityBody struct {
	Kind   consent.ActivityKind `json:"kind"`
	At     string               `json:"at"`
	Reason string               `json:"reason"`
	// Assessment is the legitimate-interest assessment the activity
	// cites; required while the person holds a subscription on that basis
	// and the register is not empty.
	Assessment string `json:"assessment"`
}

// handleActivity records an activity of the person with its reason; the
// kinds lifecycle.customer_activities names make a customer.
func (s *Server) handleActivity(c *gin.Context) {
	var b activityBody
	if err := bindJSON(c, &b); err != nil {
		s.fail(c, err)
		return
	}
	at, err := parseTime(b.At)
	if err != nil {
		s.fail(c, err)
		return
	}
	act, err := consent.NewActivity(b.Kind, at, b.Reason, s.store.Now())
	if err != nil {
		s.fail(c, err)
		return
	}
	act.Assessment = b.Assessment
	customer := slices.Contains(s.cfg.CustomerActivities, act.Kind)
	sub, err := s.store.RecordActivity(c.Request.Context(), actor(c), c.Param("id"), act, customer)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s.view(sub))
}

// rectifyBody is PATCH /subscribers/{id}: the fields to correct.
type rectifyBody struct {
	Name          *string `json:"name"`
	Email         *string `json:"email"`
	Phone         *string `json:"phone"`
	PostalAddress *string `json:"postal_address"`
}

// rectification validates a correction: a name as at signup, an address
// as ParseAddress takes it, a phone number and a postal address as the
// signup form takes them (ParsePhone, ParsePostalAddress). At least one
// field is required.
func (b rectifyBody) rectification() (consent.Rectification, error) {
	var ch consent.Rectification
	if b.Name == nil && b.Email == nil && b.Phone == nil && b.PostalAddress == nil {
		return ch, consent.Errorf(consent.EInvalid, "give at least one of name, email, phone, postal_address")
	}
	if b.Phone != nil {
		phone, err := consent.ParsePhone(*b.Phone)
		if err != nil {
			return ch, err
		}
		ch.Phone = &phone
	}
	if b.PostalAddress != nil {
		addr, err := consent.ParsePostalAddress(*b.PostalAddress)
		if err != nil {
			return ch, err
		}
		ch.PostalAddress = &addr
	}
	if b.Name != nil {
		name, err := consent.ParseName(*b.Name)
		if err != nil {
			return ch, err
		}
		ch.Name = &name
	}
	if b.Email != nil {
		addr, err := consent.ParseAddress(*b.Email)
		if err != nil {
			return ch, err
		}
		ch.Email = &addr
	}
	return ch, nil
}

// rectifyView is the answer to PATCH /subscribers/{id}: the subscriber
// and whether a new address waits for its confirmation.
type rectifyView struct {
	subscriberView
	AddressPending bool `json:"address_pending"`
}

// handleSubscriberPatch corrects a subscriber's name, phone number and
// postal address at once and starts
// the double opt-in of a new address (GDPR Art. 16); the old address is
// told once the new one confirmed.
func (s *Server) handleSubscriberPatch(c *gin.Context) {
	var b rectifyBody
	if err := bindJSON(c, &b); err != nil {
		s.fail(c, err)
		return
	}
	res, err := s.rectify(c.Request.Context(), actor(c), c.Param("id"), b)
	if err != nil {
		s.fail(c, err)
		return
	}
	sub, err := s.store.Subscriber(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, rectifyView{subscriberView: s.view(sub), AddressPending: res.AddressPending})
}

// rectify validates correction b of subscriber id and applies it under
// a, waking the outbox when a confirmation mail went to a new address.
func (s *Server) rectify(ctx context.Context, a consent.Actor, id string, b rectifyBody) (consent.RectifyResult, error) {
	ch, err := b.rectification()
	if err != nil {
		return consent.RectifyResult{}, err
	}
	res, err := s.store.Rectify(ctx, &a, id, ch, a.Source())
	if err == nil && res.AddressPending && s.cfg.Outbox != nil {
		s.cfg.Outbox.Notify()
	}
	return res, err
}

// withdrawBody is POST /subscribers/{id}/unsubscribe.
type withdrawBody struct {
	Topic  string `json:"topic"`
	Reason string `json:"reason"`
}

// handleWithdrawFor unsubscribes a person on their word, from one topic or
// from all: as their own unsubscribe, effective at once, with channel
// operator and the reason in the ledger.
func (s *Server) handleWithdrawFor(c *gin.Context) {
	var b withdrawBody
	if err := bindJSON(c, &b); err != nil {
		s.fail(c, err)
		return
	}
	changed, err := s.store.WithdrawFor(c.Request.Context(), actor(c), c.Param("id"), b.Topic, b.Reason)
	if err != nil {
		s.fail(c, err)
		return
	}
	sub, err := s.store.Subscriber(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	if changed == nil {
		changed = []string{}
	}
	c.JSON(http.StatusOK, gin.H{"subscriber": s.view(sub), "unsubscribed": changed})
}

// handlePreferenceLink mints a preference-center link for one subscriber,
// for an operator to send by SMS or read out on the phone.
func (s *Server) handlePreferenceLink(c *gin.Context) {
	link, expires, err := s.preferenceLink(c.Request.Context(), actor(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"url": link, "expires": expires})
}

// preferenceLink mints a preference-center link for subscriber id, valid
// for token.PreferencesTTL. The link is as powerful as a mailed one, so
// minting it is audited under a.
func (s *Server) preferenceLink(ctx context.Context, a consent.Actor, id string) (string, time.Time, error) {
	sub, err := s.store.Subscriber(ctx, id)
	if err != nil {
		return "", time.Time{}, err
	}
	expires := s.store.Now().Add(token.PreferencesTTL)
	tok, err := s.cfg.Tokens.Issue(token.Preferences, token.Claims{Subject: sub.ID, ExpiresAt: expires})
	if err != nil {
		return "", time.Time{}, err
	}
	if err := s.store.AuditRead(ctx, a, "subscriber.preference_link", sub.ID, 1); err != nil {
		return "", time.Time{}, err
	}
	return s.cfg.BaseURL + "/preferences/" + tok, expires, nil
}

// handleSubscriberErase erases a subscriber like the self-service erase: everything
// goes except the suppression hash and the ledger's erased event.
func (s *Server) handleSubscriberErase(c *gin.Context) {
	if err := s.store.EraseSubscriber(c.Request.Context(), actor(c), c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) handleStats(c *gin.Context) {
	days, err := statsDays(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	st, err := s.store.Stats(c.Request.Context(), s.cfg.DormantAfter, days)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, st)
}

// statsDays reads the days query parameter: how many days of daily
// counts to show, consent.StatsDays when absent.
func statsDays(c *gin.Context) (int, error) {
	q := c.Query("days")
	if q == "" {
		return consent.StatsDays, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < 1 || n > consent.MaxStatsDays {
		return 0, consent.Errorf(consent.EInvalid, "days must be a whole number from 1 to %d", consent.MaxStatsDays)
	}
	return n, nil
}

func (s *Server) handleAudit(c *gin.Context) {
	cursor, limit, err := pageParams(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	entries, next, err := s.store.Audit(c.Request.Context(), cursor, limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": entries, "next_cursor": next})
}

func (s *Server) handleAPIKeys(c *gin.Context) {
	keys, err := s.store.APIKeys(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": keys})
}

// apiKeyBody is POST /apikeys.
type apiKeyBody struct {
	Name string       `json:"name"`
	Role consent.Role `json:"role"`
}

// handleAPIKeyCreate makes a key and shows its secret, the only time it
// is shown.
func (s *Server) handleAPIKeyCreate(c *gin.Context) {
	var b apiKeyBody
	if err := bindJSON(c, &b); err != nil {
		s.fail(c, err)
		return
	}
	secret, info, err := s.store.NewAPIKey(c.Request.Context(), actor(c), b.Name, b.Role)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"key": secret, "info": info})
}

func (s *Server) handleAPIKeyRevoke(c *gin.Context) {
	if err := s.store.RevokeAPIKey(c.Request.Context(), actor(c), c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// handleSuppressions lists the suppression list, or one address's entries
// with ?email=.
func (s *Server) handleSuppressions(c *gin.Context) {
	cursor, limit, err := pageParams(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var addr *consent.Address
	if e := c.Query("email"); e != "" {
		a, err := consent.ParseAddress(e)
		if err != nil {
			s.fail(c, err)
			return
		}
		addr = &a
	}
	page, err := s.store.Suppressions(c.Request.Context(), addr, cursor, limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

// suppressionBody is POST /suppressions.
type suppressionBody struct {
	Email string `json:"email"`
	Topic string `json:"topic"`
	Note  string `json:"note"`
}

func (s *Server) handleSuppressionAdd(c *gin.Context) {
	var b suppressionBody
	if err := bindJSON(c, &b); err != nil {
		s.fail(c, err)
		return
	}
	sup, created, err := s.addSuppression(c.Request.Context(), actor(c), b)
	if err != nil {
		s.fail(c, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, sup)
}

// addSuppression validates b (an address, a note of at most 200
// characters on one line) and blocks the address for b.Topic ("" for
// every topic) under a; created is false when it was blocked already.
func (s *Server) addSuppression(ctx context.Context, a consent.Actor, b suppressionBody) (consent.Suppression, bool, error) {
	addr, err := consent.ParseAddress(b.Email)
	if err != nil {
		return consent.Suppression{}, false, err
	}
	if !consent.PlainText(b.Note, 200, false) {
		return consent.Suppression{}, false, consent.Errorf(consent.EInvalid, "note must be at most 200 characters without control characters")
	}
	return s.store.AddSuppression(ctx, a, addr, b.Topic, strings.TrimSpace(b.Note))
}

// handleSuppressionDelete removes operator-added suppressions of a hash,
// all scopes or ?scope= only.
func (s *Server) handleSuppressionDelete(c *gin.Context) {
	n, err := s.store.DeleteSuppression(c.Request.Context(), actor(c), c.Param("hash"), c.Query("scope"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"removed": n})
}
