// Package mail turns outbox jobs into mails and delivers them: rendering
// from templates, building RFC 5322 messages, the SMTP (over go-mail's
// client) and file transports, and the outbox worker.
package mail

import (
	"bytes"
	"cmp"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"net/mail"
	"slices"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"

	"optin/internal/consent"
	"optin/internal/i18n"
	"optin/internal/token"
)

// notMeGrace is how long a not-me link outlives the confirm link.
const notMeGrace = 30 * 24 * time.Hour

// Message is a rendered mail, ready to be built.
type Message struct {
	To        string
	MessageID string
	Subject   string
	Text      string
	HTML      string
	// Unsubscribe is the URL for List-Unsubscribe with one-click POST
	// (RFC 8058); empty for none.
	Unsubscribe string
	// UnsubscribeMailto is the mailto: form of Unsubscribe, listed after
	// it in List-Unsubscribe (RFC 2369 2); empty for none.
	UnsubscribeMailto string
	// ListID is the List-Id value; empty for none.
	ListID string
	// Link is the main link of the mail, logged by the file transport
	// in development so a newcomer can click it.
	Link string
}

// Renderer renders outbox jobs into Messages.
type Renderer struct {
	text           *texttemplate.Template
	html           *htmltemplate.Template
	cat            *i18n.Catalog
	tokens         *token.Issuer
	baseURL        string
	sender         string
	postal         string
	brand          consent.Brand
	listDomain     string
	unsubscribeTTL time.Duration
	mailbox        string
	now            func() time.Time
	renders        sync.Map // cache key -> *rendered; see cached
}

