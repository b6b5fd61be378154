package app

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"optin/internal/consent"
)

// confirmed signs addr up for news and clicks the confirm link; it returns
// the subscriber id.
func (s *service) confirmed(addr string) string {
	s.t.Helper()
	before := s.smtp.Count()
	if r := s.signupJSON(addr, "news"); r.status != http.StatusAccepted {
		s.t.Fatalf("signup %s: %d", addr, r.status)
	}
	// The first mail to addr after the signup: other mail (an import's
	// information notices) may arrive in between.
	var m parsedMail
	for n := before + 1; m.text == ""; n++ {
		for _, msg := range s.waitMails(n)[before:] {
			if len(msg.To) == 1 && msg.To[0] == addr {
				m = parseMail(s.t, msg.Data)
				break
			}
		}
	}
	confirm, _ := links(s.t, m.text)
	if r := s.do("POST", confirm, "", ""); r.status != http.StatusOK {
		s.t.Fatalf("confirm %s: %d", addr, r.status)
	}
	sub, ok := s.subscriber(addr)
	if !ok {
		s.t.Fatalf("%s not stored", addr)
	}
	return sub.ID
}

// waitOutboxEmpty waits until the worker has finished every queued job.
func (s *service) waitOutboxEmpty() {
	s.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		q, _, err := s.app.DB.OutboxDepth(context.Background())
		if err != nil {
			s.t.Fatal(err)
		}
		if q == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("outbox still holds %d jobs", q)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *service) unsubscribeURL(sub, topic string) string {
	s.t.Helper()
	u, err := s.app.Worker.Renderer.UnsubscribeURL(sub, topic)
	if err != nil {
		s.t.Fatal(err)
	}
	return u
}

func (s *service) suppressed(addr, topic string) bool {
	s.t.Helper()
	a, err := consent.ParseAddress(addr)
	if err != nil {
		s.t.Fatal(err)
	}
	ok, err := s.app.DB.Suppressed(context.Background(), a, topic)
	if err != nil {
		s.t.Fatal(err)
	}
	return ok
}

// TestOneClickUnsubscribe posts RFC 8058 one-click requests in both
// encodings, with no cookies or auth, and checks the effect.
func TestOneClickUnsubscribe(t *testing.T) {
	s := startService(t, nil)
	var mp bytes.Buffer
	w := multipart.NewWriter(&mp)
	w.WriteField("List-Unsubscribe", "One-Click")
	w.Close()
	tests := []struct {
		name, addr, ct, body string
	}{
		{"urlencoded", "u1@example.com", "application/x-www-form-urlencoded; charset=utf-8", "List-Unsubscribe=One-Click"},
		{"multipart", "u2@example.com", w.FormDataContentType(), mp.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := s.confirmed(tt.addr)
			u := s.unsubscribeURL(id, "news")
			// GET shows a page and changes nothing (RFC 8058, section 1).
			r := s.do("GET", u, "", "")
			if r.status != http.StatusOK || !strings.Contains(r.body, `method="post"`) {
				t.Fatalf("GET: got %d", r.status)
			}
			// The URL travels in mail headers: it may withdraw, never open
			// the preference center (export, erase, re-subscribe).
			if strings.Contains(r.body, "/preferences/") || !strings.Contains(r.body, `href="/manage"`) {
				t.Error("unsubscribe page links to the preference center itself instead of /manage")
			}
			if sub, _ := s.subscriber(tt.addr); sub.Subscriptions["news"].Status != "confirmed" {
				t.Fatalf("GET changed the status to %q", sub.Subscriptions["news"].Status)
			}
			for i := range 2 { // idempotent
				r := s.do("POST", u, tt.ct, tt.body)
				if r.status != http.StatusOK || r.header.Get("Location") != "" || r.header.Get("Set-Cookie") != "" {
					t.Fatalf("POST %d: got %d Location %q Set-Cookie %q, want 200, no redirect, no cookie",
						i, r.status, r.header.Get("Location"), r.header.Get("Set-Cookie"))
				}
			}
			sub, _ := s.subscriber(tt.addr)
			if got, want := sub.Subscriptions["news"].Status, "unsubscribed"; got != want {
				t.Errorf("status: got %q, want %q", got, want)
			}
			if !s.suppressed(tt.addr, "news") {
				t.Error("address not suppressed for news")
			}
			evs := s.events(id)
			last := evs[len(evs)-1]
			if last.Type != "unsubscribed" || last.Source != consent.ChannelOneClick || len(evs) != 3 {
				t.Errorf("events: got %d, last %s/%s, want 3 ending unsubscribed/one_click", len(evs), last.Type, last.Source)
			}
		})
	}
}

