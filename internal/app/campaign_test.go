package app

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"optin/internal/config"
	"optin/internal/consent"
)

const testPostal = "Shop Ltd, Via Roma 1, 00100 Roma, Italy"

// withPostal configures the sender's postal address, which campaigns need.
func withPostal(c *config.Config) { c.Mail.PostalAddress = testPostal }

// campaignOut is a campaign as GET /campaigns/{id} shows it.
type campaignOut struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Walked bool   `json:"walked"`
	Cursor string `json:"cursor"`
	Counts struct {
		Targeted     int            `json:"targeted"`
		Excluded     map[string]int `json:"excluded"`
		Sent         int            `json:"sent"`
		Reminded     int            `json:"reminded"`
		Reconfirmed  int            `json:"reconfirmed"`
		Unsubscribed int            `json:"unsubscribed"`
		Lapsed       int            `json:"lapsed"`
		Dropped      int            `json:"dropped"`
		Withheld     int            `json:"withheld"`
	} `json:"counts"`
}

// importConsented imports addrs as confirmed news subscribers with
// consent evidence (an imported ledger event), sending no mail.
func (s *service) importConsented(addrs ...string) {
	s.t.Helper()
	csv := "email,topics,basis,consented_at,source\n"
	for _, a := range addrs {
		csv += a + ",news,consent,2020-01-01,shop checkout\n"
	}
	if rep := s.importCSV(csv); rep.Imported != len(addrs) {
		s.t.Fatalf("import: got %+v", rep)
	}
}

// newCampaign creates a campaign about news with the given extra JSON
// fields and returns its id.
func (s *service) newCampaign(extra string) string {
	s.t.Helper()
	body := `{"name":"Wake up","topic":"news",` +
		`"templates":{"en":{"subject":"Still with us, {{name}}?","body":"Hello {{name}},\n\nwe have not heard from you about {{topic}} <b>for a while</b>."}}`
	if extra != "" {
		body += "," + extra
	}
	var c campaignOut
	s.adminJSON("POST", "/campaigns", body+"}", http.StatusCreated, &c)
	if c.State != "draft" || c.ID == "" {
		s.t.Fatalf("created campaign: %+v", c)
	}
	return c.ID
}

func (s *service) campaign(id string) campaignOut {
	s.t.Helper()
	var c campaignOut
	s.adminJSON("GET", "/campaigns/"+id, "", http.StatusOK, &c)
	return c
}

