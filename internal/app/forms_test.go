package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"optin/internal/config"
	"optin/internal/consent"
	"optin/internal/i18n"
	"optin/internal/smtptest"
	"optin/templates"
)

// shopOrigin is the one other origin the test form accepts.
const shopOrigin = "https://shop.example"

// updateForm changes the newsletter form through the store.
func (s *service) updateForm(fn func(*consent.Form)) {
	s.t.Helper()
	ctx := context.Background()
	f, err := s.app.DB.Form(ctx, "newsletter")
	if err != nil {
		s.t.Fatal(err)
	}
	fn(&f)
	if _, err := s.app.DB.UpdateForm(ctx, consent.Actor{Name: "test"}, f); err != nil {
		s.t.Fatal(err)
	}
}

// mailTo waits for the mail to addr and returns it.
func (s *service) mailTo(addr string) smtptest.Message {
	s.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		for _, m := range s.smtp.Messages() {
			if len(m.To) == 1 && m.To[0] == addr {
				return m
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no mail to %s", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mailParts splits a received mail into its header and decoded text and
// HTML parts.
func mailParts(t *testing.T, raw []byte) (h mail.Header, text, html string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = p
		if p.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
			r = quotedprintable.NewReader(p)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		switch ct := p.Header.Get("Content-Type"); {
		case strings.HasPrefix(ct, "text/plain"):
			text = string(b)
		case strings.HasPrefix(ct, "text/html"):
			html = string(b)
		}
	}
	return m.Header, text, html
}

func decodeHeader(t *testing.T, v string) string {
	t.Helper()
	d, err := new(mime.WordDecoder).DecodeHeader(v)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func signupBody(email, locale string) string {
	b, _ := json.Marshal(map[string]any{"email": email, "topics": []string{"news"}, "locale": locale})
	return string(b)
}

// TestLocaleChoice checks the order that picks the language of pages and
// mails: the explicit locale field, then the form's locale, then
// Accept-Language, then en. The confirmation mail and the pages its links
// open are in the language of the signup.
func TestLocaleChoice(t *testing.T) {
	cat, err := i18n.Load(templates.FS, "locales")
	if err != nil {
		t.Fatal(err)
	}
	s := startService(t, func(c *config.Config) { c.Limits.SignupPerIP = config.Rate{N: 100, Per: time.Minute} })
	tests := []struct {
		name                         string
		formLocale, explicit, accept string
		want                         string
	}{
		{"explicit beats form and browser", "sv", "it", "sv", "it"},
		{"form beats browser", "sv", "", "it", "sv"},
		{"browser", "", "", "it-IT,it;q=0.9,en;q=0.5", "it"},
		{"unsupported explicit falls through", "", "de", "sv-SE", "sv"},
		{"nothing known: en", "", "fr", "de-DE", "en"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.updateForm(func(f *consent.Form) { f.Locale = tt.formLocale })
			l := cat.For(tt.want)
			addr := fmt.Sprintf("loc%d@example.com", i)
			r := s.do("POST", "/f/newsletter", "application/json", signupBody(addr, tt.explicit),
				"Accept", "application/json", "Accept-Language", tt.accept)
			if r.status != http.StatusAccepted {
				t.Fatalf("signup: got %d %s", r.status, r.body)
			}
			h, text, html := mailParts(t, s.mailTo(addr).Data)
			if got, want := decodeHeader(t, h.Get("Subject")), l.T("mail.confirm.subject"); got != want {
				t.Errorf("subject: got %q, want %q", got, want)
			}
			for _, want := range []string{l.T("mail.confirm.action"), l.T("mail.confirm.notme")} {
				if !strings.Contains(text, want) {
					t.Errorf("text part lacks %q:\n%s", want, text)
				}
			}
			if !strings.Contains(html, `<html lang="`+tt.want+`">`) {
				t.Errorf("HTML part not in %s", tt.want)
			}
			confirm, notMe := links(t, text)
			// The pages behind the links speak the signup's language,
			// whatever the clicking browser prefers.
			for _, u := range []string{confirm, notMe} {
				page := s.do("GET", u, "", "", "Accept-Language", "en")
				if !strings.Contains(page.body, `<html lang="`+tt.want+`">`) {
					t.Errorf("GET %s: page not in %s", u[:strings.LastIndex(u, "/")], tt.want)
				}
			}
			done := s.do("POST", confirm, "", "", "Accept-Language", "en")
			if !strings.Contains(done.body, l.T("confirmed.title")) {
				t.Errorf("confirmed page lacks %q", l.T("confirmed.title"))
			}
			// An HTML signup goes to the thanks page in the same language.
			r = s.do("POST", "/f/newsletter", "application/x-www-form-urlencoded",
				url.Values{"email": {"h" + addr}, "topics": {"news"}, "locale": {tt.explicit}}.Encode(), "Accept-Language", tt.accept)
			wantLoc := "/f/newsletter/thanks" // the thanks page finds the language itself
			if tt.explicit == tt.want {
				wantLoc += "?locale=" + tt.want // only the body named it
			}
			if got, want := r.header.Get("Location"), wantLoc; got != want {
				t.Errorf("HTML signup Location: got %q, want %q", got, want)
			}
		})
	}
}

// TestBurstSignupsOneMail fires 100 concurrent signups for one address:
// every one gets the same answer and exactly one mail arrives (no list
// bombing).
func TestBurstSignupsOneMail(t *testing.T) {
	s := startService(t, func(c *config.Config) { c.Limits.SignupPerIP = config.Rate{N: 1000, Per: time.Minute} })
	const n = 100
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", s.url+"/f/newsletter", strings.NewReader(signupBody("burst@example.com", "")))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json")
			res, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			statuses[i] = res.StatusCode
		})
	}
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusAccepted {
			t.Errorf("signup %d: got %d, want 202", i, st)
		}
	}
	msgs := s.waitMails(1)
	s.waitOutboxEmpty()
	time.Sleep(200 * time.Millisecond) // a second mail would have been sent by now
	if got := s.smtp.Count(); got != 1 {
		t.Errorf("mails: got %d, want 1", got)
	}
	if got := msgs[0].To; len(got) != 1 || got[0] != "burst@example.com" {
		t.Errorf("recipients: got %q, want [burst@example.com]", got)
	}
}

