package app

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
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
}
