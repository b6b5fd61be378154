package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"optin/internal/consent"
	"optin/internal/transfer"
)

// TestConsoleAssessments: an admin records a legitimate-interest
// assessment on the console's register page (a bad one is refused with
// the form kept, the same id again changes nothing); a marketer sees the
// register but gets no form; on the person page of someone imported on
// legitimate interest, the timeline shows the assessment cited and an
// activity without one is refused, with one recorded.
func TestConsoleAssessments(t *testing.T) {
	e := newConsoleEnv(t, nil)
	a := e.signIn(consent.RoleAdmin)
	form := url.Values{"id": {"lia-shop"}, "purpose": {"Tell customers about similar products."},
		"necessity": {"Mail is how they reach us."}, "balancing": {"They expect it; one click stops it."},
		"date": {"2024-05-01"}, "author": {"Ann, DPO"}}
	bad := url.Values{"csrf": {a.csrf()}, "id": {"lia-shop"}, "purpose": {"only a purpose"}}
	if r := a.do("POST", "/admin/assessments", bad); r.status != http.StatusBadRequest || !strings.Contains(r.body, "only a purpose") {
		t.Errorf("incomplete assessment: got %d, want 400 with the form kept\n%s", r.status, r.body)
	}
	form.Set("csrf", a.csrf())
	if r := a.do("POST", "/admin/assessments", form); r.status != http.StatusSeeOther {
		t.Fatalf("record: got %d, want 303\n%s", r.status, r.body)
	}
	form.Set("balancing", "changed afterwards")
	if r := a.do("POST", "/admin/assessments", form); r.status != http.StatusConflict {
		t.Errorf("same id again: got %d, want 409", r.status)
	}
	if e.lastAudit().Action != "assessment.create" {
		t.Errorf("audit: got %+v, want assessment.create", e.lastAudit())
	}

	m := e.signIn(consent.RoleMarketer)
	page := m.do("GET", "/admin/assessments", nil)
	if !hasText(page.body, "They expect it; one click stops it.") || hasText(page.body, "changed afterwards") ||
		strings.Contains(page.body, `action="/admin/assessments"`) {
		t.Errorf("register as a marketer: want the assessment as first recorded and no form\n%s", page.body)
	}

	rows, err := transfer.NewReader(strings.NewReader("email,topics,basis,assessment\nli@example.com,news,legitimate_interest,lia-shop\n"), transfer.FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := e.db.Import(t.Context(), consent.CLIActor(), rows, consent.ImportOptions{}); err != nil || rep.Imported != 1 {
		t.Fatalf("import: %+v, %v", rep, err)
	}
	id := e.subscriberID("li@example.com")
	person := m.do("GET", "/admin/subscribers/"+id, nil)
	if !hasText(person.body, "Mail is how they reach us.") || !strings.Contains(person.body, `href="/admin/assessments#lia-shop"`) {
		t.Errorf("person page: want the assessment the import cited\n%s", person.body)
	}
	act := url.Values{"csrf": {m.csrf()}, "kind": {"note"}, "at": {"2024-06-01T10:00"}, "reason": {"called"}}
	if r := m.do("POST", "/admin/subscribers/"+id+"/activity", act); r.status != http.StatusBadRequest || !strings.Contains(r.body, "assessment") {
		t.Errorf("activity without an assessment: got %d, want 400 naming it", r.status)
	}
	act.Set("assessment", "lia-shop")
	m.wantDone("activity citing lia-shop", m.do("POST", "/admin/subscribers/"+id+"/activity", act), id, "activity")
	if ev := e.lastEvent(id); ev.Type != consent.EventActivity || ev.Assessment != "lia-shop" {
		t.Errorf("activity event: got %+v, want it citing lia-shop", ev.Event)
	}
}
