package consent

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CampaignState is where a reawaken campaign stands.
type CampaignState string

// Campaign states. A draft sends nothing; running queues mail at the
// campaign's rate; paused queues nothing new (mail already queued still
// goes out); done means every first mail is out. Answers, reminders and
// deadlines are still recorded for a done campaign. Cancelled is final:
// first mails not yet sent are withheld, no reminder goes out and nobody
// lapses; those already asked keep their subscription as it stands.
const (
	CampaignDraft     CampaignState = "draft"
	CampaignRunning   CampaignState = "running"
	CampaignPaused    CampaignState = "paused"
	CampaignDone      CampaignState = "done"
	CampaignCancelled CampaignState = "cancelled"
)

// Campaign limits and defaults.
const (
	DefaultCampaignRate     = 10
	MaxCampaignRate         = 1000
	DefaultCampaignDeadline = Span(30 * Day)
	MinCampaignDeadline     = Span(Day)
	MaxCampaignDeadline     = Span(180 * Day)
	// DefaultSoftOptInWindow is how long after the last purchase a soft
	// opt-in still carries marketing mail: two years, the CASL window for
	// implied consent from a purchase (s. 10(10)), which is also a prudent
	// reading of "existing customer" under ePrivacy Art. 13(2).
	DefaultSoftOptInWindow = 2 * 365 * Day
)

// Day is 24 hours, the "d" unit of Span.
const Day = 24 * time.Hour

// Span is a duration written like the config's durations: Go syntax
// ("72h", "90m") or whole days ("30d"). It is JSON-encoded as that string.
type Span time.Duration

