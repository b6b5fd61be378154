package consent

import (
	"strings"
	"testing"
	"time"
)

var campaignNow = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// subWith returns a subscriber holding news in status on basis since
// 400 days ago, a dormant customer (last purchase 500 days ago).
func subWith(status Status, basis Basis) *Subscriber {
	return &Subscriber{ID: "s1", Email: "a@example.com", Created: campaignNow.Add(-1000 * Day),
		LastPurchase: campaignNow.Add(-500 * Day),
		Subscriptions: map[string]*Subscription{
			"news":   {Topic: "news", Status: status, Basis: basis, Since: campaignNow.Add(-400 * Day)},
			"offers": {Topic: "offers", Status: StatusConfirmed, Basis: BasisConsent, Since: campaignNow.Add(-400 * Day)},
		}}
}

// TestAudienceExclusions checks each excluded state against every filter
// combination: the audience rule excludes it whatever the filters say,
// with its own reason. Filters are chosen to match everyone they can.
func TestAudienceExclusions(t *testing.T) {
	type state struct {
		name       string
		sub        func() *Subscriber
		suppressed bool
		evidence   bool
		want       string
	}
	states := []state{
		{"no subscription", func() *Subscriber {
			s := subWith(StatusConfirmed, BasisConsent)
			delete(s.Subscriptions, "news")
			return s
		}, false, true, ExcludedNotSubscribed},
		{"pending", func() *Subscriber { return subWith(StatusPending, BasisConsent) }, false, true, ExcludedPending},
		{"unsubscribed", func() *Subscriber { return subWith(StatusUnsubscribed, BasisConsent) }, false, true, ExcludedUnsubscribed},
		{"lapsed", func() *Subscriber { return subWith(StatusLapsed, BasisConsent) }, false, true, ExcludedLapsed},
		{"suppressed while confirmed", func() *Subscriber { return subWith(StatusConfirmed, BasisConsent) }, true, true, ExcludedSuppressed},
		{"consent without ledger evidence", func() *Subscriber { return subWith(StatusConfirmed, BasisConsent) }, false, false, ExcludedNoBasis},
		{"legitimate interest only", func() *Subscriber { return subWith(StatusConfirmed, BasisLegitimateInterest) }, false, true, ExcludedNoBasis},
		{"no basis at all", func() *Subscriber { return subWith(StatusConfirmed, "") }, false, true, ExcludedNoBasis},
		{"soft opt-in without evidence", func() *Subscriber { return subWith(StatusConfirmed, BasisSoftOptIn) }, false, false, ExcludedNoBasis},
		{"soft opt-in without purchase", func() *Subscriber {
			s := subWith(StatusConfirmed, BasisSoftOptIn)
			s.LastPurchase = time.Time{}
			return s
		}, false, true, ExcludedNoBasis},
		{"soft opt-in, purchase too old", func() *Subscriber {
			s := subWith(StatusConfirmed, BasisSoftOptIn)
			s.LastPurchase = campaignNow.Add(-3 * 365 * Day)
			return s
		}, false, true, ExcludedSoftOptInExpiry},
		{"reconfirmed within dormant_after", func() *Subscriber {
			s := subWith(StatusConfirmed, BasisConsent)
			s.Subscriptions["news"].Since = campaignNow.Add(-364 * Day)
			return s
		}, false, true, ExcludedRecent},
		{"imported, information notice not sent yet", func() *Subscriber {
			s := subWith(StatusConfirmed, BasisSoftOptIn)
			s.LastPurchase = campaignNow.Add(-30 * Day)
			s.Notice = &Notice{Basis: BasisSoftOptIn, Topics: []string{"news"}, Queued: campaignNow.Add(-Day)}
			return s
		}, false, true, ExcludedNoticePending},
		{"already asked this cycle", func() *Subscriber {
			s := subWith(StatusConfirmed, BasisConsent)
			s.Reawakened = map[string]time.Time{"news": campaignNow.Add(-10 * Day)}
			return s
		}, false, true, ExcludedAlreadyAsked},
	}
	everyone := []Lifecycle{LifecycleProspect, LifecycleCustomer, LifecycleDormant}
	filters := []struct {
		name string
		a    Audience
	}{
		{"no filter", Audience{}},
		{"every lifecycle", Audience{Lifecycle: everyone}},
		{"dormant", Audience{Lifecycle: []Lifecycle{LifecycleDormant}}},
		{"other topic", Audience{Topics: []string{"offers"}}},
		{"consent older than 1ns", Audience{ConsentOlderThan: 1}},
		{"consent older than 365d", Audience{ConsentOlderThan: Span(365 * Day)}},
		{"no activity since the future", Audience{NoActivitySince: campaignNow.Add(Day)}},
		{"all filters", Audience{Lifecycle: everyone, Topics: []string{"offers"}, ConsentOlderThan: 1,
			NoActivitySince: campaignNow.Add(Day)}},
	}
	p := CampaignPolicy{DormantAfter: 365 * Day}
	for _, st := range states {
		for _, f := range filters {
			t.Run(st.name+"/"+f.name, func(t *testing.T) {
				c := &Campaign{ID: "c1", Topic: "news", Audience: f.a}
				ok, reason := c.Select(st.sub(), st.suppressed, st.evidence, campaignNow, p)
				if ok || reason != st.want {
					t.Errorf("Select: got %v %q, want false %q", ok, reason, st.want)
				}
			})
		}
		// The same subscriber with a good standing passes the same
		// filters: the exclusion is the rule's, not the filter's.
	}
	for _, f := range filters {
		c := &Campaign{ID: "c1", Topic: "news", Audience: f.a}
		if ok, reason := c.Select(subWith(StatusConfirmed, BasisConsent), false, true, campaignNow, p); !ok {
			t.Errorf("eligible subscriber with filter %s: got excluded (%s)", f.name, reason)
		}
	}
}

