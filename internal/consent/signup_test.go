package consent_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"optin/internal/consent"
)

// counterIDs is a deterministic consent.IDs: every call returns a new value.
type counterIDs struct{ n int }

func (c *counterIDs) ID() string { c.n++; return fmt.Sprintf("id%d", c.n) }

func (c *counterIDs) MessageID() string { c.n++; return fmt.Sprintf("msg%d@optin.test", c.n) }

// t0 is the fixed clock reading every plan test starts from.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

var testForm = &consent.Form{ID: "newsletter", Topics: []string{"news", "offers"}, Locale: "en"}

func mustParseAddress(t *testing.T, s string) consent.Address {
	t.Helper()
	a, err := consent.ParseAddress(s)
	if err != nil {
		t.Fatalf("ParseAddress(%q): got err %v, want nil", s, err)
	}
	return a
}

func signupInput(t *testing.T, now time.Time, topics ...string) consent.SignupInput {
	return consent.SignupInput{Form: testForm, Address: mustParseAddress(t, "Ann@Example.com"), Name: "Ann",
		Locale: "en", Topics: topics, Page: "https://shop.example/news", IP: "192.0.2.7",
		UserAgent: "Mozilla/5.0 test", Wording: "wording-hash", Now: now}
}

// signupState is a subscriber with an open request, as the store would hold
// it after one successful signup at t0.
func signupState(t *testing.T, p consent.Policy, ids consent.IDs, topics ...string) (*consent.Subscriber, *consent.Request) {
	t.Helper()
	plan := consent.PlanSignup(nil, nil, signupInput(t, t0, topics...), p, ids)
	if !plan.Mail {
		t.Fatalf("setup signup: Mail: got false, want true")
	}
	return plan.Subscriber, plan.Request
}

func snapshot(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	return string(b)
}