// ParseSpan parses s as a Span: Go syntax ("72h", "1h30m") or a whole
// number of days ("30d"). Negative durations are errors.
func ParseSpan(s string) (Span, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	if digits, ok := strings.CutSuffix(s, "d"); ok && digits != "" && strings.Trim(digits, "0123456789") == "" {
		n, err := strconv.ParseInt(digits, 10, 64)
		if err != nil || n > int64(1<<63-1)/int64(Day) {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		return Span(time.Duration(n) * Day), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: use Go syntax such as \"72h\" or \"90m\", or whole days such as \"30d\"", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	return Span(d), nil
}

// String formats s as whole days ("365d") when possible, otherwise in Go
// syntax without trailing zero units ("90m" is "1h30m", "2h" is "2h").
func (s Span) String() string {
	d := time.Duration(s)
	if d > 0 && d%Day == 0 {
		return strconv.FormatInt(int64(d/Day), 10) + "d"
	}
	out := d.String()
	if strings.HasSuffix(out, "m0s") {
		out = out[:len(out)-2]
	}
	if strings.HasSuffix(out, "h0m") {
		out = out[:len(out)-2]
	}
	return out
}

// MarshalJSON encodes s as its String.
func (s Span) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON decodes a string written for ParseSpan.
func (s *Span) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return fmt.Errorf("a duration must be a string such as \"30d\" or \"72h\"")
	}
	v, err := ParseSpan(str)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Audience narrows who a campaign asks. The filters can only narrow the
// audience: Eligibility decides who may be asked at all, whatever they
// say. An audience without any filter asks dormant contacts only (see
// Campaign.Select), never everyone the rule allows.
type Audience struct {
	// Lifecycle keeps subscribers in one of these stages.
	Lifecycle []Lifecycle `json:"lifecycle,omitempty"`
	// Topics keeps subscribers holding a confirmed subscription to every
	// one of these topics (besides the campaign's own).
	Topics []string `json:"topics,omitempty"`
	// ConsentOlderThan keeps subscriptions whose consent (their Since) is
	// at least this old.
	ConsentOlderThan Span `json:"consent_older_than,omitempty"`
	// NoActivitySince keeps subscribers with neither a purchase nor a
	// consent action on the topic at or after this time.
	NoActivitySince time.Time `json:"no_activity_since,omitzero"`
}

// IsZero reports whether a has no filter at all.
func (a Audience) IsZero() bool {
	return len(a.Lifecycle) == 0 && len(a.Topics) == 0 && a.ConsentOlderThan == 0 && a.NoActivitySince.IsZero()
}

// Matches reports whether sub passes the filters for topic at now.
func (a Audience) Matches(sub *Subscriber, topic string, now time.Time, dormantAfter time.Duration) bool {
	if len(a.Lifecycle) > 0 && !slices.Contains(a.Lifecycle, sub.Lifecycle(now, dormantAfter)) {
		return false
	}
	for _, t := range a.Topics {
		if s := sub.Subscriptions[t]; s == nil || s.Status != StatusConfirmed {
			return false
		}
	}
	s := sub.Subscriptions[topic]
	if s == nil {
		return false
	}
	if a.ConsentOlderThan > 0 && now.Sub(s.Since) < time.Duration(a.ConsentOlderThan) {
		return false
	}
	if !a.NoActivitySince.IsZero() && (!s.Since.Before(a.NoActivitySince) || !sub.LastPurchase.Before(a.NoActivitySince)) {
		return false
	}
	return true
}

// CampaignTemplate is the marketer's mail for one language: plain text
// with the placeholders {{name}} and {{topic}}. It is never run as a
// template: placeholders are replaced as plain strings.
type CampaignTemplate struct {
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

// CampaignCounts is a campaign's progress. Targeted counts recipients
// queued; Excluded counts subscribers the walk passed over, by reason;
// Sent counts first mails handed to the mail server; Failed those the
// server refused for good; Dropped those held back at send time (the
// person erased or suppressed meanwhile); Withheld those not sent
// because the campaign was cancelled.
type CampaignCounts struct {
	Targeted     int            `json:"targeted"`
	Excluded     map[string]int `json:"excluded"`
	Sent         int            `json:"sent"`
	Reminded     int            `json:"reminded"`
	Reconfirmed  int            `json:"reconfirmed"`
	Unsubscribed int            `json:"unsubscribed"`
	Lapsed       int            `json:"lapsed"`
	Failed       int            `json:"failed"`
	Dropped      int            `json:"dropped"`
	Withheld     int            `json:"withheld"`
}

// Campaign is a reawaken (re-permission) campaign: it asks subscribers of
// one topic whether they want to keep it, and lets the subscription lapse
// when they do not answer by the deadline.
type Campaign struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Topic string `json:"topic"`
	// Audience narrows the campaign's audience.
	Audience Audience `json:"audience"`
	// Templates are the mail per locale (en, it, sv); a subscriber gets
	// their locale, else en, else the first one defined.
	Templates map[string]CampaignTemplate `json:"templates"`
	// Deadline is how long a recipient has to answer after the mail was
	// sent; Reminder, when set, when the one reminder goes to those who
	// have not answered.
	Deadline Span `json:"deadline"`
	Reminder Span `json:"reminder,omitempty"`
	// Rate is the most first mails queued per second.
	Rate     int            `json:"rate"`
	State    CampaignState  `json:"state"`
	Counts   CampaignCounts `json:"counts"`
	Created  time.Time      `json:"created"`
	Updated  time.Time      `json:"updated"`
	Started  time.Time      `json:"started,omitzero"`
	Finished time.Time      `json:"finished,omitzero"`
	// Cancelled is when the campaign was cancelled.
	Cancelled time.Time `json:"cancelled,omitzero"`
	// Cursor is the id of the last subscriber the walk examined; the
	// walk resumes after it. Walked is set once it passed the last one.
	Cursor string `json:"cursor,omitempty"`
	Walked bool   `json:"walked,omitempty"`
}

// Source is the ledger source of the campaign's events.
func (c *Campaign) Source() string { return "campaign:" + c.ID }

// Template returns the campaign's mail for locale: that locale's, else
// en's, else the first defined in locale order.
func (c *Campaign) Template(locale string) (string, CampaignTemplate) {
	for _, l := range append([]string{locale, "en"}, slices.Sorted(maps.Keys(c.Templates))...) {
		if t, ok := c.Templates[l]; ok {
			return l, t
		}
	}
	return "", CampaignTemplate{}
}

// CheckLocales reports an EInvalid error when a template is written for a
// locale outside locales, those optin has catalogs for.
func (in CampaignInput) CheckLocales(locales []string) error {
	for l := range in.Templates {
		if !slices.Contains(locales, l) {
			return Errorf(EInvalid, "templates: %q is not a locale optin ships (%s)", Truncate(l, 20), strings.Join(locales, ", "))
		}
	}
	return nil
}

// CampaignInput is a campaign as the admin API receives it.
type CampaignInput struct {
	Name      string                      `json:"name"`
	Topic     string                      `json:"topic"`
	Audience  AudienceInput               `json:"audience"`
	Templates map[string]CampaignTemplate `json:"templates"`
	Deadline  string                      `json:"deadline"`
	Reminder  string                      `json:"reminder"`
	Rate      int                         `json:"rate"`
}

// AudienceInput is an Audience as the admin API receives it.
type AudienceInput struct {
	Lifecycle        []Lifecycle `json:"lifecycle"`
	Topics           []string    `json:"topics"`
	ConsentOlderThan string      `json:"consent_older_than"`
	NoActivitySince  string      `json:"no_activity_since"`
}

// placeholderRE finds {{...}} in marketer text.
var placeholderRE = regexp.MustCompile(`\{\{[^}]*\}\}`)

// NewCampaign validates in and returns a draft campaign. Every problem is
// an EInvalid *Error naming the field. Whether the topics exist is the
// store's to check.
func NewCampaign(in CampaignInput, id string, now time.Time) (*Campaign, error) {
	c := &Campaign{ID: id, Name: strings.TrimSpace(in.Name), Topic: strings.TrimSpace(in.Topic),
		Templates: map[string]CampaignTemplate{}, Rate: in.Rate, State: CampaignDraft,
		Counts: CampaignCounts{Excluded: map[string]int{}}, Created: now, Updated: now}
	if c.Name == "" || !PlainText(c.Name, 200, false) {
		return nil, Errorf(EInvalid, "name is required: at most 200 characters on one line")
	}
	if c.Topic == "" {
		return nil, Errorf(EInvalid, "topic is required: the topic the campaign asks people to keep")
	}
	for _, l := range in.Audience.Lifecycle {
		if !slices.Contains([]Lifecycle{LifecycleProspect, LifecycleCustomer, LifecycleDormant}, l) {
			return nil, Errorf(EInvalid, "audience.lifecycle: %q is not prospect, customer or dormant", Truncate(string(l), 40))
		}
	}
	c.Audience.Lifecycle = in.Audience.Lifecycle
	for _, t := range in.Audience.Topics {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(c.Audience.Topics, t) {
			c.Audience.Topics = append(c.Audience.Topics, t)
		}
	}
	if s := in.Audience.ConsentOlderThan; s != "" {
		d, err := ParseSpan(s)
		if err != nil {
			return nil, Errorf(EInvalid, "audience.consent_older_than: %v", err)
		}
		c.Audience.ConsentOlderThan = d
	}
	if s := in.Audience.NoActivitySince; s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return nil, Errorf(EInvalid, "audience.no_activity_since must be an RFC 3339 time such as 2025-01-31T00:00:00Z")
		}
		c.Audience.NoActivitySince = t.UTC()
	}
	if len(in.Templates) == 0 {
		return nil, Errorf(EInvalid, "templates is required: a subject and body for at least one locale")
	}
	for l, t := range in.Templates {
		t.Subject, t.Body = strings.TrimSpace(t.Subject), strings.TrimSpace(strings.ReplaceAll(t.Body, "\r\n", "\n"))
		if t.Subject == "" || !PlainText(t.Subject, 200, false) {
			return nil, Errorf(EInvalid, "templates.%s.subject is required: at most 200 characters on one line", l)
		}
		if t.Body == "" || !PlainText(t.Body, 20000, true) {
			return nil, Errorf(EInvalid, "templates.%s.body is required: plain text of at most 20000 characters", l)
		}
		for _, f := range []string{t.Subject, t.Body} {
			for _, p := range placeholderRE.FindAllString(f, -1) {
				if p != "{{name}}" && p != "{{topic}}" {
					return nil, Errorf(EInvalid, "templates.%s: unknown placeholder %s; use {{name}} or {{topic}}", l, Truncate(p, 40))
				}
			}
		}
		c.Templates[l] = t
	}
	var err error
	if c.Deadline, err = spanField("deadline", in.Deadline, DefaultCampaignDeadline); err != nil {
		return nil, err
	}
	if c.Deadline < MinCampaignDeadline || c.Deadline > MaxCampaignDeadline {
		return nil, Errorf(EInvalid, "deadline must be from %s to %s", MinCampaignDeadline, MaxCampaignDeadline)
	}
	if c.Reminder, err = spanField("reminder", in.Reminder, 0); err != nil {
		return nil, err
	}
	if c.Reminder != 0 && (c.Reminder < Span(time.Hour) || c.Reminder >= c.Deadline) {
		return nil, Errorf(EInvalid, "reminder must be at least 1h and shorter than the deadline (%s)", c.Deadline)
	}
	if c.Rate == 0 {
		c.Rate = DefaultCampaignRate
	}
	if c.Rate < 1 || c.Rate > MaxCampaignRate {
		return nil, Errorf(EInvalid, "rate must be from 1 to %d mails a second", MaxCampaignRate)
	}
	return c, nil
}

