package web

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"optin/internal/consent"
	"optin/internal/i18n"
)

// topicsPage is the data of the topic list.
type topicsPage struct {
	Topics []consent.Topic
	// Locales are the languages a topic's name may be translated into.
	Locales []string
	// Input fills the new-topic form again after a refusal.
	Input consent.TopicInput
	// Frequencies are the frequency boxes of each topic's edit form, by
	// topic id, and of the new-topic form ("").
	Frequencies map[string][]freqOption
}

// frequencyOptions returns every frequency as a box in l's language,
// ticked when on offers it.
func frequencyOptions(l i18n.Localizer, on []consent.Frequency) []freqOption {
	out := make([]freqOption, len(consent.AllFrequencies))
	for i, f := range consent.AllFrequencies {
		out[i] = freqOption{ID: f, Label: l.T("frequency." + string(f)), On: slices.Contains(on, f)}
	}
	return out
}

// refusal is a console notice for a write the store or the validation
// refused: the localized sentence of key with the precise, English
// problem of err, which names the field.
func (s *Server) refusal(c *gin.Context, key string, err error) string {
	return s.localizer(c).T(key, consent.ErrorMessage(err))
}

// handleConsoleTopics lists the topics, with a form to create one and to
// edit each for admins.
func (s *Server) handleConsoleTopics(c *gin.Context) {
	s.topicsView(c, http.StatusOK, consent.TopicInput{}, "")
}

// topicsView renders the topic list with status; in refills the
// new-topic form and notice, when set, is shown as an error.
func (s *Server) topicsView(c *gin.Context, status int, in consent.TopicInput, notice string) {
	topics, err := s.store.Topics(c.Request.Context())
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	d := s.consoleBase(c, "console.topics.title", "topics")
	p := topicsPage{Topics: topics, Input: in, Locales: s.cfg.Catalog.Locales(),
		Frequencies: map[string][]freqOption{"": frequencyOptions(d.L, in.Frequencies)}}
	for _, t := range topics {
		p.Frequencies[t.ID] = frequencyOptions(d.L, t.Frequencies)
	}
	d.P = p
	switch {
	case notice != "":
		d.Notice, d.Error = notice, true
	case c.Query("done") == "saved":
		d.Notice = d.L.T("console.topics.saved")
	}
	s.consolePage(c, status, "topics", d)
}

