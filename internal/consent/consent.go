// Package consent is optin's domain: subscribers, topics, forms, the
// consent ledger and the rules that decide what a signup, a confirmation,
// an opt-out, an import row or a reawaken campaign changes. Decisions are
// pure functions (PlanSignup, PlanSettle, PlanFollowUp, ...) that return
// what to write; the storage contract, Store, is defined here too, and
// every store applies a plan in one transaction. The package imports no
// framework and no database.
package consent

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strconv"
	"time"

	"optin/internal/jsonenc"
)

// Status is the state of one subscription (one subscriber, one topic).
type Status string

// Subscription states. Only a confirm click moves a subscription to
// StatusConfirmed; only a new double opt-in leaves StatusUnsubscribed.
const (
	StatusPending      Status = "pending"
	StatusConfirmed    Status = "confirmed"
	StatusUnsubscribed Status = "unsubscribed"
	StatusLapsed       Status = "lapsed"
)

// Basis is the lawful basis a subscription rests on.
type Basis string

// Lawful bases.
const (
	BasisConsent            Basis = "consent"
	BasisSoftOptIn          Basis = "soft_opt_in"
	BasisLegitimateInterest Basis = "legitimate_interest"
)

// Lifecycle is where a subscriber stands as a customer.
type Lifecycle string

// Lifecycle stages.
const (
	LifecycleProspect Lifecycle = "prospect"
	LifecycleCustomer Lifecycle = "customer"
	LifecycleDormant  Lifecycle = "dormant"
)

// Topic is something a subscriber can consent to, e.g. "news".
type Topic struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
	// Translations are the topic's name and description in other
	// languages, by locale; Name and Description are the default.
	Translations map[string]TopicText `json:"translations,omitempty"`
	// Frequencies are the choices of how often the topic comes that the
	// preference page offers ("when"); none offers no choice.
	Frequencies []Frequency `json:"frequencies,omitempty"`
}

// TopicText is a topic's name and description in one language.
type TopicText struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// In returns the topic as a page or mail in locale shows it: the name and
// description of its translation for locale, each falling back to the
// default when the translation lacks it.
func (t Topic) In(locale string) Topic {
	tr, ok := t.Translations[locale]
	if !ok {
		return t
	}
	if tr.Name != "" {
		t.Name = tr.Name
	}
	if tr.Description != "" {
		t.Description = tr.Description
	}
	return t
}

// TopicsIn returns ts as shown in locale (see Topic.In).
func TopicsIn(ts []Topic, locale string) []Topic {
	out := make([]Topic, len(ts))
	for i, t := range ts {
		out[i] = t.In(locale)
	}
	return out
}

// Update lays upd's name, description and translations over t and
// reports whether a name changed in any language: then every form that
// offers t shows a new wording, and gets a new wording version.
func (t *Topic) Update(upd Topic) (renamed bool) {
	renamed = t.Name != upd.Name || len(t.Translations) != len(upd.Translations)
	for loc, tr := range upd.Translations {
		if old, ok := t.Translations[loc]; !ok || old.Name != tr.Name {
			renamed = true
		}
	}
	t.Name, t.Description, t.Translations, t.Frequencies = upd.Name, upd.Description, upd.Translations, upd.Frequencies
	return renamed
}