// TestAudienceAdmits covers who may be asked, that filters narrow, and
// that a campaign without filters asks dormant contacts only: an active
// customer is left out as not dormant unless a filter chooses them.
func TestAudienceAdmits(t *testing.T) {
	p := CampaignPolicy{DormantAfter: 365 * Day}
	active := subWith(StatusConfirmed, BasisConsent)
	active.LastPurchase = campaignNow.Add(-30 * Day)
	prospect := subWith(StatusConfirmed, BasisConsent)
	prospect.LastPurchase = time.Time{}
	soft := subWith(StatusConfirmed, BasisSoftOptIn)
	soft.LastPurchase = campaignNow.Add(-400 * Day)
	newCycle := subWith(StatusConfirmed, BasisConsent)
	newCycle.Reawakened = map[string]time.Time{"news": campaignNow.Add(-450 * Day)} // before the last purchase
	reconfirmed := subWith(StatusConfirmed, BasisConsent)
	reconfirmed.Reawakened = map[string]time.Time{"news": campaignNow.Add(-600 * Day)}
	reconfirmed.LastPurchase = time.Time{}
	tests := []struct {
		name   string
		sub    *Subscriber
		a      Audience
		ok     bool
		reason string
	}{
		{"consent with evidence", subWith(StatusConfirmed, BasisConsent), Audience{}, true, ""},
		{"soft opt-in within two years", soft, Audience{}, true, ""},
		{"asked in an earlier cycle (a purchase since)", newCycle, Audience{}, true, ""},
		{"asked before the last consent", reconfirmed, Audience{}, true, ""},
		{"lifecycle filter narrows", subWith(StatusConfirmed, BasisConsent), Audience{Lifecycle: []Lifecycle{LifecycleCustomer}}, false, ExcludedFiltered},
		{"topic filter narrows", subWith(StatusConfirmed, BasisConsent), Audience{Topics: []string{"events"}}, false, ExcludedFiltered},
		{"consent age narrows", subWith(StatusConfirmed, BasisConsent), Audience{ConsentOlderThan: Span(500 * Day)}, false, ExcludedFiltered},
		{"activity narrows", subWith(StatusConfirmed, BasisConsent), Audience{NoActivitySince: campaignNow.Add(-600 * Day)}, false, ExcludedFiltered},
		{"active customer, no filter", active, Audience{}, false, ExcludedNotDormant},
		{"quiet prospect, no filter", prospect, Audience{}, true, ""},
		{"active customer, customer filter", active, Audience{Lifecycle: []Lifecycle{LifecycleCustomer}}, true, ""},
		{"active customer, old consent filter", active, Audience{ConsentOlderThan: Span(Day)}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Campaign{ID: "c1", Topic: "news", Audience: tt.a}
			ok, reason := c.Select(tt.sub, false, true, campaignNow, p)
			if ok != tt.ok || reason != tt.reason {
				t.Errorf("Select: got %v %q, want %v %q", ok, reason, tt.ok, tt.reason)
			}
		})
	}
	c := &Campaign{ID: "c1", Topic: "news", Started: campaignNow.Add(-Day)}
	late := subWith(StatusConfirmed, BasisConsent)
	late.Created = campaignNow
	if ok, reason := c.Select(late, false, true, campaignNow, p); ok || reason != ExcludedNew {
		t.Errorf("subscriber created after the start: got %v %q, want false %q", ok, reason, ExcludedNew)
	}
}