// handleConsoleTopicSave creates a topic (POST /admin/topics, fields id,
// name, description, name_<locale> and description_<locale> for each
// language, and frequencies, repeated) or edits one (POST /admin/topics/{id}) with the admin
// API's validation, audited under the signed-in key.
func (s *Server) handleConsoleTopicSave(c *gin.Context) {
	in := consent.TopicInput{ID: strings.TrimSpace(c.PostForm("id")), Name: c.PostForm("name"), Description: c.PostForm("description"),
		Translations: map[string]consent.TopicText{}}
	for _, f := range c.PostFormArray("frequencies") {
		in.Frequencies = append(in.Frequencies, consent.Frequency(f))
	}
	for _, loc := range s.cfg.Catalog.Locales() {
		in.Translations[loc] = consent.TopicText{Name: c.PostForm("name_" + loc), Description: c.PostForm("description_" + loc)}
	}
	update := c.Param("id") != ""
	if update {
		in.ID = c.Param("id")
	}
	if _, err := s.saveTopic(c.Request.Context(), actor(c), in, update); err != nil {
		if code := consent.ErrorCode(err); code == consent.EInvalid || code == consent.EConflict {
			if update {
				in = consent.TopicInput{}
			}
			s.topicsView(c, errorStatus(err), in, s.refusal(c, "console.topics.refused", err))
			return
		}
		s.consoleFail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/admin/topics?done=saved")
}

// formRow is one form in the list.
type formRow struct {
	consent.Form
	TopicNames []string
}

// handleConsoleForms lists the signup forms.
func (s *Server) handleConsoleForms(c *gin.Context) {
	ctx := c.Request.Context()
	forms, err := s.store.Forms(ctx)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	_, names, err := s.topicNames(ctx)
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	rows := make([]formRow, 0, len(forms))
	for _, f := range forms {
		row := formRow{Form: f}
		for _, t := range f.Topics {
			row.TopicNames = append(row.TopicNames, names.name(t))
		}
		rows = append(rows, row)
	}
	d := s.consoleBase(c, "console.forms.title", "forms")
	d.P = rows
	s.consolePage(c, http.StatusOK, "forms", d)
}

// formPage is the data of one form's page: its settings to edit (or a
// new form's), the hosted form's preview and the embed code.
type formPage struct {
	// New is set for a form not created yet.
	New bool
	In  consent.FormInput
	// Origins are the allowed origins, one a line.
	Origins string
	// Topics are every topic, to offer; Locales every language, each
	// with its default wording.
	Topics  []consent.Topic
	Locales []formLocale
	// Version is the stored form's wording version.
	Version int
	// Preview is the hosted form's URL in the language PreviewLocale.
	Preview, PreviewLocale string
	Snippets               []snippet
	// Channels are the optional channels, ticked where the form offers
	// them.
	Channels []channelOption
}

// formLocale is a language a form may show: its code, and the wording
// the form shows when it has none of its own.
type formLocale struct {
	Code, Default string
}

// snippet is one flavour of a form's embed code.
type snippet struct {
	Kind, Code string
}

// handleConsoleFormNew shows the form for a new signup form.
func (s *Server) handleConsoleFormNew(c *gin.Context) {
	s.formView(c, http.StatusOK, nil, consent.FormInput{Locale: "en"}, "", false)
}

// handleConsoleForm shows one form: its settings (editable by admins), a
// preview of the hosted form (in ?lang=, else the form's language) and
// its embed code.
func (s *Server) handleConsoleForm(c *gin.Context) {
	f, err := s.store.Form(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	in := consent.FormInputOf(f)
	notice := ""
	if c.Query("done") == "saved" {
		notice = s.localizer(c).T("console.forms.saved")
	}
	s.formView(c, http.StatusOK, &f, in, notice, false)
}

// formView renders a form's page with status: the stored form f (nil
// for a new one) and the values in to fill in, with notice (an error when
// bad).
func (s *Server) formView(c *gin.Context, status int, f *consent.Form, in consent.FormInput, notice string, bad bool) {
	topics, err := s.store.Topics(c.Request.Context())
	if err != nil {
		s.consoleFail(c, err)
		return
	}
	d := s.consoleBase(c, "console.forms.new", "forms")
	p := formPage{New: f == nil, In: in, Origins: strings.Join(in.AllowedOrigins, "\n"), Topics: topics,
		Channels: channelOptions(d.L, "", consent.OptionalChannels, in.Channels)}
	for _, loc := range s.cfg.Catalog.Locales() {
		p.Locales = append(p.Locales, formLocale{Code: loc, Default: s.cfg.Catalog.For(loc).T("form.default_wording")})
	}
	if f != nil {
		d.Title = d.L.T("console.forms.form", f.ID)
		p.Version = f.WordingVersion
		p.PreviewLocale = f.Locale
		if lang := c.Query("lang"); s.cfg.Catalog.Supported(lang) {
			p.PreviewLocale = lang
		}
		p.Preview = "/f/" + url.PathEscape(f.ID) + "?locale=" + p.PreviewLocale
		code, err := s.formSnippets(c, f)
		if err != nil {
			s.consoleFail(c, err)
			return
		}
		for _, kind := range snippetKinds() {
			p.Snippets = append(p.Snippets, snippet{Kind: kind, Code: code[kind]})
		}
	}
	d.P, d.Notice, d.Error = p, notice, bad
	s.consolePage(c, status, "form", d)
}

// formInput reads a form's settings from the console's form: topics
// (repeated), locale, wording_<locale> for each language (empty: the
// default wording), allowed_origins (one a line), success_url,
// privacy_url, proof_of_work, channels (repeated) and the brand's
// brand_site_name, brand_logo_url, brand_accent_color and brand_back_url.
func (s *Server) formInput(c *gin.Context) (consent.FormInput, error) {
	in := consent.FormInput{ID: strings.TrimSpace(c.PostForm("id")), Topics: c.PostFormArray("topics"), Locale: c.PostForm("locale"),
		Wording: map[string]string{}, AllowedOrigins: strings.Fields(c.PostForm("allowed_origins")),
		SuccessURL: c.PostForm("success_url"), PrivacyURL: c.PostForm("privacy_url"),
		Brand: consent.Brand{SiteName: c.PostForm("brand_site_name"), LogoURL: c.PostForm("brand_logo_url"),
			AccentColor: c.PostForm("brand_accent_color"), BackURL: c.PostForm("brand_back_url")}}
	for _, ch := range c.PostFormArray("channels") {
		in.Channels = append(in.Channels, consent.Channel(ch))
	}
	for _, loc := range s.cfg.Catalog.Locales() {
		if w := strings.TrimSpace(c.PostForm("wording_" + loc)); w != "" {
			in.Wording[loc] = w
		}
	}
	if pow := strings.TrimSpace(c.PostForm("proof_of_work")); pow != "" {
		n, err := strconv.Atoi(pow)
		if err != nil {
			return in, consent.Errorf(consent.EInvalid, "proof_of_work must be a whole number from 0 to %d", consent.MaxProofOfWork)
		}
		in.ProofOfWork = n
	}
	return in, nil
}

// handleConsoleFormSave creates a form (POST /admin/forms) or replaces
// one's settings (POST /admin/forms/{id}) with the admin API's
// validation, audited under the signed-in key. A refusal shows the
// values sent again, with the problem.
func (s *Server) handleConsoleFormSave(c *gin.Context) {
	ctx := c.Request.Context()
	in, err := s.formInput(c)
	var stored *consent.Form
	if id := c.Param("id"); id != "" {
		f, ferr := s.store.Form(ctx, id)
		if ferr != nil {
			s.consoleFail(c, ferr)
			return
		}
		stored, in.ID = &f, id
	}
	var saved consent.Form
	if err == nil {
		saved, err = s.saveForm(ctx, actor(c), in, stored != nil)
	}
	if code := consent.ErrorCode(err); code == consent.EInvalid || code == consent.EConflict {
		s.formView(c, errorStatus(err), stored, in, s.refusal(c, "console.forms.refused", err), true)
		return
	} else if err != nil {
		s.consoleFail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/admin/forms/"+url.PathEscape(saved.ID)+"?done=saved")
}
