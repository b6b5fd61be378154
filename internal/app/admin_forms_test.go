package app

import (
	"net/http"
	"testing"
)

// TestFormPrivacyAndProofOfWork: the admin API sets a form's privacy link
// and proof-of-work difficulty, keeps them across updates and refuses bad
// values.
func TestFormPrivacyAndProofOfWork(t *testing.T) {
	s := startService(t, nil)
	var f struct {
		PrivacyURL  string `json:"privacy_url"`
		ProofOfWork int    `json:"proof_of_work"`
	}
	s.adminJSON("PUT", "/forms/newsletter", `{"topics":["news"],"privacy_url":"https://shop.example/privacy","proof_of_work":12}`, http.StatusOK, &f)
	if f.PrivacyURL != "https://shop.example/privacy" || f.ProofOfWork != 12 {
		t.Fatalf("after PUT: got %+v", f)
	}
	s.adminJSON("GET", "/forms/newsletter", "", http.StatusOK, &f)
	if f.PrivacyURL != "https://shop.example/privacy" || f.ProofOfWork != 12 {
		t.Errorf("GET after PUT: got %+v", f)
	}
	for _, body := range []string{
		`{"topics":["news"],"privacy_url":"javascript:alert(1)"}`,
		`{"topics":["news"],"privacy_url":"http://shop.example/privacy"}`,
		`{"topics":["news"],"proof_of_work":25}`,
		`{"topics":["news"],"proof_of_work":-1}`,
	} {
		s.adminJSON("PUT", "/forms/newsletter", body, http.StatusBadRequest, nil)
	}
}

// TestExportAndBackupAudited: bulk reads of personal data are in the
// audit log (GDPR Art. 5(2) and 33(3)).
func TestExportAndBackupAudited(t *testing.T) {
	s := startService(t, nil)
	for _, path := range []string{"/exports/subscribers?format=ndjson", "/backup"} {
		if r := s.adminAs(testAdminKey, "GET", path, "", ""); r.status != http.StatusOK {
			t.Fatalf("%s: %d", path, r.status)
		}
	}
	var audit struct {
		Items []struct {
			Action string `json:"action"`
			Target string `json:"target"`
		} `json:"items"`
	}
	s.adminJSON("GET", "/audit?limit=10", "", http.StatusOK, &audit)
	got := map[string]bool{}
	for _, e := range audit.Items {
		got[e.Action] = true
	}
	if !got["export"] || !got["backup"] {
		t.Errorf("audit log: got %+v, want an export and a backup entry", audit.Items)
	}
}
