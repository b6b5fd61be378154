// Package web is optin's HTTP surface: the public signup and link pages and
// the admin API, on gin. It is the only package that imports gin; a
// *gin.Context never leaves it.
package web

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
	"optin/internal/faillog"
	"optin/internal/i18n"
	"optin/internal/ledger"
	"optin/internal/scanner"
	"optin/internal/token"
)

// Notifier is told when a mail was queued; the outbox worker implements it.
type Notifier interface{ Notify() }

// Config configures a Server.
type Config struct {
	Store          consent.Store
	Tokens         *token.Issuer
	Catalog        *i18n.Catalog
	Templates      fs.FS // holds pages/*.html
	Outbox         Notifier
	Log            *slog.Logger
	BaseURL        string // without trailing slash
	TrustedProxies []string
	Sender         string // controller identity (privacy page, export)
	PostalAddress  string
	SignupLimit    Rate
	ManageLimit    Rate
	// SigninLimit caps failed console sign-ins per IP address; zero
	// means 10 in 15 minutes.
	SigninLimit Rate
	// ConfirmBrake caps how many signups per second may go on to queue
	// a confirmation mail, process-wide, each counted whether it queues one
	// or not; zero means 50 a second, 100 in a burst.
	ConfirmBrake Brake
	DormantAfter time.Duration
	// SoftBounce is when soft bounces a relay reports suppress an address.
	SoftBounce consent.SoftBouncePolicy
	// BodyTimeout is how long a request on a public route may take to
	// send its body, from when its headers are read; zero means 10 s.
	BodyTimeout time.Duration
	// PendingRetention and OptedOutRetention are pending.retention and
	// retention.opted_out, stated on the privacy page.
	PendingRetention, OptedOutRetention time.Duration
	// CustomerActivities are the activity kinds that make a customer;
	// nil means consent.DefaultCustomerActivities.
	CustomerActivities []consent.ActivityKind
	// PreferenceChannels are the optional channels the preference page
	// offers for each topic (preferences.channels).
	PreferenceChannels []consent.Channel
	// Metrics, when set, times every request and serves GET /metrics.
	Metrics *Metrics
	// Warnings are the startup warnings (development defaults left in
	// place), shown on the console's overview.
	Warnings []string
	// Ready reports whether the service can take traffic (for /readyz).
	Ready func(ctx context.Context) error
	// RelayError, when set, returns why the mail relay fails while it
	// does (nil while it takes mail), for the console's overview.
	RelayError func() error
	// Brand is how pages present the operator (checked by
	// consent.NewBrand); its site name defaults to Sender.
	Brand consent.Brand
	// Logo, when set, is served at /brand/logo.
	Logo *Logo
	// Scanners is the policy on clicks that look like a mail scanner's;
	// the zero value holds suspected ones, with a zero window.
	Scanners consent.ScannerPolicy
	// ScannerNetworks are scanner networks the operator adds to the
	// embedded list (scanner.Known).
	ScannerNetworks []netip.Prefix
	// Ledger signs the ledger's heads; nil when the server has no key
	// (GET /ledger/head and /ledger/key answer 404).
	Ledger *ledger.Heads
	// CampaignMail, when set, renders a campaign's mail for the
	// console's preview and sends its test copies.
	CampaignMail CampaignMail
}

// CampaignMail renders a reawaken campaign's mail as a sample person
// would get it, and sends a test copy to an address the operator types,
// recorded for no subscriber (mail.Sampler).
type CampaignMail interface {
	Sample(c *consent.Campaign, topic consent.Topic, locale string, basis consent.Basis) (subject, text, html string, err error)
	SendTest(ctx context.Context, c *consent.Campaign, topic consent.Topic, locale string, basis consent.Basis, to string) error
}

// Rate is a limit of N events per Per; N == 0 disables it.
type Rate struct {
	N   int
	Per time.Duration
}

// Server serves optin's HTTP routes.
type Server struct {
	cfg    Config
	store  consent.Store
	pages  map[string]*template.Template
	engine *gin.Engine
	origin string // scheme://host of BaseURL
	signup limiter
	manage limiter
	// signupNet and manageNet limit per subnet (/24, /64).
	signupNet limiter
	manageNet limiter
	brake     limiter
	originLog *originLog
	// unavailable logs the requests refused while the store is
	// unavailable: the first, then one line a minute with their count.
	unavailable *faillog.Log
	pow         *powGuard
	embedJS     []byte // body of embed.js, wrapped around each form's data
	embedCSS    []byte // embed.css, after each form's brand
	verifyJS    []byte // the receipt checker's script
	// The browser console (console.go).
	console map[string]*template.Template
	assets  map[string]consoleAsset
	signin  limiter // failed console sign-ins per IP
	// testSends caps a campaign's test sends per API key: the console
	// must not become a way to mail anyone anything.
	testSends limiter
	// scanners finds the known scanner network of a client address.
	scanners *scanner.List
}

