package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"optin/internal/bolt"
	"optin/internal/consent"
	"optin/internal/i18n"
	"optin/internal/token"
	"optin/templates"
)

const publicBase = "https://optin.example"

// newPublicServer builds a Server on a real bbolt database holding the
// topic news and the form newsletter (allowed origin https://shop.example),
// after form and cfg are adjusted by the tweak functions (either may be
// nil).
func newPublicServer(t *testing.T, tweakForm func(*consent.Form), tweakCfg func(*Config)) (*Server, *bolt.DB) {
	t.Helper()
	db := openTestDB(t, nil)
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Wording: map[string]string{}, WordingVersion: 1,
		AllowedOrigins: []string{"https://shop.example"}}
	if tweakForm != nil {
		tweakForm(&form)
	}
	topic := consent.Topic{ID: "news", Name: "Product news", Description: "News about our products"}
	if _, err := db.Bootstrap(context.Background(), topic, form, consent.HashAPIKey(strings.Repeat("k", 32))); err != nil {
		t.Fatal(err)
	}
	cat, err := i18n.Load(templates.FS, "locales")
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := token.NewIssuer(publicBase, []token.Key{{ID: "k1", Secret: bytes.Repeat([]byte{'t'}, 32)}}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Store: db, Tokens: tokens, Catalog: cat, Templates: templates.FS, BaseURL: publicBase, Sender: "Example Ltd",
		PostalAddress: "1 Main St, Springfield"}
	if tweakCfg != nil {
		tweakCfg(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

// openTestDB opens a real bbolt database in a temporary directory, on the
// clock now (nil: the real time), closed when the test ends.
func openTestDB(t *testing.T, now func() time.Time) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "optin.db"), bolt.Options{HMACKey: bytes.Repeat([]byte{'h'}, 32),
		Policy: consent.DefaultPolicy(), MessageIDDomain: "optin.example", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// serve runs one request through s; header holds name, value pairs.
func serve(s *Server, method, path, contentType, body string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

func errorCode(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Error.Code
}

func TestSubnetKey(t *testing.T) {
	tests := []struct{ ip, want string }{
		{"203.0.113.7", "203.0.113.0/24"},
		{"203.0.113.250", "203.0.113.0/24"},
		{"::ffff:203.0.113.9", "203.0.113.0/24"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::ffff", "2001:db8:1:2::/64"},
		{"not-an-ip", "not-an-ip"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := subnetKey(tt.ip); got != tt.want {
			t.Errorf("subnetKey(%q): got %q, want %q", tt.ip, got, tt.want)
		}
	}
}

func TestAllowIPSubnet(t *testing.T) {
	now := time.Now()
	db := openTestStore(t)
	perIP, perNet := newLimiter(db, "ip", Rate{N: 2, Per: time.Minute}), newLimiter(db, "net", Rate{N: 3, Per: time.Minute})
	steps := []struct {
		ip   string
		want bool
	}{
		{"198.51.100.1", true},
		{"198.51.100.1", true},
		{"198.51.100.1", false}, // per-IP budget spent
		{"198.51.100.2", true},  // third in the /24
		{"198.51.100.3", false}, // /24 budget spent
		{"192.0.2.1", true},     // another subnet
	}
	for i, st := range steps {
		ok, wait, err := allowIP(t.Context(), perIP, perNet, st.ip, now)
		if err != nil || ok != st.want {
			t.Errorf("step %d (%s): got %v, %v, want %v, nil", i, st.ip, ok, err, st.want)
		}
		if !ok && wait <= 0 {
			t.Errorf("step %d: refused without a wait", i)
		}
	}
}

func TestBrake(t *testing.T) {
	now := time.Now()
	db := openTestStore(t)
	b := newBrake(db, Brake{PerSecond: 2, Burst: 2})
	for i := range 2 {
		if ok, _, err := b.allow(t.Context(), "", now); !ok || err != nil {
			t.Fatalf("take %d within the burst: got %v, %v, want true, nil", i, ok, err)
		}
	}
	ok, wait, err := b.allow(t.Context(), "", now)
	if ok || err != nil || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("take past the burst: got %v, %v wait %v, want refused with a wait up to 500ms", ok, err, wait)
	}
	if ok, _, err := b.allow(t.Context(), "", now.Add(600*time.Millisecond)); !ok || err != nil {
		t.Errorf("take after refill: got %v, %v, want true, nil", ok, err)
	}
	if got := newBrake(db, Brake{}).rate; got.PerSecond != defaultBrakeRate || got.Burst != defaultBrakeBurst {
		t.Errorf("zero Brake: got %v/s burst %v, want %v/s burst %v", got.PerSecond, got.Burst, defaultBrakeRate, defaultBrakeBurst)
	}
	if ok, _, err := newBrake(db, Brake{Off: true}).allow(t.Context(), "", now); !ok || err != nil {
		t.Errorf("brake off: got %v, %v, want true, nil", ok, err)
	}
}

// solvePoW finds the counter for challenge the way embed.js does.
func solvePoW(t *testing.T, challenge string, bits int) string {
	t.Helper()
	for n := 0; n < 1<<24; n++ {
		c := strconv.Itoa(n)
		if h := sha256.Sum256([]byte(challenge + c)); leadingZeroBits(h[:]) >= bits {
			return c
		}
	}
	t.Fatal("no solution found")
	return ""
}

// wrongPoW returns a counter that does not solve challenge.
func wrongPoW(challenge string, bits int) string {
	for n := 0; ; n++ {
		c := strconv.Itoa(n)
		if h := sha256.Sum256([]byte(challenge + c)); leadingZeroBits(h[:]) < bits {
			return c
		}
	}
}

func TestPowGuard(t *testing.T) {
	g := &powGuard{key: make([]byte, 32), store: openTestStore(t)}
	now := time.Now()
	const bits = 8
	ch, exp, err := g.issue("newsletter", now)
	if err != nil {
		t.Fatal(err)
	}
	if d := exp.Sub(now); d < powTTL-time.Second || d > powTTL {
		t.Errorf("expiry: got %v from now, want about %v", d, powTTL)
	}
	good := solvePoW(t, ch, bits)
	other, _, _ := g.issue("newsletter", now)
	tampered := []byte(ch)
	tampered[3] ^= 1

	tests := []struct {
		name            string
		form, ch, nonce string
		at              time.Time
		wantOK          bool
	}{
		{"missing", "newsletter", "", "", now, false},
		{"not decimal", "newsletter", ch, "12a", now, false},
		{"too long", "newsletter", ch, strings.Repeat("1", 21), now, false},
		{"tampered", "newsletter", string(tampered), good, now, false},
		{"forged mac", "newsletter", ch[:strings.IndexByte(ch, '.')+1] + "AAAA", good, now, false},
		{"other form", "promo", ch, good, now, false},
		{"expired", "newsletter", ch, good, now.Add(powTTL + time.Second), false},
		{"wrong nonce", "newsletter", ch, wrongPoW(ch, bits), now, false},
		{"solved", "newsletter", ch, good, now, true},
		{"replayed", "newsletter", ch, good, now, false},
		{"second challenge", "newsletter", other, solvePoW(t, other, bits), now, true},
	}
	for _, tt := range tests {
		err := g.verify(t.Context(), tt.form, bits, tt.ch, tt.nonce, tt.at)
		if (err == nil) != tt.wantOK {
			t.Errorf("%s: got err %v, want ok=%v", tt.name, err, tt.wantOK)
		}
		if err != nil && consent.ErrorCode(err) != codeProofOfWork {
			t.Errorf("%s: code %q, want %q", tt.name, consent.ErrorCode(err), codeProofOfWork)
		}
	}
	// Another instance (same keys, same store) accepts a challenge this
	// one issued, and refuses it once this one used it.
	g2 := &powGuard{key: g.key, store: g.store}
	ch3, _, _ := g2.issue("newsletter", now)
	sol := solvePoW(t, ch3, bits)
	if err := g.verify(t.Context(), "newsletter", bits, ch3, sol, now); err != nil {
		t.Fatalf("a challenge of another instance: got err %v, want nil", err)
	}
	if err := g2.verify(t.Context(), "newsletter", bits, ch3, sol, now); consent.ErrorCode(err) != codeProofOfWork {
		t.Errorf("a challenge replayed on another instance: got err %v, want %s", err, codeProofOfWork)
	}
}

func TestSignupProofOfWork(t *testing.T) {
	s, _ := newPublicServer(t, func(f *consent.Form) { f.ProofOfWork = 10 }, nil)
	body := func(ch, nonce string) string {
		b, _ := json.Marshal(map[string]any{"email": "pow@example.com", "topics": []string{"news"}, "pow_challenge": ch, "pow_nonce": nonce})
		return string(b)
	}
	r := serve(s, "POST", "/f/newsletter", "application/json", body("", ""), "Accept", "application/json")
	if r.Code != http.StatusBadRequest || errorCode(t, r.Body.String()) != codeProofOfWork {
		t.Fatalf("without proof: got %d %s, want 400 %s", r.Code, r.Body, codeProofOfWork)
	}
	if got := serve(s, "GET", "/f/newsletter/challenge", "", "", "Origin", "https://evil.example"); got.Code != http.StatusForbidden {
		t.Errorf("challenge for a foreign origin: got %d, want 403", got.Code)
	}
	cr := serve(s, "GET", "/f/newsletter/challenge", "", "", "Origin", "https://shop.example")
	var c struct {
		Challenge string `json:"challenge"`
		Bits      int    `json:"bits"`
	}
	if err := json.Unmarshal(cr.Body.Bytes(), &c); err != nil || cr.Code != http.StatusOK || c.Bits != 10 {
		t.Fatalf("challenge: got %d %s, want 200 with bits 10", cr.Code, cr.Body)
	}
	if got := cr.Header().Get("Access-Control-Allow-Origin"); got != "https://shop.example" {
		t.Errorf("challenge CORS: got %q, want the allowed origin", got)
	}
	if got := cr.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("challenge Cache-Control: got %q, want no-store", got)
	}
	nonce := solvePoW(t, c.Challenge, c.Bits)
	if r := serve(s, "POST", "/f/newsletter", "application/json", body(c.Challenge, nonce), "Accept", "application/json"); r.Code != http.StatusAccepted {
		t.Fatalf("with proof: got %d %s, want 202", r.Code, r.Body)
	}
	r = serve(s, "POST", "/f/newsletter", "application/json", body(c.Challenge, nonce), "Accept", "application/json")
	if r.Code != http.StatusBadRequest || errorCode(t, r.Body.String()) != codeProofOfWork {
		t.Errorf("replayed proof: got %d %s, want 400 %s", r.Code, r.Body, codeProofOfWork)
	}
	// The hosted page loads the solver and says why it needs JavaScript;
	// its CSP allows exactly that.
	page := serve(s, "GET", "/f/newsletter", "", "")
	for _, want := range []string{`data-optin-pow="/f/newsletter/challenge"`, `<script src="/f/newsletter/embed.js?locale=en" defer>`, `name="pow_nonce"`, "<noscript>"} {
		if !strings.Contains(page.Body.String(), want) {
			t.Errorf("hosted PoW page lacks %s", want)
		}
	}
	if csp := page.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("hosted PoW page CSP: got %q, want script-src and connect-src 'self'", csp)
	}
	// An HTML post without proof gets the form again, in its language.
	r = serve(s, "POST", "/f/newsletter", "application/x-www-form-urlencoded", "email=p@example.com&topics=news&locale=it")
	if r.Code != http.StatusBadRequest || !strings.Contains(r.Body.String(), "controllo antispam") {
		t.Errorf("HTML post without proof: got %d, want 400 with the Italian message", r.Code)
	}
}

// TestSignupConfirmBrake: every signup that passes the other checks takes
// from the brake, whether it queues a mail or not, so "fresh, probe,
// fresh" answers the same when the probed address is known, unknown or a
// honeypot hit: the brake says nothing about an address.
func TestSignupConfirmBrake(t *testing.T) {
	probes := map[string]struct{ email, website string }{
		"known address":   {"a@example.com", ""},
		"unknown address": {"b@example.com", ""},
		"honeypot":        {"c@example.com", "spam"},
	}
	for name, probe := range probes {
		t.Run(name, func(t *testing.T) {
			s, _ := newPublicServer(t, nil, func(c *Config) { c.ConfirmBrake = Brake{PerSecond: 0.001, Burst: 2} })
			steps := []struct {
				email, website string
				want           int
			}{
				{"a@example.com", "", http.StatusAccepted}, // queues a mail: 1 left
				{probe.email, probe.website, http.StatusAccepted},
				{"d@example.com", "", http.StatusTooManyRequests}, // 0 left, whatever the probe was
				{"a@example.com", "", http.StatusTooManyRequests},
			}
			for i, st := range steps {
				b, _ := json.Marshal(map[string]any{"email": st.email, "topics": []string{"news"}, "website": st.website})
				r := serve(s, "POST", "/f/newsletter", "application/json", string(b), "Accept", "application/json")
				if r.Code != st.want {
					t.Fatalf("step %d (%s): got %d %s, want %d", i, st.email, r.Code, r.Body, st.want)
				}
				if r.Code == http.StatusTooManyRequests {
					if ra, err := strconv.Atoi(r.Header().Get("Retry-After")); err != nil || ra < 1 {
						t.Errorf("step %d: Retry-After %q, want whole seconds >= 1", i, r.Header().Get("Retry-After"))
					}
					if code := errorCode(t, r.Body.String()); code != consent.ERateLimited {
						t.Errorf("step %d: code %q, want %q", i, code, consent.ERateLimited)
					}
				}
			}
		})
	}
}

func TestEmbedJS(t *testing.T) {
	evil := `</script><img src=x onerror=alert(1)>"'` + "\u2028"
	s, db := newPublicServer(t, func(f *consent.Form) {
		f.Wording = map[string]string{"en": "Pick " + evil, "it": "Scegli"}
		f.PrivacyURL = "javascript:alert(1)"
	}, nil)
	if _, err := db.UpdateTopic(context.Background(), consent.Actor{Name: "test"}, consent.Topic{ID: "news", Name: "News " + evil, Description: "About " + evil}); err != nil {
		t.Fatal(err)
	}
	r := serve(s, "GET", "/f/newsletter/embed.js", "", "")
	if r.Code != http.StatusOK {
		t.Fatalf("status: got %d, want 200", r.Code)
	}
	headers := map[string]string{
		"Content-Type":  "application/javascript; charset=utf-8",
		"Cache-Control": "public, max-age=300",
		"Vary":          "Accept-Language",
	}
	for k, want := range headers {
		if got := r.Header().Get(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	js := r.Body.String()
	data := js[strings.LastIndex(js, "\n})(")+4:]
	var d embedData
	if err := json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimSpace(data), ");")), &d); err != nil {
		t.Fatalf("embedded data is not JSON: %v\n%s", err, data)
	}
	if strings.ContainsAny(data, "<>\u2028") {
		t.Errorf("embedded data holds raw <, > or U+2028: %s", data)
	}
	if got, want := d.Topics[0].Name, "News "+evil; got != want {
		t.Errorf("topic name: got %q, want %q", got, want)
	}
	if got, want := d.Privacy, publicBase+"/privacy"; got != want {
		t.Errorf("privacy link: got %q, want %q (never a javascript: URL)", got, want)
	}
	if got, want := d.Action, publicBase+"/f/newsletter"; got != want {
		t.Errorf("action: got %q, want %q", got, want)
	}
	if strings.Contains(js, "innerHTML") || strings.Contains(js, "insertAdjacentHTML") || strings.Contains(js, "document.write") {
		t.Error("embed.js parses HTML")
	}
	if !strings.Contains(d.Notice, "Example Ltd") || !strings.Contains(d.Notice, "1 Main St") {
		t.Errorf("notice lacks the controller and postal address: %q", d.Notice)
	}

	locales := []struct{ query, accept, want, wording string }{
		{"?locale=it", "sv", "it", "Scegli"},
		{"", "sv-SE,sv;q=0.9", "sv", "Kryssa för varje ämne du vill få e-post om:"}, // no sv wording, no form locale: the catalog's
		{"?locale=xx", "", "en", "Pick " + evil},
	}
	for _, l := range locales {
		r := serve(s, "GET", "/f/newsletter/embed.js"+l.query, "", "", "Accept-Language", l.accept)
		js := r.Body.String()
		var d embedData
		json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimSpace(js[strings.LastIndex(js, "\n})(")+4:]), ");")), &d)
		if d.Locale != l.want || d.Wording != l.wording || d.T["submit"] == "" {
			t.Errorf("embed.js%s with Accept-Language %q: got locale %q wording %q, want %q %q", l.query, l.accept, d.Locale, d.Wording, l.want, l.wording)
		}
	}
	if r := serve(s, "GET", "/f/nope/embed.js", "", ""); r.Code != http.StatusNotFound {
		t.Errorf("unknown form: got %d, want 404", r.Code)
	}
}

