package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"optin/internal/bolt"
	"optin/internal/consent"
	"optin/internal/token"
)

const (
	chromeUA   = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	headlessUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36"
	signupIP   = "203.0.113.7"
)

// serveFrom runs one request through s from the client address ip with
// the user agent ua; header holds name, value pairs.
func serveFrom(s *Server, ip, ua, method, path, body string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = ip + ":40000"
	req.Header.Set("User-Agent", ua)
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// scannerFixture is a server with the scanner policy p, a signup of
// ann@example.com from signupIP, and its confirm and not-me paths.
type scannerFixture struct {
	t              *testing.T
	s              *Server
	db             *bolt.DB
	metrics        *Metrics
	req            string
	confirm, notMe string
}

func newScannerFixture(t *testing.T, p consent.ScannerPolicy, tweak func(*Config)) *scannerFixture {
	t.Helper()
	f := &scannerFixture{t: t}
	f.s, f.db = newPublicServer(t, nil, func(c *Config) {
		c.Scanners = p
		c.ScannerNetworks = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
		f.metrics = NewMetrics(c.Store.(*bolt.DB))
		c.Metrics = f.metrics
		if tweak != nil {
			tweak(c)
		}
	})
	if r := serveFrom(f.s, signupIP, chromeUA, "POST", "/f/newsletter", "email=ann@example.com&topics=news"); r.Code != http.StatusSeeOther {
		t.Fatalf("signup: got %d %s", r.Code, r.Body)
	}
	sub, err := f.db.SubscriberByAddress(context.Background(), consent.Address{Addr: "ann@example.com", Key: "ann@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	f.req = sub.PendingRequest
	exp := time.Now().Add(time.Hour)
	for p, dst := range map[token.Purpose]*string{token.Confirm: &f.confirm, token.NotMe: &f.notMe} {
		tok, err := f.s.cfg.Tokens.Issue(p, token.Claims{Subject: f.req, ExpiresAt: exp})
		if err != nil {
			t.Fatal(err)
		}
		*dst = "/" + string(p) + "/" + tok
	}
	return f
}

// request returns the request as stored now.
func (f *scannerFixture) request() *consent.Request {
	f.t.Helper()
	req, err := f.db.Request(context.Background(), f.req)
	if err != nil {
		f.t.Fatal(err)
	}
	return req
}

// lastCheck returns the check of the last ledger event.
func (f *scannerFixture) lastCheck() *consent.Check {
	f.t.Helper()
	req := f.request()
	evs, err := f.db.Events(context.Background(), req.Subscriber)
	if err != nil || len(evs) == 0 {
		f.t.Fatalf("events: %v", err)
	}
	return evs[len(evs)-1].Check
}

func (f *scannerFixture) wantHeld(what string, r *httptest.ResponseRecorder) {
	f.t.Helper()
	if r.Code != http.StatusOK || !strings.Contains(r.Body.String(), "Nothing has changed yet") {
		f.t.Errorf("%s: got %d, want 200 with the held page:\n%s", what, r.Code, r.Body)
	}
	if req := f.request(); !req.Open(time.Now()) {
		f.t.Errorf("%s: the request is no longer open: %+v", what, req)
	}
}

var interactionRE = regexp.MustCompile(`data-interaction="([^"]+)"`)

// TestScannerClicksAreHeld: under the default policy a click from a known
// scanner network or an automation browser changes nothing, on the
// confirm and the not-me button alike, and the person's own click later
// confirms; a click from the signup's address is never suspected; the
// one-click not-me of RFC 8058 is always honoured.
func TestScannerClicksAreHeld(t *testing.T) {
	f := newScannerFixture(t, consent.ScannerPolicy{Window: 2 * time.Minute}, nil)

	page := serveFrom(f.s, "40.107.1.1", chromeUA, "GET", f.confirm, "")
	if csp := page.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("confirm page CSP: got %q, want script-src 'self'", csp)
	}
	m := interactionRE.FindStringSubmatch(page.Body.String())
	if m == nil || !strings.Contains(page.Body.String(), `<script src="/interaction.js">`) ||
		!strings.Contains(page.Body.String(), `name="interaction"`) {
		t.Fatalf("confirm page lacks the interaction token, field or script:\n%s", page.Body)
	}
	js := serve(f.s, "GET", "/interaction.js", "", "")
	if js.Code != http.StatusOK || !strings.Contains(js.Body.String(), "isTrusted") {
		t.Errorf("interaction.js: got %d %s", js.Code, js.Body)
	}

	f.wantHeld("confirm from Exchange Online Protection", serveFrom(f.s, "40.107.1.1", chromeUA, "POST", f.confirm, "interaction="+m[1]))
	f.wantHeld("confirm from a configured network", serveFrom(f.s, "198.51.100.9", chromeUA, "POST", f.confirm, ""))
	f.wantHeld("confirm by a headless browser", serveFrom(f.s, "192.0.2.50", headlessUA, "POST", f.confirm, ""))
	f.wantHeld("not-me by a scanner", serveFrom(f.s, "40.107.1.1", chromeUA, "POST", f.notMe, ""))
	// Forwarded headers count only from a trusted proxy: none here.
	f.wantHeld("a forged X-Forwarded-For", serveFrom(f.s, "192.0.2.50", headlessUA, "POST", f.confirm, "", "X-Forwarded-For", signupIP))

	// The person, from the signup's address, even in a headless browser.
	r := serveFrom(f.s, signupIP, headlessUA, "POST", f.confirm, "")
	if r.Code != http.StatusOK || !strings.Contains(r.Body.String(), "Subscription confirmed") {
		t.Fatalf("confirm from the signup's address: got %d %s", r.Code, r.Body)
	}
	want := []string{consent.ReasonAutomationAgent, consent.ReasonSoonAfterMail, consent.ReasonNoInteraction, consent.ReasonSignupAddress}
	if c := f.lastCheck(); c == nil || c.Class != consent.ClassLikelyPerson || !slices.Equal(c.Reasons, want) {
		t.Errorf("check: got %+v, want likely_person %v", c, want)
	}

	rec := httptest.NewRecorder()
	f.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range []string{
		`optin_confirmation_clicks_total{class="suspected_automated",kind="confirm",outcome="held"} 4`,
		`optin_confirmation_clicks_total{class="suspected_automated",kind="not_me",outcome="held"} 1`,
		`optin_confirmation_clicks_total{class="likely_person",kind="confirm",outcome="recorded"} 1`,
		`optin_confirmation_clicks_total{class="person",kind="reawaken",outcome="recorded"} 0`,
	} {
		if !strings.Contains(rec.Body.String(), line) {
			t.Errorf("metrics lack %s", line)
		}
	}

	// The mailbox provider's one-click not-me comes from its own
	// servers, without script: always honoured.
	g := newScannerFixture(t, consent.ScannerPolicy{Window: 2 * time.Minute}, nil)
	if r := serveFrom(g.s, "40.107.1.1", "", "POST", g.notMe, "List-Unsubscribe=One-Click"); r.Code != http.StatusOK {
		t.Fatalf("one-click not-me: got %d %s", r.Code, r.Body)
	}
	if req := g.request(); req.Canceled.IsZero() {
		t.Errorf("one-click not-me from a scanner network: request %+v, want it cancelled", req)
	}
}

// TestScannerAcceptAndFlag: under "accept" a suspected click counts and
// its event says so; a person's click with a trusted interaction, after
// the window, on the signup's network, is a person.
func TestScannerAcceptAndFlag(t *testing.T) {
	f := newScannerFixture(t, consent.ScannerPolicy{Window: 2 * time.Minute, Accept: true}, nil)
	if r := serveFrom(f.s, "40.107.1.1", chromeUA, "POST", f.confirm, ""); r.Code != http.StatusOK || f.request().Confirmed.IsZero() {
		t.Fatalf("accepted scanner click: got %d, request %+v", r.Code, f.request())
	}
	if c := f.lastCheck(); c == nil || c.Class != consent.ClassSuspectedAutomated || c.ScannerNetwork != "Microsoft Exchange Online Protection" {
		t.Errorf("check: got %+v, want suspected_automated on Exchange Online Protection", c)
	}

	g := newScannerFixture(t, consent.ScannerPolicy{}, nil) // a zero window: nothing is soon
	m := interactionRE.FindStringSubmatch(serveFrom(g.s, "203.0.113.80", chromeUA, "GET", g.confirm, "").Body.String())
	if m == nil {
		t.Fatal("no interaction token on the page")
	}
	if r := serveFrom(g.s, "203.0.113.80", chromeUA, "POST", g.confirm, "interaction="+m[1]); r.Code != http.StatusOK {
		t.Fatalf("person: got %d %s", r.Code, r.Body)
	}
	if c := g.lastCheck(); c == nil || c.Class != consent.ClassPerson || len(c.Reasons) != 0 || !c.Interaction {
		t.Errorf("check: got %+v, want person with no reasons", c)
	}
}
