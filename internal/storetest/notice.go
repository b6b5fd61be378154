package storetest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"optin/internal/consent"
)

// testNotices: an import queues the information notice (GDPR Art. 14),
// due within the policy's NoticeWithin, to each person it subscribes on
// soft opt-in or legitimate interest, never for consent, once per person,
// and not when the batch skips it (the imported event says so). A notice
// that leaves the outbox deliverable marks the person's notice sent with
// an informed event naming the mail; one held back (the person opted out
// of everything) records nothing.
func testNotices(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	rep := f.importCSV(`email,topics,basis,consented_at,source,last_purchase_at
soft@example.com,news,soft_opt_in,,shop till 3,2029-06-01
li@example.com,news;offers,legitimate_interest,,,
ok@example.com,news,consent,2025-01-01,shop checkout,
gone@example.com,news,soft_opt_in,,,2029-06-01
`)
	if rep.Imported != 4 || rep.Notices != 3 {
		t.Fatalf("import: got %+v, want 4 imported, 3 notices", rep)
	}
	jobs := f.dueOf(consent.JobNotice, f.now())
	if got := emails(jobs); !slices.Equal(got, []string{"gone@example.com", "li@example.com", "soft@example.com"}) {
		t.Fatalf("notice jobs: got %q, want gone@, li@ and soft@ (not ok@, who consented)", got)
	}
	soft := f.sub("soft@example.com")
	n := soft.Notice
	if n == nil || !n.Pending() || n.Origin != "shop till 3" || n.Basis != consent.BasisSoftOptIn ||
		!n.Due.Equal(n.Queued.Add(consent.DefaultPolicy().NoticeWithin)) || !strings.HasPrefix(n.Source, "import:") {
		t.Fatalf("soft@'s notice: got %+v, want pending, from shop till 3, due NoticeWithin after queuing", n)
	}

	// A second import of the same person queues no second notice; a batch
	// that skips notices queues none and says so in its event.
	f.clock.Advance(time.Minute)
	rep = f.importWith("email,topics,basis,last_purchase_at\nsoft@example.com,offers,soft_opt_in,2029-06-01\nquiet@example.com,news,soft_opt_in,2029-06-01\n",
		consent.ImportOptions{SkipNotice: true})
	if rep.Notices != 0 || rep.Imported != 1 || rep.Updated != 1 {
		t.Fatalf("import skipping notices: got %+v, want quiet@ imported, soft@ updated, no notice", rep)
	}
	if f.sub("quiet@example.com").Notice != nil {
		t.Errorf("quiet@ got a notice from a batch that skips them")
	}
	if evs := f.events(f.sub("quiet@example.com").ID); len(evs) != 1 || !strings.Contains(evs[0].Page, "art14_notice=skipped") {
		t.Errorf("quiet@'s imported event: got %+v, want it to record the skipped notice", evs)
	}
	if got := f.dueOf(consent.JobNotice, f.now()); len(got) != 3 {
		t.Errorf("notice jobs after the second import: got %d, want still 3", len(got))
	}

	f.unsubscribe(f.sub("gone@example.com").ID, "")
	for i, ok := range f.deliverable(jobs...) {
		if want := jobs[i].To != "gone@example.com"; ok != want {
			t.Errorf("deliverable(%s): got %v, want %v (held back only after an opt-out from everything)", jobs[i].To, ok, want)
		}
	}
	f.clock.Advance(time.Second)
	sentAt := f.now()
	if err := f.s.FinishJobs(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	if err := f.s.FinishJobs(ctx, jobs); err != nil { // at least once: a repeat changes nothing
		t.Fatal(err)
	}
	soft = f.sub("soft@example.com")
	if soft.Notice.Pending() || !soft.Notice.Sent.Equal(sentAt) {
		t.Errorf("soft@'s notice after sending: got %+v, want sent at %v", soft.Notice, sentAt)
	}
	var informed []consent.EventRecord
	for _, ev := range f.events(soft.ID) {
		if ev.Type == consent.EventInformed {
			informed = append(informed, ev)
		}
	}
	if len(informed) != 1 || informed[0].MessageID != n.MessageID || informed[0].Basis != consent.BasisSoftOptIn ||
		informed[0].Source != n.Source || informed[0].Personal == nil || informed[0].Personal.Email != "soft@example.com" {
		t.Errorf("informed events of soft@: got %+v, want one naming the notice's mail", informed)
	}
	if gone := f.sub("gone@example.com"); !gone.Notice.Pending() {
		t.Errorf("gone@'s notice: got %+v, want it never marked sent (it was held back)", gone.Notice)
	}
	exp, err := f.s.Export(ctx, soft.ID)
	if err != nil || exp.Subscriber.Notice == nil || exp.Subscriber.Notice.Sent.IsZero() || exp.Events[len(exp.Events)-1].Type != consent.EventInformed {
		t.Errorf("export: got %+v, %v, want the sent notice and the informed event", exp.Subscriber.Notice, err)
	}
	if lr, err := f.s.VerifyLedger(ctx); err != nil || !lr.OK {
		t.Errorf("VerifyLedger: got %+v, %v, want the chain intact", lr, err)
	}
}