func TestCSPSources(t *testing.T) {
	in := []string{"https://shop.example", "http://127.0.0.1:8080", "https://a.example; script-src *", "https://b.example/path",
		"javascript:alert(1)", "https://c.example 'unsafe-inline'", "*"}
	got := cspSources(in)
	want := []string{"https://shop.example", "http://127.0.0.1:8080"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("cspSources: got %q, want %q", got, want)
	}
}

func TestSuccessURL(t *testing.T) {
	tests := []struct {
		url  string
		want bool
	}{
		{"https://shop.example/thanks", true},
		{"http://127.0.0.1/ok", true},
		{"", false},
		{"javascript:alert(1)", false},
		{"//evil.example", false},
		{"/relative", false},
		{"data:text/html,x", false},
	}
	for _, tt := range tests {
		if _, got := successURL(&consent.Form{SuccessURL: tt.url}); got != tt.want {
			t.Errorf("successURL(%q): got %v, want %v", tt.url, got, tt.want)
		}
	}
}

// rawKeyRE matches a catalog key that a page printed instead of a string.
var rawKeyRE = regexp.MustCompile(`\b(form|embed|signup|thanks|error|privacy|manage|confirm|expired|invalid|notme|mail)\.[a-z_]+(\.[a-z_]+)?\b`)