func validInput() CampaignInput {
	return CampaignInput{Name: "Wake up", Topic: "news",
		Templates: map[string]CampaignTemplate{"en": {Subject: "Still with us, {{name}}?", Body: "Hello {{name}},\n\nwe miss you."}}}
}

// TestNewCampaign checks the defaults and every refusal.
func TestNewCampaign(t *testing.T) {
	c, err := NewCampaign(validInput(), "c1", campaignNow)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != CampaignDraft || c.Rate != DefaultCampaignRate || c.Deadline != DefaultCampaignDeadline || c.Reminder != 0 {
		t.Errorf("defaults: got state %s rate %d deadline %s reminder %s", c.State, c.Rate, c.Deadline, c.Reminder)
	}
	tests := []struct {
		name string
		edit func(*CampaignInput)
		want string
	}{
		{"no name", func(in *CampaignInput) { in.Name = " " }, "name"},
		{"name with newline", func(in *CampaignInput) { in.Name = "a\nb" }, "name"},
		{"no topic", func(in *CampaignInput) { in.Topic = "" }, "topic"},
		{"bad lifecycle", func(in *CampaignInput) { in.Audience.Lifecycle = []Lifecycle{"asleep"} }, "audience.lifecycle"},
		{"bad consent age", func(in *CampaignInput) { in.Audience.ConsentOlderThan = "a year" }, "consent_older_than"},
		{"bad activity time", func(in *CampaignInput) { in.Audience.NoActivitySince = "2025-01-01" }, "no_activity_since"},
		{"no templates", func(in *CampaignInput) { in.Templates = nil }, "templates"},
		{"subject injection", func(in *CampaignInput) {
			in.Templates["en"] = CampaignTemplate{Subject: "Hi\r\nBcc: x@evil.test", Body: "y"}
		}, "subject"},
		{"empty body", func(in *CampaignInput) { in.Templates["en"] = CampaignTemplate{Subject: "x"} }, "body"},
		{"template code", func(in *CampaignInput) {
			in.Templates["en"] = CampaignTemplate{Subject: "x", Body: `{{template "x"}} {{.Name}}`}
		}, "placeholder"},
		{"deadline too short", func(in *CampaignInput) { in.Deadline = "2h" }, "deadline"},
		{"deadline unparsable", func(in *CampaignInput) { in.Deadline = "soon" }, "deadline"},
		{"reminder after deadline", func(in *CampaignInput) { in.Deadline = "10d"; in.Reminder = "10d" }, "reminder"},
		{"rate too high", func(in *CampaignInput) { in.Rate = 5000 }, "rate"},
		{"rate negative", func(in *CampaignInput) { in.Rate = -1 }, "rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := validInput()
			tt.edit(&in)
			_, err := NewCampaign(in, "c1", campaignNow)
			if ErrorCode(err) != EInvalid || !strings.Contains(ErrorMessage(err), tt.want) {
				t.Errorf("got %v, want EInvalid mentioning %q", err, tt.want)
			}
		})
	}
}