// maxBody caps request bodies on public routes.
const maxBody = 64 << 10

// defaultBodyTimeout is Config.BodyTimeout's default: a signup's body is
// at most 64 KiB, so ten seconds is plenty even on a poor connection.
const defaultBodyTimeout = 10 * time.Second

// New builds the server and its routes.
func New(cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Brand.SiteName == "" {
		cfg.Brand.SiteName = cfg.Sender
	}
	if cfg.CustomerActivities == nil {
		cfg.CustomerActivities = consent.DefaultCustomerActivities
	}
	if cfg.Store == nil || cfg.Tokens == nil {
		return nil, errors.New("web: a store and a token issuer are required")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("web: base url: %w", err)
	}
	s := &Server{cfg: cfg, store: cfg.Store, origin: u.Scheme + "://" + u.Host,
		pages: map[string]*template.Template{}, signup: newLimiter(cfg.Store, "signup", cfg.SignupLimit), manage: newLimiter(cfg.Store, "manage", cfg.ManageLimit),
		originLog: newOriginLog(cfg.Log), testSends: newLimiter(cfg.Store, "test-send", Rate{N: 20, Per: time.Hour}),
		unavailable: faillog.NewWarn(cfg.Log, "request refused: the store is unavailable", time.Now)}
	if err := s.initAbuse(cfg); err != nil {
		return nil, err
	}
	extra := make([]scanner.Network, len(cfg.ScannerNetworks))
	for i, p := range cfg.ScannerNetworks {
		extra[i] = scanner.Network{Name: "scanners.networks", Prefix: p}
	}
	if s.scanners, err = scanner.Known(extra...); err != nil {
		return nil, err
	}
	if s.embedJS, err = fs.ReadFile(cfg.Templates, "embed/embed.js"); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	if s.embedCSS, err = fs.ReadFile(cfg.Templates, "embed/embed.css"); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	if s.verifyJS, err = fs.ReadFile(cfg.Templates, "pages/verify.js"); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	for _, name := range []string{"form", "message", "action", "unsubscribe", "preferences", "manage", "privacy", "verify"} {
		t, err := template.ParseFS(cfg.Templates, "pages/layout.html", "pages/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("web: %w", err)
		}
		s.pages[name] = t
	}
	if err := s.initConsole(cfg); err != nil {
		return nil, err
	}

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	var proxies []string
	if len(cfg.TrustedProxies) > 0 {
		proxies = cfg.TrustedProxies
	}
	if err := e.SetTrustedProxies(proxies); err != nil {
		return nil, fmt.Errorf("web: trusted proxies: %w", err)
	}
	e.HandleMethodNotAllowed = true
	if cfg.Metrics != nil {
		e.Use(cfg.Metrics.observe) // outermost: it also sees recovered panics
		e.GET("/metrics", gin.WrapH(cfg.Metrics.Handler()))
	}
	e.Use(s.recoverer(), s.securityHeaders)
	e.NoRoute(func(c *gin.Context) {
		if isConsole(c) {
			s.consoleNotFound(c)
			return
		}
		s.fail(c, consent.Errorf(consent.ENotFound, "not found"))
	})
	e.NoMethod(func(c *gin.Context) {
		writeJSONError(c, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
	})

	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.GET("/readyz", s.handleReady)

	bodyTimeout := cfg.BodyTimeout
	if bodyTimeout <= 0 {
		bodyTimeout = defaultBodyTimeout
	}
	pub := e.Group("/", limitBody(maxBody), readDeadline(bodyTimeout))
	pub.GET("/f/:form", s.handleFormPage)
	pub.HEAD("/f/:form", s.handleFormPage)
	pub.POST("/f/:form", s.handleSignup)
	pub.OPTIONS("/f/:form", s.handlePreflight)
	pub.GET("/f/:form/thanks", s.handleThanks)
	pub.GET("/f/:form/embed.js", s.handleEmbedJS)
	pub.GET("/f/:form/embed.css", s.handleEmbedCSS)
	pub.GET("/f/:form/challenge", s.handleChallenge)
	pub.GET("/privacy", s.handlePrivacy)
	pub.GET("/interaction.js", s.handleInteractionJS)
	pub.GET("/confirm/:token", s.handleConfirmPage)
	pub.POST("/confirm/:token", s.handleConfirm)
	pub.GET("/not-me/:token", s.handleNotMePage)
	pub.POST("/not-me/:token", s.handleNotMe)
	pub.GET("/unsubscribe/:token", s.handleUnsubscribePage)
	pub.POST("/unsubscribe/:token", s.handleUnsubscribe)
	pub.GET("/preferences/:token", s.handlePreferencesPage)
	pub.POST("/preferences/:token", s.handlePreferences)
	pub.GET("/preferences/:token/export", s.handleExport)
	pub.GET("/preferences/:token/receipt", s.handleReceipt)
	pub.GET("/preferences/:token/erase", s.handleErasePage)
	pub.POST("/preferences/:token/erase", s.handleErase)
	pub.GET("/reawaken/:token", s.handleReawakenPage)
	pub.POST("/reawaken/:token", s.handleReawaken)
	if cfg.Logo != nil {
		pub.GET(LogoPath, s.handleLogo)
	}
	pub.GET("/manage", s.handleManagePage)
	pub.POST("/manage", s.handleManage)
	pub.GET("/ledger/head", s.handleLedgerHead)
	pub.GET("/ledger/key", s.handleLedgerKey)
	pub.GET("/ledger/consistency", s.handleLedgerConsistency)
	pub.GET("/ledger/verify", s.handleVerifyPage)
	pub.GET("/ledger/verify.js", s.handleVerifyJS)

	s.registerAdmin(e.Group("/api/v1")) // body limits per route: imports may be large
	s.registerConsole(e)
	s.engine = e
	return s, nil
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.engine }

// HTTPServer returns an http.Server for the handler with timeouts set, so
// slow or stuck clients cannot hold connections forever.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.engine,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute, // backups and exports stream for a while
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(s.cfg.Log.Handler(), slog.LevelWarn),
	}
}

