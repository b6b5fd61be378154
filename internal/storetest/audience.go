package storetest

import (
	"maps"
	"slices"
	"testing"
	"time"

	"optin/internal/consent"
)

// verdict is the audience rule's answer for one subscriber.
type verdict struct {
	in     bool
	reason string
}

// walkAudience answers the audience rule for campaign id the slow way,
// as the stores once did: every subscriber's record, its suppression and
// its ledger events, through the store's interface, with
// Campaign.SelectLooking.
func (f *fixture) walkAudience(id string) map[string]verdict {
	f.t.Helper()
	c, err := f.s.Campaign(f.t.Context(), id)
	if err != nil {
		f.t.Fatalf("Campaign(%s): got err %v, want nil", id, err)
	}
	out := map[string]verdict{}
	for _, sid := range f.allSubscribers() {
		sub, err := f.s.Subscriber(f.t.Context(), sid)
		if err != nil {
			f.t.Fatalf("Subscriber(%s): got err %v, want nil", sid, err)
		}
		ok, reason, err := c.SelectLooking(sub, f.now(), campaignPolicy,
			func() (bool, error) { return f.suppressed(sub.Email, c.Topic), nil },
			func(basis consent.Basis) (bool, error) {
				return slices.ContainsFunc(f.events(sid), func(r consent.EventRecord) bool {
					return consent.IsEvidence(&r.Event, c.Topic, basis)
				}), nil
			})
		if err != nil {
			f.t.Fatal(err)
		}
		out[sid] = verdict{ok, reason}
	}
	return out
}

// wantIndexedAudience checks that campaign c's preview counts, and its
// audience list page by page for every choice of only, give exactly the
// verdicts of a full walk (walkAudience).
func (f *fixture) wantIndexedAudience(what string, c *consent.Campaign) map[string]verdict {
	f.t.Helper()
	walked := f.walkAudience(c.ID)
	want := consent.NewCampaignPreview()
	for _, v := range walked {
		want.Count(v.in, v.reason)
	}
	if pv := f.preview(c); pv.Audience != want.Audience || !maps.Equal(pv.Excluded, want.Excluded) {
		f.t.Errorf("%s: PreviewCampaign got audience %d, excluded %v; a full walk counts %d, %v",
			what, pv.Audience, nonZero(pv.Excluded), want.Audience, nonZero(want.Excluded))
	}
	for _, only := range append([]string{"", "in", "out"}, consent.ExclusionReasons()...) {
		q := consent.AudienceQuery{Only: only}
		var wantIDs []string
		for id, v := range walked {
			if q.Keeps(v.in, v.reason) {
				wantIDs = append(wantIDs, id)
			}
		}
		slices.Sort(wantIDs)
		var gotIDs []string
		for _, e := range f.audience(c, only, 3) {
			gotIDs = append(gotIDs, e.Subscriber)
			if v := walked[e.Subscriber]; e.In != v.in || e.Reason != v.reason {
				f.t.Errorf("%s: audience list (only %q) has %s in %v (reason %q); a full walk says in %v (reason %q)",
					what, only, e.Email, e.In, e.Reason, v.in, v.reason)
			}
			sub := f.sub(e.Email)
			if s := sub.Subscriptions[c.Topic]; sub.ID != e.Subscriber || (s != nil && (e.Status != s.Status || e.Basis != s.Basis)) {
				f.t.Errorf("%s: audience entry %+v does not match the record %+v", what, e, sub)
			}
		}
		if !slices.Equal(gotIDs, wantIDs) {
			f.t.Errorf("%s: audience list (only %q) got %d subscribers %q, a full walk keeps %d %q", what, only, len(gotIDs), gotIDs, len(wantIDs), wantIDs)
		}
	}
	return walked
}