// TestUniformAnswers: a new, pending, confirmed, unsubscribed, not-me
// blocked or operator-suppressed address gets the same status, body and
// Location, as JSON and as an HTML form post: the form tells no one who
// is subscribed.
func TestUniformAnswers(t *testing.T) {
	s := startService(t, func(c *config.Config) { c.Limits.SignupPerIP = config.Rate{N: 1000, Per: time.Minute} })
	ctx := context.Background()

	s.signupJSON("pending@example.com", "news")
	s.waitMails(1)
	s.confirmed("confirmed@example.com")
	unsub := s.confirmed("unsub@example.com")
	if r := s.do("POST", s.unsubscribeURL(unsub, ""), "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click"); r.status != http.StatusOK {
		t.Fatalf("unsubscribe: %d", r.status)
	}
	s.signupJSON("blocked@example.com", "news")
	_, notMe := links(t, parseMail(t, s.mailTo("blocked@example.com").Data).text)
	if r := s.do("POST", notMe, "", ""); r.status != http.StatusOK {
		t.Fatalf("not-me: %d", r.status)
	}
	a, _ := consent.ParseAddress("operator@example.com")
	if _, _, err := s.app.DB.AddSuppression(ctx, consent.Actor{Name: "test"}, a, "", "complaint"); err != nil {
		t.Fatal(err)
	}
	s.waitOutboxEmpty()

	states := []string{"new@example.com", "pending@example.com", "confirmed@example.com", "unsub@example.com",
		"blocked@example.com", "operator@example.com"}
	kinds := []struct {
		name, ct string
		body     func(addr string) string
		header   []string
	}{
		{"json", "application/json", func(a string) string { return signupBody(a, "") }, []string{"Accept", "application/json"}},
		{"html", "application/x-www-form-urlencoded", func(a string) string { return "topics=news&email=" + url.QueryEscape(a) }, nil},
	}
	for _, k := range kinds {
		var first response
		for i, addr := range states {
			r := s.do("POST", "/f/newsletter", k.ct, k.body(addr), k.header...)
			got := fmt.Sprintf("%d %q %q", r.status, r.body, r.header.Get("Location"))
			if i == 0 {
				first = r
				continue
			}
			want := fmt.Sprintf("%d %q %q", first.status, first.body, first.header.Get("Location"))
			if got != want {
				t.Errorf("%s %s: got %s, want %s as for a new address", k.name, addr, got, want)
			}
		}
	}
}

