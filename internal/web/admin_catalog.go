package web

import (
	"bytes"
	"context"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
)

// parseTime parses a required RFC 3339 time.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, consent.Errorf(consent.EInvalid, "at must be an RFC 3339 time such as 2026-01-31T12:00:00Z")
	}
	return t, nil
}

func (s *Server) handleTopics(c *gin.Context) {
	ts, err := s.store.Topics(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	if ts == nil {
		ts = []consent.Topic{}
	}
	c.JSON(http.StatusOK, gin.H{"items": ts})
}

func (s *Server) handleTopicCreate(c *gin.Context) {
	var b consent.TopicInput
	if err := bindJSON(c, &b); err != nil {
		s.fail(c, err)
		return
	}
	t, err := s.saveTopic(c.Request.Context(), actor(c), b, false)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, t)
}

// handleTopicUpdate renames or re-describes a topic; the id in the body,
// if any, must match the path.
func (s *Server) handleTopicUpdate(c *gin.Context) {
	var b consent.TopicInput
	if err := bindJSON(c, &b); err != nil {
		s.fail(c, err)
		return
	}
	if b.ID != "" && b.ID != c.Param("id") {
		s.fail(c, consent.Errorf(consent.EInvalid, "the id in the body differs from the path; ids cannot change"))
		return
	}
	b.ID = c.Param("id")
	t, err := s.saveTopic(c.Request.Context(), actor(c), b, true)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, t)
}

// saveTopic validates b and creates the topic, or with update renames
// and re-describes topic b.ID, under a.
func (s *Server) saveTopic(ctx context.Context, a consent.Actor, b consent.TopicInput, update bool) (consent.Topic, error) {
	if err := b.Validate(s.cfg.Catalog.Locales()); err != nil {
		return consent.Topic{}, err
	}
	if update {
		return s.store.UpdateTopic(ctx, a, b.Topic())
	}
	return s.store.CreateTopic(ctx, a, b.Topic())
}

func (s *Server) handleForms(c *gin.Context) {
	fs, err := s.store.Forms(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"items": fs})
}

func (s *Server) handleFormGet(c *gin.Context) {
	f, err := s.store.Form(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, f)
}

func (s *Server) handleFormCreate(c *gin.Context) {
	var b consent.FormInput
	if err := bindJSON(c, &b); err != nil {
		s.fail(c, err)
		return
	}
	f, err := s.saveForm(c.Request.Context(), actor(c), b, false)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, f)
}

// handleFormUpdate changes a form's settings: the fields the body gives
// replace the stored ones and the others stay (so a body with only
// "wording" changes only the wording); the id cannot change.
func (s *Server) handleFormUpdate(c *gin.Context) {
	old, err := s.store.Form(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	var fields map[string]json.RawMessage
	if err := bindJSON(c, &fields); err != nil {
		s.fail(c, err)
		return
	}
	b := consent.FormInputOf(old)
	if _, ok := fields["wording"]; ok {
		b.Wording = nil // a given wording replaces the whole map
	}
	raw, _ := json.Marshal(fields) // re-encoding decoded JSON cannot fail
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		s.fail(c, consent.Errorf(consent.EInvalid, "invalid JSON body: %v", err))
		return
	}
	if b.ID != "" && b.ID != c.Param("id") {
		s.fail(c, consent.Errorf(consent.EInvalid, "the id in the body differs from the path; ids cannot change"))
		return
	}
	b.ID = c.Param("id")
	f, err := s.saveForm(c.Request.Context(), actor(c), b, true)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, f)
}

// saveForm checks b (consent.NewForm, against optin's origin and
// locales) and creates the form, or with update replaces form b.ID,
// under a.
func (s *Server) saveForm(ctx context.Context, a consent.Actor, b consent.FormInput, update bool) (consent.Form, error) {
	f, err := consent.NewForm(b, s.origin, s.cfg.Catalog.Locales())
	if err != nil {
		return f, err
	}
	if update {
		return s.store.UpdateForm(ctx, a, f)
	}
	return s.store.CreateForm(ctx, a, f)
}

