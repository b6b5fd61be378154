package app

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"optin/internal/consent"
)

// TestLegitimateInterestAssessments walks the register end to end: an
// admin records an assessment once (a marketer may not; the same id
// again is a conflict and nothing has an edit route); a revision
// supersedes it; an import row and an activity under legitimate interest
// are refused without a current assessment and accepted citing one; the
// consent view and the person's own export show the assessment cited.
func TestLegitimateInterestAssessments(t *testing.T) {
	s := startService(t, nil)
	const lia = `{"id":"lia-shop","purpose":"Tell customers about similar products.","necessity":"Mail is the channel they use with us.",` +
		`"balancing":"Customers expect it; one click stops it.","date":"2024-05-01","author":"Ann, DPO"}`
	s.adminJSON("POST", "/assessments", `{"id":"lia-shop","purpose":"x"}`, http.StatusBadRequest, nil)
	if r := s.adminAs(s.newKey("m", consent.RoleMarketer), "POST", "/assessments", "application/json", lia); r.status != http.StatusForbidden {
		t.Errorf("marketer records an assessment: got %d, want 403", r.status)
	}
	s.adminJSON("POST", "/assessments", lia, http.StatusCreated, nil)
	s.adminJSON("POST", "/assessments", strings.Replace(lia, "one click stops it", "edited", 1), http.StatusConflict, nil)
	for _, m := range []string{"PUT", "PATCH", "DELETE"} {
		if r := s.adminAs(testAdminKey, m, "/assessments/lia-shop", "application/json", lia); r.status != http.StatusMethodNotAllowed {
			t.Errorf("%s /assessments/lia-shop: got %d, want 405 (an assessment is never changed)", m, r.status)
		}
	}
	s.adminJSON("POST", "/assessments", strings.Replace(strings.Replace(lia, `"lia-shop"`, `"lia-shop-2"`, 1), `"date"`, `"supersedes":"lia-shop","date"`, 1), http.StatusCreated, nil)
	var old struct {
		Balancing    string `json:"balancing"`
		SupersededBy string `json:"superseded_by"`
	}
	s.adminJSON("GET", "/assessments/lia-shop", "", http.StatusOK, &old)
	if old.SupersededBy != "lia-shop-2" || old.Balancing != "Customers expect it; one click stops it." {
		t.Errorf("the first assessment after its revision: got %+v, want it unchanged and superseded by lia-shop-2", old)
	}

	rep := s.importCSV("email,topics,basis,assessment\nbare@example.com,news,legitimate_interest,\nold@example.com,news,legitimate_interest,lia-shop\nli@example.com,news,legitimate_interest,lia-shop-2\n")
	if rep.Imported != 1 || rep.InvalidCount != 2 || !strings.Contains(rep.Invalid[0].Reason, "assessment") || !strings.Contains(rep.Invalid[1].Reason, "superseded by lia-shop-2") {
		t.Errorf("import: got %+v, want 2 refused (no assessment; a superseded one) and li@ imported", rep)
	}
	sub, ok := s.subscriber("li@example.com")
	if !ok {
		t.Fatal("li@example.com not imported")
	}
	s.adminJSON("POST", "/subscribers/"+sub.ID+"/activity", `{"kind":"enquiry","at":"2024-06-01T10:00:00Z","reason":"asked about sizes"}`, http.StatusBadRequest, nil)
	s.adminJSON("POST", "/subscribers/"+sub.ID+"/activity", `{"kind":"enquiry","at":"2024-06-01T10:00:00Z","reason":"asked about sizes","assessment":"lia-shop-2"}`, http.StatusOK, nil)

	var consents struct {
		Items []struct {
			Type             string `json:"type"`
			Assessment       string `json:"assessment"`
			AssessmentRecord *struct {
				Purpose string `json:"purpose"`
				Author  string `json:"author"`
			} `json:"assessment_record"`
		}
	}
	s.adminJSON("GET", "/subscribers/"+sub.ID+"/consents", "", http.StatusOK, &consents)
	cited := 0
	for _, ev := range consents.Items {
		if ev.Type != "imported" && ev.Type != "activity" {
			continue // the information notice's event cites none
		}
		cited++
		if ev.Assessment != "lia-shop-2" || ev.AssessmentRecord == nil || ev.AssessmentRecord.Author != "Ann, DPO" {
			t.Errorf("%s event: got %+v, want it citing lia-shop-2 with the assessment", ev.Type, ev)
		}
	}
	if cited != 2 {
		t.Errorf("consents: got %+v, want the imported and the activity event", consents.Items)
	}

	var link struct{ URL string }
	s.adminJSON("POST", "/subscribers/"+sub.ID+"/preference-link", "", http.StatusCreated, &link)
	r := s.do("GET", link.URL+"/export", "", "")
	var exp struct {
		Events []struct {
			Assessment       string `json:"assessment"`
			AssessmentRecord *struct {
				Necessity string `json:"necessity"`
			} `json:"assessment_record"`
		}
	}
	if err := json.Unmarshal([]byte(r.body), &exp); err != nil || len(exp.Events) == 0 {
		t.Fatalf("export: %v\n%s", err, r.body)
	}
	if ev := exp.Events[0]; ev.AssessmentRecord == nil || ev.AssessmentRecord.Necessity != "Mail is the channel they use with us." {
		t.Errorf("export's imported event: got %+v, want the assessment it cites", ev)
	}
}
