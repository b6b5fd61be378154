package consent

import (
	"slices"
	"sort"
	"strings"
)

// Channel is a medium that may carry a topic to the person ("how"):
// email, which every subscription has, and the optional text message,
// phone call and post. optin sends only email; the optional channels are
// recorded with their own consent evidence, shown to the person and
// exported, so the shop's own SMS, call or mailing tools honour them.
// (ChannelOneClick, ChannelPage, ChannelPreferences and ChannelOperator
// are something else: the ways a person withdraws, as event sources.)
type Channel string

// The optional channels. Email is ChannelEmail, an untyped constant that
// also names mail feedback's source.
const (
	ChannelSMS   Channel = "sms"
	ChannelPhone Channel = "phone"
	ChannelPost  Channel = "post"
)

// OptionalChannels are the channels a person may add to email, in the
// order pages and events list them.
var OptionalChannels = []Channel{ChannelSMS, ChannelPhone, ChannelPost}

// ParseChannel returns the channel named s: email, sms, phone or post,
// or an EInvalid *Error.
func ParseChannel(s string) (Channel, error) {
	c := Channel(s)
	if c != ChannelEmail && !c.Optional() {
		return "", Errorf(EInvalid, "channel must be one of email, sms, phone, post")
	}
	return c, nil
}

// Optional reports whether c is one of OptionalChannels.
func (c Channel) Optional() bool { return slices.Contains(OptionalChannels, c) }

// NeedsPhone reports whether c reaches the person on their phone number.
func (c Channel) NeedsPhone() bool { return c == ChannelSMS || c == ChannelPhone }

// ParseChannels checks a list of optional channels (what a form or the
// preference page offers, what a person chose for a topic) and returns
// it without duplicates in OptionalChannels order. email is implied and
// refused here, so a list never claims a choice email does not have; any
// other name is EInvalid.
func ParseChannels(names []string) ([]Channel, error) {
	var out []Channel
	for _, n := range names {
		c := Channel(n)
		if !c.Optional() {
			return nil, Errorf(EInvalid, "channel %q is not one of sms, phone, post (email is always included)", Truncate(n, 32))
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	sortChannels(out)
	return out, nil
}

func sortChannels(cs []Channel) {
	sort.Slice(cs, func(i, j int) bool {
		return slices.Index(OptionalChannels, cs[i]) < slices.Index(OptionalChannels, cs[j])
	})
}

// Frequency is how often a person wants to hear about a topic ("when").
// An operator offers a choice of them per topic (Topic.Frequencies).
type Frequency string

// Frequencies a topic may offer.
const (
	FrequencyDaily     Frequency = "daily"
	FrequencyWeekly    Frequency = "weekly"
	FrequencyMonthly   Frequency = "monthly"
	FrequencyQuarterly Frequency = "quarterly"
)

// AllFrequencies lists the frequencies, most frequent first.
var AllFrequencies = []Frequency{FrequencyDaily, FrequencyWeekly, FrequencyMonthly, FrequencyQuarterly}

// ParseFrequencies checks a topic's frequency choices and returns them
// without duplicates, most frequent first; an unknown one is EInvalid.
func ParseFrequencies(names []string) ([]Frequency, error) {
	var out []Frequency
	for _, n := range names {
		f := Frequency(n)
		if !slices.Contains(AllFrequencies, f) {
			return nil, Errorf(EInvalid, "frequency %q is not one of daily, weekly, monthly, quarterly", Truncate(n, 32))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return slices.Index(AllFrequencies, out[i]) < slices.Index(AllFrequencies, out[j])
	})
	return out, nil
}

// maxPhoneDigits is the longest number E.164 allows; minPhoneDigits the
// shortest international number in use (country code and subscriber
// number together).
const (
	maxPhoneDigits = 15
	minPhoneDigits = 7
)

// ParsePhone returns s as an E.164 number ("+" and 7 to 15 digits, the
// first not 0), after dropping the spaces, dots, hyphens and parentheses
// people type between digits; anything else is EInvalid. "" is no
// number.
func ParsePhone(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '.' || r == '-' || r == '(' || r == ')':
		default:
			return "", Errorf(EInvalid, "phone number must be in international form, such as +46 70 123 45 67")
		}
	}
	n := b.String()
	if len(n) < 1+minPhoneDigits || len(n) > 1+maxPhoneDigits || n[0] != '+' || n[1] == '0' {
		return "", Errorf(EInvalid, "phone number must be in international form, such as +46 70 123 45 67")
	}
	return n, nil
}