// TestCampaignCheckLocales: a template in a locale outside the catalogs'
// is refused, naming the locales there are.
func TestCampaignCheckLocales(t *testing.T) {
	in := validInput()
	if err := in.CheckLocales([]string{"en", "it", "sv"}); err != nil {
		t.Fatalf("valid locales: got %v", err)
	}
	in.Templates["xx"] = CampaignTemplate{Subject: "s", Body: "b"}
	err := in.CheckLocales([]string{"en", "it", "sv"})
	if ErrorCode(err) != EInvalid || !strings.Contains(ErrorMessage(err), `"xx" is not a locale optin ships (en, it, sv)`) {
		t.Errorf("unknown locale: got %v", err)
	}
}

// TestCampaignStates walks start and pause through every state.
func TestCampaignStates(t *testing.T) {
	c, _ := NewCampaign(validInput(), "c1", campaignNow)
	if err := c.Pause(campaignNow); ErrorCode(err) != EConflict {
		t.Errorf("pause a draft: got %v, want EConflict", err)
	}
	if err := c.Start(campaignNow); err != nil || c.State != CampaignRunning || !c.Started.Equal(campaignNow) {
		t.Fatalf("start: got %v, state %s", err, c.State)
	}
	if err := c.Pause(campaignNow); err != nil || c.State != CampaignPaused {
		t.Fatalf("pause: got %v, state %s", err, c.State)
	}
	if err := c.Start(campaignNow.Add(Day)); err != nil || c.State != CampaignRunning || !c.Started.Equal(campaignNow) {
		t.Fatalf("resume: got %v, state %s, started %s", err, c.State, c.Started)
	}
	c.State = CampaignDone
	if err := c.Start(campaignNow); ErrorCode(err) != EConflict {
		t.Errorf("start a done campaign: got %v, want EConflict", err)
	}
}

func TestSpan(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * Day, "72h": 72 * time.Hour, "1h30m": 90 * time.Minute} {
		got, err := ParseSpan(in)
		if err != nil || time.Duration(got) != want {
			t.Errorf("ParseSpan(%q): got %v %v, want %v", in, time.Duration(got), err, want)
		}
	}
	for _, bad := range []string{"", "-1d", "-5h", "d", "1y", "99999999999999d"} {
		if _, err := ParseSpan(bad); err == nil {
			t.Errorf("ParseSpan(%q): got nil error", bad)
		}
	}
	if got, want := Span(30*Day).String(), "30d"; got != want {
		t.Errorf("String: got %q, want %q", got, want)
	}
}

