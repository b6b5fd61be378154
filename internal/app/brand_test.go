package app

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"optin/internal/config"
	"optin/internal/consent"
)

// testPNG is a logo: a green 120x40 PNG with a white bar.
var testPNG = func() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 120, 40))
	for x := range 120 {
		for y := range 40 {
			c := color.RGBA{0x0a, 0x6e, 0x3c, 0xff}
			if y >= 16 && y < 24 && x >= 12 && x < 108 {
				c = color.RGBA{0xff, 0xff, 0xff, 0xff}
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err)
	}
	return b.Bytes()
}()

// brandTweak configures the brand the brand tests expect: a site name, a
// logo file optin serves, an accent colour and the shop's site.
func brandTweak(t *testing.T) func(*config.Config) {
	return func(c *config.Config) {
		if err := os.WriteFile(filepath.Join(c.DataDir, "logo.png"), testPNG, 0o600); err != nil {
			t.Fatal(err)
		}
		c.Brand = config.Brand{SiteName: "Bottega Rossi", LogoFile: "logo.png", AccentColor: "#0a6e3c", BackURL: "https://shop.example/"}
	}
}

// TestBrand: the configured brand is on every page and mail, a form's own
// brand wins on its pages and confirmation mail, the admin API sets it
// field by field and refuses a bad one without changing anything, and
// optin serves the logo file.
func TestBrand(t *testing.T) {
	s := startService(t, brandTweak(t))

	r := s.do("GET", "/brand/logo", "", "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "image/png" || r.body != string(testPNG) {
		t.Errorf("GET /brand/logo: %d %s, %d bytes; want the PNG", r.status, r.header.Get("Content-Type"), len(r.body))
	}

	// A form with a brand of its own, through the admin API.
	var f consent.Form
	s.adminJSON("POST", "/forms", `{"id":"outlet","topics":["news"],"brand":{"site_name":"Rossi Outlet",
		"logo_url":"https://cdn.example/outlet.png","accent_color":"#A30"}}`, http.StatusCreated, &f)
	want := consent.Brand{SiteName: "Rossi Outlet", LogoURL: "https://cdn.example/outlet.png", AccentColor: "#aa3300"}
	if f.Brand != want {
		t.Errorf("created form's brand: got %+v, want %+v", f.Brand, want)
	}
	s.adminJSON("PUT", "/forms/outlet", `{"brand":{"accent_color":"#123456"}}`, http.StatusOK, &f)
	want.AccentColor = "#123456"
	if f.Brand != want {
		t.Errorf("after a PUT of the colour alone: got %+v, want %+v", f.Brand, want)
	}
	for _, bad := range []string{`{"brand":{"accent_color":"#123;background:url(x)"}}`, `{"brand":{"back_url":"javascript:alert(1)"}}`,
		`{"brand":{"logo_url":"http://cdn.example/l.png"}}`, `{"brand":{"site_name":"a\nb"}}`} {
		if r := s.adminAs(testAdminKey, "PUT", "/forms/outlet", "application/json", bad); r.status != http.StatusBadRequest ||
			!strings.Contains(r.body, "brand.") {
			t.Errorf("PUT %s: got %d %s, want 400 naming the brand field", bad, r.status, r.body)
		}
	}
	s.adminJSON("GET", "/forms/outlet", "", http.StatusOK, &f)
	if f.Brand != want {
		t.Errorf("after refused PUTs: got %+v, want %+v unchanged", f.Brand, want)
	}

	// The pages: the configured brand, and the form's over it.
	for _, tt := range []struct {
		path, site, logo, imgSrc, accent string
	}{
		{"/f/newsletter", "Bottega Rossi", s.url + "/brand/logo", "img-src 'self'", "#0a6e3c"},
		{"/f/outlet", "Rossi Outlet", "https://cdn.example/outlet.png", "img-src https://cdn.example", "#123456"},
		{"/f/outlet/thanks", "Rossi Outlet", "https://cdn.example/outlet.png", "img-src https://cdn.example", "#123456"},
		{"/manage", "Bottega Rossi", s.url + "/brand/logo", "img-src 'self'", "#0a6e3c"},
		{"/privacy", "Bottega Rossi", s.url + "/brand/logo", "img-src 'self'", "#0a6e3c"},
		{"/confirm/not-a-token", "Bottega Rossi", s.url + "/brand/logo", "img-src 'self'", "#0a6e3c"},
	} {
		r := s.do("GET", tt.path, "", "")
		for _, w := range []string{`<span class="site">` + tt.site + `</span>`, `<img src="` + tt.logo + `" alt="">`,
			"· " + tt.site + "</title>", "--accent:" + tt.accent + ";", `<a href="https://shop.example/" target="_top">`} {
			if !strings.Contains(r.body, w) {
				t.Errorf("GET %s: page lacks %q", tt.path, w)
			}
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.HasSuffix(csp, "; "+tt.imgSrc) || strings.Contains(csp, "img-src *") {
			t.Errorf("GET %s: CSP %q, want it to end with %s", tt.path, csp, tt.imgSrc)
		}
	}

	// The notice under each form names the sender as the page does.
	for path, site := range map[string]string{"/f/newsletter": "Bottega Rossi", "/f/outlet": "Rossi Outlet"} {
		if r := s.do("GET", path, "", ""); !strings.Contains(r.body, "Sent by "+site+".") {
			t.Errorf("GET %s: the notice does not name %s as the sender", path, site)
		}
	}

	// The confirmation mail of the outlet form wears its brand and names
	// the outlet in its first sentence; the landing pages link back to
	// the shop and to /manage.
	if r := s.do("POST", "/f/outlet", "application/json", `{"email":"ann@example.com","topics":["news"]}`,
		"Accept", "application/json"); r.status != http.StatusAccepted {
		t.Fatalf("signup: %d %s", r.status, r.body)
	}
	_, text, html := mailParts(t, s.mailTo("ann@example.com").Data)
	for _, w := range []string{`<div style="font-size:20px;font-weight:bold">Rossi Outlet</div>`, `<img src="https://cdn.example/outlet.png"`,
		"max-width:600px", "border-top:4px solid #123456", "background:#123456;color:#ffffff"} {
		if !strings.Contains(html, w) {
			t.Errorf("confirmation mail's HTML part lacks %q", w)
		}
	}
	if !strings.HasPrefix(text, "Rossi Outlet\r\n") && !strings.HasPrefix(text, "Rossi Outlet\n") {
		t.Errorf("text part: want it to name the site first, got %.60q", text)
	}
	if !strings.Contains(text, "asked Rossi Outlet to send") {
		t.Errorf("text part: want the intro to name the form's site:\n%s", text)
	}
	confirm, _ := links(t, text)
	if r := s.do("GET", confirm, "", ""); !strings.Contains(r.body, `<span class="site">Rossi Outlet</span>`) {
		t.Errorf("confirm page: not the form's brand")
	}
	r = s.do("POST", confirm, "", "")
	for _, w := range []string{`<span class="site">Rossi Outlet</span>`, `href="https://shop.example/" target="_top">Back to Rossi Outlet</a>`,
		`<a href="/manage?locale=en">`} {
		if !strings.Contains(r.body, w) {
			t.Errorf("confirmed page lacks %q:\n%s", w, r.body)
		}
	}

	// A mail of no form (the preference link) wears the configured brand.
	if r := s.do("POST", "/manage", "application/x-www-form-urlencoded", "email=ann@example.com"); r.status != http.StatusOK {
		t.Fatalf("POST /manage: %d", r.status)
	}
	s.waitMails(2)
	_, text, html = mailParts(t, s.smtp.Messages()[1].Data)
	if !strings.Contains(html, `<img src="`+s.url+`/brand/logo"`) || !strings.Contains(html, ">Bottega Rossi</div>") ||
		!strings.HasPrefix(strings.ReplaceAll(text, "\r\n", "\n"), "Bottega Rossi\n") {
		t.Errorf("preference mail: want the configured brand;\ntext %.80q\nhtml %s", text, html)
	}
}

// TestTopicTranslations: the admin API takes and returns a topic's names
// and descriptions per language and refuses a language optin does not
// speak; pages, the embed script and mails show them in the person's
// language, the default where a translation lacks one; the consent
// ledger records the labels as shown.
func TestTopicTranslations(t *testing.T) {
	s := startService(t, nil)
	var tp consent.Topic
	s.adminJSON("POST", "/topics", `{"id":"offers","name":"Offers","description":"Deals every week",
		"translations":{"it":{"name":"Offerte","description":"Sconti ogni settimana"},"sv":{"name":"Erbjudanden"}}}`, http.StatusCreated, &tp)
	if tp.Translations["it"].Name != "Offerte" || tp.Translations["sv"].Name != "Erbjudanden" {
		t.Errorf("created topic: got %+v, want its translations", tp)
	}
	s.adminJSON("PUT", "/topics/news", `{"name":"Product news","translations":{"it":{"name":"Novità sui prodotti"}}}`, http.StatusOK, &tp)
	if r := s.adminAs(testAdminKey, "PUT", "/topics/news", "application/json", `{"name":"x","translations":{"de":{"name":"Neuigkeiten"}}}`); r.status != http.StatusBadRequest {
		t.Errorf("a translation into German: got %d, want 400", r.status)
	}
	var list struct{ Items []consent.Topic }
	s.adminJSON("GET", "/topics", "", http.StatusOK, &list)
	if len(list.Items) != 2 || list.Items[0].Translations["it"].Name != "Novità sui prodotti" || list.Items[1].Translations["it"].Name != "Offerte" {
		t.Errorf("GET /topics: got %+v, want both with their Italian names (the refused PUT changed nothing)", list.Items)
	}
	s.adminJSON("PUT", "/forms/newsletter", `{"topics":["news","offers"]}`, http.StatusOK, nil)

	for path, want := range map[string][]string{
		"/f/newsletter?locale=it":          {"Novità sui prodotti", "Offerte", "Sconti ogni settimana"},
		"/f/newsletter?locale=sv":          {"Product news", "Erbjudanden", "Deals every week"},
		"/f/newsletter?locale=en":          {"Product news", "Offers", "Deals every week"},
		"/f/newsletter/embed.js?locale=it": {`"name":"Novità sui prodotti"`, `"name":"Offerte"`},
		"/privacy?locale=it":               {"Novità sui prodotti", "Offerte: Sconti ogni settimana"},
		"/api/v1/forms/newsletter/snippet": {"Product news"},
	} {
		r := s.do("GET", path, "", "", "Authorization", "Bearer "+testAdminKey)
		for _, w := range want {
			if !strings.Contains(r.body, w) {
				t.Errorf("GET %s: lacks %q", path, w)
			}
		}
	}

	b := `{"email":"ada@example.com","topics":["news","offers"],"locale":"it"}`
	if r := s.do("POST", "/f/newsletter", "application/json", b, "Accept", "application/json"); r.status != http.StatusAccepted {
		t.Fatalf("signup: %d %s", r.status, r.body)
	}
	_, text, html := mailParts(t, s.mailTo("ada@example.com").Data)
	for _, w := range []string{"Novità sui prodotti", "Offerte"} {
		if !strings.Contains(text, w) || !strings.Contains(html, w) {
			t.Errorf("confirmation mail: lacks %q", w)
		}
	}
	confirm, _ := links(t, text)
	if r := s.do("GET", confirm, "", ""); !strings.Contains(r.body, "<li>Novità sui prodotti</li>") {
		t.Errorf("confirm page: lacks the Italian topic name")
	}
	sub, _ := s.subscriber("ada@example.com")
	var evs struct {
		Items []struct {
			WordingText struct {
				Topics map[string]string `json:"topics"`
			} `json:"wording_text"`
		}
	}
	s.adminJSON("GET", "/subscribers/"+sub.ID+"/consents", "", http.StatusOK, &evs)
	if len(evs.Items) == 0 || evs.Items[0].WordingText.Topics["news"] != "Novità sui prodotti" || evs.Items[0].WordingText.Topics["offers"] != "Offerte" {
		t.Errorf("ledger: the wording's labels are %+v, want the Italian ones shown", evs.Items)
	}
	// The person's export names the purposes in their language.
	var link struct{ URL string }
	s.adminJSON("POST", "/subscribers/"+sub.ID+"/preference-link", "", http.StatusCreated, &link)
	var exp struct {
		About struct{ Purposes map[string]string }
	}
	if err := json.Unmarshal([]byte(s.do("GET", link.URL+"/export", "", "").body), &exp); err != nil ||
		exp.About.Purposes["news"] != "Novità sui prodotti" || exp.About.Purposes["offers"] != "Offerte" {
		t.Errorf("export: purposes %v (%v), want the Italian names", exp.About.Purposes, err)
	}
}