// TestSubnetRateLimit: clients behind a trusted proxy, spread over one
// /24 or one /64, share the subnet's budget (3x the per-IP one).
func TestSubnetRateLimit(t *testing.T) {
	s := startService(t, func(c *config.Config) {
		c.TrustedProxies = []string{"127.0.0.1"}
		c.Limits.SignupPerIP = config.Rate{N: 2, Per: 10 * time.Minute}
	})
	post := func(ip string, i int) response {
		return s.do("POST", "/f/newsletter", "application/json", signupBody(fmt.Sprintf("n%d@example.com", i), ""),
			"Accept", "application/json", "X-Forwarded-For", ip)
	}
	steps := []struct {
		ip   string
		want int
	}{
		{"203.0.113.1", 202}, {"203.0.113.1", 202}, {"203.0.113.1", 429}, // per IP
		{"203.0.113.2", 202}, {"203.0.113.2", 202},
		{"203.0.113.3", 202}, {"203.0.113.3", 202}, {"203.0.113.4", 429}, // the /24 has spent 6
		{"198.51.100.1", 202}, // another /24
		{"2001:db8:1:1::1", 202}, {"2001:db8:1:1::1", 202}, {"2001:db8:1:1::2", 202}, {"2001:db8:1:1::2", 202},
		{"2001:db8:1:1::3", 202}, {"2001:db8:1:1::3", 202}, {"2001:db8:1:1::4", 429}, // the /64 has spent 6
		{"2001:db8:1:2::1", 202}, // another /64
	}
	for i, st := range steps {
		r := post(st.ip, i)
		if r.status != st.want {
			t.Errorf("step %d from %s: got %d, want %d", i, st.ip, r.status, st.want)
		}
		if r.status == http.StatusTooManyRequests {
			if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
				t.Errorf("step %d: Retry-After %q", i, r.header.Get("Retry-After"))
			}
		}
	}
	// The HTML form gets a page, in its language, with the same status.
	r := s.do("POST", "/f/newsletter", "application/x-www-form-urlencoded", "email=z@example.com&topics=news&locale=sv",
		"X-Forwarded-For", "203.0.113.9")
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, "För många försök") {
		t.Errorf("HTML signup over the limit: got %d Retry-After %q, want 429 page in Swedish", r.status, r.header.Get("Retry-After"))
	}
	// /manage has the same two limits: one request from each of 16 IPs
	// in one /24 spends the subnet's 3 x 5.
	for i := range 16 {
		want := http.StatusAccepted
		if i == 15 {
			want = http.StatusTooManyRequests
		}
		r := s.do("POST", "/manage", "application/json", `{"email":"m@example.com"}`, "Accept", "application/json",
			"X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i))
		if r.status != want {
			t.Fatalf("manage from IP %d of the /24: got %d, want %d", i, r.status, want)
		}
	}
}

// TestRequestSizeLimits: bodies over 64 KiB get 413 in every encoding,
// and headers over 32 KiB are refused before any handler runs.
func TestRequestSizeLimits(t *testing.T) {
	s := startService(t, func(c *config.Config) { c.Limits.SignupPerIP = config.Rate{N: 100, Per: time.Minute} })
	big := strings.Repeat("x", 70<<10)
	var mp bytes.Buffer
	w := multipart.NewWriter(&mp)
	w.WriteField("email", "a@example.com")
	w.WriteField("topics", "news")
	w.WriteField("name", big)
	w.Close()
	tests := []struct {
		name, path, ct, body string
		header               []string
	}{
		{"json", "/f/newsletter", "application/json", `{"email":"a@example.com","topics":["news"],"name":"` + big + `"}`, []string{"Accept", "application/json"}},
		{"urlencoded", "/f/newsletter", "application/x-www-form-urlencoded", "email=a@example.com&topics=news&name=" + big, nil},
		{"multipart", "/f/newsletter", w.FormDataContentType(), mp.String(), nil},
		{"manage", "/manage", "application/x-www-form-urlencoded", "email=" + big, nil},
	}
	for _, tt := range tests {
		r := s.do("POST", tt.path, tt.ct, tt.body, tt.header...)
		if r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: got %d, want 413", tt.name, r.status)
		}
	}
	if _, ok := s.subscriber("a@example.com"); ok {
		t.Error("an oversized signup stored a subscriber")
	}
	if r := s.do("GET", "/f/newsletter", "", "", "X-Big", strings.Repeat("y", 40<<10)); r.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("40 KiB header: got %d, want 431", r.status)
	}
}

