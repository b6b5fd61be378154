package consent

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Campaign audiences from indexes.
//
// A store keeps, with each confirmed subscription in its index of
// subscriptions, the AudienceFacts the audience rule needs of it, and
// alongside them two lookups the rule needs of the person: whether the
// ledger holds evidence of a basis for a topic, and the address's
// suppression hash. A preview then counts the confirmed subscriptions of
// the campaign's topic from those facts without decoding a record or a
// ledger event, and takes every other subscriber from the counters
// (Counts.Unwalked); a page of the audience list decodes only the
// records it shows.

// AudienceFacts are what the audience rule (Campaign.Select) reads of one
// subscriber confirmed on one topic, as a store indexes them: the
// subscription's basis and since, and the person's creation, last
// purchase, the last reawaken question on the topic and whether an
// information notice is still owed. Suppressed and Evidence are looked
// up at selection time.
type AudienceFacts struct {
	Basis         Basis
	Since         time.Time
	Created       time.Time
	LastPurchase  time.Time
	Asked         time.Time
	NoticePending bool
	// Suppressed says the address is suppressed for the topic or for
	// all; Evidence that the ledger proves Basis for the topic
	// (IsEvidence).
	Suppressed, Evidence bool
}

// FactsOf returns the audience facts of sub's subscription to topic, and
// false when sub (nil: none) does not hold topic confirmed (then it has
// none).
func FactsOf(sub *Subscriber, topic string) (AudienceFacts, bool) {
	if sub == nil {
		return AudienceFacts{}, false
	}
	s := sub.Subscriptions[topic]
	if s == nil || s.Status != StatusConfirmed {
		return AudienceFacts{}, false
	}
	return AudienceFacts{Basis: s.Basis, Since: s.Since, Created: sub.Created, LastPurchase: sub.LastPurchase,
		Asked: sub.Reawakened[topic], NoticePending: sub.Notice.Pending()}, true
}

// Versions of an encoded AudienceFacts: version 1 wrote the four times
// as fixed-width nanoseconds (factsV1Len bytes); version 2 writes only
// those set, as varints.
const (
	factsV1    = 1
	factsV1Len = 3 + 4*8
	factsV2    = 2
)

// basis codes in an encoded AudienceFacts; every other basis qualifies
// for nothing (Eligibility) and is stored as basisOther.
const (
	basisOther   = 0
	basisConsent = 'c'
	basisSoft    = 's'
	basisLI      = 'l'
)

// Flags of an encoded AudienceFacts: an information notice pending, each
// of the four times set (factsHas<<i), and the times in nanoseconds
// rather than milliseconds.
const (
	factsNotice = 1
	factsHas    = 2
	factsNanos  = 1 << 5
)

// Encode encodes f for an index, but Suppressed and Evidence, which are
// looked up when it is read: the version, the basis, the flags, then
// those of created, since, last purchase and asked that are set, as
// signed varints: the first of them since 1970, each other one from
// the first; in milliseconds when every one is whole milliseconds, else
// in nanoseconds. A subscriber's facts thus take about 15 bytes.
func (f AudienceFacts) Encode() []byte {
	b := make([]byte, 3, 3+4*binary.MaxVarintLen64)
	b[0], b[1] = factsV2, factsBasis(f.Basis)
	if f.NoticePending {
		b[2] |= factsNotice
	}
	times := f.times()
	unit := int64(time.Millisecond)
	for i, t := range times {
		if !t.IsZero() {
			b[2] |= factsHas << i
			if t.Nanosecond()%int(time.Millisecond) != 0 {
				unit = 1
			}
		}
	}
	if unit == 1 {
		b[2] |= factsNanos
	}
	first, base := true, int64(0)
	for _, t := range times {
		if t.IsZero() {
			continue
		}
		n := t.UnixNano() / unit
		b = binary.AppendVarint(b, n-base)
		if first {
			first, base = false, n
		}
	}
	return b
}

// factsBasis returns the code of basis b in an encoded AudienceFacts.
func factsBasis(b Basis) byte {
	switch b {
	case BasisConsent:
		return basisConsent
	case BasisSoftOptIn:
		return basisSoft
	case BasisLegitimateInterest:
		return basisLI
	}
	return basisOther
}

// times returns f's times in their encoded order.
func (f AudienceFacts) times() [4]time.Time {
	return [4]time.Time{f.Created, f.Since, f.LastPurchase, f.Asked}
}