// testCampaignAudienceIndexed: a campaign's preview, its audience list
// and its run read indexes, and give exactly the in and out sets and the
// reasons of a walk through every record, its suppression and ledger
// evidence, on a mix of every reason, with and without filters, before
// and after a campaign asked some of them, and after records changed.
func testCampaignAudienceIndexed(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	rep := f.importCSV(`email,topics,basis,consented_at,source,last_purchase_at
a1@example.com,news,consent,2025-01-01,shop checkout,
a2@example.com,news;offers,consent,2025-01-01,shop checkout,
a3@example.com,news;offers,consent,2024-06-01,shop checkout,2026-03-01
a4@example.com,news,consent,2025-01-01,shop checkout,2025-02-01
soft@example.com,news,soft_opt_in,,,2029-09-01
stale@example.com,news,soft_opt_in,,,2025-01-01
interest@example.com,news,legitimate_interest,,,
unsub@example.com,news;offers,consent,2025-01-01,shop checkout,
supp@example.com,news,consent,2025-01-01,shop checkout,
suppall@example.com,news,consent,2025-01-01,shop checkout,
suppother@example.com,news,consent,2025-01-01,shop checkout,
noproof@example.com,news,consent,,,
active@example.com,news;offers,consent,2025-01-01,shop checkout,2029-12-01
offersonly@example.com,offers,consent,2025-01-01,shop checkout,
`)
	if rep.Imported != 14 || rep.InvalidCount != 0 {
		t.Fatalf("Import: got %+v, want 14 imported", rep)
	}
	f.signup("pending@example.com")
	f.subscribe("fresh@example.com")
	f.unsubscribe(f.sub("unsub@example.com").ID, "news")
	f.suppress("supp@example.com", "news")
	f.suppress("suppall@example.com", "")
	f.suppress("suppother@example.com", "offers")

	plain := f.createCampaign(consent.CampaignInput{})
	filtered := f.createCampaign(consent.CampaignInput{Audience: consent.AudienceInput{
		Lifecycle: []consent.Lifecycle{consent.LifecycleDormant, consent.LifecycleProspect}, Topics: []string{"offers"},
		ConsentOlderThan: "900d"}})
	seen := map[string]bool{}
	see := func(walked map[string]verdict) {
		for _, v := range walked {
			seen[v.reason] = true
		}
	}
	see(f.wantIndexedAudience("before the notices", plain))

	if err := f.s.FinishJobs(ctx, f.dueOf(consent.JobNotice, f.now())); err != nil {
		t.Fatal(err)
	}
	see(f.wantIndexedAudience("unfiltered", plain))
	see(f.wantIndexedAudience("filtered", filtered))

	// The run walks the same index: it asks exactly those the preview
	// counts in, and counts the others by the same reasons.
	walked := f.walkAudience(plain.ID)
	if _, err := f.s.StartCampaign(ctx, admin, plain.ID); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := f.s.CampaignStep(ctx, campaignPolicy, time.Second, true); err != nil {
			t.Fatal(err)
		}
	}
	ran, err := f.s.Campaign(ctx, plain.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantRun := consent.NewCampaignPreview()
	for _, v := range walked {
		wantRun.Count(v.in, v.reason)
	}
	if !ran.Walked || ran.Counts.Targeted != wantRun.Audience || !maps.Equal(nonZero(ran.Counts.Excluded), nonZero(wantRun.Excluded)) {
		t.Errorf("campaign run: got walked %v, targeted %d, excluded %v; a full walk counts %d, %v",
			ran.Walked, ran.Counts.Targeted, nonZero(ran.Counts.Excluded), wantRun.Audience, nonZero(wantRun.Excluded))
	}

	// Those asked are now already asked; a subscriber who arrives after
	// the start is left out of the running campaign; changed records
	// move their facts.
	f.clock.Advance(time.Minute)
	f.importConsented("late@example.com")
	if _, err := f.s.RecordActivity(ctx, admin, f.sub("a1@example.com").ID,
		consent.Activity{Kind: consent.ActivityPurchase, At: f.now().Add(-time.Hour)}, true); err != nil {
		t.Fatal(err)
	}
	f.unsubscribe(f.sub("a4@example.com").ID, "")
	f.clock.Advance(24 * time.Hour)
	running, err := f.s.Campaign(ctx, plain.ID)
	if err != nil {
		t.Fatal(err)
	}
	after := f.wantIndexedAudience("running", running)
	see(after)
	if after[f.sub("late@example.com").ID].reason != consent.ExcludedNew {
		t.Errorf("running campaign: late@ got %+v, want left out as %s", after[f.sub("late@example.com").ID], consent.ExcludedNew)
	}
	again := f.createCampaign(consent.CampaignInput{})
	if n := f.preview(again).Excluded[consent.ExcludedAlreadyAsked]; n == 0 {
		t.Errorf("a second campaign: got no one already asked, want those the first asked")
	}
	see(f.wantIndexedAudience("second campaign", again))
	see(f.wantIndexedAudience("filtered, later", filtered))

	// The first mails go out and nobody answers: at the deadline their
	// subscriptions lapse.
	if err := f.s.FinishJobs(ctx, f.dueOf(consent.JobReawaken, f.now())); err != nil {
		t.Fatal(err)
	}
	f.step()
	f.clock.Advance(time.Duration(consent.DefaultCampaignDeadline) + time.Hour)
	f.step()
	see(f.wantIndexedAudience("after the deadline", again))
	for _, r := range consent.ExclusionReasons() {
		if !seen[r] {
			t.Errorf("the mixed data never had anyone left out as %s", r)
		}
	}
}
