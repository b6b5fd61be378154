package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
	"optin/internal/i18n"
)

// consoleCSP is the Content-Security-Policy of every response under
// /admin: scripts and styles only from optin's own files (nothing inline),
// never framed, forms post only to optin.
const consoleCSP = "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

// Console sessions end after consoleIdle without a request, and
// consoleMaxAge after the sign-in however busy they are.
const (
	consoleIdle   = 30 * time.Minute
	consoleMaxAge = 12 * time.Hour
	// touchSessionEvery spares a durable write on most requests: the idle
	// end moves only when it is this much behind.
	touchSessionEvery = time.Minute
)

// consoleCookie names the session cookie. Over https it carries the
// __Host- prefix, which makes the browser insist on Secure, Path=/ and no
// Domain (RFC 6265bis section 4.1.3.2).
const (
	consoleCookie       = "optin_console"
	consoleCookieSecure = "__Host-optin_console"
)

// Context keys of a console request, besides ctxKey (the API key): the
// session, and the multipart reader of an upload, past its csrf field.
const (
	ctxConsole = "optin.console"
	ctxUpload  = "optin.upload"
)

// consoleAuth is the signed-in session of a console request.
type consoleAuth struct {
	idHash string
	csrf   string
}

// consoleUser is who is signed in, and what their key's role lets the
// console show. It takes the admin API's role sets, so both always agree.
type consoleUser struct {
	Name   string
	Role   consent.Role
	Market bool // rolesMarket: subscriber writes, exports
	Admin  bool // rolesAdmin
}

// consoleData is what every console template gets; P holds the page's
// own data.
type consoleData struct {
	L     i18n.Localizer
	Title string
	Nav   string // the current navigation entry
	User  *consoleUser
	CSRF  string
	CSS   string
	JS    string
	// Notice is a line at the top of the page; Error marks it as one.
	Notice string
	Error  bool
	P      any
}

// consoleAsset is a file under templates/console/assets, served with a
// URL that changes with its content, so browsers may keep it.
type consoleAsset struct {
	body        []byte
	contentType string
	url         string
}

// initConsole parses the console's templates and loads its assets.
func (s *Server) initConsole(cfg Config) error {
	s.console = map[string]*template.Template{}
	for _, name := range []string{"login", "dashboard", "error", "subscribers", "person", "receipt", "import", "topics", "forms", "form", "suppressions", "audit", "keys", "campaigns", "campaign_new", "campaign", "campaign_audience", "campaign_mail", "assessments"} {
		t, err := template.New(name).Funcs(consoleFuncs()).ParseFS(cfg.Templates, "console/layout.html", "console/parts.html",
			"console/"+name+".html")
		if err != nil {
			return fmt.Errorf("web: %w", err)
		}
		s.console[name] = t
	}
	s.assets = map[string]consoleAsset{}
	for name, ct := range map[string]string{"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"} {
		b, err := fs.ReadFile(cfg.Templates, "console/assets/"+name)
		if err != nil {
			return fmt.Errorf("web: %w", err)
		}
		sum := sha256.Sum256(b)
		s.assets[name] = consoleAsset{body: b, contentType: ct, url: "/admin/assets/" + name + "?v=" + hex.EncodeToString(sum[:6])}
	}
	limit := cfg.SigninLimit
	if limit.N == 0 {
		// By default an IP address may fail 10 sign-ins in 15 minutes;
		// each refused attempt spends one.
		limit = Rate{N: 10, Per: 15 * time.Minute}
	}
	s.signin = newLimiter(cfg.Store, "signin", limit)
	return nil
}