// RendererConfig configures a Renderer.
type RendererConfig struct {
	Templates fs.FS // holds mail/*.tmpl
	Catalog   *i18n.Catalog
	Tokens    *token.Issuer
	BaseURL   string // without trailing slash
	From      string // the From address; its display name signs the mail
	Postal    string // sender's postal address
	// Brand is the configured brand of every mail (checked by
	// consent.NewBrand); its site name defaults to From's display name.
	Brand consent.Brand
	// UnsubscribeTTL is the lifetime of unsubscribe links (>= 60 days).
	UnsubscribeTTL time.Duration
	// UnsubscribeMailbox is the address that takes mailto: unsubscribes
	// (optin's inbound listener); empty for none.
	UnsubscribeMailbox string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewRenderer parses the mail templates.
func NewRenderer(c RendererConfig) (*Renderer, error) {
	text, err := texttemplate.ParseFS(c.Templates, "mail/*.txt.tmpl")
	if err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	html, err := htmltemplate.ParseFS(c.Templates, "mail/*.html.tmpl")
	if err != nil {
		return nil, fmt.Errorf("mail: %w", err)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	domain := "localhost"
	if a, err := mail.ParseAddress(c.From); err == nil {
		domain = a.Address[strings.LastIndexByte(a.Address, '@')+1:]
	}
	if c.Brand.SiteName == "" {
		c.Brand.SiteName = senderName(c.From)
	}
	return &Renderer{text: text, html: html, cat: c.Catalog, tokens: c.Tokens, baseURL: c.BaseURL,
		sender: senderName(c.From), postal: c.Postal, brand: c.Brand, listDomain: domain, unsubscribeTTL: c.UnsubscribeTTL,
		mailbox: c.UnsubscribeMailbox, now: c.Now}, nil
}

// senderName returns the display name of from, or its address.
func senderName(from string) string {
	a, err := mail.ParseAddress(from)
	if err != nil {
		return from
	}
	if a.Name != "" {
		return a.Name
	}
	return a.Address
}

// Render renders job. topics are the job's topics, resolved to names
// (shown in the job's language, see consent.Topic.In);
// form is the brand of the job's form (zero for none), which wins over
// the configured one.
func (r *Renderer) Render(job consent.Job, topics []consent.Topic, form consent.Brand) (Message, error) {
	l := r.cat.For(r.cat.Pick(job.Locale))
	topics = consent.TopicsIn(topics, l.Locale)
	name := job.Name
	if name == "" {
		name = l.T("mail.hello_anonymous")
	}
	data := make(map[string]any, 12) // room for the per-kind values too
	data["L"], data["Name"], data["Topics"], data["Sender"], data["PostalAddress"] = l, name, topics, r.sender, r.postal
	data["Brand"] = form.Over(r.brand)
	m := Message{To: job.To, MessageID: job.MessageID}
	var err error
	switch job.Kind {
	case consent.JobConfirm:
		data["Channels"] = confirmChannels(job, topics, l)
		err = r.confirm(job, data, &m)
	case consent.JobPreferences:
		err = r.preferences(job, data, &m)
	case consent.JobReawaken:
		err = r.reawaken(job, topics, l, data, &m)
	case consent.JobAddressChange:
		err = r.addressChange(job, data, &m)
	case consent.JobAddressChanged:
		data["NewEmail"] = job.NewEmail
	case consent.JobIncidentNotice:
		data["Body"] = job.Body
	case consent.JobNotice:
		err = r.notice(job, data, &m)
	default:
		err = fmt.Errorf("mail: unknown job kind %q", job.Kind)
	}
	if err != nil {
		return Message{}, err
	}
	if m.Subject == "" {
		m.Subject = l.T("mail." + string(job.Kind) + ".subject")
	}
	data["Subject"] = m.Subject
	// The operator's text, a notice's basis and origin, and a
	// confirmation's channels are not cached.
	if job.Kind == consent.JobReawaken || job.Kind == consent.JobIncidentNotice || job.Kind == consent.JobNotice || len(job.Channels) > 0 {
		m.Text, m.HTML, err = r.execute(job.Kind, data)
		return m, err
	}
	m.Text, m.HTML, err = r.cached(job, topics, data)
	return m, err
}

// execute runs the kind's text and HTML templates on data.
func (r *Renderer) execute(kind consent.JobKind, data map[string]any) (string, string, error) {
	var tb, hb bytes.Buffer
	if err := r.text.ExecuteTemplate(&tb, string(kind)+".txt.tmpl", data); err != nil {
		return "", "", fmt.Errorf("mail: %w", err)
	}
	if err := r.html.ExecuteTemplate(&hb, string(kind)+".html.tmpl", data); err != nil {
		return "", "", fmt.Errorf("mail: %w", err)
	}
	return tb.String(), hb.String(), nil
}

// perJob are the template values that differ from one mail to the next of
// the same kind, language and topics; everything else renders the same.
var perJob = []string{"Name", "Expires", "ConfirmURL", "NotMeURL", "PreferencesURL", "UnsubscribeURL", "NewEmail"}

// rendered is a mail rendered once with a marker in place of every
// per-job value, split at the markers.
type rendered struct {
	text, html []segment
	ok         bool // false: substitution did not reproduce a real rendering
}

// segment is a piece of a marked rendering: literal text, or the name of
// the per-job value that goes there.
type segment struct{ text, key string }

const markerPrefix, markerSuffix = "zqOptinMarker", "zq"

// splitMarked cuts a marked rendering at its markers.
func splitMarked(s string) []segment {
	var segs []segment
	for {
		i := strings.Index(s, markerPrefix)
		if i < 0 {
			break
		}
		rest := s[i+len(markerPrefix):]
		j := strings.Index(rest, markerSuffix)
		if j < 0 {
			break
		}
		segs = append(segs, segment{text: s[:i]}, segment{key: rest[:j]})
		s = rest[j+len(markerSuffix):]
	}
	return append(segs, segment{text: s})
}

// join puts data's values into segs, escaped by esc.
func join(segs []segment, data map[string]any, esc func(string) string) string {
	// Room for the whole mail at once: a confirmation's links, each a
	// few hundred bytes of token, outgrew a guess per value, and the
	// builder copied the mail each time it doubled.
	n := 0
	for _, sg := range segs {
		v, _ := data[sg.key].(string)
		n += len(sg.text) + len(v) + len(v)/8 // a little room for escapes
	}
	var b strings.Builder
	b.Grow(n + len(markerPrefix+markerSuffix))
	for _, sg := range segs {
		if sg.key == "" {
			b.WriteString(sg.text)
		} else if v, ok := data[sg.key].(string); ok {
			b.WriteString(esc(v))
		} else {
			b.WriteString(markerPrefix + sg.key + markerSuffix)
		}
	}
	return b.String()
}

// cached renders a confirmation or preference mail from a rendering done
// once per kind, language and topics, with the per-job values substituted
// (HTML-escaped in the HTML part): executing the templates was a quarter
// of the outbox's CPU. The first mail of each kind is rendered both ways
// and compared; if they differ, that kind is always rendered in full.
func (r *Renderer) cached(job consent.Job, topics []consent.Topic, data map[string]any) (string, string, error) {
	b := data["Brand"].(consent.Brand)
	key := string(job.Kind) + "\x00" + data["L"].(i18n.Localizer).Locale + "\x00" + b.SiteName + "\x01" + b.LogoURL +
		"\x01" + b.AccentColor
	for _, t := range topics {
		key += "\x00" + t.ID + "\x01" + t.Name + "\x01" + t.Description
	}
	if v, ok := r.renders.Load(key); ok && v.(*rendered).ok {
		c := v.(*rendered)
		text, html := r.substitute(c, data)
		return text, html, nil
	}
	text, html, err := r.execute(job.Kind, data)
	if err != nil {
		return "", "", err
	}
	marked := make(map[string]any, len(data))
	for k, v := range data {
		marked[k] = v
	}
	for _, k := range perJob {
		if _, ok := data[k]; ok {
			marked[k] = markerPrefix + k + markerSuffix
		}
	}
	c := &rendered{}
	if mt, mh, err := r.execute(job.Kind, marked); err == nil {
		c.text, c.html = splitMarked(mt), splitMarked(mh)
		t2, h2 := r.substitute(c, data)
		c.ok = t2 == text && h2 == html
	}
	r.renders.Store(key, c)
	return text, html, nil
}

// substitute puts data's per-job values into a marked rendering.
func (r *Renderer) substitute(c *rendered, data map[string]any) (string, string) {
	return join(c.text, data, func(v string) string { return v }), join(c.html, data, htmltemplate.HTMLEscapeString)
}

// confirm fills in the double-opt-in request: a confirm link and a not-me
// link, which is also the one-click List-Unsubscribe target, so a
// one-click on it does something real. No marketing content: a
// confirmation request that advertises is advertising (BGH VI ZR 134/15).
func (r *Renderer) confirm(job consent.Job, data map[string]any, m *Message) error {
	confirmTok, err := r.tokens.Issue(token.Confirm, token.Claims{Subject: job.Request, ExpiresAt: job.TokenExpires})
	if err != nil {
		return err
	}
	// "This wasn't me" keeps working for a while after the confirm link
	// expired: the person may read the mail late.
	notMeTok, err := r.tokens.Issue(token.NotMe, token.Claims{Subject: job.Request, ExpiresAt: job.TokenExpires.Add(notMeGrace)})
	if err != nil {
		return err
	}
	data["ConfirmURL"] = r.baseURL + "/confirm/" + confirmTok
	data["NotMeURL"] = r.baseURL + "/not-me/" + notMeTok
	data["Expires"] = job.TokenExpires.UTC().Format(data["L"].(i18n.Localizer).T("mail.datetime_layout"))
	m.Unsubscribe, m.Link = data["NotMeURL"].(string), data["ConfirmURL"].(string)
	return nil
}

// confirmChannels returns the lines of a confirmation mail that name the
// channels besides email its click agrees to, one per channel in the
// consent.OptionalChannels order, with the number or postal address it
// reaches and the topics it carries; none when the request chose none.
func confirmChannels(job consent.Job, topics []consent.Topic, l i18n.Localizer) []string {
	names := make(map[string]string, len(topics))
	for _, t := range topics {
		names[t.ID] = t.Name
	}
	var lines []string
	for _, c := range consent.OptionalChannels {
		var about []string
		for _, t := range job.Topics {
			if slices.Contains(job.Channels[t], c) {
				about = append(about, cmp.Or(names[t], t))
			}
		}
		if len(about) == 0 {
			continue
		}
		to := job.Phone
		if c == consent.ChannelPost {
			to = strings.ReplaceAll(job.PostalAddress, "\n", ", ")
		}
		lines = append(lines, l.T("mail.confirm.channel."+string(c), to, strings.Join(about, ", ")))
	}
	return lines
}

// addressChange fills in the request to a new address to confirm that it
// replaces the subscriber's address: a confirm link and nothing else (the
// person asked for it; a stranger ignores it and nothing changes).
func (r *Renderer) addressChange(job consent.Job, data map[string]any, m *Message) error {
	tok, err := r.tokens.Issue(token.Confirm, token.Claims{Subject: job.Request, ExpiresAt: job.TokenExpires})
	if err != nil {
		return err
	}
	data["ConfirmURL"] = r.baseURL + "/confirm/" + tok
	data["Expires"] = job.TokenExpires.UTC().Format(data["L"].(i18n.Localizer).T("mail.datetime_layout"))
	m.Link = data["ConfirmURL"].(string)
	return nil
}

// preferences fills in a preference-center link mail. Like every mail but
// the confirmation it carries one-click unsubscribe (for all topics), a
// List-Id and a visible unsubscribe link (RFC 2369, 2919, 8058).
func (r *Renderer) preferences(job consent.Job, data map[string]any, m *Message) error {
	now := r.now()
	prefTok, err := r.tokens.Issue(token.Preferences, token.Claims{Subject: job.Subscriber, ExpiresAt: now.Add(token.PreferencesTTL)})
	if err != nil {
		return err
	}
	unsubURL, err := r.UnsubscribeURL(job.Subscriber, "")
	if err != nil {
		return err
	}
	data["PreferencesURL"] = r.baseURL + "/preferences/" + prefTok
	data["UnsubscribeURL"] = unsubURL
	r.setUnsubscribe(m, unsubURL)
	m.Link = data["PreferencesURL"].(string)
	m.ListID = r.ListID("")
	return nil
}

// notice fills in the information owed to a person imported on soft
// opt-in or legitimate interest (GDPR Art. 14(1), (2)): the controller
// (sender and postal address), the purposes (the topics), the basis,
// where the data came from, the rights with a link to the preference
// page and the privacy notice, and the right to object (Art. 21(4)),
// exercised with one click: the same one-click unsubscribe from every
// topic as every other mail's (RFC 8058).
func (r *Renderer) notice(job consent.Job, data map[string]any, m *Message) error {
	if err := r.preferences(job, data, m); err != nil {
		return err
	}
	data["Basis"], data["Origin"], data["PrivacyURL"] = string(job.Basis), job.Origin, r.baseURL+"/privacy"
	return nil
}

// UnsubscribeURL returns a one-click unsubscribe URL for subscriber sub and
// topic ("" = every topic), valid for the configured unsubscribe TTL.
func (r *Renderer) UnsubscribeURL(sub, topic string) (string, error) {
	tok, err := r.tokens.Issue(token.Unsubscribe, token.Claims{Subject: sub, Topic: topic,
		ExpiresAt: r.now().Add(r.unsubscribeTTL)})
	if err != nil {
		return "", err
	}
	return r.baseURL + "/unsubscribe/" + tok, nil
}

// setUnsubscribe makes unsubURL, an UnsubscribeURL, m's one-click
// unsubscribe, and the same token mailed to the unsubscribe mailbox, when
// there is one, its mailto: form: the token rides in the subject, which
// mail clients send as the mailto: URL gives it (RFC 6068 2).
func (r *Renderer) setUnsubscribe(m *Message, unsubURL string) {
	m.Unsubscribe = unsubURL
	if r.mailbox != "" {
		m.UnsubscribeMailto = "mailto:" + r.mailbox + "?subject=" + unsubURL[strings.LastIndexByte(unsubURL, '/')+1:]
	}
}

// ListID returns the List-Id value for topic ("" = mail about every
// topic): stable for the life of the list (RFC 2919).
func (r *Renderer) ListID(topic string) string {
	if topic == "" {
		topic = "all"
	}
	return "<" + topic + ".optin." + r.listDomain + ">"
}

// checkHeaderURL refuses a URL that could break out of <...> in a header.
func checkHeaderURL(u string) error {
	if !(strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://")) {
		return fmt.Errorf("mail: refusing unsafe List-Unsubscribe URL")
	}
	return checkHeaderURI(u)
}

// checkHeaderMailto refuses a mailto: URL that could break out of <...>.
func checkHeaderMailto(u string) error {
	if !strings.HasPrefix(u, "mailto:") {
		return fmt.Errorf("mail: refusing unsafe List-Unsubscribe URL")
	}
	return checkHeaderURI(u)
}

// checkHeaderURI refuses a URI that is too long for a header line or
// holds anything but printable ASCII other than <>, space, comma and
// quote.
func checkHeaderURI(u string) error {
	if len(u) > 900 || strings.ContainsAny(u, "<>\r\n \t,\"") {
		return fmt.Errorf("mail: refusing unsafe List-Unsubscribe URL")
	}
	for i := 0; i < len(u); i++ {
		if u[i] < 0x21 || u[i] > 0x7e {
			return fmt.Errorf("mail: refusing unsafe List-Unsubscribe URL")
		}
	}
	return nil
}
