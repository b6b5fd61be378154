package app

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"optin/internal/config"
	"optin/internal/consent"
	"optin/internal/webhooktest"
)

// TestChannelRectification follows a person who gave a number for text
// messages: the confirmation mail says what the click agrees to besides
// email, webhooks report the channel consent, an operator corrects the
// number by PATCH and on the console (each a rectified event, audited
// under the key's name), and a correction the person's channels do not
// need (an address without post, a number without sms or calls) is
// refused and changes nothing.
func TestChannelRectification(t *testing.T) {
	s := startService(t, nil)
	s.adminJSON("PUT", "/forms/newsletter", `{"channels":["sms"]}`, http.StatusOK, nil)
	rcv := webhooktest.Start(t)
	var w webhookOut
	s.adminJSON("POST", "/webhooks", `{"url":"`+rcv.URL+`/optin","scope":"contact","events":["channel_consented","channel_withdrawn","frequency_chosen"]}`,
		http.StatusCreated, &w)
	rcv.SetSecret(w.Secret)

	v := url.Values{"email": {"ann@example.com"}, "topics": {"news"}, "channels": {"news:sms"}, "phone": {"+46 70 123 45 67"}}
	if r := s.do("POST", "/f/newsletter", "application/x-www-form-urlencoded", v.Encode(),
		"Origin", s.url, "Referer", s.url+"/f/newsletter"); r.status != http.StatusSeeOther {
		t.Fatalf("signup: got %d %s", r.status, r.body)
	}
	raw := s.waitMails(1)[0].Data
	_, text, htm := mailParts(t, raw)
	for part, body := range map[string]string{"text": text, "HTML": html.UnescapeString(htm)} {
		if !strings.Contains(body, "also by text message to +46701234567") {
			t.Errorf("the confirmation mail's %s part does not name the text messages it agrees to:\n%s", part, body)
		}
	}
	confirm, _ := links(t, text)
	if r := s.do("POST", confirm, "", ""); r.status != http.StatusOK {
		t.Fatalf("confirm: got %d", r.status)
	}
	ann, _ := s.subscriber("ann@example.com")

	// The shop's SMS tool learns of the consent, with the number.
	var hook webhooktest.Message
	for deadline := time.Now().Add(patience); ; time.Sleep(20 * time.Millisecond) {
		i := slices.IndexFunc(rcv.Messages(), func(m webhooktest.Message) bool { return m.Type == "channel_consented" })
		if i >= 0 {
			hook = rcv.Messages()[i]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no channel_consented webhook; got %d messages", len(rcv.Messages()))
		}
	}
	var evidence struct{ Channel string }
	if err := json.Unmarshal(hook.Data.Evidence, &evidence); err != nil || hook.Data.Subscriber != ann.ID || evidence.Channel != "sms" ||
		!strings.Contains(hook.Body, `"phone":"+46701234567"`) {
		t.Errorf("channel_consented webhook: got %s (%v)", hook.Body, err)
	}

	type person struct {
		Name, Phone   string
		PostalAddress string `json:"postal_address"`
	}
	get := func() person {
		var p person
		s.adminJSON("GET", "/subscribers/"+ann.ID, "", http.StatusOK, &p)
		return p
	}
	rectified := func() []channelEvent { return s.channelEvents(ann.ID, "rectified") }

	for name, body := range map[string]string{
		"a number not in international form":  `{"phone":"070-123 45 67"}`,
		"no number while sms needs one":       `{"phone":""}`,
		"an address without post":             `{"postal_address":"Storgatan 1\n111 22 Stockholm"}`,
		"a name with an address without post": `{"name":"Ann Smith","postal_address":"Storgatan 1"}`,
		"a good number with a bad address":    `{"phone":"+46709999999","postal_address":"Storgatan 1"}`,
	} {
		r := s.adminAs(testAdminKey, "PATCH", "/subscribers/"+ann.ID, "application/json", body)
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, `"invalid"`) {
			t.Errorf("PATCH %s: got %d %s, want 400", name, r.status, r.body)
		}
	}
	if r := s.adminAs(testAdminKey, "PATCH", "/subscribers/"+ann.ID, "application/json", `{"postal_address":"Storgatan 1"}`); !strings.Contains(r.body, "post") {
		t.Errorf("the refusal of an address does not say post needs it: %s", r.body)
	}
	if p := get(); p != (person{Phone: "+46701234567"}) || len(rectified()) != 0 {
		t.Fatalf("refused corrections changed the person: %+v, %d rectified events", p, len(rectified()))
	}

	key := s.newKey("crm-sync", consent.RoleMarketer)
	var patched person
	if r := s.adminAs(key, "PATCH", "/subscribers/"+ann.ID, "application/json", `{"phone":"+46 70 999 99 99"}`); r.status != http.StatusOK {
		t.Fatalf("PATCH phone: got %d %s", r.status, r.body)
	} else if err := json.Unmarshal([]byte(r.body), &patched); err != nil || patched.Phone != "+46709999999" {
		t.Errorf("PATCH phone answered %s", r.body)
	}
	if p := get(); p.Phone != "+46709999999" {
		t.Errorf("phone after PATCH: got %q", p.Phone)
	}
	evs := rectified()
	if len(evs) != 1 || evs[0].Field != "phone" || evs[0].Source != "admin:crm-sync" || evs[0].Personal == nil ||
		evs[0].Personal.Phone != "+46709999999" || evs[0].Personal.Note != "+46701234567" {
		t.Fatalf("rectified events after PATCH phone: got %+v", evs)
	}
	var audit struct{ Items []consent.AuditEntry }
	s.adminJSON("GET", "/audit?limit=1", "", http.StatusOK, &audit)
	if len(audit.Items) != 1 || audit.Items[0].Action != "subscriber.rectify" || audit.Items[0].Key != "crm-sync" || audit.Items[0].Target != ann.ID {
		t.Errorf("audit after PATCH phone: got %+v", audit.Items)
	}
	// The same number again changes nothing.
	s.adminJSON("PATCH", "/subscribers/"+ann.ID, `{"phone":"+46709999999"}`, http.StatusOK, nil)
	if n := len(rectified()); n != 1 {
		t.Errorf("the same number again added %d events", n-1)
	}

	// The console's person page corrects the number too, and refuses an
	// address the person's channels do not need.
	cookie := s.consoleSignIn(testAdminKey)
	page := s.consoleGet(cookie, "/admin/subscribers/"+ann.ID)
	page.body = html.UnescapeString(page.body)
	if !strings.Contains(page.body, `name="phone"`) || !strings.Contains(page.body, `value="+46709999999"`) || strings.Contains(page.body, `name="postal_address"`) {
		t.Errorf("console person page: want a phone field with the number and no postal address field:\n%s", page.body)
	}
	if r := s.consolePost(cookie, "/admin/subscribers/"+ann.ID+"/rectify", url.Values{"name": {""}, "email": {"ann@example.com"},
		"postal_address": {"Storgatan 1"}}); r.status != http.StatusBadRequest {
		t.Errorf("console address without post: got %d, want 400", r.status)
	}
	if r := s.consolePost(cookie, "/admin/subscribers/"+ann.ID+"/rectify", url.Values{"name": {""}, "email": {"ann@example.com"},
		"phone": {"+39 333 123 4567"}}); r.status != http.StatusSeeOther {
		t.Fatalf("console phone correction: got %d\n%s", r.status, r.body)
	}
	if p := get(); p.Phone != "+393331234567" || p.PostalAddress != "" {
		t.Errorf("after the console's correction: got %+v", p)
	}
	if evs := rectified(); len(evs) != 2 || evs[1].Field != "phone" || !strings.HasPrefix(evs[1].Source, "admin:") {
		t.Errorf("rectified events after the console: got %+v", evs)
	}
	// Without the CSRF token nothing changes.
	if r := s.do("POST", "/admin/subscribers/"+ann.ID+"/rectify", "application/x-www-form-urlencoded",
		url.Values{"phone": {"+46701111111"}}.Encode(), "Cookie", cookie); r.status < 400 {
		t.Errorf("console correction without CSRF: got %d", r.status)
	}
	if p := get(); p.Phone != "+393331234567" {
		t.Errorf("a correction without CSRF changed the number to %q", p.Phone)
	}

	// Someone without a channel has no number to correct.
	bo := s.confirmed("bo@example.com")
	if r := s.adminAs(testAdminKey, "PATCH", "/subscribers/"+bo, "application/json", `{"phone":"+46701234567"}`); r.status != http.StatusBadRequest ||
		!strings.Contains(r.body, "text messages") {
		t.Errorf("PATCH phone of a person without sms or calls: got %d %s", r.status, r.body)
	}
}

