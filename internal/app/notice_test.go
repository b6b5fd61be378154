package app

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestArt14Notice walks the information notice (GDPR Art. 14) end to end
// over the real relay: an import on soft opt-in or legitimate interest
// queues one notice each (not for consent); while the relay is down a
// reawaken campaign leaves the soft-opt-in customer out; once the relay
// is back each notice arrives once, naming the controller, the purpose,
// the basis and where the address came from, with a one-click objection
// that works like every unsubscribe; the ledger and the person's export
// record it; the same person imported again gets no second one, and a
// batch may skip them.
func TestArt14Notice(t *testing.T) {
	s := startService(t, withPostal)
	if err := s.smtp.Stop(); err != nil {
		t.Fatal(err)
	}
	recent := s.clock.Now().AddDate(0, -2, 0).Format("2006-01-02")
	r := s.adminAs(testAdminKey, "POST", "/imports", "text/csv", "email,topics,basis,consented_at,source,last_purchase_at\n"+
		"soft@example.com,news,soft_opt_in,,Till receipts of the Milan shop,"+recent+"\n"+
		"li@example.com,news,legitimate_interest,,,\n"+
		"ok@example.com,news,consent,2024-01-01,shop checkout,\n")
	var rep struct{ Imported, Notices int }
	if err := json.Unmarshal([]byte(r.body), &rep); err != nil || r.status != http.StatusOK || rep.Imported != 3 || rep.Notices != 2 {
		t.Fatalf("import: got %d %s, want 3 imported, 2 notices", r.status, r.body)
	}
	s.waitFailed(2, 1)

	id := s.newCampaign("")
	var pv struct{ Excluded map[string]int }
	s.adminJSON("POST", "/campaigns/"+id+"/preview", "", http.StatusOK, &pv)
	if pv.Excluded["notice_pending"] != 1 {
		t.Errorf("preview while the notices wait: got %v, want soft@ left out as notice_pending", pv.Excluded)
	}

	if err := s.smtp.Restart(); err != nil {
		t.Fatal(err)
	}
	got := map[string]parsedMail{}
	var ids = map[string]string{}
	for _, m := range s.waitMails(2) {
		got[m.To[0]] = parseMail(t, m.Data)
		ids[m.To[0]] = strings.Trim(got[m.To[0]].header.Get("Message-Id"), "<>")
	}
	soft, li := got["soft@example.com"], got["li@example.com"]
	for _, want := range []string{"Example News", testPostal, "Product news", "you are our customer", "Till receipts of the Milan shop", "object"} {
		if !strings.Contains(soft.text, want) {
			t.Errorf("soft@'s notice lacks %q:\n%s", want, soft.text)
		}
	}
	for _, want := range []string{"legitimate interest", "our dealings with you"} {
		if !strings.Contains(li.text, want) {
			t.Errorf("li@'s notice lacks %q:\n%s", want, li.text)
		}
	}
	s.waitOutboxEmpty()
	s.adminJSON("POST", "/campaigns/"+id+"/preview", "", http.StatusOK, &pv)
	if pv.Excluded["notice_pending"] != 0 {
		t.Errorf("preview after the notices went out: got %v, want none left out as notice_pending", pv.Excluded)
	}

	sub, _ := s.subscriber("soft@example.com")
	var informed int
	for _, ev := range s.events(sub.ID) {
		if ev.Type == "informed" {
			informed++
			if ev.MessageID != ids["soft@example.com"] {
				t.Errorf("informed event: Message-ID %q, want the notice's %q", ev.MessageID, ids["soft@example.com"])
			}
		}
	}
	if informed != 1 {
		t.Errorf("informed events of soft@: got %d, want 1", informed)
	}
	var link struct{ URL string }
	s.adminJSON("POST", "/subscribers/"+sub.ID+"/preference-link", "", http.StatusCreated, &link)
	var exp struct {
		Subscriber struct {
			Notice *struct {
				Sent   string `json:"sent"`
				Origin string `json:"origin"`
			} `json:"art14_notice"`
		}
	}
	if err := json.Unmarshal([]byte(s.do("GET", link.URL+"/export", "", "").body), &exp); err != nil || exp.Subscriber.Notice == nil ||
		exp.Subscriber.Notice.Sent == "" || exp.Subscriber.Notice.Origin != "Till receipts of the Milan shop" {
		t.Errorf("export: got %+v, %v, want the sent notice and where the address came from", exp.Subscriber.Notice, err)
	}

	// The objection is one click, as RFC 8058 has it, on the link the
	// List-Unsubscribe header carries.
	unsub := strings.Trim(li.header.Get("List-Unsubscribe"), "<>")
	if li.header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" || !strings.Contains(li.text, unsub) {
		t.Fatalf("li@'s notice: want one-click unsubscribe in the header and the text, got %q", li.header)
	}
	if r := s.do("POST", unsub, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click"); r.status != http.StatusOK {
		t.Fatalf("one-click objection: got %d", r.status)
	}
	if lis, _ := s.subscriber("li@example.com"); lis.Subscriptions["news"].Status != "unsubscribed" {
		t.Errorf("li@ after objecting: got %+v, want unsubscribed", lis.Subscriptions)
	}

	before := s.smtp.Count()
	if rep := s.importCSV("email,topics,basis,last_purchase_at\nsoft@example.com,news,soft_opt_in," + recent + "\n"); rep.InvalidCount != 0 {
		t.Fatalf("second import: %+v", rep)
	}
	r = s.adminAs(testAdminKey, "POST", "/imports?notice=false", "text/csv", "email,topics,basis,last_purchase_at\nquiet@example.com,news,soft_opt_in,"+recent+"\n")
	if r.status != http.StatusOK || !strings.Contains(r.body, `"notices":0`) {
		t.Errorf("import with notice=false: got %d %s", r.status, r.body)
	}
	if r := s.adminAs(testAdminKey, "POST", "/imports?notice=maybe", "text/csv", "email,topics,basis\n"); r.status != http.StatusBadRequest {
		t.Errorf("import with notice=maybe: got %d, want 400", r.status)
	}
	s.waitOutboxEmpty()
	if n := s.smtp.Count(); n != before {
		t.Errorf("mails after importing soft@ again and quiet@ without notices: got %d more, want none", n-before)
	}
}