func (s *Server) handleReady(c *gin.Context) {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(c.Request.Context()); err != nil {
			writeJSONError(c, http.StatusServiceUnavailable, "not_ready", err.Error())
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// statusOf maps error codes to HTTP status: the one place that does.
func statusOf(code string) int {
	switch code {
	case consent.EInvalid, codeProofOfWork:
		return http.StatusBadRequest
	case consent.ENotFound:
		return http.StatusNotFound
	case consent.EConflict:
		return http.StatusConflict
	case consent.EExpired:
		return http.StatusGone
	case consent.ERateLimited:
		return http.StatusTooManyRequests
	case consent.EForbidden:
		return http.StatusForbidden
	case consent.EUnauthorized:
		return http.StatusUnauthorized
	case consent.EUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// fail answers err as JSON {"error":{"code","message"}} with the status of
// its code; internal errors are logged and shown only as "internal error".
func (s *Server) fail(c *gin.Context, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) { // the client's doing, not ours: no error log
		writeJSONError(c, http.StatusRequestEntityTooLarge, "too_large", "request body too large")
		return
	}
	code := consent.ErrorCode(err)
	switch code {
	case consent.EInternal:
		s.cfg.Log.Error("request failed", "method", c.Request.Method, "route", c.FullPath(), "err", err)
	case consent.EUnavailable:
		s.unavailable.Failed(err, "method", c.Request.Method, "route", c.FullPath())
		c.Header("Retry-After", "5")
	}
	writeJSONError(c, statusOf(code), code, consent.ErrorMessage(err))
}

func writeJSONError(c *gin.Context, status int, code, msg string) {
	c.AbortWithStatusJSON(status, gin.H{"error": gin.H{"code": code, "message": msg}})
}

func (s *Server) recoverer() gin.HandlerFunc {
	return gin.CustomRecovery(func(c *gin.Context, rec any) {
		s.cfg.Log.Error("panic in handler", "route", c.FullPath(), "panic", fmt.Sprint(rec))
		writeJSONError(c, http.StatusInternalServerError, consent.EInternal, "internal error")
	})
}

// securityHeaders sets headers every response carries. Pages that may be
// framed (the hosted form) override frame-ancestors; the console, which
// loads its own style sheet and script, has its own policy.
func (s *Server) securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: under no-referrer a browser sends
	// "Origin: null" with the hosted form's own POST, which the origin
	// check must refuse. Other sites still get no Referer.
	h.Set("Referrer-Policy", "same-origin")
	if isConsole(c) {
		h.Set("Content-Security-Policy", consoleCSP)
	} else {
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	}
	c.Next()
}

func limitBody(n int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.Body != nil {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
		}
		c.Next()
	}
}

// readDeadline gives a request d to finish sending its body, instead of
// the server's ReadTimeout (kept long for the admin API's uploads): a slow
// client cannot hold a connection and a handler on a public route for
// long. A handler still running when the deadline passes may see its
// request's context end, as under ReadTimeout.
func readDeadline(d time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		// Every writer net/http hands gin supports it; another would keep
		// the server's ReadTimeout.
		_ = http.NewResponseController(c.Writer).SetReadDeadline(time.Now().Add(d))
		c.Next()
	}
}

// clientIP returns the client address; forwarded headers count only when
// they come from a configured trusted proxy.
func clientIP(c *gin.Context) string {
	ip := c.ClientIP()
	if net.ParseIP(ip) == nil {
		return ""
	}
	return ip
}

// userAgent returns the request's User-Agent, cut to 512 bytes.
func userAgent(c *gin.Context) string {
	ua := c.Request.UserAgent()
	if len(ua) > 512 {
		ua = ua[:512]
	}
	return strings.ToValidUTF8(ua, "")
}
