package app

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBreachRegister walks GDPR Art. 33/34 end to end: an incident is
// recorded with its 72-hour deadline; the people whose data existed in its
// window are listed (an unsubscribed, suppressed person too, someone who
// signed up after the window not); the report for the authority states
// the deadline and the count; the notice reaches every affected person
// through the real relay, the unsubscribed one included, once.
func TestBreachRegister(t *testing.T) {
	s := startService(t, nil)
	s.importCSV("email,topics,basis,consented_at,source\nin@example.com,news,consent,2024-01-01,x\nout@example.com,news,consent,2024-01-01,x\n")
	out, _ := s.subscriber("out@example.com")
	s.adminJSON("DELETE", "/subscribers/"+out.ID, "", http.StatusNoContent, nil)
	s.importCSV("email,topics,basis,consented_at,source\nunsub@example.com,news,consent,2024-01-01,x\n")
	unsub, _ := s.subscriber("unsub@example.com")
	var link struct{ URL string }
	s.adminJSON("POST", "/subscribers/"+unsub.ID+"/preference-link", "", http.StatusCreated, &link)
	s.do("POST", link.URL, "application/x-www-form-urlencoded", "action=unsubscribe_all")

	// The window ends a second after the signups above (RFC 3339 in whole
	// seconds), an hour before the one below.
	windowEnd := s.clock.Now().UTC().Add(time.Second).Truncate(time.Second)
	s.clock.Advance(time.Hour)
	s.importCSV("email,topics,basis,consented_at,source\nlater@example.com,news,consent,2024-01-01,x\n")

	discovered := windowEnd.Add(30 * time.Minute).Format(time.RFC3339)
	body := `{"discovered_at":"` + discovered + `","description":"A backup copy was readable\nfrom a public bucket.","data_categories":["email","name"],` +
		`"from":"2024-01-01T00:00:00Z","to":"` + windowEnd.Format(time.RFC3339) + `"}`
	var inc struct {
		ID       string
		Deadline time.Time `json:"notify_authority_by"`
	}
	s.adminJSON("POST", "/incidents", body, http.StatusCreated, &inc)
	if want := windowEnd.Add(30*time.Minute + 72*time.Hour).Truncate(time.Second); !inc.Deadline.Equal(want) {
		t.Errorf("deadline: got %v, want %v", inc.Deadline, want)
	}
	s.adminJSON("POST", "/incidents", `{"discovered_at":"2999-01-01T00:00:00Z","description":"x","data_categories":["email"],"from":"2024-01-01T00:00:00Z","to":"2024-01-02T00:00:00Z"}`, http.StatusBadRequest, nil)

	r := s.adminAs(testAdminKey, "GET", "/incidents/"+inc.ID+"/affected?format=csv", "", "")
	for _, want := range []string{"in@example.com", "unsub@example.com"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("affected list lacks %s:\n%s", want, r.body)
		}
	}
	for _, not := range []string{"out@example.com", "later@example.com"} {
		if strings.Contains(r.body, not) {
			t.Errorf("affected list holds %s (erased, or signed up after the window):\n%s", not, r.body)
		}
	}
	nd := s.adminAs(testAdminKey, "GET", "/incidents/"+inc.ID+"/affected?format=ndjson", "", "")
	lines := strings.Split(strings.TrimSpace(nd.body), "\n")
	if nd.status != http.StatusOK || len(lines) != 2 || !strings.HasPrefix(lines[0], "{") || !strings.Contains(nd.body, `"in@example.com"`) {
		t.Errorf("affected list as NDJSON: got %d\n%s", nd.status, nd.body)
	}
	report := s.adminAs(testAdminKey, "GET", "/incidents/"+inc.ID+"/report", "", "").body
	for _, want := range []string{"Notify the supervisory authority by: " + inc.Deadline.UTC().Format("2006-01-02 15:04 UTC"), "concerned: 2 ", "email, name", "public bucket"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}

	before := s.smtp.Count()
	var queued struct{ Queued int }
	s.adminJSON("POST", "/incidents/"+inc.ID+"/notify", `{"message":"Change the password of your shop account."}`, http.StatusAccepted, &queued)
	if queued.Queued != 2 {
		t.Fatalf("notices queued: got %d, want 2", queued.Queued)
	}
	to := map[string]bool{}
	for _, m := range s.waitMails(before + 2)[before:] {
		pm := parseMail(t, m.Data)
		to[strings.Trim(pm.header.Get("To"), "<>")] = true
		if !strings.Contains(pm.text, "Change the password of your shop account.") || pm.header.Get("List-Unsubscribe") != "" {
			t.Errorf("notice: want the operator's text and no unsubscribe header:\n%s", pm.text)
		}
	}
	if !to["in@example.com"] || !to["unsub@example.com"] {
		t.Errorf("notices went to %v, want in@ and unsub@ (opted out, still owed the notice)", to)
	}
	s.adminJSON("POST", "/incidents/"+inc.ID+"/notify", `{"message":"again"}`, http.StatusConflict, nil)

	// Recording, listing and notifying are each in the audit log.
	var audit struct {
		Items []struct{ Action, Target string }
	}
	s.adminJSON("GET", "/audit", "", http.StatusOK, &audit)
	seen := map[string]bool{}
	for _, e := range audit.Items {
		if e.Target == inc.ID {
			seen[e.Action] = true
		}
	}
	for _, a := range []string{"incident.create", "incident.affected", "incident.notify"} {
		if !seen[a] {
			t.Errorf("audit log lacks %s of the incident: %+v", a, audit.Items)
		}
	}

	// Someone erased after the incident was recorded gets no notice of a
	// second incident over the same window: nothing is left to write to.
	in, _ := s.subscriber("in@example.com")
	s.adminJSON("DELETE", "/subscribers/"+in.ID, "", http.StatusNoContent, nil)
	var second struct{ ID string }
	s.adminJSON("POST", "/incidents", body, http.StatusCreated, &second)
	before = s.smtp.Count()
	s.adminJSON("POST", "/incidents/"+second.ID+"/notify", `{"message":"Again."}`, http.StatusAccepted, &queued)
	if queued.Queued != 1 {
		t.Errorf("notices of the second incident: got %d, want 1 (unsub@; in@ is erased)", queued.Queued)
	}
	for _, m := range s.waitMails(before + 1)[before:] {
		if strings.Contains(string(m.Data), "in@example.com") {
			t.Error("an erased person got the incident notice")
		}
	}
}
