package web

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"optin/internal/bolt"
	"optin/internal/consent"
	"optin/internal/i18n"
	"optin/internal/testclock"
	"optin/internal/token"
	"optin/internal/transfer"
	"optin/templates"
)

// consoleEnv is the service's HTTP surface on a loopback port over a real
// bbolt file, with a test clock, one API key per role and the log kept.
type consoleEnv struct {
	t      *testing.T
	db     *bolt.DB
	srv    *Server
	clock  *testclock.Clock
	url    string
	keys   map[consent.Role]string
	log    *lockedBuffer
	en     i18n.Localizer
	tokens *token.Issuer
}

// lockedBuffer is a bytes.Buffer the server's goroutines may write to
// while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const consoleTestKey = "console-test-admin-key-0123456789abcdef"

// newConsoleEnv starts the server; tweak may change its config.
func newConsoleEnv(t *testing.T, tweak func(*Config)) *consoleEnv {
	t.Helper()
	clk := testclock.At(time.Date(2030, 3, 4, 10, 0, 0, 0, time.UTC))
	db := openTestDB(t, clk.Now)
	ctx := context.Background()
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Wording: map[string]string{}, WordingVersion: 1}
	if _, err := db.Bootstrap(ctx, consent.Topic{ID: "news", Name: "Product news"}, form, consent.HashAPIKey(consoleTestKey)); err != nil {
		t.Fatal(err)
	}
	keys := map[consent.Role]string{consent.RoleAdmin: consoleTestKey}
	for _, r := range []consent.Role{consent.RoleMarketer, consent.RoleViewer} {
		secret, _, err := db.NewAPIKey(ctx, consent.CLIActor(), "key-"+string(r), r)
		if err != nil {
			t.Fatal(err)
		}
		keys[r] = secret
	}
	cat, err := i18n.Load(templates.FS, "locales")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	tokens, err := token.NewIssuer(base, []token.Key{{ID: "k1", Secret: bytes.Repeat([]byte{'t'}, 32)}}, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	cfg := Config{Store: db, Tokens: tokens, Catalog: cat, Templates: templates.FS, BaseURL: base, Sender: "Example Ltd",
		Log: slog.New(slog.NewTextHandler(logs, nil)), DormantAfter: 365 * 24 * time.Hour}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = s.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return &consoleEnv{t: t, db: db, srv: s, clock: clk, url: base, keys: keys, log: logs, en: cat.For("en"), tokens: tokens}
}

// consoleClient is one browser: its own cookies, no redirects followed.
type consoleClient struct {
	env *consoleEnv
	c   *http.Client
}

