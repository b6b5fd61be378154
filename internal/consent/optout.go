package consent

import (
	"slices"
	"sort"
	"strings"
	"time"
)

// Channels through which a person withdraws, recorded as the event source.
const (
	ChannelOneClick    = "one_click"   // RFC 8058 POST from a mail client
	ChannelPage        = "page"        // the button on the unsubscribe page
	ChannelPreferences = "preferences" // the preference center
	// ChannelOperator is an operator acting on the person's word (a call,
	// a letter, a request at the counter); the audit log names the key.
	ChannelOperator = "operator"
)

// maxOperatorReason caps the reason an operator gives for acting on a
// person's behalf.
const maxOperatorReason = 500

// OperatorReason checks the reason an operator gives for withdrawing a
// person's consent on their behalf: 1-500 printable characters on one
// line, trimmed. The ledger keeps it in the event's personal record, so
// it can later show why the operator acted (GDPR Art. 5(2)). A missing or
// unprintable reason is EInvalid.
func OperatorReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" || !PlainText(reason, maxOperatorReason, false) {
		return "", Errorf(EInvalid, "reason must be 1-%d characters on one line", maxOperatorReason)
	}
	return reason, nil
}

// PlanUnsubscribe withdraws sub from topic, or from every topic when topic
// is "". It returns the unsubscribed event, or nil when nothing changed
// (the call is idempotent). Pending and lapsed subscriptions count too: a
// withdrawal covers everything the person had or had asked for.
func PlanUnsubscribe(sub *Subscriber, topic, channel string, in ConfirmInput, ids IDs) (*Event, Personal) {
	var changed []string
	for _, t := range sortedTopics(sub) {
		s := sub.Subscriptions[t]
		if (topic == "" || t == topic) && s.Status != StatusUnsubscribed {
			s.Status, s.Since = StatusUnsubscribed, in.Now
			s.endChannels()
			changed = append(changed, t)
		}
	}
	sub.tidyContact()
	if len(changed) == 0 {
		return nil, Personal{}
	}
	ev := &Event{Time: in.Now, Type: EventUnsubscribed, Subscriber: sub.ID, Topics: changed, Source: channel}
	return ev, Personal{Salt: ids.ID(), Email: sub.Email, IP: in.IP, UserAgent: in.UserAgent, Note: in.Note}
}

// PreferenceChoice is what a person sets on the preference page: the
// topics on, per topic the optional channels on (channels of a topic
// that is off are ignored) with the phone number and postal address they
// need, and per topic how often ("" for no choice).
type PreferenceChoice struct {
	Topics []string
	ChannelChoice
	Frequency map[string]Frequency
}

