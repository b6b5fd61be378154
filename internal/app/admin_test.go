package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"optin/internal/bolt"
	"optin/internal/bolt/bolttest"
	"optin/internal/config"
	"optin/internal/consent"
	"optin/internal/postgres/pgtest"
)

// adminAs sends an admin API request with key (none when "").
func (s *service) adminAs(key, method, path, contentType, body string) response {
	s.t.Helper()
	var h []string
	if key != "" {
		h = []string{"Authorization", "Bearer " + key}
	}
	return s.do(method, "/api/v1"+path, contentType, body, h...)
}

// adminJSON sends a JSON request with the bootstrap admin key, checks the
// status and decodes the answer into out (when non-nil).
func (s *service) adminJSON(method, path, body string, want int, out any) {
	s.t.Helper()
	r := s.adminAs(testAdminKey, method, path, "application/json", body)
	if r.status != want {
		s.t.Fatalf("%s %s: got %d, want %d (%s)", method, path, r.status, want, r.body)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(r.body), out); err != nil {
			s.t.Fatalf("%s %s: decoding %s: %v", method, path, r.body, err)
		}
	}
}

// newKey makes an API key with role directly in the store.
func (s *service) newKey(name string, role consent.Role) string {
	s.t.Helper()
	secret, _, err := s.app.DB.NewAPIKey(context.Background(), consent.CLIActor(), name, role)
	if err != nil {
		s.t.Fatal(err)
	}
	return secret
}

type importReport struct {
	Batch             string `json:"batch"`
	Imported          int    `json:"imported"`
	Updated           int    `json:"updated"`
	Unchanged         int    `json:"unchanged"`
	Pending           int    `json:"pending"`
	SkippedSuppressed int    `json:"skipped_suppressed"`
	Invalid           []struct {
		Line   int    `json:"line"`
		Reason string `json:"reason"`
	} `json:"invalid"`
	InvalidCount int `json:"invalid_count"`
}

func (s *service) importCSV(csv string) importReport {
	s.t.Helper()
	r := s.adminAs(testAdminKey, "POST", "/imports", "text/csv", csv)
	if r.status != http.StatusOK {
		s.t.Fatalf("import: got %d (%s)", r.status, r.body)
	}
	var rep importReport
	if err := json.Unmarshal([]byte(r.body), &rep); err != nil {
		s.t.Fatal(err)
	}
	return rep
}

// TestAdminRoleMatrix sends every endpoint family with each role (and
// none) and checks who gets through: 401 without a key, 403 for a role
// that may not act. Bodies are invalid where a write would succeed, so
// the order of the cases does not matter.
func TestAdminRoleMatrix(t *testing.T) {
	s := startService(t, nil)
	keys := map[string]string{"admin": testAdminKey, "marketer": s.newKey("m", consent.RoleMarketer),
		"viewer": s.newKey("v", consent.RoleViewer), "none": ""}
	const js, csv = "application/json", "text/csv"
	tests := []struct {
		method, path, ct, body string
		// want: admin, marketer, viewer, none
		want [4]int
	}{
		{"GET", "/topics", "", "", [4]int{200, 200, 200, 401}},
		{"POST", "/topics", js, `{"id":"Bad!"}`, [4]int{400, 403, 403, 401}},
		{"PUT", "/topics/news", js, `{}`, [4]int{400, 403, 403, 401}},
		{"GET", "/forms", "", "", [4]int{200, 200, 200, 401}},
		{"POST", "/forms", js, `{}`, [4]int{400, 403, 403, 401}},
		{"GET", "/forms/newsletter", "", "", [4]int{200, 200, 200, 401}},
		{"PUT", "/forms/newsletter", js, `{"locale":"xx"}`, [4]int{400, 403, 403, 401}},
		{"DELETE", "/forms/nope", "", "", [4]int{404, 403, 403, 401}},
		{"GET", "/forms/newsletter/snippet", "", "", [4]int{200, 200, 200, 401}},
		{"GET", "/subscribers", "", "", [4]int{200, 200, 200, 401}},
		{"GET", "/subscribers/nope", "", "", [4]int{404, 404, 404, 401}},
		{"GET", "/subscribers/nope/consents", "", "", [4]int{404, 404, 404, 401}},
		{"POST", "/subscribers/nope/activity", js, `{"kind":"purchase","at":"2020-01-01T00:00:00Z"}`, [4]int{404, 404, 403, 401}},
		{"PATCH", "/subscribers/nope", js, `{"name":"X"}`, [4]int{404, 404, 403, 401}},
		{"POST", "/subscribers/nope/preference-link", "", "", [4]int{404, 404, 403, 401}},
		{"POST", "/subscribers/nope/unsubscribe", js, `{"reason":"asked"}`, [4]int{404, 404, 403, 401}},
		{"DELETE", "/subscribers/nope", "", "", [4]int{404, 404, 403, 401}},
		{"POST", "/imports", csv, "email,topics,basis\n", [4]int{200, 200, 403, 401}},
		{"GET", "/exports/subscribers", "", "", [4]int{200, 200, 403, 401}},
		{"GET", "/suppressions", "", "", [4]int{200, 200, 200, 401}},
		{"POST", "/suppressions", js, `{"email":"bad"}`, [4]int{400, 403, 403, 401}},
		{"DELETE", "/suppressions/00", "", "", [4]int{404, 403, 403, 401}},
		{"GET", "/stats", "", "", [4]int{200, 200, 200, 401}},
		{"GET", "/audit", "", "", [4]int{200, 200, 200, 401}},
		{"POST", "/incidents", js, `{}`, [4]int{400, 403, 403, 401}},
		{"GET", "/incidents/nope", "", "", [4]int{404, 403, 403, 401}},
		{"GET", "/incidents/nope/affected", "", "", [4]int{404, 403, 403, 401}},
		{"GET", "/incidents/nope/report", "", "", [4]int{404, 403, 403, 401}},
		{"POST", "/incidents/nope/notify", js, `{"message":"x"}`, [4]int{404, 403, 403, 401}},
		{"GET", "/assessments", "", "", [4]int{200, 200, 200, 401}},
		{"POST", "/assessments", js, `{}`, [4]int{400, 403, 403, 401}},
		{"GET", "/assessments/nope", "", "", [4]int{404, 404, 404, 401}},
		{"GET", "/ledger/verify", "", "", [4]int{200, 200, 200, 401}},
		{"GET", "/backup", "", "", [4]int{200, 403, 403, 401}},
		{"GET", "/webhooks", "", "", [4]int{200, 403, 403, 401}},
		{"POST", "/webhooks", js, `{"url":"http://crm.example/"}`, [4]int{400, 403, 403, 401}},
		{"DELETE", "/webhooks/nope", "", "", [4]int{404, 403, 403, 401}},
		{"POST", "/webhooks/nope/redeliver", "", "", [4]int{404, 403, 403, 401}},
		{"GET", "/apikeys", "", "", [4]int{200, 403, 403, 401}},
		{"POST", "/apikeys", js, `{}`, [4]int{400, 403, 403, 401}},
		{"DELETE", "/apikeys/nope", "", "", [4]int{404, 403, 403, 401}},
		{"GET", "/openapi.yaml", "", "", [4]int{200, 200, 200, 200}},
	}
	for _, tt := range tests {
		if tt.path == "/backup" && pgtest.Asked() {
			tt.want[0] = http.StatusConflict // PostgreSQL is backed up with its own tools
		}
		for i, role := range []string{"admin", "marketer", "viewer", "none"} {
			t.Run(role+" "+tt.method+" "+tt.path, func(t *testing.T) {
				r := s.adminAs(keys[role], tt.method, tt.path, tt.ct, tt.body)
				if got, want := r.status, tt.want[i]; got != want {
					t.Errorf("got %d, want %d (%s)", got, want, r.body)
				}
			})
		}
	}
}