// TestUnsubscribePageAll: the page's "all topics" button withdraws
// everything and suppresses the address for every topic.
func TestUnsubscribePageAll(t *testing.T) {
	s := startService(t, nil)
	id := s.confirmed("all@example.com")
	r := s.do("POST", s.unsubscribeURL(id, "news"), "application/x-www-form-urlencoded", "scope=all")
	if r.status != http.StatusOK {
		t.Fatalf("POST: got %d", r.status)
	}
	if !s.suppressed("all@example.com", "") {
		t.Error("not suppressed for every topic")
	}
	evs := s.events(id)
	if last := evs[len(evs)-1]; last.Source != consent.ChannelPage {
		t.Errorf("channel: got %q, want %q", last.Source, consent.ChannelPage)
	}
}

// TestOperatorUnsubscribe: through the admin API an operator unsubscribes
// a person on their word; the address is suppressed at once, the ledger
// says operator with the reason, the audit log names the key, and a
// request without a reason changes nothing.
func TestOperatorUnsubscribe(t *testing.T) {
	s := startService(t, nil)
	id := s.confirmed("phone@example.com")
	s.adminJSON("POST", "/subscribers/"+id+"/unsubscribe", `{"topic":"news"}`, http.StatusBadRequest, nil)
	if s.suppressed("phone@example.com", "news") {
		t.Fatal("suppressed after a refused request")
	}
	var out struct {
		Subscriber   subscriber
		Unsubscribed []string
	}
	s.adminJSON("POST", "/subscribers/"+id+"/unsubscribe", `{"topic":"news","reason":"Asked by phone"}`, http.StatusOK, &out)
	if strings.Join(out.Unsubscribed, ",") != "news" || out.Subscriber.Subscriptions["news"].Status != "unsubscribed" {
		t.Errorf("answer: got %+v, want news unsubscribed", out)
	}
	if !s.suppressed("phone@example.com", "news") {
		t.Error("not suppressed for news")
	}
	var raw struct {
		Items []struct {
			Type, Source string
			Personal     struct{ Note string }
		}
	}
	s.adminJSON("GET", "/subscribers/"+id+"/consents", "", http.StatusOK, &raw)
	if last := raw.Items[len(raw.Items)-1]; last.Type != "unsubscribed" || last.Source != consent.ChannelOperator || last.Personal.Note != "Asked by phone" {
		t.Errorf("last event: got %+v, want unsubscribed by operator with the reason", last)
	}
	var audit struct {
		Items []struct{ Key, Action, Target string }
	}
	s.adminJSON("GET", "/audit?limit=1", "", http.StatusOK, &audit)
	if a := audit.Items[0]; a.Action != "subscriber.unsubscribe" || a.Key != "bootstrap" || a.Target != id {
		t.Errorf("audit: got %+v", a)
	}
}

// TestTokenMisuse: a token is only good for its own purpose.
func TestTokenMisuse(t *testing.T) {
	s := startService(t, nil)
	s.signupJSON("mis@example.com", "news")
	m := parseMail(t, s.waitMails(1)[0].Data)
	confirm, _ := links(t, m.text)
	tok := confirm[strings.LastIndex(confirm, "/")+1:]
	sub, _ := s.subscriber("mis@example.com")
	unsub := s.unsubscribeURL(sub.ID, "news")
	utok := unsub[strings.LastIndex(unsub, "/")+1:]
	for _, tt := range []struct{ method, path string }{
		{"POST", "/unsubscribe/" + tok},
		{"GET", "/unsubscribe/" + tok},
		{"POST", "/preferences/" + tok},
		{"GET", "/preferences/" + utok + "/export"},
		{"POST", "/preferences/" + utok + "/erase"},
		{"POST", "/confirm/" + utok},
	} {
		if r := s.do(tt.method, tt.path, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click"); r.status != http.StatusBadRequest {
			t.Errorf("%s %s: got %d, want 400", tt.method, tt.path[:14], r.status)
		}
	}
	if got, _ := s.subscriber("mis@example.com"); got.Subscriptions["news"].Status != "pending" {
		t.Errorf("misused tokens changed the status to %q", got.Subscriptions["news"].Status)
	}
}

var prefRE = regexp.MustCompile(`http://127\.0\.0\.1:\d+/preferences/[A-Za-z0-9._-]+`)