// PlanPreferences sets sub's topics, channels and frequencies from the
// preference center. Topics in ch.Topics become confirmed (the person
// proved control of the mailbox by using the mailed link, and saw
// wording), the others become unsubscribed; a topic sub does not have yet
// is added, confirmed (the store checks that the topic exists). Each
// confirmed topic then carries the channels chosen for it, and sub keeps
// the phone number and postal address only while a channel needs them.
// It returns the events to append, none when nothing changed:
// preferences_updated for topics switched on, unsubscribed for topics
// switched off (which ends their channels and frequency too),
// channel_consented and channel_withdrawn per channel given or taken back
// on topics that stay, frequency_chosen per new choice, and rectified
// when the phone number or postal address changed. It also returns the
// topics switched off. A bad channel, number, address or frequency is
// EInvalid.
func PlanPreferences(sub *Subscriber, ch PreferenceChoice, wording string, in ConfirmInput, ids IDs) ([]*Event, []Personal, []string, error) {
	on := ch.Topics
	cc, err := ch.ChannelChoice.only(on).Check(nil)
	if err != nil {
		return nil, nil, nil, err
	}
	for t, f := range ch.Frequency {
		if f != "" && !slices.Contains(AllFrequencies, f) {
			return nil, nil, nil, Errorf(EInvalid, "frequency for topic %q is not one of daily, weekly, monthly, quarterly", Truncate(t, 64))
		}
	}
	var added, removed []string
	topics := sortedTopics(sub)
	for _, t := range on {
		// A topic the person does not have yet: the preference link
		// proves control of the mailbox, so ticking it is a confirmed
		// consent (the store checks that the topic exists).
		if sub.Subscriptions[t] == nil && !slices.Contains(topics, t) {
			topics = append(topics, t)
		}
	}
	granted, withdrawn := map[Channel][]string{}, map[Channel][]string{}
	freqs := map[Frequency][]string{}
	for _, t := range topics {
		s := sub.Subscriptions[t]
		if s == nil {
			s = &Subscription{Topic: t}
			if sub.Subscriptions == nil {
				sub.Subscriptions = map[string]*Subscription{}
			}
			sub.Subscriptions[t] = s
		}
		want := slices.Contains(on, t)
		switch {
		case want && s.Status != StatusConfirmed:
			*s = Subscription{Topic: t, Status: StatusConfirmed, Basis: BasisConsent, Since: in.Now}
			added = append(added, t)
		case !want && s.Status != StatusUnsubscribed:
			s.Status, s.Since = StatusUnsubscribed, in.Now
			removed = append(removed, t)
		}
		if !want {
			s.endChannels()
			continue
		}
		for _, c := range OptionalChannels {
			had, has := slices.Contains(s.Channels, c), slices.Contains(cc.Channels[t], c)
			switch {
			case has && !had:
				granted[c] = append(granted[c], t)
			case had && !has:
				withdrawn[c] = append(withdrawn[c], t)
			}
		}
		s.Channels = cc.Channels[t]
		if f := ch.Frequency[t]; f != s.Frequency {
			s.Frequency = f
			freqs[f] = append(freqs[f], t)
		}
	}
	var evs []*Event
	var ps []Personal
	personal := func() Personal {
		return Personal{Salt: ids.ID(), Email: sub.Email, IP: in.IP, UserAgent: in.UserAgent}
	}
	if len(added) > 0 {
		evs = append(evs, &Event{Time: in.Now, Type: EventPreferencesUpdated, Subscriber: sub.ID, Topics: added,
			Basis: BasisConsent, Source: ChannelPreferences, Wording: wording})
		ps = append(ps, personal())
	}
	if len(removed) > 0 {
		evs = append(evs, &Event{Time: in.Now, Type: EventUnsubscribed, Subscriber: sub.ID, Topics: removed,
			Source: ChannelPreferences})
		ps = append(ps, personal())
	}
	base := Event{Time: in.Now, Subscriber: sub.ID, Basis: BasisConsent, Source: ChannelPreferences, Wording: wording}
	p := Personal{Email: sub.Email, IP: in.IP, UserAgent: in.UserAgent}
	e, pp := channelEvents(EventChannelConsented, granted, base, p, cc.Phone, cc.PostalAddress, ids)
	evs, ps = append(evs, e...), append(ps, pp...)
	base.Basis = ""
	e, pp = channelEvents(EventChannelWithdrawn, withdrawn, base, p, "", "", ids)
	evs, ps = append(evs, e...), append(ps, pp...)
	for _, f := range append([]Frequency{""}, AllFrequencies...) {
		if ts := freqs[f]; len(ts) > 0 {
			evs = append(evs, &Event{Time: in.Now, Type: EventFrequencyChosen, Subscriber: sub.ID, Topics: ts,
				Frequency: f, Source: ChannelPreferences, Wording: wording})
			ps = append(ps, personal())
		}
	}
	for _, r := range []struct {
		field    string
		old, new *string
		set      func(*Personal, string)
	}{
		{FieldPhone, &sub.Phone, &cc.Phone, func(p *Personal, v string) { p.Phone = v }},
		{FieldPostalAddress, &sub.PostalAddress, &cc.PostalAddress, func(p *Personal, v string) { p.PostalAddress = v }},
	} {
		if *r.new == "" {
			continue
		}
		if *r.old != "" && *r.old != *r.new {
			evs = append(evs, &Event{Time: in.Now, Type: EventRectified, Subscriber: sub.ID, Source: ChannelPreferences, Field: r.field})
			rp := personal()
			rp.Note = *r.old
			r.set(&rp, *r.new)
			ps = append(ps, rp)
		}
		*r.old = *r.new
	}
	sub.tidyContact()
	return evs, ps, removed, nil
}

func sortedTopics(sub *Subscriber) []string {
	ts := make([]string, 0, len(sub.Subscriptions))
	for t := range sub.Subscriptions {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
}

// ManageMailGap is the least time between two preference-link mails to one
// address, so POST /manage cannot be used to flood a mailbox.
const ManageMailGap = time.Hour

// OptedOutSince reports whether sub has opted out of everything: it holds
// subscriptions, each of them unsubscribed or lapsed, and no open request.
// It returns when the last of them ended.
func (s *Subscriber) OptedOutSince() (time.Time, bool) {
	if len(s.Subscriptions) == 0 || s.PendingRequest != "" {
		return time.Time{}, false
	}
	var last time.Time
	for _, sub := range s.Subscriptions {
		if sub.Status != StatusUnsubscribed && sub.Status != StatusLapsed {
			return time.Time{}, false
		}
		if sub.Since.After(last) {
			last = sub.Since
		}
	}
	return last, true
}

// SourceRetention is the ledger source of an erasure the retention rule
// makes (Forgettable), not a person or an operator.
const SourceRetention = "retention"

// Forgettable reports whether sub's personal data is due to go at now:
// they opted out of everything (OptedOutSince) more than retention ago.
// What proves the opt-out stays: the suppression hash and the ledger's
// digests (GDPR Art. 5(1)(e), 17(3)(e)).
func (s *Subscriber) Forgettable(now time.Time, retention time.Duration) bool {
	since, ok := s.OptedOutSince()
	return ok && now.Sub(since) > retention
}