// TestAPIKeyLifecycle: create through the API, last use recorded at most
// once a minute, revocation takes effect at once, all of it audited.
func TestAPIKeyLifecycle(t *testing.T) {
	s := startService(t, nil)
	var created struct {
		Key  string `json:"key"`
		Info struct {
			ID string `json:"id"`
		} `json:"info"`
	}
	s.adminJSON("POST", "/apikeys", `{"name":"shop","role":"viewer"}`, http.StatusCreated, &created)
	s.adminJSON("POST", "/apikeys", `{"name":"shop","role":"viewer"}`, http.StatusConflict, nil)
	if r := s.adminAs(created.Key, "GET", "/topics", "", ""); r.status != http.StatusOK {
		t.Fatalf("new key: got %d", r.status)
	}
	lastUsed := func() time.Time {
		keys, err := s.app.DB.APIKeys(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if k.ID == created.Info.ID {
				return k.LastUsed
			}
		}
		t.Fatal("key not listed")
		return time.Time{}
	}
	first := lastUsed()
	if first.IsZero() {
		t.Fatal("last use not recorded")
	}
	s.clock.Advance(30 * time.Second)
	s.adminAs(created.Key, "GET", "/topics", "", "")
	if got := lastUsed(); !got.Equal(first) {
		t.Errorf("last use rewritten within a minute: %v, then %v", first, got)
	}
	s.clock.Advance(31 * time.Second)
	s.adminAs(created.Key, "GET", "/topics", "", "")
	if got := lastUsed(); !got.After(first) {
		t.Errorf("last use not updated after a minute: still %v", got)
	}

	s.adminJSON("DELETE", "/apikeys/"+created.Info.ID, "", http.StatusNoContent, nil)
	if r := s.adminAs(created.Key, "GET", "/topics", "", ""); r.status != http.StatusUnauthorized {
		t.Errorf("revoked key: got %d, want 401", r.status)
	}
	var audit struct {
		Items []struct {
			Key, KeyID, Action, Target string
			Count                      int
		} `json:"items"`
	}
	s.adminJSON("GET", "/audit?limit=1", "", http.StatusOK, &audit)
	if len(audit.Items) != 1 || audit.Items[0].Action != "apikey.revoke" || audit.Items[0].Key != "bootstrap" {
		t.Errorf("newest audit entry: got %+v, want apikey.revoke by bootstrap", audit.Items)
	}
	var page struct {
		Items      []json.RawMessage `json:"items"`
		NextCursor string            `json:"next_cursor"`
	}
	s.adminJSON("GET", "/audit?limit=1", "", http.StatusOK, &page)
	s.adminJSON("GET", "/audit?limit=5&cursor="+page.NextCursor, "", http.StatusOK, &page)
	if got, want := len(page.Items), 1; got != want {
		t.Errorf("second audit page: got %d entries, want %d (apikey.create)", got, want)
	}
}

