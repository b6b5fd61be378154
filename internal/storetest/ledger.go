package storetest

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"optin/internal/consent"
)

// testLedgerOrderAndChain: a subscriber's events come back in order;
// all events together form one hash chain from the first, each committing
// to its personal record; VerifyLedger and LedgerCounts count them all.
func testLedgerOrderAndChain(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	f.signup("ann@example.com")
	f.clock.Advance(time.Second)
	f.signup("bob@example.com")
	ann := f.sub("ann@example.com")
	bob := f.sub("bob@example.com")
	f.clock.Advance(time.Second)
	if _, err := f.s.Confirm(ctx, ann.PendingRequest, consent.ConfirmInput{}); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	f.clock.Advance(time.Second)
	f.unsubscribe(ann.ID, "news")
	f.clock.Advance(time.Second)
	if err := f.s.UpdatePreferences(ctx, ann.ID, consent.PreferenceChoice{Topics: []string{"news"}}, f.wording(), consent.ConfirmInput{}); err != nil {
		t.Fatalf("UpdatePreferences: %v", err)
	}

	annEvents := f.events(ann.ID)
	var types []consent.EventType
	for i, ev := range annEvents {
		types = append(types, ev.Type)
		if ev.Subscriber != ann.ID {
			t.Errorf("ann's event %d: got subscriber %s, want %s", ev.Seq, ev.Subscriber, ann.ID)
		}
		if i > 0 && (ev.Seq <= annEvents[i-1].Seq || ev.Time.Before(annEvents[i-1].Time)) {
			t.Errorf("ann's events %d and %d: got seq %d then %d at %v then %v, want both increasing",
				i-1, i, annEvents[i-1].Seq, ev.Seq, annEvents[i-1].Time, ev.Time)
		}
	}
	want := []consent.EventType{consent.EventRequested, consent.EventConfirmed, consent.EventUnsubscribed, consent.EventPreferencesUpdated}
	if !slices.Equal(types, want) {
		t.Errorf("ann's events: got %q, want %q", types, want)
	}

	all := append(annEvents, f.events(bob.ID)...)
	slices.SortFunc(all, func(a, b consent.EventRecord) int { return cmp.Compare(a.Seq, b.Seq) })
	prev := ""
	for i, ev := range all {
		if ev.Seq != uint64(i+1) || ev.Prev != prev || ev.Hash != ev.ComputeHash() {
			t.Errorf("event %d: got seq %d, prev %.12s, hash %.12s, want seq %d after %.12s, hash of its content",
				i+1, ev.Seq, ev.Prev, ev.Hash, i+1, prev)
		}
		if ev.Personal == nil || ev.Personal.Digest() != ev.PersonalDigest {
			t.Errorf("event %d: got personal record %+v, want one matching its digest", ev.Seq, ev.Personal)
		}
		prev = ev.Hash
	}
	f.wantLedgerOK(5)

	counts, last, err := f.s.LedgerCounts(ctx, 0)
	wantCounts := map[consent.EventType]uint64{consent.EventRequested: 2, consent.EventConfirmed: 1,
		consent.EventUnsubscribed: 1, consent.EventPreferencesUpdated: 1}
	if err != nil || last != 5 || !maps.Equal(counts, wantCounts) {
		t.Errorf("LedgerCounts(0): got %v, %d, %v, want %v, 5, nil", counts, last, err, wantCounts)
	}
	counts, last, err = f.s.LedgerCounts(ctx, 3)
	wantCounts = map[consent.EventType]uint64{consent.EventUnsubscribed: 1, consent.EventPreferencesUpdated: 1}
	if err != nil || last != 5 || !maps.Equal(counts, wantCounts) {
		t.Errorf("LedgerCounts(3): got %v, %d, %v, want %v, 5, nil", counts, last, err, wantCounts)
	}
	if counts, last, err := f.s.LedgerCounts(ctx, 5); err != nil || last != 5 || len(counts) != 0 {
		t.Errorf("LedgerCounts(5): got %v, %d, %v, want nothing, 5, nil", counts, last, err)
	}
	if evs, err := f.s.Events(ctx, "no-such-subscriber"); err != nil || len(evs) != 0 {
		t.Errorf("Events(unknown): got %d events, %v, want none, nil", len(evs), err)
	}
}

