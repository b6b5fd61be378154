package storetest

import (
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
// basis-less contacts are never in its audience, whatever its filters,
// and a preview counts the same without changing anything.
func testCampaignEligibility(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	rep := f.importCSV(`email,topics,basis,consented_at,source,last_purchase_at
ok@example.com,news,consent,2025-01-01,shop checkout,
soft@example.com,news,soft_opt_in,,,2029-06-01
stale@example.com,news,soft_opt_in,,,2025-01-01
interest@example.com,news,legitimate_interest,,,
unsub@example.com,news,consent,2025-01-01,shop checkout,
supp@example.com,news,consent,2025-01-01,shop checkout,
noproof@example.com,news,consent,,,
`)
	if rep.Imported != 7 || rep.Pending != 1 || rep.InvalidCount != 0 {
		t.Fatalf("Import: got %+v, want 7 imported, 1 of them pending", rep)
	}
	f.signup("pending@example.com")
	f.signup("other@example.com", "offers")
	f.unsubscribe(f.sub("unsub@example.com").ID, "news")
	f.suppress("supp@example.com", "news")

	c := f.createCampaign(consent.CampaignInput{})
	want := map[string]int{consent.ExcludedPending: 2, consent.ExcludedUnsubscribed: 1, consent.ExcludedSuppressed: 1,
		consent.ExcludedNoBasis: 1, consent.ExcludedSoftOptInExpiry: 1, consent.ExcludedNotSubscribed: 1}
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
	// A filter narrows the audience; it never lets anyone in.
	narrow := f.createCampaign(consent.CampaignInput{Audience: consent.AudienceInput{
		Lifecycle: []consent.Lifecycle{consent.LifecycleCustomer}}})
	wantNarrow := maps.Clone(want)
	wantNarrow[consent.ExcludedFiltered] = 1
	if pv := f.preview(narrow); pv.Audience != 1 || !maps.Equal(nonZero(pv.Excluded), wantNarrow) {
		t.Errorf("PreviewCampaign with a customer filter: got audience %d, excluded %v, want 1, %v", pv.Audience, nonZero(pv.Excluded), wantNarrow)
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