// TestAdminTopicsAndForms covers catalog CRUD, its validation, wording
// versions and the embed snippet.
func TestAdminTopicsAndForms(t *testing.T) {
	s := startService(t, nil)
	s.adminJSON("POST", "/topics", `{"id":"offers","name":"Offers"}`, http.StatusCreated, nil)
	s.adminJSON("POST", "/topics", `{"id":"offers","name":"Offers"}`, http.StatusConflict, nil)

	good := `{"id":"shop","topics":["news","offers"],"locale":"it","wording":{"it":"Voglio ricevere","en":"I want"},` +
		`"allowed_origins":["https://shop.example"],"success_url":"https://shop.example/thanks"}`
	invalid := []struct{ name, body string }{
		{"bad id", `{"id":"Shop!","topics":["news"]}`},
		{"no topics", `{"id":"x","topics":[]}`},
		{"unknown topic", `{"id":"x","topics":["nope"]}`},
		{"bad locale", `{"id":"x","topics":["news"],"locale":"de"}`},
		{"bad wording locale", `{"id":"x","topics":["news"],"wording":{"fr":"x"}}`},
		{"origin with path", `{"id":"x","topics":["news"],"allowed_origins":["https://shop.example/a"]}`},
		{"http origin", `{"id":"x","topics":["news"],"allowed_origins":["http://shop.example"]}`},
		{"open redirect", `{"id":"x","topics":["news"],"allowed_origins":["https://shop.example"],"success_url":"https://evil.example/"}`},
		{"http success url", `{"id":"x","topics":["news"],"allowed_origins":["https://shop.example"],"success_url":"http://shop.example/"}`},
		{"unknown field", `{"id":"x","topics":["news"],"sucess_url":"x"}`},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) { s.adminJSON("POST", "/forms", tt.body, http.StatusBadRequest, nil) })
	}
	type form struct {
		WordingVersion int `json:"wording_version"`
	}
	var f form
	s.adminJSON("POST", "/forms", good, http.StatusCreated, &f)
	if f.WordingVersion != 1 {
		t.Errorf("new form wording version: got %d, want 1", f.WordingVersion)
	}
	s.adminJSON("PUT", "/forms/shop", good, http.StatusOK, &f)
	if f.WordingVersion != 1 {
		t.Errorf("unchanged form: wording version %d, want 1", f.WordingVersion)
	}
	s.adminJSON("PUT", "/forms/shop", strings.Replace(good, "Voglio ricevere", "Desidero ricevere", 1), http.StatusOK, &f)
	if f.WordingVersion != 2 {
		t.Errorf("after wording change: wording version %d, want 2", f.WordingVersion)
	}
	s.adminJSON("PUT", "/topics/offers", `{"name":"Offers and sales"}`, http.StatusOK, nil)
	s.adminJSON("GET", "/forms/shop", "", http.StatusOK, &f)
	if f.WordingVersion != 3 {
		t.Errorf("after topic rename: wording version %d, want 3", f.WordingVersion)
	}

	var snip struct{ Iframe, Script, HTML string }
	s.adminJSON("GET", "/forms/shop/snippet", "", http.StatusOK, &snip)
	for _, want := range []string{`<iframe src="` + s.url + `/f/shop"`} {
		if !strings.Contains(snip.Iframe, want) {
			t.Errorf("iframe %q lacks %q", snip.Iframe, want)
		}
	}
	for _, want := range []string{`<div data-optin-form="shop"></div>`, `src="` + s.url + `/f/shop/embed.js"`} {
		if !strings.Contains(snip.Script, want) {
			t.Errorf("script %q lacks %q", snip.Script, want)
		}
	}
	// The plain form shows what the hosted one does, in the form's
	// language: its labels and the link to the privacy notice.
	for _, want := range []string{`action="` + s.url + `/f/shop"`, `name="topics" value="offers"`, "Desidero ricevere", `name="website"`,
		"Indirizzo email", "Nome (facoltativo)", "Iscriviti", `<a href="` + s.url + `/privacy"`, "Informativa sulla privacy"} {
		if !strings.Contains(snip.HTML, want) {
			t.Errorf("html lacks %q:\n%s", want, snip.HTML)
		}
	}
	if strings.Contains(snip.HTML, "checked") {
		t.Error("snippet pre-ticks a box")
	}

	// The success URL is used after an HTML signup from the allowed origin.
	r := s.do("POST", "/f/shop", "application/x-www-form-urlencoded", "email=f@example.com&topics=offers", "Origin", "https://shop.example")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "https://shop.example/thanks" {
		t.Errorf("signup: got %d Location %q, want 303 to the success URL", r.status, r.header.Get("Location"))
	}
	s.adminJSON("DELETE", "/forms/shop", "", http.StatusNoContent, nil)
	s.adminJSON("GET", "/forms/shop", "", http.StatusNotFound, nil)
}