// Form is a signup form: the topics it offers and the consent wording shown
// with them, per locale.
type Form struct {
	ID     string   `json:"id"`
	Topics []string `json:"topics"`
	// Locale is the form's default locale, e.g. "en".
	Locale string `json:"locale"`
	// Wording is the consent text shown above the topic checkboxes, per
	// locale. Every change creates a new WordingVersion.
	Wording        map[string]string `json:"wording"`
	WordingVersion int               `json:"wording_version"`
	// AllowedOrigins are the web origins (scheme://host[:port]) that may
	// embed the form and post to it, besides optin's own base URL.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// SuccessURL is where a browser goes after a signup; empty means
	// optin's own thanks page.
	SuccessURL string `json:"success_url,omitempty"`
	// PrivacyURL is the privacy notice linked under the form; empty means
	// optin's own page at {base_url}/privacy.
	PrivacyURL string `json:"privacy_url,omitempty"`
	// ProofOfWork, when above zero, makes a signup solve a proof-of-work
	// challenge of that many leading zero bits first (see PoWBits).
	ProofOfWork int `json:"proof_of_work,omitempty"`
	// Channels are the optional channels (sms, phone, post) the form
	// offers beside email for each of its topics; none offers email only.
	Channels []Channel `json:"channels,omitempty"`
	Brand    Brand     `json:"brand,omitzero"` // over the configured brand on this form's pages and mails (Brand.Over)
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// MaxProofOfWork is the most leading zero bits a form may demand: about
// 16 million hashes, tens of seconds in a browser (16 bits take a fraction
// of a second).
const MaxProofOfWork = 24

// Clone returns f with its own copies of its slices and maps, for a
// cache that hands out forms callers may change.
func (f Form) Clone() Form {
	f.Topics = slices.Clone(f.Topics)
	f.Wording = maps.Clone(f.Wording)
	f.AllowedOrigins = slices.Clone(f.AllowedOrigins)
	f.Channels = slices.Clone(f.Channels)
	return f
}

// Clone returns t with its own copies of its map and slice.
func (t Topic) Clone() Topic {
	t.Translations = maps.Clone(t.Translations)
	t.Frequencies = slices.Clone(t.Frequencies)
	return t
}

// PoWBits returns the proof-of-work difficulty the form demands, capped
// at MaxProofOfWork; 0 means none.
func (f *Form) PoWBits() int { return min(max(f.ProofOfWork, 0), MaxProofOfWork) }

// Offers reports whether the form offers topic.
func (f *Form) Offers(topic string) bool { return slices.Contains(f.Topics, topic) }

// Wording is one version of the exact consent text a person saw: the form's
// wording in one locale together with the labels of the topics offered. It is
// stored once per version and referred to from ledger events by its hash.
type Wording struct {
	Form    string            `json:"form"`
	Version int               `json:"version"`
	Locale  string            `json:"locale"`
	Text    string            `json:"text"`
	Topics  map[string]string `json:"topics"`
	// Notice is the line shown under the form: who sends, that consent
	// can be withdrawn at any time and how.
	Notice string `json:"notice,omitempty"`
	// Channels are the labels of the optional channels offered with the
	// topics, by channel; Frequencies those of the frequency choices.
	Channels    map[string]string `json:"channels,omitempty"`
	Frequencies map[string]string `json:"frequencies,omitempty"`
}

// Hash returns the hex SHA-256 of the wording's canonical JSON encoding.
func (w Wording) Hash() string {
	var buf [1024]byte
	sum := sha256.Sum256(w.appendJSON(buf[:0]))
	return hex.EncodeToString(sum[:])
}

// appendJSON appends w's canonical JSON encoding: byte for byte what
// encoding/json writes for it, map keys sorted (TestLedgerJSON compares
// them), as the wording hashes in ledgers written before are over those
// bytes. Every signup hashes its wording, and Marshal's reflection and
// map sorting were most of that.
func (w *Wording) appendJSON(b []byte) []byte {
	b = jsonenc.AppendString(append(b, `{"form":`...), w.Form)
	b = strconv.AppendInt(append(b, `,"version":`...), int64(w.Version), 10)
	b = jsonenc.AppendString(append(b, `,"locale":`...), w.Locale)
	b = jsonenc.AppendString(append(b, `,"text":`...), w.Text)
	b = append(b, `,"topics":`...)
	if w.Topics == nil {
		b = append(b, "null"...) // not omitempty
	} else {
		b = appendStringMap(b, w.Topics)
	}
	b = jsonenc.AppendOptional(b, `,"notice":`, w.Notice)
	if len(w.Channels) > 0 {
		b = appendStringMap(append(b, `,"channels":`...), w.Channels)
	}
	if len(w.Frequencies) > 0 {
		b = appendStringMap(append(b, `,"frequencies":`...), w.Frequencies)
	}
	return append(b, '}')
}

// appendStringMap appends m as a JSON object with its keys sorted, as
// encoding/json writes a map.
func appendStringMap(b []byte, m map[string]string) []byte {
	keys := make([]string, 0, 8)
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonenc.AppendString(b, k)
		b = jsonenc.AppendString(append(b, ':'), m[k])
	}
	return append(b, '}')
}

// Subscription is one subscriber's standing for one topic.
type Subscription struct {
	Topic  string    `json:"topic"`
	Status Status    `json:"status"`
	Basis  Basis     `json:"basis,omitempty"`
	Since  time.Time `json:"since"`
	// Assessment is the legitimate-interest assessment a subscription on
	// that basis rests on, when its import cited one.
	Assessment string `json:"assessment,omitempty"`
	// Channels are the optional channels the person let carry the topic
	// besides email (see Carries); Frequency how often they want it, one
	// of the topic's Frequencies ("" for no choice). Both end with the
	// subscription (an unsubscription or a lapse).
	Channels  []Channel `json:"channels,omitempty"`
	Frequency Frequency `json:"frequency,omitempty"`
}