func spanField(name, s string, def Span) (Span, error) {
	if s == "" {
		return def, nil
	}
	d, err := ParseSpan(s)
	if err != nil {
		return 0, Errorf(EInvalid, "%s: %v", name, err)
	}
	return d, nil
}

// Start moves a draft or paused campaign to running at now. Starting a
// running campaign changes nothing; a done one is EConflict.
func (c *Campaign) Start(now time.Time) error {
	switch c.State {
	case CampaignDraft, CampaignPaused:
		if c.Started.IsZero() {
			c.Started = now
		}
		c.State, c.Updated = CampaignRunning, now
	case CampaignDone:
		return Errorf(EConflict, "campaign %s is done; create a new one", c.ID)
	case CampaignCancelled:
		return Errorf(EConflict, "campaign %s was cancelled; create a new one", c.ID)
	}
	return nil
}

// Pause stops a running campaign from queuing mail. Pausing a paused one
// changes nothing; a draft or done one is EConflict.
func (c *Campaign) Pause(now time.Time) error {
	switch c.State {
	case CampaignRunning:
		c.State, c.Updated = CampaignPaused, now
	case CampaignDraft:
		return Errorf(EConflict, "campaign %s has not started", c.ID)
	case CampaignDone:
		return Errorf(EConflict, "campaign %s is done", c.ID)
	case CampaignCancelled:
		return Errorf(EConflict, "campaign %s was cancelled", c.ID)
	}
	return nil
}