// TestAdminImportMixed imports a file with valid, invalid, suppressed and
// consent-without-evidence rows: the valid rows land, the others are
// reported, and the evidence-less row gets a double opt-in mail that
// confirms.
func TestAdminImportMixed(t *testing.T) {
	s := startService(t, nil)
	s.adminJSON("POST", "/topics", `{"id":"offers","name":"Offers"}`, http.StatusCreated, nil)
	s.adminJSON("POST", "/suppressions", `{"email":"blocked@example.com","topic":"offers","note":"complaint"}`, http.StatusCreated, nil)
	csv := strings.Join([]string{
		"email,name,topics,basis,consented_at,source,last_purchase_at",
		"ann@example.com,Ann,news;offers,consent,2024-03-01T10:00:00Z,https://old.example/signup,", // 2 imported
		"bob@example.com,,news,soft_opt_in,,,2025-01-02",                                           // 3 imported
		"cy@example.com,,news,legitimate_interest,,,",                                              // 4 imported
		"not-an-address,,news,consent,2024-03-01T10:00:00Z,x,",                                     // 5 invalid
		"dee@example.com,,news,soft_opt_in,,,",                                                     // 6 invalid: no purchase
		"eve@example.com,,nope,consent,2024-03-01T10:00:00Z,x,",                                    // 7 invalid: topic
		"fay@example.com,,news,consent,2999-01-01T00:00:00Z,x,",                                    // 8 invalid: future
		"blocked@example.com,,news;offers,consent,2024-03-01T10:00:00Z,x,",                         // 9 suppressed
		"gil@example.com,Gil,news,consent,,,",                                                      // 10 pending
		"ann@example.com,,news,consent,,,",                                                         // 11 existing confirmed: unchanged
		`"broken,news,consent`,                                                                     // 12 invalid: CSV
	}, "\n") + "\n"
	rep := s.importCSV(csv)
	if got, want := [5]int{rep.Imported, rep.Updated, rep.Unchanged, rep.Pending, rep.SkippedSuppressed}, [5]int{4, 0, 1, 1, 1}; got != want {
		t.Errorf("imported, updated, unchanged, pending, skipped: got %v, want %v (%+v)", got, want, rep)
	}
	var lines []int
	for _, p := range rep.Invalid {
		lines = append(lines, p.Line)
	}
	slices.Sort(lines)
	if got, want := lines, []int{5, 6, 7, 8, 12}; !slices.Equal(got, want) {
		t.Errorf("invalid lines: got %v, want %v (%+v)", got, want, rep.Invalid)
	}

	ann, _ := s.subscriber("ann@example.com")
	if st := ann.Subscriptions["offers"]; st.Status != "confirmed" || st.Basis != "consent" {
		t.Errorf("ann offers: got %+v, want confirmed on consent", st)
	}
	evs := s.events(ann.ID)
	if len(evs) != 1 || evs[0].Type != "imported" || evs[0].Source != "import:"+rep.Batch ||
		!strings.Contains(evs[0].Page, "source=https://old.example/signup") || !strings.Contains(evs[0].Page, "consented_at=2024-03-01T10:00:00Z") {
		t.Errorf("ann's ledger: got %+v, want one imported event citing the batch and the evidence", evs)
	}
	if bob, _ := s.subscriber("bob@example.com"); bob.Subscriptions["news"].Basis != "soft_opt_in" {
		t.Errorf("bob: got %+v, want soft_opt_in", bob.Subscriptions)
	}
	if _, ok := s.subscriber("blocked@example.com"); ok {
		t.Error("a suppressed address was imported")
	}
	gil, _ := s.subscriber("gil@example.com")
	if got := gil.Subscriptions["news"].Status; got != "pending" {
		t.Errorf("gil without evidence: got %q, want pending", got)
	}
	m := parseMail(t, s.mailTo("gil@example.com").Data)
	confirm, _ := links(t, m.text)
	if r := s.do("POST", confirm, "", ""); r.status != http.StatusOK {
		t.Fatalf("confirm: got %d", r.status)
	}
	if gil, _ = s.subscriber("gil@example.com"); gil.Subscriptions["news"].Status != "confirmed" {
		t.Errorf("gil after confirm: got %q", gil.Subscriptions["news"].Status)
	}
	if evs := s.events(gil.ID); len(evs) != 2 || evs[0].Type != "requested" || evs[0].Source != "import:"+rep.Batch ||
		evs[1].Type != "confirmed" || evs[1].Source != "import:"+rep.Batch {
		t.Errorf("gil's events: got %+v, want requested and confirmed from import:%s", evs, rep.Batch)
	}

	// NDJSON, and an existing subscriber is updated, never downgraded.
	nd := `{"email":"bob@example.com","topics":["offers"],"basis":"legitimate_interest"}` + "\n" +
		`{"email":"ann@example.com","topics":"news","basis":"legitimate_interest"}` + "\n" +
		`{"email":"x@example.com","topics":"news","basis":"consent","bogus":1}` + "\n"
	r := s.adminAs(testAdminKey, "POST", "/imports", "application/x-ndjson", nd)
	var rep2 importReport
	if err := json.Unmarshal([]byte(r.body), &rep2); err != nil || r.status != 200 {
		t.Fatalf("ndjson import: %d %s", r.status, r.body)
	}
	if got, want := [3]int{rep2.Updated, rep2.Unchanged, rep2.InvalidCount}, [3]int{1, 1, 1}; got != want {
		t.Errorf("ndjson updated, unchanged, invalid: got %v, want %v (%+v)", got, want, rep2)
	}
	if ann, _ := s.subscriber("ann@example.com"); ann.Subscriptions["news"].Basis != "consent" {
		t.Errorf("ann's consent was downgraded to %q", ann.Subscriptions["news"].Basis)
	}
	var rep3 struct{ OK bool }
	s.adminJSON("GET", "/ledger/verify", "", http.StatusOK, &rep3)
	if !rep3.OK {
		t.Error("ledger does not verify after imports")
	}
}