func TestPlanSignupNewAddress(t *testing.T) {
	p := consent.DefaultPolicy()
	ids := &counterIDs{}
	in := signupInput(t, t0, "news", "offers", "news")
	plan := consent.PlanSignup(nil, nil, in, p, ids)

	if !plan.Mail {
		t.Errorf("Mail: got false, want true")
	}
	sub, req, ev := plan.Subscriber, plan.Request, plan.Event
	if sub == nil || req == nil || ev == nil {
		t.Fatalf("plan: got Subscriber %v, Request %v, Event %v, want all set", sub, req, ev)
	}
	wantTopics := []string{"news", "offers"}

	if sub.ID == "" {
		t.Errorf("Subscriber.ID: got empty, want an id")
	}
	if got, want := sub.Email, "Ann@example.com"; got != want {
		t.Errorf("Subscriber.Email: got %q, want %q", got, want)
	}
	if got, want := sub.Name, "Ann"; got != want {
		t.Errorf("Subscriber.Name: got %q, want %q", got, want)
	}
	if got, want := sub.Locale, "en"; got != want {
		t.Errorf("Subscriber.Locale: got %q, want %q", got, want)
	}
	if !sub.Created.Equal(t0) {
		t.Errorf("Subscriber.Created: got %v, want %v", sub.Created, t0)
	}
	if got, want := sub.PendingRequest, req.ID; got != want {
		t.Errorf("Subscriber.PendingRequest: got %q, want %q", got, want)
	}
	if got, want := sub.ConfirmMails, []time.Time{t0}; !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Errorf("Subscriber.ConfirmMails: got %v, want %v", got, want)
	}
	if got, want := len(sub.Subscriptions), 2; got != want {
		t.Errorf("len(Subscriptions): got %d, want %d", got, want)
	}
	for _, topic := range wantTopics {
		s := sub.Subscriptions[topic]
		if s == nil {
			t.Errorf("Subscriptions[%q]: got nil, want pending", topic)
			continue
		}
		want := consent.Subscription{Topic: topic, Status: consent.StatusPending, Basis: consent.BasisConsent, Since: t0}
		if !reflect.DeepEqual(*s, want) {
			t.Errorf("Subscriptions[%q]: got %+v, want %+v", topic, *s, want)
		}
	}

	if req.ID == "" || req.ID == sub.ID {
		t.Errorf("Request.ID: got %q, want a new id (subscriber %q)", req.ID, sub.ID)
	}
	if got, want := req.Subscriber, sub.ID; got != want {
		t.Errorf("Request.Subscriber: got %q, want %q", got, want)
	}
	if got, want := req.Form, "newsletter"; got != want {
		t.Errorf("Request.Form: got %q, want %q", got, want)
	}
	if got, want := req.Topics, wantTopics; !slices.Equal(got, want) {
		t.Errorf("Request.Topics: got %q, want %q", got, want)
	}
	if got, want := req.Locale, "en"; got != want {
		t.Errorf("Request.Locale: got %q, want %q", got, want)
	}
	if !req.Created.Equal(t0) {
		t.Errorf("Request.Created: got %v, want %v", req.Created, t0)
	}
	if got, want := req.Expires, t0.Add(p.ConfirmTTL); !got.Equal(want) {
		t.Errorf("Request.Expires: got %v, want %v", got, want)
	}
	if req.MessageID == "" {
		t.Errorf("Request.MessageID: got empty, want a Message-ID")
	}
	if !req.Open(t0) {
		t.Errorf("Request.Open(now): got false, want true")
	}

	wantEv := consent.Event{Time: t0, Type: consent.EventRequested, Subscriber: sub.ID, Topics: wantTopics,
		Basis: consent.BasisConsent, Source: "form:newsletter", Page: "https://shop.example/news",
		Wording: "wording-hash", Request: req.ID, MessageID: req.MessageID}
	if got, want := snapshot(t, ev), snapshot(t, wantEv); got != want {
		t.Errorf("Event:\ngot  %s\nwant %s", got, want)
	}

	ps := plan.Personal
	if ps.Salt == "" || ps.Salt == sub.ID || ps.Salt == req.ID {
		t.Errorf("Personal.Salt: got %q, want a fresh id", ps.Salt)
	}
	if got, want := ps.Email, "Ann@example.com"; got != want {
		t.Errorf("Personal.Email: got %q, want %q", got, want)
	}
	if got, want := ps.IP, "192.0.2.7"; got != want {
		t.Errorf("Personal.IP: got %q, want %q", got, want)
	}
	if got, want := ps.UserAgent, "Mozilla/5.0 test"; got != want {
		t.Errorf("Personal.UserAgent: got %q, want %q", got, want)
	}
}