// TestPlaceholders: marketer text is never a template.
func TestPlaceholders(t *testing.T) {
	got := FillPlaceholders("Hi {{name}}, {{topic}} {{.Secret}} {{name}}", "{{topic}}", "News")
	if want := "Hi {{topic}}, News {{.Secret}} {{topic}}"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestPlanReconfirmAndLapse covers the two ends of a recipient.
func TestPlanReconfirmAndLapse(t *testing.T) {
	c := &Campaign{ID: "c1", Topic: "news"}
	sent := campaignNow.Add(-31 * Day)
	ids := fixedIDs{}

	sub := subWith(StatusConfirmed, BasisSoftOptIn)
	r := &Recipient{State: RecipientSent, Sent: sent}
	in := ConfirmInput{IP: "192.0.2.1", UserAgent: "ua", Now: campaignNow}
	ev, p, err := PlanReconfirm(c, r, sub, "wh", in, ids)
	if err != nil || ev == nil {
		t.Fatalf("reconfirm: got %v %v", ev, err)
	}
	if ev.Type != EventReconfirmed || ev.Source != "campaign:c1" || ev.Wording != "wh" || ev.Basis != BasisConsent || p.IP != "192.0.2.1" {
		t.Errorf("event: got %+v %+v", ev, p)
	}
	if s := sub.Subscriptions["news"]; s.Status != StatusConfirmed || !s.Since.Equal(campaignNow) || s.Basis != BasisConsent {
		t.Errorf("subscription after reconfirm: %+v", s)
	}
	if ev, _, err := PlanReconfirm(c, r, sub, "wh", in, ids); ev != nil || err != nil {
		t.Errorf("second reconfirm: got %v %v, want nothing", ev, err)
	}
	if ev, _ := PlanLapse(c, &Recipient{State: RecipientSent, Sent: sent}, sub, campaignNow, ids); ev != nil {
		t.Errorf("lapse after a fresh consent: got %+v, want nil", ev)
	}

	sub = subWith(StatusConfirmed, BasisConsent)
	r = &Recipient{State: RecipientSent, Sent: sent}
	ev, _ = PlanLapse(c, r, sub, campaignNow, ids)
	if ev == nil || ev.Type != EventLapsed || ev.Source != "campaign:c1" || r.State != RecipientLapsed {
		t.Fatalf("lapse: got %+v, recipient %s", ev, r.State)
	}
	if s := sub.Subscriptions["news"]; s.Status != StatusLapsed {
		t.Errorf("status after lapse: %s", s.Status)
	}
	if _, _, err := PlanReconfirm(c, &Recipient{State: RecipientSent}, sub, "wh", in, ids); ErrorCode(err) != EExpired {
		t.Errorf("reconfirm a lapsed subscription: got %v, want EExpired", err)
	}
}

type fixedIDs struct{}

func (fixedIDs) ID() string        { return "id" }
func (fixedIDs) MessageID() string { return "m@test" }

func TestReawakenSubject(t *testing.T) {
	c, s, ok := ParseReawakenSubject(ReawakenSubject("camp", "sub"))
	if !ok || c != "camp" || s != "sub" {
		t.Errorf("round trip: got %q %q %v", c, s, ok)
	}
	for _, bad := range []string{"", "camp", ".sub", "camp.", "a.b.c"} {
		if _, _, ok := ParseReawakenSubject(bad); ok {
			t.Errorf("ParseReawakenSubject(%q): got ok", bad)
		}
	}
}

// TestPlanSettle: each outcome of a first mail that left the outbox, in
// the order the rule checks them.
func TestPlanSettle(t *testing.T) {
	c := &Campaign{ID: "c1", Topic: "news", Deadline: Span(30 * Day), Reminder: Span(7 * Day)}
	erased := func() *Subscriber { return nil }
	confirmed := func() *Subscriber { return subWith(StatusConfirmed, BasisConsent) }
	for _, tc := range []struct {
		name       string
		state      RecipientState
		sub        func() *Subscriber
		parked     bool
		suppressed bool
		want       RecipientState
		followUp   bool
	}{
		{"sent", RecipientQueued, confirmed, false, false, RecipientSent, true},
		{"parked wins over everything", RecipientQueued, erased, true, true, RecipientFailed, false},
		{"erased meanwhile", RecipientQueued, erased, false, false, RecipientUnsubscribed, false},
		{"withdrew meanwhile", RecipientQueued, func() *Subscriber { return subWith(StatusUnsubscribed, BasisConsent) }, false, false, RecipientUnsubscribed, false},
		{"lapsed meanwhile", RecipientQueued, func() *Subscriber { return subWith(StatusLapsed, BasisConsent) }, false, false, RecipientDropped, false},
		{"suppressed meanwhile", RecipientQueued, confirmed, false, true, RecipientDropped, false},
		{"already settled", RecipientReconfirmed, confirmed, false, false, RecipientReconfirmed, false},
		{"campaign cancelled", RecipientQueued, confirmed, false, false, RecipientWithheld, false},
		{"campaign cancelled, but parked", RecipientQueued, confirmed, true, false, RecipientFailed, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := *c
			if strings.HasPrefix(tc.name, "campaign cancelled") {
				cc.Cancel(campaignNow)
			}
			r := &Recipient{State: tc.state}
			deadline, remind, _ := PlanSettle(&cc, r, tc.sub(), tc.parked, tc.suppressed, campaignNow)
			if r.State != tc.want {
				t.Errorf("state: got %s, want %s", r.State, tc.want)
			}
			if !tc.followUp {
				if !deadline.IsZero() || !remind.IsZero() {
					t.Errorf("follow-ups: got %v %v, want none", deadline, remind)
				}
				return
			}
			if !deadline.Equal(campaignNow.Add(30*Day)) || !remind.Equal(campaignNow.Add(7*Day)) || !r.Sent.Equal(campaignNow) || cc.Counts.Sent != 1 {
				t.Errorf("sent: got deadline %v remind %v sent %v counts %+v", deadline, remind, r.Sent, cc.Counts)
			}
		})
	}
}