// TestPhoneLabelNamesTheChannelsOffered: the number's label says what it
// is for, as far as the form or the preference page offers: text
// messages, calls, or both; on the hosted form, the embed and the
// preference page, in each language.
func TestPhoneLabelNamesTheChannelsOffered(t *testing.T) {
	s := startService(t, func(c *config.Config) { c.Preferences.Channels = []string{"phone"} })
	cat := loadCatalog(t)
	for _, tc := range []struct {
		channels string
		key      string
	}{
		{`["sms"]`, "channels.phone_label_sms"},
		{`["phone","post"]`, "channels.phone_label_phone"},
		{`["sms","phone"]`, "channels.phone_label"},
	} {
		s.adminJSON("PUT", "/forms/newsletter", `{"channels":`+tc.channels+`}`, http.StatusOK, nil)
		for _, loc := range []string{"en", "it", "sv"} {
			want := cat.For(loc).T(tc.key)
			if want == tc.key || want == "" {
				t.Fatalf("%s has no %s", loc, tc.key)
			}
			if r := s.do("GET", "/f/newsletter?locale="+loc, "", ""); !strings.Contains(html.UnescapeString(r.body), want) {
				t.Errorf("form with %s in %s: no label %q", tc.channels, loc, want)
			}
			js := s.do("GET", "/f/newsletter/embed.js?locale="+loc, "", "")
			if enc, _ := json.Marshal(want); !strings.Contains(js.body, strings.Trim(string(enc), `"`)) {
				t.Errorf("embed with %s in %s: no label %q", tc.channels, loc, want)
			}
		}
	}
	for _, l := range []string{"en", "it", "sv"} {
		sms, phone, both := cat.For(l).T("channels.phone_label_sms"), cat.For(l).T("channels.phone_label_phone"),
			cat.For(l).T("channels.phone_label")
		if sms == phone || sms == both || phone == both {
			t.Errorf("%s: the three phone labels are not distinct: %q %q %q", l, sms, phone, both)
		}
	}
	s.confirmed("ann@example.com")
	pref, _ := s.manageLink("ann@example.com")
	if r := s.do("GET", pref, "", ""); !strings.Contains(html.UnescapeString(r.body), cat.For("en").T("channels.phone_label_phone")) {
		t.Errorf("preference page offering calls only: no calls label:\n%s", r.body)
	}
}