// registerConsole adds the console's routes under /admin. Everything but
// the sign-in page and the static files needs a session; every POST passes
// consoleCSRF.
func (s *Server) registerConsole(e *gin.Engine) {
	g := e.Group("/admin", adminBodyLimit)
	g.GET("/assets/:name", s.handleConsoleAsset)
	g.GET("/login", s.handleLoginPage)
	g.POST("/login", s.consoleCSRF, s.handleLogin)

	a := g.Group("", s.consoleSession, s.consoleCSRF)
	read, market, admin := s.allowPage(rolesRead...), s.allowPage(rolesMarket...), s.allowPage(rolesAdmin...)
	a.GET("", read, s.handleConsoleDashboard)
	a.POST("/logout", s.handleLogout)
	a.GET("/subscribers", read, s.handleConsoleSubscribers)
	a.POST("/subscribers", read, s.handleConsoleSubscribers)
	a.POST("/subscribers/export", market, s.handleConsoleExport)
	a.GET("/subscribers/:id", read, s.handleConsolePerson)
	a.GET("/subscribers/:id/receipt", read, s.handleConsoleReceipt)
	a.GET("/subscribers/:id/receipt.json", read, s.handleSubscriberReceipt)
	a.GET("/subscribers/:id/export", read, s.handleConsolePersonExport)
	a.POST("/subscribers/:id/activity", market, s.handleConsoleActivity)
	a.POST("/subscribers/:id/rectify", market, s.handleConsoleRectify)
	a.POST("/subscribers/:id/unsubscribe", market, s.handleConsoleWithdraw)
	a.POST("/subscribers/:id/preference-link", market, s.handleConsolePreferenceLink)
	a.POST("/subscribers/:id/erase", market, s.handleConsoleErase)
	a.GET("/imports", market, s.handleConsoleImportPage)
	a.POST("/imports", market, s.handleConsoleImport)
	a.GET("/topics", read, s.handleConsoleTopics)
	a.POST("/topics", admin, s.handleConsoleTopicSave)
	a.POST("/topics/:id", admin, s.handleConsoleTopicSave)
	a.GET("/forms", read, s.handleConsoleForms)
	a.GET("/forms/new", admin, s.handleConsoleFormNew)
	a.POST("/forms", admin, s.handleConsoleFormSave)
	a.GET("/forms/:id", read, s.handleConsoleForm)
	a.POST("/forms/:id", admin, s.handleConsoleFormSave)
	a.GET("/suppressions", read, s.handleConsoleSuppressions)
	a.POST("/suppressions/find", read, s.handleConsoleSuppressionFind)
	a.POST("/suppressions", admin, s.handleConsoleSuppressionAdd)
	a.POST("/suppressions/:hash/delete", admin, s.handleConsoleSuppressionDelete)
	a.GET("/assessments", read, s.handleConsoleAssessments)
	a.POST("/assessments", admin, s.handleConsoleAssessmentCreate)
	a.GET("/audit", read, s.handleConsoleAudit)
	a.GET("/keys", admin, s.handleConsoleKeys)
	a.POST("/keys", admin, s.handleConsoleKeyCreate)
	a.POST("/keys/:id/revoke", admin, s.handleConsoleKeyRevoke)
	a.GET("/campaigns", read, s.handleConsoleCampaigns)
	a.GET("/campaigns/new", market, s.handleConsoleCampaignNew)
	a.POST("/campaigns", market, s.handleConsoleCampaignCreate)
	a.GET("/campaigns/:id", read, s.handleConsoleCampaign)
	a.POST("/campaigns/:id/preview", market, s.handleConsoleCampaignPreview)
	a.GET("/campaigns/:id/audience", market, s.handleConsoleCampaignAudience)
	a.GET("/campaigns/:id/mail", read, s.handleConsoleCampaignMail)
	a.POST("/campaigns/:id/test", market, s.handleConsoleCampaignTest)
	a.POST("/campaigns/:id/start", market, s.handleConsoleCampaignStart)
	a.POST("/campaigns/:id/pause", market, s.handleConsoleCampaignChange(s.store.PauseCampaign, "paused"))
	a.POST("/campaigns/:id/cancel", market, s.handleConsoleCampaignChange(s.store.CancelCampaign, "cancelled"))
}

// isConsole reports whether the request is for a console path.
func isConsole(c *gin.Context) bool {
	p := c.Request.URL.Path
	return p == "/admin" || strings.HasPrefix(p, "/admin/")
}

// consoleNotFound answers an unknown path under /admin: the sign-in page
// without a session (so the paths that exist are no secret), else a 404
// page.
func (s *Server) consoleNotFound(c *gin.Context) {
	if !s.consoleSignedIn(c) {
		return
	}
	s.consoleFail(c, consent.Errorf(consent.ENotFound, "not found"))
}

func (s *Server) handleConsoleAsset(c *gin.Context) {
	a, ok := s.assets[c.Param("name")]
	if !ok {
		s.consoleNotFound(c)
		return
	}
	c.Header("Cache-Control", "public, max-age=86400")
	c.Data(http.StatusOK, a.contentType, a.body)
}