// TestEmbedOrigins covers the three ways to embed a form: the hosted page
// (framed only by allowed origins), embed.js's CORS requests, and a plain
// cross-origin HTML form that works without JavaScript.
func TestEmbedOrigins(t *testing.T) {
	s := startService(t, nil)
	s.updateForm(func(f *consent.Form) {
		f.AllowedOrigins = []string{shopOrigin}
		f.SuccessURL = shopOrigin + "/welcome"
	})
	csp := s.do("GET", "/f/newsletter", "", "").header.Get("Content-Security-Policy")
	for _, want := range []string{"frame-ancestors 'self' " + shopOrigin + ";", "form-action 'self' " + shopOrigin} {
		if !strings.Contains(csp, want) {
			t.Errorf("hosted page CSP %q lacks %q", csp, want)
		}
	}
	if js := s.do("GET", "/f/newsletter/embed.js", "", ""); js.status != 200 || !strings.HasPrefix(js.header.Get("Content-Type"), "application/javascript") {
		t.Errorf("embed.js: got %d %q", js.status, js.header.Get("Content-Type"))
	}

	preflight := []struct {
		origin   string
		want     int
		wantACAO string
	}{
		{shopOrigin, 204, shopOrigin},
		{"https://evil.example", 403, ""},
		{"null", 403, ""},
		{"", 403, ""},
	}
	for _, p := range preflight {
		var h []string
		if p.origin != "" {
			h = []string{"Origin", p.origin}
		}
		r := s.do("OPTIONS", "/f/newsletter", "", "", append(h, "Access-Control-Request-Method", "POST")...)
		if r.status != p.want || r.header.Get("Access-Control-Allow-Origin") != p.wantACAO {
			t.Errorf("OPTIONS from %q: got %d ACAO %q, want %d %q", p.origin, r.status, r.header.Get("Access-Control-Allow-Origin"), p.want, p.wantACAO)
		}
	}

	posts := []struct {
		name, ct, body string
		header         []string
		want           int
		wantACAO       string
		wantLocation   string
	}{
		{"embed.js from the shop", "application/json", signupBody("e1@example.com", ""), []string{"Origin", shopOrigin, "Accept", "application/json"}, 202, shopOrigin, ""},
		{"embed.js from elsewhere", "application/json", signupBody("e2@example.com", ""), []string{"Origin", "https://evil.example", "Accept", "application/json"}, 403, "", ""},
		{"plain form from the shop", "application/x-www-form-urlencoded", "email=e3@example.com&topics=news", []string{"Origin", shopOrigin}, 303, shopOrigin, shopOrigin + "/welcome"},
		{"plain form from elsewhere", "application/x-www-form-urlencoded", "email=e4@example.com&topics=news", []string{"Origin", "https://evil.example"}, 403, "", ""},
		{"referer only, elsewhere", "application/x-www-form-urlencoded", "email=e5@example.com&topics=news", []string{"Referer", "https://evil.example/page"}, 403, "", ""},
		{"the hosted page itself", "application/x-www-form-urlencoded", "email=e6@example.com&topics=news", []string{"Origin", s.url}, 303, s.url, shopOrigin + "/welcome"},
	}
	for _, p := range posts {
		r := s.do("POST", "/f/newsletter", p.ct, p.body, p.header...)
		if r.status != p.want || r.header.Get("Access-Control-Allow-Origin") != p.wantACAO || r.header.Get("Location") != p.wantLocation {
			t.Errorf("%s: got %d ACAO %q Location %q, want %d %q %q", p.name, r.status, r.header.Get("Access-Control-Allow-Origin"),
				r.header.Get("Location"), p.want, p.wantACAO, p.wantLocation)
		}
	}
	for _, a := range []string{"e2@example.com", "e4@example.com", "e5@example.com"} {
		if _, ok := s.subscriber(a); ok {
			t.Errorf("refused origin stored %s", a)
		}
	}
	// Without a page field or Referer, the ledger records the posting
	// origin as where the consent was given (GDPR Art. 7(1): the proof
	// names its source).
	sub, ok := s.subscriber("e3@example.com")
	if !ok {
		t.Fatal("e3 not stored")
	}
	if evs := s.events(sub.ID); len(evs) != 1 || evs[0].Source != "form:newsletter" || evs[0].Page != shopOrigin {
		t.Errorf("requested event: got %+v, want source form:newsletter, page %s", evs, shopOrigin)
	}
}

