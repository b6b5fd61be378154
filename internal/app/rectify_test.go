package app

import (
	"net/http"
	"net/url"
	"optin/internal/config"
	"regexp"
	"strings"
	"testing"
	"time"
)

var confirmRE = regexp.MustCompile(`http://127\.0\.0\.1:\d+/confirm/[A-Za-z0-9._-]+`)

// TestRectification walks GDPR Art. 16 end to end, through real mail: an
// operator corrects a name with PATCH; a new address gets a confirmation
// mail and replaces the old one only once its link is pressed, after which
// the old address is told; the person corrects their own name on the
// preference page, which shows the address it manages. Each change is a
// rectified ledger event.
func TestRectification(t *testing.T) {
	s := startService(t, nil)
	s.signupJSON("ann@example.com", "news")
	confirm, _ := links(t, parseMail(t, s.waitMails(1)[0].Data).text)
	if r := s.do("POST", confirm, "", ""); r.status != http.StatusOK {
		t.Fatalf("confirm: got %d", r.status)
	}
	ann, _ := s.subscriber("ann@example.com")

	var patched struct {
		Name           string
		Email          string
		AddressPending bool `json:"address_pending"`
	}
	s.adminJSON("PATCH", "/subscribers/"+ann.ID, `{"name":"Ann Smith"}`, http.StatusOK, &patched)
	if patched.Name != "Ann Smith" || patched.AddressPending {
		t.Errorf("PATCH name: got %+v", patched)
	}
	s.adminJSON("PATCH", "/subscribers/"+ann.ID, `{}`, http.StatusBadRequest, nil)
	s.adminJSON("PATCH", "/subscribers/"+ann.ID, `{"email":"not an address"}`, http.StatusBadRequest, nil)
	s.adminJSON("PATCH", "/subscribers/"+ann.ID, `{"name":"a\u202eb"}`, http.StatusBadRequest, nil)
	s.adminJSON("PATCH", "/subscribers/nope", `{"name":"X"}`, http.StatusNotFound, nil)

	s.adminJSON("PATCH", "/subscribers/"+ann.ID, `{"email":"ann.smith@example.org"}`, http.StatusOK, &patched)
	if !patched.AddressPending || patched.Email != "ann@example.com" {
		t.Fatalf("PATCH email: got %+v, want the old address until the new one confirms", patched)
	}
	m := parseMail(t, s.waitMails(2)[1].Data)
	if to := m.header.Get("To"); !strings.Contains(to, "ann.smith@example.org") {
		t.Fatalf("address-change mail went to %q", to)
	}
	link := confirmRE.FindString(m.text)
	if link == "" {
		t.Fatalf("no confirm link in:\n%s", m.text)
	}
	if r := s.do("GET", link, "", ""); r.status != http.StatusOK || !strings.Contains(r.body, "new email address") {
		t.Errorf("GET the address-change link: got %d %s", r.status, r.body)
	}
	if _, ok := s.subscriber("ann.smith@example.org"); ok {
		t.Fatal("the new address replaced the old one before it confirmed")
	}
	if r := s.do("POST", link, "", ""); r.status != http.StatusOK || !strings.Contains(r.body, "new address is confirmed") {
		t.Fatalf("POST the address-change link: got %d %s", r.status, r.body)
	}
	if got, ok := s.subscriber("ann.smith@example.org"); !ok || got.ID != ann.ID {
		t.Fatalf("after confirming: got %+v, %v, want ann under the new address", got, ok)
	}
	if _, ok := s.subscriber("ann@example.com"); ok {
		t.Error("the old address still finds the subscriber")
	}
	notice := parseMail(t, s.waitMails(3)[2].Data)
	if to := notice.header.Get("To"); !strings.Contains(to, "ann@example.com") || !strings.Contains(notice.text, "ann.smith@example.org") {
		t.Errorf("notice to the old address: To %q, text:\n%s", to, notice.text)
	}

	pref, _ := s.manageLink("ann.smith@example.org")
	if r := s.do("GET", pref, "", ""); !strings.Contains(r.body, "ann.smith@example.org") || !strings.Contains(r.body, `value="Ann Smith"`) {
		t.Errorf("preference page: want the managed address and the name, got\n%s", r.body)
	}
	form := url.Values{"action": {"rectify"}, "name": {"Ann Smith-Jones"}}.Encode()
	if r := s.do("POST", pref, "application/x-www-form-urlencoded", form); r.status != http.StatusOK || !strings.Contains(r.body, "Your details are saved") {
		t.Fatalf("preference page rectify: got %d %s", r.status, r.body)
	}
	if got, _ := s.subscriber("ann.smith@example.org"); got.Name != "Ann Smith-Jones" {
		t.Errorf("name after the person's correction: got %q", got.Name)
	}
	var fields []string
	for _, ev := range s.events(ann.ID) {
		if ev.Type == "rectified" {
			fields = append(fields, ev.Field+" "+ev.Source)
		}
	}
	if want := "name admin:bootstrap,email admin:bootstrap,name preferences"; strings.Join(fields, ",") != want {
		t.Errorf("rectified events: got %q, want %q", strings.Join(fields, ","), want)
	}

	// The person moves to a new address from the preference page: it is
	// confirmed from the new mailbox before it replaces the old one, and
	// the old one is told.
	before := s.smtp.Count()
	form = url.Values{"action": {"rectify"}, "name": {"Ann Smith-Jones"}, "email": {"ann@example.net"}}.Encode()
	if r := s.do("POST", pref, "application/x-www-form-urlencoded", form); r.status != http.StatusOK || !strings.Contains(r.body, "ann@example.net") {
		t.Fatalf("preference page address change: got %d %s", r.status, r.body)
	}
	if _, ok := s.subscriber("ann@example.net"); ok {
		t.Fatal("the new address replaced the old one before it confirmed")
	}
	m = parseMail(t, s.waitMails(before + 1)[before].Data)
	if to := m.header.Get("To"); !strings.Contains(to, "ann@example.net") {
		t.Fatalf("address-change mail went to %q", to)
	}
	if r := s.do("POST", confirmRE.FindString(m.text), "", ""); r.status != http.StatusOK {
		t.Fatalf("POST the address-change link: got %d", r.status)
	}
	if got, ok := s.subscriber("ann@example.net"); !ok || got.ID != ann.ID {
		t.Fatalf("after confirming: got %+v, %v, want ann under the address she chose", got, ok)
	}
	notice = parseMail(t, s.waitMails(before + 2)[before+1].Data)
	if to := notice.header.Get("To"); !strings.Contains(to, "ann.smith@example.org") {
		t.Errorf("notice to the old address went to %q", to)
	}
	evs := s.events(ann.ID)
	if last := evs[len(evs)-1]; last.Type != "rectified" || last.Field != "email" || last.Source != "preferences" {
		t.Errorf("last event: %s %s from %s, want the email rectified from the preference page", last.Type, last.Field, last.Source)
	}
}