// Subscriber is a person optin holds data about. ID is random and never
// derived from the address.
type Subscriber struct {
	ID      string    `json:"id"`
	Email   string    `json:"email"`
	Name    string    `json:"name,omitempty"`
	Locale  string    `json:"locale,omitempty"`
	Created time.Time `json:"created"`
	// Phone (E.164) and PostalAddress are where the optional channels
	// reach the person; each is kept only while a confirmed subscription
	// carries a channel that needs it.
	Phone         string `json:"phone,omitempty"`
	PostalAddress string `json:"postal_address,omitempty"`
	// LastPurchase is the last purchase recorded through the admin API;
	// zero for a prospect.
	LastPurchase time.Time `json:"last_purchase,omitzero"`
	// Subscriptions by topic ID.
	Subscriptions map[string]*Subscription `json:"subscriptions"`
	// PendingRequest is the ID of the open double-opt-in request, if any.
	PendingRequest string `json:"pending_request,omitempty"`
	// ConfirmMails are the times confirmation mails were queued since the
	// last confirmation; they enforce the per-address mail cap.
	ConfirmMails []time.Time `json:"confirm_mails,omitempty"`
	// BlockedUntil stops confirmation mails after "this was not me".
	BlockedUntil time.Time `json:"blocked_until,omitzero"`
	// LastManageMail is when a preference link was last mailed.
	LastManageMail time.Time `json:"last_manage_mail,omitzero"`
	// Reawakened is, per topic, when a reawaken campaign last asked the
	// person to reconfirm; it caps those mails at one per dormancy cycle
	// (see Eligibility).
	Reawakened map[string]time.Time `json:"reawakened,omitempty"`
	// SoftBounces are the times of the soft bounces reported within the
	// SoftBouncePolicy's window; enough of them suppress the address.
	SoftBounces []time.Time `json:"soft_bounces,omitempty"`
	// Notice is the information notice owed to a person imported on soft
	// opt-in or legitimate interest (GDPR Art. 14), once queued.
	Notice *Notice `json:"art14_notice,omitempty"`
}

// MailName returns the name a mail to s may greet them by: "" until the
// address is confirmed, that is until one of s's subscriptions has left
// pending (a confirm click, a preference-center choice or an operator's
// import with evidence). Before that the name is whatever anyone typed
// next to the address, and echoing it would put a stranger's text (a
// link, say) in a mail to a stranger.
func (s *Subscriber) MailName() string {
	for _, sub := range s.Subscriptions {
		if sub.Status != StatusPending {
			return s.Name
		}
	}
	return ""
}

// Lifecycle returns the subscriber's lifecycle stage at now: a prospect
// until a purchase, a customer while the last purchase is younger than
// dormantAfter, dormant from then on.
func (s *Subscriber) Lifecycle(now time.Time, dormantAfter time.Duration) Lifecycle {
	switch {
	case s.LastPurchase.IsZero():
		return LifecycleProspect
	case now.Sub(s.LastPurchase) >= dormantAfter:
		return LifecycleDormant
	default:
		return LifecycleCustomer
	}
}

