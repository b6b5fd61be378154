package consent

import (
	"maps"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// slugRE is the shape of topic and form ids.
var slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// TopicInput is a topic as the admin API receives it.
type TopicInput struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	// Translations are the name and description in other languages, by
	// locale.
	Translations map[string]TopicText `json:"translations"`
	// Frequencies are the frequency choices the preference page offers
	// for the topic (ParseFrequencies); none offers no choice.
	Frequencies []Frequency `json:"frequencies"`
}

// Validate trims the names and descriptions and checks the topic: an id
// of lower-case letters, digits, - and _, a name of 1-100 and a
// description of at most 500 printable characters, in each translation
// too, whose locales must be among locales (those optin has catalogs
// for). A translation with neither name nor description is dropped.
func (b *TopicInput) Validate(locales []string) error {
	b.Name, b.Description = strings.TrimSpace(b.Name), strings.TrimSpace(b.Description)
	if !slugRE.MatchString(b.ID) {
		return Errorf(EInvalid, "id must match %s", slugRE)
	}
	if err := checkTopicText(b.Name, b.Description, ""); err != nil {
		return err
	}
	trs := map[string]TopicText{}
	for loc, tr := range b.Translations {
		tr.Name, tr.Description = strings.TrimSpace(tr.Name), strings.TrimSpace(tr.Description)
		switch {
		case tr.Name == "" && tr.Description == "":
			continue
		case !slices.Contains(locales, loc):
			return Errorf(EInvalid, "translations: locale %q must be one of %s", Truncate(loc, 16), strings.Join(locales, ", "))
		}
		if err := checkTopicText(tr.Name, tr.Description, "translations."+loc+"."); err != nil {
			return err
		}
		trs[loc] = tr
	}
	b.Translations = nil
	if len(trs) > 0 {
		b.Translations = trs
	}
	freqs, err := ParseFrequencies(names(b.Frequencies))
	if err != nil {
		return err
	}
	b.Frequencies = freqs
	return nil
}

