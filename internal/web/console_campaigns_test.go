package web

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"optin/internal/consent"
)

// campaignForm is a valid new campaign as the console's form sends it.
func campaignForm() url.Values {
	return url.Values{"name": {"Spring wake-up"}, "topic": {"news"}, "lifecycle": {"prospect", "dormant"},
		"consent_older_than": {"30d"}, "no_activity_since": {"2030-01-01"}, "deadline": {"14d"}, "reminder": {"7d"}, "rate": {"5"},
		"subject_en": {"Still interested in {{topic}}?"}, "body_en": {"Hello {{name}},\r\nwe miss you."},
		"subject_it": {""}, "body_it": {""}}
}

// TestConsoleCampaigns makes a reawaken campaign through the console
// with the admin API's validation (audited), counts its audience with
// the exclusions by reason, starts and pauses it, and shows its counts;
// a refusal keeps what was typed; a viewer only reads.
func TestConsoleCampaigns(t *testing.T) {
	e := newConsoleEnv(t, func(c *Config) { c.PostalAddress = "1 Main St, Springfield" })
	e.importPeople("ann@example.com,Ann,news,consent,2024-01-01,shop,\n" +
		"bob@example.com,Bob,news,legitimate_interest,,,\n" +
		"carl@example.com,Carl,news,consent,,,\n")
	m := e.signIn(consent.RoleMarketer)
	if r := m.do("GET", "/admin/campaigns/new", nil); r.status != http.StatusOK || !strings.Contains(r.body, `name="body_sv"`) {
		t.Fatalf("new campaign page: %d\n%s", r.status, r.body)
	} else if !strings.Contains(r.body, `<option value="news">Product news</option>`) ||
		!strings.Contains(r.body, `<label for="also-news">Product news</label>`) ||
		!strings.Contains(r.body, `<label for="lifecycle-dormant">`+e.en.T("console.lifecycle.dormant")+`</label>`) {
		t.Errorf("new campaign page: the audience is not chosen by topic and lifecycle names\n%s", r.body)
	}
	for _, tt := range []struct {
		what, field, value, detail string
	}{
		{"no mail", "subject_en", "", "templates is required"},
		{"a long deadline", "deadline", "500d", "deadline must be from"},
		{"a rate that is no number", "rate", "fast", "rate must be a whole number"},
		{"an unknown placeholder", "subject_en", "Hi {{first}}", "unknown placeholder"},
		{"a bad date", "no_activity_since", "soon", "no_activity_since must be a date"},
	} {
		form := campaignForm()
		form.Set(tt.field, tt.value)
		if tt.field == "subject_en" && tt.value == "" {
			form.Set("body_en", "")
		}
		form.Set("csrf", m.csrf())
		r := m.do("POST", "/admin/campaigns", form)
		if r.status != http.StatusBadRequest || !hasText(r.body, tt.detail) || !strings.Contains(r.body, `value="Spring wake-up"`) {
			t.Errorf("%s: got %d, want 400 saying %q with the name kept\n%s", tt.what, r.status, tt.detail, r.body)
		}
	}
	if camps, _ := e.db.Campaigns(t.Context()); len(camps) != 0 {
		t.Fatalf("refused campaigns stored %d", len(camps))
	}
	form := campaignForm()
	form.Set("csrf", m.csrf())
	r := m.do("POST", "/admin/campaigns", form)
	loc := regexp.MustCompile(`^/admin/campaigns/([a-z0-9]+)$`).FindStringSubmatch(r.header.Get("Location"))
	if r.status != http.StatusSeeOther || loc == nil {
		t.Fatalf("create: got %d to %q\n%s", r.status, r.header.Get("Location"), r.body)
	}
	id := loc[1]
	camp, err := e.db.Campaign(t.Context(), id)
	if err != nil || camp.Name != "Spring wake-up" || camp.Rate != 5 || camp.Deadline != consent.Span(14*consent.Day) ||
		len(camp.Templates) != 1 || camp.Templates["en"].Body != "Hello {{name}},\nwe miss you." ||
		len(camp.Audience.Lifecycle) != 2 || camp.Audience.NoActivitySince.Format("2006-01-02") != "2030-01-01" {
		t.Fatalf("stored campaign: %+v, %v", camp, err)
	}
	if l := e.lastAudit(); l.Action != "campaign.create" || l.Key != "key-marketer" {
		t.Errorf("audit: %+v", l)
	}

	page := "/admin/campaigns/" + id
	r = m.do("GET", page, nil)
	if r.status != http.StatusOK || !hasText(r.body, "Still interested in {{topic}}?") || !strings.Contains(r.body, `action="`+page+`/start"`) {
		t.Fatalf("campaign page: %d\n%s", r.status, r.body)
	}
	r = m.do("POST", page+"/preview", url.Values{"csrf": {m.csrf()}})
	if r.status != http.StatusOK || !strings.Contains(r.body, `<span class="num-inline">1</span>`) {
		t.Errorf("preview: %d, want an audience of 1\n%s", r.status, r.body)
	}
	for _, reason := range []string{"no_basis", "pending"} {
		if !regexp.MustCompile(regexp.QuoteMeta(e.en.T("console.campaign.excluded_"+reason)) + `</td><td>1</td>`).MatchString(r.body) {
			t.Errorf("preview: %s is not counted once", reason)
		}
	}
	// Person by person: who is in, who is out and why.
	if !strings.Contains(r.body, `href="`+page+`/audience"`) {
		t.Errorf("the preview does not link to the audience list")
	}
	r = m.do("GET", page+"/audience", nil)
	if r.status != http.StatusOK || !strings.Contains(tableRow(r.body, "ann@example.com"), e.en.T("console.audience.asked")) ||
		!strings.Contains(tableRow(r.body, "carl@example.com"), e.en.T("console.campaign.excluded_pending")) {
		t.Errorf("audience list: %d, want ann@ asked and carl@ left out as pending\n%s", r.status, r.body)
	}
	r = m.do("GET", page+"/audience?only=pending", nil)
	if r.status != http.StatusOK || !strings.Contains(r.body, "carl@example.com") || strings.Contains(r.body, "ann@example.com") ||
		strings.Contains(r.body, "bob@example.com") {
		t.Errorf("audience list of the pending: %d, want carl@ alone\n%s", r.status, r.body)
	}
	if r := m.do("GET", page+"/audience?only=maybe", nil); r.status != http.StatusBadRequest {
		t.Errorf("audience list with an unknown only: got %d, want 400", r.status)
	}
	r = m.do("POST", page+"/start", url.Values{"csrf": {m.csrf()}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != page+"?done=started" {
		t.Fatalf("start: got %d to %q\n%s", r.status, r.header.Get("Location"), r.body)
	}
	if l := e.lastAudit(); l.Action != "campaign.start" || l.Key != "key-marketer" || l.Target != id {
		t.Errorf("audit of the start: %+v", l)
	}
	r = m.do("GET", page+"?done=started", nil)
	if !strings.Contains(r.body, `data-refresh="10"`) || !strings.Contains(r.body, `action="`+page+`/pause"`) ||
		!hasText(r.body, e.en.T("console.campaign.done_started")) {
		t.Errorf("running campaign page lacks the live counts or the pause")
	}
	r = m.do("POST", page+"/pause", url.Values{"csrf": {m.csrf()}})
	if r.status != http.StatusSeeOther {
		t.Errorf("pause: got %d", r.status)
	}
	if camp, _ := e.db.Campaign(t.Context(), id); camp.State != consent.CampaignPaused {
		t.Errorf("state after the pause: %s", camp.State)
	}
	if l := e.lastAudit(); l.Action != "campaign.pause" || l.Key != "key-marketer" || l.Target != id {
		t.Errorf("audit of the pause: %+v", l)
	}
	if r := m.do("POST", page+"/pause", url.Values{"csrf": {m.csrf()}}); r.status != http.StatusSeeOther {
		t.Errorf("a second pause: got %d", r.status)
	}
	if r := m.do("GET", "/admin/campaigns", nil); !strings.Contains(r.body, `href="`+page+`"`) || !hasText(r.body, e.en.T("console.campaign.state_paused")) {
		t.Error("the list does not show the paused campaign")
	}

	if r := m.do("GET", page, nil); !strings.Contains(r.body, `action="`+page+`/cancel"`) {
		t.Errorf("the paused campaign's page offers no cancel")
	}
	r = m.do("POST", page+"/cancel", url.Values{"csrf": {m.csrf()}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != page+"?done=cancelled" {
		t.Fatalf("cancel: got %d to %q", r.status, r.header.Get("Location"))
	}
	if l := e.lastAudit(); l.Action != "campaign.cancel" || l.Key != "key-marketer" {
		t.Errorf("audit of the cancel: %+v", l)
	}
	r = m.do("GET", page+"?done=cancelled", nil)
	if !hasText(r.body, e.en.T("console.campaign.done_cancelled")) || !hasText(r.body, e.en.T("console.campaign.state_cancelled")) ||
		strings.Contains(r.body, `action="`+page+`/cancel"`) || strings.Contains(r.body, `action="`+page+`/start"`) {
		t.Errorf("cancelled campaign page: want the notice and state, no cancel or start\n%s", r.body)
	}
	if r := m.do("POST", page+"/start", url.Values{"csrf": {m.csrf()}}); r.status != http.StatusConflict {
		t.Errorf("start of a cancelled campaign: got %d, want 409", r.status)
	}

	v := e.signIn(consent.RoleViewer)
	if r := v.do("GET", page+"/audience", nil); r.status != http.StatusForbidden {
		t.Errorf("a viewer's audience list: got %d, want 403", r.status)
	}
	if r := v.do("POST", page+"/cancel", url.Values{"csrf": {v.csrf()}}); r.status != http.StatusForbidden {
		t.Errorf("a viewer's cancel: got %d, want 403", r.status)
	}
	if r := v.do("GET", page, nil); r.status != http.StatusOK || strings.Contains(r.body, "/start\"") || strings.Contains(r.body, "/preview\"") {
		t.Errorf("a viewer's campaign page: %d, want it without actions", r.status)
	}
	if r := v.do("POST", page+"/start", url.Values{"csrf": {v.csrf()}}); r.status != http.StatusForbidden {
		t.Errorf("a viewer's start: got %d", r.status)
	}
}

// TestConsoleCampaignNoPostal refuses to start a campaign while no postal
// address is configured, and says so.
func TestConsoleCampaignNoPostal(t *testing.T) {
	e := newConsoleEnv(t, nil)
	m := e.signIn(consent.RoleMarketer)
	form := campaignForm()
	form.Set("csrf", m.csrf())
	page := m.do("POST", "/admin/campaigns", form).header.Get("Location")
	r := m.do("GET", page, nil)
	if strings.Contains(r.body, "/start\"") || !hasText(r.body, e.en.T("console.campaign.no_postal")) {
		t.Errorf("campaign page without a postal address: want no start and the reason\n%s", r.body)
	}
	r = m.do("POST", page+"/start", url.Values{"csrf": {m.csrf()}})
	if r.status != http.StatusConflict || !hasText(r.body, e.en.T("console.campaign.no_postal")) {
		t.Errorf("start without a postal address: got %d", r.status)
	}
}

// tableRow returns the table row of body that holds text, or "".
func tableRow(body, text string) string {
	for _, row := range strings.Split(body, "<tr>") {
		if strings.Contains(row, text) {
			row, _, _ = strings.Cut(row, "</tr>")
			return row
		}
	}
	return ""
}
