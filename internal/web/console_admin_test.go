package web

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"optin/internal/consent"
)

// TestConsoleSuppressions lists the suppression list by hash, never by
// address; looks an address up by POST; lets an admin block an address
// (audited) and lift an operator's block, but never a person's own
// opt-out; and shows a marketer the list without the forms.
func TestConsoleSuppressions(t *testing.T) {
	e := newConsoleEnv(t, nil)
	e.importPeople("gone@example.com,,news,consent,2024-01-01,shop,\n")
	if _, err := e.db.Unsubscribe(t.Context(), e.subscriberID("gone@example.com"), "", consent.ChannelOneClick, consent.ConfirmInput{}); err != nil {
		t.Fatal(err)
	}
	a := e.signIn(consent.RoleAdmin)
	r := a.do("POST", "/admin/suppressions", url.Values{"csrf": {a.csrf()}, "email": {"Spam@Example.com"}, "topic": {"news"}, "note": {"complaint by phone"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/admin/suppressions?done=added" {
		t.Fatalf("block: got %d to %q\n%s", r.status, r.header.Get("Location"), r.body)
	}
	spam, _ := consent.ParseAddress("spam@example.com")
	if ok, err := e.db.Suppressed(t.Context(), spam, "news"); err != nil || !ok {
		t.Errorf("spam@example.com blocked for news: %v, %v", ok, err)
	}
	if l := e.lastAudit(); l.Action != "suppression.add" || l.Key != "bootstrap" {
		t.Errorf("audit: %+v", l)
	}
	r = a.do("POST", "/admin/suppressions", url.Values{"csrf": {a.csrf()}, "email": {"spam@example.com"}, "topic": {"news"}})
	if r.header.Get("Location") != "/admin/suppressions?done=exists" {
		t.Errorf("block again: got %d to %q", r.status, r.header.Get("Location"))
	}
	for _, bad := range []url.Values{{"email": {"nobody"}}, {"email": {"x@example.com"}, "topic": {"nope"}},
		{"email": {"x@example.com"}, "note": {strings.Repeat("n", 201)}}} {
		bad.Set("csrf", a.csrf())
		if r := a.do("POST", "/admin/suppressions", bad); r.status != http.StatusBadRequest || !hasText(r.body, e.en.T("console.suppressions.refused", "")) {
			t.Errorf("block %v: got %d, want 400 with the refusal", bad, r.status)
		}
	}

	r = a.do("GET", "/admin/suppressions", nil)
	if r.status != http.StatusOK || strings.Contains(r.body, "@example.com") || strings.Count(r.body, "<tr>") != 3 {
		t.Fatalf("list: %d, want the 2 entries by hash only\n%s", r.status, r.body)
	}
	removes := regexp.MustCompile(`action="/admin/suppressions/([0-9a-f]+)/delete"><input type="hidden" name="csrf" value="[^"]+"><input type="hidden" name="scope" value="([^"]+)"`).FindAllStringSubmatch(r.body, -1)
	if len(removes) != 1 || removes[0][2] != "news" {
		t.Fatalf("remove buttons: got %v, want one, for the operator's block", removes)
	}
	r = a.do("POST", "/admin/suppressions/find", url.Values{"csrf": {a.csrf()}, "email": {"GONE@example.com"}})
	if r.status != http.StatusOK || strings.Count(r.body, "<tr>") != 2 || !hasText(r.body, e.en.T("console.suppressions.reason_unsubscribed")) {
		t.Errorf("look-up: %d\n%s", r.status, r.body)
	}
	gone, _ := consent.ParseAddress("gone@example.com")
	page, err := e.db.Suppressions(t.Context(), &gone, "", 10)
	if err != nil || len(page.Items) != 1 {
		t.Fatal(page, err)
	}
	r = a.do("POST", "/admin/suppressions/"+page.Items[0].Hash+"/delete", url.Values{"csrf": {a.csrf()}, "scope": {"*"}})
	if r.status != http.StatusConflict || !hasText(r.body, e.en.T("console.suppressions.not_admin")) {
		t.Errorf("lifting a person's own opt-out: got %d", r.status)
	}
	if ok, _ := e.db.Suppressed(t.Context(), gone, ""); !ok {
		t.Error("the person's own opt-out was lifted")
	}
	r = a.do("POST", "/admin/suppressions/"+removes[0][1]+"/delete", url.Values{"csrf": {a.csrf()}, "scope": {"news"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/admin/suppressions?done=removed" {
		t.Errorf("lift: got %d to %q", r.status, r.header.Get("Location"))
	}
	if ok, _ := e.db.Suppressed(t.Context(), spam, "news"); ok {
		t.Error("still blocked after the lift")
	}
	if l := e.lastAudit(); l.Action != "suppression.delete" || l.Key != "bootstrap" {
		t.Errorf("audit: %+v", l)
	}

	m := e.signIn(consent.RoleMarketer)
	if r := m.do("GET", "/admin/suppressions", nil); r.status != http.StatusOK || strings.Contains(r.body, `action="/admin/suppressions"`) ||
		strings.Contains(r.body, "/delete") {
		t.Errorf("a marketer's list: %d, want it without forms", r.status)
	}
	if r := m.do("POST", "/admin/suppressions", url.Values{"csrf": {m.csrf()}, "email": {"x@example.com"}}); r.status != http.StatusForbidden {
		t.Errorf("a marketer's block: got %d", r.status)
	}
}

// TestConsoleAudit pages through the audit log, newest first.
func TestConsoleAudit(t *testing.T) {
	e := newConsoleEnv(t, nil)
	for i := range consolePageSize + 5 {
		if err := e.db.AuditRead(t.Context(), consent.CLIActor(), "export", fmt.Sprintf("file-%03d", i), 1); err != nil {
			t.Fatal(err)
		}
	}
	v := e.signIn(consent.RoleViewer)
	r := v.do("GET", "/admin/audit", nil)
	next := regexp.MustCompile(`href="/admin/audit\?cursor=([0-9]+)"`).FindStringSubmatch(r.body)
	if r.status != http.StatusOK || strings.Count(r.body, "<tr>") != consolePageSize+1 || !strings.Contains(r.body, "console.signin") || next == nil {
		t.Fatalf("first page: %d\n%s", r.status, r.body)
	}
	all, _, err := e.db.Audit(t.Context(), "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	r = v.do("GET", "/admin/audit?cursor="+next[1], nil)
	if r.status != http.StatusOK || strings.Count(r.body, "<tr>") != len(all)-consolePageSize+1 || !strings.Contains(r.body, "file-000") ||
		strings.Contains(r.body, "?cursor=") || !strings.Contains(r.body, `href="/admin/audit"`) {
		t.Errorf("second page: %d\n%s", r.status, r.body)
	}
	if r := v.do("GET", "/admin/audit?cursor=x", nil); r.status != http.StatusBadRequest {
		t.Errorf("a bad cursor: got %d", r.status)
	}
}

// TestConsoleKeys lists the API keys, makes one whose secret the page
// shows once and which then signs in, and revokes it: its session ends.
func TestConsoleKeys(t *testing.T) {
	e := newConsoleEnv(t, nil)
	a := e.signIn(consent.RoleAdmin)
	r := a.do("GET", "/admin/keys", nil)
	if r.status != http.StatusOK || !strings.Contains(r.body, "key-viewer") || !hasText(r.body, e.en.T("console.keys.mine")) {
		t.Fatalf("keys page: %d\n%s", r.status, r.body)
	}
	r = a.do("POST", "/admin/keys", url.Values{"csrf": {a.csrf()}, "name": {"ann"}, "role": {"marketer"}})
	secret := regexp.MustCompile(`id="secret" type="text" value="(optin_[^"]+)"`).FindStringSubmatch(r.body)
	if r.status != http.StatusCreated || secret == nil || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("make a key: %d\n%s", r.status, r.body)
	}
	if l := e.lastAudit(); l.Action != "apikey.create" || l.Key != "bootstrap" {
		t.Errorf("audit: %+v", l)
	}
	if r := a.do("GET", "/admin/keys", nil); strings.Contains(r.body, secret[1]) {
		t.Error("the secret is shown a second time")
	}
	for _, bad := range []url.Values{{"name": {"ann"}, "role": {"marketer"}}, {"name": {""}, "role": {"viewer"}}, {"name": {"bo"}, "role": {"owner"}}} {
		bad.Set("csrf", a.csrf())
		if r := a.do("POST", "/admin/keys", bad); r.status/100 != 4 || !hasText(r.body, e.en.T("console.keys.refused", "")) {
			t.Errorf("make %v: got %d, want a refusal", bad, r.status)
		}
	}
	ann := e.client()
	if r := ann.do("POST", "/admin/login", url.Values{"key": {secret[1]}}); r.status != http.StatusSeeOther {
		t.Fatalf("sign-in with the new key: %d", r.status)
	}
	keys, _ := e.db.APIKeys(t.Context())
	id := ""
	for _, k := range keys {
		if k.Name == "ann" {
			id = k.ID
		}
	}
	r = a.do("POST", "/admin/keys/"+id+"/revoke", url.Values{"csrf": {a.csrf()}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/admin/keys?done=revoked" {
		t.Errorf("revoke: got %d to %q", r.status, r.header.Get("Location"))
	}
	if l := e.lastAudit(); l.Action != "apikey.revoke" || l.Key != "bootstrap" || l.Target != id {
		t.Errorf("audit of the revocation: %+v", l)
	}
	wantLogin(t, "the revoked key's session", ann.do("GET", "/admin", nil), "/admin/login?ended=1")
	if r := a.do("POST", "/admin/keys/nope/revoke", url.Values{"csrf": {a.csrf()}}); r.status != http.StatusNotFound {
		t.Errorf("revoke an unknown key: got %d", r.status)
	}
	if r := a.do("GET", "/admin/keys", nil); !strings.Contains(r.body, e.en.T("console.keys.revoked", "2030-03-04")) {
		t.Error("the list does not show the key revoked")
	}
	m := e.signIn(consent.RoleMarketer)
	if r := m.do("GET", "/admin/keys", nil); r.status != http.StatusForbidden {
		t.Errorf("a marketer's keys page: got %d", r.status)
	}
	if strings.Contains(m.do("GET", "/admin", nil).body, `href="/admin/keys"`) {
		t.Error("a marketer sees API keys in the navigation")
	}
}
