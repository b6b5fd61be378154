package app

import (
	"net/http"
	"optin/internal/postgres/pgtest"
	"strings"
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
// audit log (GDPR Art. 5(2) and 33(3)). On PostgreSQL a backup is refused
// with 409 (its own tools back it up), and the attempt is audited too,
// as refused, naming no file.
func TestExportAndBackupAudited(t *testing.T) {
	s := startService(t, nil)
	backupStatus := http.StatusOK
	if pgtest.Asked() {
		backupStatus = http.StatusConflict
	}
	for path, want := range map[string]int{"/exports/subscribers?format=ndjson": http.StatusOK, "/backup": backupStatus} {
		if r := s.adminAs(testAdminKey, "GET", path, "", ""); r.status != want {
			t.Fatalf("%s: got %d, want %d (%s)", path, r.status, want, r.body)
		}
	}
	var audit struct {
		Items []struct {
			Action string `json:"action"`
			Target string `json:"target"`
			Count  int    `json:"count"`
		} `json:"items"`
	}
	s.adminJSON("GET", "/audit?limit=10", "", http.StatusOK, &audit)
	got := map[string]bool{}
	for _, e := range audit.Items {
		got[e.Action] = true
		if e.Action != "backup" {
			continue
		}
		if refused := backupStatus != http.StatusOK; refused != (e.Target == "refused" && e.Count == 0) ||
			!refused && (!strings.HasPrefix(e.Target, "optin-") || e.Count != 1) {
			t.Errorf("audit of a backup answered %d: got target %q, count %d", backupStatus, e.Target, e.Count)
		}
	}
	if !got["export"] || !got["backup"] {
		t.Errorf("audit log: got %+v, want an export and a backup entry", audit.Items)
	}
}

// TestFormLocaleAndPartialUpdate: a form created without a locale keeps
// none and speaks each visitor's language; a PUT that gives some fields
// changes those and keeps the rest; a given wording replaces the whole
// map; an id that differs from the path is refused.
func TestFormLocaleAndPartialUpdate(t *testing.T) {
	s := startService(t, nil)
	var f struct {
		Locale         string
		Topics         []string
		Wording        map[string]string
		AllowedOrigins []string `json:"allowed_origins"`
	}
	s.adminJSON("POST", "/forms", `{"id":"shop","topics":["news"],"wording":{"en":"Yes please","it":"Sì grazie"},"allowed_origins":["https://shop.example"]}`, http.StatusCreated, &f)
	if f.Locale != "" {
		t.Errorf("locale of a form created without one: got %q, want empty (the visitor's)", f.Locale)
	}
	for lang, want := range map[string]string{"it-IT,it;q=0.9": `lang="it"`, "sv-SE": `lang="sv"`, "en-GB": `lang="en"`} {
		if r := s.do("GET", "/f/shop", "", "", "Accept-Language", lang); !strings.Contains(r.body, want) {
			t.Errorf("Accept-Language %s: page lacks %s", lang, want)
		}
	}

	s.adminJSON("PUT", "/forms/shop", `{"allowed_origins":["https://shop.example","https://www.shop.example"]}`, http.StatusOK, &f)
	if len(f.Topics) != 1 || f.Wording["it"] != "Sì grazie" || len(f.AllowedOrigins) != 2 {
		t.Errorf("after a PUT of allowed_origins only: got %+v, want the rest kept", f)
	}
	f.Wording = nil // decoding into a map merges
	s.adminJSON("PUT", "/forms/shop", `{"wording":{"en":"Yes"}}`, http.StatusOK, &f)
	if len(f.Wording) != 1 || f.Wording["en"] != "Yes" {
		t.Errorf("after a PUT of wording: got %v, want only the given wording", f.Wording)
	}
	s.adminJSON("PUT", "/forms/shop", `{"locale":"it"}`, http.StatusOK, &f)
	if r := s.do("GET", "/f/shop", "", "", "Accept-Language", "sv-SE"); !strings.Contains(r.body, `lang="it"`) {
		t.Errorf("a form with locale it: want it whatever the visitor's language")
	}
	s.adminJSON("PUT", "/forms/shop", `{"id":"other"}`, http.StatusBadRequest, nil)
	s.adminJSON("PUT", "/forms/shop", `{"bogus":1}`, http.StatusBadRequest, nil)
	s.adminJSON("PUT", "/forms/nope", `{}`, http.StatusNotFound, nil)
}
