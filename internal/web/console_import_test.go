package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"regexp"
	"strings"
	"testing"

	"optin/internal/consent"
)

// part is one field of a multipart form: a file when name is set.
type part struct {
	field, file, contentType, body string
}

// upload posts parts, in order, as multipart/form-data.
func (cl *consoleClient) upload(path string, parts ...part) consoleResponse {
	cl.env.t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		disp := fmt.Sprintf(`form-data; name=%q`, p.field)
		if p.file != "" {
			disp += fmt.Sprintf(`; filename=%q`, p.file)
			h.Set("Content-Type", p.contentType)
		}
		h.Set("Content-Disposition", disp)
		pw, err := w.CreatePart(h)
		if err != nil {
			cl.env.t.Fatal(err)
		}
		io.WriteString(pw, p.body)
	}
	if err := w.Close(); err != nil {
		cl.env.t.Fatal(err)
	}
	return cl.send("POST", path, &buf, "Content-Type", w.FormDataContentType())
}

var reportLink = regexp.MustCompile(`href="data:application/json;base64,([^"]+)" download="(import-[a-z0-9]+\.json)"`)

// importReport reads the report a console import page offers to
// download.
func importReport(t *testing.T, body string) consent.ImportReport {
	t.Helper()
	m := reportLink.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no report download on the page\n%s", body)
	}
	b, err := base64.StdEncoding.DecodeString(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	var rep consent.ImportReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report %s: %v", b, err)
	}
	if m[2] != "import-"+rep.Batch+".json" {
		t.Errorf("report file %s for batch %s", m[2], rep.Batch)
	}
	return rep
}

// TestConsoleImport uploads a mixed CSV file and an NDJSON file through
// the console: the rows go through the admin API's import (audited under
// the key), the page shows the report with every refused line and its
// reason, and offers it as JSON. The CSRF token must come before the file
// and be right, or nothing is read; a missing file, an unknown format or
// a broken header import nothing; a viewer may not import.
func TestConsoleImport(t *testing.T) {
	e := newConsoleEnv(t, nil)
	e.importPeople("old@example.com,Old,news,consent,2024-01-01,shop,\n")
	blocked, err := consent.ParseAddress("blocked@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.db.AddSuppression(t.Context(), consent.CLIActor(), blocked, "", "complaint"); err != nil {
		t.Fatal(err)
	}
	m := e.signIn(consent.RoleMarketer)
	page := m.do("GET", "/admin/imports", nil)
	form := regexp.MustCompile(`(?s)<form method="post" action="/admin/imports" enctype="multipart/form-data"[^>]*>\s*<input type="hidden" name="csrf"`)
	if page.status != http.StatusOK || !form.MatchString(page.body) {
		t.Fatalf("import page: %d, want the upload form with the token first\n%s", page.status, page.body)
	}
	token := m.csrf()

	// A file over 64 KiB, the console's limit for other forms.
	csv := "email,name,topics,basis,consented_at,source,last_purchase_at\n" +
		"new@example.com,New,news,consent,2024-02-01,fair,\n" +
		"noproof@example.com,,news,consent,,,\n" +
		"blocked@example.com,,news,consent,2024-02-01,fair,\n" +
		"not-an-address,,news,consent,2024-02-01,fair,\n" +
		"old@example.com,Old,news,consent,2024-01-01,shop,\n" +
		"new2@example.com,,nope,consent,2024-02-01,fair,\n"
	for i := range 1500 {
		csv += fmt.Sprintf("bulk%04d@example.com,Bulk Person %04d,news,legitimate_interest,,,\n", i, i)
	}
	if len(csv) <= maxBody {
		t.Fatalf("test file of %d bytes: want more than %d", len(csv), maxBody)
	}
	r := m.upload("/admin/imports", part{field: "csrf", body: token}, part{field: "file", file: "people.csv", contentType: "text/csv", body: csv})
	if r.status != http.StatusOK {
		t.Fatalf("CSV import: got %d\n%s", r.status, r.body)
	}
	rep := importReport(t, r.body)
	if rep.Imported != 1502 || rep.Pending != 1 || rep.SkippedSuppressed != 1 || rep.Unchanged != 1 || rep.InvalidCount != 2 || len(rep.Invalid) != 2 {
		t.Errorf("report: got %+v", rep)
	}
	for _, p := range rep.Invalid {
		if !hasText(r.body, p.Reason) || !strings.Contains(r.body, fmt.Sprintf(">%d</td>", p.Line)) {
			t.Errorf("the page does not list line %d: %s", p.Line, p.Reason)
		}
	}
	if !strings.Contains(r.body, `<span class="num">1502</span>`) || !strings.Contains(r.body, rep.Batch) {
		t.Errorf("the page does not show the counts and the batch")
	}
	if sub := e.subscriberID("noproof@example.com"); sub == "" {
		t.Error("the row without proof is missing")
	}
	if a := e.lastAudit(); a.Action != "import" || a.Key != "key-marketer" || a.Target != "import:"+rep.Batch {
		t.Errorf("audit of the import: %+v", a)
	}

	// NDJSON, known by the file's name whatever type the browser says.
	r = m.upload("/admin/imports", part{field: "csrf", body: token},
		part{field: "file", file: "more.ndjson", contentType: "application/octet-stream",
			body: `{"email":"nd@example.com","topics":["news"],"basis":"legitimate_interest"}` + "\n"})
	if rep := importReport(t, r.body); r.status != http.StatusOK || rep.Imported != 1 {
		t.Errorf("NDJSON import: %d %+v", r.status, rep)
	}

	count := func() int {
		subs, _, err := e.db.FindSubscribers(t.Context(), consent.SubscriberFilter{Limit: 5000})
		if err != nil {
			t.Fatal(err)
		}
		return len(subs)
	}
	before := count()
	one := part{field: "file", file: "x.csv", contentType: "text/csv", body: "email,topics,basis\nx@example.com,news,legitimate_interest\n"}
	for _, tt := range []struct {
		what   string
		parts  []part
		status int
		key    string
	}{
		{"a wrong token", []part{{field: "csrf", body: "forged"}, one}, http.StatusForbidden, "console.error.csrf"},
		{"the token after the file", []part{one, {field: "csrf", body: token}}, http.StatusForbidden, "console.error.csrf"},
		{"no file", []part{{field: "csrf", body: token}, {field: "file", file: "", contentType: "text/csv"}}, http.StatusBadRequest, "console.import.no_file"},
		{"a text file", []part{{field: "csrf", body: token}, {field: "file", file: "x.txt", contentType: "text/plain", body: one.body}}, http.StatusBadRequest, "console.import.format"},
	} {
		if r := m.upload("/admin/imports", tt.parts...); r.status != tt.status || !hasText(r.body, e.en.T(tt.key)) {
			t.Errorf("%s: got %d, want %d with %q\n%s", tt.what, r.status, tt.status, tt.key, r.body)
		}
	}
	r = m.upload("/admin/imports", part{field: "csrf", body: token}, part{field: "file", file: "x.csv", contentType: "text/csv", body: "name,topics\nX,news\n"})
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "email") || reportLink.MatchString(r.body) {
		t.Errorf("a header without email: got %d\n%s", r.status, r.body)
	}
	if got := count(); got != before {
		t.Errorf("refused uploads imported %d subscribers", got-before)
	}

	v := e.signIn(consent.RoleViewer)
	if r := v.do("GET", "/admin/imports", nil); r.status != http.StatusForbidden {
		t.Errorf("a viewer's import page: got %d", r.status)
	}
	if r := v.upload("/admin/imports", part{field: "csrf", body: v.csrf()}, one); r.status != http.StatusForbidden || count() != before {
		t.Errorf("a viewer's import: got %d", r.status)
	}
	if strings.Contains(v.do("GET", "/admin", nil).body, `href="/admin/imports"`) {
		t.Error("a viewer sees the import in the navigation")
	}
}