// DecodeAudienceFacts decodes what AudienceFacts.Encode wrote, of either
// version.
func DecodeAudienceFacts(b []byte) (AudienceFacts, error) {
	var f AudienceFacts
	if len(b) < 3 || b[0] != factsV2 && (b[0] != factsV1 || len(b) != factsV1Len) {
		return f, fmt.Errorf("audience facts: %d bytes, not of version %d or %d", len(b), factsV1, factsV2)
	}
	switch b[1] {
	case basisConsent:
		f.Basis = BasisConsent
	case basisSoft:
		f.Basis = BasisSoftOptIn
	case basisLI:
		f.Basis = BasisLegitimateInterest
	}
	f.NoticePending = b[2]&factsNotice != 0
	if b[0] == factsV1 {
		for i, t := range []*time.Time{&f.Since, &f.Created, &f.LastPurchase, &f.Asked} {
			if n := int64(binary.BigEndian.Uint64(b[3+8*i:])); n != math.MinInt64 {
				*t = time.Unix(0, n).UTC()
			}
		}
		return f, nil
	}
	unit := int64(time.Millisecond)
	if b[2]&factsNanos != 0 {
		unit = 1
	}
	rest := b[3:]
	first, base := true, int64(0)
	for i, t := range []*time.Time{&f.Created, &f.Since, &f.LastPurchase, &f.Asked} {
		if b[2]&(factsHas<<i) == 0 {
			continue
		}
		d, l := binary.Varint(rest)
		if l <= 0 {
			return f, fmt.Errorf("audience facts: %d bytes, truncated", len(b))
		}
		rest = rest[l:]
		n := base + d
		if first {
			first, base = false, n
		}
		*t = time.Unix(0, n*unit).UTC()
	}
	return f, nil
}

// AudienceSelector applies one campaign's audience rule and filters
// (Campaign.Select, the same code) to facts, reusing one scratch
// subscriber so a preview of millions allocates nothing per person.
type AudienceSelector struct {
	c   *Campaign
	now time.Time
	p   CampaignPolicy
	sub Subscriber
	s   Subscription
}

// NewAudienceSelector returns a selector for campaign c at now.
func NewAudienceSelector(c *Campaign, now time.Time, p CampaignPolicy) *AudienceSelector {
	sel := &AudienceSelector{c: c, now: now, p: p}
	sel.sub.Subscriptions = map[string]*Subscription{c.Topic: &sel.s}
	sel.sub.Reawakened = map[string]time.Time{}
	return sel
}

// Select answers for the subscriber holding the campaign's topic
// confirmed with facts f: ok, or the reason they are left out.
// confirmedOn reports whether they also hold another topic confirmed; it
// is called only for a campaign filtering on other topics, and only once
// the rule admits them.
func (sel *AudienceSelector) Select(f AudienceFacts, confirmedOn func(topic string) (bool, error)) (bool, string, error) {
	topic := sel.c.Topic
	sub := &sel.sub
	if len(sub.Subscriptions) > 1 { // the filter's topics of the one before
		clear(sub.Subscriptions)
		sub.Subscriptions[topic] = &sel.s
	}
	sel.s = Subscription{Topic: topic, Status: StatusConfirmed, Basis: f.Basis, Since: f.Since}
	sub.Created, sub.LastPurchase, sub.Notice = f.Created, f.LastPurchase, nil
	if f.NoticePending {
		sub.Notice = &Notice{}
	}
	if f.Asked.IsZero() {
		delete(sub.Reawakened, topic)
	} else {
		sub.Reawakened[topic] = f.Asked
	}
	if len(sel.c.Audience.Topics) > 0 {
		if ok, reason := Eligibility(sub, topic, f.Suppressed, f.Evidence, sel.now, sel.p); !ok {
			return false, reason, nil
		}
	}
	for _, t := range sel.c.Audience.Topics {
		if t == topic {
			continue
		}
		on, err := confirmedOn(t)
		if err != nil {
			return false, "", err
		}
		if on {
			sub.Subscriptions[t] = &Subscription{Topic: t, Status: StatusConfirmed}
		}
	}
	ok, reason := sel.c.Select(sub, f.Suppressed, f.Evidence, sel.now, sel.p)
	return ok, reason, nil
}

// UnconfirmedReason is the reason the audience rule leaves out a
// subscriber whose subscription to a campaign's topic is in status st
// (not confirmed; "" for no subscription at all): the status alone
// decides it.
func UnconfirmedReason(st Status) string {
	sub := &Subscriber{}
	if st != "" {
		sub.Subscriptions = map[string]*Subscription{"t": {Topic: "t", Status: st}}
	}
	_, reason := Eligibility(sub, "t", false, false, time.Time{}, CampaignPolicy{})
	return reason
}

// AudienceStatuses returns, for a page of a campaign's audience list
// keeping only (AudienceQuery.Only), the statuses on the campaign's topic
// of the only subscribers it can keep, so a store reads just their index;
// nil means any subscriber may be kept, the topic's holders or not.
func AudienceStatuses(only string) []Status {
	switch only {
	case "", "out", ExcludedNotSubscribed:
		return nil
	}
	for _, st := range []Status{StatusPending, StatusUnsubscribed, StatusLapsed} {
		if only == UnconfirmedReason(st) {
			return []Status{st}
		}
	}
	return []Status{StatusConfirmed} // "in", and every reason only the facts give
}
