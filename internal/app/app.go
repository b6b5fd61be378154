// Package app wires optin together: config, store, tokens, mail and HTTP.
// cmd/optin and the end-to-end tests both run the service through it.
package app

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"optin/internal/config"
	"optin/internal/consent"
	"optin/internal/faillog"
	"optin/internal/i18n"
	"optin/internal/inbound"
	"optin/internal/ledger"
	optmail "optin/internal/mail"
	"optin/internal/postgres"
	"optin/internal/token"
	"optin/internal/web"
	"optin/internal/webhook"
	"optin/templates"
)

// Options are what the caller supplies besides the config.
type Options struct {
	Config config.Config
	Log    *slog.Logger
	// Stdout receives the one-time admin key on first start.
	Stdout io.Writer
	// BootstrapKey, when set and the database is empty, becomes the first
	// admin API key (OPTIN_BOOTSTRAP_ADMIN_KEY).
	BootstrapKey string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// SMTPTLS overrides the SMTP client's TLS settings (tests).
	SMTPTLS *tls.Config
	// CampaignTick is how often the campaign runner works; default one
	// second (its rates are per second whatever the tick).
	CampaignTick time.Duration
}

// App is a configured optin service.
type App struct {
	cfg      config.Config
	log      *slog.Logger
	DB       consent.Store
	Tokens   *token.Issuer
	Worker   *optmail.Worker
	Webhooks *webhook.Worker
	Metrics  *web.Metrics
	Web      *web.Server
	// Heads signs the consent ledger's heads and publishes them.
	Heads *ledger.Heads
	// Inbound is the listener for bounces, complaints and mailto:
	// unsubscribes; nil unless mail.inbound.listen is set.
	Inbound    *inbound.Server
	returnPath *optmail.ReturnPath
	transport  optmail.Transport
	// campaignTick is Options.CampaignTick.
	campaignTick time.Duration
}

// Open opens the database, loads or creates the keys, bootstraps an empty
// database and builds the HTTP server and outbox worker.
func Open(o Options) (*App, error) {
	cfg := o.Config
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	// data_dir holds the admin socket and the file transport's mail
	// whatever the store.
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	var db consent.Store
	var keys []token.Key
	var progress openProgress
	err := reportSlow(log, openReportEvery, &progress, func() (err error) {
		db, keys, err = openStore(cfg, o.Now, false, false, progress.set)
		return err
	})
	if err != nil {
		return nil, err
	}
	tokens, err := token.NewIssuer(cfg.BaseURL, keys, o.Now)
	if err != nil {
		db.Close()
		return nil, err
	}
	a := &App{cfg: cfg, log: log, DB: db, Tokens: tokens, campaignTick: o.CampaignTick}
	if a.returnPath, err = returnPath(cfg, keys); err != nil {
		db.Close()
		return nil, err
	}
	if a.campaignTick <= 0 {
		a.campaignTick = time.Second
	}
	if a.Heads, err = newHeads(cfg, db, false, o.Now, log); err != nil {
		db.Close()
		return nil, err
	}
	if err := a.build(o); err != nil {
		db.Close()
		return nil, err
	}
	if err := a.bootstrap(o); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// openReportEvery is how often a slow open says it is still at work.
const openReportEvery = 15 * time.Second

// reportSlow runs open and, while it runs, logs every interval that the
// database is still opening, with how far the step in progress has come
// when the store reports it (progress): the first start after an upgrade
// converts the records or indexes of a bbolt database, which takes
// minutes for millions of subscribers, and a silent process looks hung
// to an operator who might then kill it (the conversion resumes, but
// starts its current chunk again). A slow open logs its duration when
// done.
func reportSlow(log *slog.Logger, interval time.Duration, progress *openProgress, open func() error) error {
	start := time.Now()
	opened := make(chan error, 1)
	go func() { opened <- open() }()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case err := <-opened:
			if took := time.Since(start); err == nil && took >= interval {
				log.Info("database open", "took", took.Round(time.Millisecond))
			}
			return err
		case <-t.C:
			attrs := []any{"elapsed", time.Since(start).Round(time.Second)}
			if at := progress.at.Load(); at != nil {
				attrs = append(attrs, "step", at.step, "records", at.done)
			}
			log.Info("still opening the database; the first start after an upgrade may convert it, which takes minutes for a large one: let it finish", attrs...)
		}
	}
}

// openProgress is how far the step of an open in progress has come, as
// the store reports it (bolt.Options.Progress) on the open's goroutine
// and reportSlow reads it on its own.
type openProgress struct {
	at atomic.Pointer[openStep]
}

