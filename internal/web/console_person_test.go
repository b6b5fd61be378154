package web

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"optin/internal/consent"
)

// lastEvent returns subscriber id's newest ledger event.
func (e *consoleEnv) lastEvent(id string) consent.EventRecord {
	e.t.Helper()
	evs, err := e.db.Events(e.t.Context(), id)
	if err != nil || len(evs) == 0 {
		e.t.Fatalf("events of %s: %v, %v", id, evs, err)
	}
	return evs[len(evs)-1]
}

// lastAudit returns the newest audit entry.
func (e *consoleEnv) lastAudit() consent.AuditEntry {
	e.t.Helper()
	entries, _, err := e.db.Audit(e.t.Context(), "", 1)
	if err != nil || len(entries) != 1 {
		e.t.Fatalf("audit: %v, %v", entries, err)
	}
	return entries[0]
}

// dueJobs returns the mails of kind waiting in the outbox.
func (e *consoleEnv) dueJobs(kind consent.JobKind) []consent.Job {
	e.t.Helper()
	jobs, err := e.db.DueJobs(e.t.Context(), e.clock.Now(), 100, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return slices.DeleteFunc(jobs, func(j consent.Job) bool { return j.Kind != kind })
}

// wantDone checks that r sends the browser to the person's page saying
// done, and that the page says it.
func (cl *consoleClient) wantDone(what string, r consoleResponse, id, done string) {
	cl.env.t.Helper()
	loc := "/admin/subscribers/" + id + "?done=" + done
	if r.status != http.StatusSeeOther || r.header.Get("Location") != loc {
		cl.env.t.Errorf("%s: got %d to %q, want 303 to %s\n%s", what, r.status, r.header.Get("Location"), loc, r.body)
		return
	}
	if page := cl.do("GET", loc, nil); !hasText(page.body, cl.env.en.T("console.person.done_"+done)) {
		cl.env.t.Errorf("%s: the page does not say %q", what, cl.env.en.T("console.person.done_"+done))
	}
}

// TestConsolePersonActions drives the person page's writes as a
// marketer, each through the same store call as its admin API twin and
// audited under the key: any of the five activities with a reason; a
// name correction at once and an address change by double opt-in; an
// unsubscribe on the person's word with a reason the ledger keeps; a
// preference link shown to copy or mailed. Bad input changes nothing; a
// viewer may do none of it.
func TestConsolePersonActions(t *testing.T) {
	e := newConsoleEnv(t, nil)
	if _, err := e.db.CreateTopic(t.Context(), consent.CLIActor(), consent.Topic{ID: "offers", Name: "Offers"}); err != nil {
		t.Fatal(err)
	}
	e.importPeople("ann@example.com,Ann Lee,news;offers,consent,2024-01-01,shop,\nbob@example.com,Bob,news,consent,2024-01-01,shop,\n")
	id := e.subscriberID("ann@example.com")
	m := e.signIn(consent.RoleMarketer)
	post := func(action string, form url.Values) consoleResponse {
		t.Helper()
		form.Set("csrf", m.csrf())
		return m.do("POST", "/admin/subscribers/"+id+"/"+action, form)
	}

	page := m.do("GET", "/admin/subscribers/"+id, nil)
	for _, want := range []string{`action="/admin/subscribers/` + id + `/rectify"`, `action="/admin/subscribers/` + id + `/unsubscribe"`,
		`action="/admin/subscribers/` + id + `/preference-link"`, `<option value="offers">Offers</option>`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("person page lacks %s", want)
		}
	}
	for _, k := range consent.ActivityKinds {
		if !strings.Contains(page.body, `<option value="`+string(k)+`">`) {
			t.Errorf("the activity form does not offer %s", k)
		}
	}

	// Activities: any kind, with a reason; a bad one changes nothing.
	evs, _ := e.db.Events(t.Context(), id)
	for _, bad := range []url.Values{
		{"kind": {"visit"}, "at": {"2030-03-01T12:30"}},
		{"kind": {"enquiry"}, "at": {"2030-03-01T12:30"}, "reason": {"two\nlines"}},
	} {
		if r := post("activity", bad); r.status != http.StatusBadRequest || !hasText(r.body, e.en.T("console.person.activity_invalid")) {
			t.Errorf("activity %v: got %d, want 400 with the message", bad, r.status)
		}
	}
	if now, _ := e.db.Events(t.Context(), id); len(now) != len(evs) {
		t.Fatalf("refused activities wrote %d events", len(now)-len(evs))
	}
	m.wantDone("an enquiry", post("activity", url.Values{"kind": {"enquiry"}, "at": {"2030-03-01T12:30"}, "reason": {"Asked for the catalogue"}}), id, "activity")
	if ev := e.lastEvent(id); ev.Type != consent.EventActivity || ev.Activity != consent.ActivityEnquiry || ev.Personal.Note != "Asked for the catalogue" ||
		ev.Source != "admin:key-marketer" {
		t.Errorf("enquiry event: got %+v %+v", ev.Event, ev.Personal)
	}
	if sub, _ := e.db.Subscriber(t.Context(), id); !sub.LastPurchase.IsZero() {
		t.Errorf("an enquiry made a customer: last purchase %v", sub.LastPurchase)
	}
	if a := e.lastAudit(); a.Action != "subscriber.activity" || a.Key != "key-marketer" {
		t.Errorf("audit of the activity: %+v", a)
	}
	page = m.do("GET", "/admin/subscribers/"+id, nil)
	for _, want := range []string{e.en.T("console.event.activity"), e.en.T("console.activity.enquiry"), "Asked for the catalogue"} {
		if !hasText(page.body, want) {
			t.Errorf("the timeline lacks %q", want)
		}
	}

	// Unsubscribe on the person's word: a reason is required.
	if r := post("unsubscribe", url.Values{"topic": {"offers"}, "reason": {" "}}); r.status != http.StatusBadRequest ||
		!hasText(r.body, e.en.T("console.person.withdraw_invalid")) {
		t.Errorf("unsubscribe without a reason: got %d", r.status)
	}
	if r := post("unsubscribe", url.Values{"topic": {"nope"}, "reason": {"asked"}}); r.status != http.StatusBadRequest {
		t.Errorf("unsubscribe from an unknown topic: got %d", r.status)
	}
	if sub, _ := e.db.Subscriber(t.Context(), id); sub.Subscriptions["offers"].Status != consent.StatusConfirmed {
		t.Fatalf("a refused unsubscribe changed offers to %s", sub.Subscriptions["offers"].Status)
	}
	m.wantDone("unsubscribe from offers", post("unsubscribe", url.Values{"topic": {"offers"}, "reason": {"Asked by phone"}}), id, "withdrawn")
	ev := e.lastEvent(id)
	if ev.Type != consent.EventUnsubscribed || ev.Source != consent.ChannelOperator || !slices.Equal(ev.Topics, []string{"offers"}) ||
		ev.Personal.Note != "Asked by phone" {
		t.Errorf("unsubscribe event: got %+v %+v", ev.Event, ev.Personal)
	}
	ann, _ := consent.ParseAddress("ann@example.com")
	if ok, err := e.db.Suppressed(t.Context(), ann, "offers"); err != nil || !ok {
		t.Errorf("offers suppressed after the unsubscribe: %v, %v", ok, err)
	}
	if a := e.lastAudit(); a.Action != "subscriber.unsubscribe" || a.Key != "key-marketer" || a.Target != id {
		t.Errorf("audit of the unsubscribe: %+v", a)
	}
	page = m.do("GET", "/admin/subscribers/"+id, nil)
	if strings.Contains(page.body, `<option value="offers">`) || !hasText(page.body, "Asked by phone") {
		t.Errorf("after the unsubscribe: offers still offered, or the reason not shown")
	}
	m.wantDone("unsubscribe from offers again", post("unsubscribe", url.Values{"topic": {"offers"}, "reason": {"Asked by phone"}}), id, "withdrawn_already")

	// Corrections: the name at once, the address by double opt-in.
	m.wantDone("a new name", post("rectify", url.Values{"name": {"Ann Smith"}, "email": {"ann@example.com"}}), id, "renamed")
	if sub, _ := e.db.Subscriber(t.Context(), id); sub.Name != "Ann Smith" {
		t.Errorf("name after the correction: %q", sub.Name)
	}
	if a := e.lastAudit(); a.Action != "subscriber.rectify" || a.Key != "key-marketer" {
		t.Errorf("audit of the correction: %+v", a)
	}
	m.wantDone("the same again", post("rectify", url.Values{"name": {"Ann Smith"}, "email": {"ANN@example.com"}}), id, "unchanged")
	for _, tt := range []struct {
		email  string
		status int
		key    string
	}{
		{"not an address", http.StatusBadRequest, "console.person.rectify_invalid"},
		{"bob@example.com", http.StatusConflict, "console.person.rectify_taken"},
	} {
		if r := post("rectify", url.Values{"name": {"X"}, "email": {tt.email}}); r.status != tt.status || !hasText(r.body, e.en.T(tt.key)) {
			t.Errorf("address %q: got %d, want %d with %q", tt.email, r.status, tt.status, tt.key)
		}
	}
	m.wantDone("a new address", post("rectify", url.Values{"name": {"Ann Smith"}, "email": {"ann.smith@example.org"}}), id, "address")
	sub, err := e.db.Subscriber(t.Context(), id)
	if err != nil || sub.Email != "ann@example.com" || sub.Name != "Ann Smith" {
		t.Errorf("before the new address confirms: %+v, %v; want the old address kept", sub, err)
	}
	if jobs := e.dueJobs(consent.JobAddressChange); len(jobs) != 1 || jobs[0].To != "ann.smith@example.org" {
		t.Errorf("confirmation mail to the new address: got %+v", jobs)
	}

	// The preference link: shown to copy, or mailed (at most once an hour).
	r := post("preference-link", url.Values{"send": {"show"}})
	link := regexp.MustCompile(`id="preflink" type="text" value="([^"]+)"`).FindStringSubmatch(r.body)
	if r.status != http.StatusOK || link == nil || !strings.HasPrefix(link[1], e.url+"/preferences/") {
		t.Fatalf("preference link: got %d\n%s", r.status, r.body)
	}
	if a := e.lastAudit(); a.Action != "subscriber.preference_link" || a.Key != "key-marketer" || a.Target != id {
		t.Errorf("audit of the link: %+v", a)
	}
	if p := m.do("GET", strings.TrimPrefix(link[1], e.url), nil); p.status != http.StatusOK || !strings.Contains(p.body, "ann@example.com") {
		t.Errorf("the link opens: %d", p.status)
	}
	m.wantDone("mail the link", post("preference-link", url.Values{"send": {"mail"}}), id, "preferences_mailed")
	if jobs := e.dueJobs(consent.JobPreferences); len(jobs) != 1 || jobs[0].To != "ann@example.com" {
		t.Errorf("preference mail: got %+v", jobs)
	}
	if a := e.lastAudit(); a.Action != "subscriber.preference_mail" || a.Count != 1 {
		t.Errorf("audit of the mail: %+v", a)
	}
	e.clock.Advance(time.Minute)
	m.wantDone("mail the link again", post("preference-link", url.Values{"send": {"mail"}}), id, "preferences_held")
	if jobs := e.dueJobs(consent.JobPreferences); len(jobs) != 1 {
		t.Errorf("a second mail within the hour: %d mails", len(jobs))
	}

	// A viewer sees none of the forms and may use none.
	v := e.signIn(consent.RoleViewer)
	if page := v.do("GET", "/admin/subscribers/"+id, nil); strings.Contains(page.body, "/rectify") || strings.Contains(page.body, "/preference-link") {
		t.Error("a viewer sees the write forms")
	}
	for _, action := range []string{"rectify", "unsubscribe", "preference-link"} {
		r := v.do("POST", "/admin/subscribers/"+id+"/"+action, url.Values{"csrf": {v.csrf()}, "name": {"V"}, "reason": {"r"}})
		if r.status != http.StatusForbidden {
			t.Errorf("a viewer's %s: got %d, want 403", action, r.status)
		}
	}
	if sub, _ := e.db.Subscriber(t.Context(), id); sub.Name != "Ann Smith" || sub.Subscriptions["news"].Status != consent.StatusConfirmed {
		t.Errorf("after the viewer's attempts: %+v", sub)
	}
}