// names returns vs as strings.
func names[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// checkTopicText checks a topic's name and description; prefix names
// where they are in the input.
func checkTopicText(name, description, prefix string) error {
	switch {
	case name == "" || !PlainText(name, 100, false):
		return Errorf(EInvalid, "%sname must be 1-100 characters without control characters", prefix)
	case !PlainText(description, 500, false):
		return Errorf(EInvalid, "%sdescription must be at most 500 characters without control characters", prefix)
	}
	return nil
}

// Topic returns the topic b describes.
func (b TopicInput) Topic() Topic {
	return Topic{ID: b.ID, Name: b.Name, Description: b.Description, Translations: b.Translations, Frequencies: b.Frequencies}
}

// FormInput is a form as the admin API receives it.
type FormInput struct {
	ID             string            `json:"id"`
	Topics         []string          `json:"topics"`
	Locale         string            `json:"locale"`
	Wording        map[string]string `json:"wording"`
	AllowedOrigins []string          `json:"allowed_origins"`
	SuccessURL     string            `json:"success_url"`
	PrivacyURL     string            `json:"privacy_url"`
	ProofOfWork    int               `json:"proof_of_work"`
	Brand          Brand             `json:"brand"`
	// Channels are the optional channels offered beside email
	// (ParseChannels); none offers email only.
	Channels []Channel `json:"channels"`
}

// FormInputOf returns f as the admin API would have received it, so that
// a partial update can be laid over it.
func FormInputOf(f Form) FormInput {
	return FormInput{ID: f.ID, Topics: f.Topics, Locale: f.Locale, Wording: f.Wording, AllowedOrigins: f.AllowedOrigins,
		SuccessURL: f.SuccessURL, PrivacyURL: f.PrivacyURL, ProofOfWork: f.ProofOfWork, Brand: f.Brand, Channels: f.Channels}
}

// NewForm checks a form and returns it normalized. Its locale and
// wordings must be among locales (those optin has catalogs for); allowed
// origins are bare origins (https, or http on a loopback host); the
// success URL must be on one of them or on own, optin's own origin, so
// the form cannot be used as an open redirect.
func NewForm(b FormInput, own string, locales []string) (Form, error) {
	f := Form{ID: b.ID, Locale: b.Locale, Wording: map[string]string{}, SuccessURL: strings.TrimSpace(b.SuccessURL)}
	if !slugRE.MatchString(f.ID) {
		return f, Errorf(EInvalid, "id must match %s", slugRE)
	}
	if len(b.Topics) == 0 || len(b.Topics) > 50 {
		return f, Errorf(EInvalid, "topics must list 1-50 topic ids")
	}
	for _, t := range b.Topics {
		if !slugRE.MatchString(t) {
			return f, Errorf(EInvalid, "topic %q is not a topic id", Truncate(t, 64))
		}
		if slices.Contains(f.Topics, t) {
			return f, Errorf(EInvalid, "topic %q is listed twice", t)
		}
		f.Topics = append(f.Topics, t)
	}
	// No locale: the form speaks the visitor's language (Accept-Language).
	if f.Locale != "" && !slices.Contains(locales, f.Locale) {
		return f, Errorf(EInvalid, "locale must be empty (the visitor's language) or one of %s", strings.Join(locales, ", "))
	}
	for l, text := range b.Wording {
		if !slices.Contains(locales, l) {
			return f, Errorf(EInvalid, "wording locale %q must be one of %s", Truncate(l, 16), strings.Join(locales, ", "))
		}
		text = strings.TrimSpace(text)
		if text == "" || !PlainText(text, 2000, true) {
			return f, Errorf(EInvalid, "wording %q must be 1-2000 characters without control characters", l)
		}
		f.Wording[l] = text
	}
	if len(b.AllowedOrigins) > 20 {
		return f, Errorf(EInvalid, "allowed_origins lists at most 20 origins")
	}
	for _, o := range b.AllowedOrigins {
		norm, err := ParseOrigin(o)
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
		if err != nil || u.Host == "" || u.User != nil || len(f.PrivacyURL) > 2048 || !SecureURL(u) {
			return f, Errorf(EInvalid, "privacy_url must be an absolute https URL (http only on a loopback host)")
		}
	}
	if b.ProofOfWork < 0 || b.ProofOfWork > MaxProofOfWork {
		return f, Errorf(EInvalid, "proof_of_work must be 0 (off) to %d leading zero bits", MaxProofOfWork)
	}
	f.ProofOfWork = b.ProofOfWork
	var err error
	if f.Channels, err = ParseChannels(names(b.Channels)); err != nil {
		return f, err
	}
	if f.Brand, err = NewBrand(b.Brand); err != nil {
		return f, err
	}
	if f.SuccessURL != "" {
		u, err := url.Parse(f.SuccessURL)
		if err != nil || u.Host == "" || u.User != nil || len(f.SuccessURL) > 2048 || !SecureURL(u) {
			return f, Errorf(EInvalid, "success_url must be an absolute https URL (http only on a loopback host)")
		}
		origin := strings.ToLower(u.Scheme + "://" + u.Host)
		if origin != own && !slices.Contains(f.AllowedOrigins, origin) {
			return f, Errorf(EInvalid, "success_url must be on one of the allowed origins or on optin's own")
		}
	}
	return f, nil
}

// Update lays the settings of upd, a checked form (NewForm), over f, the
// stored form, at now: the id and the creation time stay. A change to
// what a person sees next to the checkboxes (the wording, the topics
// offered, the channels offered, the default locale or the privacy link)
// starts a new wording version; consents given before keep citing the
// wording they saw.
func (f *Form) Update(upd Form, now time.Time) {
	if !maps.Equal(f.Wording, upd.Wording) || !slices.Equal(f.Topics, upd.Topics) || f.Locale != upd.Locale ||
		f.PrivacyURL != upd.PrivacyURL || !slices.Equal(f.Channels, upd.Channels) {
		f.WordingVersion++
	}
	f.Topics, f.Locale, f.Wording, f.Channels = upd.Topics, upd.Locale, upd.Wording, upd.Channels
	f.AllowedOrigins, f.SuccessURL = upd.AllowedOrigins, upd.SuccessURL
	f.PrivacyURL, f.ProofOfWork, f.Brand = upd.PrivacyURL, upd.ProofOfWork, upd.Brand
	f.Updated = now
}

// ParseOrigin checks that o is a bare web origin, scheme://host[:port],
// and returns it lower-cased.
func ParseOrigin(o string) (string, error) {
	bad := Errorf(EInvalid, "allowed origin %q must be scheme://host[:port] without a path, https unless the host is loopback", Truncate(o, 200))
	u, err := url.Parse(strings.TrimSpace(o))
	if err != nil || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" ||
		u.Fragment != "" || u.Opaque != "" || strings.HasSuffix(o, "?") || !SecureURL(u) {
		return "", bad
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// SecureURL reports whether u is https, or http on a loopback host.
func SecureURL(u *url.URL) bool {
	switch strings.ToLower(u.Scheme) {
	case "https":
		return true
	case "http":
		return LoopbackHost(u.Hostname())
	}
	return false
}

// LoopbackHost reports whether host (without port or brackets) is
// localhost or a loopback address (127.0.0.0/8, ::1, and IPv4 loopback
// mapped into IPv6).
func LoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}
