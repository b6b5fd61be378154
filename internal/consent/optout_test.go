package consent_test

import (
	"testing"
	"time"

	"optin/internal/consent"
)

// TestForgettable: who is forgotten after retention.opted_out (GDPR Art.
// 5(1)(e)): someone whose every subscription was unsubscribed or lapsed,
// counted from the last of them; never someone who still holds a
// confirmed or pending subscription or an open request, and never before
// the period has passed.
func TestForgettable(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	retention := 30 * consent.Day
	sub := func(pending string, subs ...*consent.Subscription) *consent.Subscriber {
		s := &consent.Subscriber{ID: "s", PendingRequest: pending, Subscriptions: map[string]*consent.Subscription{}}
		for i, x := range subs {
			s.Subscriptions[string(rune('a'+i))] = x
		}
		return s
	}
	unsub := &consent.Subscription{Status: consent.StatusUnsubscribed, Since: t0}
	lapsedLater := &consent.Subscription{Status: consent.StatusLapsed, Since: t0.Add(10 * consent.Day)}
	for _, tt := range []struct {
		name string
		s    *consent.Subscriber
		at   time.Time
		want bool
	}{
		{"unsubscribed from everything, after retention", sub("", unsub), t0.Add(retention + time.Millisecond), true},
		{"unsubscribed from everything, at the edge", sub("", unsub), t0.Add(retention), false},
		{"one unsubscribed, one lapsed later: counted from the lapse", sub("", unsub, lapsedLater), t0.Add(retention + time.Hour), false},
		{"one unsubscribed, one lapsed later, after retention from the lapse", sub("", unsub, lapsedLater), t0.Add(10*consent.Day + retention + time.Hour), true},
		{"every subscription lapsed", sub("", lapsedLater), t0.Add(11*consent.Day + retention), true},
		{"still confirmed for one topic", sub("", unsub, &consent.Subscription{Status: consent.StatusConfirmed, Since: t0}), t0.Add(365 * consent.Day), false},
		{"a new request open", sub("req", unsub), t0.Add(365 * consent.Day), false},
		{"nothing held at all", sub(""), t0.Add(365 * consent.Day), false},
	} {
		if got := tt.s.Forgettable(tt.at, retention); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}