// openStep is what a step of an open works on and how many records it
// has done.
type openStep struct {
	step string
	done int64
}

// set records the progress of the open's step.
func (p *openProgress) set(step string, done int64) { p.at.Store(&openStep{step: step, done: done}) }

// OpenStore opens the database of cfg on its own, for CLI commands that
// run while the service is stopped. It fails with bolt.ErrLocked while the
// service runs on bbolt.
func OpenStore(cfg config.Config) (consent.Store, error) {
	db, _, err := openStore(cfg, time.Now, false, true, nil)
	return db, err
}

func (a *App) build(o Options) error {
	cfg := a.cfg
	cat, err := i18n.Load(templates.FS, "locales")
	if err != nil {
		return err
	}
	renderer, err := optmail.NewRenderer(optmail.RendererConfig{Templates: templates.FS, Catalog: cat,
		Tokens: a.Tokens, BaseURL: cfg.BaseURL, From: cfg.Mail.From, Postal: cfg.Mail.PostalAddress, Brand: pageBrand(cfg),
		UnsubscribeTTL: time.Duration(cfg.Tokens.UnsubscribeTTL), UnsubscribeMailbox: unsubscribeMailbox(cfg), Now: o.Now})
	if err != nil {
		return err
	}
	signer, err := dkimSigner(cfg, o.Now)
	if err != nil {
		return err
	}
	switch cfg.Mail.Transport {
	case config.TransportSMTP:
		a.transport, err = newSMTPTransport(cfg.Mail.SMTP, o.SMTPTLS)
		if err != nil {
			return err
		}
	default:
		a.transport = &optmail.FileTransport{Dir: filepath.Join(cfg.DataDir, "mail"), Log: a.log}
	}
	a.Worker = &optmail.Worker{Outbox: a.DB, Renderer: renderer, Transport: a.transport, From: cfg.Mail.From,
		DKIM: signer, ReturnPath: a.returnPath, Log: a.log, Now: o.Now, Grace: time.Duration(cfg.ShutdownGrace)}
	a.Metrics = web.NewMetrics(a.DB)
	a.Worker.Metrics = a.Metrics
	a.Webhooks = &webhook.Worker{Store: a.DB, Log: a.log, Metrics: a.Metrics, Now: o.Now}
	wc := webConfig(cfg, a.DB, a.Tokens, cat, a.log, a.Worker, a.Metrics)
	wc.Ledger = a.Heads
	a.Web, err = web.New(wc)
	if err != nil || cfg.Mail.Inbound.Listen == "" {
		return err
	}
	// Bound last, so nothing after it can fail and leave it open.
	a.Inbound, err = inbound.Listen(inbound.Config{Addr: cfg.Mail.Inbound.Listen, ReturnPath: a.returnPath,
		Store: a.DB, Tokens: a.Tokens, SoftBounce: softBouncePolicy(cfg), Log: a.log})
	return err
}

// webConfig is the web server's configuration for cfg around store.
// outbox and metrics may be nil (the CLI's in-process handler has neither).
func webConfig(cfg config.Config, store consent.Store, tokens *token.Issuer, cat *i18n.Catalog, log *slog.Logger,
	outbox *optmail.Worker, metrics *web.Metrics) web.Config {
	from, _ := mail.ParseAddress(cfg.Mail.From) // validated by config
	sender := from.Name
	if sender == "" {
		sender = from.Address
	}
	wc := web.Config{Store: store, Tokens: tokens, Catalog: cat, Templates: templates.FS,
		Log: log, BaseURL: cfg.BaseURL, TrustedProxies: cfg.TrustedProxies,
		Sender: sender, PostalAddress: cfg.Mail.PostalAddress,
		SignupLimit:        web.Rate{N: cfg.Limits.SignupPerIP.N, Per: cfg.Limits.SignupPerIP.Per},
		ManageLimit:        web.Rate{N: cfg.Limits.ManagePerIP.N, Per: cfg.Limits.ManagePerIP.Per},
		DormantAfter:       time.Duration(cfg.Lifecycle.DormantAfter),
		SoftBounce:         softBouncePolicy(cfg),
		ConfirmBrake:       brake(cfg.Limits.Confirmations),
		CustomerActivities: customerActivities(cfg.Lifecycle.CustomerActivities),
		PreferenceChannels: cfg.PreferenceChannels(),
		PendingRetention:   time.Duration(cfg.Pending.Retention),
		OptedOutRetention:  time.Duration(cfg.Retention.OptedOut),
		Metrics:            metrics,
		Scanners: consent.ScannerPolicy{Window: time.Duration(cfg.Scanners.Window),
			Accept: cfg.Scanners.Suspected == config.SuspectedAccept},
		ScannerNetworks: cfg.Scanners.ScannerNetworks(),
	}
	wc.Brand = pageBrand(cfg)
	if cfg.Brand.LogoFile != "" {
		ct, data, err := cfg.Brand.Logo(cfg.DataDir)
		if err != nil { // config checked it at start: it changed since
			log.Error("brand logo file", "err", err)
		} else {
			wc.Logo = &web.Logo{Type: ct, Data: data}
		}
	}
	if outbox != nil {
		wc.Outbox = outbox
		wc.CampaignMail = &optmail.Sampler{Renderer: outbox.Renderer, Transport: outbox.Transport, From: cfg.Mail.From}
		wc.Ready = func(ctx context.Context) error {
			// A PostgreSQL store that a newer optin migrated while this
			// one ran writes nothing more (postgres.DB.SchemaMoved):
			// not ready, so a load balancer sends its traffic to the
			// instances of the new version. Nor is one whose database
			// does not answer (postgres.DB.Ping).
			if pg, ok := store.(*postgres.DB); ok {
				if err := pg.SchemaMoved(); err != nil {
					return err
				}
				if err := pg.Ping(ctx); err != nil {
					return err
				}
			}
			return outbox.Ready()
		}
		wc.RelayError = outbox.RelayError
		wc.Warnings = cfg.Warnings()
	}
	return wc
}