// TestPreferenceLinkAndNewTopic: an operator mints a preference link for
// one subscriber (audited); the page it opens names the address, offers
// every topic with its description, and ticking a topic the person did
// not have is a confirmed consent recorded with the page's wording.
func TestPreferenceLinkAndNewTopic(t *testing.T) {
	s := startService(t, nil)
	s.adminJSON("POST", "/topics", `{"id":"offers","name":"Offers","description":"Seasonal discounts, monthly"}`, http.StatusCreated, nil)
	s.signupJSON("pat@example.com", "news")
	confirm, _ := links(t, parseMail(t, s.waitMails(1)[0].Data).text)
	s.do("POST", confirm, "", "")
	pat, _ := s.subscriber("pat@example.com")

	var link struct {
		URL     string
		Expires string
	}
	s.adminJSON("POST", "/subscribers/"+pat.ID+"/preference-link", "", http.StatusCreated, &link)
	if !strings.Contains(link.URL, "/preferences/") || link.Expires == "" {
		t.Fatalf("minted link: got %+v", link)
	}
	var audit struct {
		Items []struct{ Action, Target string }
	}
	s.adminJSON("GET", "/audit", "", http.StatusOK, &audit)
	found := false
	for _, e := range audit.Items {
		found = found || (e.Action == "subscriber.preference_link" && e.Target == pat.ID)
	}
	if !found {
		t.Errorf("minting is not in the audit log: %+v", audit.Items)
	}

	page := s.do("GET", link.URL, "", "")
	for _, want := range []string{"pat@example.com", `value="offers"`, "Seasonal discounts, monthly"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("preference page lacks %q:\n%s", want, page.body)
		}
	}
	form := url.Values{"topics": {"news", "offers"}}.Encode()
	if r := s.do("POST", link.URL, "application/x-www-form-urlencoded", form); r.status != http.StatusOK {
		t.Fatalf("save: got %d %s", r.status, r.body)
	}
	pat, _ = s.subscriber("pat@example.com")
	if st := pat.Subscriptions["offers"]; st.Status != "confirmed" || st.Basis != "consent" {
		t.Errorf("offers after ticking it: got %+v, want confirmed on consent", st)
	}
	evs := s.events(pat.ID)
	last := evs[len(evs)-1]
	if last.Type != "preferences_updated" || strings.Join(last.Topics, ",") != "offers" || last.Wording == "" {
		t.Errorf("the added topic's event: got %+v, want preferences_updated for offers citing the page's wording", last)
	}
	if r := s.do("POST", link.URL, "application/x-www-form-urlencoded", url.Values{"topics": {"nope"}}.Encode()); r.status != http.StatusBadRequest {
		t.Errorf("ticking a topic that does not exist: got %d, want 400", r.status)
	}
}