// Postal address bounds: a label of a few lines.
const (
	maxPostalRunes = 300
	maxPostalLines = 6
)

// ParsePostalAddress returns a postal address with each line trimmed and
// empty lines dropped: PlainText of at most 300 characters on at most 6
// lines, or EInvalid. "" is no address.
func ParsePostalAddress(s string) (string, error) {
	var lines []string
	for l := range strings.SplitSeq(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	addr := strings.Join(lines, "\n")
	if !PlainText(addr, maxPostalRunes, true) || strings.Contains(addr, "\t") || len(lines) > maxPostalLines {
		return "", Errorf(EInvalid, "postal address must be at most %d characters on at most %d lines", maxPostalRunes, maxPostalLines)
	}
	return addr, nil
}

// ChannelChoice is a person's choice of optional channels per topic, with
// the phone number and postal address they need.
type ChannelChoice struct {
	// Channels are, per topic id, the optional channels that may carry it.
	Channels map[string][]Channel `json:"channels,omitempty"`
	// Phone is the E.164 number sms and phone reach; PostalAddress the
	// address post goes to.
	Phone         string `json:"phone,omitempty"`
	PostalAddress string `json:"postal_address,omitempty"`
}

// Check validates ch for the topics it may name (nil: any): every channel
// optional, a phone number given (ParsePhone) when sms or phone is chosen
// and a postal address (ParsePostalAddress) when post is. It returns ch
// normalized: channels sorted, topics without channels dropped, and the
// number or address left out when no chosen channel needs it (data
// minimisation, GDPR Art. 5(1)(c)).
func (ch ChannelChoice) Check(topics []string) (ChannelChoice, error) {
	out := ChannelChoice{}
	var phone, post bool
	for t, cs := range ch.Channels {
		names := make([]string, len(cs))
		for i, c := range cs {
			names[i] = string(c)
		}
		parsed, err := ParseChannels(names)
		if err != nil {
			return ChannelChoice{}, err
		}
		if len(parsed) == 0 {
			continue
		}
		if topics != nil && !slices.Contains(topics, t) {
			return ChannelChoice{}, Errorf(EInvalid, "channels chosen for topic %q, which is not chosen", Truncate(t, 64))
		}
		if out.Channels == nil {
			out.Channels = map[string][]Channel{}
		}
		out.Channels[t] = parsed
		for _, c := range parsed {
			phone = phone || c.NeedsPhone()
			post = post || c == ChannelPost
		}
	}
	number, err := ParsePhone(ch.Phone)
	if err != nil {
		return ChannelChoice{}, err
	}
	addr, err := ParsePostalAddress(ch.PostalAddress)
	if err != nil {
		return ChannelChoice{}, err
	}
	if phone {
		if number == "" {
			return ChannelChoice{}, Errorf(EInvalid, "a phone number is needed for text messages and calls")
		}
		out.Phone = number
	}
	if post {
		if addr == "" {
			return ChannelChoice{}, Errorf(EInvalid, "a postal address is needed for post")
		}
		out.PostalAddress = addr
	}
	return out, nil
}

// only returns ch for topics alone, with the number and the address only
// when a channel left needs them.
func (ch ChannelChoice) only(topics []string) ChannelChoice {
	out := ChannelChoice{}
	for _, t := range topics {
		for _, c := range ch.Channels[t] {
			if out.Channels == nil {
				out.Channels = map[string][]Channel{}
			}
			out.Channels[t] = append(out.Channels[t], c)
			if c.NeedsPhone() {
				out.Phone = ch.Phone
			}
			if c == ChannelPost {
				out.PostalAddress = ch.PostalAddress
			}
		}
	}
	return out
}

// For returns the optional channels chosen for topic.
func (ch ChannelChoice) For(topic string) []Channel { return ch.Channels[topic] }

// Carries reports whether the subscription lets channel carry its topic
// now: only a confirmed subscription carries anything; email always, an
// optional channel when the person chose it.
func (s *Subscription) Carries(c Channel) bool {
	return s.Status == StatusConfirmed && (c == ChannelEmail || slices.Contains(s.Channels, c))
}

// Effective returns every channel that may carry the subscription's
// topic now, email first; none unless it is confirmed.
func (s *Subscription) Effective() []Channel {
	if s.Status != StatusConfirmed {
		return nil
	}
	return append([]Channel{ChannelEmail}, s.Channels...)
}

// endChannels clears what rides on a subscription that stops being
// confirmed: its topic's unsubscribed or lapsed event ends its channels
// and its frequency too.
func (s *Subscription) endChannels() {
	s.Channels, s.Frequency = nil, ""
}

// contactNeeds reports whether a subscription of s carries a channel
// that needs a phone number (sms, phone) and one that needs a postal
// address (post).
func (s *Subscriber) contactNeeds() (phone, post bool) {
	for _, ss := range s.Subscriptions {
		phone = phone || ss.Carries(ChannelSMS) || ss.Carries(ChannelPhone)
		post = post || ss.Carries(ChannelPost)
	}
	return phone, post
}

// tidyContact drops the phone number and the postal address once no
// subscription carries a channel that needs them (GDPR Art. 5(1)(c)).
func (s *Subscriber) tidyContact() {
	phone, post := s.contactNeeds()
	if !phone {
		s.Phone = ""
	}
	if !post {
		s.PostalAddress = ""
	}
}

// channelEvents builds the events of channel changes: one event of type
// typ per channel, naming the topics it was given for or withdrawn from
// (by in the OptionalChannels order), each copying base and with its
// personal record from personal (the phone number on sms and phone
// events, the postal address on post events).
func channelEvents(typ EventType, by map[Channel][]string, base Event, personal Personal, phone, postal string, ids IDs) ([]*Event, []Personal) {
	var evs []*Event
	var ps []Personal
	for _, c := range OptionalChannels {
		topics := by[c]
		if len(topics) == 0 {
			continue
		}
		sort.Strings(topics)
		ev := base
		ev.Type, ev.Channel, ev.Topics = typ, c, topics
		p := personal
		p.Salt = ids.ID()
		if typ == EventChannelConsented {
			switch {
			case c.NeedsPhone():
				p.Phone = phone
			case c == ChannelPost:
				p.PostalAddress = postal
			}
		}
		evs = append(evs, &ev)
		ps = append(ps, p)
	}
	return evs, ps
}

// ConfirmedChannels returns the channel_consented events of a request
// PlanConfirm just confirmed: per channel, the topics the form's choice
// gave it, with the request's source, page and wording and the click's
// IP and user agent, as the topic's own confirmation has. None when the
// request chose no channel.
func ConfirmedChannels(sub *Subscriber, req *Request, in ConfirmInput, ids IDs) ([]*Event, []Personal) {
	by := map[Channel][]string{}
	for _, t := range req.Topics {
		for _, c := range req.Channels[t] {
			by[c] = append(by[c], t)
		}
	}
	source := req.Source
	if source == "" {
		source = "form:" + req.Form
	}
	base := Event{Time: in.Now, Subscriber: sub.ID, Basis: BasisConsent, Source: source, Page: req.Page,
		Wording: req.Wording, Request: req.ID, MessageID: req.MessageID, Check: in.Check}
	return channelEvents(EventChannelConsented, by, base,
		Personal{Email: sub.Email, IP: in.IP, UserAgent: in.UserAgent}, req.Phone, req.PostalAddress, ids)
}
