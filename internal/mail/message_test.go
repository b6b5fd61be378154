package mail

import (
	"bytes"
	"flag"
	"mime"
	netmail "net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"optin/internal/consent"
	"optin/internal/i18n"
	"optin/internal/token"
	"optin/templates"
)

var update = flag.Bool("update", false, "update golden files")

const (
	testFrom    = "Optin Test <noreply@optin.test>"
	testBaseURL = "http://127.0.0.1:8080"
	testPostal  = "1 Test Street, 12345 Testville"
)

// testDate is the Date of built messages and the fixed clock of renderers.
var testDate = time.Date(2026, 5, 4, 12, 30, 0, 0, time.UTC)

// testMessage returns a plain message with every optional field empty.
func testMessage() Message {
	return Message{
		To:        "ada@example.com",
		MessageID: "0123456789abcdefghijklmnop@optin.test",
		Subject:   "Please confirm your subscription",
		Text:      "Hello Ada,\n\nplease confirm.\n",
		HTML:      "<p>Hello Ada,</p><p>please confirm.</p>",
	}
}

// serialize builds m and returns the message exactly as it would go over
// the wire.
func serialize(t *testing.T, m Message) []byte {
	t.Helper()
	msg, err := Build(testFrom, m, testDate)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return msg.Data
}

// parse parses a serialized message with net/mail, the way a receiver
// would.
func parse(t *testing.T, raw []byte) *netmail.Message {
	t.Helper()
	pm, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("net/mail.ReadMessage: %v\n%s", err, raw)
	}
	return pm
}

// header returns every value of the header field name.
func header(pm *netmail.Message, name string) []string {
	return pm.Header[textproto.CanonicalMIMEHeaderKey(name)]
}