// Cancel ends the campaign at now, whatever its state: from then on its
// first mails still in the outbox are withheld, no reminder is sent and
// no deadline lapses anyone (PlanSettle, PlanFollowUp); answers to mail
// already sent still count. Cancelling a cancelled campaign changes
// nothing.
func (c *Campaign) Cancel(now time.Time) {
	if c.State == CampaignCancelled {
		return
	}
	c.State, c.Cancelled, c.Updated = CampaignCancelled, now, now
}

// Exclusion reasons: why a subscriber is not in a campaign's audience.
const (
	ExcludedNotSubscribed   = "not_subscribed"      // no subscription to the topic at all
	ExcludedPending         = "pending"             // never confirmed: on no list before the confirm click
	ExcludedUnsubscribed    = "unsubscribed"        // withdrew (GDPR Art. 7(3), 21(3))
	ExcludedLapsed          = "lapsed"              // lapsed after an unanswered reawaken mail: silence is no consent
	ExcludedSuppressed      = "suppressed"          // on the suppression list for the topic or all
	ExcludedNoBasis         = "no_basis"            // no provable consent or soft opt-in (the ICO's Honda case)
	ExcludedSoftOptInExpiry = "soft_opt_in_expired" // soft opt-in whose last purchase is too old (CASL s. 10(10))
	ExcludedRecent          = "confirmed_recently"  // confirmed or reconfirmed within lifecycle.dormant_after: a cool-down
	ExcludedAlreadyAsked    = "already_asked"       // asked once in this dormancy cycle: one mail per cycle
	ExcludedNotDormant      = "not_dormant"         // bought within lifecycle.dormant_after: an unfiltered campaign asks dormant contacts only
	ExcludedNew             = "joined_after_start"  // created after the campaign started
	ExcludedFiltered        = "filtered"            // left out by the campaign's own filters
	ExcludedNoticePending   = "notice_pending"      // imported, and the information notice has not gone out yet (GDPR Art. 14(3)(b))
)

// CampaignPolicy holds the operator's settings the audience rule uses.
type CampaignPolicy struct {
	// DormantAfter is lifecycle.dormant_after: for the lifecycle filter,
	// the cool-down after a consent and the audience of an unfiltered
	// campaign.
	DormantAfter time.Duration
	// SoftOptInWindow is how long after the last purchase a soft opt-in
	// still counts; zero means DefaultSoftOptInWindow.
	SoftOptInWindow time.Duration
}

// IsEvidence reports whether ev proves a basis for topic: a confirmation,
// an import with evidence, a reconfirmation or a preference-center opt-in
// naming the topic, on basis.
func IsEvidence(ev *Event, topic string, basis Basis) bool {
	switch ev.Type {
	case EventConfirmed, EventImported, EventReconfirmed, EventPreferencesUpdated:
		return slices.Contains(ev.Topics, topic) && ev.Basis == basis
	}
	return false
}