func (e *consoleEnv) client() *consoleClient {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	// The timeout is a safety net against a hung handler, not a limit
	// under test: under -race on a loaded machine a large import takes
	// well over ten seconds (TestConsoleImport's 1500 rows did).
	return &consoleClient{env: e, c: &http.Client{Jar: jar, Timeout: 2 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// consoleResponse is an answer with its body read.
type consoleResponse struct {
	status int
	header http.Header
	body   string
}

// do sends a request, with form as its urlencoded body when not nil;
// header holds name, value pairs.
func (cl *consoleClient) do(method, path string, form url.Values, header ...string) consoleResponse {
	cl.env.t.Helper()
	if form == nil {
		return cl.send(method, path, nil, header...)
	}
	return cl.send(method, path, strings.NewReader(form.Encode()),
		append([]string{"Content-Type", "application/x-www-form-urlencoded"}, header...)...)
}

// send sends a request with body; header holds name, value pairs.
func (cl *consoleClient) send(method, path string, body io.Reader, header ...string) consoleResponse {
	cl.env.t.Helper()
	req, err := http.NewRequest(method, cl.env.url+path, body)
	if err != nil {
		cl.env.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := cl.c.Do(req)
	if err != nil {
		cl.env.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		cl.env.t.Fatal(err)
	}
	return consoleResponse{res.StatusCode, res.Header, string(b)}
}

// signIn signs in with the key of role and returns the client.
func (e *consoleEnv) signIn(role consent.Role) *consoleClient {
	e.t.Helper()
	cl := e.client()
	if r := cl.do("POST", "/admin/login", url.Values{"key": {e.keys[role]}}); r.status != http.StatusSeeOther || r.header.Get("Location") != "/admin" {
		e.t.Fatalf("sign-in as %s: got %d to %q, want 303 to /admin\n%s", role, r.status, r.header.Get("Location"), r.body)
	}
	return cl
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token from a console page the client loads.
func (cl *consoleClient) csrf() string {
	cl.env.t.Helper()
	r := cl.do("GET", "/admin", nil)
	m := csrfField.FindStringSubmatch(r.body)
	if r.status != http.StatusOK || m == nil {
		cl.env.t.Fatalf("no CSRF token on /admin: %d\n%s", r.status, r.body)
	}
	return m[1]
}

// wantLogin checks that r sends the browser to the sign-in page.
func wantLogin(t *testing.T, what string, r consoleResponse, location string) {
	t.Helper()
	if r.status != http.StatusSeeOther || r.header.Get("Location") != location {
		t.Errorf("%s: got %d to %q, want 303 to %s", what, r.status, r.header.Get("Location"), location)
	}
}

// TestConsoleSignIn signs in with a key and out again: unauthenticated
// requests go to the sign-in page, a wrong key is refused and logged
// without the key, the session cookie has the safe attributes, the
// session is stored only as a hash and the sign-in is audited, every
// console answer carries the console's CSP, and signing out ends it.
func TestConsoleSignIn(t *testing.T) {
	e := newConsoleEnv(t, nil)
	cl := e.client()
	for _, p := range []string{"/admin", "/admin/", "/admin/no-such-page", "/admin/subscribers"} {
		r := cl.do("GET", p, nil)
		if p == "/admin/" { // gin's trailing-slash redirect comes first
			if r.status != http.StatusMovedPermanently || r.header.Get("Location") != "/admin" {
				t.Errorf("GET /admin/: got %d to %q", r.status, r.header.Get("Location"))
			}
			continue
		}
		wantLogin(t, "GET "+p+" signed out", r, "/admin/login")
	}
	wantLogin(t, "POST /admin/logout signed out", cl.do("POST", "/admin/logout", url.Values{}), "/admin/login")

	r := cl.do("GET", "/admin/login", nil, "Accept-Language", "sv-SE,sv;q=0.9")
	if r.status != http.StatusOK || !strings.Contains(r.body, `name="key"`) || !strings.Contains(r.body, `<html lang="sv">`) {
		t.Fatalf("sign-in page: %d\n%s", r.status, r.body)
	}
	if got := r.header.Get("Content-Security-Policy"); got != consoleCSP {
		t.Errorf("CSP of the sign-in page: got %q, want %q", got, consoleCSP)
	}

	const wrong = "optin_wrong-key-that-must-not-be-logged"
	r = cl.do("POST", "/admin/login", url.Values{"key": {wrong}})
	if r.status != http.StatusUnauthorized || !strings.Contains(r.body, e.en.T("console.login.invalid")) {
		t.Errorf("wrong key: got %d\n%s", r.status, r.body)
	}
	if logs := e.log.String(); !strings.Contains(logs, "console sign-in failed") || strings.Contains(logs, wrong) {
		t.Errorf("log after a failed sign-in: want the failure without the key, got\n%s", logs)
	}
	if r.header.Get("Set-Cookie") != "" {
		t.Errorf("a failed sign-in set a cookie: %q", r.header.Get("Set-Cookie"))
	}

	r = cl.do("POST", "/admin/login", url.Values{"key": {e.keys[consent.RoleMarketer]}})
	wantLogin(t, "sign-in", r, "/admin")
	ck := r.header.Get("Set-Cookie")
	for _, want := range []string{consoleCookie + "=", "Path=/admin", "HttpOnly", "SameSite=Strict", "Max-Age=43200"} {
		if !strings.Contains(ck, want) {
			t.Errorf("session cookie %q lacks %q", ck, want)
		}
	}
	if strings.Contains(ck, "Secure") {
		t.Errorf("session cookie over http: %q, want no Secure", ck)
	}
	id := strings.TrimPrefix(strings.SplitN(ck, ";", 2)[0], consoleCookie+"=")
	if len(id) < 43 {
		t.Errorf("session id %q: want at least 256 random bits", id)
	}
	if _, err := e.db.Session(t.Context(), consent.HashSessionID(id)); err != nil {
		t.Errorf("session under the hash of its id: %v", err)
	}
	if _, err := e.db.Session(t.Context(), id); consent.ErrorCode(err) != consent.ENotFound {
		t.Errorf("session under its raw id: got %v, want not_found", err)
	}
	audit, _, err := e.db.Audit(t.Context(), "", 1)
	if err != nil || len(audit) != 1 || audit[0].Action != "console.signin" || audit[0].Key != "key-marketer" {
		t.Errorf("audit after sign-in: got %+v, %v", audit, err)
	}

	r = cl.do("GET", "/admin", nil)
	if r.status != http.StatusOK || !strings.Contains(r.body, "key-marketer") || !strings.Contains(r.body, e.en.T("console.home.can.marketer")) {
		t.Errorf("console after sign-in: %d\n%s", r.status, r.body)
	}
	if got := r.header.Get("Content-Security-Policy"); got != consoleCSP {
		t.Errorf("CSP: got %q", got)
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store", got)
	}
	if r := cl.do("GET", "/admin/login", nil); r.status != http.StatusSeeOther || r.header.Get("Location") != "/admin" {
		t.Errorf("sign-in page while signed in: got %d to %q, want 303 to /admin", r.status, r.header.Get("Location"))
	}
	r = cl.do("GET", "/admin/no-such-page", nil)
	if r.status != http.StatusNotFound || r.header.Get("Content-Security-Policy") != consoleCSP {
		t.Errorf("unknown console page signed in: got %d, CSP %q", r.status, r.header.Get("Content-Security-Policy"))
	}
	for _, name := range []string{"console.css", "console.js"} {
		r := cl.do("GET", "/admin/assets/"+name, nil)
		if r.status != http.StatusOK || r.header.Get("Content-Security-Policy") != consoleCSP || len(r.body) == 0 {
			t.Errorf("asset %s: got %d, CSP %q", name, r.status, r.header.Get("Content-Security-Policy"))
		}
	}

	r = cl.do("POST", "/admin/logout", url.Values{"csrf": {cl.csrf()}})
	wantLogin(t, "sign-out", r, "/admin/login?out=1")
	if !strings.Contains(r.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("sign-out cookie: got %q, want it cleared", r.header.Get("Set-Cookie"))
	}
	if _, err := e.db.Session(t.Context(), consent.HashSessionID(id)); consent.ErrorCode(err) != consent.ENotFound {
		t.Errorf("session after sign-out: got %v, want not_found", err)
	}
	wantLogin(t, "console after sign-out", cl.do("GET", "/admin", nil), "/admin/login")
}

// TestConsoleRoutesNeedSession: every console route but the sign-in page
// and the static files sends a browser without a session to the sign-in
// page and does nothing, and every answer carries the console's CSP:
// scripts and styles only from optin's own files, nothing inline, never
// framed.
func TestConsoleRoutesNeedSession(t *testing.T) {
	directives := map[string]string{}
	for _, d := range strings.Split(consoleCSP, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	for name, want := range map[string]string{"default-src": "'self'", "script-src": "'self'", "style-src": "'self'",
		"frame-ancestors": "'none'", "form-action": "'self'"} {
		if directives[name] != want {
			t.Errorf("CSP %s: got %q, want %q", name, directives[name], want)
		}
	}
	e := newConsoleEnv(t, nil)
	e.importPeople("ann@example.com,Ann,news,consent,2024-01-01,shop,\n")
	id := e.subscriberID("ann@example.com")
	audit, _, err := e.db.Audit(t.Context(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	cl := e.client()
	for _, rt := range consoleRoutes {
		path := strings.ReplaceAll(rt.console[1], "{id}", id)
		var form url.Values
		if rt.console[0] == "POST" {
			form = url.Values{"confirm": {"ann@example.com"}, "name": {"Mallory"}, "reason": {"asked"}}
		}
		r := cl.do(rt.console[0], path, form)
		wantLogin(t, rt.console[0]+" "+path+" signed out", r, "/admin/login")
		if got := r.header.Get("Content-Security-Policy"); got != consoleCSP {
			t.Errorf("%s %s signed out: CSP %q", rt.console[0], path, got)
		}
	}
	if got := e.subscriberID("ann@example.com"); got != id {
		t.Errorf("Ann after the requests signed out: id %q, want %q", got, id)
	}
	if after, _, err := e.db.Audit(t.Context(), "", 100); err != nil || len(after) != len(audit) {
		t.Errorf("audit after the requests signed out: %d entries (%v), want %d", len(after), err, len(audit))
	}
}

// TestConsoleCookieHTTPS checks that over https the cookie is Secure and
// carries the __Host- prefix with Path=/.
func TestConsoleCookieHTTPS(t *testing.T) {
	s, _ := newPublicServer(t, nil, nil)
	rec := serve(s, "POST", "/admin/login", "application/x-www-form-urlencoded", "key="+strings.Repeat("k", 32))
	ck := rec.Header().Get("Set-Cookie")
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("sign-in: got %d\n%s", rec.Code, rec.Body)
	}
	for _, want := range []string{consoleCookieSecure + "=", "Path=/;", "Secure", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(ck, want) {
			t.Errorf("https session cookie %q lacks %q", ck, want)
		}
	}
}

// TestConsoleCSRF refuses console POSTs without the session's token or
// from another origin, each of them, and changes nothing.
func TestConsoleCSRF(t *testing.T) {
	e := newConsoleEnv(t, nil)
	cl := e.signIn(consent.RoleAdmin)
	token := cl.csrf()
	other := e.signIn(consent.RoleAdmin).csrf()
	for _, tt := range []struct {
		what   string
		form   url.Values
		header []string
	}{
		{"no token", url.Values{}, nil},
		{"empty token", url.Values{"csrf": {""}}, nil},
		{"another session's token", url.Values{"csrf": {other}}, nil},
		{"right token from another site", url.Values{"csrf": {token}}, []string{"Origin", "https://evil.example"}},
	} {
		r := cl.do("POST", "/admin/logout", tt.form, tt.header...)
		if r.status != http.StatusForbidden || !strings.Contains(r.body, e.en.T("console.error.csrf")) {
			t.Errorf("%s: got %d, want 403 with the CSRF message\n%s", tt.what, r.status, r.body)
		}
		if r := cl.do("GET", "/admin", nil); r.status != http.StatusOK {
			t.Fatalf("after a refused sign-out (%s) the session ended: %d", tt.what, r.status)
		}
	}
	r := cl.do("POST", "/admin/login", url.Values{"key": {e.keys[consent.RoleAdmin]}}, "Origin", "https://evil.example")
	if r.status != http.StatusForbidden {
		t.Errorf("cross-site sign-in: got %d, want 403", r.status)
	}

	// Every POST of the console (consoleRoutes holds them all), with
	// fields that would do something but no token, is refused before it
	// does anything: no audit entry, no ledger event, Ann still there.
	e.importPeople("ann@example.com,Ann,news,consent,2024-01-01,shop,\n")
	id := e.subscriberID("ann@example.com")
	audit, _, err := e.db.Audit(t.Context(), "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	ledgerSize := func() int64 {
		tree, err := e.db.LedgerTree(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return tree.N
	}
	events := ledgerSize()
	posts := 0
	for _, rt := range consoleRoutes {
		if rt.console[0] != "POST" {
			continue
		}
		posts++
		path := strings.ReplaceAll(rt.console[1], "{id}", id)
		form := url.Values{"confirm": {"ann@example.com"}, "reason": {"asked"}, "withdraw-reason": {"asked"}, "all": {"1"},
			"kind": {"note"}, "name": {"Mallory"}, "email": {"mallory@example.com"}, "id": {"evil"}, "role": {"admin"}}
		if r := cl.do("POST", path, form); r.status != http.StatusForbidden || !strings.Contains(r.body, e.en.T("console.error.csrf")) {
			t.Errorf("POST %s without a token: got %d, want 403 with the CSRF message", path, r.status)
		}
	}
	want := -2 // the sign-in and the sign-out, tried above
	for _, r := range e.srv.engine.Routes() {
		if r.Method == "POST" && strings.HasPrefix(r.Path, "/admin/") {
			want++
		}
	}
	if posts != want {
		t.Errorf("%d console POSTs tried, want %d", posts, want)
	}
	if after, _, err := e.db.Audit(t.Context(), "", 1000); err != nil || len(after) != len(audit) {
		t.Errorf("audit log after the refused POSTs: %d entries (%v), want %d", len(after), err, len(audit))
	}
	if got := ledgerSize(); got != events {
		t.Errorf("ledger after the refused POSTs: %d events, want %d", got, events)
	}
	if got := e.subscriberID("ann@example.com"); got != id {
		t.Errorf("Ann after the refused POSTs: id %q, want %q", got, id)
	}
	wantLogin(t, "sign-out with the token and optin's origin", cl.do("POST", "/admin/logout", url.Values{"csrf": {token}}, "Origin", e.url),
		"/admin/login?out=1")
}

// TestConsoleSessionExpiry ends a session after 30 idle minutes, after 12
// hours however busy, and at once when its key is revoked.
func TestConsoleSessionExpiry(t *testing.T) {
	e := newConsoleEnv(t, nil)

	idle := e.signIn(consent.RoleViewer)
	e.clock.Advance(29 * time.Minute)
	if r := idle.do("GET", "/admin", nil); r.status != http.StatusOK {
		t.Fatalf("after 29 idle minutes: got %d, want 200", r.status)
	}
	e.clock.Advance(29 * time.Minute) // 29 minutes after the last use
	if r := idle.do("GET", "/admin", nil); r.status != http.StatusOK {
		t.Fatalf("29 minutes after the last use: got %d, want 200", r.status)
	}
	e.clock.Advance(31 * time.Minute)
	wantLogin(t, "after 31 idle minutes", idle.do("GET", "/admin", nil), "/admin/login?ended=1")
	r := idle.do("GET", "/admin/login?ended=1", nil)
	if !strings.Contains(r.body, e.en.T("console.login.ended")) {
		t.Errorf("sign-in page after the end: want the notice\n%s", r.body)
	}

	busy := e.signIn(consent.RoleViewer)
	start := e.clock.Now()
	for e.clock.Now().Sub(start) < consoleMaxAge-20*time.Minute {
		e.clock.Advance(20 * time.Minute)
		if r := busy.do("GET", "/admin", nil); r.status != http.StatusOK {
			t.Fatalf("%v after sign-in, used every 20 minutes: got %d", e.clock.Now().Sub(start), r.status)
		}
	}
	e.clock.Set(start.Add(consoleMaxAge))
	wantLogin(t, "12 hours after sign-in", busy.do("GET", "/admin", nil), "/admin/login?ended=1")

	revoked := e.signIn(consent.RoleMarketer)
	keys, err := e.db.APIKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.Role == consent.RoleMarketer {
			if err := e.db.RevokeAPIKey(t.Context(), consent.CLIActor(), k.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	wantLogin(t, "after the key was revoked", revoked.do("GET", "/admin", nil), "/admin/login?ended=1")
	if r := revoked.do("POST", "/admin/login", url.Values{"key": {e.keys[consent.RoleMarketer]}}); r.status != http.StatusUnauthorized {
		t.Errorf("sign-in with the revoked key: got %d, want 401", r.status)
	}
}

// TestConsoleSigninLimit refuses sign-ins from an address that failed too
// often, even with the right key, and says when to come back.
func TestConsoleSigninLimit(t *testing.T) {
	e := newConsoleEnv(t, func(c *Config) { c.SigninLimit = Rate{N: 3, Per: time.Hour} })
	cl := e.client()
	for i := range 3 {
		if r := cl.do("POST", "/admin/login", url.Values{"key": {"optin_wrong"}}); r.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: got %d, want 401", i+1, r.status)
		}
	}
	r := cl.do("POST", "/admin/login", url.Values{"key": {e.keys[consent.RoleAdmin]}})
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || r.header.Get("Set-Cookie") != "" {
		t.Errorf("right key after 3 failures: got %d, Retry-After %q, cookie %q; want 429 with Retry-After and no session",
			r.status, r.header.Get("Retry-After"), r.header.Get("Set-Cookie"))
	}
	if !strings.Contains(e.log.String(), "too many failures") {
		t.Errorf("log: want the refusal\n%s", e.log.String())
	}
}

// consoleRoute is a console route and the admin API route that does the
// same, which must let exactly the same roles through.
type consoleRoute struct {
	console, api [2]string // method, path
}

// consoleRoutes pairs every console route with its API counterpart; ids
// are filled in by the test.
var consoleRoutes = []consoleRoute{
	{[2]string{"GET", "/admin"}, [2]string{"GET", "/api/v1/stats"}},
	{[2]string{"GET", "/admin/subscribers"}, [2]string{"GET", "/api/v1/subscribers"}},
	{[2]string{"POST", "/admin/subscribers"}, [2]string{"GET", "/api/v1/subscribers?q=x"}},
	{[2]string{"POST", "/admin/subscribers/export"}, [2]string{"GET", "/api/v1/exports/subscribers"}},
	{[2]string{"GET", "/admin/subscribers/{id}"}, [2]string{"GET", "/api/v1/subscribers/{id}"}},
	{[2]string{"GET", "/admin/subscribers/{id}/receipt"}, [2]string{"GET", "/api/v1/subscribers/{id}/consents"}},
	{[2]string{"GET", "/admin/subscribers/{id}/export"}, [2]string{"GET", "/api/v1/subscribers/{id}/consents"}},
	{[2]string{"POST", "/admin/subscribers/{id}/activity"}, [2]string{"POST", "/api/v1/subscribers/{id}/activity"}},
	{[2]string{"POST", "/admin/subscribers/{id}/rectify"}, [2]string{"PATCH", "/api/v1/subscribers/{id}"}},
	{[2]string{"POST", "/admin/subscribers/{id}/unsubscribe"}, [2]string{"POST", "/api/v1/subscribers/{id}/unsubscribe"}},
	{[2]string{"POST", "/admin/subscribers/{id}/preference-link"}, [2]string{"POST", "/api/v1/subscribers/{id}/preference-link"}},
	{[2]string{"GET", "/admin/imports"}, [2]string{"POST", "/api/v1/imports"}},
	{[2]string{"POST", "/admin/imports"}, [2]string{"POST", "/api/v1/imports"}},
	{[2]string{"GET", "/admin/topics"}, [2]string{"GET", "/api/v1/topics"}},
	{[2]string{"POST", "/admin/topics"}, [2]string{"POST", "/api/v1/topics"}},
	{[2]string{"POST", "/admin/topics/news"}, [2]string{"PUT", "/api/v1/topics/news"}},
	{[2]string{"GET", "/admin/forms"}, [2]string{"GET", "/api/v1/forms"}},
	{[2]string{"GET", "/admin/forms/new"}, [2]string{"POST", "/api/v1/forms"}},
	{[2]string{"POST", "/admin/forms"}, [2]string{"POST", "/api/v1/forms"}},
	{[2]string{"GET", "/admin/forms/newsletter"}, [2]string{"GET", "/api/v1/forms/newsletter/snippet"}},
	{[2]string{"POST", "/admin/forms/newsletter"}, [2]string{"PUT", "/api/v1/forms/newsletter"}},
	{[2]string{"GET", "/admin/suppressions"}, [2]string{"GET", "/api/v1/suppressions"}},
	{[2]string{"POST", "/admin/suppressions/find"}, [2]string{"GET", "/api/v1/suppressions?email=x%40example.com"}},
	{[2]string{"POST", "/admin/suppressions"}, [2]string{"POST", "/api/v1/suppressions"}},
	{[2]string{"POST", "/admin/suppressions/00/delete"}, [2]string{"DELETE", "/api/v1/suppressions/00"}},
	{[2]string{"GET", "/admin/audit"}, [2]string{"GET", "/api/v1/audit"}},
	{[2]string{"GET", "/admin/assessments"}, [2]string{"GET", "/api/v1/assessments"}},
	{[2]string{"POST", "/admin/assessments"}, [2]string{"POST", "/api/v1/assessments"}},
	{[2]string{"GET", "/admin/keys"}, [2]string{"GET", "/api/v1/apikeys"}},
	{[2]string{"POST", "/admin/keys"}, [2]string{"POST", "/api/v1/apikeys"}},
	{[2]string{"POST", "/admin/keys/nope/revoke"}, [2]string{"DELETE", "/api/v1/apikeys/nope"}},
	{[2]string{"GET", "/admin/campaigns"}, [2]string{"GET", "/api/v1/campaigns"}},
	{[2]string{"GET", "/admin/campaigns/new"}, [2]string{"POST", "/api/v1/campaigns"}},
	{[2]string{"POST", "/admin/campaigns"}, [2]string{"POST", "/api/v1/campaigns"}},
	{[2]string{"GET", "/admin/campaigns/nope"}, [2]string{"GET", "/api/v1/campaigns/nope"}},
	{[2]string{"POST", "/admin/campaigns/nope/preview"}, [2]string{"POST", "/api/v1/campaigns/nope/preview"}},
	{[2]string{"POST", "/admin/campaigns/nope/start"}, [2]string{"POST", "/api/v1/campaigns/nope/start"}},
	{[2]string{"POST", "/admin/campaigns/nope/pause"}, [2]string{"POST", "/api/v1/campaigns/nope/pause"}},
	{[2]string{"POST", "/admin/campaigns/nope/cancel"}, [2]string{"POST", "/api/v1/campaigns/nope/cancel"}},
	{[2]string{"GET", "/admin/campaigns/nope/audience"}, [2]string{"GET", "/api/v1/campaigns/nope/audience"}},
	{[2]string{"GET", "/admin/subscribers/{id}/receipt.json"}, [2]string{"GET", "/api/v1/subscribers/{id}/receipt"}},
	// The mail's preview and its test send have no API route: each is
	// paired with the API route of the rights it claims (reading a
	// campaign, acting on one).
	{[2]string{"GET", "/admin/campaigns/nope/mail"}, [2]string{"GET", "/api/v1/campaigns/nope"}},
	{[2]string{"POST", "/admin/campaigns/nope/test"}, [2]string{"POST", "/api/v1/campaigns/nope/preview"}},
	{[2]string{"POST", "/admin/subscribers/{id}/erase"}, [2]string{"DELETE", "/api/v1/subscribers/{id}"}},
}

// TestConsoleRolesMatchAPI proves, for each role, that every console route
// and its API counterpart answer alike: both allowed or both forbidden.
// Every route the server has under /admin is in consoleRoutes, but for
// the sign-in, the sign-out and the static files, which every role may
// use.
func TestConsoleRolesMatchAPI(t *testing.T) {
	e := newConsoleEnv(t, nil)
	for _, r := range e.srv.engine.Routes() {
		switch {
		case r.Path != "/admin" && !strings.HasPrefix(r.Path, "/admin/"),
			r.Path == "/admin/login", r.Path == "/admin/logout", r.Path == "/admin/assets/:name":
			continue
		}
		if !slices.ContainsFunc(consoleRoutes, func(cr consoleRoute) bool { return cr.console[0] == r.Method && routeMatch(r.Path, cr.console[1]) }) {
			t.Errorf("%s %s is not in consoleRoutes: pair it with the API route of the same rights", r.Method, r.Path)
		}
	}
	e.importPeople("ann@example.com,Ann,news,consent,2024-01-01,shop,\n")
	id := e.subscriberID("ann@example.com")
	// How many pairs each role may not use: the test means something only
	// when both answers occur.
	wantForbidden := map[consent.Role]int{consent.RoleViewer: 27, consent.RoleMarketer: 11, consent.RoleAdmin: 0}
	for _, role := range []consent.Role{consent.RoleViewer, consent.RoleMarketer, consent.RoleAdmin} {
		cl := e.signIn(role)
		token := cl.csrf()
		forbidden := 0
		for _, rt := range consoleRoutes {
			var form url.Values
			if rt.console[0] == "POST" {
				form = url.Values{"csrf": {token}}
			}
			cr := cl.do(rt.console[0], strings.ReplaceAll(rt.console[1], "{id}", id), form)
			ar := cl.do(rt.api[0], strings.ReplaceAll(rt.api[1], "{id}", id), nil, "Authorization", "Bearer "+e.keys[role])
			if cr.status == http.StatusSeeOther && strings.HasPrefix(cr.header.Get("Location"), "/admin/login") {
				t.Fatalf("%s %s as %s: sent to the sign-in page", rt.console[0], rt.console[1], role)
			}
			consoleOK, apiOK := cr.status != http.StatusForbidden, ar.status != http.StatusForbidden
			if consoleOK != apiOK {
				t.Errorf("%s: %s %s answers %d, %s %s answers %d: they disagree", role,
					rt.console[0], rt.console[1], cr.status, rt.api[0], rt.api[1], ar.status)
			}
			if !consoleOK {
				forbidden++
			}
		}
		if forbidden != wantForbidden[role] {
			t.Errorf("%s: %d pairs forbidden, want %d", role, forbidden, wantForbidden[role])
		}
	}
}

var (
	pageLink   = regexp.MustCompile(`href="(/admin[^"#]*)"`)
	pageForm   = regexp.MustCompile(`(?s)<form method="(get|post)" action="(/admin[^"]*)"[^>]*>(.*?)</form>`)
	pageFormAt = regexp.MustCompile(`<form [^>]*action="(/admin[^"]*)"`)
)

// TestConsoleShowsWhatRoleMay proves, for each role, that the console
// shows only what the key may do: every link and form on every page the
// role may open leads to a route whose API counterpart lets the role
// through. A form shown read-only (its fields disabled, no button) offers
// nothing.
func TestConsoleShowsWhatRoleMay(t *testing.T) {
	e := newConsoleEnv(t, func(c *Config) { c.PostalAddress = "1 Main St, Springfield" })
	e.importPeople("ann@example.com,Ann,news,consent,2024-01-01,shop,\n")
	id := e.subscriberID("ann@example.com")
	camp, err := e.db.CreateCampaign(t.Context(), consent.CLIActor(), consent.CampaignInput{Name: "Still there?", Topic: "news",
		Templates: map[string]consent.CampaignTemplate{"en": {Subject: "Still there?", Body: "Hello"}}})
	if err != nil {
		t.Fatal(err)
	}
	concrete := func(path string) string {
		return strings.NewReplacer("{id}", id, "/campaigns/nope", "/campaigns/"+camp.ID).Replace(path)
	}
	// route finds the route a request takes: of the patterns that match,
	// the one with the fewest parameters, as gin prefers a static segment.
	route := func(method, path string) string {
		path, _, _ = strings.Cut(path, "?")
		best := ""
		for _, r := range e.srv.engine.Routes() {
			if r.Method == method && routeMatch(r.Path, path) && (best == "" || strings.Count(r.Path, ":") < strings.Count(best, ":")) {
				best = r.Path
			}
		}
		return best
	}
	// api finds the API counterpart of a console request, by the route
	// it takes.
	api := func(method, path string) ([2]string, bool) {
		want := route(method, path)
		for _, cr := range consoleRoutes {
			if cr.console[0] == method && want != "" && route(method, cr.console[1]) == want {
				return cr.api, true
			}
		}
		return [2]string{}, false
	}
	for _, role := range []consent.Role{consent.RoleViewer, consent.RoleMarketer, consent.RoleAdmin} {
		cl := e.signIn(role)
		shown := map[[2]string]string{} // method and path: the page that shows it
		pages := 0
		for _, rt := range consoleRoutes {
			if rt.console[0] != "GET" {
				continue
			}
			page := concrete(rt.console[1])
			r := cl.do("GET", page, nil)
			if r.status != http.StatusOK {
				continue
			}
			pages++
			for _, m := range pageLink.FindAllStringSubmatch(r.body, -1) {
				shown[[2]string{"GET", html.UnescapeString(m[1])}] = page
			}
			if n, m := len(pageFormAt.FindAllString(r.body, -1)), pageForm.FindAllStringSubmatch(r.body, -1); n != len(m) {
				t.Fatalf("%s: %d forms, %d of them with the method before the action", page, n, len(m))
			} else {
				for _, f := range m {
					if strings.Contains(f[3], "<button") && !strings.Contains(f[3], "<fieldset disabled>") {
						shown[[2]string{strings.ToUpper(f[1]), html.UnescapeString(f[2])}] = page
					}
				}
			}
		}
		if pages < 10 {
			t.Fatalf("%s: only %d pages open", role, pages)
		}
		for target, page := range shown {
			if strings.HasPrefix(target[1], "/admin/assets/") || target[1] == "/admin/logout" || target[1] == "/admin/login" {
				continue
			}
			pair, ok := api(target[0], target[1])
			if !ok {
				t.Errorf("%s: %s shows %s %s, which is no console route", role, page, target[0], target[1])
				continue
			}
			r := cl.do(pair[0], concrete(pair[1]), nil, "Authorization", "Bearer "+e.keys[role])
			if r.status == http.StatusForbidden {
				t.Errorf("%s: %s shows %s %s, which the API forbids the role (%s %s)", role, page, target[0], target[1], pair[0], pair[1])
			}
		}
	}
}

// routeMatch reports whether path (of consoleRoutes) is one of gin's
// route pattern: a :name segment stands for any one segment.
func routeMatch(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i, p := range ps {
		if p != xs[i] && !strings.HasPrefix(p, ":") {
			return false
		}
	}
	return true
}

// importPeople imports csv (header email,name,topics,basis,
// consented_at,source,last_purchase_at) straight into the store, a second
// of the test clock apart per call.
func (e *consoleEnv) importPeople(csv string) {
	e.t.Helper()
	e.clock.Advance(time.Second)
	rows, err := transfer.NewReader(strings.NewReader("email,name,topics,basis,consented_at,source,last_purchase_at\n"+csv), transfer.FormatCSV)
	if err != nil {
		e.t.Fatal(err)
	}
	if rep, err := e.db.Import(e.t.Context(), consent.CLIActor(), rows, consent.ImportOptions{}); err != nil || rep.InvalidCount > 0 {
		e.t.Fatalf("import: %+v, %v", rep, err)
	}
}

var rowEmail = regexp.MustCompile(`<a href="/admin/subscribers/([a-z0-9]+)">([^<]+)</a>`)

// emails lists the addresses of a subscriber list page, in order.
func emails(body string) []string {
	var out []string
	for _, m := range rowEmail.FindAllStringSubmatch(body, -1) {
		out = append(out, m[2])
	}
	return out
}

// TestConsoleSubscribers lists subscribers newest first, a page at a time;
// searches by POST, so no address lands in a URL; filters; and downloads
// the filtered list through the API's export, for roles that may export.
func TestConsoleSubscribers(t *testing.T) {
	e := newConsoleEnv(t, nil)
	var bulk strings.Builder
	for i := range consolePageSize + 2 {
		fmt.Fprintf(&bulk, "bulk%02d@example.com,,news,consent,2024-01-01,shop,\n", i)
	}
	e.importPeople(bulk.String())
	e.importPeople("ann@example.com,Ann Lee,news,consent,2024-01-01,shop,\n")
	e.importPeople("bob@example.com,Bob Ek,news,legitimate_interest,,,2030-01-01\n")
	cl := e.signIn(consent.RoleMarketer)

	r := cl.do("GET", "/admin/subscribers", nil)
	got := emails(r.body)
	if r.status != http.StatusOK || len(got) != consolePageSize || got[0] != "bob@example.com" || got[1] != "ann@example.com" {
		t.Fatalf("first page: %d, %d rows starting %v, want %d starting with bob, ann", r.status, len(got), got[:min(len(got), 3)], consolePageSize)
	}
	next := regexp.MustCompile(`<form method="get" action="/admin/subscribers">.*name="cursor" value="([a-z0-9]+)"`).FindStringSubmatch(r.body)
	if next == nil {
		t.Fatalf("first page: no next-page form\n%s", r.body)
	}
	r = cl.do("GET", "/admin/subscribers?status=&topic=&lifecycle=&cursor="+next[1], nil)
	all := append(got, emails(r.body)...)
	slices.Sort(all)
	if len(all) != consolePageSize+4 || len(slices.Compact(all)) != consolePageSize+4 || strings.Contains(r.body, `name="cursor"`) {
		t.Errorf("second page: got %v, want the other 4 and no next page", emails(r.body))
	}

	var bulk0 []string
	for i := range 10 {
		bulk0 = append(bulk0, fmt.Sprintf("bulk%02d@example.com", i))
	}
	for _, tt := range []struct {
		what string
		form url.Values
		want []string // in any order
	}{
		{"a whole address", url.Values{"q": {"Ann@Example.com"}}, []string{"ann@example.com"}},
		{"part of a name", url.Values{"q": {"ek"}}, []string{"bob@example.com"}},
		{"lifecycle", url.Values{"lifecycle": {"customer"}}, []string{"bob@example.com"}},
		{"search, status and topic", url.Values{"q": {"bulk0"}, "status": {"confirmed"}, "topic": {"news"}}, bulk0},
		{"no match", url.Values{"q": {"nobody"}}, nil},
	} {
		tt.form.Set("csrf", cl.csrf())
		r := cl.do("POST", "/admin/subscribers", tt.form)
		got := emails(r.body)
		slices.Sort(got)
		if r.status != http.StatusOK || !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %d %v, want %v", tt.what, r.status, got, tt.want)
		}
	}
	if r := cl.do("GET", "/admin/subscribers?q=ann@example.com", nil); len(emails(r.body)) != consolePageSize {
		t.Errorf("a search in the URL is ignored: got %d rows", len(emails(r.body)))
	}
	if r := cl.do("POST", "/admin/subscribers", url.Values{"q": {"ann"}}); r.status != http.StatusForbidden {
		t.Errorf("a search without the CSRF token: got %d, want 403", r.status)
	}
	if r := cl.do("GET", "/admin/subscribers?status=maybe", nil); r.status != http.StatusBadRequest {
		t.Errorf("a bad status: got %d, want 400", r.status)
	}
	// Created since and until: whole UTC days, kept across pages.
	first := e.clock.Now().Format(time.DateOnly)
	e.clock.Advance(48 * time.Hour)
	e.importPeople("late@example.com,,news,consent,2024-01-01,shop,\n")
	cl = e.signIn(consent.RoleMarketer) // two days on, the session has ended
	if r := cl.do("GET", "/admin/subscribers?created_since="+e.clock.Now().Format(time.DateOnly), nil); !slices.Equal(emails(r.body), []string{"late@example.com"}) ||
		!strings.Contains(r.body, `name="created_since" type="date" value="`+e.clock.Now().Format(time.DateOnly)+`"`) {
		t.Errorf("created since today: got %v, want late@ alone with the date kept in the form", emails(r.body))
	}
	r = cl.do("GET", "/admin/subscribers?created_until="+first, nil)
	if got := emails(r.body); len(got) != consolePageSize || slices.Contains(got, "late@example.com") ||
		!strings.Contains(r.body, `<input type="hidden" name="created_until" value="`+first+`">`) {
		t.Errorf("created until the first day: got %d rows (late@ among them: %v), want a full page without late@ and the bound in the pager", len(got), slices.Contains(got, "late@example.com"))
	}
	if r := cl.do("GET", "/admin/subscribers?created_since=yesterday", nil); r.status != http.StatusBadRequest {
		t.Errorf("a bad date: got %d, want 400", r.status)
	}

	r = cl.do("POST", "/admin/subscribers/export", url.Values{"csrf": {cl.csrf()}, "format": {"csv"}, "q": {"ann@example.com"}})
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(r.header.Get("Content-Disposition"), "attachment") || strings.Count(r.body, "\n") != 2 ||
		!strings.Contains(r.body, "ann@example.com,Ann Lee") {
		t.Errorf("export of a search: %d %s\n%s", r.status, r.header.Get("Content-Type"), r.body)
	}
	audit, _, err := e.db.Audit(t.Context(), "", 1)
	if err != nil || len(audit) != 1 || audit[0].Action != "export" || audit[0].Key != "key-marketer" || audit[0].Count != 1 {
		t.Errorf("audit of the export: %+v, %v", audit, err)
	}
	if r := cl.do("GET", "/admin/subscribers", nil); !strings.Contains(r.body, `action="/admin/subscribers/export"`) {
		t.Error("a marketer sees no export form")
	}

	viewer := e.signIn(consent.RoleViewer)
	if r := viewer.do("GET", "/admin/subscribers", nil); strings.Contains(r.body, `action="/admin/subscribers/export"`) {
		t.Error("a viewer sees the export form")
	}
	if r := viewer.do("POST", "/admin/subscribers/export", url.Values{"csrf": {viewer.csrf()}}); r.status != http.StatusForbidden ||
		strings.Contains(r.body, "@example.com") {
		t.Errorf("a viewer's export: got %d, want 403 without data", r.status)
	}
}

// hasText reports whether the HTML page body shows text (escaped as
// html/template escapes it).
func hasText(body, text string) bool {
	return strings.Contains(body, strings.NewReplacer(`"`, "&#34;", "'", "&#39;", "&", "&amp;", "<", "&lt;", ">", "&gt;", "+", "&#43;").Replace(text))
}

// subscriberID returns the id of the subscriber holding addr.
func (e *consoleEnv) subscriberID(addr string) string {
	e.t.Helper()
	a, err := consent.ParseAddress(addr)
	if err != nil {
		e.t.Fatal(err)
	}
	sub, err := e.db.SubscriberByAddress(e.t.Context(), a)
	if err != nil {
		e.t.Fatalf("%s: %v", addr, err)
	}
	return sub.ID
}

// TestConsolePerson shows one person's subscriptions and consent timeline
// with the exact wording, page, IP, user agent and Message-ID; prints a
// receipt; downloads the same export file as the self-service one; and
// records a purchase and erases, by role, under the signed-in key, the
// erasure only after the address is typed.
func TestConsolePerson(t *testing.T) {
	e := newConsoleEnv(t, nil)
	cl := e.client()
	body := `{"email":"Ann@Example.com","name":"Ann <b>Lee</b>","topics":["news"],"page":"https://shop.example/news?utm=x"}`
	req, err := http.NewRequest("POST", e.url+"/f/newsletter", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Browser/1.0 (test)")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("signup: %v %v", res, err)
	}
	id := e.subscriberID("ann@example.com")
	evs, err := e.db.Events(t.Context(), id)
	if err != nil || len(evs) != 1 {
		t.Fatalf("events: %v %v", evs, err)
	}

	viewer := e.signIn(consent.RoleViewer)
	r := viewer.do("GET", "/admin/subscribers/"+id, nil)
	for _, want := range []string{"Ann@example.com", "Ann <b>Lee</b>", e.en.T("console.event.requested"),
		e.en.T("console.status.pending"), "https://shop.example/news", "127.0.0.1", "Browser/1.0 (test)",
		"<" + evs[0].MessageID + ">", evs[0].WordingText.Text, evs[0].Wording, evs[0].Hash, "form:newsletter"} {
		if !hasText(r.body, want) {
			t.Errorf("person page lacks %q", want)
		}
	}
	if r.status != http.StatusOK || strings.Contains(r.body, "/erase") || strings.Contains(r.body, "/activity") {
		t.Errorf("person page for a viewer: %d, want 200 without write forms", r.status)
	}
	r = viewer.do("GET", "/admin/subscribers/"+id+"/receipt", nil)
	for _, want := range []string{e.en.T("console.receipt.title"), "Example Ltd", evs[0].WordingText.Text,
		e.en.T("console.receipt.integrity")} {
		if !hasText(r.body, want) {
			t.Errorf("receipt lacks %q", want)
		}
	}
	if r := viewer.do("GET", "/admin/subscribers/nosuchid", nil); r.status != http.StatusNotFound {
		t.Errorf("unknown person: got %d, want 404", r.status)
	}

	// The export file is the self-service one, byte for byte.
	r = viewer.do("GET", "/admin/subscribers/"+id+"/export", nil)
	link, err := e.tokens.Issue(token.Preferences, token.Claims{Subject: id, ExpiresAt: e.clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	self := cl.do("GET", "/preferences/"+link+"/export", nil)
	if r.status != http.StatusOK || self.status != http.StatusOK || r.body != self.body ||
		r.header.Get("Content-Disposition") != self.header.Get("Content-Disposition") || !strings.Contains(r.body, consent.ExportSchema) {
		t.Errorf("console export (%d) differs from the self-service one (%d):\n%s\n---\n%s", r.status, self.status, r.body, self.body)
	}
	audit, _, err := e.db.Audit(t.Context(), "", 1)
	if err != nil || audit[0].Action != "export" || audit[0].Target != "subscriber:"+id || audit[0].Key != "key-viewer" {
		t.Errorf("audit of the download: %+v, %v", audit, err)
	}

	// Writes: not for a viewer.
	if r := viewer.do("POST", "/admin/subscribers/"+id+"/erase", url.Values{"csrf": {viewer.csrf()}, "confirm": {"ann@example.com"}}); r.status != http.StatusForbidden {
		t.Errorf("a viewer's erase: got %d, want 403", r.status)
	}

	m := e.signIn(consent.RoleMarketer)
	r = m.do("GET", "/admin/subscribers/"+id, nil)
	if !strings.Contains(r.body, `action="/admin/subscribers/`+id+`/erase"`) || !strings.Contains(r.body, `value="2030-03-04T10:00"`) {
		t.Errorf("person page for a marketer lacks the write forms")
	}
	for _, tt := range []struct{ what, at, want string }{
		{"no time", "", "console.person.activity_invalid"},
		{"a date only", "2030-03-01", "console.person.activity_invalid"},
		{"the future", "2030-03-05T10:00", "console.person.activity_future"},
	} {
		r := m.do("POST", "/admin/subscribers/"+id+"/activity", url.Values{"csrf": {m.csrf()}, "kind": {"purchase"}, "at": {tt.at}})
		if r.status != http.StatusBadRequest || !hasText(r.body, e.en.T(tt.want)) {
			t.Errorf("purchase at %s: got %d, want 400 with %q", tt.what, r.status, tt.want)
		}
	}
	r = m.do("POST", "/admin/subscribers/"+id+"/activity", url.Values{"csrf": {m.csrf()}, "kind": {"purchase"}, "at": {"2030-03-01T12:30"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/admin/subscribers/"+id+"?done=activity" {
		t.Errorf("purchase: got %d to %q", r.status, r.header.Get("Location"))
	}
	sub, err := e.db.Subscriber(t.Context(), id)
	if err != nil || !sub.LastPurchase.Equal(time.Date(2030, 3, 1, 12, 30, 0, 0, time.UTC)) {
		t.Errorf("last purchase: got %v, %v", sub, err)
	}
	if r := m.do("GET", "/admin/subscribers/"+id+"?done=activity", nil); !hasText(r.body, e.en.T("console.person.done_activity")) {
		t.Error("no notice after the purchase")
	}
	audit, _, _ = e.db.Audit(t.Context(), "", 1)
	if audit[0].Action != "subscriber.activity" || audit[0].Key != "key-marketer" {
		t.Errorf("audit of the purchase: %+v", audit[0])
	}

	for _, typed := range []string{"", "bob@example.com", "ann@example"} {
		r := m.do("POST", "/admin/subscribers/"+id+"/erase", url.Values{"csrf": {m.csrf()}, "confirm": {typed}})
		if r.status != http.StatusBadRequest || !hasText(r.body, e.en.T("console.person.erase_mismatch")) {
			t.Errorf("erase confirmed with %q: got %d, want 400", typed, r.status)
		}
	}
	if _, err := e.db.Subscriber(t.Context(), id); err != nil {
		t.Fatalf("after refused erasures: %v", err)
	}
	r = m.do("POST", "/admin/subscribers/"+id+"/erase", url.Values{"csrf": {m.csrf()}, "confirm": {" ANN@example.com "}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/admin/subscribers?done=erased" {
		t.Fatalf("erase: got %d to %q", r.status, r.header.Get("Location"))
	}
	if _, err := e.db.Subscriber(t.Context(), id); consent.ErrorCode(err) != consent.ENotFound {
		t.Errorf("after the erasure: got %v, want not_found", err)
	}
	audit, _, _ = e.db.Audit(t.Context(), "", 1)
	if audit[0].Action != "subscriber.erase" || audit[0].Key != "key-marketer" || audit[0].Target != id {
		t.Errorf("audit of the erasure: %+v", audit[0])
	}
	if r := m.do("GET", "/admin/subscribers?done=erased", nil); !hasText(r.body, e.en.T("console.person.done_erased")) {
		t.Error("no notice after the erasure")
	}
	if r := m.do("GET", "/admin/subscribers/"+id, nil); r.status != http.StatusNotFound {
		t.Errorf("the erased person's page: got %d, want 404", r.status)
	}
}
