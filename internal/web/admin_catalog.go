package web

import (
	"bytes"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
)

// slugRE is the shape of topic and form ids.
var slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// formLocales are the locales a form may use.
var formLocales = []string{"en", "it", "sv"}

// parseTime parses a required RFC 3339 time.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, consent.Errorf(consent.EInvalid, "at must be an RFC 3339 time such as 2026-01-31T12:00:00Z")
	}
	return t, nil
}

// topicBody is POST /topics and PUT /topics/{id}.
type topicBody struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

func (b *topicBody) validate() error {
	b.Name, b.Description = strings.TrimSpace(b.Name), strings.TrimSpace(b.Description)
	switch {
	case !slugRE.MatchString(b.ID):
		return consent.Errorf(consent.EInvalid, "id must match %s", slugRE)
	case b.Name == "" || !consent.PlainText(b.Name, 100, false):
		return consent.Errorf(consent.EInvalid, "name must be 1-100 characters without control characters")
	case !consent.PlainText(b.Description, 500, false):
		return consent.Errorf(consent.EInvalid, "description must be at most 500 characters without control characters")
	}
	return nil
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
	var b topicBody
	if err := bindJSON(c, &b); err != nil {
		s.fail(c, err)
		return
	}
	if err := b.validate(); err != nil {
		s.fail(c, err)
		return
	}
	t, err := s.store.CreateTopic(c.Request.Context(), actor(c), consent.Topic{ID: b.ID, Name: b.Name, Description: b.Description})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, t)
}

// handleTopicUpdate renames or re-describes a topic; the id in the body,
// if any, must match the path.
func (s *Server) handleTopicUpdate(c *gin.Context) {
	var b topicBody
	if err := bindJSON(c, &b); err != nil {
		s.fail(c, err)
		return
	}
	if b.ID != "" && b.ID != c.Param("id") {
		s.fail(c, consent.Errorf(consent.EInvalid, "the id in the body differs from the path; ids cannot change"))
		return
	}
	b.ID = c.Param("id")
	if err := b.validate(); err != nil {
		s.fail(c, err)
		return
	}
	t, err := s.store.UpdateTopic(c.Request.Context(), actor(c), b.ID, b.Name, b.Description)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, t)
}

// formBody is POST /forms and PUT /forms/{id}.
type formBody struct {
	ID             string            `json:"id"`
	Topics         []string          `json:"topics"`
	Locale         string            `json:"locale"`
	Wording        map[string]string `json:"wording"`
	AllowedOrigins []string          `json:"allowed_origins"`
	SuccessURL     string            `json:"success_url"`
	PrivacyURL     string            `json:"privacy_url"`
	ProofOfWork    int               `json:"proof_of_work"`
}

// validate checks a form and returns it normalized. Allowed origins are
// bare origins (https, or http on a loopback host); the success URL must
// be on one of them or on optin's own origin, so the form cannot be used
// as an open redirect.
func (s *Server) validateForm(b formBody) (consent.Form, error) {
	f := consent.Form{ID: b.ID, Locale: b.Locale, Wording: map[string]string{}, SuccessURL: strings.TrimSpace(b.SuccessURL)}
	if !slugRE.MatchString(f.ID) {
		return f, consent.Errorf(consent.EInvalid, "id must match %s", slugRE)
	}
	if len(b.Topics) == 0 || len(b.Topics) > 50 {
		return f, consent.Errorf(consent.EInvalid, "topics must list 1-50 topic ids")
	}
	for _, t := range b.Topics {
		if !slugRE.MatchString(t) {
			return f, consent.Errorf(consent.EInvalid, "topic %q is not a topic id", truncateString(t, 64))
		}
		if slices.Contains(f.Topics, t) {
			return f, consent.Errorf(consent.EInvalid, "topic %q is listed twice", t)
		}
		f.Topics = append(f.Topics, t)
	}
	if f.Locale == "" {
		f.Locale = "en"
	}
	if !slices.Contains(formLocales, f.Locale) {
		return f, consent.Errorf(consent.EInvalid, "locale must be one of %s", strings.Join(formLocales, ", "))
	}
	for l, text := range b.Wording {
		if !slices.Contains(formLocales, l) {
			return f, consent.Errorf(consent.EInvalid, "wording locale %q must be one of %s", truncateString(l, 16), strings.Join(formLocales, ", "))
		}
		text = strings.TrimSpace(text)
		if text == "" || !consent.PlainText(text, 2000, true) {
			return f, consent.Errorf(consent.EInvalid, "wording %q must be 1-2000 characters without control characters", l)
		}
		f.Wording[l] = text
	}
	if len(b.AllowedOrigins) > 20 {
		return f, consent.Errorf(consent.EInvalid, "allowed_origins lists at most 20 origins")
	}
	for _, o := range b.AllowedOrigins {
		norm, err := parseOrigin(o)
		if err != nil {
			return f, err
		}
		if !slices.Contains(f.AllowedOrigins, norm) {
			f.AllowedOrigins = append(f.AllowedOrigins, norm)
		}
	}
	f.PrivacyURL = strings.TrimSpace(b.PrivacyURL)
	if f.PrivacyURL != "" {
		u, err := url.Parse(f.PrivacyURL)
		if err != nil || u.Host == "" || u.User != nil || len(f.PrivacyURL) > 2048 || !secureScheme(u) {
			return f, consent.Errorf(consent.EInvalid, "privacy_url must be an absolute https URL (http only on a loopback host)")
		}
	}
	if b.ProofOfWork < 0 || b.ProofOfWork > consent.MaxProofOfWork {
		return f, consent.Errorf(consent.EInvalid, "proof_of_work must be 0 (off) to %d leading zero bits", consent.MaxProofOfWork)
	}
	f.ProofOfWork = b.ProofOfWork
	if f.SuccessURL != "" {
		u, err := url.Parse(f.SuccessURL)
		if err != nil || u.Host == "" || u.User != nil || len(f.SuccessURL) > 2048 || !secureScheme(u) {
			return f, consent.Errorf(consent.EInvalid, "success_url must be an absolute https URL (http only on a loopback host)")
		}
		origin := strings.ToLower(u.Scheme + "://" + u.Host)
		if origin != s.origin && !slices.Contains(f.AllowedOrigins, origin) {
			return f, consent.Errorf(consent.EInvalid, "success_url must be on one of the allowed origins or on optin's own")
		}
	}
	return f, nil
}