// waitCampaign polls the campaign until cond holds.
func (s *service) waitCampaign(id string, what string, cond func(campaignOut) bool) campaignOut {
	s.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		c := s.campaign(id)
		if cond(c) {
			return c
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("campaign never got %s: %+v", what, c)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// audienceList reads campaign id's audience list for only, limit at a
// time, and returns the entries by address.
func (s *service) audienceList(id, only string, limit int) map[string]consent.AudienceEntry {
	s.t.Helper()
	all := map[string]consent.AudienceEntry{}
	cursor := ""
	for range 50 {
		var page consent.AudiencePage
		s.adminJSON("GET", fmt.Sprintf("/campaigns/%s/audience?only=%s&limit=%d&cursor=%s", id, only, limit, cursor), "", http.StatusOK, &page)
		if len(page.Items) > limit {
			s.t.Fatalf("audience page of %d entries, limit %d", len(page.Items), limit)
		}
		for _, e := range page.Items {
			all[e.Email] = e
		}
		if cursor = page.NextCursor; cursor == "" {
			return all
		}
	}
	s.t.Fatalf("audience list: no last page")
	return nil
}

// mailsTo counts the mails received per recipient.
func (s *service) mailsTo() map[string]int {
	n := map[string]int{}
	for _, m := range s.smtp.Messages() {
		for _, to := range m.To {
			n[to]++
		}
	}
	return n
}

var keepRE = regexp.MustCompile(`http://127\.0\.0\.1:\d+/reawaken/[A-Za-z0-9._-]+`)

// TestCampaignAudienceAndMail builds every kind of contact, previews the
// campaign, runs it and checks who got mail and what the mail holds: it
// is marketing in every respect (CASL s. 1(3); the ICO's Honda and Flybe
// decisions).
func TestCampaignAudienceAndMail(t *testing.T) {
	s := startService(t, withPostal)
	s.importConsented("ok1@example.com", "ok2@example.com", "unsub@example.com", "supp@example.com", "gone@example.com")
	day := func(years, months int) string { return s.clock.Now().AddDate(years, months, 0).Format("2006-01-02") }
	rep := s.importCSV("email,topics,basis,consented_at,source,last_purchase_at\n" +
		"soft@example.com,news,soft_opt_in,,," + day(0, -18) + "\n" +
		"softold@example.com,news,soft_opt_in,,," + day(-3, 0) + "\n" +
		"li@example.com,news,legitimate_interest,,,\n" +
		"noproof@example.com,news,consent,,,\n" +
		"active@example.com,news,consent,2020-01-01,shop checkout," + day(0, -1) + "\n" +
		"fresh@example.com,news,consent," + day(0, -2) + ",shop checkout,\n")
	if rep.Imported != 6 || rep.Pending != 1 {
		t.Fatalf("import: %+v", rep)
	}
	unsub, _ := s.subscriber("unsub@example.com")
	if r := s.do("POST", s.unsubscribeURL(unsub.ID, "news"), "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click"); r.status != http.StatusOK {
		t.Fatalf("unsubscribe: %d", r.status)
	}
	s.adminJSON("POST", "/suppressions", `{"email":"supp@example.com","topic":"news","note":"complaint"}`, http.StatusCreated, nil)
	gone, _ := s.subscriber("gone@example.com")
	s.adminJSON("DELETE", "/subscribers/"+gone.ID, "", http.StatusNoContent, nil)
	// The double opt-in of noproof@, and the information notices (GDPR
	// Art. 14) of soft@, softold@ and li@, who were imported.
	s.waitMails(4)
	s.waitOutboxEmpty()

	id := s.newCampaign("")
	var pv struct {
		Audience int            `json:"audience"`
		Excluded map[string]int `json:"excluded"`
	}
	s.adminJSON("POST", "/campaigns/"+id+"/preview", "", http.StatusOK, &pv)
	// Without a filter only dormant contacts: not the customer who bought
	// last month, nor the one who consented two months ago (a cool-down
	// of lifecycle.dormant_after).
	want := map[string]int{"pending": 1, "unsubscribed": 1, "suppressed": 1, "no_basis": 1, "soft_opt_in_expired": 1,
		"lapsed": 0, "already_asked": 0, "filtered": 0, "not_dormant": 1, "confirmed_recently": 1}
	if pv.Audience != 3 {
		t.Errorf("preview audience: got %d, want 3 (%+v)", pv.Audience, pv)
	}
	for k, v := range want {
		if pv.Excluded[k] != v {
			t.Errorf("preview excluded[%s]: got %d, want %d", k, pv.Excluded[k], v)
		}
	}
	if got := s.smtp.Count(); got != 4 {
		t.Errorf("preview sent mail: %d mails, want 4", got)
	}

	// The same audience, person by person and page by page, with the
	// reason for each one left out.
	out := s.audienceList(id, "out", 3)
	for addr, reason := range map[string]string{"fresh@example.com": "confirmed_recently", "active@example.com": "not_dormant",
		"li@example.com": "no_basis", "noproof@example.com": "pending", "unsub@example.com": "unsubscribed"} {
		if e, ok := out[addr]; !ok || e.In || e.Reason != reason {
			t.Errorf("audience list: %s is %+v, want out as %s", addr, e, reason)
		}
	}
	if in := s.audienceList(id, "in", 50); len(in) != 3 || !in["ok1@example.com"].In || !in["soft@example.com"].In {
		t.Errorf("audience list, only in: got %+v, want ok1@, ok2@ and soft@", in)
	}
	if r := s.adminAs(testAdminKey, "GET", "/campaigns/"+id+"/audience?only=maybe", "", ""); r.status != http.StatusBadRequest {
		t.Errorf("audience list with an unknown only: got %d, want 400", r.status)
	}

	// A filter can only narrow: dormant customers only leaves the soft
	// opt-in; the rule's cool-down holds whatever the filter.
	narrow := s.newCampaign(`"audience":{"lifecycle":["dormant"]}`)
	s.adminJSON("POST", "/campaigns/"+narrow+"/preview", "", http.StatusOK, &pv)
	if pv.Audience != 1 || pv.Excluded["filtered"] != 3 || pv.Excluded["pending"] != 1 || pv.Excluded["confirmed_recently"] != 1 {
		t.Errorf("narrowed preview: got %+v, want audience 1, filtered 3, confirmed_recently 1", pv)
	}
	// The marketer may choose active customers with a filter.
	customers := s.newCampaign(`"audience":{"lifecycle":["customer"]}`)
	s.adminJSON("POST", "/campaigns/"+customers+"/preview", "", http.StatusOK, &pv)
	if pv.Audience != 1 || pv.Excluded["not_dormant"] != 0 {
		t.Errorf("customer preview: got %+v, want audience 1 (active@)", pv)
	}

	s.adminJSON("POST", "/campaigns/"+id+"/start", "", http.StatusOK, nil)
	c := s.waitCampaign(id, "done", func(c campaignOut) bool { return c.State == "done" })
	if c.Counts.Targeted != 3 || c.Counts.Sent != 3 || c.Cursor != "" {
		t.Errorf("counts: got %+v, want 3 targeted and sent, no cursor shown", c.Counts)
	}
	s.waitMails(7)
	got := s.mailsTo()
	// soft@, softold@ and li@ have their information notice besides.
	for a, n := range map[string]int{"ok1@example.com": 1, "ok2@example.com": 1, "soft@example.com": 2, "softold@example.com": 1, "li@example.com": 1} {
		if got[a] != n {
			t.Errorf("mails to %s: got %d, want %d", a, got[a], n)
		}
	}
	for _, a := range []string{"unsub@example.com", "supp@example.com", "gone@example.com", "active@example.com", "fresh@example.com"} {
		if got[a] != 0 {
			t.Errorf("mails to %s: got %d, want 0", a, got[a])
		}
	}
	if got["noproof@example.com"] != 1 {
		t.Errorf("pending contact got %d mails, want only its confirmation", got["noproof@example.com"])
	}

	h, text, html := mailParts(t, s.mailTo("ok1@example.com").Data)
	ok1, _ := s.subscriber("ok1@example.com")
	unsubURL := strings.Trim(h.Get("List-Unsubscribe"), "<>")
	checks := []struct {
		name string
		ok   bool
	}{
		{"subject with placeholder filled", decodeHeader(t, h.Get("Subject")) == "Still with us, there?"},
		{"List-Unsubscribe https/http URL for the topic", strings.Contains(unsubURL, "/unsubscribe/")},
		{"List-Unsubscribe-Post", h.Get("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"},
		{"List-Id of the topic", h.Get("List-Id") == "<news.optin.example.com>"},
		{"visible unsubscribe link", strings.Contains(text, unsubURL) && strings.Contains(html, unsubURL)},
		{"postal address in text and HTML", strings.Contains(text, testPostal) && strings.Contains(html, testPostal)},
		{"keep link", keepRE.MatchString(text)},
		{"a preference link beside the unsubscribe link", prefRE.MatchString(text) && strings.Contains(html, "/preferences/")},
		{"link texts without a trailing colon", !strings.Contains(html, ":</a>")},
		{"body text as written", strings.Contains(text, "about Product news <b>for a while</b>.")},
		{"body escaped in HTML", strings.Contains(html, "&lt;b&gt;for a while&lt;/b&gt;") && !strings.Contains(html, "<b>")},
		{"no address in the links", !strings.Contains(unsubURL, "ok1") && !strings.Contains(keepRE.FindString(text), "ok1")},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: failed\nheader %v\ntext:\n%s\nhtml:\n%s", c.name, h, text, html)
		}
	}
	// The mail fits the person's basis: the consenting subscriber
	// subscribed; the soft opt-in customer never did, by mail or page.
	if !strings.Contains(text, "because you subscribed to Product news") || !strings.Contains(html, "Yes, keep me subscribed") {
		t.Errorf("the consenting subscriber's mail does not say they subscribed:\n%s", text)
	}
	var softMail []byte // the reawaken mail, not the information notice
	for _, m := range s.smtp.Messages() {
		if _, text, _ := mailParts(t, m.Data); m.To[0] == "soft@example.com" && keepRE.MatchString(text) {
			softMail = m.Data
		}
	}
	_, softText, softHTML := mailParts(t, softMail)
	if strings.Contains(softText+softHTML, "subscribe to") || strings.Contains(softText+softHTML, "subscribed") ||
		!strings.Contains(softText, "because you bought from") || !strings.Contains(softHTML, "Yes, keep sending me these emails") {
		t.Errorf("the soft opt-in customer's mail speaks of a subscription:\n%s\n%s", softText, softHTML)
	}
	if r := s.do("GET", keepRE.FindString(softText), "", ""); r.status != http.StatusOK || !strings.Contains(r.body, "Keep receiving these emails") ||
		strings.Contains(r.body, "keep me subscribed") {
		t.Errorf("the soft opt-in customer's keep page: %d\n%s", r.status, r.body)
	}
	// The header's one-click URL withdraws that topic.
	if r := s.do("POST", unsubURL, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click"); r.status != http.StatusOK {
		t.Fatalf("one-click: %d", r.status)
	}
	if sub, _ := s.subscriber("ok1@example.com"); sub.Subscriptions["news"].Status != "unsubscribed" || sub.ID != ok1.ID {
		t.Errorf("after one-click: %+v", sub)
	}
	// The campaign counts the answer at once, weeks before its deadline.
	if c := s.campaign(id); c.Counts.Unsubscribed != 1 {
		t.Errorf("campaign counts right after the one-click: %+v, want 1 unsubscribed", c.Counts)
	}
	// A second campaign asks nobody again in this cycle.
	again := s.newCampaign("")
	s.adminJSON("POST", "/campaigns/"+again+"/preview", "", http.StatusOK, &pv)
	if pv.Audience != 0 || pv.Excluded["already_asked"] != 2 || pv.Excluded["unsubscribed"] != 2 {
		t.Errorf("second campaign preview: got %+v, want audience 0, already_asked 2, unsubscribed 2", pv)
	}
}

// TestCampaignNeedsPostalAddress: no campaign starts without the
// sender's postal address (CAN-SPAM, 15 U.S.C. 7704(a)(5)(A)(iii)); roles
// and validation.
func TestCampaignNeedsPostalAddress(t *testing.T) {
	s := startService(t, nil)
	s.importConsented("a@example.com")
	id := s.newCampaign("")
	r := s.adminAs(testAdminKey, "POST", "/campaigns/"+id+"/start", "", "")
	if r.status != http.StatusConflict || !strings.Contains(r.body, "postal_address") {
		t.Errorf("start without postal address: got %d %s, want 409 naming mail.postal_address", r.status, r.body)
	}
	if c := s.campaign(id); c.State != "draft" {
		t.Errorf("state: got %s, want draft", c.State)
	}
	marketer, viewer := s.newKey("m", consent.RoleMarketer), s.newKey("v", consent.RoleViewer)
	body := `{"name":"x","topic":"news","templates":{"en":{"subject":"s","body":"b"}}}`
	if r := s.adminAs(marketer, "POST", "/campaigns", "application/json", body); r.status != http.StatusCreated {
		t.Errorf("marketer create: got %d", r.status)
	}
	for _, p := range []string{"/campaigns", "/campaigns/" + id + "/preview", "/campaigns/" + id + "/start", "/campaigns/" + id + "/pause"} {
		if r := s.adminAs(viewer, "POST", p, "application/json", body); r.status != http.StatusForbidden {
			t.Errorf("viewer POST %s: got %d, want 403", p, r.status)
		}
	}
	if r := s.adminAs(viewer, "GET", "/campaigns/"+id, "", ""); r.status != http.StatusOK {
		t.Errorf("viewer GET: got %d", r.status)
	}
	for _, bad := range []string{
		`{"name":"x","topic":"nope","templates":{"en":{"subject":"s","body":"b"}}}`,
		`{"name":"x","topic":"news","templates":{"en":{"subject":"s","body":"b"}},"rate":100000}`,
		`{"name":"x","topic":"news","templates":{"en":{"subject":"s","body":"{{.Email}}"}}}`,
		`{"name":"x","topic":"news","templates":{"en":{"subject":"s","body":"b"}},"audience":{"topics":["nope"]}}`,
		`{"name":"x","topic":"news","templates":{"en":{"subject":"s","body":"b"}},"unknown":1}`,
	} {
		if r := s.adminAs(marketer, "POST", "/campaigns", "application/json", bad); r.status != http.StatusBadRequest {
			t.Errorf("create %s: got %d %s, want 400", bad, r.status, r.body)
		}
	}
	if r := s.adminAs(marketer, "GET", "/campaigns/nope", "", ""); r.status != http.StatusNotFound {
		t.Errorf("unknown campaign: got %d", r.status)
	}
	var audit struct {
		Items []struct{ Action, Key string }
	}
	s.adminJSON("GET", "/audit", "", http.StatusOK, &audit)
	if len(audit.Items) == 0 || audit.Items[0].Action != "campaign.create" || audit.Items[0].Key != "m" {
		t.Errorf("audit: newest entry %+v, want campaign.create by m", audit.Items)
	}
	if got := s.smtp.Count(); got != 0 {
		t.Errorf("mails: got %d, want 0", got)
	}
}

// campaignUnderWay imports 12 subscribers and starts a campaign to them
// at 3 mails a second; it returns once 3 were sent, with the campaign's
// id and the recipients.
func (s *service) campaignUnderWay() (string, []string) {
	s.t.Helper()
	var addrs []string
	for i := range 12 {
		addrs = append(addrs, fmt.Sprintf("r%02d@example.com", i))
	}
	s.importConsented(addrs...)
	id := s.newCampaign(`"rate":3`)
	s.adminJSON("POST", "/campaigns/"+id+"/start", "", http.StatusOK, nil)
	s.waitCampaign(id, "some mail sent", func(c campaignOut) bool { return c.Counts.Sent >= 3 })
	return id, addrs
}

// TestCampaignRestartExactlyOnce stops the service in the middle of a
// campaign and starts a new one on the same data: every recipient gets
// exactly one mail.
func TestCampaignRestartExactlyOnce(t *testing.T) {
	s := startService(t, withPostal)
	id, addrs := s.campaignUnderWay()
	s.shutdown()
	mid, err := func() (*consent.Campaign, error) {
		db, err := OpenStore(s.app.cfg)
		if err != nil {
			return nil, err
		}
		defer db.Close()
		return db.Campaign(context.Background(), id)
	}()
	if err != nil {
		t.Fatal(err)
	}
	if mid.Counts.Targeted >= len(addrs) || mid.State != consent.CampaignRunning {
		t.Fatalf("stopped too late to test a resume: %+v", mid.Counts)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, err := Open(Options{Config: s.app.cfg, BootstrapKey: testAdminKey, Now: s.clock.Now, CampaignTick: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	a.Worker.Poll = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	deadline := time.Now().Add(patience)
	for {
		c, err := a.DB.Campaign(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if c.State == consent.CampaignDone {
			if c.Counts.Targeted != len(addrs) || c.Counts.Sent != len(addrs) {
				t.Errorf("counts after resume: %+v", c.Counts)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign not done after restart: %+v", c)
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := s.mailsTo()
	for _, addr := range addrs {
		if got[addr] != 1 {
			t.Errorf("mails to %s: got %d, want exactly 1", addr, got[addr])
		}
	}
	if n := s.smtp.Count(); n != len(addrs) {
		t.Errorf("mails in all: got %d, want %d", n, len(addrs))
	}
}

// TestCampaignKeepRemindLapse: one recipient keeps the subscription
// (reconfirmed event with the campaign, wording, IP and user agent), the
// other gets the reminder and lapses at the deadline (the injected clock
// moves), and is left out of the next campaign.
func TestCampaignKeepRemindLapse(t *testing.T) {
	s := startService(t, func(c *config.Config) { withPostal(c); c.Brand.SiteName = "Bottega Rossi" })
	s.importConsented("keep@example.com", "quiet@example.com")
	id := s.newCampaign(`"deadline":"2d","reminder":"1d"`)
	s.adminJSON("POST", "/campaigns/"+id+"/start", "", http.StatusOK, nil)
	s.waitCampaign(id, "two mails sent", func(c campaignOut) bool { return c.Counts.Sent == 2 })

	_, text, _ := mailParts(t, s.mailTo("keep@example.com").Data)
	keep := keepRE.FindString(text)
	if keep == "" {
		t.Fatalf("no keep link in:\n%s", text)
	}
	keepSub, _ := s.subscriber("keep@example.com")
	before := len(s.events(keepSub.ID))
	// GET shows the wording and a button, and changes nothing.
	r := s.do("GET", keep, "", "")
	if r.status != http.StatusOK || !strings.Contains(r.body, `method="post"`) || !strings.Contains(r.body, "Product news") {
		t.Fatalf("GET keep: %d\n%s", r.status, r.body)
	}
	if got := len(s.events(keepSub.ID)); got != before {
		t.Fatalf("GET keep recorded %d events", got-before)
	}
	if r := s.do("POST", keep[:len(keep)-4]+"AAAA", "", ""); r.status != http.StatusBadRequest {
		t.Errorf("tampered keep link: got %d, want 400", r.status)
	}
	// A headless browser from another address (a mail scanner) is held:
	// nothing recorded, and the person's press below still counts.
	req, err := http.NewRequest("POST", keep, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", headlessUA)
	if res, err := httpFrom(unlistedScanner).Do(req); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("a scanner's keep: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	if got := len(s.events(keepSub.ID)); got != before {
		t.Fatalf("a scanner's keep recorded %d events", got-before)
	}
	for i := range 2 { // idempotent
		if r := s.do("POST", keep, "application/x-www-form-urlencoded", "", "User-Agent", "keeper/1"); r.status != http.StatusOK {
			t.Fatalf("POST keep %d: got %d", i, r.status)
		}
	}
	evs := s.events(keepSub.ID)
	if len(evs) != before+1 {
		t.Fatalf("events after keep: got %d, want %d", len(evs), before+1)
	}
	ev := evs[len(evs)-1]
	if ev.Type != "reconfirmed" || ev.Source != "campaign:"+id || ev.Personal == nil || ev.Personal.IP != "127.0.0.1" ||
		ev.Personal.UserAgent != "keeper/1" || len(ev.Wording) != 64 || ev.WordingText == nil ||
		!strings.Contains(ev.WordingText.Text, "keep receiving emails from Bottega Rossi") || len(ev.Topics) != 1 || ev.Topics[0] != "news" {
		t.Errorf("reconfirmed event: %+v", ev)
	}
	// The campaign counts the answer at once, long before its deadline.
	if c := s.campaign(id); c.Counts.Reconfirmed != 1 || c.Counts.Lapsed != 0 {
		t.Errorf("campaign right after the keep: %+v, want 1 reconfirmed, none lapsed yet", c.Counts)
	}

	s.clock.Advance(25 * time.Hour) // past the reminder
	msgs := s.waitMails(3)
	if to := msgs[2].To[0]; to != "quiet@example.com" {
		t.Errorf("reminder went to %s", to)
	}
	h, _, _ := mailParts(t, msgs[2].Data)
	if subj := decodeHeader(t, h.Get("Subject")); !strings.HasPrefix(subj, "Reminder: ") {
		t.Errorf("reminder subject: %q", subj)
	}

	s.clock.Advance(24 * time.Hour) // past the deadline
	c := s.waitCampaign(id, "a lapse", func(c campaignOut) bool { return c.Counts.Lapsed == 1 })
	if c.Counts.Reconfirmed != 1 || c.Counts.Reminded != 1 {
		t.Errorf("counts: %+v", c.Counts)
	}
	quiet, _ := s.subscriber("quiet@example.com")
	if got := quiet.Subscriptions["news"].Status; got != "lapsed" {
		t.Errorf("quiet status: got %s, want lapsed", got)
	}
	qevs := s.events(quiet.ID)
	if last := qevs[len(qevs)-1]; last.Type != "lapsed" || last.Source != "campaign:"+id {
		t.Errorf("last event of quiet: %+v", last)
	}
	if sub, _ := s.subscriber("keep@example.com"); sub.Subscriptions["news"].Status != "confirmed" {
		t.Errorf("keep status: %s", sub.Subscriptions["news"].Status)
	}
	// Too late now: the lapsed person's link says so and changes nothing.
	_, qtext, _ := mailParts(t, msgs[2].Data)
	if r := s.do("POST", keepRE.FindString(qtext), "", ""); r.status != http.StatusGone {
		t.Errorf("keep after lapse: got %d, want 410", r.status)
	}
	if sub, _ := s.subscriber("quiet@example.com"); sub.Subscriptions["news"].Status != "lapsed" {
		t.Error("a late keep click revived a lapsed subscription")
	}

	// The next campaign leaves out the lapsed contact; the one who kept
	// the subscription is not asked again until lifecycle.dormant_after
	// has passed (a cool-down), and then starts a new cycle.
	next := s.newCampaign("")
	var pv struct {
		Audience int            `json:"audience"`
		Excluded map[string]int `json:"excluded"`
	}
	s.adminJSON("POST", "/campaigns/"+next+"/preview", "", http.StatusOK, &pv)
	if pv.Audience != 0 || pv.Excluded["lapsed"] != 1 || pv.Excluded["confirmed_recently"] != 1 {
		t.Errorf("next preview: got %+v, want audience 0, lapsed 1, confirmed_recently 1", pv)
	}
	s.clock.Advance(366 * consent.Day)
	s.adminJSON("POST", "/campaigns/"+next+"/preview", "", http.StatusOK, &pv)
	if pv.Audience != 1 || pv.Excluded["lapsed"] != 1 || pv.Excluded["confirmed_recently"] != 0 {
		t.Errorf("preview a year later: got %+v, want audience 1, lapsed 1", pv)
	}
	var rep struct{ OK bool }
	s.admin("/ledger/verify", &rep)
	if !rep.OK {
		t.Error("ledger does not verify")
	}
}

// TestCampaignQueuedMailHonoursUnsubscribe checks the send-time check for
// campaigns (GDPR Art. 21(3)): a contact who unsubscribes after their mail
// was queued gets nothing.
func TestCampaignQueuedMailHonoursUnsubscribe(t *testing.T) {
	s := startService(t, withPostal)
	s.importConsented("late@example.com")
	if err := s.smtp.Stop(); err != nil {
		t.Fatal(err)
	}
	id := s.newCampaign("")
	s.adminJSON("POST", "/campaigns/"+id+"/start", "", http.StatusOK, nil)
	s.waitCampaign(id, "the mail queued", func(c campaignOut) bool { return c.Counts.Targeted == 1 })
	if q, _, _ := s.app.DB.OutboxDepth(context.Background()); q != 1 {
		t.Fatalf("outbox: %d jobs, want the campaign mail", q)
	}
	sub, _ := s.subscriber("late@example.com")
	if r := s.do("POST", s.unsubscribeURL(sub.ID, "news"), "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click"); r.status != http.StatusOK {
		t.Fatalf("unsubscribe: %d", r.status)
	}
	// The relay stays down until the worker's next look at the mail has
	// dropped it: an attempt already past its send-time check when the
	// unsubscribe landed would otherwise go out once the relay is back.
	s.waitOutboxEmpty()
	if err := s.smtp.Restart(); err != nil {
		t.Fatal(err)
	}
	c := s.waitCampaign(id, "the answer recorded", func(c campaignOut) bool { return c.State == "done" })
	if c.Counts.Sent != 0 || c.Counts.Unsubscribed != 1 {
		t.Errorf("counts: %+v, want 0 sent, 1 unsubscribed", c.Counts)
	}
	if n := s.smtp.Count(); n != 0 {
		t.Errorf("mails: got %d, want 0", n)
	}
	b, _ := json.Marshal(c)
	if strings.Contains(string(b), "late@") {
		t.Errorf("campaign view holds an address: %s", b)
	}
}

// TestCampaignCancel: POST /campaigns/{id}/cancel ends a campaign whose
// mails wait in the outbox (the relay is down): none of them is sent once
// the relay is back, the subscriptions stay, the cancel is audited and
// final. (That nobody lapses is the conformance suite's CampaignCancel.)
func TestCampaignCancel(t *testing.T) {
	s := startService(t, withPostal)
	s.importConsented("a@example.com", "b@example.com")
	if err := s.smtp.Stop(); err != nil {
		t.Fatal(err)
	}
	id := s.newCampaign(`"deadline":"2d","reminder":"1d"`)
	s.adminJSON("POST", "/campaigns/"+id+"/start", "", http.StatusOK, nil)
	s.waitCampaign(id, "the mails queued", func(c campaignOut) bool { return c.Counts.Targeted == 2 })
	if r := s.adminAs(s.newKey("v", consent.RoleViewer), "POST", "/campaigns/"+id+"/cancel", "application/json", ""); r.status != http.StatusForbidden {
		t.Errorf("a viewer's cancel: got %d, want 403", r.status)
	}
	var c campaignOut
	s.adminJSON("POST", "/campaigns/"+id+"/cancel", "", http.StatusOK, &c)
	if c.State != "cancelled" {
		t.Fatalf("state after cancel: %s", c.State)
	}
	// The relay stays down until the worker's next look at the mails has
	// dropped them: an attempt already past its send-time check when the
	// cancel landed would otherwise go out once the relay is back.
	s.waitOutboxEmpty()
	if err := s.smtp.Restart(); err != nil {
		t.Fatal(err)
	}
	c = s.waitCampaign(id, "the mails withheld", func(c campaignOut) bool { return c.Counts.Withheld == 2 })
	if c.Counts.Sent != 0 || c.State != "cancelled" {
		t.Errorf("counts: %+v, state %s, want none sent", c.Counts, c.State)
	}
	if n := s.smtp.Count(); n != 0 {
		t.Errorf("mails: got %d, want 0", n)
	}
	if sub, _ := s.subscriber("a@example.com"); sub.Subscriptions["news"].Status != "confirmed" {
		t.Errorf("a@ after a cancelled campaign: %s, want confirmed", sub.Subscriptions["news"].Status)
	}
	s.adminJSON("POST", "/campaigns/"+id+"/start", "", http.StatusConflict, nil)
	var audit struct {
		Items []consent.AuditEntry
	}
	s.admin("/audit", &audit)
	if len(audit.Items) == 0 || audit.Items[0].Action != "campaign.cancel" || audit.Items[0].Target != id {
		t.Errorf("audit: newest entry %+v, want campaign.cancel of %s", audit.Items[:1], id)
	}
}

// TestCampaignPause: a paused campaign queues nothing more; start resumes.
func TestCampaignPause(t *testing.T) {
	s := startService(t, withPostal)
	var addrs []string
	for i := range 6 {
		addrs = append(addrs, fmt.Sprintf("p%d@example.com", i))
	}
	s.importConsented(addrs...)
	id := s.newCampaign(`"rate":2`)
	s.adminJSON("POST", "/campaigns/"+id+"/start", "", http.StatusOK, nil)
	s.waitCampaign(id, "a mail sent", func(c campaignOut) bool { return c.Counts.Sent >= 1 })
	var c campaignOut
	s.adminJSON("POST", "/campaigns/"+id+"/pause", "", http.StatusOK, &c)
	if c.State != "paused" {
		t.Fatalf("state after pause: %s", c.State)
	}
	paused := c.Counts.Targeted
	time.Sleep(2500 * time.Millisecond)
	if c = s.campaign(id); c.Counts.Targeted != paused || c.State != "paused" {
		t.Errorf("paused campaign queued: targeted %d -> %d, state %s", paused, c.Counts.Targeted, c.State)
	}
	s.adminJSON("POST", "/campaigns/"+id+"/start", "", http.StatusOK, nil)
	s.waitCampaign(id, "done", func(c campaignOut) bool { return c.State == "done" })
	s.waitMails(len(addrs))
	for a, n := range s.mailsTo() {
		if n != 1 {
			t.Errorf("mails to %s: %d", a, n)
		}
	}
	var list struct{ Items []campaignOut }
	s.adminJSON("GET", "/campaigns", "", http.StatusOK, &list)
	if len(list.Items) != 1 || list.Items[0].ID != id {
		t.Errorf("list: %+v", list.Items)
	}
}

// consoleGet and consolePost are console requests with a session cookie.
func (s *service) consoleGet(cookie, path string) response {
	s.t.Helper()
	return s.do("GET", path, "", "", "Cookie", cookie)
}

func (s *service) consolePost(cookie, path string, form url.Values) response {
	s.t.Helper()
	page := s.consoleGet(cookie, "/admin")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page.body)
	if m == nil {
		s.t.Fatalf("no CSRF token on the console:\n%s", page.body)
	}
	form.Set("csrf", html.UnescapeString(m[1]))
	return s.do("POST", path, "application/x-www-form-urlencoded", form.Encode(), "Cookie", cookie)
}

// consoleSignIn signs in to the console with key and returns the session
// cookie.
func (s *service) consoleSignIn(key string) string {
	s.t.Helper()
	r := s.do("POST", "/admin/login", "application/x-www-form-urlencoded", url.Values{"key": {key}}.Encode())
	if r.status != http.StatusSeeOther {
		s.t.Fatalf("console sign-in: got %d\n%s", r.status, r.body)
	}
	var cookies []string
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	return strings.Join(cookies, "; ")
}

// TestConsoleCampaignMailPreviewAndTest: the console renders a campaign's
// mail for a sample person in the chosen language and basis (the real
// mail, not a stand-in), and sends a test copy to a typed address through
// the real mail server, marked as a test and recorded for no subscriber:
// no outbox job, no recipient, the campaign's counts untouched; the
// sample's links change nothing.
func TestConsoleCampaignMailPreviewAndTest(t *testing.T) {
	s := startService(t, withPostal)
	s.importConsented("real@example.com")
	id := s.newCampaign(`"templates":{"en":{"subject":"Still with us, {{name}}?","body":"Hello {{name}}."},"it":{"subject":"Ci sei ancora, {{name}}?","body":"Ciao {{name}}."}}`)
	cookie := s.consoleSignIn(testAdminKey)
	page := "/admin/campaigns/" + id

	r := s.consoleGet(cookie, page+"/mail?locale=it&basis=soft_opt_in")
	if r.status != http.StatusOK || !strings.Contains(r.body, "Ci sei ancora, Giulia?") || !strings.Contains(r.body, "Ciao Giulia.") ||
		!strings.Contains(r.body, "perché hai acquistato da") {
		t.Fatalf("Italian preview for a soft opt-in customer: %d\n%s", r.status, r.body)
	}
	h := s.consoleGet(cookie, page+"/mail?locale=en&basis=consent&part=html")
	if h.status != http.StatusOK || !strings.Contains(h.body, "Hello Alex.") || !strings.Contains(h.body, "because you subscribed to") ||
		!strings.Contains(h.header.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("HTML part of the English preview: %d, CSP %q\n%s", h.status, h.header.Get("Content-Security-Policy"), h.body)
	}
	if r := s.consoleGet(cookie, page+"/mail?basis=legitimate_interest"); r.status != http.StatusBadRequest {
		t.Errorf("preview for a basis nobody is asked on: got %d, want 400", r.status)
	}

	r = s.consolePost(cookie, page+"/test", url.Values{"to": {"marketer@shop.example"}, "locale": {"en"}, "basis": {"consent"}})
	if r.status != http.StatusSeeOther || strings.Contains(r.header.Get("Location"), "marketer") {
		t.Fatalf("test send: got %d to %q\n%s", r.status, r.header.Get("Location"), r.body)
	}
	msgs := s.waitMails(1)
	if msgs[0].To[0] != "marketer@shop.example" {
		t.Fatalf("test mail went to %v", msgs[0].To)
	}
	hdr, text, _ := mailParts(t, msgs[0].Data)
	note, body := strings.Index(text, "This is a test of the campaign"), strings.Index(text, "Hello Alex.")
	if subj := decodeHeader(t, hdr.Get("Subject")); subj != "[TEST] Still with us, Alex?" || note < 0 || body < note ||
		hdr.Get("List-Unsubscribe") == "" {
		t.Errorf("test mail: subject %q\n%s", subj, text)
	}
	// Its links name nobody: the keep link finds no recipient.
	if r := s.do("GET", keepRE.FindString(text), "", ""); r.status != http.StatusGone {
		t.Errorf("the test mail's keep link: got %d, want 410", r.status)
	}
	if c := s.campaign(id); c.Counts.Targeted != 0 || c.State != "draft" {
		t.Errorf("campaign after a test send: %+v, want an untouched draft", c)
	}
	if q, p, _ := s.app.DB.OutboxDepth(context.Background()); q != 0 || p != 0 {
		t.Errorf("outbox after a test send: %d queued, %d parked, want none", q, p)
	}
	var audit struct{ Items []consent.AuditEntry }
	s.admin("/audit", &audit)
	if e := audit.Items[0]; e.Action != "campaign.test_send" || e.Target != id {
		t.Errorf("audit: newest %+v, want campaign.test_send of %s", e, id)
	}
	b, _ := json.Marshal(audit)
	if strings.Contains(string(b), "marketer@") {
		t.Errorf("the audit log holds the test address: %s", b)
	}
	if r := s.consolePost(cookie, page+"/test", url.Values{"to": {"not an address"}}); r.status != http.StatusBadRequest {
		t.Errorf("test send to a bad address: got %d, want 400", r.status)
	}
	viewer := s.consoleSignIn(s.newKey("v", consent.RoleViewer))
	if r := s.consolePost(viewer, page+"/test", url.Values{"to": {"x@example.com"}}); r.status != http.StatusForbidden {
		t.Errorf("a viewer's test send: got %d, want 403", r.status)
	}
	if n := s.smtp.Count(); n != 1 {
		t.Errorf("mails: got %d, want the one test", n)
	}
}
