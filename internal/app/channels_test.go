package app

import (
	"encoding/csv"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"optin/internal/config"
)

// channelEvent is a ledger event as the consents listing shows it, with
// the fields channels add.
type channelEvent struct {
	Type      string   `json:"type"`
	Channel   string   `json:"channel"`
	Frequency string   `json:"frequency"`
	Field     string   `json:"field"`
	Topics    []string `json:"topics"`
	Source    string   `json:"source"`
	Page      string   `json:"page"`
	Wording   string   `json:"wording"`
	Request   string   `json:"request"`
	Personal  *struct {
		Email, IP, Phone string
		UserAgent        string `json:"user_agent"`
		PostalAddress    string `json:"postal_address"`
		Note             string
	} `json:"personal"`
	WordingText *struct {
		Channels map[string]string `json:"channels"`
	} `json:"wording_text"`
}

func (s *service) channelEvents(id string, types ...string) []channelEvent {
	s.t.Helper()
	var out struct{ Items []channelEvent }
	s.adminJSON("GET", "/subscribers/"+id+"/consents", "", http.StatusOK, &out)
	var evs []channelEvent
	for _, ev := range out.Items {
		if slices.Contains(types, ev.Type) {
			evs = append(evs, ev)
		}
	}
	return evs
}

// listed returns the addresses GET /api/v1/subscribers lists for query.
func (s *service) listed(query string) []string {
	s.t.Helper()
	var out struct{ Items []subscriber }
	s.adminJSON("GET", "/subscribers?"+query, "", http.StatusOK, &out)
	var got []string
	for _, it := range out.Items {
		got = append(got, it.Email)
	}
	return got
}