// cookieName is the session cookie's name for this server's base URL.
func (s *Server) cookieName() string {
	if s.secure() {
		return consoleCookieSecure
	}
	return consoleCookie
}

// secure reports whether optin is served over https.
func (s *Server) secure() bool { return strings.HasPrefix(s.origin, "https://") }

// setSessionCookie sets (or, with an empty id, clears) the session cookie:
// HttpOnly, SameSite=Strict, and Secure with the __Host- prefix over
// https; Path /admin over plain http, where the prefix is not allowed.
func (s *Server) setSessionCookie(c *gin.Context, id string, maxAge time.Duration) {
	ck := &http.Cookie{Name: s.cookieName(), Value: id, Path: "/admin", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		MaxAge: int(maxAge / time.Second)}
	if s.secure() {
		ck.Path, ck.Secure = "/", true
	}
	if id == "" {
		ck.MaxAge = -1
	}
	http.SetCookie(c.Writer, ck)
}

// csrfToken derives the CSRF token of a session from its id: only the
// holder of the cookie can know it, and it cannot be turned back into
// the id.
func csrfToken(sessionID string) string {
	m := hmac.New(sha256.New, []byte(sessionID))
	m.Write([]byte("optin console csrf"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// session resolves the session cookie: the live session and its API key,
// still valid. A session whose key was revoked is deleted at once. Without
// a cookie the error is EUnauthorized; with one that names no live
// session, ENotFound.
func (s *Server) session(c *gin.Context) (consent.APIKey, consent.Session, error) {
	ctx := c.Request.Context()
	id, err := c.Cookie(s.cookieName())
	if err != nil || id == "" {
		return consent.APIKey{}, consent.Session{}, consent.Errorf(consent.EUnauthorized, "not signed in")
	}
	if len(id) > 100 {
		return consent.APIKey{}, consent.Session{}, consent.Errorf(consent.ENotFound, "no such session")
	}
	sess, err := s.store.Session(ctx, consent.HashSessionID(id))
	if err != nil {
		return consent.APIKey{}, consent.Session{}, err
	}
	key, err := s.store.APIKey(ctx, sess.KeyHash)
	if consent.ErrorCode(err) == consent.EUnauthorized {
		if err := s.store.DeleteSession(ctx, sess.IDHash); err != nil {
			return consent.APIKey{}, consent.Session{}, err
		}
		return consent.APIKey{}, consent.Session{}, consent.Errorf(consent.ENotFound, "the session's API key was revoked")
	}
	if err != nil {
		return consent.APIKey{}, consent.Session{}, err
	}
	return key, sess, nil
}

// consoleSignedIn resolves the session and puts the key and the session
// in the request's context. Without a live session it redirects (303) to
// the sign-in page, saying so when a session has ended, and returns false.
func (s *Server) consoleSignedIn(c *gin.Context) bool {
	key, sess, err := s.session(c)
	switch consent.ErrorCode(err) {
	case "":
	case consent.EUnauthorized:
		c.Redirect(http.StatusSeeOther, "/admin/login")
		c.Abort()
		return false
	case consent.ENotFound:
		s.setSessionCookie(c, "", 0)
		c.Redirect(http.StatusSeeOther, "/admin/login?ended=1")
		c.Abort()
		return false
	default:
		s.consoleFail(c, err)
		return false
	}
	ctx := c.Request.Context()
	if err := s.store.TouchAPIKey(ctx, key); err != nil {
		s.cfg.Log.Warn("recording API key use", "key", key.Name, "err", err)
	}
	now := s.store.Now()
	if until := now.Add(consoleIdle); until.Sub(sess.IdleUntil) >= touchSessionEvery && sess.IdleUntil.Before(sess.Expires) {
		if err := s.store.TouchSession(ctx, sess.IDHash, until); err != nil {
			s.cfg.Log.Warn("keeping a console session alive", "err", err)
		}
	}
	id, _ := c.Cookie(s.cookieName())
	c.Set(ctxKey, key)
	c.Set(ctxConsole, consoleAuth{idHash: sess.IDHash, csrf: csrfToken(id)})
	return true
}

// consoleSession is the middleware form of consoleSignedIn.
func (s *Server) consoleSession(c *gin.Context) {
	if s.consoleSignedIn(c) {
		c.Next()
	}
}

// consoleCSRF refuses a console POST that another site could have made:
// one whose Origin is not optin's own, and, once signed in, one without
// the session's CSRF token in its csrf field. The refusal changes nothing.
func (s *Server) consoleCSRF(c *gin.Context) {
	if c.Request.Method != http.MethodPost {
		c.Next()
		return
	}
	if o := c.GetHeader("Origin"); o != "" && o != s.origin {
		s.consoleFail(c, keyed(consent.Errorf(consent.EForbidden, "cross-site request"), "console.error.csrf"))
		return
	}
	if v, ok := c.Get(ctxConsole); ok {
		want := v.(consoleAuth).csrf
		if got := s.csrfField(c); subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			s.consoleFail(c, keyed(consent.Errorf(consent.EForbidden, "missing or wrong CSRF token"), "console.error.csrf"))
			return
		}
	}
	c.Next()
}

// csrfField returns the csrf field of a console POST. A multipart body
// (an upload) is not parsed ahead: its first part must be the csrf field,
// and the reader, past it, goes into the request's context for the
// handler to stream the rest, so a large file is read only once the token
// is known good.
func (s *Server) csrfField(c *gin.Context) string {
	if c.ContentType() != "multipart/form-data" {
		return c.PostForm("csrf")
	}
	mr, err := c.Request.MultipartReader()
	if err != nil {
		return ""
	}
	part, err := mr.NextPart()
	if err != nil || part.FormName() != "csrf" {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(part, 100))
	if err != nil {
		return ""
	}
	c.Set(ctxUpload, mr)
	return string(b)
}

// allowPage is allow for console pages: a role that may not gets a 403
// page instead of a JSON error.
func (s *Server) allowPage(roles ...consent.Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !permitted(c, roles) {
			s.consolePage(c, http.StatusForbidden, "error", s.consoleBase(c, "console.forbidden.title", ""),
				s.localizer(c).T("console.forbidden.message"))
			return
		}
		c.Next()
	}
}

// permitted reports whether the request's API key has one of roles.
func permitted(c *gin.Context, roles []consent.Role) bool {
	return slices.Contains(roles, c.MustGet(ctxKey).(consent.APIKey).Role)
}

// consoleBase returns the data every console page starts from.
func (s *Server) consoleBase(c *gin.Context, titleKey, nav string) consoleData {
	l := s.localizer(c)
	d := consoleData{L: l, Title: l.T(titleKey), Nav: nav, CSS: s.assets["console.css"].url, JS: s.assets["console.js"].url}
	if v, ok := c.Get(ctxKey); ok {
		key := v.(consent.APIKey)
		d.User = &consoleUser{Name: key.Name, Role: key.Role, Market: permitted(c, rolesMarket), Admin: permitted(c, rolesAdmin)}
	}
	if v, ok := c.Get(ctxConsole); ok {
		d.CSRF = v.(consoleAuth).csrf
	}
	return d
}

// consolePage renders console page name with status; notice, when set,
// is shown at the top as an error.
func (s *Server) consolePage(c *gin.Context, status int, name string, d consoleData, notice ...string) {
	if len(notice) > 0 {
		d.Notice, d.Error = notice[0], true
	}
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(status)
	if err := s.console[name].ExecuteTemplate(c.Writer, "layout", d); err != nil {
		s.cfg.Log.Error("rendering console page", "page", name, "err", err)
	}
	c.Abort()
}

// consoleFail renders err as a console error page with the status of its
// code; internal errors are logged and shown only as such.
func (s *Server) consoleFail(c *gin.Context, err error) {
	status := errorStatus(err)
	if status == http.StatusInternalServerError {
		s.cfg.Log.Error("console request failed", "method", c.Request.Method, "route", c.FullPath(), "err", err)
	}
	d := s.consoleBase(c, "console.error.title", "")
	s.consolePage(c, status, "error", d, messageFor(d.L, err, "console.error."))
}

// handleLoginPage shows the sign-in form, or goes to the console when a
// session is live.
func (s *Server) handleLoginPage(c *gin.Context) {
	if _, _, err := s.session(c); err == nil {
		c.Redirect(http.StatusSeeOther, "/admin")
		return
	}
	d := s.consoleBase(c, "console.login.title", "")
	switch {
	case c.Query("ended") != "":
		d.Notice = d.L.T("console.login.ended")
	case c.Query("out") != "":
		d.Notice = d.L.T("console.login.signed_out")
	}
	s.consolePage(c, http.StatusOK, "login", d)
}

// handleLogin signs in with an API key (field key) and starts a session.
// Failed attempts are logged without the key and limited per IP address;
// once an address has spent its attempts, even a right key is refused
// until they refill.
func (s *Server) handleLogin(c *gin.Context) {
	ip := clientIP(c)
	spent, wait, err := s.signin.spent(c.Request.Context(), ip, time.Now())
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	if spent {
		retryAfter(c, wait)
		s.cfg.Log.Warn("console sign-in refused: too many failures", "ip", ip)
		s.consolePage(c, http.StatusTooManyRequests, "login", s.consoleBase(c, "console.login.title", ""),
			s.localizer(c).T("console.login.limited"))
		return
	}
	secret := strings.TrimSpace(c.PostForm("key"))
	var key consent.APIKey
	err = consent.Errorf(consent.EUnauthorized, "no key")
	if secret != "" && len(secret) <= 200 {
		key, err = s.store.APIKey(c.Request.Context(), consent.HashAPIKey(secret))
	}
	if consent.ErrorCode(err) == consent.EUnauthorized {
		if _, _, err := s.signin.allow(c.Request.Context(), ip, time.Now()); err != nil {
			s.consoleFail(c, err)
			return
		}
		s.cfg.Log.Warn("console sign-in failed", "ip", ip)
		s.consolePage(c, http.StatusUnauthorized, "login", s.consoleBase(c, "console.login.title", ""),
			s.localizer(c).T("console.login.invalid"))
		return
	}
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	ctx := c.Request.Context()
	if _, old, err := s.session(c); err == nil {
		if err := s.store.DeleteSession(ctx, old.IDHash); err != nil {
			s.consoleFail(c, err)
			return
		}
	}
	id := rand.Text() + rand.Text() // 2 x 128 random bits
	now := s.store.Now()
	sess := consent.Session{IDHash: consent.HashSessionID(id), KeyHash: key.Hash, Created: now,
		IdleUntil: now.Add(consoleIdle), Expires: now.Add(consoleMaxAge)}
	if err := s.store.CreateSession(ctx, consent.ActorOf(key), sess); err != nil {
		s.consoleFail(c, err)
		return
	}
	s.cfg.Log.Info("console sign-in", "key", key.Name, "ip", ip)
	s.setSessionCookie(c, id, consoleMaxAge)
	c.Redirect(http.StatusSeeOther, "/admin")
}

// handleLogout ends the session and clears the cookie.
func (s *Server) handleLogout(c *gin.Context) {
	auth := c.MustGet(ctxConsole).(consoleAuth)
	if err := s.store.DeleteSession(c.Request.Context(), auth.idHash); err != nil {
		s.consoleFail(c, err)
		return
	}
	s.setSessionCookie(c, "", 0)
	c.Redirect(http.StatusSeeOther, "/admin/login?out=1")
}

// statuses are the subscription statuses in the order the console lists
// them.
func statuses() []consent.Status {
	return []consent.Status{consent.StatusPending, consent.StatusConfirmed, consent.StatusUnsubscribed, consent.StatusLapsed}
}

// lifecycles are the lifecycle stages in the order the console lists them.
func lifecycles() []consent.Lifecycle {
	return []consent.Lifecycle{consent.LifecycleProspect, consent.LifecycleCustomer, consent.LifecycleDormant}
}

// topicNames maps topic ids to the names the operator gave them.
type topicNames map[string]string

// topicNames returns the store's topics and their names.
func (s *Server) topicNames(ctx context.Context) ([]consent.Topic, topicNames, error) {
	topics, err := s.store.Topics(ctx)
	names := topicNames{}
	for _, t := range topics {
		names[t.ID] = t.Name
	}
	return topics, names, err
}

// name returns topic id's name, or the id of a topic that is gone.
func (n topicNames) name(id string) string {
	if name := n[id]; name != "" {
		return name
	}
	return id
}

// consoleFuncs returns the functions console templates may call.
func consoleFuncs() template.FuncMap {
	return template.FuncMap{"day": formatDay, "when": formatTime, "has": slices.Contains[[]string]}
}

// formatDay shows a stored time's UTC date; nothing for the zero time.
func formatDay(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02")
}

// formatTime shows a stored time to the millisecond, as the ledger keeps
// it, in UTC; nothing for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05.000 UTC")
}