func TestBuildHeaders(t *testing.T) {
	const unsub = "https://optin.test/not-me/abc.DEF-ghi_jkl"
	tests := []struct {
		name        string
		unsubscribe string
		listID      string
	}{
		{name: "transactional"},
		{name: "one-click unsubscribe", unsubscribe: unsub},
		{name: "list", unsubscribe: unsub, listID: `"News" <news.list-id.optin.test>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMessage()
			m.Unsubscribe = tt.unsubscribe
			m.ListID = tt.listID
			pm := parse(t, serialize(t, m))

			for _, name := range []string{"Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "Auto-Submitted"} {
				if got := len(header(pm, name)); got != 1 {
					t.Errorf("%s headers: got %d, want 1", name, got)
				}
			}
			for _, name := range []string{"User-Agent", "X-Mailer", "Bcc", "Cc", "Sender", "Reply-To"} {
				if got := header(pm, name); len(got) != 0 {
					t.Errorf("%s header: got %q, want none", name, got)
				}
			}
			if got, want := pm.Header.Get("Message-Id"), "<"+m.MessageID+">"; got != want {
				t.Errorf("Message-ID: got %q, want %q", got, want)
			}
			if got, want := pm.Header.Get("Auto-Submitted"), "auto-generated"; got != want {
				t.Errorf("Auto-Submitted: got %q, want %q (RFC 3834: auto-responders stay quiet)", got, want)
			}
			if got, err := pm.Header.Date(); err != nil || !got.Equal(testDate) {
				t.Errorf("Date: got %v (%v), want %v", got, err, testDate)
			}
			if got, err := pm.Header.AddressList("To"); err != nil || len(got) != 1 || got[0].Address != m.To {
				t.Errorf("To: got %v (%v), want [%s]", got, err, m.To)
			}
			if got, err := pm.Header.AddressList("From"); err != nil || len(got) != 1 ||
				got[0].Address != "noreply@optin.test" || got[0].Name != "Optin Test" {
				t.Errorf("From: got %v (%v), want [Optin Test <noreply@optin.test>]", got, err)
			}
			if got, err := new(mime.WordDecoder).DecodeHeader(pm.Header.Get("Subject")); err != nil || got != m.Subject {
				t.Errorf("Subject: got %q (%v), want %q", got, err, m.Subject)
			}

			lu, lup := header(pm, "List-Unsubscribe"), header(pm, "List-Unsubscribe-Post")
			if tt.unsubscribe == "" {
				if len(lu) != 0 || len(lup) != 0 {
					t.Errorf("List-Unsubscribe: got %q and -Post %q, want neither", lu, lup)
				}
			} else {
				if want := []string{"<" + tt.unsubscribe + ">"}; !slices.Equal(lu, want) {
					t.Errorf("List-Unsubscribe: got %q, want %q", lu, want)
				}
				if want := []string{"List-Unsubscribe=One-Click"}; !slices.Equal(lup, want) {
					t.Errorf("List-Unsubscribe-Post: got %q, want %q", lup, want)
				}
			}
			if got := header(pm, "List-Id"); tt.listID == "" && len(got) != 0 ||
				tt.listID != "" && !slices.Equal(got, []string{tt.listID}) {
				t.Errorf("List-Id: got %q, want %q", got, tt.listID)
			}
		})
	}
}

// TestBuildHeaderInjection checks that CR and LF in outside input never
// start a new header field (RFC 5322, section 2.2).
func TestBuildHeaderInjection(t *testing.T) {
	const evil = "Hi\r\nBcc: x@evil.test"
	tests := []struct {
		name   string
		modify func(*Message)
		// check inspects the parsed message beyond the common checks.
		check func(t *testing.T, pm *netmail.Message)
	}{
		{
			name:   "subject",
			modify: func(m *Message) { m.Subject = evil },
			check: func(t *testing.T, pm *netmail.Message) {
				if got := len(header(pm, "Subject")); got != 1 {
					t.Errorf("Subject headers: got %d, want 1", got)
				}
				got, err := new(mime.WordDecoder).DecodeHeader(pm.Header.Get("Subject"))
				if err != nil || got != evil {
					t.Errorf("decoded Subject: got %q (%v), want %q", got, err, evil)
				}
			},
		},
		{name: "subject LF only", modify: func(m *Message) { m.Subject = "Hi\nBcc: x@evil.test" }},
		{name: "subject CR only", modify: func(m *Message) { m.Subject = "Hi\rBcc: x@evil.test" }},
		{name: "list id", modify: func(m *Message) { m.ListID = evil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMessage()
			tt.modify(&m)
			raw := serialize(t, m)
			pm := parse(t, raw)
			if got := header(pm, "Bcc"); len(got) != 0 {
				t.Errorf("Bcc header: got %q, want none\n%s", got, raw)
			}
			if head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n")); bytes.Contains(head, []byte("\nBcc:")) {
				t.Errorf("serialized header section has a Bcc line:\n%s", head)
			}
			if tt.check != nil {
				tt.check(t, pm)
			}
		})
	}
}

// TestBuildRecipientInjection checks that a To carrying CRLF cannot add a
// recipient: Build must refuse it, or at least produce no Bcc.
func TestBuildRecipientInjection(t *testing.T) {
	for _, to := range []string{
		"a@b.com\r\nBcc: x@evil.test",
		"a@b.com\nBcc: x@evil.test",
		"a@b.com, x@evil.test",
	} {
		m := testMessage()
		m.To = to
		msg, err := Build(testFrom, m, testDate)
		if err != nil {
			continue // refused: the safe answer
		}
		pm := parse(t, msg.Data)
		if got := header(pm, "Bcc"); len(got) != 0 {
			t.Errorf("To %q: Bcc header: got %q, want none", to, got)
		}
		if got, err := pm.Header.AddressList("To"); err != nil || len(got) != 1 {
			t.Errorf("To %q: To header: got %v (%v), want exactly one address", to, got, err)
		}
		if strings.ContainsAny(msg.To, "\r\n,") {
			t.Errorf("To %q: envelope recipient: got %q, want exactly one address", to, msg.To)
		}
	}
}

func TestBuildRejectsUnsafeUnsubscribeURL(t *testing.T) {
	m := testMessage()
	m.Unsubscribe = "https://optin.test/not-me/x>\r\nBcc: x@evil.test"
	if _, err := Build(testFrom, m, testDate); err == nil {
		t.Fatalf("Build with Unsubscribe %q: got nil error, want one", m.Unsubscribe)
	}
}

func TestCheckHeaderURL(t *testing.T) {
	long := "https://optin.test/not-me/"
	tests := []struct {
		url  string
		ok   bool
		name string
	}{
		{name: "https", url: "https://optin.test/not-me/eyJ.eyJ.sig-_", ok: true},
		{name: "http with port", url: "http://127.0.0.1:8080/not-me/abc", ok: true},
		{name: "query", url: "https://optin.test/u?t=abc&l=news", ok: true},
		{name: "900 octets", url: long + strings.Repeat("a", 900-len(long)), ok: true},
		{name: "901 octets", url: long + strings.Repeat("a", 901-len(long))},
		{name: "empty", url: ""},
		{name: "closing bracket", url: "https://optin.test/a>b"},
		{name: "opening bracket", url: "https://optin.test/a<b"},
		{name: "space", url: "https://optin.test/a b"},
		{name: "tab", url: "https://optin.test/a\tb"},
		{name: "CRLF", url: "https://optin.test/a\r\nBcc: x@evil.test"},
		{name: "CR", url: "https://optin.test/a\rb"},
		{name: "LF", url: "https://optin.test/a\nb"},
		{name: "NUL", url: "https://optin.test/a\x00b"},
		{name: "DEL", url: "https://optin.test/a\x7fb"},
		{name: "comma", url: "https://optin.test/a,<mailto:x@evil.test>"},
		{name: "quote", url: `https://optin.test/a"b`},
		{name: "non-ASCII", url: "https://optin.test/ä"},
		{name: "non-ASCII host", url: "https://bücher.test/x"},
		{name: "mailto", url: "mailto:unsubscribe@optin.test"},
		{name: "ftp", url: "ftp://optin.test/x"},
		{name: "javascript", url: "javascript:alert(1)"},
		{name: "scheme-relative", url: "//optin.test/x"},
		{name: "relative", url: "/not-me/x"},
		{name: "lookalike scheme", url: "httpx://optin.test/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkHeaderURL(tt.url)
			if got := err == nil; got != tt.ok {
				t.Errorf("checkHeaderURL(%q): got err %v, want ok=%v", tt.url, err, tt.ok)
			}
		})
	}
}

