package web

import (
	"slices"
	"strings"

	"optin/internal/consent"
	"optin/internal/i18n"
)

// channelOption is one channel checkbox: on a form, a channel the form
// offers (the template pairs it with each topic); on the preference page,
// one channel of one topic.
type channelOption struct {
	ID    consent.Channel
	Label string
	// Value is the field value, topic:channel; On whether it is ticked.
	Value string
	On    bool
}

// freqOption is one frequency choice of a topic on the preference page.
type freqOption struct {
	ID    consent.Frequency
	Label string
	On    bool
}

// channelOptions returns chs as checkboxes in l's language, for topic
// ("" on a form, whose template pairs them with each topic); on names the
// channels ticked.
func channelOptions(l i18n.Localizer, topic string, chs, on []consent.Channel) []channelOption {
	out := make([]channelOption, len(chs))
	for i, c := range chs {
		out[i] = channelOption{ID: c, Label: l.T("channel." + string(c)), Value: topic + ":" + string(c), On: slices.Contains(on, c)}
	}
	return out
}

// channelLabels returns the labels of chs in l's language, by channel,
// as a wording records them; nil when there are none.
func channelLabels(l i18n.Localizer, chs []consent.Channel) map[string]string {
	if len(chs) == 0 {
		return nil
	}
	out := make(map[string]string, len(chs))
	for _, c := range chs {
		out[string(c)] = l.T("channel." + string(c))
	}
	return out
}

// phoneLabel returns the catalog key of the phone number's label on a
// page offering chs: it names only what the number is for there (text
// messages, calls, or both).
func phoneLabel(chs []consent.Channel) string {
	sms, phone := slices.Contains(chs, consent.ChannelSMS), slices.Contains(chs, consent.ChannelPhone)
	switch {
	case sms && !phone:
		return "channels.phone_label_sms"
	case phone && !sms:
		return "channels.phone_label_phone"
	}
	return "channels.phone_label"
}

// asks reports whether a page offering chs asks for a phone number and
// for a postal address.
func asks(chs []consent.Channel) (phone, post bool) {
	for _, c := range chs {
		phone = phone || c.NeedsPhone()
		post = post || c == consent.ChannelPost
	}
	return phone, post
}

// parseChannelFields reads the channels fields, each topic:channel, into
// the channels chosen per topic; offered says which channels a topic may
// be given. A malformed value or a channel not offered is EInvalid.
func parseChannelFields(values []string, offered func(topic string) []consent.Channel) (map[string][]consent.Channel, error) {
	if len(values) > 4*len(consent.OptionalChannels)*50 {
		return nil, keyed(consent.Errorf(consent.EInvalid, "too many channels"), "channels.error.offer")
	}
	out := map[string][]consent.Channel{}
	for _, v := range values {
		topic, name, ok := strings.Cut(v, ":")
		c := consent.Channel(name)
		if !ok || !slices.Contains(offered(topic), c) {
			return nil, keyed(consent.Errorf(consent.EInvalid, "channel %q is not offered here; channels are topic:channel, with channel one of those offered",
				consent.Truncate(v, 80)), "channels.error.offer")
		}
		if !slices.Contains(out[topic], c) {
			out[topic] = append(out[topic], c)
		}
	}
	return out, nil
}

// checkChoice checks ch for topics (consent.ChannelChoice.Check), with the
// page message that says what to fix.
func checkChoice(ch consent.ChannelChoice, topics []string) (consent.ChannelChoice, error) {
	out, err := ch.Check(topics)
	if err == nil {
		return out, nil
	}
	var chosen []consent.Channel
	unchosen := false
	for t, cs := range ch.Channels {
		if topics == nil || slices.Contains(topics, t) {
			chosen = append(chosen, cs...)
		} else {
			unchosen = unchosen || len(cs) > 0
		}
	}
	phone, post := asks(chosen)
	_, perr := consent.ParsePhone(ch.Phone)
	_, aerr := consent.ParsePostalAddress(ch.PostalAddress)
	switch {
	case unchosen:
		return out, keyed(err, "channels.error.topic")
	case perr != nil || phone && strings.TrimSpace(ch.Phone) == "":
		return out, keyed(err, "channels.error.phone")
	case aerr != nil || post && strings.TrimSpace(ch.PostalAddress) == "":
		return out, keyed(err, "channels.error.postal")
	}
	return out, keyed(err, "channels.error.topic")
}
