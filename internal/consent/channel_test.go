package consent_test

import (
	"slices"
	"testing"
	"time"

	"optin/internal/consent"
)

func TestParsePhone(t *testing.T) {
	for in, want := range map[string]string{
		"":                    "",
		"+46 70 123 45 67":    "+46701234567",
		"+1 (555) 010-0199":   "+15550100199",
		"+39.06.1234.5678":    "+390612345678",
		"+683 4002":           "+6834002",
		"+123456789012345":    "+123456789012345",
		"0701234567":          "!",
		"+0701234567":         "!",
		"+46 70 12x":          "!",
		"+46+701234567":       "!",
		"+1234567890123456":   "!",
		"+12345":              "!",
		"tel:+46701234567":    "!",
		"+46\u202e701234567":  "!",
		"+46 70 123 45 67 \n": "+46701234567",
	} {
		got, err := consent.ParsePhone(in)
		if want == "!" {
			if consent.ErrorCode(err) != consent.EInvalid {
				t.Errorf("ParsePhone(%q): got %q, %v; want EInvalid", in, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ParsePhone(%q): got %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestParsePostalAddress(t *testing.T) {
	got, err := consent.ParsePostalAddress("  Via Roma 1 \r\n\r\n 00100 Roma RM\n")
	if err != nil || got != "Via Roma 1\n00100 Roma RM" {
		t.Errorf("ParsePostalAddress: got %q, %v", got, err)
	}
	for _, bad := range []string{"a\tb", "x\u0007", "1\n2\n3\n4\n5\n6\n7", string(make([]byte, 301)), "Gata 1\u202e"} {
		if _, err := consent.ParsePostalAddress(bad); consent.ErrorCode(err) != consent.EInvalid {
			t.Errorf("ParsePostalAddress(%q): got %v, want EInvalid", bad, err)
		}
	}
}

func TestChannelChoiceCheck(t *testing.T) {
	ok := consent.ChannelChoice{Channels: map[string][]consent.Channel{"news": {"post", "sms", "sms"}, "offers": nil},
		Phone: "+46 70 123 45 67", PostalAddress: "Storgatan 1\n111 22 Stockholm"}
	got, err := ok.Check([]string{"news", "offers"})
	if err != nil || !slices.Equal(got.For("news"), []consent.Channel{consent.ChannelSMS, consent.ChannelPost}) ||
		len(got.Channels) != 1 || got.Phone != "+46701234567" || got.PostalAddress == "" {
		t.Errorf("Check: got %+v, %v", got, err)
	}
	// Data minimisation: no channel needs the number or the address.
	got, err = consent.ChannelChoice{Channels: map[string][]consent.Channel{"news": {"post"}}, Phone: "+46701234567",
		PostalAddress: "Storgatan 1"}.Check(nil)
	if err != nil || got.Phone != "" || got.PostalAddress != "Storgatan 1" {
		t.Errorf("Check(post only): got %+v, %v; want no phone", got, err)
	}
	for name, bad := range map[string]consent.ChannelChoice{
		"email is implied":    {Channels: map[string][]consent.Channel{"news": {"email"}}},
		"unknown channel":     {Channels: map[string][]consent.Channel{"news": {"fax"}}},
		"sms without number":  {Channels: map[string][]consent.Channel{"news": {"sms"}}},
		"call with bad phone": {Channels: map[string][]consent.Channel{"news": {"phone"}}, Phone: "070-123"},
		"post without addr":   {Channels: map[string][]consent.Channel{"news": {"post"}}, PostalAddress: " \n "},
		"topic not chosen":    {Channels: map[string][]consent.Channel{"offers": {"post"}}, PostalAddress: "x"},
	} {
		if _, err := bad.Check([]string{"news"}); consent.ErrorCode(err) != consent.EInvalid {
			t.Errorf("Check(%s): got %v, want EInvalid", name, err)
		}
	}
}

func TestPlanPreferencesChannels(t *testing.T) {
	ids := &counterIDs{}
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	sub := &consent.Subscriber{ID: "s1", Email: "ann@example.com", Subscriptions: map[string]*consent.Subscription{
		"news": {Topic: "news", Status: consent.StatusConfirmed, Basis: consent.BasisConsent, Since: t0}}}
	in := consent.ConfirmInput{IP: "192.0.2.1", UserAgent: "UA", Now: t0.Add(time.Hour)}
	choice := consent.PreferenceChoice{Topics: []string{"news", "offers"},
		ChannelChoice: consent.ChannelChoice{Channels: map[string][]consent.Channel{"news": {"sms"}, "offers": {"sms", "post"}},
			Phone: "+46701234567", PostalAddress: "Storgatan 1"},
		Frequency: map[string]consent.Frequency{"news": consent.FrequencyMonthly}}
	evs, ps, removed, err := consent.PlanPreferences(sub, choice, "w1", in, ids)
	if err != nil || len(removed) != 0 {
		t.Fatalf("PlanPreferences: %v, removed %v", err, removed)
	}
	var types []string
	for _, ev := range evs {
		types = append(types, string(ev.Type)+":"+string(ev.Channel)+string(ev.Frequency))
	}
	want := []string{"preferences_updated:", "channel_consented:sms", "channel_consented:post", "frequency_chosen:monthly"}
	if !slices.Equal(types, want) {
		t.Fatalf("events: got %v, want %v", types, want)
	}
	if sms := evs[1]; !slices.Equal(sms.Topics, []string{"news", "offers"}) || sms.Wording != "w1" || sms.Source != consent.ChannelPreferences ||
		ps[1].Phone != "+46701234567" || ps[1].IP != "192.0.2.1" || ps[2].PostalAddress != "Storgatan 1" {
		t.Errorf("sms event: got %+v %+v", sms, ps[1])
	}
	if sub.Phone != "+46701234567" || sub.PostalAddress != "Storgatan 1" || !sub.Subscriptions["offers"].Carries(consent.ChannelPost) ||
		sub.Subscriptions["news"].Frequency != consent.FrequencyMonthly {
		t.Errorf("subscriber: got %+v", sub)
	}

	// Take sms back from news, change the number, drop offers: offers'
	// unsubscription ends its channels, and post's address goes with it.
	choice = consent.PreferenceChoice{Topics: []string{"news"},
		ChannelChoice: consent.ChannelChoice{Channels: map[string][]consent.Channel{"news": {"phone"}, "offers": {"post"}}, Phone: "+46709999999"},
		Frequency:     map[string]consent.Frequency{"news": consent.FrequencyMonthly}}
	evs, ps, removed, err = consent.PlanPreferences(sub, choice, "w1", in, ids)
	if err != nil || !slices.Equal(removed, []string{"offers"}) {
		t.Fatalf("PlanPreferences: %v, removed %v", err, removed)
	}
	types = nil
	for _, ev := range evs {
		types = append(types, string(ev.Type)+":"+string(ev.Channel)+ev.Field)
	}
	want = []string{"unsubscribed:", "channel_consented:phone", "channel_withdrawn:sms", "rectified:phone"}
	if !slices.Equal(types, want) {
		t.Fatalf("events: got %v, want %v", types, want)
	}
	if last := ps[len(ps)-1]; last.Phone != "+46709999999" || last.Note != "+46701234567" {
		t.Errorf("rectified personal: got %+v", last)
	}
	if sub.PostalAddress != "" || sub.Phone != "+46709999999" || len(sub.Subscriptions["offers"].Channels) != 0 {
		t.Errorf("subscriber: got %+v", sub)
	}

	// The same choice again changes nothing; a bad one is refused.
	if evs, _, _, err := consent.PlanPreferences(sub, choice, "w1", in, ids); err != nil || len(evs) != 0 {
		t.Errorf("again: got %d events, %v", len(evs), err)
	}
	choice.Phone = ""
	if _, _, _, err := consent.PlanPreferences(sub, choice, "w1", in, ids); consent.ErrorCode(err) != consent.EInvalid {
		t.Errorf("phone channel without a number: got %v, want EInvalid", err)
	}
}

func TestConfirmedChannels(t *testing.T) {
	ids := &counterIDs{}
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	form := &consent.Form{ID: "newsletter", Topics: []string{"news", "offers"}, Channels: []consent.Channel{consent.ChannelSMS}}
	addr, _ := consent.ParseAddress("bo@example.com")
	in := consent.SignupInput{Form: form, Address: addr, Topics: []string{"news", "offers"}, Page: "https://shop.example/", Wording: "w2",
		Channels: consent.ChannelChoice{Channels: map[string][]consent.Channel{"offers": {consent.ChannelSMS}}, Phone: "+46701234567"}, Now: t0}
	plan := consent.PlanSignup(nil, nil, in, consent.DefaultPolicy(), ids)
	if plan.Request == nil || plan.Request.Phone != "+46701234567" || plan.Subscriber.Phone != "" {
		t.Fatalf("signup: the number waits on the request until the confirmation: %+v %+v", plan.Request, plan.Subscriber)
	}
	sub := plan.Subscriber
	if sub.Subscriptions["offers"].Carries(consent.ChannelSMS) {
		t.Errorf("a pending subscription carries sms")
	}
	cin := consent.ConfirmInput{IP: "198.51.100.7", UserAgent: "UA2", Now: t0.Add(time.Hour)}
	ev, _, err := consent.PlanConfirm(sub, plan.Request, cin, ids)
	if err != nil || ev == nil {
		t.Fatalf("PlanConfirm: %v", err)
	}
	evs, ps := consent.ConfirmedChannels(sub, plan.Request, cin, ids)
	if len(evs) != 1 || evs[0].Type != consent.EventChannelConsented || evs[0].Channel != consent.ChannelSMS ||
		!slices.Equal(evs[0].Topics, []string{"offers"}) || evs[0].Page != "https://shop.example/" || evs[0].Wording != "w2" ||
		evs[0].Source != "form:newsletter" || evs[0].Request != plan.Request.ID || ps[0].Phone != "+46701234567" || ps[0].IP != "198.51.100.7" {
		t.Fatalf("ConfirmedChannels: got %+v %+v", evs, ps)
	}
	if !sub.Subscriptions["offers"].Carries(consent.ChannelSMS) || sub.Subscriptions["news"].Carries(consent.ChannelSMS) || sub.Phone != "+46701234567" {
		t.Errorf("after confirming: %+v", sub)
	}
	// An unsubscription ends the topic's channels, and the number goes.
	consent.PlanUnsubscribe(sub, "offers", consent.ChannelOneClick, cin, ids)
	if sub.Subscriptions["offers"].Channels != nil || sub.Phone != "" {
		t.Errorf("after unsubscribing: %+v", sub)
	}
}