// evil are strings that would run script if a page, embed.js or a mail
// put them into HTML unescaped.
const (
	evilTag  = `<img src=x onerror=alert(1)>`
	evilAttr = `" onmouseover="alert(1)`
	evilJS   = `</script><script>alert(1)</script>`
)

func assertInert(t *testing.T, where, body string) {
	t.Helper()
	for _, raw := range []string{"<img src=x", `" onmouseover="`, "<script>alert"} {
		if strings.Contains(body, raw) {
			t.Errorf("%s contains %q unescaped", where, raw)
		}
	}
}

// TestXSSInert puts script into every field a person or an operator
// controls (name, page, locale, topic name and description, form wording)
// and checks every page, embed.js and the mail's HTML part keep it text.
func TestXSSInert(t *testing.T) {
	s := startService(t, nil)
	ctx := context.Background()
	if _, err := s.app.DB.UpdateTopic(ctx, consent.Actor{Name: "test"}, consent.Topic{ID: "news", Name: "News " + evilTag + evilAttr, Description: "About " + evilJS}); err != nil {
		t.Fatal(err)
	}
	s.updateForm(func(f *consent.Form) { f.Wording = map[string]string{"en": "Pick " + evilTag + evilJS + evilAttr} })

	b, _ := json.Marshal(map[string]any{"email": "x@example.com", "topics": []string{"news"}, "name": "Mal " + evilTag + evilAttr,
		"page": "https://shop.example/" + evilJS, "locale": `"><script>alert(1)</script>`})
	if r := s.do("POST", "/f/newsletter", "application/json", string(b), "Accept", "application/json"); r.status != http.StatusAccepted {
		t.Fatalf("signup: got %d %s", r.status, r.body)
	}
	h, text, html := mailParts(t, s.waitMails(1)[0].Data)
	assertInert(t, "mail HTML part", html)
	if !strings.Contains(html, "&lt;img src=x") {
		t.Error("mail HTML part lost the topic name's text")
	}
	if strings.Contains(h.Get("Subject"), "<") {
		t.Errorf("subject carries markup: %q", h.Get("Subject"))
	}
	confirm, notMe := links(t, text)

	pages := map[string]string{
		"form page":      "/f/newsletter",
		"form error":     "/f/newsletter?locale=" + url.QueryEscape(evilJS),
		"thanks page":    "/f/newsletter/thanks?locale=" + url.QueryEscape(evilJS),
		"privacy page":   "/privacy",
		"confirm page":   confirm,
		"not-me page":    notMe,
		"unknown form":   "/f/" + url.PathEscape(evilTag),
		"manage page":    "/manage?locale=" + url.QueryEscape(evilAttr),
		"embed.js":       "/f/newsletter/embed.js?locale=" + url.QueryEscape(evilJS),
		"bad token page": "/confirm/" + url.PathEscape(evilTag),
	}
	for name, path := range pages {
		r := s.do("GET", path, "", "")
		assertInert(t, name, r.body)
		if name == "embed.js" && strings.Contains(r.body[strings.LastIndex(r.body, "\n})(")+4:], "<") {
			t.Error("embed.js data holds a raw <")
		}
	}
	// An HTML form post that fails shows the form again, still inert.
	r := s.do("POST", "/f/newsletter", "application/x-www-form-urlencoded", "email="+url.QueryEscape(evilTag)+"&topics=news&name="+url.QueryEscape(evilAttr))
	if r.status != http.StatusBadRequest {
		t.Errorf("bad HTML signup: got %d, want 400", r.status)
	}
	assertInert(t, "form with error", r.body)
	done := s.do("POST", confirm, "", "")
	assertInert(t, "confirmed page", done.body)

	// Confirmed, the address gets mail with the name: escaped.
	before := s.smtp.Count()
	if r := s.do("POST", "/manage", "application/json", `{"email":"x@example.com"}`, "Accept", "application/json"); r.status != http.StatusAccepted {
		t.Fatalf("manage: got %d", r.status)
	}
	_, _, html = mailParts(t, s.waitMails(before + 1)[before].Data)
	assertInert(t, "preference mail HTML part", html)
	if !strings.Contains(html, "Mal &lt;img src=x") {
		t.Error("preference mail HTML part lost the name's text")
	}
}