// TestConsolePersonShowsCheck: a confirmation's verdict on who clicked,
// its class and reasons, shows in the timeline; the export carries it.
func TestConsolePersonShowsCheck(t *testing.T) {
	e := newConsoleEnv(t, nil)
	req, err := http.NewRequest("POST", e.url+"/f/newsletter", strings.NewReader(`{"email":"bo@example.com","topics":["news"]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("signup: %v %v", res, err)
	}
	id := e.subscriberID("bo@example.com")
	sub, err := e.db.Subscriber(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	check := consent.Check{Class: consent.ClassSuspectedAutomated, Reasons: []string{consent.ReasonScannerNetwork, consent.ReasonSoonAfterMail},
		AfterMail: 4, ScannerNetwork: "Proofpoint"}
	if _, err := e.db.Confirm(t.Context(), sub.PendingRequest, consent.ConfirmInput{IP: "148.163.150.7", Check: &check}); err != nil {
		t.Fatal(err)
	}
	viewer := e.signIn(consent.RoleViewer)
	r := viewer.do("GET", "/admin/subscribers/"+id, nil)
	for _, want := range []string{e.en.T("console.person.check"), e.en.T("console.class.suspected_automated"),
		e.en.T("console.reason.scanner_network"), e.en.T("console.reason.soon_after_mail"),
		e.en.T("console.person.after_mail", 4), "Proofpoint"} {
		if !hasText(r.body, want) {
			t.Errorf("person page lacks %q", want)
		}
	}
	if r := viewer.do("GET", "/admin/subscribers/"+id+"/export", nil); !strings.Contains(r.body, `"class": "suspected_automated"`) {
		t.Errorf("export lacks the check:\n%s", r.body)
	}
}