// TestBuildLineLength checks RFC 5322 sections 2.1.1 and 2.3 on a message
// with the longest List-Unsubscribe URL Build accepts, a long subject and
// long body lines: no line over 998 octets, and CR and LF only as CRLF.
func TestBuildLineLength(t *testing.T) {
	prefix := "https://optin.test/not-me/"
	m := testMessage()
	m.Unsubscribe = prefix + strings.Repeat("x", 900-len(prefix))
	m.Subject = strings.Repeat("Bitte bestätigen Sie Ihr Abonnement ", 40)
	m.Text = strings.Repeat("word ", 500) + "\n" + strings.Repeat("ü", 1200) + "\r\n" + m.Unsubscribe + "\n"
	m.HTML = `<p><a href="` + m.Unsubscribe + `">` + strings.Repeat("long ", 400) + "</a></p>"
	raw := serialize(t, m)

	for i, line := range bytes.Split(raw, []byte("\r\n")) {
		if len(line) > 998 {
			t.Errorf("line %d: got %d octets, want at most 998: %.80q...", i+1, len(line), line)
		}
		if bytes.ContainsAny(line, "\r\n") {
			t.Errorf("line %d: bare CR or LF: %q", i+1, line)
		}
	}
	pm := parse(t, raw)
	if got, want := pm.Header.Get("List-Unsubscribe"), "<"+m.Unsubscribe+">"; got != want {
		t.Errorf("List-Unsubscribe: got %q, want %q", got, want)
	}
	if got, err := new(mime.WordDecoder).DecodeHeader(pm.Header.Get("Subject")); err != nil || got != m.Subject {
		t.Errorf("Subject after folding: got %q (%v), want %q", got, err, m.Subject)
	}
}

// --- Renderer -------------------------------------------------------------

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// newTestRenderer returns a renderer over the embedded templates with a
// fixed clock and key, and the issuer it signs with.
func newTestRenderer(t testing.TB) (*Renderer, *token.Issuer) {
	t.Helper()
	iss, err := token.NewIssuer(testBaseURL, []token.Key{{ID: "k1", Secret: testSecret}},
		func() time.Time { return testDate })
	if err != nil {
		t.Fatalf("token.NewIssuer: %v", err)
	}
	cat, err := i18n.Load(templates.FS, "locales")
	if err != nil {
		t.Fatalf("i18n.Load: %v", err)
	}
	r, err := NewRenderer(RendererConfig{Templates: templates.FS, Catalog: cat, Tokens: iss,
		BaseURL: testBaseURL, From: testFrom, Postal: testPostal, Now: func() time.Time { return testDate }})
	if err != nil {
		t.Fatalf("NewRenderer: %v", err)
	}
	return r, iss
}

