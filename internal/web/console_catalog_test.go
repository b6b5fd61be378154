package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"optin/internal/consent"
)

// TestConsoleTopics creates and edits topics as an admin with the admin
// API's validation, audited under the key; a refusal keeps what was
// typed and changes nothing; a marketer only reads.
func TestConsoleTopics(t *testing.T) {
	e := newConsoleEnv(t, nil)
	a := e.signIn(consent.RoleAdmin)
	r := a.do("GET", "/admin/topics", nil)
	if r.status != http.StatusOK || !hasText(r.body, "Product news") || !strings.Contains(r.body, `action="/admin/topics"`) {
		t.Fatalf("topics page: %d\n%s", r.status, r.body)
	}
	r = a.do("POST", "/admin/topics", url.Values{"csrf": {a.csrf()}, "id": {"offers"}, "name": {" Offers "}, "description": {"Monthly deals"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/admin/topics?done=saved" {
		t.Fatalf("create: got %d to %q\n%s", r.status, r.header.Get("Location"), r.body)
	}
	if got, err := e.db.Topic(t.Context(), "offers"); err != nil || got.Name != "Offers" || got.Description != "Monthly deals" {
		t.Errorf("created topic: %+v, %v", got, err)
	}
	if l := e.lastAudit(); l.Action != "topic.create" || l.Key != "bootstrap" {
		t.Errorf("audit: %+v", l)
	}
	if r := a.do("GET", "/admin/topics?done=saved", nil); !hasText(r.body, e.en.T("console.topics.saved")) {
		t.Error("no notice after saving")
	}
	for _, tt := range []struct {
		what   string
		form   url.Values
		status int
		detail string
	}{
		{"a bad id", url.Values{"id": {"Bad!"}, "name": {"Kept name"}}, http.StatusBadRequest, "id must match"},
		{"an id taken", url.Values{"id": {"news"}, "name": {"Kept name"}}, http.StatusConflict, `topic "news" exists`},
	} {
		tt.form.Set("csrf", a.csrf())
		r := a.do("POST", "/admin/topics", tt.form)
		if r.status != tt.status || !hasText(r.body, e.en.T("console.topics.refused", "")) || !hasText(r.body, tt.detail) ||
			!strings.Contains(r.body, `value="Kept name"`) {
			t.Errorf("%s: got %d, want %d saying %q with the name kept\n%s", tt.what, r.status, tt.status, tt.detail, r.body)
		}
	}
	r = a.do("POST", "/admin/topics/news", url.Values{"csrf": {a.csrf()}, "name": {"News"}, "description": {"Twice a month"},
		"name_it": {"Novità"}, "description_it": {"Due volte al mese"}, "name_sv": {""}, "description_sv": {""}})
	if r.status != http.StatusSeeOther {
		t.Errorf("edit: got %d", r.status)
	}
	if l := e.lastAudit(); l.Action != "topic.update" || l.Key != "bootstrap" || l.Target != "news" {
		t.Errorf("audit of the edit: %+v", l)
	}
	want := map[string]consent.TopicText{"it": {Name: "Novità", Description: "Due volte al mese"}}
	if got, _ := e.db.Topic(t.Context(), "news"); got.Name != "News" || got.Description != "Twice a month" ||
		len(got.Translations) != 1 || got.Translations["it"] != want["it"] {
		t.Errorf("edited topic: %+v, want the Italian translation and no Swedish one", got)
	}
	// The edit form shows the translation, one labelled field per language.
	if r := a.do("GET", "/admin/topics", nil); !strings.Contains(r.body, `name="name_it" type="text" value="Novità"`) ||
		!strings.Contains(r.body, `<label for="name-news-sv">`+e.en.T("console.topics.name_in", e.en.T("console.lang.sv"))+`</label>`) {
		t.Errorf("topics page: no translation fields\n%s", r.body)
	}
	if r := a.do("POST", "/admin/topics/news", url.Values{"csrf": {a.csrf()}, "name": {""}}); r.status != http.StatusBadRequest {
		t.Errorf("edit to an empty name: got %d", r.status)
	}
	topics, _ := e.db.Topics(t.Context())
	if len(topics) != 2 || topics[0].Name != "News" {
		t.Errorf("topics after refusals: %+v", topics)
	}

	m := e.signIn(consent.RoleMarketer)
	if r := m.do("GET", "/admin/topics", nil); r.status != http.StatusOK || strings.Contains(r.body, `method="post" action="/admin/topics`) {
		t.Errorf("a marketer's topics page: %d, want it without forms", r.status)
	}
	if r := m.do("POST", "/admin/topics", url.Values{"csrf": {m.csrf()}, "id": {"mine"}, "name": {"Mine"}}); r.status != http.StatusForbidden {
		t.Errorf("a marketer's create: got %d", r.status)
	}
}

// TestConsoleForms creates and edits a form as an admin with the admin
// API's validation (audited); shows a sandboxed preview of the hosted
// form, which lets the console frame it, in each language; and offers
// the API's embed code. A refusal keeps what was typed.
func TestConsoleForms(t *testing.T) {
	e := newConsoleEnv(t, nil)
	if _, err := e.db.CreateTopic(t.Context(), consent.CLIActor(), consent.Topic{ID: "offers", Name: "Offers"}); err != nil {
		t.Fatal(err)
	}
	a := e.signIn(consent.RoleAdmin)
	if r := a.do("GET", "/admin/forms", nil); r.status != http.StatusOK || !strings.Contains(r.body, `href="/admin/forms/newsletter"`) {
		t.Fatalf("forms page: %d\n%s", r.status, r.body)
	}
	if r := a.do("GET", "/admin/forms/new", nil); r.status != http.StatusOK || !strings.Contains(r.body, `name="wording_sv"`) {
		t.Fatalf("new form page: %d\n%s", r.status, r.body)
	}
	shop := url.Values{"id": {"shop"}, "topics": {"news", "offers"}, "locale": {"it"}, "wording_it": {"Sì, scrivetemi."},
		"wording_en": {""}, "allowed_origins": {"https://shop.example\r\nhttps://blog.example"},
		"success_url": {"https://shop.example/thanks"}, "privacy_url": {""}, "proof_of_work": {"12"},
		"brand_site_name": {"Bottega Rossi"}, "brand_logo_url": {""}, "brand_accent_color": {"#0A6E3C"}, "brand_back_url": {"https://shop.example/"}}
	for _, tt := range []struct {
		what, field, value, detail string
	}{
		{"a success page elsewhere", "success_url", "https://evil.example/", "success_url must be on one of the allowed origins"},
		{"an origin with a path", "allowed_origins", "https://shop.example/page", "must be scheme://host[:port]"},
		{"work that is no number", "proof_of_work", "lots", "proof_of_work must be a whole number"},
		{"no topic", "topics", "", "topics must list"},
		{"a colour with CSS in it", "brand_accent_color", "#fff;x:y", "brand.accent_color must be a colour"},
	} {
		form := url.Values{}
		for k, v := range shop {
			form[k] = v
		}
		form.Set(tt.field, tt.value)
		if tt.field == "topics" {
			form.Del("topics")
		}
		form.Set("csrf", a.csrf())
		r := a.do("POST", "/admin/forms", form)
		if r.status != http.StatusBadRequest || !hasText(r.body, tt.detail) || !hasText(r.body, "Sì, scrivetemi.") {
			t.Errorf("%s: got %d, want 400 saying %q with the wording kept\n%s", tt.what, r.status, tt.detail, r.body)
		}
	}
	if _, err := e.db.Form(t.Context(), "shop"); consent.ErrorCode(err) != consent.ENotFound {
		t.Fatalf("refused forms stored one: %v", err)
	}
	shop.Set("csrf", a.csrf())
	r := a.do("POST", "/admin/forms", shop)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/admin/forms/shop?done=saved" {
		t.Fatalf("create: got %d to %q\n%s", r.status, r.header.Get("Location"), r.body)
	}
	f, err := e.db.Form(t.Context(), "shop")
	if err != nil || !slices.Equal(f.Topics, []string{"news", "offers"}) || f.Locale != "it" || f.Wording["it"] != "Sì, scrivetemi." ||
		len(f.Wording) != 1 || !slices.Equal(f.AllowedOrigins, []string{"https://shop.example", "https://blog.example"}) ||
		f.SuccessURL != "https://shop.example/thanks" || f.ProofOfWork != 12 ||
		f.Brand != (consent.Brand{SiteName: "Bottega Rossi", AccentColor: "#0a6e3c", BackURL: "https://shop.example/"}) {
		t.Errorf("stored form: %+v, %v", f, err)
	}
	if l := e.lastAudit(); l.Action != "form.create" || l.Key != "bootstrap" {
		t.Errorf("audit: %+v", l)
	}
	if r := a.do("POST", "/admin/forms", shop); r.status != http.StatusConflict {
		t.Errorf("the same id again: got %d, want 409", r.status)
	}

	r = a.do("GET", "/admin/forms/shop?done=saved", nil)
	for _, want := range []string{`<iframe class="preview" src="/f/shop?locale=it"`, " sandbox>", `name="topics" value="offers" checked`,
		`name="brand_accent_color" type="text" value="#0a6e3c"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("form page lacks %s", want)
		}
	}
	if !hasText(r.body, e.en.T("console.forms.saved")) {
		t.Error("no notice after saving")
	}
	api := a.do("GET", "/api/v1/forms/shop/snippet", nil, "Authorization", "Bearer "+e.keys[consent.RoleAdmin])
	var snip map[string]any
	if err := json.Unmarshal([]byte(api.body), &snip); err != nil {
		t.Fatal(err)
	}
	for _, kind := range snippetKinds() {
		if code, _ := snip[kind].(string); code == "" || !hasText(r.body, code) {
			t.Errorf("the page does not offer the API's %s snippet", kind)
		}
	}
	if r := a.do("GET", "/admin/forms/shop?lang=sv", nil); !strings.Contains(r.body, `src="/f/shop?locale=sv"`) {
		t.Error("no Swedish preview")
	}
	if r := a.do("GET", "/admin/forms/shop?lang=xx", nil); !strings.Contains(r.body, `src="/f/shop?locale=it"`) {
		t.Error("an unknown language does not fall back to the form's")
	}
	// The hosted form lets optin's own pages frame it: the preview shows.
	hosted := a.do("GET", "/f/shop?locale=it", nil)
	if csp := hosted.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'self' https://shop.example") {
		t.Errorf("the hosted form's CSP: %q", csp)
	}

	shop.Set("wording_it", "Sì, scrivetemi ogni mese.")
	shop.Set("csrf", a.csrf())
	if r := a.do("POST", "/admin/forms/shop", shop); r.status != http.StatusSeeOther {
		t.Errorf("edit: got %d\n%s", r.status, r.body)
	}
	if g, _ := e.db.Form(t.Context(), "shop"); g.WordingVersion != f.WordingVersion+1 || g.Wording["it"] != "Sì, scrivetemi ogni mese." {
		t.Errorf("edited form: version %d (was %d), wording %q", g.WordingVersion, f.WordingVersion, g.Wording["it"])
	}
	if l := e.lastAudit(); l.Action != "form.update" || l.Key != "bootstrap" || l.Target != "shop" {
		t.Errorf("audit of the edit: %+v", l)
	}

	m := e.signIn(consent.RoleMarketer)
	r = m.do("GET", "/admin/forms/shop", nil)
	if r.status != http.StatusOK || !strings.Contains(r.body, "<fieldset disabled>") || strings.Contains(r.body, `<button type="submit">`+e.en.T("console.save")) {
		t.Errorf("a marketer's form page: %d, want it read-only", r.status)
	}
	if r := m.do("GET", "/admin/forms/new", nil); r.status != http.StatusForbidden {
		t.Errorf("a marketer's new form: got %d", r.status)
	}
	shop.Set("csrf", m.csrf())
	if r := m.do("POST", "/admin/forms/shop", shop); r.status != http.StatusForbidden {
		t.Errorf("a marketer's edit: got %d", r.status)
	}
}