// TestPlanFollowUp: reminders and deadlines of a recipient who was sent
// the first mail.
func TestPlanFollowUp(t *testing.T) {
	c := &Campaign{ID: "c1", Topic: "news", Deadline: Span(30 * Day)}
	sent := campaignNow.Add(-20 * Day)
	deadline := sent.Add(30 * Day)
	for _, tc := range []struct {
		name       string
		state      RecipientState
		sub        *Subscriber
		remind     bool
		suppressed bool
		now        time.Time
		want       RecipientState
		mail, ev   bool
	}{
		{"reminder", RecipientSent, subWith(StatusConfirmed, BasisConsent), true, false, campaignNow, RecipientSent, true, false},
		{"reminder to a suppressed address", RecipientSent, subWith(StatusConfirmed, BasisConsent), true, true, campaignNow, RecipientSent, false, false},
		{"reminder after the deadline", RecipientSent, subWith(StatusConfirmed, BasisConsent), true, false, deadline, RecipientSent, false, false},
		{"answered already", RecipientReconfirmed, subWith(StatusConfirmed, BasisConsent), false, false, deadline, RecipientReconfirmed, false, false},
		{"withdrew", RecipientSent, subWith(StatusUnsubscribed, BasisConsent), false, false, deadline, RecipientUnsubscribed, false, false},
		{"erased", RecipientSent, nil, true, false, campaignNow, RecipientUnsubscribed, false, false},
		{"deadline lapses", RecipientSent, subWith(StatusConfirmed, BasisConsent), false, false, deadline, RecipientLapsed, false, true},
		{"cancelled: no reminder", RecipientSent, subWith(StatusConfirmed, BasisConsent), true, false, campaignNow, RecipientSent, false, false},
		{"cancelled: nobody lapses", RecipientSent, subWith(StatusConfirmed, BasisConsent), false, false, deadline, RecipientSent, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := *c
			if strings.HasPrefix(tc.name, "cancelled") {
				cc.Cancel(campaignNow)
			}
			r := &Recipient{State: tc.state, Sent: sent, Deadline: deadline}
			f := PlanFollowUp(&cc, r, tc.sub, tc.remind, tc.suppressed, tc.now, fixedIDs{})
			if r.State != tc.want || (f.Mail != nil) != tc.mail || (f.Event != nil) != tc.ev {
				t.Fatalf("got state %s mail %v event %v, want %s %v %v", r.State, f.Mail != nil, f.Event != nil, tc.want, tc.mail, tc.ev)
			}
			if f.Mail != nil && (!f.Mail.Reminder || f.Mail.Kind != JobReawaken || !f.Mail.TokenExpires.Equal(deadline.Add(ReawakenLinkGrace))) {
				t.Errorf("reminder job: %+v", f.Mail)
			}
			if f.Event != nil && (f.Event.Type != EventLapsed || cc.Counts.Lapsed != 1) {
				t.Errorf("lapse: event %+v counts %+v", f.Event, cc.Counts)
			}
		})
	}
}

// TestSelectLooking: the lookups run only when the rule needs them, and
// the answer is Select's.
func TestSelectLooking(t *testing.T) {
	c := &Campaign{ID: "c1", Topic: "news"}
	for _, tc := range []struct {
		name             string
		sub              *Subscriber
		supp             bool
		wantSupp, wantEv bool
		wantOK           bool
		wantReason       string
	}{
		{"pending: no lookup", subWith(StatusPending, BasisConsent), false, false, false, false, ExcludedPending},
		{"confirmed, suppressed: no evidence lookup", subWith(StatusConfirmed, BasisConsent), true, true, false, false, ExcludedSuppressed},
		{"confirmed: both", subWith(StatusConfirmed, BasisConsent), false, true, true, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var askedSupp, askedEv bool
			ok, reason, err := c.SelectLooking(tc.sub, campaignNow, CampaignPolicy{},
				func() (bool, error) { askedSupp = true; return tc.supp, nil },
				func(Basis) (bool, error) { askedEv = true; return true, nil })
			if err != nil || ok != tc.wantOK || reason != tc.wantReason || askedSupp != tc.wantSupp || askedEv != tc.wantEv {
				t.Errorf("got %v %q %v, lookups %v %v; want %v %q, lookups %v %v", ok, reason, err, askedSupp, askedEv,
					tc.wantOK, tc.wantReason, tc.wantSupp, tc.wantEv)
			}
		})
	}
}