// pageBrand returns the brand pages and mails wear: brand.logo_file
// becomes its URL under base_url.
func pageBrand(cfg config.Config) consent.Brand {
	b := consent.Brand{SiteName: cfg.Brand.SiteName, LogoURL: cfg.Brand.LogoURL, AccentColor: cfg.Brand.AccentColor,
		BackURL: cfg.Brand.BackURL}
	if cfg.Brand.LogoFile != "" {
		b.LogoURL = cfg.BaseURL + web.LogoPath
	}
	return b
}

// newSMTPTransport returns the SMTP transport for s; tlsConf, when set,
// overrides the TLS client settings (tests).
func newSMTPTransport(s config.SMTP, tlsConf *tls.Config) (*optmail.SMTPTransport, error) {
	roots, err := s.RootCAs()
	if err != nil {
		return nil, err
	}
	return optmail.NewSMTPTransport(optmail.SMTPConfig{Host: s.Host, Port: s.Port, Username: s.Username,
		Password: s.Password, TLS: s.TLS, TLSConfig: tlsConf, RootCAs: roots, Helo: s.Helo})
}

// customerActivities turns lifecycle.customer_activities (validated by
// config) into activity kinds.
func customerActivities(kinds []string) []consent.ActivityKind {
	out := make([]consent.ActivityKind, len(kinds))
	for i, k := range kinds {
		out[i] = consent.ActivityKind(k)
	}
	return out
}

// brake turns the limits.confirmations rate into the web server's brake.
func brake(r config.Rate) web.Brake {
	if r.Off() {
		return web.Brake{Off: true}
	}
	return web.Brake{PerSecond: float64(r.N) / r.Per.Seconds(), Burst: r.N}
}

// bootstrap creates the news topic and the newsletter form on a database
// without topics and the first admin key on one without keys, printing the
// key once. Later starts with no key used yet say how to create one.
func (a *App) bootstrap(o Options) error {
	ctx := context.Background()
	key := o.BootstrapKey
	if key == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		key = "optin_" + base64.RawURLEncoding.EncodeToString(b)
	}
	created, err := bootstrapStore(ctx, a.DB, consent.HashAPIKey(key))
	if err != nil {
		return err
	}
	if !created {
		return a.hintKey(ctx)
	}
	a.log.Info("first start: created an admin API key")
	if o.BootstrapKey != "" && len(o.BootstrapKey) < 32 {
		// Automation chose the key; accept it, but say it is weak.
		a.log.Warn("OPTIN_BOOTSTRAP_ADMIN_KEY is shorter than 32 characters: create a random key with " +
			"'optin apikey create' and revoke this one")
	}
	if o.Stdout != nil && o.BootstrapKey == "" {
		fmt.Fprintf(o.Stdout, "\nAdmin API key (shown only this once; store it now):\n\n    %s\n\n", key)
	}
	return nil
}

// hintKey logs how to create an API key while none has ever been used:
// the one printed at first start may have been lost.
func (a *App) hintKey(ctx context.Context) error {
	keys, err := a.DB.APIKeys(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if !k.LastUsed.IsZero() {
			return nil
		}
	}
	a.log.Info("no API key has been used yet; if you have none, create one with " +
		"'optin apikey create --name NAME --role admin'")
	return nil
}

