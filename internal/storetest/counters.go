package storetest

import (
	"maps"
	"testing"
	"time"

	"optin/internal/consent"
)

// testCounters: the counters Stats reads, kept in the transactions of the
// writes, match a full walk of the records after a mixed sequence of
// signups, confirmations, unsubscribes, erasures, imports, purchases,
// lapses and sweeps over several days; CheckCounters finds no difference
// and RebuildCounters corrects none.
func testCounters(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	var ids []string // every subscriber ever made, erased ones too
	note := func(email string) { ids = append(ids, f.sub(email).ID) }

	f.importConsented("imp1@example.com", "imp2@example.com", "imp3@example.com")
	rep := f.importCSV("email,topics,basis,consented_at,source,last_purchase_at\n" +
		"soft@example.com,news;offers,soft_opt_in,,,2029-06-01\n" +
		"old@example.com,news,soft_opt_in,,,2025-01-01\n" +
		"noproof@example.com,offers,consent,,,\n")
	if rep.Imported != 3 || rep.Pending != 1 {
		t.Fatalf("Import: got %+v, want 3 imported, 1 of them pending", rep)
	}
	for _, e := range []string{"imp1", "imp2", "imp3", "soft", "old", "noproof"} {
		note(e + "@example.com")
	}
	ann := f.subscribe("ann@example.com", "news", "offers")
	note("ann@example.com")
	f.clock.Advance(consent.Day)
	f.signup("pending@example.com", "news", "offers")
	note("pending@example.com")
	f.unsubscribe(ann.ID, "offers")
	bob := f.subscribe("bob@example.com")
	note("bob@example.com")
	f.clock.Advance(consent.Day)
	if err := f.s.EraseSubscriber(ctx, admin, bob.ID); err != nil {
		t.Fatalf("EraseSubscriber: got err %v, want nil", err)
	}
	if _, err := f.s.WithdrawFor(ctx, admin, f.sub("imp3@example.com").ID, "", "asked by phone"); err != nil {
		t.Fatalf("WithdrawFor: got err %v, want nil", err)
	}
	// A reawaken campaign whose unanswered mails lapse two subscriptions
	// (the others are left out: consented lately, bought lately, or not
	// yet sent their information notice).
	c := f.createCampaign(consent.CampaignInput{})
	f.runCampaign(c, 2)
	if err := f.s.FinishJobs(ctx, f.dueOf(consent.JobReawaken, f.now())); err != nil {
		t.Fatalf("FinishJobs: got err %v, want nil", err)
	}
	if _, err := f.s.CampaignStep(ctx, campaignPolicy, time.Second, true); err != nil {
		t.Fatalf("CampaignStep: got err %v, want nil", err)
	}
	f.clock.Advance(31 * consent.Day)
	if res, err := f.s.CampaignStep(ctx, campaignPolicy, time.Second, true); err != nil || res.Lapsed != 2 {
		t.Fatalf("CampaignStep after the deadline: got %+v, %v, want 2 lapsed", res, err)
	}
	// The pending signup's link expired long ago: the sweep forgets it.
	if n, err := f.s.SweepRequests(ctx, 0); err != nil || n == 0 {
		t.Fatalf("SweepRequests: got %d, %v, want some swept", n, err)
	}
	f.signup("late@example.com")
	note("late@example.com")
	dormantAfter := 365 * consent.Day
	// Purchases on either side of the moment that makes a customer
	// dormant, on its very day.
	purchase := func(email string, at time.Time) {
		act := consent.Activity{Kind: consent.ActivityPurchase, At: at}
		if _, err := f.s.RecordActivity(ctx, admin, f.sub(email).ID, act, true); err != nil {
			t.Fatalf("RecordActivity(%s): got err %v, want nil", email, err)
		}
	}
	cutoff := f.now().Add(-dormantAfter)
	purchase("imp2@example.com", cutoff.Add(-time.Millisecond))
	purchase("ann@example.com", cutoff.Add(time.Millisecond))

	diff, err := f.s.CheckCounters(ctx)
	if err != nil || len(diff) != 0 {
		t.Errorf("CheckCounters: got %v, %v, want no difference", diff, err)
	}
	st, err := f.s.Stats(ctx, dormantAfter, 90)
	if err != nil {
		t.Fatalf("Stats: got err %v, want nil", err)
	}
	// The walk: every subscriber through the listing, every event
	// through each subscriber's proof of consent.
	want := consent.Stats{ByStatus: map[consent.Status]int{}, ByTopic: map[string]map[consent.Status]int{}, ByLifecycle: map[consent.Lifecycle]int{}}
	for _, id := range f.allSubscribers() {
		sub, err := f.s.Subscriber(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want.Subscribers++
		want.ByLifecycle[sub.Lifecycle(f.now(), dormantAfter)]++
		for topic, s := range sub.Subscriptions {
			want.ByStatus[s.Status]++
			if want.ByTopic[topic] == nil {
				want.ByTopic[topic] = map[consent.Status]int{}
			}
			want.ByTopic[topic][s.Status]++
		}
	}
	if want.ByLifecycle[consent.LifecycleDormant] != 2 || want.ByLifecycle[consent.LifecycleCustomer] != 2 {
		t.Fatalf("the walk: got lifecycles %v, want 2 dormant and 2 customers", want.ByLifecycle)
	}
	if st.Subscribers != want.Subscribers || !maps.Equal(st.ByStatus, want.ByStatus) || !maps.Equal(st.ByLifecycle, want.ByLifecycle) ||
		!maps.EqualFunc(st.ByTopic, want.ByTopic, maps.Equal) {
		t.Errorf("Stats: got %d %v %v %v, want the walk's %d %v %v %v", st.Subscribers, st.ByStatus, st.ByLifecycle, st.ByTopic,
			want.Subscribers, want.ByStatus, want.ByLifecycle, want.ByTopic)
	}
	days := map[string]consent.DayStats{}
	byType := map[consent.EventType]uint64{}
	for _, id := range ids {
		for _, ev := range f.events(id) {
			byType[ev.Type]++
			date := ev.Time.UTC().Format(time.DateOnly)
			d := days[date]
			switch ev.Type {
			case consent.EventRequested:
				d.Signups++
			case consent.EventConfirmed:
				d.Confirmations++
			case consent.EventUnsubscribed:
				d.Unsubscribes++
			}
			days[date] = d
		}
	}
	if len(st.Daily) != 90 || st.Daily[89].Date != f.now().Format(time.DateOnly) {
		t.Fatalf("Stats.Daily: got %d days ending %+v, want 90 ending today", len(st.Daily), st.Daily[len(st.Daily)-1])
	}
	seen := 0
	for _, d := range st.Daily {
		w := days[d.Date]
		w.Date = d.Date
		if d != w {
			t.Errorf("Stats.Daily %s: got %+v, want the ledger's %+v", d.Date, d, w)
		}
		seen += d.Signups + d.Confirmations + d.Unsubscribes
	}
	if seen == 0 {
		t.Errorf("Stats.Daily: counted nothing")
	}
	events, last, err := f.s.LedgerCounts(ctx, 0)
	if err != nil || !maps.Equal(events, byType) {
		t.Errorf("LedgerCounts(0): got %v, %v, want the events of the walk %v", events, err, byType)
	}
	if more, at, err := f.s.LedgerCounts(ctx, last); err != nil || len(more) != 0 || at != last {
		t.Errorf("LedgerCounts(%d): got %v, %d, %v, want nothing after the last event", last, more, at, err)
	}
	if diff, err := f.s.RebuildCounters(ctx); err != nil || len(diff) != 0 {
		t.Errorf("RebuildCounters: got %v, %v, want nothing to correct", diff, err)
	}
	if again, err := f.s.Stats(ctx, dormantAfter, 90); err != nil || again.Subscribers != st.Subscribers || !maps.Equal(again.ByStatus, st.ByStatus) {
		t.Errorf("Stats after RebuildCounters: got %+v, %v, want the same as before", again, err)
	}
}