// TestNoOpenRedirect: the only place a signup ever redirects to is the
// form's configured success URL (an absolute http(s) URL) or optin's own
// thanks page; nothing in a request picks the target, and error pages
// never redirect.
func TestNoOpenRedirect(t *testing.T) {
	s := startService(t, func(c *config.Config) { c.Limits.SignupPerIP = config.Rate{N: 100, Per: time.Minute} })
	extra := "&success_url=https://evil.example&redirect=https://evil.example&next=//evil.example&return_to=https://evil.example&redirect_uri=https://evil.example"
	post := func(i int) response {
		return s.do("POST", "/f/newsletter?next=https://evil.example&redirect=//evil.example", "application/x-www-form-urlencoded",
			fmt.Sprintf("email=r%d@example.com&topics=news", i)+extra, "Referer", "https://evil.example/x")
	}
	tests := []struct {
		successURL, want string
	}{
		{"", "/f/newsletter/thanks"},
		{shopOrigin + "/welcome", shopOrigin + "/welcome"},
		{"javascript:alert(1)", "/f/newsletter/thanks"},
		{"//evil.example/x", "/f/newsletter/thanks"},
	}
	for i, tt := range tests {
		s.updateForm(func(f *consent.Form) {
			f.SuccessURL = tt.successURL
			f.AllowedOrigins = []string{"https://evil.example"}
		})
		r := post(i)
		if r.status != http.StatusSeeOther || r.header.Get("Location") != tt.want {
			t.Errorf("success URL %q: got %d Location %q, want 303 %q", tt.successURL, r.status, r.header.Get("Location"), tt.want)
		}
	}
	s.updateForm(func(f *consent.Form) { f.AllowedOrigins = nil })
	errs := []struct {
		name, method, path, ct, body string
		header                       []string
	}{
		{"bad input", "POST", "/f/newsletter?next=https://evil.example", "application/x-www-form-urlencoded", "email=nope&topics=news" + extra, nil},
		{"foreign origin", "POST", "/f/newsletter", "application/x-www-form-urlencoded", "email=a@example.com&topics=news" + extra, []string{"Origin", "https://evil.example"}},
		{"unknown form", "POST", "/f/nope?next=https://evil.example", "application/x-www-form-urlencoded", "email=a@example.com&topics=news" + extra, nil},
		{"thanks", "GET", "/f/newsletter/thanks?locale=https://evil.example&next=https://evil.example", "", "", nil},
		{"bad token", "GET", "/confirm/x?next=https://evil.example", "", "", nil},
		{"bad token post", "POST", "/confirm/x?next=https://evil.example", "", "", nil},
		{"unsubscribe", "GET", "/unsubscribe/x?next=https://evil.example", "", "", nil},
	}
	for _, e := range errs {
		r := s.do(e.method, e.path, e.ct, e.body, e.header...)
		if r.header.Get("Location") != "" || r.status/100 == 3 {
			t.Errorf("%s: got %d Location %q, want no redirect", e.name, r.status, r.header.Get("Location"))
		}
	}
}

// headerCount counts the header lines named name in a raw message.
func headerCount(raw []byte, name string) int {
	hdr, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(hdr))
	for sc.Scan() {
		if k, _, ok := strings.Cut(sc.Text(), ":"); ok && strings.EqualFold(k, name) {
			n++
		}
	}
	return n
}