// TestPagesRenderInEveryLocale renders every page that needs no token in
// each locale, picked by ?locale= and by Accept-Language, and checks the
// page is in that language with no catalog key left raw.
func TestPagesRenderInEveryLocale(t *testing.T) {
	s, _ := newPublicServer(t, nil, nil)
	submit := map[string]string{"en": "Subscribe", "it": "Iscriviti", "sv": "Prenumerera"}
	pages := []struct {
		path   string
		status int
	}{
		{"/f/newsletter", 200},
		{"/f/newsletter/thanks", 200},
		{"/privacy", 200},
		{"/manage", 200},
		{"/f/nope", 404},
		{"/confirm/garbage", 400},
		{"/unsubscribe/garbage", 400},
	}
	for _, loc := range s.cfg.Catalog.Locales() {
		for _, p := range pages {
			for _, how := range []string{"query", "header"} {
				path, accept := p.path, ""
				if how == "query" {
					path += "?locale=" + loc
				} else {
					accept = loc + ";q=0.9, de;q=0.5"
				}
				r := serve(s, "GET", path, "", "", "Accept-Language", accept)
				body := r.Body.String()
				if r.Code != p.status {
					t.Errorf("%s %s (%s): status %d, want %d", loc, p.path, how, r.Code, p.status)
				}
				if how == "query" && strings.Contains(p.path, "garbage") {
					continue // a broken link's page follows Accept-Language only
				}
				if !strings.Contains(body, `<html lang="`+loc+`">`) {
					t.Errorf("%s %s (%s): page not in %s", loc, p.path, how, loc)
				}
				if k := rawKeyRE.FindString(body); k != "" {
					t.Errorf("%s %s (%s): raw catalog key %q in page", loc, p.path, how, k)
				}
				if p.path == "/f/newsletter" && !strings.Contains(body, submit[loc]) {
					t.Errorf("%s form page lacks %q", loc, submit[loc])
				}
			}
		}
	}
}