// parseOrigin checks that o is a bare web origin, scheme://host[:port],
// and returns it lower-cased.
func parseOrigin(o string) (string, error) {
	bad := consent.Errorf(consent.EInvalid, "allowed origin %q must be scheme://host[:port] without a path, https unless the host is loopback", truncateString(o, 200))
	u, err := url.Parse(strings.TrimSpace(o))
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" ||
		u.Fragment != "" || u.Opaque != "" || strings.HasSuffix(o, "?") || !secureScheme(u) {
		return "", bad
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// secureScheme reports whether u is https, or http on a loopback host.
func secureScheme(u *url.URL) bool {
	switch strings.ToLower(u.Scheme) {
	case "https":
		return true
	case "http":
		return loopbackHost(u.Hostname())
	}
	return false
}

// loopbackHost reports whether h is localhost or a loopback address
// (127.0.0.0/8, ::1).
func loopbackHost(h string) bool {
	ip := net.ParseIP(h)
	return strings.EqualFold(h, "localhost") || (ip != nil && ip.IsLoopback())
}

func truncateString(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
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
	var b formBody
	if err := bindJSON(c, &b); err != nil {
		s.fail(c, err)
		return
	}
	f, err := s.validateForm(b)
	if err != nil {
		s.fail(c, err)
		return
	}
	if f, err = s.store.CreateForm(c.Request.Context(), actor(c), f); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, f)
}

// handleFormUpdate replaces a form's settings; the id cannot change.
func (s *Server) handleFormUpdate(c *gin.Context) {
	var b formBody
	if err := bindJSON(c, &b); err != nil {
		s.fail(c, err)
		return
	}
	if b.ID != "" && b.ID != c.Param("id") {
		s.fail(c, consent.Errorf(consent.EInvalid, "the id in the body differs from the path; ids cannot change"))
		return
	}
	b.ID = c.Param("id")
	f, err := s.validateForm(b)
	if err != nil {
		s.fail(c, err)
		return
	}
	if f, err = s.store.UpdateForm(c.Request.Context(), actor(c), f); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, f)
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
  <p><label>Email <input type="email" name="email" required maxlength="254" autocomplete="email"></label></p>
  <p><label>Name <input type="text" name="name" maxlength="100" autocomplete="name"></label></p>
{{- range .Topics}}
  <p><label><input type="checkbox" name="topics" value="{{.ID}}"> {{.Name}}</label></p>
{{- end}}
  <input type="hidden" name="locale" value="{{.Locale}}">
  <div style="position:absolute;left:-10000px" aria-hidden="true"><label>Leave this empty <input type="text" name="website" tabindex="-1" autocomplete="off"></label></div>
  <p><small>{{.Notice}}</small></p>
  <p><button type="submit">Subscribe</button></p>
</form>{{end}}`))

// snippetData is what the snippet templates get.
type snippetData struct {
	ID, Title, Page, Script string
	Version                 int
	Locale, Wording, Notice string
	Topics                  []consent.Topic
}

// handleFormSnippet returns paste-ready embed code in three flavours: an
// iframe of the hosted form, the embed.js script with its placeholder, and
// a plain HTML form that works without JavaScript. The plain form repeats
// the current wording, so it must be pasted again after a wording change;
// the other two always show the current one.
func (s *Server) handleFormSnippet(c *gin.Context) {
	f, err := s.store.Form(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	topics, err := s.formTopics(c, &f)
	if err != nil {
		s.fail(c, err)
		return
	}
	l := s.cfg.Catalog.For(s.cfg.Catalog.Pick(f.Locale))
	w := s.wording(&f, topics, l)
	page := s.cfg.BaseURL + "/f/" + url.PathEscape(f.ID)
	d := snippetData{ID: f.ID, Title: "Subscribe: " + f.ID, Page: page, Script: page + "/embed.js",
		Version: f.WordingVersion, Locale: l.Locale, Wording: w.Text, Notice: w.Notice, Topics: topics}
	out := map[string]string{}
	for _, name := range []string{"iframe", "script", "html"} {
		var buf bytes.Buffer
		if err := snippetTmpl.ExecuteTemplate(&buf, name, d); err != nil {
			s.fail(c, err)
			return
		}
		out[name] = buf.String()
	}
	c.JSON(http.StatusOK, gin.H{"form": f.ID, "wording_version": f.WordingVersion,
		"iframe": out["iframe"], "script": out["script"], "html": out["html"]})
}