// TestPrivacyStatesRetentionBasisAccess: the privacy page states the
// configured retention for each case, the bases besides consent and who
// has access; the preference page names each subscription's own basis, so
// a soft-opt-in customer is not told it rests on their consent.
func TestPrivacyStatesRetentionBasisAccess(t *testing.T) {
	s := startService(t, func(c *config.Config) {
		c.Retention.OptedOut = config.Duration(45 * 24 * time.Hour)
		c.Pending.Retention = config.Duration(3 * 24 * time.Hour)
	})
	page := s.do("GET", "/privacy", "", "")
	for _, want := range []string{
		// retention, case by case
		"deleted 3 days after its link expires", "or are our customer and have not objected", "deleted 45 days later",
		"it is deleted at once",
		// the basis, case by case, and what is noted for each
		"your consent (GDPR Art. 6(1)(a))", "soft opt-in", "business card", "where your address came from",
		"bought, booked, asked us something or signed in",
		// who has access: the roles and the mail services as processors
		"administrators", "marketers", "viewers may only read", "processors, GDPR Art. 28"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("privacy page lacks %q", want)
		}
	}
	if strings.Contains(page.body, "share your data") || strings.Contains(page.body, "only about the topics you ticked") {
		t.Error("privacy page says the data is not shared, while processors get it, or that every topic was ticked, while a customer's was not")
	}
	for loc, want := range map[string][]string{
		"it": {"responsabili del trattamento", "biglietto da visita", "amministratori", "vengono cancellati subito"},
		"sv": {"personuppgiftsbiträden", "visitkort", "administratörer", "raderas de direkt"}} {
		body := s.do("GET", "/privacy?locale="+loc, "", "").body
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("privacy page in %s lacks %q", loc, w)
			}
		}
	}
	s.importCSV("email,topics,basis,last_purchase_at\ncustomer@example.com,news,soft_opt_in,2025-01-02\n")
	pref, _ := s.manageLink("customer@example.com")
	body := s.do("GET", pref, "", "").body
	if !strings.Contains(body, "as our customer") || strings.Contains(body, "your consent") {
		t.Errorf("preference page of a soft-opt-in customer: want the customer basis and no claim of consent:\n%s", body)
	}
	if !strings.Contains(body, `href="/privacy?locale=en"`) {
		t.Error("preference page: no link to the privacy notice, which explains the basis it shows")
	}
}

// TestEraseAsksOnItsOwnPage: the preference page links to erasure instead
// of erasing from a button beside "Save"; the erase page changes nothing
// on GET and asks for a confirmation whose POST erases.
func TestEraseAsksOnItsOwnPage(t *testing.T) {
	s := startService(t, nil)
	s.signupJSON("era@example.com", "news")
	confirm, _ := links(t, parseMail(t, s.waitMails(1)[0].Data).text)
	s.do("POST", confirm, "", "")
	pref, _ := s.manageLink("era@example.com")
	page := s.do("GET", pref, "", "").body
	if strings.Contains(page, `action="`+strings.TrimPrefix(pref, s.url)+`/erase"`) || !strings.Contains(page, `href="`+strings.TrimPrefix(pref, s.url)+`/erase"`) {
		t.Errorf("preference page: want a link to the erase page, not an erase button:\n%s", page)
	}
	ask := s.do("GET", pref+"/erase", "", "")
	if ask.status != http.StatusOK || !strings.Contains(ask.body, "Yes, erase all my data") || !strings.Contains(ask.body, `class="danger"`) {
		t.Fatalf("erase page: got %d\n%s", ask.status, ask.body)
	}
	if _, ok := s.subscriber("era@example.com"); !ok {
		t.Fatal("GET on the erase page erased")
	}
	if r := s.do("POST", pref+"/erase", "", ""); r.status != http.StatusOK {
		t.Fatalf("erase: got %d", r.status)
	}
	if _, ok := s.subscriber("era@example.com"); ok {
		t.Error("still there after confirming the erasure")
	}
	if r := s.do("GET", pref+"/erase", "", ""); r.status != http.StatusGone {
		t.Errorf("erase page after the erasure: got %d, want 410", r.status)
	}
}