// TestFormShowsNoticeBeforeSubmit checks what GDPR Art. 7 and 13 ask of
// the hosted form: unticked boxes, the wording, the controller and postal
// address, the privacy link.
func TestFormShowsNoticeBeforeSubmit(t *testing.T) {
	s, _ := newPublicServer(t, func(f *consent.Form) { f.PrivacyURL = "https://shop.example/privacy" }, nil)
	body := serve(s, "GET", "/f/newsletter", "", "").Body.String()
	for _, want := range []string{"Example Ltd", "1 Main St, Springfield", `href="https://shop.example/privacy"`,
		"Tick each topic", `type="checkbox" name="topics" value="news">`} {
		if !strings.Contains(body, want) {
			t.Errorf("form page lacks %q", want)
		}
	}
	if strings.Contains(body, "checked") {
		t.Error("form page pre-ticks a box (GDPR Recital 32)")
	}
	priv := serve(s, "GET", "/privacy?locale=sv", "", "").Body.String()
	for _, want := range []string{"Example Ltd", "1 Main St", "Product news", "Integritetsskyddsmyndigheten"} {
		if !strings.Contains(priv, want) {
			t.Errorf("privacy page lacks %q", want)
		}
	}
}

// TestEmbedSolverMatchesServer runs embed.js's SHA-256 and solver under
// Node.js, when it is installed, and checks the server accepts what the
// browser code finds. The browser test covers the same in Chromium.
func TestEmbedSolverMatchesServer(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("skipping: node not installed (the browser test runs the solver in Chromium)")
	}
	s, _ := newPublicServer(t, nil, nil)
	g := s.pow
	ch, _, err := g.issue("newsletter", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	inputs := []string{"", "abc", strings.Repeat("x", 55), strings.Repeat("x", 56), strings.Repeat("y", 64), ch + "12345"}
	in, _ := json.Marshal(map[string]any{"inputs": inputs, "challenge": ch, "bits": 12})
	script := `const D = {t: {}};
const src = require("fs").readFileSync(0, "utf8");
const i = src.indexOf("\n");
const args = JSON.parse(src.slice(0, i));
const body = src.slice(i + 1);
const m = new Function("D", body.slice(0, body.indexOf("// proof fetches")) + "; return {sha256, ascii, solve};")(D);
const out = {hashes: args.inputs.map(s => m.sha256(m.ascii(s)).map(w => (w >>> 0).toString(16).padStart(8, "0")).join(""))};
m.solve(args.challenge, args.bits, n => { out.nonce = n; console.log(JSON.stringify(out)); });`
	cmd := exec.Command(node, "-e", script)
	cmd.Stdin = strings.NewReader(string(in) + "\n" + string(s.embedJS))
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var out struct {
		Hashes []string `json:"hashes"`
		Nonce  string   `json:"nonce"`
	}
	if err := json.Unmarshal(outb, &out); err != nil {
		t.Fatalf("node output %q: %v", outb, err)
	}
	for i, in := range inputs {
		if want := fmt.Sprintf("%x", sha256.Sum256([]byte(in))); out.Hashes[i] != want {
			t.Errorf("sha256 of %d bytes: embed.js %s, want %s", len(in), out.Hashes[i], want)
		}
	}
	if err := g.verify(t.Context(), "newsletter", 12, ch, out.Nonce, time.Now()); err != nil {
		t.Errorf("the server refuses embed.js's solution %q: %v", out.Nonce, err)
	}
}