// TestCancelWithheldUnmarks: a first mail withheld because the campaign
// was cancelled did not ask the person, so the mark that would leave them
// out of the next campaign goes; a mark from a later campaign stays.
func TestCancelWithheldUnmarks(t *testing.T) {
	c := &Campaign{ID: "c1", Topic: "news", Deadline: Span(30 * Day)}
	sub := subWith(StatusConfirmed, BasisConsent)
	_, r := PlanReawaken(c, sub, campaignNow, fixedIDs{})
	c.Cancel(campaignNow.Add(time.Minute))
	if err := c.Start(campaignNow); ErrorCode(err) != EConflict {
		t.Errorf("Start after Cancel: got %v, want EConflict", err)
	}
	if _, _, unmarked := PlanSettle(c, r, sub, false, false, campaignNow.Add(time.Hour)); !unmarked || len(sub.Reawakened) != 0 ||
		r.State != RecipientWithheld || c.Counts.Withheld != 1 {
		t.Errorf("PlanSettle after Cancel: unmarked %v, marks %v, state %s, counts %+v", unmarked, sub.Reawakened, r.State, c.Counts)
	}
	other := subWith(StatusConfirmed, BasisConsent)
	_, r2 := PlanReawaken(c, other, campaignNow, fixedIDs{})
	other.Reawakened["news"] = campaignNow.Add(Day) // asked by a later campaign
	if _, _, unmarked := PlanSettle(c, r2, other, false, false, campaignNow.Add(2*Day)); unmarked || len(other.Reawakened) != 1 {
		t.Errorf("a later campaign's mark: unmarked %v, marks %v", unmarked, other.Reawakened)
	}
}

// TestPlanAnswer: which ledger events answer a campaign the moment they
// are appended.
func TestPlanAnswer(t *testing.T) {
	c := &Campaign{ID: "c1", Topic: "news"}
	for _, tc := range []struct {
		name  string
		state RecipientState
		ev    Event
		want  RecipientState
	}{
		{"unsubscribed from the topic", RecipientSent, Event{Type: EventUnsubscribed, Topics: []string{"news"}}, RecipientUnsubscribed},
		{"unsubscribed while queued", RecipientQueued, Event{Type: EventUnsubscribed, Topics: []string{"offers", "news"}}, RecipientUnsubscribed},
		{"reconfirmed by another campaign", RecipientSent, Event{Type: EventReconfirmed, Topics: []string{"news"}, Source: "campaign:c2"}, RecipientReconfirmed},
		{"opted in on the preference page", RecipientSent, Event{Type: EventPreferencesUpdated, Topics: []string{"news"}}, RecipientReconfirmed},
		{"another topic", RecipientSent, Event{Type: EventUnsubscribed, Topics: []string{"offers"}}, RecipientSent},
		{"the campaign's own event", RecipientSent, Event{Type: EventReconfirmed, Topics: []string{"news"}, Source: "campaign:c1"}, RecipientSent},
		{"not an answer", RecipientSent, Event{Type: EventActivity, Topics: []string{"news"}}, RecipientSent},
		{"answered already", RecipientLapsed, Event{Type: EventUnsubscribed, Topics: []string{"news"}}, RecipientLapsed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := *c
			r := &Recipient{State: tc.state}
			tc.ev.Time = campaignNow
			changed := PlanAnswer(&cc, r, &tc.ev)
			if r.State != tc.want || changed != (tc.want != tc.state) || changed != (cc.Counts.Unsubscribed+cc.Counts.Reconfirmed == 1) {
				t.Errorf("got state %s, changed %v, counts %+v; want %s", r.State, changed, cc.Counts, tc.want)
			}
		})
	}
}