// EnsureDefaults creates the news topic and the newsletter form on a
// database that has no topic yet, as the first start of the service does,
// so that an import before the first start finds them.
func EnsureDefaults(ctx context.Context, db consent.CatalogStore) error {
	_, err := bootstrapStore(ctx, db, "")
	return err
}

// bootstrapStore creates the default topic and form on a database without
// topics and, when keyHash is not empty, the first admin key on one without
// API keys. It reports whether it created the key.
func bootstrapStore(ctx context.Context, db consent.CatalogStore, keyHash string) (bool, error) {
	topic := consent.Topic{ID: "news", Name: "Product news", Description: "News about our products, at most twice a month"}
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "", Wording: map[string]string{}, WordingVersion: 1}
	return db.Bootstrap(ctx, topic, form, keyHash)
}

// Serve runs the HTTP server on ln, the outbox worker, the webhook
// worker, the sweep and the campaign runner (on a store several instances
// share, those two on one instance at a time) until ctx is cancelled.
// Shutdown takes at most shutdown_grace (and what closing takes): the
// worker stops taking mails and HTTP stops taking requests at once, both
// let the work in progress finish within the grace, then cut off what is
// left (the mails stay queued), and the store is closed. Webhook
// deliveries in progress finish within their timeout.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := a.Web.HTTPServer()
	workerCtx, stopWorker := context.WithCancel(context.Background())
	if pg, ok := a.DB.(*postgres.DB); ok {
		go a.logSchemaMoved(workerCtx, pg)
	}
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		a.Worker.Run(workerCtx)
	}()
	hooksDone := make(chan struct{})
	go func() {
		defer close(hooksDone)
		a.Webhooks.Run(workerCtx)
	}()
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		a.lead(workerCtx, "sweep", a.sweep)
	}()
	campaignsDone := make(chan struct{})
	go func() {
		defer close(campaignsDone)
		a.lead(workerCtx, "campaigns", a.runCampaigns)
	}()
	headsDone := make(chan struct{})
	go func() {
		defer close(headsDone)
		a.lead(workerCtx, "ledger heads", func(ctx context.Context) { a.Heads.Run(ctx, headInterval) })
	}()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	inboundDone := make(chan struct{})
	go func() {
		defer close(inboundDone)
		if a.Inbound == nil {
			return
		}
		a.log.Info("inbound SMTP listening", "addr", a.Inbound.Addr().String())
		if err := a.Inbound.Serve(); err != nil {
			a.log.Error("inbound SMTP listener stopped", "err", err)
		}
	}()
	sock := a.serveSocket()
	a.log.Info("optin listening", "addr", ln.Addr().String(), "base_url", a.cfg.BaseURL, "mail", a.cfg.Mail.Transport,
		"store", a.cfg.Store)
	for _, w := range a.StartupWarnings() {
		a.log.Warn("startup warning: " + w)
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	stopWorker() // its grace runs alongside the HTTP server's
	shutdownCtx, cancel := context.WithTimeout(context.Background(), time.Duration(a.cfg.ShutdownGrace))
	defer cancel()
	if serr := srv.Shutdown(shutdownCtx); serr != nil {
		srv.Close() // cut off the requests that outlived the grace
		if err == nil {
			err = serr
		}
	}
	sock.shutdown(shutdownCtx)
	if a.Inbound != nil {
		_ = a.Inbound.Close()
	}
	<-inboundDone
	<-workerDone
	<-hooksDone
	<-sweepDone
	<-campaignsDone
	<-headsDone
	if cerr := a.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	a.log.Info("optin stopped")
	return err
}

// StartupWarnings returns the development defaults the configuration
// leaves in place on a public base_url (see config.Config.Warnings); Serve
// logs each once at start.
func (a *App) StartupWarnings() []string { return a.cfg.Warnings() }

// leader is a store that several instances share, which runs a task on
// one of them at a time (postgres.DB.Lead).
type leader interface {
	Lead(ctx context.Context, task string, fn func(ctx context.Context))
}

// lead runs the housekeeping task fn until ctx is done: on a store that
// several instances share, only while this instance leads task; on one
// of its own, all along.
func (a *App) lead(ctx context.Context, task string, fn func(ctx context.Context)) {
	if l, ok := a.DB.(leader); ok {
		l.Lead(ctx, task, fn)
		return
	}
	fn(ctx)
}