// testJob returns a fixed confirmation job. TokenExpires has a sub-second
// part on purpose: tokens carry whole seconds.
func testJob() consent.Job {
	return consent.Job{
		ID: 7, Kind: consent.JobConfirm, To: "ada@example.com", Name: "Ada", Locale: "en",
		Subscriber: "subscriber0000000000000001", Request: "request00000000000000000001",
		Topics: []string{"news"}, MessageID: "message0000000000000000001@optin.test",
		Created: testDate, TokenExpires: testDate.Add(72*time.Hour + 250*time.Millisecond),
	}
}

var testTopics = []consent.Topic{{ID: "news", Name: "Monthly news"}}

var urlRE = regexp.MustCompile(`https?://[^\s"'<>]+`)

func TestRenderConfirm(t *testing.T) {
	r, iss := newTestRenderer(t)
	job := testJob()
	m, err := r.Render(job, testTopics, consent.Brand{})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	if m.To != job.To || m.MessageID != job.MessageID {
		t.Errorf("To, MessageID: got %q, %q, want %q, %q", m.To, m.MessageID, job.To, job.MessageID)
	}
	if got, want := m.Subject, "Please confirm your subscription"; got != want {
		t.Errorf("Subject: got %q, want %q", got, want)
	}

	// Every link in either part, in order of appearance.
	textURLs := urlRE.FindAllString(m.Text, -1)
	if len(textURLs) != 2 {
		t.Fatalf("text part links: got %q, want exactly the confirm and the not-me link", textURLs)
	}
	confirmURL, notMeURL := textURLs[0], textURLs[1]
	if got, want := strings.Count(m.Text, "http"), 2; got != want {
		t.Errorf(`text part: got %d occurrences of "http", want %d`, got, want)
	}
	if got, want := urlRE.FindAllString(m.HTML, -1), textURLs; !slices.Equal(got, want) {
		t.Errorf("HTML part links: got %q, want %q", got, want)
	}
	if got, want := strings.Count(m.HTML, "http"), 2; got != want {
		t.Errorf(`HTML part: got %d occurrences of "http", want %d`, got, want)
	}
	for _, part := range []string{m.Text, m.HTML} {
		if strings.Contains(part, "/unsubscribe/") {
			t.Errorf("confirmation mail links to /unsubscribe/: it must carry no marketing")
		}
	}
	if m.Link != confirmURL {
		t.Errorf("Link: got %q, want the confirm URL %q", m.Link, confirmURL)
	}
	if m.Unsubscribe != notMeURL {
		t.Errorf("Unsubscribe: got %q, want the not-me URL %q", m.Unsubscribe, notMeURL)
	}

	confirmTok, ok := strings.CutPrefix(confirmURL, testBaseURL+"/confirm/")
	if !ok {
		t.Fatalf("confirm URL %q: want prefix %s/confirm/", confirmURL, testBaseURL)
	}
	c, err := iss.Verify(token.Confirm, confirmTok)
	if err != nil {
		t.Fatalf("confirm token: Verify: %v", err)
	}
	if got, want := c.Subject, job.Request; got != want {
		t.Errorf("confirm token subject: got %q, want %q", got, want)
	}
	if got, want := c.ExpiresAt, job.TokenExpires.Truncate(time.Second); !got.Equal(want) {
		t.Errorf("confirm token expiry: got %v, want %v", got, want)
	}
	if _, err := iss.Verify(token.NotMe, confirmTok); err == nil {
		t.Errorf("confirm token verifies as a not-me token")
	}

	notMeTok, ok := strings.CutPrefix(notMeURL, testBaseURL+"/not-me/")
	if !ok {
		t.Fatalf("not-me URL %q: want prefix %s/not-me/", notMeURL, testBaseURL)
	}
	n, err := iss.Verify(token.NotMe, notMeTok)
	if err != nil {
		t.Fatalf("not-me token: Verify: %v", err)
	}
	if got, want := n.Subject, job.Request; got != want {
		t.Errorf("not-me token subject: got %q, want %q", got, want)
	}
	if !n.ExpiresAt.After(c.ExpiresAt) {
		t.Errorf("not-me token expiry %v: want after the confirm expiry %v", n.ExpiresAt, c.ExpiresAt)
	}
	if _, err := iss.Verify(token.Confirm, notMeTok); err == nil {
		t.Errorf("not-me token verifies as a confirm token")
	}

	for _, want := range []string{"Hello Ada,", "Monthly news", "Optin Test", testPostal} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text part: missing %q", want)
		}
		if !strings.Contains(m.HTML, want) {
			t.Errorf("HTML part: missing %q", want)
		}
	}
}

