package storetest

import (
	"slices"
	"testing"

	"optin/internal/consent"
)

// testChannels: channels chosen on a form wait on the request and take
// effect with the confirmation, each with a channel_consented event and
// its evidence; the preference page gives and takes them back, changes
// the number and the frequency; a channel filter finds who may be
// texted; erasure leaves no number or address behind.
func testChannels(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	f.form.Topics = []string{"news", "offers"}
	f.form.Channels = []consent.Channel{consent.ChannelSMS, consent.ChannelPhone, consent.ChannelPost}
	in := f.signupInput("ann@example.com", "news", "offers")
	in.Channels = consent.ChannelChoice{Channels: map[string][]consent.Channel{"news": {consent.ChannelSMS}, "offers": {consent.ChannelPost}},
		Phone: "+46701234567", PostalAddress: "Storgatan 1\n111 22 Stockholm"}
	w := f.wording()
	w.Channels = map[string]string{"sms": "Text message", "phone": "Phone call", "post": "Post"}
	in.Wording = w.Hash()
	if _, err := f.s.Signup(ctx, in, w); err != nil {
		t.Fatalf("Signup with channels: %v", err)
	}
	ann := f.sub("ann@example.com")
	req, err := f.s.Request(ctx, ann.PendingRequest)
	if err != nil || req.Phone != "+46701234567" || !slices.Equal(req.Channels["news"], []consent.Channel{consent.ChannelSMS}) {
		t.Fatalf("Request: got %+v, %v; want the channels and the number waiting on it", req, err)
	}
	if ann.Phone != "" || ann.PostalAddress != "" || ann.Subscriptions["news"].Carries(consent.ChannelSMS) {
		t.Errorf("pending subscriber: got %+v; want no channel nor number before the confirmation", ann)
	}
	find := func(flt consent.SubscriberFilter) []string {
		t.Helper()
		flt.Limit = 100
		subs, _, err := f.s.FindSubscribers(ctx, flt)
		if err != nil {
			t.Fatalf("FindSubscribers(%+v): %v", flt, err)
		}
		var out []string
		for _, s := range subs {
			out = append(out, s.Email)
		}
		return out
	}
	if exp, err := f.s.Export(ctx, ann.ID); err != nil || exp.Request == nil || exp.Request.Phone != "+46701234567" {
		t.Errorf("Export before the confirmation: got request %+v, %v; want the one holding the number", exp.Request, err)
	}
	sms := consent.SubscriberFilter{Channel: consent.ChannelSMS, Status: consent.StatusConfirmed}
	if got := find(sms); len(got) != 0 {
		t.Errorf("channel sms before the confirmation: got %v, want none", got)
	}

	cin := consent.ConfirmInput{IP: "198.51.100.4", UserAgent: "Mozilla/5.0 click"}
	if _, err := f.s.Confirm(ctx, req.ID, cin); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	ann = f.sub("ann@example.com")
	if ann.Phone != "+46701234567" || ann.PostalAddress != "Storgatan 1\n111 22 Stockholm" ||
		!ann.Subscriptions["news"].Carries(consent.ChannelSMS) || !ann.Subscriptions["offers"].Carries(consent.ChannelPost) ||
		ann.Subscriptions["offers"].Carries(consent.ChannelSMS) {
		t.Fatalf("confirmed subscriber: got %+v", ann)
	}
	evs := f.events(ann.ID)
	var chEvs []consent.EventRecord
	for _, ev := range evs {
		if ev.Type == consent.EventChannelConsented {
			chEvs = append(chEvs, ev)
		}
	}
	if len(chEvs) != 2 {
		t.Fatalf("channel_consented events after the confirmation: got %d, want 2 (%+v)", len(chEvs), evs)
	}
	if e := chEvs[0]; e.Channel != consent.ChannelSMS || !slices.Equal(e.Topics, []string{"news"}) || e.Source != "form:newsletter" ||
		e.Page != "https://shop.example/" || e.Request != req.ID || e.Basis != consent.BasisConsent || e.WordingText == nil ||
		e.WordingText.Channels["sms"] != "Text message" || e.Personal == nil || e.Personal.Phone != "+46701234567" ||
		e.Personal.IP != "198.51.100.4" || e.Personal.Email != "ann@example.com" {
		t.Errorf("sms consent event: got %+v personal %+v", e.Event, e.Personal)
	}
	if e := chEvs[1]; e.Channel != consent.ChannelPost || !slices.Equal(e.Topics, []string{"offers"}) ||
		e.Personal == nil || e.Personal.PostalAddress != "Storgatan 1\n111 22 Stockholm" {
		t.Errorf("post consent event: got %+v personal %+v", e.Event, e.Personal)
	}
	f.subscribe("bo@example.com", "news")
	if got := find(sms); !slices.Equal(got, []string{"ann@example.com"}) {
		t.Errorf("channel sms: got %v, want ann", got)
	}
	if got := find(consent.SubscriberFilter{Channel: consent.ChannelPost, Status: consent.StatusConfirmed, Topic: "news"}); len(got) != 0 {
		t.Errorf("channel post on news: got %v, want none (post carries offers)", got)
	}
	if got := find(consent.SubscriberFilter{Channel: consent.ChannelEmail, Status: consent.StatusConfirmed}); len(got) != 2 {
		t.Errorf("channel email: got %v, want both", got)
	}

	// The preference page: sms off news, a call on offers with a new
	// number, news weekly.
	pw := consent.Wording{Form: "preferences", Version: 1, Locale: "en", Text: "I want these",
		Topics: map[string]string{"news": "Product news", "offers": "Offers"}, Channels: w.Channels,
		Frequencies: map[string]string{"weekly": "Weekly"}}
	bad := consent.PreferenceChoice{Topics: []string{"news", "offers"},
		ChannelChoice: consent.ChannelChoice{Channels: map[string][]consent.Channel{"offers": {consent.ChannelPhone}}}}
	before := len(f.events(ann.ID))
	err = f.s.UpdatePreferences(ctx, ann.ID, bad, pw, consent.ConfirmInput{})
	f.wantCode("UpdatePreferences with a call and no number", err, consent.EInvalid)
	if n := len(f.events(ann.ID)); n != before {
		t.Errorf("a refused choice added %d events", n-before)
	}
	choice := consent.PreferenceChoice{Topics: []string{"news", "offers"},
		ChannelChoice: consent.ChannelChoice{Channels: map[string][]consent.Channel{"offers": {consent.ChannelPhone, consent.ChannelPost}},
			Phone: "+46 70 999 99 99", PostalAddress: "Storgatan 1\n111 22 Stockholm"},
		Frequency: map[string]consent.Frequency{"news": consent.FrequencyWeekly}}
	if err := f.s.UpdatePreferences(ctx, ann.ID, choice, pw, consent.ConfirmInput{IP: "192.0.2.9", UserAgent: "UA"}); err != nil {
		t.Fatalf("UpdatePreferences: %v", err)
	}
	ann = f.sub("ann@example.com")
	if ann.Phone != "+46709999999" || ann.Subscriptions["news"].Carries(consent.ChannelSMS) ||
		!ann.Subscriptions["offers"].Carries(consent.ChannelPhone) || ann.Subscriptions["news"].Frequency != consent.FrequencyWeekly {
		t.Errorf("after the preference page: got %+v", ann)
	}
	var types []string
	for _, ev := range f.events(ann.ID)[before:] {
		types = append(types, string(ev.Type)+":"+string(ev.Channel)+string(ev.Frequency)+ev.Field)
		if ev.Source != consent.ChannelPreferences || ev.Personal == nil || ev.Personal.IP != "192.0.2.9" {
			t.Errorf("%s event: got source %q personal %+v", ev.Type, ev.Source, ev.Personal)
		}
	}
	if want := []string{"channel_consented:phone", "channel_withdrawn:sms", "frequency_chosen:weekly", "rectified:phone"}; !slices.Equal(types, want) {
		t.Errorf("preference events: got %v, want %v", types, want)
	}
	if got := find(sms); len(got) != 0 {
		t.Errorf("channel sms after it was withdrawn: got %v", got)
	}
	if got := find(consent.SubscriberFilter{Channel: consent.ChannelPhone, Status: consent.StatusConfirmed, Topic: "offers"}); !slices.Equal(got, []string{"ann@example.com"}) {
		t.Errorf("channel phone on offers: got %v, want ann", got)
	}
	exp, err := f.s.Export(ctx, ann.ID)
	if err != nil || exp.Schema != consent.ExportSchema || exp.Subscriber.Phone != "+46709999999" || exp.Subscriber.PostalAddress == "" {
		t.Errorf("Export: got %+v, %v", exp.Subscriber, err)
	}

	// Unsubscribing from offers ends its channels; the number and the
	// address, which nothing needs now, go at once.
	f.unsubscribe(ann.ID, "offers")
	ann = f.sub("ann@example.com")
	if ann.Phone != "" || ann.PostalAddress != "" || len(ann.Subscriptions["offers"].Channels) != 0 {
		t.Errorf("after unsubscribing from offers: got %+v", ann)
	}

	// Erasure keeps no number or address anywhere: not on the person,
	// not on a request, not in an event's personal record.
	f.form.Channels = []consent.Channel{consent.ChannelSMS}
	cy := f.signupInput("cy@example.com")
	cy.Channels = consent.ChannelChoice{Channels: map[string][]consent.Channel{"news": {consent.ChannelSMS}}, Phone: "+390612345678"}
	if _, err := f.s.Signup(ctx, cy, f.wording()); err != nil {
		t.Fatalf("Signup cy: %v", err)
	}
	cySub := f.sub("cy@example.com")
	if _, err := f.s.Confirm(ctx, cySub.PendingRequest, consent.ConfirmInput{}); err != nil {
		t.Fatalf("Confirm cy: %v", err)
	}
	for _, id := range []string{ann.ID, cySub.ID} {
		if err := f.s.Erase(ctx, id, consent.ChannelPreferences); err != nil {
			t.Fatalf("Erase: %v", err)
		}
		for _, ev := range f.events(id) {
			if ev.Personal != nil && (ev.Personal.Phone != "" || ev.Personal.PostalAddress != "") {
				t.Errorf("event %d (%s) keeps a number or an address after erasure", ev.Seq, ev.Type)
			}
		}
	}
	_, err = f.s.Request(ctx, cySub.PendingRequest)
	f.wantCode("Request after Erase", err, consent.ENotFound)
	if got := find(consent.SubscriberFilter{Channel: consent.ChannelSMS, Status: consent.StatusConfirmed}); len(got) != 0 {
		t.Errorf("channel sms after erasure: got %v", got)
	}
	if rep, err := f.s.VerifyLedger(ctx); err != nil || !rep.OK {
		t.Errorf("VerifyLedger: got %+v, %v", rep, err)
	}
}