// sweep deletes expired double-opt-in requests (pending.retention after
// their link expired) and forgets people who opted out of everything
// (retention.opted_out after), once a minute after start and then hourly.
func (a *App) sweep(ctx context.Context) {
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := a.DB.SweepRequests(ctx, time.Duration(a.cfg.Pending.Retention))
		if err != nil && ctx.Err() == nil {
			a.log.Error("sweeping expired requests", "err", err)
		} else if n > 0 {
			a.log.Info("swept expired double-opt-in requests", "count", n)
		}
		n, err = a.DB.ForgetOptedOut(ctx, time.Duration(a.cfg.Retention.OptedOut))
		if err != nil && ctx.Err() == nil {
			a.log.Error("forgetting people who opted out", "err", err)
		} else if n > 0 {
			a.log.Info("forgot people who opted out longer than retention.opted_out", "count", n)
		}
		t.Reset(time.Hour)
	}
}

// runCampaigns is the reawaken campaign runner: every tick it records the
// campaign mail that went out, queues the next mails of running campaigns
// at their rate, and handles due reminders and deadlines (see
// bolt.CampaignStep). Without a postal address it queues nothing (CAN-SPAM,
// 15 U.S.C. 7704(a)(5)(A)(iii)).
func (a *App) runCampaigns(ctx context.Context) {
	policy := consent.CampaignPolicy{DormantAfter: time.Duration(a.cfg.Lifecycle.DormantAfter)}
	mayQueue := a.cfg.Mail.PostalAddress != ""
	t := time.NewTicker(a.campaignTick)
	defer t.Stop()
	stepLog := faillog.New(a.log, "campaign runner", time.Now) // monotonic (faillog)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		res, err := a.DB.CampaignStep(ctx, policy, a.campaignTick, mayQueue)
		if err == nil {
			stepLog.OK()
		} else if ctx.Err() == nil {
			stepLog.Failed(err)
		}
		if res.Queued > 0 {
			a.Worker.Notify()
		}
		if res.Lapsed > 0 {
			a.log.Info("campaign deadlines passed", "lapsed", res.Lapsed)
		}
	}
}

// Close closes the mail transport and the database.
func (a *App) Close() error {
	if a.Inbound != nil {
		_ = a.Inbound.Close()
	}
	return errors.Join(a.transport.Close(), a.DB.Close())
}

// Admin is the admin socket's handler served in-process over the database
// opened directly, for CLI commands run while the service is stopped: the
// CLI sends the same requests to it as to a running service's socket, so
// both go one code path.
type Admin struct {
	// Handler is web.Server.SocketHandler over the opened store.
	Handler http.Handler
	store   consent.Store
}

// OpenAdmin opens the database of cfg and the admin socket's handler on
// it. With readOnly it opens an existing database for reading only and
// writes nothing (not even secrets.json); otherwise it creates the
// defaults of a first start (the news topic and newsletter form) on a
// database that has none, so an import into a data_dir never served finds
// them. It fails with bolt.ErrLocked while the service runs on bbolt.
func OpenAdmin(cfg config.Config, readOnly bool) (*Admin, error) {
	db, keys, err := openStore(cfg, time.Now, readOnly, true, nil)
	if err != nil {
		return nil, err
	}
	heads, err := newHeads(cfg, db, readOnly, time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		db.Close()
		return nil, err
	}
	h, err := adminHandler(cfg, keys, db, heads, readOnly)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Admin{Handler: h, store: db}, nil
}

func adminHandler(cfg config.Config, keys []token.Key, db consent.Store, heads *ledger.Heads, readOnly bool) (http.Handler, error) {
	if !readOnly {
		if err := EnsureDefaults(context.Background(), db); err != nil {
			return nil, err
		}
	}
	tokens, err := token.NewIssuer(cfg.BaseURL, keys, time.Now)
	if err != nil {
		return nil, err
	}
	cat, err := i18n.Load(templates.FS, "locales")
	if err != nil {
		return nil, err
	}
	wc := webConfig(cfg, db, tokens, cat, slog.New(slog.DiscardHandler), nil, nil)
	wc.Ledger = heads
	srv, err := web.New(wc)
	if err != nil {
		return nil, err
	}
	return srv.SocketHandler(), nil
}

// Close closes the database.
func (a *Admin) Close() error { return a.store.Close() }

// logSchemaMoved logs once, at the moment it happens, that a newer
// optin migrated db's schema while this instance ran: from then on it
// writes, leases and sends nothing (postgres.DB.SchemaMoved), /readyz
// answers 503, and the operator must stop it.
func (a *App) logSchemaMoved(ctx context.Context, db *postgres.DB) {
	select {
	case <-ctx.Done():
	case <-db.SchemaMovedC():
		a.log.Error("a newer optin migrated the database: this instance writes, leases and sends nothing more and /readyz answers 503; stop it and run the newer version",
			"err", db.SchemaMoved())
	}
}