func (s *Server) handleFormDelete(c *gin.Context) {
	if err := s.store.DeleteForm(c.Request.Context(), actor(c), c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// snippetTmpl renders the embed code of a form. html/template escapes
// every value for its context.
var snippetTmpl = template.Must(template.New("snippet").Parse(
	`{{define "iframe"}}<iframe src="{{.Page}}" title="{{.Title}}" width="100%" height="560" style="border:0;max-width:32rem" loading="lazy"></iframe>{{end}}` +
		`{{define "script"}}<div data-optin-form="{{.ID}}"></div>
<script src="{{.Script}}" async></script>{{end}}` +
		`{{define "html"}}<!-- optin form "{{.ID}}", wording version {{.Version}}: paste again after changing the form's wording -->
<form action="{{.Page}}" method="post" accept-charset="utf-8">
  <p>{{.Wording}}</p>
  <p><label>{{.T.Email}} <input type="email" name="email" required maxlength="254" autocomplete="email"></label></p>
  <p><label>{{.T.Name}} <input type="text" name="name" maxlength="100" autocomplete="name"></label></p>
{{- range $t := .Topics}}
  <p><label><input type="checkbox" name="topics" value="{{.ID}}"> {{.Name}}</label>
  {{- range $.Channels}} <label><input type="checkbox" name="channels" value="{{$t.ID}}:{{.ID}}"> {{.Label}}</label>{{end}}</p>
{{- end}}
{{- if .AskPhone}}
  <p><label>{{.PhoneLabel}} <input type="tel" name="phone" maxlength="32" autocomplete="tel"></label></p>
{{- end}}
{{- if .AskPost}}
  <p><label>{{.PostalLabel}} <textarea name="postal_address" rows="3" maxlength="300" autocomplete="street-address"></textarea></label></p>
{{- end}}
  <input type="hidden" name="locale" value="{{.Locale}}">
  <div style="position:absolute;left:-10000px" aria-hidden="true"><label>{{.T.Honeypot}} <input type="text" name="website" tabindex="-1" autocomplete="off"></label></div>
  <p><small>{{.Notice}}</small></p>
  <p><small><a href="{{.Privacy}}" target="_blank" rel="noopener">{{.T.Privacy}}</a></small></p>
  <p><button type="submit">{{.T.Submit}}</button></p>
</form>{{end}}`))

// snippetData is what the snippet templates get.
type snippetData struct {
	ID, Title, Page, Script string
	Version                 int
	Locale, Wording, Notice string
	Privacy                 string // the privacy notice's URL
	// T is the form's labels in its language, as the hosted form has them.
	T      struct{ Email, Name, Honeypot, Privacy, Submit string }
	Topics []consent.Topic
	// Channels are the channels the form offers under each topic, with
	// the fields for the number and the address they need.
	Channels                []channelOption
	AskPhone, AskPost       bool
	PhoneLabel, PostalLabel string
}

// handleFormSnippet returns paste-ready embed code (see formSnippets).
func (s *Server) handleFormSnippet(c *gin.Context) {
	f, err := s.store.Form(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	out, err := s.formSnippets(c, &f)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"form": f.ID, "wording_version": f.WordingVersion,
		"iframe": out["iframe"], "script": out["script"], "html": out["html"]})
}

// snippetKinds are the flavours of embed code, in the order to offer them.
func snippetKinds() []string { return []string{"iframe", "script", "html"} }

// formSnippets returns form f's embed code by flavour: an iframe of the
// hosted form, the embed.js script with its placeholder, and a plain HTML
// form that works without JavaScript. The plain form repeats the current
// wording, so it must be pasted again after a wording change; the other
// two always show the current one.
func (s *Server) formSnippets(c *gin.Context, f *consent.Form) (map[string]string, error) {
	topics, err := s.formTopics(c, f)
	if err != nil {
		return nil, err
	}
	l := s.cfg.Catalog.For(s.cfg.Catalog.Pick(f.Locale))
	w := s.wording(f, topics, l)
	page := s.cfg.BaseURL + "/f/" + url.PathEscape(f.ID)
	d := snippetData{ID: f.ID, Title: l.T("form.title") + ": " + f.ID, Page: page, Script: page + "/embed.js",
		Version: f.WordingVersion, Locale: l.Locale, Wording: w.Text, Notice: w.Notice, Privacy: s.privacyURL(f), Topics: consent.TopicsIn(topics, l.Locale),
		Channels: channelOptions(l, "", f.Channels, nil), PhoneLabel: l.T(phoneLabel(f.Channels)), PostalLabel: l.T("channels.postal_label")}
	d.AskPhone, d.AskPost = asks(f.Channels)
	d.T.Email, d.T.Name, d.T.Honeypot = l.T("form.email"), l.T("form.name"), l.T("form.honeypot")
	d.T.Privacy, d.T.Submit = l.T("form.privacy"), l.T("form.submit")
	out := map[string]string{}
	for _, name := range snippetKinds() {
		var buf bytes.Buffer
		if err := snippetTmpl.ExecuteTemplate(&buf, name, d); err != nil {
			return nil, err
		}
		out[name] = buf.String()
	}
	return out, nil
}