// testRectifyContact: an operator corrects the phone number of a person
// whose channels use it, at once, with a rectified event holding the new
// number and the old one as its note, and an audit entry; a postal
// address the person's channels do not need is refused and the whole
// correction, name included, changes nothing. The confirmation mail's
// job carries the channels it agrees to, for the mail to name them.
func testRectifyContact(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	f.form.Channels = []consent.Channel{consent.ChannelSMS, consent.ChannelPost}
	in := f.signupInput("ann@example.com", "news")
	in.Channels = consent.ChannelChoice{Channels: map[string][]consent.Channel{"news": {consent.ChannelSMS}}, Phone: "+46701234567"}
	w := f.wording()
	w.Channels = map[string]string{"sms": "Text message", "post": "Post"}
	in.Wording = w.Hash()
	if _, err := f.s.Signup(ctx, in, w); err != nil {
		t.Fatalf("Signup with channels: %v", err)
	}
	jobs := f.dueOf(consent.JobConfirm, f.now())
	if len(jobs) != 1 || jobs[0].Phone != "+46701234567" || !slices.Equal(jobs[0].Channels["news"], []consent.Channel{consent.ChannelSMS}) {
		t.Fatalf("confirmation job: got %+v, want the sms channel and the number on it", jobs)
	}
	ann := f.sub("ann@example.com")
	if _, err := f.s.Confirm(ctx, ann.PendingRequest, consent.ConfirmInput{IP: "198.51.100.4"}); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	before := len(f.events(ann.ID))
	audits := len(f.auditActions())

	name, addr := "Ann Smith", "Storgatan 1"
	_, err := f.s.Rectify(ctx, &admin, ann.ID, consent.Rectification{Name: &name, PostalAddress: &addr}, admin.Source())
	f.wantCode("Rectify a postal address without post", err, consent.EInvalid)
	empty := ""
	_, err = f.s.Rectify(ctx, &admin, ann.ID, consent.Rectification{Phone: &empty}, admin.Source())
	f.wantCode("Rectify the number away while sms needs it", err, consent.EInvalid)
	if got := f.sub("ann@example.com"); got.Name != ann.Name || got.PostalAddress != "" || got.Phone != "+46701234567" ||
		len(f.events(ann.ID)) != before || len(f.auditActions()) != audits {
		t.Fatalf("refused corrections changed something: %+v", got)
	}

	phone := "+46709999999"
	res, err := f.s.Rectify(ctx, &admin, ann.ID, consent.Rectification{Phone: &phone}, admin.Source())
	if err != nil || !res.Contact || res.Renamed || res.AddressPending {
		t.Fatalf("Rectify(phone): got %+v, %v", res, err)
	}
	if got := f.sub("ann@example.com").Phone; got != phone {
		t.Errorf("phone after Rectify: got %q", got)
	}
	evs := f.events(ann.ID)[before:]
	if len(evs) != 1 || evs[0].Type != consent.EventRectified || evs[0].Field != consent.FieldPhone || evs[0].Source != admin.Source() ||
		evs[0].Personal == nil || evs[0].Personal.Phone != phone || evs[0].Personal.Note != "+46701234567" {
		t.Errorf("events of Rectify(phone): got %+v", evs)
	}
	if got := f.auditActions(); len(got) != audits+1 || got[0] != "subscriber.rectify" {
		t.Errorf("audit after Rectify(phone): got %v", got)
	}
	if res, err := f.s.Rectify(ctx, &admin, ann.ID, consent.Rectification{Phone: &phone}, admin.Source()); err != nil || res.Contact {
		t.Errorf("Rectify to the same number: got %+v, %v, want nothing changed", res, err)
	}
	f.wantLedgerOK(uint64(len(f.events(ann.ID))))
}