// TestPlanSignupNothing covers every signup that must change nothing: no
// mail, no event, and the stored subscriber and request left as they were.
func TestPlanSignupNothing(t *testing.T) {
	shortTTL := consent.DefaultPolicy()
	shortTTL.ConfirmTTL = time.Hour // expires well within MailGap

	tests := []struct {
		name   string
		policy consent.Policy
		// setup returns the stored state and the time of the new signup.
		setup  func(t *testing.T, p consent.Policy, ids consent.IDs) (*consent.Subscriber, *consent.Request, time.Time)
		topics []string
	}{
		{
			name:   "repeat while request open",
			policy: consent.DefaultPolicy(),
			setup: func(t *testing.T, p consent.Policy, ids consent.IDs) (*consent.Subscriber, *consent.Request, time.Time) {
				sub, req := signupState(t, p, ids, "news", "offers")
				return sub, req, t0.Add(time.Hour)
			},
			topics: []string{"offers", "news"},
		},
		{
			name:   "repeat with a subset while request open",
			policy: consent.DefaultPolicy(),
			setup: func(t *testing.T, p consent.Policy, ids consent.IDs) (*consent.Subscriber, *consent.Request, time.Time) {
				sub, req := signupState(t, p, ids, "news", "offers")
				return sub, req, t0.Add(p.ConfirmTTL - time.Millisecond)
			},
			topics: []string{"offers"},
		},
		{
			name:   "all topics already confirmed",
			policy: consent.DefaultPolicy(),
			setup: func(t *testing.T, p consent.Policy, ids consent.IDs) (*consent.Subscriber, *consent.Request, time.Time) {
				sub, req := signupState(t, p, ids, "news", "offers")
				if _, _, err := consent.PlanConfirm(sub, req, consent.ConfirmInput{Now: t0.Add(time.Hour)}, ids); err != nil {
					t.Fatalf("setup PlanConfirm: %v", err)
				}
				return sub, nil, t0.Add(48 * time.Hour)
			},
			topics: []string{"news", "offers"},
		},
		{
			name:   "no topics",
			policy: consent.DefaultPolicy(),
			setup: func(t *testing.T, p consent.Policy, ids consent.IDs) (*consent.Subscriber, *consent.Request, time.Time) {
				sub, req := signupState(t, p, ids, "news")
				return sub, req, t0.Add(time.Hour)
			},
			topics: nil,
		},
		{
			name:   "request expired but last mail within MailGap",
			policy: shortTTL,
			setup: func(t *testing.T, p consent.Policy, ids consent.IDs) (*consent.Subscriber, *consent.Request, time.Time) {
				sub, req := signupState(t, p, ids, "news")
				return sub, req, t0.Add(p.MailGap - time.Millisecond)
			},
			topics: []string{"news"},
		},
		{
			name:   "request expired, new topic, last mail within MailGap",
			policy: shortTTL,
			setup: func(t *testing.T, p consent.Policy, ids consent.IDs) (*consent.Subscriber, *consent.Request, time.Time) {
				sub, req := signupState(t, p, ids, "news")
				return sub, req, t0.Add(2 * time.Hour)
			},
			topics: []string{"news", "offers"},
		},
		{
			name:   "fourth request after three mails while pending",
			policy: shortTTL,
			setup: func(t *testing.T, p consent.Policy, ids consent.IDs) (*consent.Subscriber, *consent.Request, time.Time) {
				sub, req := signupState(t, p, ids, "news")
				for i := 1; i < p.MailsWhilePending; i++ {
					at := t0.Add(time.Duration(i) * p.MailGap)
					plan := consent.PlanSignup(sub, req, signupInput(t, at, "news"), p, ids)
					if !plan.Mail {
						t.Fatalf("setup signup %d: Mail: got false, want true", i+1)
					}
					sub, req = plan.Subscriber, plan.Request
				}
				if got, want := len(sub.ConfirmMails), p.MailsWhilePending; got != want {
					t.Fatalf("setup: len(ConfirmMails): got %d, want %d", got, want)
				}
				// The first mail, at t0, still counts just before the window ends.
				return sub, req, t0.Add(p.MailCapWindow - time.Millisecond)
			},
			topics: []string{"news"},
		},
		{
			name:   "blocked by not me",
			policy: consent.DefaultPolicy(),
			setup: func(t *testing.T, p consent.Policy, ids consent.IDs) (*consent.Subscriber, *consent.Request, time.Time) {
				sub, req := signupState(t, p, ids, "news")
				if ev, _ := consent.PlanNotMe(sub, req, consent.ConfirmInput{Now: t0.Add(time.Hour)}, p, ids); ev == nil {
					t.Fatalf("setup PlanNotMe: got nil event, want canceled")
				}
				return sub, nil, sub.BlockedUntil.Add(-time.Millisecond)
			},
			topics: []string{"news"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids := &counterIDs{}
			sub, open, now := tt.setup(t, tt.policy, ids)
			beforeSub, beforeReq := snapshot(t, sub), snapshot(t, open)

			plan := consent.PlanSignup(sub, open, signupInput(t, now, tt.topics...), tt.policy, ids)

			if got, want := snapshot(t, plan), snapshot(t, consent.SignupPlan{}); got != want {
				t.Errorf("plan:\ngot  %s\nwant %s", got, want)
			}
			if got := snapshot(t, sub); got != beforeSub {
				t.Errorf("subscriber changed:\ngot  %s\nwant %s", got, beforeSub)
			}
			if got := snapshot(t, open); got != beforeReq {
				t.Errorf("request changed:\ngot  %s\nwant %s", got, beforeReq)
			}
		})
	}
}