func TestRenderEscapesHTML(t *testing.T) {
	r, _ := newTestRenderer(t)
	job := testJob()
	job.Name = `<script>alert("x")</script>`
	topics := []consent.Topic{{ID: "news", Name: `<img src=x onerror=alert(1)>`}}
	m, err := r.Render(job, topics, consent.Brand{})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	for _, bad := range []string{"<script>", "<img"} {
		if strings.Contains(m.HTML, bad) {
			t.Errorf("HTML part contains unescaped %q:\n%s", bad, m.HTML)
		}
	}
	for _, want := range []string{"&lt;script&gt;", "&lt;img src=x onerror=alert(1)&gt;"} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("HTML part: missing escaped %q:\n%s", want, m.HTML)
		}
	}
	// The text part is text/plain: the name appears as typed.
	if !strings.Contains(m.Text, job.Name) {
		t.Errorf("text part: missing the name %q as typed", job.Name)
	}
}

// Every mail wears the brand: the HTML part a header with the site's
// name and logo in a column of at most 600 px with the accent colour, the
// text part the site's name; a form's brand wins over the configured one
// field by field.
func TestRenderBrand(t *testing.T) {
	r, _ := newTestRenderer(t)
	form := consent.Brand{SiteName: "Bottega Rossi", LogoURL: "https://shop.example/logo.png", AccentColor: "#ffdd00"}
	prefs := testJob()
	prefs.Kind = consent.JobPreferences
	for _, tt := range []struct {
		name          string
		job           consent.Job
		brand         consent.Brand
		site, logo    string
		accent, onAcc string
	}{
		{"confirm, form's brand", testJob(), form, "Bottega Rossi", `<img src="https://shop.example/logo.png"`, "#ffdd00", "#1d2330"},
		{"preferences, configured brand", prefs, consent.Brand{}, "Optin Test", "", consent.DefaultAccent, "#ffffff"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := r.Render(tt.job, testTopics, tt.brand)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{`<div style="font-size:20px;font-weight:bold">` + tt.site + `</div>`, "max-width:600px",
				`role="presentation"`, "border-top:4px solid " + tt.accent, "background:" + tt.accent + ";color:" + tt.onAcc} {
				if !strings.Contains(m.HTML, want) {
					t.Errorf("HTML part lacks %q:\n%s", want, m.HTML)
				}
			}
			if got := strings.Contains(m.HTML, "<img "); got != (tt.logo != "") || !strings.Contains(m.HTML, tt.logo) {
				t.Errorf("HTML part: logo %q expected, img present %v", tt.logo, got)
			}
			if !strings.HasPrefix(m.Text, tt.site+"\n\n") || strings.Contains(m.Text, "<") {
				t.Errorf("text part: want plain text naming %q first, got %.80q", tt.site, m.Text)
			}
		})
	}
}

func TestRenderDefaults(t *testing.T) {
	r, _ := newTestRenderer(t)
	tests := []struct {
		name   string
		modify func(*consent.Job)
		want   string
	}{
		{name: "no name", modify: func(j *consent.Job) { j.Name = "" }, want: "Hello there,"},
		{name: "unknown locale", modify: func(j *consent.Job) { j.Locale = "xx-YY" }, want: "Hello Ada,"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := testJob()
			tt.modify(&job)
			m, err := r.Render(job, testTopics, consent.Brand{})
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if want := "Optin Test\n\n" + tt.want; !strings.HasPrefix(m.Text, want) { // the site, then the greeting
				t.Errorf("text part: got %.40q..., want prefix %q", m.Text, want)
			}
		})
	}
}