// manageLink asks for a preference link by mail and returns it with the
// mail.
func (s *service) manageLink(addr string) (string, parsedMail) {
	s.t.Helper()
	before := s.smtp.Count()
	if r := s.do("POST", "/manage", "application/json", `{"email":"`+addr+`"}`, "Accept", "application/json"); r.status != http.StatusAccepted {
		s.t.Fatalf("manage: got %d", r.status)
	}
	msg := s.waitMails(before + 1)[before]
	m := parseMail(s.t, msg.Data)
	link := prefRE.FindString(m.text)
	if link == "" {
		s.t.Fatalf("no preferences link in:\n%s", m.text)
	}
	return link, m
}

// TestManageAndPreferences: /manage answers the same for known and
// unknown addresses and mails known ones a link; the preference center
// switches topics with ledger events.
func TestManageAndPreferences(t *testing.T) {
	s := startService(t, nil)
	id := s.confirmed("pref@example.com")
	unknown := s.do("POST", "/manage", "application/json", `{"email":"nobody@example.com"}`, "Accept", "application/json")
	link, m := s.manageLink("pref@example.com")
	if unknown.status != http.StatusAccepted {
		t.Errorf("unknown address: got %d, want 202", unknown.status)
	}
	// The preference mail is not a confirmation: it carries the list headers.
	lu := m.header.Get("List-Unsubscribe")
	if !strings.HasPrefix(lu, "<http://127.0.0.1:") || !strings.Contains(lu, "/unsubscribe/") {
		t.Errorf("List-Unsubscribe: got %q", lu)
	}
	if got, want := m.header.Get("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click"; got != want {
		t.Errorf("List-Unsubscribe-Post: got %q, want %q", got, want)
	}
	if m.header.Get("List-Id") == "" || !strings.Contains(m.text, "/unsubscribe/") {
		t.Error("List-Id header or visible unsubscribe link missing")
	}
	if len("List-Unsubscribe: "+lu) > 998 {
		t.Errorf("List-Unsubscribe line is %d octets", len(lu))
	}
	if got := s.smtp.Count(); got != 2 {
		t.Errorf("mails: got %d, want 2 (confirmation + preferences; none for the unknown address)", got)
	}

	if r := s.do("GET", link, "", ""); r.status != http.StatusOK || !strings.Contains(r.body, `value="news" checked`) {
		t.Fatalf("preferences page: %d", r.status)
	}
	if r := s.do("POST", link, "application/x-www-form-urlencoded", ""); r.status != http.StatusOK {
		t.Fatalf("switch off: got %d", r.status)
	}
	if sub, _ := s.subscriber("pref@example.com"); sub.Subscriptions["news"].Status != "unsubscribed" {
		t.Errorf("after switching off: %q", sub.Subscriptions["news"].Status)
	}
	if !s.suppressed("pref@example.com", "news") {
		t.Error("not suppressed after switching off")
	}
	if r := s.do("POST", link, "application/x-www-form-urlencoded", "topics=news"); r.status != http.StatusOK {
		t.Fatalf("switch on: got %d", r.status)
	}
	if sub, _ := s.subscriber("pref@example.com"); sub.Subscriptions["news"].Status != "confirmed" {
		t.Errorf("after switching on: %q", sub.Subscriptions["news"].Status)
	}
	if s.suppressed("pref@example.com", "news") {
		t.Error("still suppressed after switching on")
	}
	var types []string
	for _, e := range s.events(id) {
		types = append(types, e.Type+"/"+e.Source)
	}
	want := "requested/form:newsletter confirmed/form:newsletter unsubscribed/preferences preferences_updated/preferences"
	if got := strings.Join(types, " "); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
}

// TestExportEraseResignup: the export holds everything; erase removes it
// and drops queued mail; the ledger still verifies; a fresh signup works
// and its confirmation lifts the suppression.
func TestExportEraseResignup(t *testing.T) {
	s := startService(t, nil)
	id := s.confirmed("gone@example.com")
	link, _ := s.manageLink("gone@example.com")

	r := s.do("GET", link+"/export", "", "")
	if r.status != http.StatusOK || !strings.Contains(r.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: got %d %q", r.status, r.header.Get("Content-Disposition"))
	}
	var exp struct {
		Schema     string `json:"schema"`
		Subscriber struct {
			Email string `json:"email"`
		} `json:"subscriber"`
		Events []event `json:"events"`
		About  struct {
			Purposes map[string]string `json:"purposes"`
			Basis    string            `json:"basis"`
			Access   string            `json:"access"`
		} `json:"about"`
	}
	if err := json.Unmarshal([]byte(r.body), &exp); err != nil {
		t.Fatal(err)
	}
	if exp.Schema != consent.ExportSchema || exp.Subscriber.Email != "gone@example.com" || len(exp.Events) != 2 ||
		exp.Events[0].Personal == nil || exp.Events[0].WordingText == nil || exp.About.Purposes["news"] == "" {
		t.Errorf("export incomplete: %+v", exp)
	}
	// Art. 15(1)(c): who receives the data, and on which bases it is held.
	if !strings.Contains(exp.About.Access, "processors") || !strings.Contains(exp.About.Basis, "6(1)(a)") {
		t.Errorf("export's about lacks the recipients or the bases: %+v", exp.About)
	}

	// A preference mail queued during an SMTP outage must not go out after
	// the erasure.
	s.waitOutboxEmpty()
	if err := s.smtp.Stop(); err != nil {
		t.Fatal(err)
	}
	s.clock.Advance(2 * consent.ManageMailGap)
	s.do("POST", "/manage", "application/json", `{"email":"gone@example.com"}`, "Accept", "application/json")
	if q, _, _ := s.app.DB.OutboxDepth(context.Background()); q != 1 {
		t.Fatalf("queued: got %d, want 1", q)
	}
	if r := s.do("POST", link+"/erase", "", ""); r.status != http.StatusOK {
		t.Fatalf("erase: got %d", r.status)
	}
	if q, p, _ := s.app.DB.OutboxDepth(context.Background()); q != 0 || p != 0 {
		t.Errorf("outbox after erase: queued %d parked %d, want 0 0", q, p)
	}
	if err := s.smtp.Restart(); err != nil {
		t.Fatal(err)
	}
	if r := s.do("GET", link+"/export", "", ""); r.status != http.StatusGone {
		t.Errorf("export after erase: got %d, want 410", r.status)
	}
	if r := s.do("GET", link, "", ""); r.status != http.StatusGone {
		t.Errorf("preferences after erase: got %d, want 410", r.status)
	}
	if _, ok := s.subscriber("gone@example.com"); ok {
		t.Error("subscriber still found after erase")
	}
	if !s.suppressed("gone@example.com", "") {
		t.Error("erased address not suppressed")
	}
	evs, err := s.app.DB.Events(context.Background(), id)
	if err != nil || len(evs) != 3 {
		t.Fatalf("events after erase: got %d (%v), want 3", len(evs), err)
	}
	for _, e := range evs {
		if e.Type != consent.EventErased && e.Personal != nil {
			t.Errorf("event %s still has personal data", e.Type)
		}
	}
	var rep struct{ OK bool }
	s.admin("/ledger/verify", &rep)
	if !rep.OK {
		t.Error("ledger does not verify after erasure")
	}

	// The person signs up afresh: a new double opt-in, which lifts the
	// suppression once confirmed.
	before := s.smtp.Count()
	s.signupJSON("gone@example.com", "news")
	msgs := s.waitMails(before + 1)
	prefMails := 0
	for _, m := range msgs {
		if strings.Contains(string(m.Data), "Subject: Your link") {
			prefMails++
		}
	}
	if prefMails != 1 {
		t.Errorf("preference mails: got %d, want 1 (the one queued before the erasure must not be sent)", prefMails)
	}
	confirm, _ := links(t, parseMail(t, msgs[before].Data).text)
	s.do("POST", confirm, "", "")
	if s.suppressed("gone@example.com", "news") {
		t.Error("suppression not lifted by the fresh double opt-in")
	}
}

// TestNotMeAfterConfirmWithdraws: the confirmation mail's one-click target
// is never a no-op: after the confirmation it withdraws the topics.
func TestNotMeAfterConfirmWithdraws(t *testing.T) {
	s := startService(t, nil)
	s.signupJSON("late@example.com", "news")
	m := parseMail(t, s.waitMails(1)[0].Data)
	confirm, notMe := links(t, m.text)
	s.do("POST", confirm, "", "")
	r := s.do("POST", notMe, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click")
	if r.status != http.StatusOK || r.header.Get("Location") != "" {
		t.Fatalf("one-click: got %d Location %q, want 200 without redirect", r.status, r.header.Get("Location"))
	}
	if sub, _ := s.subscriber("late@example.com"); sub.Subscriptions["news"].Status != "unsubscribed" {
		t.Errorf("status after one-click on a confirmed request: got %q, want unsubscribed", sub.Subscriptions["news"].Status)
	}
	if !s.suppressed("late@example.com", "news") {
		t.Error("not suppressed")
	}
}