// TestPlanSignupOpenRequestKeepsItsTopics: while a request is open, a
// signup for more topics changes nothing. The open request's link
// confirms exactly what its mail listed, so nobody can add a topic to
// another person's pending confirmation.
func TestPlanSignupOpenRequestKeepsItsTopics(t *testing.T) {
	p := consent.DefaultPolicy()
	ids := &counterIDs{}
	sub, req := signupState(t, p, ids, "news")
	before := snapshot(t, req)

	plan := consent.PlanSignup(sub, req, signupInput(t, t0.Add(time.Hour), "news", "offers"), p, ids)

	if got, want := snapshot(t, plan), snapshot(t, consent.SignupPlan{}); got != want {
		t.Errorf("plan: got %s, want the zero plan", got)
	}
	if got := snapshot(t, req); got != before {
		t.Errorf("open request changed:\ngot  %s\nwant %s", got, before)
	}
	if s := sub.Subscriptions["offers"]; s != nil {
		t.Errorf("Subscriptions[offers]: got %+v, want none", s)
	}
}

// TestPlanSignupCapWindow: mails older than the cap window stop counting,
// so three unconfirmed mails cannot lock an address out for good.
func TestPlanSignupCapWindow(t *testing.T) {
	p := consent.DefaultPolicy()
	p.ConfirmTTL = time.Hour
	ids := &counterIDs{}
	sub, req := signupState(t, p, ids, "news")
	for i := 1; i < p.MailsWhilePending; i++ {
		plan := consent.PlanSignup(sub, req, signupInput(t, t0.Add(time.Duration(i)*p.MailGap), "news"), p, ids)
		sub, req = plan.Subscriber, plan.Request
	}
	now := t0.Add(time.Duration(p.MailsWhilePending-1)*p.MailGap + p.MailCapWindow)
	plan := consent.PlanSignup(sub, req, signupInput(t, now, "news"), p, ids)
	if !plan.Mail {
		t.Fatal("Mail: got false once every earlier mail left the window, want true")
	}
	if got, want := plan.Subscriber.ConfirmMails, []time.Time{now}; !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Errorf("ConfirmMails: got %v, want %v", got, want)
	}
}

func TestPlanSignupNewRequest(t *testing.T) {
	shortTTL := consent.DefaultPolicy()
	shortTTL.ConfirmTTL = time.Hour
	tests := []struct {
		name   string
		policy consent.Policy
		at     func(p consent.Policy) time.Time
		topics []string
		want   []string
	}{
		{"MailGap after the last mail", shortTTL, func(p consent.Policy) time.Time { return t0.Add(p.MailGap) }, []string{"news"}, []string{"news"}},
		{"expired under the default policy", consent.DefaultPolicy(), func(p consent.Policy) time.Time { return t0.Add(p.ConfirmTTL) }, []string{"news"}, []string{"news"}},
		{"expired, with a new topic", consent.DefaultPolicy(), func(p consent.Policy) time.Time { return t0.Add(p.ConfirmTTL + time.Hour) }, []string{"offers", "news"}, []string{"offers", "news"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids := &counterIDs{}
			sub, old := signupState(t, tt.policy, ids, "news")
			now := tt.at(tt.policy)
			plan := consent.PlanSignup(sub, old, signupInput(t, now, tt.topics...), tt.policy, ids)
			if !plan.Mail {
				t.Fatalf("Mail: got false, want true")
			}
			if plan.Request.ID == old.ID {
				t.Errorf("Request.ID: got the expired request %q, want a new one", old.ID)
			}
			if plan.Request.MessageID == old.MessageID {
				t.Errorf("Request.MessageID: got the old %q, want a new one", old.MessageID)
			}
			if got, want := plan.Request.Topics, tt.want; !slices.Equal(got, want) {
				t.Errorf("Request.Topics: got %q, want %q", got, want)
			}
			if got, want := plan.Request.Expires, now.Add(tt.policy.ConfirmTTL); !got.Equal(want) {
				t.Errorf("Request.Expires: got %v, want %v", got, want)
			}
			if got, want := plan.Subscriber.PendingRequest, plan.Request.ID; got != want {
				t.Errorf("PendingRequest: got %q, want %q", got, want)
			}
			if got, want := plan.Subscriber.ConfirmMails, []time.Time{t0, now}; !slices.EqualFunc(got, want, time.Time.Equal) {
				t.Errorf("ConfirmMails: got %v, want %v", got, want)
			}
			if got, want := plan.Event.Topics, tt.want; !slices.Equal(got, want) {
				t.Errorf("Event.Topics: got %q, want %q", got, want)
			}
			if got, want := plan.Event.Request, plan.Request.ID; got != want {
				t.Errorf("Event.Request: got %q, want %q", got, want)
			}
		})
	}
}