// TestChannels walks "how and when" end to end: an operator lets the
// form offer text messages and post and gives a topic frequencies; a
// person ticks channels on the hosted form with their number and address,
// which take effect only with the confirmation, each with a
// channel_consented event and its evidence; the channel filter and the
// export find them for the shop's SMS tool; on the preference page the
// person moves a channel, changes the number and picks a frequency, each
// recorded; erasure leaves no number behind.
func TestChannels(t *testing.T) {
	s := startService(t, func(c *config.Config) { c.Preferences.Channels = []string{"sms"} })
	s.adminJSON("POST", "/topics", `{"id":"offers","name":"Offers","frequencies":["monthly","weekly","monthly"]}`, http.StatusCreated, nil)
	s.adminJSON("POST", "/topics", `{"id":"bad","name":"Bad","frequencies":["hourly"]}`, http.StatusBadRequest, nil)
	s.adminJSON("PUT", "/forms/newsletter", `{"channels":["email"]}`, http.StatusBadRequest, nil)
	s.adminJSON("PUT", "/forms/newsletter", `{"channels":["fax"]}`, http.StatusBadRequest, nil)
	var form struct {
		Channels       []string
		WordingVersion int `json:"wording_version"`
	}
	s.adminJSON("PUT", "/forms/newsletter", `{"topics":["news","offers"],"channels":["post","sms"]}`, http.StatusOK, &form)
	if !slices.Equal(form.Channels, []string{"sms", "post"}) {
		t.Fatalf("form channels: got %v, want [sms post]", form.Channels)
	}
	if r := s.adminAs(testAdminKey, "GET", "/topics", "", ""); !strings.Contains(r.body, `"frequencies":["weekly","monthly"]`) {
		t.Errorf("topic frequencies: got %s", r.body)
	}

	var snippet struct{ HTML string }
	s.adminJSON("GET", "/forms/newsletter/snippet", "", http.StatusOK, &snippet)
	for _, want := range []string{`name="channels" value="offers:post"`, `name="phone"`, `name="postal_address"`} {
		if !strings.Contains(snippet.HTML, want) {
			t.Errorf("the form's plain HTML snippet lacks %q:\n%s", want, snippet.HTML)
		}
	}
	page := s.do("GET", "/f/newsletter", "", "")
	for _, want := range []string{`name="channels" value="news:sms"`, `name="channels" value="offers:post"`, `name="phone"`, `name="postal_address"`, "Text message (SMS)"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("form page lacks %q", want)
		}
	}
	if strings.Contains(page.body, "news:phone") {
		t.Error("the form offers phone calls, which it was not given")
	}

	post := func(v url.Values, hdr ...string) response {
		return s.do("POST", "/f/newsletter", "application/x-www-form-urlencoded", v.Encode(),
			append([]string{"Origin", s.url, "Referer", s.url + "/f/newsletter?x=1"}, hdr...)...)
	}
	base := url.Values{"email": {"ann@example.com"}, "topics": {"news", "offers"}}
	for name, tc := range map[string]struct {
		extra url.Values
		want  string
	}{
		"sms without a number":     {url.Values{"channels": {"news:sms"}}, "international form"},
		"a number that is not one": {url.Values{"channels": {"news:sms"}, "phone": {"070-123 45 67"}}, "international form"},
		"post without an address":  {url.Values{"channels": {"offers:post"}, "postal_address": {"  "}}, "postal address"},
		"a channel not offered":    {url.Values{"channels": {"news:phone"}, "phone": {"+46701234567"}}, "not offered here"},
		"a topic not ticked":       {url.Values{"channels": {"offers:sms"}, "phone": {"+46701234567"}, "topics": {"news"}}, "tick the topic"},
	} {
		v := url.Values{}
		for k, vs := range base {
			v[k] = vs
		}
		for k, vs := range tc.extra {
			v[k] = vs
		}
		r := post(v)
		if r.status != http.StatusBadRequest || !strings.Contains(html.UnescapeString(r.body), tc.want) {
			t.Errorf("%s: got %d, want 400 saying %q:\n%s", name, r.status, tc.want, r.body)
		}
	}
	// A refused form keeps what was typed.
	r := post(url.Values{"email": {"ann@example.com"}, "topics": {"news"}, "channels": {"news:sms"}, "phone": {"12"}})
	if !strings.Contains(r.body, `value="news:sms" checked`) || !strings.Contains(r.body, `value="12"`) {
		t.Errorf("refused form lost the ticks or the number:\n%s", r.body)
	}
	j := s.do("POST", "/f/newsletter", "application/json", `{"email":"ann@example.com","topics":["news"],"channels":["news:sms"],"phone":"+0"}`,
		"Accept", "application/json")
	if j.status != http.StatusBadRequest || !strings.Contains(j.body, `"invalid"`) {
		t.Errorf("JSON signup with a bad number: got %d %s", j.status, j.body)
	}
	if _, ok := s.subscriber("ann@example.com"); ok {
		t.Fatal("a refused signup stored the person")
	}

	v := url.Values{"email": {"ann@example.com"}, "topics": {"news", "offers"}, "channels": {"news:sms", "offers:post"},
		"phone": {"+46 70 123 45 67"}, "postal_address": {"Storgatan 1\r\n111 22 Stockholm"}}
	if r := post(v); r.status != http.StatusSeeOther {
		t.Fatalf("signup with channels: got %d %s", r.status, r.body)
	}
	if got := s.listed("channel=sms"); len(got) != 0 {
		t.Errorf("channel=sms before the confirmation: got %v", got)
	}
	var pending struct {
		Phone string
	}
	ann, _ := s.subscriber("ann@example.com")
	s.adminJSON("GET", "/subscribers/"+ann.ID, "", http.StatusOK, &pending)
	if pending.Phone != "" {
		t.Errorf("the number is on the person before the confirmation: %q", pending.Phone)
	}
	confirm, _ := links(t, parseMail(t, s.waitMails(1)[0].Data).text)
	if r := s.do("POST", confirm, "", ""); r.status != http.StatusOK {
		t.Fatalf("confirm: got %d", r.status)
	}
	s.confirmed("bo@example.com")

	if got := s.listed("channel=sms"); !slices.Equal(got, []string{"ann@example.com"}) {
		t.Errorf("channel=sms: got %v, want ann", got)
	}
	if got := s.listed("channel=post&topic=news"); len(got) != 0 {
		t.Errorf("channel=post&topic=news: got %v, want none", got)
	}
	if got := s.listed("channel=post&topic=offers"); !slices.Equal(got, []string{"ann@example.com"}) {
		t.Errorf("channel=post&topic=offers: got %v, want ann", got)
	}
	if got := s.listed("channel=email"); len(got) != 2 {
		t.Errorf("channel=email: got %v, want both", got)
	}
	s.adminJSON("GET", "/subscribers?channel=fax", "", http.StatusBadRequest, nil)
	s.adminJSON("GET", "/subscribers?channel=sms&status=pending", "", http.StatusBadRequest, nil)

	evs := s.channelEvents(ann.ID, "channel_consented")
	if len(evs) != 2 {
		t.Fatalf("channel_consented events: got %+v, want 2", evs)
	}
	if e := evs[0]; e.Channel != "sms" || !slices.Equal(e.Topics, []string{"news"}) || e.Source != "form:newsletter" ||
		e.Page != s.url+"/f/newsletter" || e.Wording == "" || e.WordingText == nil || e.WordingText.Channels["sms"] != "Text message (SMS)" ||
		e.Personal == nil || e.Personal.Phone != "+46701234567" || e.Personal.IP == "" || e.Personal.UserAgent == "" {
		t.Errorf("sms consent: got %+v %+v", e, e.Personal)
	}
	if e := evs[1]; e.Channel != "post" || e.Personal == nil || e.Personal.PostalAddress != "Storgatan 1\n111 22 Stockholm" {
		t.Errorf("post consent: got %+v", e)
	}

	// The console's list filters by channel too.
	cookie := s.consoleSignIn(testAdminKey)
	if r := s.consoleGet(cookie, "/admin/subscribers?channel=sms"); !strings.Contains(r.body, "ann@example.com") || strings.Contains(r.body, "bo@example.com") {
		t.Errorf("console channel filter: got %d\n%s", r.status, r.body)
	}

	// The console edits a form's channels and a topic's frequencies, and
	// saving one without touching them keeps them.
	if r := s.consolePost(cookie, "/admin/forms/newsletter", url.Values{"topics": {"news", "offers"}, "locale": {"en"},
		"channels": {"sms", "post"}}); r.status != http.StatusSeeOther {
		t.Fatalf("console form save: got %d\n%s", r.status, r.body)
	}
	s.adminJSON("GET", "/forms/newsletter", "", http.StatusOK, &form)
	if !slices.Equal(form.Channels, []string{"sms", "post"}) {
		t.Errorf("form channels after a console save: got %v", form.Channels)
	}
	if r := s.consoleGet(cookie, "/admin/forms/newsletter"); !strings.Contains(r.body, `value="sms" checked`) || strings.Contains(r.body, `value="phone" checked`) {
		t.Errorf("console form page does not show the channels offered")
	}
	if r := s.consolePost(cookie, "/admin/topics/offers", url.Values{"name": {"Offers"}, "frequencies": {"weekly", "monthly"}}); r.status != http.StatusSeeOther {
		t.Fatalf("console topic save: got %d\n%s", r.status, r.body)
	}
	if r := s.adminAs(testAdminKey, "GET", "/topics", "", ""); !strings.Contains(r.body, `"frequencies":["weekly","monthly"]`) {
		t.Errorf("topic frequencies after a console save: got %s", r.body)
	}

	// The preference page.
	pref, _ := s.manageLink("ann@example.com")
	pp := s.do("GET", pref, "", "")
	pp.body = html.UnescapeString(pp.body)
	for _, want := range []string{`value="news:sms" checked`, `value="offers:post" checked`, `value="offers:sms"`,
		`value="+46701234567"`, "Storgatan 1\n111 22 Stockholm", `name="frequency.offers"`, "Every three months"} {
		if want == "Every three months" {
			if strings.Contains(pp.body, want) {
				t.Errorf("preference page offers a frequency the topic does not")
			}
			continue
		}
		if !strings.Contains(pp.body, want) {
			t.Errorf("preference page lacks %q", want)
		}
	}
	if strings.Contains(pp.body, "news:post") || strings.Contains(pp.body, "news:phone") {
		t.Error("preference page offers a channel neither configured nor held")
	}
	form2 := func(extra url.Values) string {
		v := url.Values{"topics": {"news", "offers"}, "channels": {"offers:sms", "offers:post"}, "phone": {"+46 70 999 99 99"},
			"postal_address": {"Storgatan 1\n111 22 Stockholm"}, "frequency.offers": {"monthly"}}
		for k, vs := range extra {
			v[k] = vs
		}
		return v.Encode()
	}
	before := len(s.channelEvents(ann.ID, "channel_consented", "channel_withdrawn", "frequency_chosen", "rectified"))
	for name, tc := range map[string]struct {
		extra url.Values
		want  string
	}{
		"a frequency not offered": {url.Values{"frequency.offers": {"daily"}}, "frequencies offered"},
		"a channel not offered":   {url.Values{"channels": {"news:phone"}}, "not offered here"},
		"sms without a number":    {url.Values{"phone": {""}}, "international form"},
	} {
		r := s.do("POST", pref, "application/x-www-form-urlencoded", form2(tc.extra))
		if r.status != http.StatusBadRequest || !strings.Contains(html.UnescapeString(r.body), tc.want) {
			t.Errorf("preferences, %s: got %d, want 400 saying %q", name, r.status, tc.want)
		}
		if tc.extra.Get("channels") == "" && !strings.Contains(r.body, `value="offers:sms" checked`) {
			t.Errorf("preferences, %s: the refused page lost the boxes ticked", name)
		}
	}
	if n := len(s.channelEvents(ann.ID, "channel_consented", "channel_withdrawn", "frequency_chosen", "rectified")); n != before {
		t.Errorf("refused preference changes added %d events", n-before)
	}
	if r := s.do("POST", pref, "application/x-www-form-urlencoded", form2(nil)); r.status != http.StatusOK ||
		!strings.Contains(r.body, "Your choices are saved") || !strings.Contains(r.body, `value="offers:sms" checked`) {
		t.Fatalf("preferences save: got %d\n%s", r.status, r.body)
	}
	var types []string
	for _, e := range s.channelEvents(ann.ID, "channel_consented", "channel_withdrawn", "frequency_chosen", "rectified")[before:] {
		types = append(types, e.Type+" "+e.Channel+e.Frequency+e.Field+" "+strings.Join(e.Topics, ","))
		if e.Source != "preferences" || e.Personal == nil || e.Personal.IP == "" {
			t.Errorf("%s event: source %q personal %+v", e.Type, e.Source, e.Personal)
		}
	}
	if want := []string{"channel_consented sms offers", "channel_withdrawn sms news", "frequency_chosen monthly offers", "rectified phone "}; !slices.Equal(types, want) {
		t.Errorf("preference events: got %q, want %q", types, want)
	}

	// The export the shop's SMS tool reads.
	ex := s.adminAs(testAdminKey, "GET", "/exports/subscribers?format=csv&channel=sms", "", "")
	rows, err := csv.NewReader(strings.NewReader(ex.body)).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("CSV export: %v\n%s", err, ex.body)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	var offers []string
	for _, row := range rows[1:] {
		if row[col["topic"]] == "offers" {
			offers = row
		}
	}
	if offers == nil || offers[col["email"]] != "ann@example.com" || offers[col["phone"]] != "+46709999999" ||
		offers[col["channels"]] != "sms post" || offers[col["frequency"]] != "monthly" || offers[col["postal_address"]] != "Storgatan 1\n111 22 Stockholm" {
		t.Errorf("CSV export row for offers: got %v (header %v)", offers, rows[0])
	}
	nd := s.adminAs(testAdminKey, "GET", "/exports/subscribers?format=ndjson&channel=sms", "", "")
	var rec struct {
		Email, Phone  string
		Subscriptions []struct {
			Topic     string
			Channels  []string
			Frequency string
		}
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(nd.body)), &rec); err != nil || rec.Phone != "+46709999999" || len(rec.Subscriptions) != 2 ||
		!slices.Equal(rec.Subscriptions[1].Channels, []string{"sms", "post"}) {
		t.Errorf("NDJSON export: got %+v, %v\n%s", rec, err, nd.body)
	}
	own := s.do("GET", pref+"/export", "", "")
	if !strings.Contains(own.body, `"optin.export/v4"`) || !strings.Contains(own.body, `"phone": "+46709999999"`) ||
		!strings.Contains(own.body, `"channel_consented"`) {
		t.Errorf("person's export lacks the channels:\n%s", own.body)
	}

	// Erasure: nothing left to text.
	s.adminJSON("DELETE", "/subscribers/"+ann.ID, "", http.StatusNoContent, nil)
	if got := s.listed("channel=sms"); len(got) != 0 {
		t.Errorf("channel=sms after erasure: got %v", got)
	}
	if _, ok := s.subscriber("ann@example.com"); ok {
		t.Error("the person is still there after erasure")
	}
}