// Eligibility is THE audience rule of reawaken campaigns, whose mail is
// marketing (CASL s. 1(3); the ICO's Flybe and Honda decisions): it
// decides whether sub may be asked to keep topic at now, whatever a
// campaign's filters say; filters can only narrow its answer. suppressed
// says the address is on the suppression list for the topic or for all;
// hasEvidence that the ledger holds an event proving the subscription's
// basis (see IsEvidence). The subscriber qualifies only when:
//   - the subscription is confirmed: never pending, unsubscribed or
//     lapsed (an erased subscriber no longer exists to be asked);
//   - the address is not suppressed, for any reason;
//   - the basis is consent backed by ledger evidence, or soft opt-in
//     backed by evidence with a purchase within the soft-opt-in window.
//     Legitimate interest alone never qualifies: a re-permission mail is
//     marketing and needs consent or soft opt-in (the Honda case), and so
//     does a subscription without a basis;
//   - a consent was not given (confirmed, or reconfirmed) within
//     p.DormantAfter: someone who said yes recently is not asked again
//     (a cool-down; asking so soon checks nothing and only nags). A soft
//     opt-in's recency is the last purchase's, which the unfiltered
//     audience weighs (Campaign.Select);
//   - a person imported on soft opt-in or legitimate interest has had the
//     information notice (GDPR Art. 14(3)(b): it comes at the latest
//     with the first communication, so the campaign waits for it);
//   - it was not asked in the current dormancy cycle: a cycle begins
//     with the subscription's last consent (its Since: a confirmation or
//     a reconfirmation) or the last purchase, whichever is later.
//
// It returns ok, or the reason (an Excluded constant) it is not.
func Eligibility(sub *Subscriber, topic string, suppressed, hasEvidence bool, now time.Time, p CampaignPolicy) (bool, string) {
	s := sub.Subscriptions[topic]
	if s == nil {
		return false, ExcludedNotSubscribed
	}
	switch s.Status {
	case StatusPending:
		return false, ExcludedPending
	case StatusUnsubscribed:
		return false, ExcludedUnsubscribed
	case StatusLapsed:
		return false, ExcludedLapsed
	case StatusConfirmed:
	default:
		return false, ExcludedNoBasis
	}
	if suppressed {
		return false, ExcludedSuppressed
	}
	switch s.Basis {
	case BasisConsent:
		if !hasEvidence {
			return false, ExcludedNoBasis
		}
	case BasisSoftOptIn:
		if !hasEvidence || sub.LastPurchase.IsZero() {
			return false, ExcludedNoBasis
		}
		window := p.SoftOptInWindow
		if window == 0 {
			window = DefaultSoftOptInWindow
		}
		if now.Sub(sub.LastPurchase) >= window {
			return false, ExcludedSoftOptInExpiry
		}
	default:
		return false, ExcludedNoBasis
	}
	if s.Basis == BasisConsent && now.Sub(s.Since) < p.DormantAfter {
		return false, ExcludedRecent
	}
	if sub.Notice.Pending() {
		return false, ExcludedNoticePending
	}
	if asked := sub.Reawakened[topic]; !asked.IsZero() && !asked.Before(s.Since) && !asked.Before(sub.LastPurchase) {
		return false, ExcludedAlreadyAsked
	}
	return true, ""
}

// Select applies the audience rule and then the campaign's filters to
// sub: ok, or the reason it is left out. A campaign without filters asks
// dormant contacts only: besides the rule's cool-down on the last
// consent, nobody who bought within p.DormantAfter (an active customer
// is no reawaken case).
func (c *Campaign) Select(sub *Subscriber, suppressed, hasEvidence bool, now time.Time, p CampaignPolicy) (bool, string) {
	if ok, reason := Eligibility(sub, c.Topic, suppressed, hasEvidence, now, p); !ok {
		return false, reason
	}
	if !c.Started.IsZero() && sub.Created.After(c.Started) {
		return false, ExcludedNew
	}
	if c.Audience.IsZero() && !sub.LastPurchase.IsZero() && now.Sub(sub.LastPurchase) < p.DormantAfter {
		return false, ExcludedNotDormant
	}
	if !c.Audience.Matches(sub, c.Topic, now, p.DormantAfter) {
		return false, ExcludedFiltered
	}
	return true, ""
}

// SelectLooking is Select with the address's suppression and the
// ledger evidence looked up only when the rule needs them: for a
// confirmed subscription, and the evidence of its basis only when the
// address is not suppressed (the rule decides every other case without
// them, and each lookup costs a store a read).
func (c *Campaign) SelectLooking(sub *Subscriber, now time.Time, p CampaignPolicy,
	suppressed func() (bool, error), evidence func(Basis) (bool, error)) (bool, string, error) {
	var supp, ev bool
	if s := sub.Subscriptions[c.Topic]; s != nil && s.Status == StatusConfirmed {
		var err error
		if supp, err = suppressed(); err != nil {
			return false, "", err
		}
		if !supp {
			if ev, err = evidence(s.Basis); err != nil {
				return false, "", err
			}
		}
	}
	ok, reason := c.Select(sub, supp, ev, now, p)
	return ok, reason, nil
}

// RecipientState is where one recipient of a campaign stands.
type RecipientState string

