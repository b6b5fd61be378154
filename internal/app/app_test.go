package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"optin/internal/config"
	"optin/internal/smtptest"
	"optin/internal/testclock"
)

const testAdminKey = "test-admin-key-0123456789abcdefghijklmnop"

// personUA is the user agent of a person's browser.
const personUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

// service is optin running for real: HTTP on a loopback port, bbolt in a
// temp dir (or PostgreSQL, see store_test.go), mail through the
// in-process SMTP server.
type service struct {
	t     *testing.T
	app   *App
	url   string
	smtp  *smtptest.Server
	logs  *lockedBuffer // the service's log
	clock *testclock.Clock
	done  chan error
	stop  context.CancelFunc
}

func startService(t *testing.T, tweak func(*config.Config)) *service {
	t.Helper()
	return startServiceWith(t, smtptest.Options{}, tweak)
}

// startServiceWith is startService with a relay set up by opts.
func startServiceWith(t *testing.T, opts smtptest.Options, tweak func(*config.Config)) *service {
	t.Helper()
	srv := smtptest.Start(t, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Listen = ln.Addr().String()
	cfg.BaseURL = "http://" + ln.Addr().String()
	cfg.DataDir = t.TempDir()
	cfg.Mail.Transport = config.TransportSMTP
	cfg.Mail.From = "Example News <news@example.com>"
	cfg.Mail.SMTP = config.SMTP{Host: srv.Host(), Port: srv.Port(), TLS: config.TLSNone}
	useTestStore(t, &cfg)
	if tweak != nil {
		tweak(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	clk := testclock.Real()
	logs := &lockedBuffer{}
	a, err := Open(Options{Config: cfg, BootstrapKey: testAdminKey, Now: clk.Now, Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	a.Worker.Backoff = func(int) time.Duration { return 50 * time.Millisecond }
	a.Worker.Poll = 50 * time.Millisecond
	a.Webhooks.Poll = 50 * time.Millisecond
	a.Webhooks.MaxAttempts = 8 // 2.5 s of failures with this backoff
	a.Webhooks.Backoff = func(n int) time.Duration { return min(20*time.Millisecond<<(n-1), 500*time.Millisecond) }
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{t: t, app: a, url: cfg.BaseURL, smtp: srv, logs: logs, clock: clk, done: make(chan error, 1), stop: cancel}
	go func() { s.done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() { s.shutdown() })
	return s
}

func (s *service) shutdown() {
	if s.stop == nil {
		return
	}
	s.stop()
	s.stop = nil
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("Serve: %v", err)
		}
	case <-time.After(patience):
		s.t.Error("Serve did not return after shutdown")
	}
}

// patience is how long a test waits for the service before it gives up:
// for an answer to a request, or for something it does in the
// background. Only a broken service makes a test wait it out, so it is
// long: under -race on a loaded machine a large request or a mail can
// take tens of seconds. Timing is measured in benchmarks, not here.
const patience = 2 * time.Minute

// client never follows redirects, so tests see them.
var client = &http.Client{
	Timeout:       patience,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type response struct {
	status int
	header http.Header
	body   string
}

func (s *service) do(method, path, contentType, body string, header ...string) response {
	s.t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = s.url + path
	}
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	// A person's browser, unless the test says otherwise: Go's own user
	// agent is an automation signature (see internal/scanner).
	req.Header.Set("User-Agent", personUA)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, string(b)}
}

func (s *service) signupJSON(email string, topics ...string) response {
	s.t.Helper()
	b, _ := json.Marshal(map[string]any{"email": email, "topics": topics, "page": "https://shop.example/news?utm=x"})
	return s.do("POST", "/f/newsletter", "application/json", string(b), "Accept", "application/json", "User-Agent", "e2e-test/1")
}

func (s *service) admin(path string, v any) int {
	s.t.Helper()
	r := s.do("GET", "/api/v1"+path, "", "", "Authorization", "Bearer "+testAdminKey)
	if v != nil && r.status == http.StatusOK {
		if err := json.Unmarshal([]byte(r.body), v); err != nil {
			s.t.Fatalf("decoding %s: %v\n%s", path, err, r.body)
		}
	}
	return r.status
}

type subscriber struct {
	ID            string `json:"id"`
	Email         string `json:"email"`
	Name          string `json:"name"`
	Subscriptions map[string]struct {
		Status string `json:"status"`
		Basis  string `json:"basis"`
	} `json:"subscriptions"`
}

func (s *service) subscriber(email string) (subscriber, bool) {
	s.t.Helper()
	var out struct{ Items []subscriber }
	if st := s.admin("/subscribers?q="+url.QueryEscape(email), &out); st != http.StatusOK {
		s.t.Fatalf("subscriber lookup: status %d", st)
	}
	if len(out.Items) == 0 {
		return subscriber{}, false
	}
	return out.Items[0], true
}

type event struct {
	Type      string   `json:"type"`
	Field     string   `json:"field"`
	Topics    []string `json:"topics"`
	Source    string   `json:"source"`
	Page      string   `json:"page"`
	Wording   string   `json:"wording"`
	MessageID string   `json:"message_id"`
	Personal  *struct {
		Email     string `json:"email"`
		IP        string `json:"ip"`
		UserAgent string `json:"user_agent"`
	} `json:"personal"`
	WordingText *struct {
		Text string `json:"text"`
	} `json:"wording_text"`
}

func (s *service) events(id string) []event {
	s.t.Helper()
	var out struct{ Items []event }
	if st := s.admin("/subscribers/"+id+"/consents", &out); st != http.StatusOK {
		s.t.Fatalf("consents: status %d", st)
	}
	return out.Items
}

func (s *service) waitMails(n int) []smtptest.Message {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	msgs, err := s.smtp.Wait(ctx, n)
	if err != nil {
		s.t.Fatalf("waiting for %d mails: got %d: %v", n, len(msgs), err)
	}
	return msgs
}

// parsedMail is a received mail with its text part decoded.
type parsedMail struct {
	header mail.Header
	text   string
}

func parseMail(t *testing.T, raw []byte) parsedMail {
	t.Helper()
	h, text, _ := mailParts(t, raw)
	if text == "" {
		t.Fatal("no text/plain part")
	}
	return parsedMail{header: h, text: text}
}

var linkRE = regexp.MustCompile(`http://127\.0\.0\.1:\d+/(confirm|not-me)/[A-Za-z0-9._-]+`)

func links(t *testing.T, text string) (confirm, notMe string) {
	t.Helper()
	for _, l := range linkRE.FindAllString(text, -1) {
		if strings.Contains(l, "/confirm/") {
			confirm = l
		} else {
			notMe = l
		}
	}
	if confirm == "" || notMe == "" {
		t.Fatalf("links missing in mail:\n%s", text)
	}
	return confirm, notMe
}

// TestDoubleOptIn walks the main path: signup, mail, GET changes nothing,
// POST confirms, the consent proof is complete and the ledger verifies.
func TestDoubleOptIn(t *testing.T) {
	s := startService(t, nil)

	r := s.signupJSON("Ann@Example.com", "news")
	if got, want := r.status, http.StatusAccepted; got != want {
		t.Fatalf("signup status: got %d, want %d (%s)", got, want, r.body)
	}
	if got, want := strings.TrimSpace(r.body), `{"status":"pending"}`; got != want {
		t.Errorf("signup body: got %s, want %s", got, want)
	}
	sub, ok := s.subscriber("ann@example.com")
	if !ok {
		t.Fatal("subscriber not stored")
	}
	if got, want := sub.Subscriptions["news"].Status, "pending"; got != want {
		t.Errorf("status after signup: got %q, want %q", got, want)
	}

	m := parseMail(t, s.waitMails(1)[0].Data)
	if got, want := m.header.Get("To"), "<Ann@example.com>"; got != want {
		t.Errorf("To: got %q, want %q", got, want)
	}
	for _, h := range []string{"User-Agent", "X-Mailer"} {
		if v := m.header.Get(h); v != "" {
			t.Errorf("%s header present: %q", h, v)
		}
	}
	confirm, notMe := links(t, m.text)
	if got, want := m.header.Get("List-Unsubscribe"), "<"+notMe+">"; got != want {
		t.Errorf("List-Unsubscribe: got %q, want %q", got, want)
	}
	if got, want := m.header.Get("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click"; got != want {
		t.Errorf("List-Unsubscribe-Post: got %q, want %q", got, want)
	}

	// A link scanner's GET changes nothing.
	if r := s.do("GET", confirm, "", ""); r.status != http.StatusOK || !strings.Contains(r.body, `method="post"`) {
		t.Fatalf("GET confirm: status %d, body lacks a POST form", r.status)
	}
	if sub, _ := s.subscriber("ann@example.com"); sub.Subscriptions["news"].Status != "pending" {
		t.Fatalf("GET confirm changed the status to %q", sub.Subscriptions["news"].Status)
	}

	if r := s.do("POST", confirm, "application/x-www-form-urlencoded", "", "User-Agent", "browser/2"); r.status != http.StatusOK {
		t.Fatalf("POST confirm: got %d, want 200", r.status)
	}
	sub, _ = s.subscriber("ann@example.com")
	if got, want := sub.Subscriptions["news"].Status, "confirmed"; got != want {
		t.Errorf("status after confirm: got %q, want %q", got, want)
	}
	if got, want := sub.Subscriptions["news"].Basis, "consent"; got != want {
		t.Errorf("basis: got %q, want %q", got, want)
	}

	// Idempotent: a second POST succeeds and records nothing new.
	if r := s.do("POST", confirm, "", ""); r.status != http.StatusOK {
		t.Errorf("second POST confirm: got %d, want 200", r.status)
	}
	evs := s.events(sub.ID)
	if got, want := len(evs), 2; got != want {
		t.Fatalf("events: got %d, want %d", got, want)
	}
	req, conf := evs[0], evs[1]
	msgID := strings.Trim(m.header.Get("Message-ID"), "<>")
	checks := []struct{ name, got, want string }{
		{"requested type", req.Type, "requested"},
		{"requested source", req.Source, "form:newsletter"},
		{"requested page (query stripped)", req.Page, "https://shop.example/news"},
		{"requested message id", req.MessageID, msgID},
		{"requested ip", req.Personal.IP, "127.0.0.1"},
		{"requested user agent", req.Personal.UserAgent, "e2e-test/1"},
		{"requested email", req.Personal.Email, "Ann@example.com"},
		{"confirmed type", conf.Type, "confirmed"},
		{"confirmed message id", conf.MessageID, msgID},
		{"confirmed user agent", conf.Personal.UserAgent, "browser/2"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if len(req.Wording) != 64 || req.WordingText == nil || req.WordingText.Text == "" {
		t.Errorf("requested event lacks the wording hash and text: %+v", req)
	}
	var rep struct {
		OK     bool `json:"ok"`
		Events int  `json:"events"`
	}
	s.admin("/ledger/verify", &rep)
	if !rep.OK || rep.Events != 2 {
		t.Errorf("ledger verify: got %+v, want ok with 2 events", rep)
	}
}

// TestSameAnswer checks that new, pending and confirmed addresses get the
// same answer, and that repeats send no second mail.
func TestSameAnswer(t *testing.T) {
	s := startService(t, nil)
	first := s.signupJSON("bob@example.com", "news")
	m := parseMail(t, s.waitMails(1)[0].Data)
	pending := s.signupJSON("bob@example.com", "news")
	confirm, _ := links(t, m.text)
	s.do("POST", confirm, "", "")
	confirmed := s.signupJSON("bob@example.com", "news")
	for name, r := range map[string]response{"pending": pending, "confirmed": confirmed} {
		if r.status != first.status || r.body != first.body {
			t.Errorf("%s address: got %d %s, want %d %s", name, r.status, r.body, first.status, first.body)
		}
	}
	// The signup transaction commits before the answer: an empty outbox
	// now means no second mail was queued.
	queued, parked, err := s.app.DB.OutboxDepth(context.Background())
	if err != nil || queued != 0 || parked != 0 {
		t.Errorf("outbox after repeats: queued %d parked %d err %v, want 0 0", queued, parked, err)
	}
	if got, want := s.smtp.Count(), 1; got != want {
		t.Errorf("mails: got %d, want %d", got, want)
	}
}

// TestLinks covers expired, tampered and cross-purpose tokens and the
// not-me one-click.
func TestLinks(t *testing.T) {
	s := startService(t, nil)
	s.signupJSON("cy@example.com", "news")
	m := parseMail(t, s.waitMails(1)[0].Data)
	confirm, notMe := links(t, m.text)

	tampered := confirm[:len(confirm)-3] + "AAA"
	if r := s.do("POST", tampered, "", ""); r.status != http.StatusBadRequest {
		t.Errorf("tampered token: got %d, want 400", r.status)
	}
	tok := notMe[strings.LastIndex(notMe, "/")+1:]
	if r := s.do("POST", "/confirm/"+tok, "", ""); r.status != http.StatusBadRequest {
		t.Errorf("not-me token on /confirm: got %d, want 400", r.status)
	}
	if sub, _ := s.subscriber("cy@example.com"); sub.Subscriptions["news"].Status != "pending" {
		t.Errorf("bad tokens changed the status to %q", sub.Subscriptions["news"].Status)
	}

	s.clock.Advance(73 * time.Hour)
	for _, method := range []string{"GET", "POST"} {
		r := s.do(method, confirm, "", "")
		if r.status != http.StatusGone || !strings.Contains(r.body, `href="/f/newsletter"`) {
			t.Errorf("%s expired confirm: got %d, want 410 with a link to the form", method, r.status)
		}
	}

	// RFC 8058 one-click on the confirmation mail's List-Unsubscribe URL.
	r := s.do("POST", notMe, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click")
	if r.status != http.StatusOK || r.header.Get("Location") != "" {
		t.Fatalf("one-click not-me: got %d Location %q, want 200 without redirect", r.status, r.header.Get("Location"))
	}
	// Blocked: a new signup sends nothing for 30 days.
	s.clock.Advance(48 * time.Hour)
	s.signupJSON("cy@example.com", "news")
	if queued, _, _ := s.app.DB.OutboxDepth(context.Background()); queued != 0 {
		t.Errorf("signup after not-me queued %d mails, want 0", queued)
	}
}

// TestSignupValidation covers every refusal of POST /f/{form}; none may
// store anything.
func TestSignupValidation(t *testing.T) {
	s := startService(t, func(c *config.Config) { c.Limits.SignupPerIP = config.Rate{N: 100, Per: time.Minute} })
	tests := []struct {
		name       string
		path, ct   string
		body       string
		header     []string
		wantStatus int
		wantCode   string
	}{
		{"unknown form", "/f/nope", "application/json", `{"email":"a@example.com","topics":["news"]}`, nil, 404, "not_found"},
		{"bad email", "/f/newsletter", "application/json", `{"email":"Bob <b@example.com>","topics":["news"]}`, nil, 400, "invalid"},
		{"no topics", "/f/newsletter", "application/json", `{"email":"a@example.com"}`, nil, 400, "invalid"},
		{"topic not offered", "/f/newsletter", "application/json", `{"email":"a@example.com","topics":["other"]}`, nil, 400, "invalid"},
		{"crlf in name", "/f/newsletter", "application/json", `{"email":"a@example.com","name":"A\r\nBcc: x@evil.test","topics":["news"]}`, nil, 400, "invalid"},
		{"bidi override in name", "/f/newsletter", "application/json", `{"email":"a@example.com","name":"Ann \u202egnp.exe","topics":["news"]}`, nil, 400, "invalid"},
		{"bidi isolate in name", "/f/newsletter", "application/json", `{"email":"a@example.com","name":"Ann \u2066x\u2069","topics":["news"]}`, nil, 400, "invalid"},
		{"line separator in name", "/f/newsletter", "application/json", `{"email":"a@example.com","name":"Ann\u2028Bob","topics":["news"]}`, nil, 400, "invalid"},
		{"paragraph separator in name", "/f/newsletter", "application/json", `{"email":"a@example.com","name":"Ann\u2029Bob","topics":["news"]}`, nil, 400, "invalid"},
		{"bad page", "/f/newsletter", "application/json", `{"email":"a@example.com","topics":["news"],"page":"javascript:alert(1)"}`, nil, 400, "invalid"},
		{"broken json", "/f/newsletter", "application/json", `{"email":`, nil, 400, "invalid"},
		{"origin not allowed", "/f/newsletter", "application/json", `{"email":"a@example.com","topics":["news"]}`, []string{"Origin", "https://evil.example"}, 403, "forbidden"},
		{"too large", "/f/newsletter", "application/json", `{"email":"a@example.com","topics":["news"],"name":"` + strings.Repeat("x", 70<<10) + `"}`, nil, 413, "too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do("POST", tt.path, tt.ct, tt.body, append([]string{"Accept", "application/json"}, tt.header...)...)
			if r.status != tt.wantStatus {
				t.Fatalf("status: got %d, want %d (%s)", r.status, tt.wantStatus, r.body)
			}
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error.Code != tt.wantCode || e.Error.Message == "" {
				t.Errorf("error body: got %s, want code %q and a message", r.body, tt.wantCode)
			}
		})
	}
	if _, ok := s.subscriber("a@example.com"); ok {
		t.Error("a refused signup stored a subscriber")
	}

	// A filled honeypot gets the normal answer and stores nothing.
	r := s.do("POST", "/f/newsletter", "application/x-www-form-urlencoded", "email=hp@example.com&topics=news&website=http://spam")
	if r.status != http.StatusSeeOther {
		t.Errorf("honeypot: got %d, want 303", r.status)
	}
	if _, ok := s.subscriber("hp@example.com"); ok {
		t.Error("honeypot signup stored a subscriber")
	}
}

// TestHTMLSignup posts the hosted form like a browser without JavaScript.
func TestHTMLSignup(t *testing.T) {
	s := startService(t, nil)
	page := s.do("GET", "/f/newsletter", "", "")
	if page.status != http.StatusOK || !strings.Contains(page.body, `name="topics" value="news"`) {
		t.Fatalf("form page: status %d, no news checkbox", page.status)
	}
	if strings.Contains(page.body, "checked") {
		t.Error("form page pre-ticks a box (GDPR Recital 32)")
	}
	r := s.do("POST", "/f/newsletter", "application/x-www-form-urlencoded", "email=dee@example.com&topics=news&name=Dee",
		"Origin", s.url)
	if got, want := r.status, http.StatusSeeOther; got != want {
		t.Fatalf("status: got %d, want %d", got, want)
	}
	if loc := r.header.Get("Location"); !strings.HasPrefix(loc, "/f/newsletter/thanks") {
		t.Errorf("Location: got %q, want the thanks page", loc)
	}
	if r := s.do("GET", r.header.Get("Location"), "", ""); r.status != http.StatusOK {
		t.Errorf("thanks page: got %d", r.status)
	}
	bad := s.do("POST", "/f/newsletter", "application/x-www-form-urlencoded", "email=nope&topics=news")
	if bad.status != http.StatusBadRequest || !strings.Contains(bad.body, `role="alert"`) {
		t.Errorf("bad HTML signup: got %d, want 400 page with the error", bad.status)
	}
}

// TestRateLimit checks 429 and Retry-After once the per-IP budget is
// spent; loopback gets no exemption.
func TestRateLimit(t *testing.T) {
	s := startService(t, func(c *config.Config) { c.Limits.SignupPerIP = config.Rate{N: 3, Per: 10 * time.Minute} })
	for i := range 3 {
		if r := s.signupJSON("r@example.com", "news"); r.status != http.StatusAccepted {
			t.Fatalf("signup %d: got %d", i, r.status)
		}
	}
	r := s.signupJSON("r@example.com", "news")
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Errorf("4th signup: got %d Retry-After %q, want 429 with Retry-After", r.status, r.header.Get("Retry-After"))
	}
}

// TestSMTPOutage: the SMTP server is down when people sign up; every mail
// arrives once it is back, nothing is lost.
func TestSMTPOutage(t *testing.T) {
	s := startService(t, nil)
	if err := s.smtp.Stop(); err != nil {
		t.Fatal(err)
	}
	addrs := []string{"o1@example.com", "o2@example.com", "o3@example.com"}
	for _, a := range addrs {
		if r := s.signupJSON(a, "news"); r.status != http.StatusAccepted {
			t.Fatalf("signup during outage: got %d", r.status)
		}
	}
	s.waitFailed(len(addrs), 1)
	if err := s.smtp.Restart(); err != nil {
		t.Fatal(err)
	}
	msgs := s.waitMails(len(addrs))
	got := map[string]int{}
	for _, m := range msgs {
		got[m.To[0]]++
	}
	for _, a := range addrs {
		if got[a] != 1 {
			t.Errorf("mails to %s: got %d, want 1", a, got[a])
		}
	}
}

// TestRestartResumesOutbox: jobs queued when the service stops are sent
// after it starts again on the same data.
func TestRestartResumesOutbox(t *testing.T) {
	s := startService(t, nil)
	if err := s.smtp.Stop(); err != nil {
		t.Fatal(err)
	}
	s.signupJSON("resume@example.com", "news")
	s.shutdown()
	if err := s.smtp.Restart(); err != nil {
		t.Fatal(err)
	}
	cfg := s.app.cfg
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		t.Skipf("port %s not free again: %v", cfg.Listen, err)
	}
	a, err := Open(Options{Config: cfg, BootstrapKey: testAdminKey})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	if got := s.waitMails(1); got[0].To[0] != "resume@example.com" {
		t.Errorf("resumed mail to %q", got[0].To[0])
	}
}

// TestAdminAuth: 401 without or with a wrong key.
func TestAdminAuth(t *testing.T) {
	s := startService(t, nil)
	for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", testAdminKey}} {
		if r := s.do("GET", "/api/v1/topics", "", "", h...); r.status != http.StatusUnauthorized {
			t.Errorf("auth %v: got %d, want 401", h, r.status)
		}
	}
	if st := s.admin("/topics", nil); st != http.StatusOK {
		t.Errorf("with key: got %d, want 200", st)
	}
	if r := s.do("GET", "/healthz", "", ""); r.status != http.StatusOK {
		t.Errorf("healthz: %d", r.status)
	}
	if r := s.do("GET", "/readyz", "", ""); r.status != http.StatusOK {
		t.Errorf("readyz: %d", r.status)
	}
}