// TestAdminExport: both formats stream every subscriber with their
// subscriptions, and suppressed addresses never appear.
func TestAdminExport(t *testing.T) {
	s := startService(t, nil)
	s.importCSV("email,name,topics,basis,consented_at,source\n" +
		"a@example.com,=HYPERLINK(1),news,consent,2024-01-01,shop\n" +
		"b@example.com,,news,consent,2024-01-01,shop\n")
	s.adminJSON("POST", "/suppressions", `{"email":"b@example.com"}`, http.StatusCreated, nil)

	r := s.adminAs(testAdminKey, "GET", "/exports/subscribers?format=csv", "", "")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv export: %d %s", r.status, r.header.Get("Content-Type"))
	}
	rows := strings.Split(strings.TrimSpace(r.body), "\n")
	if got, want := len(rows), 2; got != want {
		t.Fatalf("csv rows: got %d, want %d:\n%s", got, want, r.body)
	}
	if !strings.Contains(rows[1], "a@example.com,'=HYPERLINK(1)") || !strings.Contains(rows[1], ",news,confirmed,consent,2024-01-01T00:00:00.000Z") {
		t.Errorf("csv row: got %q", rows[1])
	}
	r = s.adminAs(testAdminKey, "GET", "/exports/subscribers?format=ndjson", "", "")
	if r.status != 200 || strings.Contains(r.body, "b@example.com") || strings.Count(r.body, "\n") != 1 {
		t.Errorf("ndjson export: %d\n%s", r.status, r.body)
	}
	if r := s.adminAs(testAdminKey, "GET", "/exports/subscribers?format=xml", "", ""); r.status != http.StatusBadRequest {
		t.Errorf("bad format: got %d", r.status)
	}
}

// TestAdminExportFilter: an export takes the listing's filter; a whole
// address exports exactly that subscriber, a part of one every match.
func TestAdminExportFilter(t *testing.T) {
	s := startService(t, nil)
	s.importCSV("email,name,topics,basis,consented_at,source,last_purchase_at\n" +
		"a@example.com,Ann,news,consent,2024-01-01,shop,\n" +
		"ba@example.com,Bo,news,legitimate_interest,,,2024-02-01\n" +
		"c@example.com,Cy,news,consent,2024-01-01,shop,\n")
	for _, tt := range []struct{ query, want string }{
		{"", "a@example.com ba@example.com c@example.com"},
		{"&q=a@example.com", "a@example.com"},
		{"&q=A@EXAMPLE.COM", "a@example.com"},
		{"&q=a@example", "a@example.com ba@example.com"},
		{"&q=nobody@example.com", ""},
		{"&lifecycle=dormant", "ba@example.com"},
		{"&q=cy", "c@example.com"},
		{"&status=confirmed&topic=news&lifecycle=prospect", "a@example.com c@example.com"},
	} {
		r := s.adminAs(testAdminKey, "GET", "/exports/subscribers?format=ndjson"+tt.query, "", "")
		var got []string
		for line := range strings.Lines(r.body) {
			var sub struct{ Email string }
			if err := json.Unmarshal([]byte(line), &sub); err != nil {
				t.Fatalf("export %s: %v in %q", tt.query, err, line)
			}
			got = append(got, sub.Email)
		}
		slices.Sort(got)
		if r.status != http.StatusOK || strings.Join(got, " ") != tt.want {
			t.Errorf("export%s: got %d %v, want %q", tt.query, r.status, got, tt.want)
		}
	}
	if r := s.adminAs(testAdminKey, "GET", "/exports/subscribers?status=maybe", "", ""); r.status != http.StatusBadRequest {
		t.Errorf("bad status filter: got %d, want 400", r.status)
	}
}

// TestAdminSuppressions: admin-added entries can be removed, the person's
// own opt-outs cannot.
func TestAdminSuppressions(t *testing.T) {
	s := startService(t, nil)
	var sup struct{ Hash, Scope, Reason string }
	s.adminJSON("POST", "/suppressions", `{"email":"S@Example.com"}`, http.StatusCreated, &sup)
	s.adminJSON("POST", "/suppressions", `{"email":"s@example.com"}`, http.StatusOK, nil)
	if sup.Scope != "*" || sup.Reason != "admin" {
		t.Errorf("suppression: got %+v", sup)
	}
	var page struct{ Items []json.RawMessage }
	s.adminJSON("GET", "/suppressions?email=s@example.com", "", http.StatusOK, &page)
	if len(page.Items) != 1 {
		t.Errorf("listing by email: got %d entries, want 1", len(page.Items))
	}
	if rep := s.importCSV("email,topics,basis,consented_at,source\ns@example.com,news,consent,2024-01-01,x\n"); rep.SkippedSuppressed != 1 {
		t.Errorf("import of a suppressed address: %+v", rep)
	}
	s.adminJSON("DELETE", "/suppressions/"+sup.Hash, "", http.StatusOK, nil)
	s.adminJSON("DELETE", "/suppressions/"+sup.Hash, "", http.StatusNotFound, nil)

	// An erasure's suppression is the person's: it stays.
	s.importCSV("email,topics,basis,consented_at,source\nz@example.com,news,consent,2024-01-01,x\n")
	z, _ := s.subscriber("z@example.com")
	s.adminJSON("DELETE", "/subscribers/"+z.ID, "", http.StatusNoContent, nil)
	if _, ok := s.subscriber("z@example.com"); ok {
		t.Fatal("erased subscriber still listed")
	}
	var zs struct {
		Items []struct{ Hash, Reason string }
	}
	s.adminJSON("GET", "/suppressions?email=z@example.com", "", http.StatusOK, &zs)
	if len(zs.Items) != 1 || zs.Items[0].Reason != "erased" {
		t.Fatalf("after erase: got %+v, want one erased entry", zs.Items)
	}
	s.adminJSON("DELETE", "/suppressions/"+zs.Items[0].Hash, "", http.StatusConflict, nil)
}