// TestConsoleImportNotice: the import page's checkbox, ticked by default,
// sends the information notice (GDPR Art. 14) to people imported on soft
// opt-in or legitimate interest; unticked (the field absent) it sends
// none. The person page then shows the notice waiting, and once it went
// out, sent, with the informed event in the timeline.
func TestConsoleImportNotice(t *testing.T) {
	e := newConsoleEnv(t, nil)
	m := e.signIn(consent.RoleMarketer)
	page := m.do("GET", "/admin/imports", nil)
	if !strings.Contains(page.body, `name="notice" type="checkbox" value="on" checked`) {
		t.Fatalf("import page: want the notice checkbox ticked\n%s", page.body)
	}
	csv := func(addr string) part {
		return part{field: "file", file: "people.csv", contentType: "text/csv",
			body: "email,topics,basis,last_purchase_at,source\n" + addr + ",news,soft_opt_in,2024-01-01,Shop till\n"}
	}
	r := m.upload("/admin/imports", part{field: "csrf", body: m.csrf()}, part{field: "notice", body: "on"}, csv("told@example.com"))
	if rep := importReport(t, r.body); rep.Notices != 1 {
		t.Errorf("ticked: got %+v, want 1 notice", rep)
	}
	r = m.upload("/admin/imports", part{field: "csrf", body: m.csrf()}, csv("quiet@example.com"))
	if rep := importReport(t, r.body); rep.Notices != 0 || rep.Imported != 1 {
		t.Errorf("unticked: got %+v, want 1 imported, no notice", rep)
	}
	notices := e.dueJobs(consent.JobNotice)
	if len(notices) != 1 || notices[0].To != "told@example.com" {
		t.Fatalf("notice jobs: got %+v, want one to told@", notices)
	}

	id := e.subscriberID("told@example.com")
	n := e.en.T("console.person.notice_pending", formatTime(notices[0].Created), "")
	n = n[:strings.Index(n, ",")] // "queued <time>"
	if person := m.do("GET", "/admin/subscribers/"+id, nil); !hasText(person.body, n) || !hasText(person.body, "Shop till") {
		t.Errorf("person page before sending: want %q and the origin\n%s", n, person.body)
	}
	if err := e.db.FinishJobs(t.Context(), notices); err != nil {
		t.Fatal(err)
	}
	person := m.do("GET", "/admin/subscribers/"+id, nil)
	if !hasText(person.body, e.en.T("console.event.informed")) || hasText(person.body, n) {
		t.Errorf("person page after sending: want the informed event and no pending notice\n%s", person.body)
	}
}
