package storetest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"optin/internal/consent"
)

// campaignPolicy is the operator's setting every campaign of the suite
// runs with.
var campaignPolicy = consent.CampaignPolicy{DormantAfter: 365 * consent.Day}

// importConsented imports addrs as news subscribers with evidence of
// their consent.
func (f *fixture) importConsented(addrs ...string) {
	f.t.Helper()
	var b strings.Builder
	b.WriteString("email,topics,basis,consented_at,source\n")
	for _, a := range addrs {
		fmt.Fprintf(&b, "%s,news,consent,2025-01-01,shop checkout\n", a)
	}
	if rep := f.importCSV(b.String()); rep.Imported != len(addrs) {
		f.t.Fatalf("Import: got %+v, want %d imported", rep, len(addrs))
	}
}

// createCampaign creates a draft reawaken campaign from in, with the
// name, topic (news) and template filled in where in leaves them out.
func (f *fixture) createCampaign(in consent.CampaignInput) *consent.Campaign {
	f.t.Helper()
	if in.Name == "" {
		in.Name = "Still interested?"
	}
	if in.Topic == "" {
		in.Topic = "news"
	}
	if in.Templates == nil {
		in.Templates = map[string]consent.CampaignTemplate{"en": {Subject: "Still interested in {{topic}}?", Body: "Hello {{name}}"}}
	}
	c, err := f.s.CreateCampaign(f.t.Context(), admin, in)
	if err != nil {
		f.t.Fatalf("CreateCampaign: got err %v, want nil", err)
	}
	return c
}

// runCampaign starts c and runs one campaign step, which must queue want
// first mails.
func (f *fixture) runCampaign(c *consent.Campaign, want int) {
	f.t.Helper()
	if _, err := f.s.StartCampaign(f.t.Context(), admin, c.ID); err != nil {
		f.t.Fatalf("StartCampaign: got err %v, want nil", err)
	}
	res, err := f.s.CampaignStep(f.t.Context(), campaignPolicy, time.Second, true)
	if err != nil || res.Queued != want {
		f.t.Fatalf("CampaignStep: got %+v, %v, want %d queued", res, err, want)
	}
}

func (f *fixture) preview(c *consent.Campaign) consent.CampaignPreview {
	f.t.Helper()
	pv, err := f.s.PreviewCampaign(f.t.Context(), c.ID, campaignPolicy)
	if err != nil {
		f.t.Fatalf("PreviewCampaign: got err %v, want nil", err)
	}
	return pv
}