// TestSubscriberPaging lists page by page while other writers insert: no
// subscriber is returned twice and none that existed before is missed.
func TestSubscriberPaging(t *testing.T) {
	s := startService(t, nil)
	var b strings.Builder
	b.WriteString("email,name,topics,basis,consented_at,source\n")
	for i := range 120 {
		fmt.Fprintf(&b, "pre%03d@example.com,Pre %d,news,consent,2024-01-01,x\n", i, i)
	}
	if rep := s.importCSV(b.String()); rep.Imported != 120 {
		t.Fatalf("setup import: %+v", rep)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // concurrent inserts through the real API
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			body := fmt.Sprintf("email,topics,basis,consented_at,source\nnew%04d@example.com,news,consent,2024-01-01,x\n", i)
			req, _ := http.NewRequest("POST", s.url+"/api/v1/imports", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+testAdminKey)
			req.Header.Set("Content-Type", "text/csv")
			if res, err := client.Do(req); err == nil {
				res.Body.Close()
			}
		}
	}()
	seen := map[string]int{}
	cursor := ""
	for pages := 0; ; pages++ {
		var page struct {
			Items []struct {
				ID    string `json:"id"`
				Email string `json:"email"`
			} `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		s.adminJSON("GET", "/subscribers?limit=7&cursor="+url.QueryEscape(cursor), "", http.StatusOK, &page)
		for _, it := range page.Items {
			seen[it.Email]++
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
		time.Sleep(2 * time.Millisecond) // let the writer interleave
	}
	close(stop)
	wg.Wait()
	for e, n := range seen {
		if n != 1 {
			t.Errorf("%s listed %d times", e, n)
		}
	}
	for i := range 120 {
		if e := fmt.Sprintf("pre%03d@example.com", i); seen[e] != 1 {
			t.Errorf("%s missed", e)
		}
	}

	// Filters and text search.
	filters := []struct {
		query string
		want  int
	}{
		{"q=pre00", 10},
		{"q=PRE 11", 11}, // names "Pre 11" and "Pre 110".."Pre 119"
		{"q=pre007@example.com", 1},
		{"status=pending&limit=500", 0},
		{"topic=nope&limit=500", 0},
		{"lifecycle=customer&limit=500", 0},
	}
	for _, f := range filters {
		var page struct{ Items []json.RawMessage }
		s.adminJSON("GET", "/subscribers?"+strings.ReplaceAll(f.query, " ", "%20"), "", http.StatusOK, &page)
		if got := len(page.Items); got != f.want {
			t.Errorf("%s: got %d, want %d", f.query, got, f.want)
		}
	}
	s.adminJSON("GET", "/subscribers?status=maybe", "", http.StatusBadRequest, nil)
	s.adminJSON("GET", "/subscribers?limit=501", "", http.StatusBadRequest, nil)
}

// TestLifecycleEdge moves the injected clock across the 12-month edge: a
// customer whose last purchase is 365 days old becomes dormant.
func TestLifecycleEdge(t *testing.T) {
	s := startService(t, nil)
	s.importCSV("email,topics,basis,consented_at,source\nl@example.com,news,consent,2024-01-01,x\n")
	l, _ := s.subscriber("l@example.com")
	lifecycle := func() string {
		var v struct{ Lifecycle string }
		s.adminJSON("GET", "/subscribers/"+l.ID, "", http.StatusOK, &v)
		return v.Lifecycle
	}
	if got := lifecycle(); got != "prospect" {
		t.Errorf("before any purchase: got %q, want prospect", got)
	}
	at := s.clock.Now().Add(-365*24*time.Hour + time.Minute).UTC().Format(time.RFC3339)
	s.adminJSON("POST", "/subscribers/"+l.ID+"/activity", `{"kind":"purchase","at":"`+at+`"}`, http.StatusOK, nil)
	if got := lifecycle(); got != "customer" {
		t.Errorf("a minute before the edge: got %q, want customer", got)
	}
	s.clock.Advance(2 * time.Minute)
	if got := lifecycle(); got != "dormant" {
		t.Errorf("a minute after the edge: got %q, want dormant", got)
	}
	var page struct{ Items []json.RawMessage }
	s.adminJSON("GET", "/subscribers?lifecycle=dormant", "", http.StatusOK, &page)
	if len(page.Items) != 1 {
		t.Errorf("dormant filter: got %d, want 1", len(page.Items))
	}
	var st struct {
		ByLifecycle map[string]int `json:"by_lifecycle"`
	}
	s.adminJSON("GET", "/stats", "", http.StatusOK, &st)
	if st.ByLifecycle["dormant"] != 1 {
		t.Errorf("stats by lifecycle: got %v", st.ByLifecycle)
	}
	// An older purchase changes nothing; a future one is refused; a new one revives.
	s.adminJSON("POST", "/subscribers/"+l.ID+"/activity", `{"kind":"purchase","at":"2020-01-01T00:00:00Z"}`, http.StatusOK, nil)
	future := s.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	s.adminJSON("POST", "/subscribers/"+l.ID+"/activity", `{"kind":"purchase","at":"`+future+`"}`, http.StatusBadRequest, nil)
	s.adminJSON("POST", "/subscribers/"+l.ID+"/activity", `{"kind":"refund","at":"2020-01-01T00:00:00Z"}`, http.StatusBadRequest, nil)
	now := s.clock.Now().UTC().Format(time.RFC3339)
	s.adminJSON("POST", "/subscribers/"+l.ID+"/activity", `{"kind":"purchase","at":"`+now+`"}`, http.StatusOK, nil)
	if got := lifecycle(); got != "customer" {
		t.Errorf("after a new purchase: got %q, want customer", got)
	}
}

// TestStats counts a signup, a confirmation and an import.
func TestStats(t *testing.T) {
	s := startService(t, nil)
	s.signupJSON("st@example.com", "news")
	confirm, _ := links(t, parseMail(t, s.waitMails(1)[0].Data).text)
	s.do("POST", confirm, "", "")
	s.signupJSON("st2@example.com", "news")
	var st struct {
		Subscribers      int                       `json:"subscribers"`
		ByStatus         map[string]int            `json:"by_status"`
		ByTopic          map[string]map[string]int `json:"by_topic"`
		ConfirmationRate float64                   `json:"confirmation_rate"`
		Daily            []struct {
			Date                   string
			Signups, Confirmations int
		} `json:"daily"`
	}
	s.adminJSON("GET", "/stats", "", http.StatusOK, &st)
	if st.Subscribers != 2 || st.ByStatus["confirmed"] != 1 || st.ByStatus["pending"] != 1 || st.ByTopic["news"]["confirmed"] != 1 {
		t.Errorf("counts: got %+v", st)
	}
	if st.ConfirmationRate != 0.5 {
		t.Errorf("confirmation rate: got %v, want 0.5", st.ConfirmationRate)
	}
	today := st.Daily[len(st.Daily)-1]
	if len(st.Daily) != 30 || today.Date != s.clock.Now().UTC().Format(time.DateOnly) || today.Signups != 2 || today.Confirmations != 1 {
		t.Errorf("daily: %d days, today %+v", len(st.Daily), today)
	}
}

// TestBackupUnderLoadAndTamper takes a backup while signups and imports
// write, opens it with bbolt and verifies the ledger; then tampers with a
// ledger record in a copy and sees the verification fail.
func TestBackupUnderLoadAndTamper(t *testing.T) {
	boltOnly(t, "the backup is the database file")
	s := startService(t, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var imported atomic.Int64 // imports the service answered
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf("email,topics,basis\nw%d-%d@example.com,news,consent\n", w, i)
				req, _ := http.NewRequest("POST", s.url+"/api/v1/imports", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+testAdminKey)
				req.Header.Set("Content-Type", "text/csv")
				if res, err := client.Do(req); err == nil {
					if res.StatusCode == http.StatusOK {
						imported.Add(1)
					}
					res.Body.Close()
				}
			}
		}()
	}
	// The backup is taken once imports have been written, however long
	// the first take on a loaded machine, and while more are.
	for deadline := time.Now().Add(patience); imported.Load() < 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("imports while waiting to take a backup: %d, want 3", imported.Load())
		}
	}
	r := s.adminAs(testAdminKey, "GET", "/backup", "", "")
	close(stop)
	wg.Wait()
	if r.status != http.StatusOK || !strings.Contains(r.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("backup: got %d %q", r.status, r.header.Get("Content-Disposition"))
	}
	if got, want := r.header.Get("Content-Length"), fmt.Sprint(len(r.body)); got != want {
		t.Errorf("Content-Length %s, body %s bytes", got, want)
	}
	dir := t.TempDir()
	backup := filepath.Join(dir, "backup.db")
	if err := os.WriteFile(backup, []byte(r.body), 0o600); err != nil {
		t.Fatal(err)
	}
	events := verifyFile(t, backup, true)
	if events == 0 {
		t.Fatal("backup holds no ledger events")
	}

	// Tamper with one ledger event in a copy.
	tampered := filepath.Join(dir, "tampered.db")
	if err := os.WriteFile(tampered, []byte(r.body), 0o600); err != nil {
		t.Fatal(err)
	}
	bolttest.TamperEvent(t, tampered, 1, `"basis":"consent"`, `"basis":"legitimate_interest"`)
	verifyFile(t, tampered, false)
}

// verifyFile opens a database file with bbolt's own consistency check and
// optin's ledger walk; it returns the number of events.
func verifyFile(t *testing.T, path string, wantOK bool) uint64 {
	t.Helper()
	bolttest.Check(t, path)
	db, err := bolt.Open(path, bolt.Options{HMACKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep, err := db.VerifyLedger(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK != wantOK {
		t.Fatalf("ledger of %s: got %+v, want ok=%v", filepath.Base(path), rep, wantOK)
	}
	if !wantOK && (rep.Broken == nil || rep.Broken.Seq != 1) {
		t.Errorf("tampered ledger: got %+v, want broken at event 1", rep.Broken)
	}
	return rep.Events
}

// TestMetrics scrapes /metrics after a signup: the ledger counters, the
// outbox gauge and the latency histogram by route template are there, and
// no address is.
func TestMetrics(t *testing.T) {
	s := startService(t, nil)
	s.signupJSON("metrics@example.com", "news")
	s.waitMails(1)
	var r response
	// The worker counts a send right after the SMTP server's answer.
	for deadline := time.Now().Add(patience); ; time.Sleep(20 * time.Millisecond) {
		r = s.do("GET", "/metrics", "", "")
		if r.status != http.StatusOK {
			t.Fatalf("metrics: got %d", r.status)
		}
		if strings.Contains(r.body, "optin_mail_sends_total{") || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range []string{
		"optin_signups_total 1",
		"optin_confirmations_total 0",
		`optin_ledger_events_total{type="requested"} 1`,
		`optin_outbox_depth{state="queued"}`,
		`optin_http_request_duration_seconds_count{code="2xx",method="POST",route="/f/:form"} 1`,
		`optin_mail_sends_total{kind="confirm"`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(r.body, "metrics@example.com") {
		t.Error("metrics contain an address")
	}
}

// TestAdminImportMethod: a consent collected with a pre-ticked box, inside
// a contract or in an unknown way is not consent, whatever its date and
// source: the row goes to double opt-in. A box the person ticked, or an
// earlier double opt-in, stands, and the method is part of the evidence.
func TestAdminImportMethod(t *testing.T) {
	s := startService(t, nil)
	csv := strings.Join([]string{
		"email,topics,basis,consented_at,source,method",
		"tick@example.com,news,consent,2024-03-01T10:00:00Z,https://old.example/signup,checkbox_unticked",
		"doi@example.com,news,consent,2024-03-01T10:00:00Z,https://old.example/signup,double_opt_in",
		"pre@example.com,news,consent,2024-03-01T10:00:00Z,https://old.example/signup,prefilled",
		"contract@example.com,news,consent,2024-03-01T10:00:00Z,shop terms,contract_clause",
		"unknown@example.com,news,consent,2024-03-01T10:00:00Z,old crm,unknown",
		"bad@example.com,news,consent,2024-03-01T10:00:00Z,old crm,verbal",
	}, "\n") + "\n"
	rep := s.importCSV(csv)
	if rep.Imported != 5 || rep.Pending != 3 || rep.InvalidCount != 1 {
		t.Fatalf("imported %d, pending %d, invalid %d, want 5 (3 of them pending), 3, 1 (%+v)", rep.Imported, rep.Pending, rep.InvalidCount, rep)
	}
	if p := rep.Invalid[0]; p.Line != 7 || !strings.Contains(p.Reason, "method must be") {
		t.Errorf("invalid row: got %+v, want line 7 naming the methods", p)
	}
	for addr, want := range map[string]string{"tick@example.com": "confirmed", "doi@example.com": "confirmed",
		"pre@example.com": "pending", "contract@example.com": "pending", "unknown@example.com": "pending"} {
		sub, ok := s.subscriber(addr)
		if !ok {
			t.Errorf("%s: not imported", addr)
			continue
		}
		if got := sub.Subscriptions["news"].Status; got != want {
			t.Errorf("%s: got %s, want %s", addr, got, want)
		}
	}
	tick, _ := s.subscriber("tick@example.com")
	if evs := s.events(tick.ID); len(evs) != 1 || !strings.Contains(evs[0].Page, "method=checkbox_unticked") {
		t.Errorf("tick's evidence: got %+v, want the method recorded", evs)
	}
	to := map[string]bool{}
	for _, m := range s.waitMails(3) {
		to[strings.Trim(parseMail(t, m.Data).header.Get("To"), "<>")] = true
	}
	for _, addr := range []string{"pre@example.com", "contract@example.com", "unknown@example.com"} {
		if !to[addr] {
			t.Errorf("no double-opt-in mail to %s (mails to %v)", addr, to)
		}
	}
}

// TestActivityTrail: every activity kind is recorded with its reason and
// who recorded it, in the admin's consent view and in the person's own
// export; only the kinds lifecycle.customer_activities names make a
// customer.
func TestActivityTrail(t *testing.T) {
	s := startService(t, func(c *config.Config) { c.Lifecycle.CustomerActivities = []string{"purchase", "login"} })
	s.importCSV("email,topics,basis,consented_at,source\nt@example.com,news,consent,2024-01-01,x\n")
	sub, _ := s.subscriber("t@example.com")
	lifecycle := func() string {
		var v struct{ Lifecycle string }
		s.adminJSON("GET", "/subscribers/"+sub.ID, "", http.StatusOK, &v)
		return v.Lifecycle
	}
	at := s.clock.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	s.adminJSON("POST", "/subscribers/"+sub.ID+"/activity", `{"kind":"enquiry","at":"`+at+`","reason":"asked for the autumn catalogue"}`, http.StatusOK, nil)
	s.adminJSON("POST", "/subscribers/"+sub.ID+"/activity", `{"kind":"reservation","at":"`+at+`"}`, http.StatusOK, nil)
	if got := lifecycle(); got != "prospect" {
		t.Errorf("after an enquiry and a reservation (not customer kinds here): got %q, want prospect", got)
	}
	s.adminJSON("POST", "/subscribers/"+sub.ID+"/activity", `{"kind":"login","at":"`+at+`","reason":"shop account"}`, http.StatusOK, nil)
	if got := lifecycle(); got != "customer" {
		t.Errorf("after a login (a customer kind here): got %q, want customer", got)
	}
	s.adminJSON("POST", "/subscribers/"+sub.ID+"/activity", `{"kind":"note","at":"`+at+`","reason":"line one\nline two"}`, http.StatusBadRequest, nil)

	var consents struct {
		Items []struct {
			Type       string
			Activity   string
			OccurredAt time.Time `json:"occurred_at"`
			Source     string
			Personal   *struct{ Note string }
		}
	}
	s.adminJSON("GET", "/subscribers/"+sub.ID+"/consents", "", http.StatusOK, &consents)
	var trail []string
	for _, ev := range consents.Items {
		if ev.Type == "activity" && ev.Personal != nil {
			trail = append(trail, ev.Activity+"|"+ev.Source+"|"+ev.Personal.Note+"|"+ev.OccurredAt.UTC().Format(time.RFC3339))
		}
	}
	want := []string{
		"enquiry|admin:bootstrap|asked for the autumn catalogue|" + at,
		"reservation|admin:bootstrap||" + at,
		"login|admin:bootstrap|shop account|" + at,
	}
	if !slices.Equal(trail, want) {
		t.Errorf("trail in the consent view: got %q, want %q", trail, want)
	}
}