func TestRenderUnknownKind(t *testing.T) {
	r, _ := newTestRenderer(t)
	job := testJob()
	job.Kind = "campaign"
	if _, err := r.Render(job, testTopics, consent.Brand{}); err == nil {
		t.Errorf("Render of kind %q: got nil error, want one", job.Kind)
	}
}

// TestRenderBuildRoundTrip renders, builds and serializes a confirmation
// mail, then takes it apart as a receiver would: both parts decode back to
// what was rendered, so encoding breaks no link.
func TestRenderBuildRoundTrip(t *testing.T) {
	r, _ := newTestRenderer(t)
	m, err := r.Render(testJob(), testTopics, consent.Brand{})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	pm := parse(t, serialize(t, m))
	if mt, _, err := mime.ParseMediaType(pm.Header.Get("Content-Type")); err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type: got %q (%v), want multipart/alternative", mt, err)
	}
	parts := map[string]string{}
	for ct, body := range decodeParts(t, pm) {
		parts[ct] = strings.ReplaceAll(string(body), "\r\n", "\n")
	}
	if got, want := parts["text/plain"], m.Text; got != want {
		t.Errorf("text/plain part:\ngot  %q\nwant %q", got, want)
	}
	if got, want := parts["text/html"], m.HTML; got != want {
		t.Errorf("text/html part:\ngot  %q\nwant %q", got, want)
	}
}

// TestRenderGolden pins the rendered confirmation mail, and the
// confirmation and preference mails as they go on the wire. Run with
// -update after a deliberate template, catalog or header change and
// review the diff.
func TestRenderGolden(t *testing.T) {
	r, _ := newTestRenderer(t)
	m, err := r.Render(testJob(), testTopics, consent.Brand{})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	prefs := testJob()
	prefs.Kind, prefs.Request, prefs.Topics = consent.JobPreferences, "", nil
	pm, err := r.Render(prefs, nil, consent.Brand{})
	if err != nil {
		t.Fatalf("Render preferences: %v", err)
	}
	for _, tt := range []struct{ file, got string }{
		{"confirm_en.txt.golden", m.Text},
		{"confirm_en.html.golden", m.HTML},
		{"confirm_en.eml.golden", string(serialize(t, m))},
		{"preferences_en.eml.golden", string(serialize(t, pm))},
	} {
		path := filepath.Join("testdata", tt.file)
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tt.got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if tt.got != string(want) {
			t.Errorf("%s: rendered mail differs from the golden file (go test -update to accept):\ngot:\n%s\nwant:\n%s",
				path, tt.got, want)
		}
	}
}

// TestRenderDatesPerLocale: the confirm link's expiry is written the way
// each language writes dates.
func TestRenderDatesPerLocale(t *testing.T) {
	r, _ := newTestRenderer(t)
	exp := testJob().TokenExpires.UTC()
	for locale, layout := range map[string]string{"en": "2 Jan 2006 15:04 MST", "it": "02/01/2006 15:04 MST", "sv": "2006-01-02 15:04 MST"} {
		job := testJob()
		job.Locale = locale
		m, err := r.Render(job, testTopics, consent.Brand{})
		if err != nil {
			t.Fatalf("%s: %v", locale, err)
		}
		if want := exp.Format(layout); !strings.Contains(m.Text, want) {
			t.Errorf("%s: text lacks the expiry written %q", locale, want)
		}
	}
}