// TestPlanSignupKeepsOptOut checks that a topic the person left keeps its
// status while a new request is pending; only the confirm click lifts it.
func TestPlanSignupKeepsOptOut(t *testing.T) {
	for _, status := range []consent.Status{consent.StatusUnsubscribed, consent.StatusLapsed} {
		t.Run(string(status), func(t *testing.T) {
			p := consent.DefaultPolicy()
			ids := &counterIDs{}
			left := t0.Add(-30 * 24 * time.Hour)
			sub := &consent.Subscriber{ID: "sub1", Email: "Ann@example.com", Created: t0.Add(-60 * 24 * time.Hour),
				Subscriptions: map[string]*consent.Subscription{
					"news": {Topic: "news", Status: status, Basis: consent.BasisConsent, Since: left},
				}}

			plan := consent.PlanSignup(sub, nil, signupInput(t, t0, "news", "offers"), p, ids)
			if !plan.Mail {
				t.Fatalf("Mail: got false, want true")
			}
			if got, want := plan.Request.Topics, []string{"news", "offers"}; !slices.Equal(got, want) {
				t.Errorf("Request.Topics: got %q, want %q", got, want)
			}
			if got := sub.Subscriptions["news"]; got.Status != status || !got.Since.Equal(left) {
				t.Errorf("news while pending: got %+v, want %q since %v", *got, status, left)
			}
			if got, want := sub.Subscriptions["offers"].Status, consent.StatusPending; got != want {
				t.Errorf("offers while pending: got %q, want %q", got, want)
			}

			confirmAt := t0.Add(time.Hour)
			ev, _, err := consent.PlanConfirm(sub, plan.Request, consent.ConfirmInput{Now: confirmAt}, ids)
			if err != nil || ev == nil {
				t.Fatalf("PlanConfirm: got event %v, err %v, want an event and nil", ev, err)
			}
			for _, topic := range []string{"news", "offers"} {
				want := consent.Subscription{Topic: topic, Status: consent.StatusConfirmed, Basis: consent.BasisConsent, Since: confirmAt}
				if got := sub.Subscriptions[topic]; got == nil || !reflect.DeepEqual(*got, want) {
					t.Errorf("Subscriptions[%q] after confirm: got %+v, want %+v", topic, got, want)
				}
			}
		})
	}
}