// TestCRLFNeverReachesHeaders tries to inject header lines through the
// name and the address, in JSON and urlencoded bodies, and checks what the
// real SMTP server receives: one recipient, exactly one To and Subject,
// no injected header.
func TestCRLFNeverReachesHeaders(t *testing.T) {
	s := startService(t, func(c *config.Config) { c.Limits.SignupPerIP = config.Rate{N: 100, Per: time.Minute} })
	refused := []struct {
		name, ct, body string
	}{
		{"json name", "application/json", `{"email":"c1@example.com","topics":["news"],"name":"Eve\r\nBcc: evil@evil.test"}`},
		{"json name lf", "application/json", `{"email":"c1@example.com","topics":["news"],"name":"Eve\nSubject: x"}`},
		{"json name nel", "application/json", `{"email":"c1@example.com","topics":["news"],"name":"Eve\u0085Bcc: evil@evil.test"}`},
		{"json name line separator", "application/json", `{"email":"c1@example.com","topics":["news"],"name":"Eve\u2028Bcc: evil@evil.test"}`},
		{"json name paragraph separator", "application/json", `{"email":"c1@example.com","topics":["news"],"name":"Eve\u2029Subject: pwned"}`},
		{"json email", "application/json", `{"email":"c1@example.com\r\nBcc: evil@evil.test","topics":["news"]}`},
		{"form name", "application/x-www-form-urlencoded", "email=c1@example.com&topics=news&name=Eve%0D%0ABcc:%20evil@evil.test"},
		{"form email", "application/x-www-form-urlencoded", "email=c1@example.com%0D%0ABcc:%20evil@evil.test&topics=news"},
	}
	for _, tt := range refused {
		if r := s.do("POST", "/f/newsletter", tt.ct, tt.body); r.status != http.StatusBadRequest {
			t.Errorf("%s: got %d, want 400", tt.name, r.status)
		}
	}
	// A name that reads like header fields on one line is allowed, and
	// still never reaches a header.
	b, _ := json.Marshal(map[string]any{"email": "c2@example.com", "topics": []string{"news"},
		"name": "Eve Bcc: evil@evil.test Subject: pwned"})
	if r := s.do("POST", "/f/newsletter", "application/json", string(b), "Accept", "application/json"); r.status != http.StatusAccepted {
		t.Fatalf("header-like name: got %d %s", r.status, r.body)
	}
	msgs := s.waitMails(1)
	s.waitOutboxEmpty()
	if got := s.smtp.Count(); got != 1 {
		t.Fatalf("mails: got %d, want 1 (refused signups sent mail)", got)
	}
	m := msgs[0]
	if len(m.To) != 1 || m.To[0] != "c2@example.com" {
		t.Errorf("RCPT TO: got %q, want [c2@example.com]", m.To)
	}
	for name, want := range map[string]int{"To": 1, "Subject": 1, "From": 1, "Bcc": 0, "Cc": 0} {
		if got := headerCount(m.Data, name); got != want {
			t.Errorf("%s header lines: got %d, want %d", name, got, want)
		}
	}
	h, _, _ := mailParts(t, m.Data)
	if strings.Contains(h.Get("Subject"), "pwned") || strings.Contains(h.Get("To"), "evil") {
		t.Errorf("name leaked into headers: To %q Subject %q", h.Get("To"), h.Get("Subject"))
	}
}

// TestHostedFormDetails: HEAD answers like GET; the heading names the
// site; the postal address has a line of its own under the notice; the
// notice and the privacy link come before the button; after a refused signup the form
// shows what was typed and ticked again.
func TestHostedFormDetails(t *testing.T) {
	s := startService(t, withPostal)
	get := s.do("GET", "/f/newsletter", "", "")
	if !strings.Contains(get.body, "<h1>Subscribe to emails from Example News</h1>") {
		t.Errorf("the form's heading does not name the site:\n%s", get.body)
	}
	if !strings.Contains(get.body, "any email.\n"+testPostal+"</p>") || !strings.Contains(get.body, `<p class="small notice">`) {
		t.Errorf("the postal address is not on a line of its own under the notice:\n%s", get.body)
	}
	head := s.do("HEAD", "/f/newsletter", "", "")
	if head.status != get.status || head.header.Get("Content-Type") != get.header.Get("Content-Type") || head.body != "" {
		t.Errorf("HEAD: got %d %q with %d bytes, want GET's %d %q and no body", head.status, head.header.Get("Content-Type"), len(head.body), get.status, get.header.Get("Content-Type"))
	}
	privacy, button := strings.Index(get.body, `/privacy" target="_blank"`), strings.Index(get.body, `<button type="submit"`)
	if privacy < 0 || button < 0 || privacy > button {
		t.Errorf("the privacy link (at %d) must come before the button (at %d)", privacy, button)
	}
	form := url.Values{"email": {"not an address"}, "name": {"Ann <b>"}, "topics": {"news"}}.Encode()
	r := s.do("POST", "/f/newsletter", "application/x-www-form-urlencoded", form)
	if r.status != http.StatusBadRequest {
		t.Fatalf("bad address: got %d, want 400", r.status)
	}
	for _, want := range []string{`value="not an address"`, `value="Ann &lt;b&gt;"`, `value="news" checked`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("refused form lacks %s:\n%s", want, r.body)
		}
	}
}