// TestRenderCacheMatchesFullRender: a mail rendered from the per-kind
// cache is byte for byte the mail a fresh renderer produces, for names
// that need escaping too.
func TestRenderCacheMatchesFullRender(t *testing.T) {
	warm, _ := newTestRenderer(t)
	if _, err := warm.Render(testJob(), testTopics, consent.Brand{}); err != nil { // fills the cache
		t.Fatal(err)
	}
	for _, kind := range []consent.JobKind{consent.JobConfirm, consent.JobPreferences} {
		for _, name := range []string{"", "Ada", `<script>alert("x")</script> & 'co'`, "Åsa Öberg 😀", "zqOptinMarkerNamezq"} {
			job := testJob()
			job.Kind, job.Name = kind, name
			for _, locale := range []string{"en", "it", "sv"} {
				job.Locale = locale
				if _, err := warm.Render(job, testTopics, consent.Brand{}); err != nil { // first of its key: full
					t.Fatal(err)
				}
				got, err := warm.Render(job, testTopics, consent.Brand{}) // from the cache
				if err != nil {
					t.Fatal(err)
				}
				fresh, _ := newTestRenderer(t)
				want, err := fresh.Render(job, testTopics, consent.Brand{})
				if err != nil {
					t.Fatal(err)
				}
				if got.Text != want.Text || got.HTML != want.HTML {
					t.Errorf("%s %s %q: cached rendering differs from a full one", kind, locale, name)
				}
			}
		}
	}
	// The cache is really used: every kind and language passed its check.
	n := 0
	warm.renders.Range(func(k, v any) bool {
		if !v.(*rendered).ok {
			t.Errorf("cache entry %q failed its check and is rendered in full", k)
		}
		n++
		return true
	})
	if n != 6 {
		t.Errorf("cache entries: got %d, want 6 (2 kinds x 3 languages)", n)
	}
}

// TestRenderNotice: the information notice (GDPR Art. 14) names the
// controller, the purposes, the basis and the origin of the data in each
// language, and carries one-click objection (RFC 8058) and a List-Id.
func TestRenderNotice(t *testing.T) {
	r, _ := newTestRenderer(t)
	job := testJob()
	job.Kind, job.Request, job.TokenExpires = consent.JobNotice, "", time.Time{}
	job.Basis, job.Origin = consent.BasisLegitimateInterest, "the shop's loyalty cards"
	topics := []consent.Topic{{ID: "news", Name: "Monthly news", Description: "new products first"}}
	subjects := map[string]bool{}
	for _, locale := range []string{"en", "it", "sv"} {
		job.Locale = locale
		m, err := r.Render(job, topics, consent.Brand{})
		if err != nil {
			t.Fatalf("%s: %v", locale, err)
		}
		subjects[m.Subject] = true
		for _, want := range []string{"Monthly news", "new products first", "the shop's loyalty cards", testPostal, "6(1)(f)"} {
			if locale == "sv" && want == "6(1)(f)" {
				want = "6.1 f"
			}
			if !strings.Contains(m.Text, want) {
				t.Errorf("%s: text lacks %q:\n%s", locale, want, m.Text)
			}
		}
		if !strings.Contains(m.HTML, "the shop&#39;s loyalty cards") {
			t.Errorf("%s: the HTML part lacks the escaped origin", locale)
		}
		if !strings.HasPrefix(m.Unsubscribe, testBaseURL+"/unsubscribe/") || !strings.Contains(m.Text, m.Unsubscribe) || m.ListID == "" {
			t.Errorf("%s: want one-click unsubscribe in header and text and a List-Id, got %q, %q", locale, m.Unsubscribe, m.ListID)
		}
	}
	if len(subjects) != 3 {
		t.Errorf("subjects: got %v, want one per language", subjects)
	}
	job.Locale, job.Basis, job.Origin = "en", consent.BasisSoftOptIn, ""
	m, err := r.Render(job, topics, consent.Brand{})
	if err != nil || !strings.Contains(m.Text, "you are our customer") || !strings.Contains(m.Text, "our own customer records") {
		t.Errorf("soft opt-in without an origin: got %v\n%s", err, m.Text)
	}
	// A contact on legitimate interest need not be a customer: the notice
	// names the interest pursued (Art. 14(2)(b)) and no customer records.
	job.Basis = consent.BasisLegitimateInterest
	m, err = r.Render(job, topics, consent.Brand{})
	if err != nil || strings.Contains(m.Text, "customer") || !strings.Contains(m.Text, "our dealings with you") ||
		!strings.Contains(m.Text, "legitimate interest in telling people") {
		t.Errorf("legitimate interest without an origin: got %v\n%s", err, m.Text)
	}
}