// Request is a pending double-opt-in request: the topics a person asked for
// on a form, waiting for the click on the link mailed to them.
type Request struct {
	ID         string `json:"id"`
	Subscriber string `json:"subscriber"`
	Form       string `json:"form"`
	// Source is where the request came from, as ledger events cite it:
	// form:<id>, or import:<batch> for an import without evidence.
	Source  string    `json:"source,omitempty"`
	Topics  []string  `json:"topics"`
	Locale  string    `json:"locale"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// MessageID is the Message-ID of the confirmation mail, chosen when
	// the mail is queued so the ledger can cite it.
	MessageID string `json:"message_id"`
	// Sent is when the relay accepted the confirmation mail; zero until
	// then. How soon after it a click comes is a sign of a mail scanner.
	Sent      time.Time `json:"sent,omitzero"`
	Confirmed time.Time `json:"confirmed,omitzero"`
	Canceled  time.Time `json:"canceled,omitzero"`
	// NewEmail makes this an address change (GDPR Art. 16): confirming
	// it makes NewEmail the subscriber's address; it has no topics.
	NewEmail string `json:"new_email,omitempty"`
	// Channels are the optional channels chosen per topic on the form,
	// with the number and address they need: they take effect when the
	// request is confirmed, like its topics. Page and Wording are the
	// page and wording hash of the signup, which their events cite.
	Channels      map[string][]Channel `json:"channels,omitempty"`
	Phone         string               `json:"phone,omitempty"`
	PostalAddress string               `json:"postal_address,omitempty"`
	Page          string               `json:"page,omitempty"`
	Wording       string               `json:"wording,omitempty"`
	// IP is the client address the signup came from, which the scanner
	// check of a click on its link compares (the requested event's
	// personal record holds it too; a request is deleted with its
	// person, and swept pending.retention after its link expired).
	IP string `json:"ip,omitempty"`
}

// MarkSent records that the relay accepted r's confirmation mail at now.
// It reports whether r changed: only an open request whose mail was not
// recorded yet does (a mail dropped before sending finds its request
// closed).
func (r *Request) MarkSent(now time.Time) bool {
	if !r.Open(now) || !r.Sent.IsZero() {
		return false
	}
	r.Sent = now
	return true
}

// Open reports whether r can still be confirmed at now.
func (r *Request) Open(now time.Time) bool {
	return r.Confirmed.IsZero() && r.Canceled.IsZero() && now.Before(r.Expires)
}

// JobKind says which mail an outbox job sends.
type JobKind string

// Job kinds.
const (
	JobConfirm     JobKind = "confirm"     // double-opt-in request (transactional)
	JobPreferences JobKind = "preferences" // preference-center link asked for at /manage (transactional)
	JobReawaken    JobKind = "reawaken"    // re-permission request of a campaign (marketing, CASL s. 1(3))
	// JobAddressChange asks a new address to confirm that it replaces the
	// subscriber's address; JobAddressChanged tells the old address that
	// it was replaced (both transactional).
	JobAddressChange  JobKind = "address_change"
	JobAddressChanged JobKind = "address_changed"
	// JobIncidentNotice tells a person affected by a personal data breach
	// (GDPR Art. 34); it goes to suppressed addresses too.
	JobIncidentNotice JobKind = "incident_notice"
	// JobNotice informs a person imported on soft opt-in or legitimate
	// interest (GDPR Art. 14); see Notice. It carries one-click objection.
	JobNotice JobKind = "art14_notice"
)

// Job is a mail waiting in the outbox. It is written in the same
// transaction as the state change that caused it.
type Job struct {
	ID         uint64    `json:"id"`
	Kind       JobKind   `json:"kind"`
	To         string    `json:"to"`
	Name       string    `json:"name,omitempty"` // Subscriber.MailName
	Locale     string    `json:"locale"`
	Subscriber string    `json:"subscriber"`
	Request    string    `json:"request,omitempty"`
	Form       string    `json:"form,omitempty"` // a confirmation request's form, whose brand the mail wears
	Topics     []string  `json:"topics,omitempty"`
	MessageID  string    `json:"message_id"`
	Created    time.Time `json:"created"`
	// TokenExpires is the expiry of the link the mail carries.
	TokenExpires time.Time `json:"token_expires,omitzero"`
	Attempts     int       `json:"attempts"`
	NextAt       time.Time `json:"next_at"`
	LastError    string    `json:"last_error,omitempty"`
	// Basis is the basis the person holds the mail's topics on: a
	// JobReawaken mail words itself to fit (a customer with a soft opt-in
	// never subscribed), a JobNotice explains it.
	Basis Basis `json:"basis,omitempty"`
	// Campaign, Topic, Subject, Body and Reminder describe a JobReawaken
	// mail: the campaign and the topic it asks about, the marketer's
	// subject and plain-text body in the recipient's language (with
	// placeholders still in), and whether it is the one reminder.
	Campaign string `json:"campaign,omitempty"`
	Topic    string `json:"topic,omitempty"`
	Subject  string `json:"subject,omitempty"`
	Body     string `json:"body,omitempty"`
	Reminder bool   `json:"reminder,omitempty"`
	// NewEmail is, in a JobAddressChanged notice, the address that
	// replaced the one the notice goes to.
	NewEmail string `json:"new_email,omitempty"`
	// Incident is the incident a JobIncidentNotice is about; its Body is
	// the operator's text.
	Incident string `json:"incident,omitempty"`
	// Origin is, in a JobNotice, where the person's data came from
	// (Notice.Origin).
	Origin string `json:"origin,omitempty"`
	// Channels, Phone and PostalAddress are, in a JobConfirm, the
	// optional channels the request chose per topic and where they reach
	// the person: the mail names them, since the click agrees to them too.
	Channels      map[string][]Channel `json:"channels,omitempty"`
	Phone         string               `json:"phone,omitempty"`
	PostalAddress string               `json:"postal_address,omitempty"`
}

// WordingFor returns the exact wording the form shows in locale: its text
// for that locale (else its default locale's, else fallback), the labels of
// all the topics it offers, as they were at the time, and the notice shown
// under the form.
func (f *Form) WordingFor(locale string, topics []Topic, fallback, notice string) Wording {
	text, ok := f.Wording[locale]
	if !ok {
		if text, ok = f.Wording[f.Locale]; !ok {
			text = fallback
		} else {
			locale = f.Locale
		}
	}
	labels := make(map[string]string, len(topics))
	for _, t := range topics {
		labels[t.ID] = t.Name
	}
	return Wording{Form: f.ID, Version: f.WordingVersion, Locale: locale, Text: text, Topics: labels, Notice: notice}
}