func TestPlanConfirm(t *testing.T) {
	p := consent.DefaultPolicy()
	ids := &counterIDs{}
	sub, req := signupState(t, p, ids, "news", "offers")
	// A second mail for the same address, so ConfirmMails has something to clear.
	sub.ConfirmMails = append(sub.ConfirmMails, t0.Add(time.Minute))
	now := t0.Add(2 * time.Hour)
	in := consent.ConfirmInput{IP: "198.51.100.9", UserAgent: "Mail client", Now: now}

	ev, personal, err := consent.PlanConfirm(sub, req, in, ids)
	if err != nil {
		t.Fatalf("PlanConfirm: got err %v, want nil", err)
	}
	wantEv := consent.Event{Time: now, Type: consent.EventConfirmed, Subscriber: sub.ID, Topics: []string{"news", "offers"},
		Basis: consent.BasisConsent, Source: "form:newsletter", Request: req.ID, MessageID: req.MessageID}
	if got, want := snapshot(t, ev), snapshot(t, wantEv); got != want {
		t.Errorf("Event:\ngot  %s\nwant %s", got, want)
	}
	if personal.Salt == "" {
		t.Errorf("Personal.Salt: got empty, want a fresh id")
	}
	wantPersonal := consent.Personal{Salt: personal.Salt, Email: "Ann@example.com", IP: "198.51.100.9", UserAgent: "Mail client"}
	if personal != wantPersonal {
		t.Errorf("Personal: got %+v, want %+v", personal, wantPersonal)
	}
	if !req.Confirmed.Equal(now) {
		t.Errorf("Request.Confirmed: got %v, want %v", req.Confirmed, now)
	}
	if sub.PendingRequest != "" {
		t.Errorf("PendingRequest: got %q, want empty", sub.PendingRequest)
	}
	if sub.ConfirmMails != nil {
		t.Errorf("ConfirmMails: got %v, want nil", sub.ConfirmMails)
	}
	for _, topic := range []string{"news", "offers"} {
		if got, want := sub.Subscriptions[topic].Status, consent.StatusConfirmed; got != want {
			t.Errorf("Subscriptions[%q].Status: got %q, want %q", topic, got, want)
		}
	}

	t.Run("second click", func(t *testing.T) {
		beforeSub, beforeReq := snapshot(t, sub), snapshot(t, req)
		ev, personal, err := consent.PlanConfirm(sub, req, consent.ConfirmInput{Now: now.Add(time.Hour)}, ids)
		if ev != nil || err != nil {
			t.Errorf("PlanConfirm again: got event %v, err %v, want nil, nil", ev, err)
		}
		if personal != (consent.Personal{}) {
			t.Errorf("Personal: got %+v, want zero", personal)
		}
		if got := snapshot(t, sub); got != beforeSub {
			t.Errorf("subscriber changed:\ngot  %s\nwant %s", got, beforeSub)
		}
		if got := snapshot(t, req); got != beforeReq {
			t.Errorf("request changed:\ngot  %s\nwant %s", got, beforeReq)
		}
	})

	t.Run("click after confirmed request expired", func(t *testing.T) {
		ev, _, err := consent.PlanConfirm(sub, req, consent.ConfirmInput{Now: req.Expires.Add(time.Hour)}, ids)
		if ev != nil || err != nil {
			t.Errorf("PlanConfirm: got event %v, err %v, want nil, nil", ev, err)
		}
	})
}

func TestPlanConfirmClosedRequest(t *testing.T) {
	p := consent.DefaultPolicy()
	tests := []struct {
		name    string
		cancel  bool
		at      func(req *consent.Request) time.Time
		wantErr string
	}{
		{"one millisecond before expiry", false, func(r *consent.Request) time.Time { return r.Expires.Add(-time.Millisecond) }, ""},
		{"at expiry", false, func(r *consent.Request) time.Time { return r.Expires }, consent.EExpired},
		{"long after expiry", false, func(r *consent.Request) time.Time { return r.Expires.Add(30 * 24 * time.Hour) }, consent.EExpired},
		{"cancelled by not me", true, func(r *consent.Request) time.Time { return r.Created.Add(2 * time.Hour) }, consent.EExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids := &counterIDs{}
			sub, req := signupState(t, p, ids, "news")
			if tt.cancel {
				consent.PlanNotMe(sub, req, consent.ConfirmInput{Now: t0.Add(time.Hour)}, p, ids)
			}
			beforeSub := snapshot(t, sub)

			ev, _, err := consent.PlanConfirm(sub, req, consent.ConfirmInput{Now: tt.at(req)}, ids)

			if got := consent.ErrorCode(err); got != tt.wantErr {
				t.Fatalf("ErrorCode: got %q, want %q (err %v)", got, tt.wantErr, err)
			}
			if tt.wantErr == "" {
				if ev == nil {
					t.Errorf("Event: got nil, want confirmed")
				}
				return
			}
			if ev != nil {
				t.Errorf("Event: got %+v, want nil", ev)
			}
			if !req.Confirmed.IsZero() {
				t.Errorf("Request.Confirmed: got %v, want zero", req.Confirmed)
			}
			if got := snapshot(t, sub); got != beforeSub {
				t.Errorf("subscriber changed:\ngot  %s\nwant %s", got, beforeSub)
			}
		})
	}
}