// TestRenderIntroNamesTheSite: every mail's first sentence names the
// sender by the brand's site name, the name its header shows, not by the
// From address's display name; the Art. 14 notice carries the brand's
// header and its text part opens with the site name like every other mail.
func TestRenderIntroNamesTheSite(t *testing.T) {
	r, _ := newTestRenderer(t)
	brand := consent.Brand{SiteName: "Bottega Rossi"}
	for kind, job := range everyKind() {
		for _, locale := range []string{"en", "it", "sv"} {
			job.Locale = locale
			m, err := r.Render(job, testTopics, brand)
			if err != nil {
				t.Fatalf("%s %s: %v", kind, locale, err)
			}
			if !strings.HasPrefix(m.Text, "Bottega Rossi\n\n") {
				t.Errorf("%s %s: the text part does not open with the site name: %.60q", kind, locale, m.Text)
			}
			if !strings.Contains(m.HTML, `<div style="font-size:20px;font-weight:bold">Bottega Rossi</div>`) {
				t.Errorf("%s %s: the HTML part lacks the brand's header", kind, locale)
			}
			// The first paragraph after the greeting names the site.
			paras := strings.Split(m.Text, "\n\n")
			intro := paras[2]
			if kind == consent.JobReawaken { // the marketer writes the body; the note under it names the sender
				intro = strings.SplitN(strings.SplitN(m.Text, "-- \n", 2)[1], "\n", 2)[0]
			}
			if !strings.Contains(intro, "Bottega Rossi") || strings.Contains(intro, "Optin Test") {
				t.Errorf("%s %s: the intro does not name the site: %q", kind, locale, intro)
			}
		}
	}
}

// TestRenderLinks: in every mail and language, no link text ends in a
// colon, and every mail with an unsubscribe link (all but confirmation
// requests and notices that are not marketing) has a link to the
// preference page beside it, in both parts.
func TestRenderLinks(t *testing.T) {
	r, _ := newTestRenderer(t)
	for kind, job := range everyKind() {
		for _, locale := range []string{"en", "it", "sv"} {
			job.Locale = locale
			m, err := r.Render(job, testTopics, consent.Brand{})
			if err != nil {
				t.Fatalf("%s %s: %v", kind, locale, err)
			}
			if strings.Contains(m.HTML, ":</a>") {
				t.Errorf("%s %s: a link text ends in a colon", kind, locale)
			}
			if m.Unsubscribe == "" || kind == consent.JobConfirm { // its List-Unsubscribe is the not-me link
				continue
			}
			for part, body := range map[string]string{"text": m.Text, "HTML": m.HTML} {
				if !strings.Contains(body, testBaseURL+"/preferences/") || !strings.Contains(body, testBaseURL+"/unsubscribe/") {
					t.Errorf("%s %s: the %s part lacks the preference link beside the unsubscribe link", kind, locale, part)
				}
			}
		}
	}
	if m, _ := r.Render(testJob(), testTopics, consent.Brand{}); strings.Contains(m.Text, "/preferences/") || strings.Contains(m.Text, "/unsubscribe/") {
		t.Error("a confirmation request carries an unsubscribe or preference link (R48: nothing but the request)")
	}
}

// everyKind returns a job of every kind, ready to render.
func everyKind() map[consent.JobKind]consent.Job {
	base := testJob()
	kinds := map[consent.JobKind]func(*consent.Job){
		consent.JobConfirm:     func(*consent.Job) {},
		consent.JobPreferences: func(j *consent.Job) { j.Request = "" },
		consent.JobNotice: func(j *consent.Job) {
			j.Request, j.Basis, j.Origin = "", consent.BasisLegitimateInterest, "a trade fair"
		},
		consent.JobReawaken: func(j *consent.Job) {
			j.Request, j.Campaign, j.Topic, j.Subject, j.Body = "", "camp1", "news", "Still with us?", "Hello {{name}}"
		},
		consent.JobAddressChange:  func(j *consent.Job) {},
		consent.JobAddressChanged: func(j *consent.Job) { j.NewEmail = "new@example.com" },
		consent.JobIncidentNotice: func(j *consent.Job) { j.Body = "A laptop was stolen." },
	}
	jobs := make(map[consent.JobKind]consent.Job, len(kinds))
	for kind, modify := range kinds {
		job := base
		job.Kind = kind
		modify(&job)
		jobs[kind] = job
	}
	return jobs
}