// testCampaignEligibility: a reawaken campaign reaches only confirmed
// subscribers with a provable basis; pending, withdrawn, suppressed and
// basis-less contacts, and those who consented within
// lifecycle.dormant_after, are never in its audience, whatever its
// filters; without filters it asks dormant contacts only; and a preview
// counts the same without changing anything.
func testCampaignEligibility(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	rep := f.importCSV(`email,topics,basis,consented_at,source,last_purchase_at
ok@example.com,news,consent,2025-01-01,shop checkout,
soft@example.com,news,soft_opt_in,,,2028-09-01
stale@example.com,news,soft_opt_in,,,2025-01-01
interest@example.com,news,legitimate_interest,,,
unsub@example.com,news,consent,2025-01-01,shop checkout,
supp@example.com,news,consent,2025-01-01,shop checkout,
noproof@example.com,news,consent,,,
active@example.com,news,consent,2025-01-01,shop checkout,2029-12-01
`)
	if rep.Imported != 8 || rep.Pending != 1 || rep.InvalidCount != 0 {
		t.Fatalf("Import: got %+v, want 8 imported, 1 of them pending", rep)
	}
	f.signup("pending@example.com")
	f.signup("other@example.com", "offers")
	f.subscribe("fresh@example.com")
	f.unsubscribe(f.sub("unsub@example.com").ID, "news")
	f.suppress("supp@example.com", "news")

	c := f.createCampaign(consent.CampaignInput{})
	want := map[string]int{consent.ExcludedPending: 2, consent.ExcludedUnsubscribed: 1, consent.ExcludedSuppressed: 1,
		consent.ExcludedNoBasis: 1, consent.ExcludedSoftOptInExpiry: 1, consent.ExcludedNotSubscribed: 1,
		consent.ExcludedRecent: 1, consent.ExcludedNotDormant: 1}
	// soft@ was imported, so no reawaken mail reaches them before the
	// information notice went out (GDPR Art. 14(3)(b)).
	early := maps.Clone(want)
	early[consent.ExcludedNoticePending] = 1
	if pv := f.preview(c); pv.Audience != 1 || !maps.Equal(nonZero(pv.Excluded), early) {
		t.Errorf("PreviewCampaign before the notices went out: got audience %d, excluded %v, want 1, %v", pv.Audience, nonZero(pv.Excluded), early)
	}
	notices := f.dueOf(consent.JobNotice, f.now())
	if got := emails(notices); !slices.Equal(got, []string{"interest@example.com", "soft@example.com", "stale@example.com"}) {
		t.Fatalf("notices: got %q, want one to each person imported on soft opt-in or legitimate interest", got)
	}
	if err := f.s.FinishJobs(ctx, notices); err != nil {
		t.Fatal(err)
	}
	mails := len(f.due(f.now()))
	pv := f.preview(c)
	if pv.Audience != 2 || !maps.Equal(nonZero(pv.Excluded), want) {
		t.Errorf("PreviewCampaign: got audience %d, excluded %v, want 2, %v", pv.Audience, nonZero(pv.Excluded), want)
	}
	// A filter narrows the audience; it never lets anyone in. With one,
	// the marketer chooses the lifecycle: active customers may be asked.
	narrow := f.createCampaign(consent.CampaignInput{Audience: consent.AudienceInput{
		Lifecycle: []consent.Lifecycle{consent.LifecycleDormant}}})
	wantNarrow := maps.Clone(want)
	delete(wantNarrow, consent.ExcludedNotDormant)
	wantNarrow[consent.ExcludedFiltered] = 2
	if pv := f.preview(narrow); pv.Audience != 1 || !maps.Equal(nonZero(pv.Excluded), wantNarrow) {
		t.Errorf("PreviewCampaign with a dormant filter: got audience %d, excluded %v, want 1, %v", pv.Audience, nonZero(pv.Excluded), wantNarrow)
	}
	got, err := f.s.Campaign(ctx, c.ID)
	if err != nil || got.State != consent.CampaignDraft || got.Counts.Targeted != 0 {
		t.Errorf("campaign after previews: got %+v, %v, want an untouched draft", got, err)
	}
	if len(f.sub("ok@example.com").Reawakened) != 0 {
		t.Errorf("a preview marked ok@example.com as asked")
	}
	if n := len(f.due(f.now())); n != mails {
		t.Errorf("DueJobs after previews: got %d, want %d (a preview sends nothing)", n, mails)
	}

	f.runCampaign(c, 2)
	if got := emails(f.dueOf(consent.JobReawaken, f.now())); !slices.Equal(got, []string{"ok@example.com", "soft@example.com"}) {
		t.Errorf("reawaken mails: got %q, want ok@ and soft@", got)
	}
	// Asked once in this dormancy cycle: not again by the next campaign.
	again := f.createCampaign(consent.CampaignInput{})
	wantAgain := maps.Clone(want)
	wantAgain[consent.ExcludedAlreadyAsked] = 2
	if pv := f.preview(again); pv.Audience != 0 || !maps.Equal(nonZero(pv.Excluded), wantAgain) {
		t.Errorf("PreviewCampaign of a second campaign: got audience %d, excluded %v, want 0, %v", pv.Audience, nonZero(pv.Excluded), wantAgain)
	}
	if cs, err := f.s.Campaigns(ctx); err != nil || len(cs) != 3 {
		t.Errorf("Campaigns: got %d, %v, want 3", len(cs), err)
	}
}

// step runs one campaign step at the fixture's clock.
func (f *fixture) step() consent.StepResult {
	f.t.Helper()
	res, err := f.s.CampaignStep(f.t.Context(), campaignPolicy, time.Second, true)
	if err != nil {
		f.t.Fatalf("CampaignStep: got err %v, want nil", err)
	}
	return res
}

// reawakenJobTo returns the reawaken job to email due now.
func (f *fixture) reawakenJobTo(email string) consent.Job {
	f.t.Helper()
	for _, j := range f.dueOf(consent.JobReawaken, f.now()) {
		if j.To == email {
			return j
		}
	}
	f.t.Fatalf("no reawaken job to %s", email)
	return consent.Job{}
}