// Recipient states.
const (
	RecipientQueued       RecipientState = "queued"       // mail in the outbox
	RecipientSent         RecipientState = "sent"         // mail handed to the mail server; waiting for an answer
	RecipientReconfirmed  RecipientState = "reconfirmed"  // pressed "keep me subscribed"
	RecipientUnsubscribed RecipientState = "unsubscribed" // withdrew from the topic
	RecipientLapsed       RecipientState = "lapsed"       // no answer by the deadline
	RecipientFailed       RecipientState = "failed"       // the mail server refused the mail for good
	RecipientDropped      RecipientState = "dropped"      // held back at send time (erased, suppressed)
	RecipientWithheld     RecipientState = "withheld"     // not sent: the campaign was cancelled first
)

// Recipient is one subscriber's record in one campaign. It exists from
// the moment the mail is queued, so a campaign mails a person at most
// once however often it is paused, resumed or restarted.
type Recipient struct {
	Campaign   string         `json:"campaign"`
	Subscriber string         `json:"subscriber"`
	State      RecipientState `json:"state"`
	// Job is the outbox job id of the first mail.
	Job      uint64    `json:"job"`
	Queued   time.Time `json:"queued"`
	Sent     time.Time `json:"sent,omitzero"`
	Deadline time.Time `json:"deadline,omitzero"`
	Reminded time.Time `json:"reminded,omitzero"`
	Answered time.Time `json:"answered,omitzero"`
}

// PlanReconfirm records that sub pressed "keep me subscribed" on the
// campaign's mail at in.Now: the subscription is confirmed afresh on the
// consent basis (an express, recorded act, GDPR Art. 7(1)), its Since
// refreshed, and the recipient marked. It returns the reconfirmed event,
// or nil when the recipient had already answered so (idempotent). A
// subscription that is no longer confirmed (lapsed, withdrawn) cannot be
// kept: EExpired.
func PlanReconfirm(c *Campaign, r *Recipient, sub *Subscriber, wording string, in ConfirmInput, ids IDs) (*Event, Personal, error) {
	if r.State == RecipientReconfirmed {
		return nil, Personal{}, nil
	}
	s := sub.Subscriptions[c.Topic]
	if s == nil || s.Status != StatusConfirmed || (r.State != RecipientSent && r.State != RecipientQueued) {
		return nil, Personal{}, Errorf(EExpired, "this subscription has ended; sign up again to receive these emails")
	}
	*s = Subscription{Topic: c.Topic, Status: StatusConfirmed, Basis: BasisConsent, Since: in.Now}
	r.State, r.Answered = RecipientReconfirmed, in.Now
	ev := &Event{Time: in.Now, Type: EventReconfirmed, Subscriber: sub.ID, Topics: []string{c.Topic},
		Basis: BasisConsent, Source: c.Source(), Wording: wording, Check: in.Check}
	return ev, Personal{Salt: ids.ID(), Email: sub.Email, IP: in.IP, UserAgent: in.UserAgent}, nil
}

// PlanAnswer records on r and c's counts, the moment ledger event ev is
// appended for r's subscriber, the answer it gives to c's question, so a
// running campaign's counts are live rather than settled at the
// deadline: an unsubscription from c's topic answers no, a confirmation,
// reconfirmation (by another campaign) or preference-center opt-in on it
// answers yes. Only a recipient still waiting for an answer (queued or
// sent) changes; c's own events are counted by the plans that make them.
// It reports whether r and c changed.
func PlanAnswer(c *Campaign, r *Recipient, ev *Event) bool {
	if !Answers(ev) || ev.Source == c.Source() || (r.State != RecipientQueued && r.State != RecipientSent) ||
		!slices.Contains(ev.Topics, c.Topic) {
		return false
	}
	if ev.Type == EventUnsubscribed {
		r.State = RecipientUnsubscribed
		c.Counts.Unsubscribed++
	} else {
		r.State = RecipientReconfirmed
		c.Counts.Reconfirmed++
	}
	r.Answered = ev.Time
	return true
}

// Answers reports whether ev may answer a campaign (PlanAnswer), so a
// store looks for the subscriber's recipient records only then.
func Answers(ev *Event) bool {
	switch ev.Type {
	case EventUnsubscribed, EventConfirmed, EventReconfirmed, EventPreferencesUpdated:
		return true
	}
	return false
}