// testStats: the overview counts subscribers, subscriptions, lifecycle
// stages and requests from the store's state; purchases drive the
// lifecycle.
func testStats(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	ann := f.subscribe("ann@example.com", "news", "offers")
	f.signup("bob@example.com")
	cy := f.subscribe("cy@example.com")
	f.unsubscribe(cy.ID, "")

	dormantAfter := 365 * consent.Day
	bought := f.now().Add(-400 * consent.Day)
	purchase := func(at time.Time) consent.Activity { return consent.Activity{Kind: consent.ActivityPurchase, At: at} }
	sub, err := f.s.RecordActivity(ctx, admin, ann.ID, purchase(bought), true)
	if err != nil || !sub.LastPurchase.Equal(bought) {
		t.Fatalf("RecordActivity(purchase): got %+v, %v, want last purchase %v", sub, err, bought)
	}
	if sub, err := f.s.RecordActivity(ctx, admin, ann.ID, purchase(bought.Add(-consent.Day)), true); err != nil || !sub.LastPurchase.Equal(bought) {
		t.Errorf("RecordActivity of an older purchase: got %+v, %v, want last purchase still %v", sub, err, bought)
	}
	later := consent.Activity{Kind: consent.ActivityEnquiry, At: bought.Add(consent.Day), Reason: "asked about sizes"}
	if sub, err := f.s.RecordActivity(ctx, admin, ann.ID, later, false); err != nil || !sub.LastPurchase.Equal(bought) {
		t.Errorf("RecordActivity of a later activity that makes no customer: got %+v, %v, want last purchase still %v", sub, err, bought)
	}
	_, err = f.s.RecordActivity(ctx, admin, ann.ID, purchase(f.now().Add(time.Hour)), true)
	f.wantCode("RecordActivity in the future", err, consent.EInvalid)
	_, err = f.s.RecordActivity(ctx, admin, ann.ID, consent.Activity{Kind: "gift", At: bought}, true)
	f.wantCode("RecordActivity of an unknown kind", err, consent.EInvalid)
	_, err = f.s.RecordActivity(ctx, admin, "no-such-subscriber", purchase(bought), true)
	f.wantCode("RecordActivity(unknown)", err, consent.ENotFound)
	evs, err := f.s.Events(ctx, ann.ID)
	if err != nil {
		t.Fatal(err)
	}
	var trail []string
	for _, ev := range evs {
		if ev.Type == consent.EventActivity {
			note := ""
			if ev.Personal != nil {
				note = ev.Personal.Note
			}
			trail = append(trail, fmt.Sprintf("%s %s %s %s", ev.Activity, ev.OccurredAt.Format(time.DateOnly), ev.Source, note))
		}
	}
	wantTrail := []string{
		"purchase " + bought.Format(time.DateOnly) + " " + admin.Source() + " ",
		"purchase " + bought.Add(-consent.Day).Format(time.DateOnly) + " " + admin.Source() + " ",
		"enquiry " + bought.Add(consent.Day).Format(time.DateOnly) + " " + admin.Source() + " asked about sizes",
	}
	if !slices.Equal(trail, wantTrail) {
		t.Errorf("activity trail: got %q, want %q", trail, wantTrail)
	}

	st, err := f.s.Stats(ctx, dormantAfter, consent.StatsDays)
	if err != nil {
		t.Fatalf("Stats: got err %v, want nil", err)
	}
	wantStatus := map[consent.Status]int{consent.StatusConfirmed: 2, consent.StatusPending: 1, consent.StatusUnsubscribed: 1}
	wantLifecycle := map[consent.Lifecycle]int{consent.LifecycleDormant: 1, consent.LifecycleProspect: 2}
	if st.Subscribers != 3 || !maps.Equal(st.ByStatus, wantStatus) || !maps.Equal(st.ByLifecycle, wantLifecycle) {
		t.Errorf("Stats: got %d subscribers, %v, %v, want 3, %v, %v", st.Subscribers, st.ByStatus, st.ByLifecycle, wantStatus, wantLifecycle)
	}
	if news := st.ByTopic["news"]; news[consent.StatusConfirmed] != 1 || news[consent.StatusPending] != 1 || news[consent.StatusUnsubscribed] != 1 {
		t.Errorf("Stats.ByTopic[news]: got %v, want 1 confirmed, 1 pending, 1 unsubscribed", news)
	}
	if st.Requests != 3 || st.ConfirmedRequests != 2 || st.ConfirmationRate != 2.0/3 {
		t.Errorf("Stats requests: got %d, %d confirmed, rate %v, want 3, 2, 2/3", st.Requests, st.ConfirmedRequests, st.ConfirmationRate)
	}
	if len(st.Daily) != 30 {
		t.Fatalf("Stats.Daily: got %d days, want 30", len(st.Daily))
	}
	today := st.Daily[29]
	if today.Date != f.now().Format(time.DateOnly) || today.Signups != 3 || today.Confirmations != 2 {
		t.Errorf("Stats.Daily today: got %+v, want %s with 3 signups, 2 confirmations", today, f.now().Format(time.DateOnly))
	}

	f.clock.Advance(time.Hour)
	if _, err := f.s.RecordActivity(ctx, admin, ann.ID, purchase(f.now()), true); err != nil {
		t.Fatalf("RecordActivity: %v", err)
	}
	if st, err := f.s.Stats(ctx, dormantAfter, consent.StatsDays); err != nil || st.ByLifecycle[consent.LifecycleCustomer] != 1 || st.ByLifecycle[consent.LifecycleDormant] != 0 {
		t.Errorf("Stats after a new purchase: got %v, %v, want ann a customer again", st.ByLifecycle, err)
	}
}