// testCampaignCancel: a cancelled campaign sends none of the first mails
// still in the outbox, reminds nobody and lapses nobody; those already
// asked keep their subscription, those whose mail was withheld may be
// asked by the next campaign; the cancel is audited and final.
func testCampaignCancel(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	f.importConsented("asked@example.com", "waiting@example.com")
	c := f.createCampaign(consent.CampaignInput{Reminder: "7d"})
	f.runCampaign(c, 2)
	sent, waiting := f.reawakenJobTo("asked@example.com"), f.reawakenJobTo("waiting@example.com")
	if err := f.s.FinishJobs(ctx, []consent.Job{sent}); err != nil {
		t.Fatalf("FinishJobs: got err %v, want nil", err)
	}
	f.step()

	got, err := f.s.CancelCampaign(ctx, admin, c.ID)
	if err != nil || got.State != consent.CampaignCancelled || !got.Cancelled.Equal(f.now()) {
		t.Fatalf("CancelCampaign: got %+v, %v, want cancelled now", got, err)
	}
	if oks := f.deliverable(waiting); oks[0] {
		t.Errorf("DeliverableBatch of a cancelled campaign's first mail: got true, want false")
	}
	if err := f.s.FinishJobs(ctx, []consent.Job{waiting}); err != nil {
		t.Fatalf("FinishJobs: got err %v, want nil", err)
	}
	f.step()
	f.clock.Advance(31 * consent.Day) // past the reminder and the deadline
	if res := f.step(); res.Queued != 0 || res.Lapsed != 0 {
		t.Errorf("CampaignStep after the deadline of a cancelled campaign: got %+v, want nothing", res)
	}
	if n := len(f.dueOf(consent.JobReawaken, f.now())); n != 0 {
		t.Errorf("reawaken mails after cancel: got %d, want 0", n)
	}
	got, err = f.s.Campaign(ctx, c.ID)
	if err != nil || got.Counts.Sent != 1 || got.Counts.Withheld != 1 || got.Counts.Lapsed != 0 || got.Counts.Reminded != 0 {
		t.Errorf("counts of the cancelled campaign: got %+v, %v, want 1 sent, 1 withheld, none reminded or lapsed", got.Counts, err)
	}
	if s := f.sub("asked@example.com").Subscriptions["news"]; s.Status != consent.StatusConfirmed {
		t.Errorf("asked@ after the deadline of a cancelled campaign: got %s, want confirmed", s.Status)
	}
	next := f.createCampaign(consent.CampaignInput{})
	if pv := f.preview(next); pv.Audience != 1 || pv.Excluded[consent.ExcludedAlreadyAsked] != 1 {
		t.Errorf("PreviewCampaign after a cancel: got audience %d, excluded %v, want waiting@ in, asked@ already asked", pv.Audience, nonZero(pv.Excluded))
	}

	for name, call := range map[string]func(context.Context, consent.Actor, string) (*consent.Campaign, error){
		"StartCampaign": f.s.StartCampaign, "PauseCampaign": f.s.PauseCampaign} {
		_, err := call(ctx, admin, c.ID)
		f.wantCode(name+" of a cancelled campaign", err, consent.EConflict)
	}
	if again, err := f.s.CancelCampaign(ctx, admin, c.ID); err != nil || !again.Cancelled.Equal(got.Cancelled) {
		t.Errorf("CancelCampaign again: got %+v, %v, want the same cancelled campaign", again, err)
	}
	_, err = f.s.CancelCampaign(ctx, admin, "nope")
	f.wantCode("CancelCampaign of an unknown campaign", err, consent.ENotFound)
	if n := strings.Count(strings.Join(f.auditActions(), " "), "campaign.cancel"); n != 2 {
		t.Errorf("audit: got %d campaign.cancel entries, want 2", n)
	}
}