func TestPlanNotMe(t *testing.T) {
	p := consent.DefaultPolicy()
	ids := &counterIDs{}
	confirmedSince := t0.Add(-time.Hour)
	sub := &consent.Subscriber{ID: "sub1", Email: "Ann@example.com", Created: t0.Add(-24 * time.Hour),
		Subscriptions: map[string]*consent.Subscription{
			"news":   {Topic: "news", Status: consent.StatusConfirmed, Basis: consent.BasisConsent, Since: confirmedSince},
			"health": {Topic: "health", Status: consent.StatusUnsubscribed, Basis: consent.BasisConsent, Since: confirmedSince},
		}}
	plan := consent.PlanSignup(sub, nil, signupInput(t, t0, "news", "offers", "health"), p, ids)
	req := plan.Request
	if !plan.Mail || req == nil {
		t.Fatalf("setup signup: got %+v, want a mailed request", plan)
	}
	if got, want := req.Topics, []string{"offers", "health"}; !slices.Equal(got, want) {
		t.Fatalf("setup Request.Topics: got %q, want %q", got, want)
	}

	now := t0.Add(time.Hour)
	in := consent.ConfirmInput{IP: "203.0.113.5", UserAgent: "Webmail", Now: now}
	ev, personal := consent.PlanNotMe(sub, req, in, p, ids)

	wantEv := consent.Event{Time: now, Type: consent.EventCanceled, Subscriber: "sub1", Topics: []string{"offers", "health"},
		Source: "not_me", Request: req.ID, MessageID: req.MessageID}
	if got, want := snapshot(t, ev), snapshot(t, wantEv); got != want {
		t.Errorf("Event:\ngot  %s\nwant %s", got, want)
	}
	wantPersonal := consent.Personal{Salt: personal.Salt, Email: "Ann@example.com", IP: "203.0.113.5", UserAgent: "Webmail"}
	if personal.Salt == "" || personal != wantPersonal {
		t.Errorf("Personal: got %+v, want %+v with a salt", personal, wantPersonal)
	}
	if !req.Canceled.Equal(now) {
		t.Errorf("Request.Canceled: got %v, want %v", req.Canceled, now)
	}
	if req.Open(now) {
		t.Errorf("Request.Open: got true, want false")
	}
	if sub.PendingRequest != "" {
		t.Errorf("PendingRequest: got %q, want empty", sub.PendingRequest)
	}
	if got, want := sub.BlockedUntil, now.Add(p.NotMeBlock); !got.Equal(want) {
		t.Errorf("BlockedUntil: got %v, want %v", got, want)
	}
	if s, ok := sub.Subscriptions["offers"]; ok {
		t.Errorf("Subscriptions[offers]: got %+v, want removed (was pending only)", s)
	}
	if s := sub.Subscriptions["news"]; s == nil || s.Status != consent.StatusConfirmed || !s.Since.Equal(confirmedSince) {
		t.Errorf("Subscriptions[news]: got %+v, want confirmed since %v", s, confirmedSince)
	}
	if s := sub.Subscriptions["health"]; s == nil || s.Status != consent.StatusUnsubscribed {
		t.Errorf("Subscriptions[health]: got %+v, want unsubscribed kept", s)
	}

	t.Run("idempotent", func(t *testing.T) {
		before := snapshot(t, sub)
		ev, personal := consent.PlanNotMe(sub, req, consent.ConfirmInput{Now: now.Add(24 * time.Hour)}, p, ids)
		if ev != nil || personal != (consent.Personal{}) {
			t.Errorf("PlanNotMe again: got %+v, %+v, want nil, zero", ev, personal)
		}
		if got := snapshot(t, sub); got != before {
			t.Errorf("subscriber changed:\ngot  %s\nwant %s", got, before)
		}
		if !req.Canceled.Equal(now) {
			t.Errorf("Request.Canceled: got %v, want %v", req.Canceled, now)
		}
	})

	t.Run("signup after the block ends", func(t *testing.T) {
		plan := consent.PlanSignup(sub, req, signupInput(t, sub.BlockedUntil, "offers"), p, ids)
		if !plan.Mail {
			t.Errorf("Mail: got false, want true")
		}
	})
}