// PlanLapse ends sub's subscription to the campaign's topic at now because
// the recipient did not answer by the deadline: status lapsed, and the
// lapsed event to append. It returns nil when the subscription is no
// longer confirmed, or was confirmed afresh after the mail went out (a
// preference-center opt-in or a new double opt-in is an answer too).
func PlanLapse(c *Campaign, r *Recipient, sub *Subscriber, now time.Time, ids IDs) (*Event, Personal) {
	s := sub.Subscriptions[c.Topic]
	if s == nil || s.Status != StatusConfirmed || s.Since.After(r.Sent) {
		return nil, Personal{}
	}
	basis := s.Basis
	s.Status, s.Since = StatusLapsed, now
	s.endChannels()
	sub.tidyContact()
	r.State, r.Answered = RecipientLapsed, now
	ev := &Event{Time: now, Type: EventLapsed, Subscriber: sub.ID, Topics: []string{c.Topic}, Basis: basis,
		Source: c.Source()}
	return ev, Personal{Salt: ids.ID(), Email: sub.Email}
}

// ReawakenWording is the suffix of the catalog keys that word a reawaken
// mail and its page for a person holding a topic on basis: "" for
// consent (they subscribed), "_customer" for a soft opt-in or any other
// basis (they bought, or were in touch, and never subscribed).
func ReawakenWording(basis Basis) string {
	if basis == "" || basis == BasisConsent {
		return ""
	}
	return "_customer"
}

// FillPlaceholders replaces {{name}} and {{topic}} in marketer text by
// plain string replacement: the text is never run as a template.
func FillPlaceholders(s, name, topic string) string {
	return strings.NewReplacer("{{name}}", name, "{{topic}}", topic).Replace(s)
}

// ReawakenLinkGrace is how long a reawaken mail's "keep me subscribed"
// link outlives the recipient's deadline, so a late click gets a clear
// page ("this subscription has ended") rather than a broken link.
const ReawakenLinkGrace = 30 * Day

// ReawakenSubject is the subject of a reawaken link's token: the campaign
// and the subscriber, both opaque ids, never an address (GDPR Art.
// 5(1)(c): a JWT's payload is only base64).
func ReawakenSubject(campaign, subscriber string) string { return campaign + "." + subscriber }

// ParseReawakenSubject splits a ReawakenSubject; ok is false for anything
// else.
func ParseReawakenSubject(s string) (campaign, subscriber string, ok bool) {
	campaign, subscriber, ok = strings.Cut(s, ".")
	return campaign, subscriber, ok && campaign != "" && subscriber != "" && !strings.Contains(subscriber, ".")
}

// PlanReawaken plans c's first mail to sub at now: the outbox job, whose
// link works until the deadline plus ReawakenLinkGrace, and the
// recipient record (its Job is set once the job has its id). It notes on
// sub that the person was asked in this dormancy cycle and counts the
// target on c.
func PlanReawaken(c *Campaign, sub *Subscriber, now time.Time, ids IDs) (*Job, *Recipient) {
	job := c.reawakenJob(sub, now.Add(time.Duration(c.Deadline)+ReawakenLinkGrace), false, now, ids.MessageID())
	if sub.Reawakened == nil {
		sub.Reawakened = map[string]time.Time{}
	}
	sub.Reawakened[c.Topic] = now
	c.Counts.Targeted++
	return job, &Recipient{Campaign: c.ID, Subscriber: sub.ID, State: RecipientQueued, Queued: now}
}

// SampleSubscriber is the id of the sample person a campaign's mail is
// previewed and test-sent for. No store holds it (subscriber ids are 36
// random characters), so the links of a sample mail change nothing.
const SampleSubscriber = "sample"

// SampleJob is campaign c's first mail as a sample person named name,
// writing in locale and holding c's topic on basis, would get it at now:
// for a preview, or a test send to to. It is recorded nowhere.
func (c *Campaign) SampleJob(to, name, locale string, basis Basis, now time.Time, messageID string) *Job {
	sub := &Subscriber{ID: SampleSubscriber, Email: to, Name: name, Locale: locale,
		Subscriptions: map[string]*Subscription{c.Topic: {Topic: c.Topic, Status: StatusConfirmed, Basis: basis, Since: now}}}
	return c.reawakenJob(sub, now.Add(time.Duration(c.Deadline)+ReawakenLinkGrace), false, now, messageID)
}

// reawakenJob is the one place a reawaken mail's job is built: the first
// mail or the reminder, in the subscriber's locale as far as the campaign
// has a template for it.
func (c *Campaign) reawakenJob(sub *Subscriber, expires time.Time, reminder bool, now time.Time, messageID string) *Job {
	locale, t := c.Template(sub.Locale)
	var basis Basis
	if s := sub.Subscriptions[c.Topic]; s != nil {
		basis = s.Basis
	}
	return &Job{Kind: JobReawaken, To: sub.Email, Name: sub.MailName(), Locale: locale,
		Subscriber: sub.ID, Topics: []string{c.Topic}, MessageID: messageID, Created: now,
		TokenExpires: expires, Campaign: c.ID, Topic: c.Topic, Basis: basis, Subject: t.Subject, Body: t.Body, Reminder: reminder}
}