// testLedgerTree: the stored Merkle tree covers every event, its root is
// the one a walk of the events computes, every event has an inclusion
// proof and every earlier tree a consistency proof, and erasure leaves
// all of them valid. A walk given saved heads passes the heads the ledger
// extends and names the ones it does not.
func testLedgerTree(t *testing.T, f *fixture) {
	ctx := t.Context()
	if tree, err := f.s.LedgerTree(ctx); err != nil || tree.N != 0 {
		t.Errorf("LedgerTree of an empty store: got %+v, %v, want the empty tree", tree, err)
	}
	f.bootstrap()
	ann := f.subscribe("ann@example.com")
	early, err := f.s.LedgerTree(ctx)
	if err != nil || early.N != 2 {
		t.Fatalf("LedgerTree after a signup and its confirmation: got %+v, %v, want 2 events", early, err)
	}
	for _, addr := range []string{"bob@example.com", "cy@example.com", "di@example.com"} {
		f.signup(addr)
	}
	if err := f.s.Erase(ctx, ann.ID, "preferences"); err != nil {
		t.Fatalf("Erase: %v", err)
	}
	tree, err := f.s.LedgerTree(ctx)
	if err != nil || tree.N != 6 {
		t.Fatalf("LedgerTree: got %+v, %v, want 6 events", tree, err)
	}
	rep, err := f.s.VerifyLedger(ctx, early, tree)
	if err != nil || !rep.OK || rep.Root != tree.Hash || len(rep.Heads) != 2 || !rep.Heads[0].OK || !rep.Heads[1].OK {
		t.Errorf("VerifyLedger(early, now): got %+v, %v, want OK with root %v and both heads passing", rep, err, tree.Hash)
	}

	hashes := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return f.s.LedgerHashes(ctx, idx) })
	var events []consent.EventRecord
	for _, addr := range []string{"bob@example.com", "cy@example.com", "di@example.com"} {
		events = append(events, f.events(f.sub(addr).ID)...)
	}
	events = append(events, f.events(ann.ID)...) // erased: no personal records, proofs as before
	if len(events) != 6 {
		t.Fatalf("events: got %d, want 6", len(events))
	}
	for _, ev := range events {
		n := consent.Record(ev.Seq)
		p, err := tlog.ProveRecord(tree.N, n, hashes)
		if err != nil {
			t.Fatalf("ProveRecord(%d, %d): %v", tree.N, n, err)
		}
		if err := tlog.CheckRecord(p, tree.N, tree.Hash, n, tlog.RecordHash(ev.LeafData())); err != nil {
			t.Errorf("inclusion proof of event %d (%s): %v", ev.Seq, ev.Type, err)
		}
	}
	p, err := tlog.ProveTree(tree.N, early.N, hashes)
	if err != nil {
		t.Fatalf("ProveTree(%d, %d): %v", tree.N, early.N, err)
	}
	if err := tlog.CheckTree(p, tree.N, tree.Hash, early.N, early.Hash); err != nil {
		t.Errorf("consistency proof from %d to %d: %v", early.N, tree.N, err)
	}

	forged := tlog.Tree{N: early.N, Hash: tlog.RecordHash([]byte("another history"))}
	future := tlog.Tree{N: tree.N + 1, Hash: tree.Hash}
	rep, err = f.s.VerifyLedger(ctx, early, forged, future)
	if err != nil || rep.OK || rep.Broken != nil || len(rep.Heads) != 3 {
		t.Fatalf("VerifyLedger(early, forged, future): got %+v, %v, want not OK, no broken link, 3 verdicts", rep, err)
	}
	var failed []string
	for _, h := range rep.Heads {
		if !h.OK {
			failed = append(failed, fmt.Sprintf("%d %s", h.Size, h.Reason))
		}
	}
	if len(failed) != 2 || !strings.Contains(failed[0], "changed") || !strings.Contains(failed[1], "removed") {
		t.Errorf("VerifyLedger verdicts: got %q, want the forged head changed and the future one removed", failed)
	}
}