// testCampaignLiveCounts: a campaign counts each answer the moment it is
// given, before any deadline: a one-click unsubscribe, an operator's
// withdrawal on the person's word, an unsubscribe from everything while
// the mail still waits in the outbox (which is then not sent), and "keep
// me subscribed"; the deadline later counts nobody twice.
func testCampaignLiveCounts(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	f.importConsented("one@example.com", "two@example.com", "three@example.com", "keep@example.com")
	c := f.createCampaign(consent.CampaignInput{})
	f.runCampaign(c, 4)
	var sent []consent.Job
	for _, a := range []string{"one@example.com", "two@example.com", "keep@example.com"} {
		sent = append(sent, f.reawakenJobTo(a))
	}
	waiting := f.reawakenJobTo("three@example.com")
	if err := f.s.FinishJobs(ctx, sent); err != nil {
		t.Fatalf("FinishJobs: got err %v, want nil", err)
	}
	f.step()
	counts := func(what string, unsubscribed, reconfirmed int) {
		t.Helper()
		got, err := f.s.Campaign(ctx, c.ID)
		if err != nil || got.Counts.Unsubscribed != unsubscribed || got.Counts.Reconfirmed != reconfirmed {
			t.Errorf("counts after %s: got %+v, %v, want %d unsubscribed, %d reconfirmed", what, got.Counts, err, unsubscribed, reconfirmed)
		}
	}
	f.unsubscribe(f.sub("one@example.com").ID, "news")
	counts("a one-click unsubscribe", 1, 0)
	if _, err := f.s.WithdrawFor(ctx, admin, f.sub("two@example.com").ID, "news", "asked by phone"); err != nil {
		t.Fatalf("WithdrawFor: got err %v, want nil", err)
	}
	counts("a withdrawal on the person's word", 2, 0)
	f.unsubscribe(f.sub("three@example.com").ID, "")
	counts("an unsubscribe from everything while the mail waits", 3, 0)
	if oks := f.deliverable(waiting); oks[0] {
		t.Errorf("DeliverableBatch of the answered recipient's mail: got true, want false")
	}
	if _, err := f.s.Reconfirm(ctx, c.ID, f.sub("keep@example.com").ID, f.wording(), consent.ConfirmInput{}); err != nil {
		t.Fatalf("Reconfirm: got err %v, want nil", err)
	}
	counts("keep me subscribed", 3, 1)

	if err := f.s.FinishJobs(ctx, []consent.Job{waiting}); err != nil {
		t.Fatalf("FinishJobs: got err %v, want nil", err)
	}
	f.step()
	f.clock.Advance(31 * consent.Day)
	if res := f.step(); res.Lapsed != 0 {
		t.Errorf("CampaignStep at the deadline: got %+v, want nobody lapsed (everyone answered)", res)
	}
	counts("the deadline", 3, 1)
	if got, _ := f.s.Campaign(ctx, c.ID); got.Counts.Sent != 3 || got.Counts.Dropped != 0 {
		t.Errorf("counts at the end: got %+v, want 3 sent, none dropped", got.Counts)
	}
}

// audience returns every entry of campaign c's audience list for only,
// page by page of limit.
func (f *fixture) audience(c *consent.Campaign, only string, limit int) []consent.AudienceEntry {
	f.t.Helper()
	var all []consent.AudienceEntry
	q := consent.AudienceQuery{Limit: limit, Only: only}
	for range 100 {
		page, err := f.s.CampaignAudience(f.t.Context(), c.ID, campaignPolicy, q)
		if err != nil {
			f.t.Fatalf("CampaignAudience(%+v): got err %v, want nil", q, err)
		}
		if len(page.Items) > limit {
			f.t.Fatalf("CampaignAudience(%+v): got %d entries, want at most %d", q, len(page.Items), limit)
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all
		}
		q.Cursor = page.NextCursor
	}
	f.t.Fatalf("CampaignAudience: no last page after 100 pages")
	return nil
}

// testCampaignAudienceList: the audience list names each subscriber once,
// in or out with the reason, page by page, and agrees with the preview's
// counts; it can keep only those in, or one reason.
func testCampaignAudienceList(t *testing.T, f *fixture) {
	f.bootstrap()
	f.importConsented("in1@example.com", "in2@example.com", "in3@example.com", "gone@example.com")
	f.signup("pending@example.com")
	f.unsubscribe(f.sub("gone@example.com").ID, "news")
	c := f.createCampaign(consent.CampaignInput{})
	pv := f.preview(c)

	all := f.audience(c, "", 2)
	counted := consent.NewCampaignPreview()
	seen := map[string]bool{}
	for _, e := range all {
		if seen[e.Subscriber] {
			t.Errorf("audience list: %s listed twice", e.Email)
		}
		seen[e.Subscriber] = true
		if e.In {
			counted.Audience++
		} else {
			counted.Excluded[e.Reason]++
		}
	}
	if len(all) != 5 || counted.Audience != pv.Audience || !maps.Equal(counted.Excluded, pv.Excluded) {
		t.Errorf("audience list: got %d entries counting %+v, want 5 that agree with the preview %+v", len(all), counted, pv)
	}
	in := f.audience(c, "in", 500)
	if got := emailsOf(in); !slices.Equal(got, []string{"in1@example.com", "in2@example.com", "in3@example.com"}) {
		t.Errorf("audience list, only in: got %q", got)
	}
	pending := f.audience(c, consent.ExcludedPending, 500)
	if len(pending) != 1 || pending[0].Email != "pending@example.com" || pending[0].In || pending[0].Reason != consent.ExcludedPending ||
		pending[0].Status != consent.StatusPending || pending[0].Lifecycle != consent.LifecycleProspect {
		t.Errorf("audience list, only pending: got %+v", pending)
	}
	_, err := f.s.CampaignAudience(t.Context(), "nope", campaignPolicy, consent.AudienceQuery{Limit: 10})
	f.wantCode("CampaignAudience of an unknown campaign", err, consent.ENotFound)
}

// emailsOf returns the addresses of entries, sorted.
func emailsOf(entries []consent.AudienceEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Email)
	}
	slices.Sort(out)
	return out
}