// PlanSettle records on r and on c's counts the outcome of a first mail
// whose job has left the outbox, at now: parked means it failed; a
// subscriber erased (sub nil) or withdrawn from the topic meanwhile was
// held back at send time, and the withdrawal is the person's answer; a
// subscription no longer confirmed, or an address suppressed for the
// topic, was dropped at send time; otherwise the mail was sent and the
// recipient's deadline starts. It returns when to follow up: the
// deadline, and the reminder (zero without one); both are zero when
// nothing is to follow. A recipient no longer queued is left alone. The
// first mail of a cancelled campaign was withheld at send time: the
// person was not asked, so the mark PlanReawaken left on sub goes
// (unmarked reports that sub changed).
func PlanSettle(c *Campaign, r *Recipient, sub *Subscriber, parked, suppressed bool, now time.Time) (deadline, remind time.Time, unmarked bool) {
	if r.State != RecipientQueued {
		return time.Time{}, time.Time{}, false
	}
	var s *Subscription
	if sub != nil {
		s = sub.Subscriptions[c.Topic]
	}
	switch {
	case parked:
		r.State = RecipientFailed
		c.Counts.Failed++
	case c.State == CampaignCancelled:
		r.State = RecipientWithheld
		c.Counts.Withheld++
		if sub != nil && sub.Reawakened[c.Topic].Equal(r.Queued) {
			delete(sub.Reawakened, c.Topic)
			return time.Time{}, time.Time{}, true
		}
	case sub == nil || (s != nil && s.Status == StatusUnsubscribed):
		r.State, r.Answered = RecipientUnsubscribed, now
		c.Counts.Unsubscribed++
	case s == nil || s.Status != StatusConfirmed || suppressed:
		r.State = RecipientDropped
		c.Counts.Dropped++
	default:
		r.State, r.Sent = RecipientSent, now
		r.Deadline = now.Add(time.Duration(c.Deadline))
		c.Counts.Sent++
		if c.Reminder > 0 {
			remind = now.Add(time.Duration(c.Reminder))
		}
		return r.Deadline, remind, false
	}
	return time.Time{}, time.Time{}, false
}

// FollowUp is what one due reminder or deadline of a recipient changes.
// The zero FollowUp changes nothing.
type FollowUp struct {
	// Changed says the recipient record (and the campaign's counts)
	// changed and must be written.
	Changed bool
	// Mail is the reminder to queue.
	Mail *Job
	// Event, when set, is the lapsed event: the subscriber changed too.
	Event    *Event
	Personal Personal
}

// PlanFollowUp handles recipient r's due reminder (remind true) or
// deadline at now. A recipient who answered meanwhile needs nothing, nor
// does a reminder due after the deadline. A subscription that is no
// longer confirmed (or a subscriber erased: sub nil) is recorded as the
// person's answer. A confirmed one gets the reminder, unless the address
// is suppressed for the topic, or at the deadline lapses (PlanLapse); a
// subscription confirmed afresh after the mail counts as reconfirmed. A
// cancelled campaign follows up on nobody: no reminder, no lapse.
func PlanFollowUp(c *Campaign, r *Recipient, sub *Subscriber, remind, suppressed bool, now time.Time, ids IDs) FollowUp {
	if r.State != RecipientSent || c.State == CampaignCancelled || (remind && !now.Before(r.Deadline)) {
		return FollowUp{}
	}
	var s *Subscription
	if sub != nil {
		s = sub.Subscriptions[c.Topic]
	}
	switch {
	case s == nil || s.Status != StatusConfirmed:
		r.State, r.Answered = RecipientUnsubscribed, now
		c.Counts.Unsubscribed++
		return FollowUp{Changed: true}
	case remind:
		if suppressed {
			return FollowUp{}
		}
		r.Reminded = now
		c.Counts.Reminded++
		return FollowUp{Changed: true, Mail: c.reawakenJob(sub, r.Deadline.Add(ReawakenLinkGrace), true, now, ids.MessageID())}
	}
	ev, personal := PlanLapse(c, r, sub, now, ids)
	if ev == nil {
		// Confirmed afresh another way after the mail: an answer too.
		r.State, r.Answered = RecipientReconfirmed, now
		c.Counts.Reconfirmed++
		return FollowUp{Changed: true}
	}
	c.Counts.Lapsed++
	return FollowUp{Changed: true, Event: ev, Personal: personal}
}