func TestPlanNotMeConfirmedRequest(t *testing.T) {
	p := consent.DefaultPolicy()
	ids := &counterIDs{}
	sub, req := signupState(t, p, ids, "news")
	if _, _, err := consent.PlanConfirm(sub, req, consent.ConfirmInput{Now: t0.Add(time.Hour)}, ids); err != nil {
		t.Fatalf("setup PlanConfirm: %v", err)
	}
	before := snapshot(t, sub)
	ev, _ := consent.PlanNotMe(sub, req, consent.ConfirmInput{Now: t0.Add(2 * time.Hour)}, p, ids)
	if ev != nil {
		t.Errorf("Event: got %+v, want nil", ev)
	}
	if !req.Canceled.IsZero() {
		t.Errorf("Request.Canceled: got %v, want zero", req.Canceled)
	}
	if got := snapshot(t, sub); got != before {
		t.Errorf("subscriber changed:\ngot  %s\nwant %s", got, before)
	}
}

func TestSubscriberLifecycle(t *testing.T) {
	const year = 365 * 24 * time.Hour
	now := t0
	tests := []struct {
		name     string
		purchase time.Time
		want     consent.Lifecycle
	}{
		{"no purchase", time.Time{}, consent.LifecycleProspect},
		{"purchase today", now, consent.LifecycleCustomer},
		{"364d23h ago", now.Add(-(364*24 + 23) * time.Hour), consent.LifecycleCustomer},
		{"one millisecond short of 365d", now.Add(-year + time.Millisecond), consent.LifecycleCustomer},
		{"exactly 365d ago", now.Add(-year), consent.LifecycleDormant},
		{"two years ago", now.Add(-2 * year), consent.LifecycleDormant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &consent.Subscriber{LastPurchase: tt.purchase}
			if got := s.Lifecycle(now, year); got != tt.want {
				t.Errorf("Lifecycle: got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestMailName: a subscriber is greeted by name only once the address is
// confirmed, that is once a subscription has left pending.
func TestMailName(t *testing.T) {
	tests := []struct {
		name     string
		statuses []consent.Status
		want     string
	}{
		{"no subscriptions", nil, ""},
		{"pending only", []consent.Status{consent.StatusPending, consent.StatusPending}, ""},
		{"one confirmed", []consent.Status{consent.StatusPending, consent.StatusConfirmed}, "Ann"},
		{"unsubscribed after a mailed link", []consent.Status{consent.StatusUnsubscribed}, "Ann"},
		{"lapsed", []consent.Status{consent.StatusLapsed}, "Ann"},
	}
	for _, tt := range tests {
		sub := &consent.Subscriber{Name: "Ann", Subscriptions: map[string]*consent.Subscription{}}
		for i, st := range tt.statuses {
			topic := fmt.Sprintf("t%d", i)
			sub.Subscriptions[topic] = &consent.Subscription{Topic: topic, Status: st}
		}
		if got := sub.MailName(); got != tt.want {
			t.Errorf("%s: MailName() = %q, want %q", tt.name, got, tt.want)
		}
	}
}
