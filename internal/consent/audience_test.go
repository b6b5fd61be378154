package consent

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestAudienceSelectorMatchesSelect: for subscribers of every shape, the
// selector's answer from their encoded and decoded facts is
// Campaign.Select's answer from the record, for campaigns with and
// without filters, started or not.
func TestAudienceSelectorMatchesSelect(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 678_900_123, time.UTC)
	p := CampaignPolicy{DormantAfter: 365 * Day}
	rnd := rand.New(rand.NewPCG(1, 2))
	when := func() time.Time {
		if rnd.IntN(5) == 0 {
			return time.Time{}
		}
		return now.Add(-time.Duration(rnd.Int64N(int64(1500 * Day))))
	}
	campaigns := []*Campaign{
		{Topic: "news"},
		{Topic: "news", Started: now.Add(-100 * Day)},
		{Topic: "news", Audience: Audience{Lifecycle: []Lifecycle{LifecycleDormant, LifecycleProspect}, Topics: []string{"offers", "news"},
			ConsentOlderThan: Span(400 * Day)}},
		{Topic: "news", Audience: Audience{NoActivitySince: now.Add(-500 * Day)}},
	}
	bases := []Basis{BasisConsent, BasisSoftOptIn, BasisLegitimateInterest, ""}
	seen := map[string]bool{}
	for i := range 20000 {
		sub := &Subscriber{ID: "s", Created: when(), LastPurchase: when(), Subscriptions: map[string]*Subscription{
			"news": {Topic: "news", Status: StatusConfirmed, Basis: bases[rnd.IntN(len(bases))], Since: when()}}}
		if rnd.IntN(2) == 0 {
			sub.Subscriptions["offers"] = &Subscription{Topic: "offers", Status: []Status{StatusConfirmed, StatusPending}[rnd.IntN(2)]}
		}
		if rnd.IntN(3) == 0 {
			sub.Reawakened = map[string]time.Time{"news": when()}
		}
		if rnd.IntN(4) == 0 {
			sub.Notice = &Notice{}
			if rnd.IntN(2) == 0 {
				sub.Notice.Sent = when()
			}
		}
		supp, ev := rnd.IntN(10) == 0, rnd.IntN(10) != 0
		f, ok := FactsOf(sub, "news")
		if !ok {
			t.Fatal("FactsOf: a confirmed subscription has no facts")
		}
		f, err := DecodeAudienceFacts(f.Encode())
		if err != nil {
			t.Fatal(err)
		}
		f.Suppressed, f.Evidence = supp, ev
		for _, c := range campaigns {
			sel := NewAudienceSelector(c, now, p)
			gotOK, gotReason, err := sel.Select(f, func(topic string) (bool, error) {
				s := sub.Subscriptions[topic]
				return s != nil && s.Status == StatusConfirmed, nil
			})
			wantOK, wantReason := c.Select(sub, supp, ev, now, p)
			if err != nil || gotOK != wantOK || gotReason != wantReason {
				t.Fatalf("subscriber %d %+v, campaign %+v: selector says %v %q (%v), Select says %v %q", i, sub, c, gotOK, gotReason, err, wantOK, wantReason)
			}
			seen[wantReason] = true
		}
	}
	for _, r := range []string{"", ExcludedSuppressed, ExcludedNoBasis, ExcludedSoftOptInExpiry, ExcludedRecent, ExcludedNoticePending,
		ExcludedAlreadyAsked, ExcludedNew, ExcludedNotDormant, ExcludedFiltered} {
		if !seen[r] {
			t.Errorf("no subscriber answered %q", r)
		}
	}
}

// TestUnconfirmedReason: the reason for each status other than confirmed
// is Eligibility's for that status alone.
func TestUnconfirmedReason(t *testing.T) {
	for st, want := range map[Status]string{"": ExcludedNotSubscribed, StatusPending: ExcludedPending,
		StatusUnsubscribed: ExcludedUnsubscribed, StatusLapsed: ExcludedLapsed} {
		if got := UnconfirmedReason(st); got != want {
			t.Errorf("UnconfirmedReason(%q) = %q, want %q", st, got, want)
		}
	}
}

// TestAudienceFactsEncoding: facts read back as they were, in the
// compact form (times as varints, whole milliseconds or nanoseconds)
// and from the fixed-width form of version 1 that indexes written before
// still hold; a subscriber's usual facts take under 20 bytes.
func TestAudienceFactsEncoding(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UTC()
	}
	cases := []AudienceFacts{
		{},
		{Basis: BasisConsent, Since: at("2025-01-01T00:00:00Z"), Created: at("2026-12-03T06:10:42.121Z")},
		{Basis: BasisSoftOptIn, Since: at("2026-12-03T06:10:42.121Z"), Created: at("2026-12-03T06:10:41.5Z"),
			LastPurchase: at("2026-06-01T00:00:00Z"), Asked: at("2026-11-01T10:00:00.001Z"), NoticePending: true},
		{Basis: BasisLegitimateInterest, Since: at("1970-01-01T00:00:00.000000001Z"), Created: at("2026-12-03T06:10:42.123456789Z")},
		{Basis: "other", Since: at("1960-05-01T00:00:00Z"), Asked: at("2262-01-01T00:00:00Z")},
	}
	for _, f := range cases {
		b := f.Encode()
		got, err := DecodeAudienceFacts(b)
		if err != nil || got != f && !(f.Basis == "other" && got.Basis == "") {
			t.Errorf("%+v read back as %+v, %v", f, got, err)
		}
		old, err := DecodeAudienceFacts(encodeFactsV1(f))
		if err != nil || old != got {
			t.Errorf("%+v in the form of version 1 read back as %+v, %v", f, old, err)
		}
	}
	if n := len(cases[1].Encode()); n >= 20 {
		t.Errorf("imported subscriber's facts take %d bytes", n)
	}
}

// encodeFactsV1 is AudienceFacts.Encode of version 1: fixed-width
// big-endian nanoseconds.
func encodeFactsV1(f AudienceFacts) []byte {
	b := []byte{1, factsBasis(f.Basis), 0}
	if f.NoticePending {
		b[2] = 1
	}
	for _, t := range []time.Time{f.Since, f.Created, f.LastPurchase, f.Asked} {
		n := int64(math.MinInt64)
		if !t.IsZero() {
			n = t.UnixNano()
		}
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return b
}
