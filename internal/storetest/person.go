package storetest

import (
	"slices"
	"testing"
	"time"

	"optin/internal/consent"
)

// testSuppressionAtSendTime: mail already queued is checked again at send
// time: a withdrawal, an operator's block or an erasure after the mail
// was queued holds it back. Unsubscribe is idempotent.
func testSuppressionAtSendTime(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	addrs := []string{"unsub@example.com", "blocked@example.com", "topic@example.com", "erased@example.com", "kept@example.com"}
	f.importConsented(addrs...)
	f.runCampaign(f.createCampaign(consent.CampaignInput{}), len(addrs))
	jobs := f.dueOf(consent.JobReawaken, f.now())
	slices.SortFunc(jobs, func(a, b consent.Job) int { return slices.Index(addrs, a.To) - slices.Index(addrs, b.To) })
	if got := emails(jobs); len(got) != len(addrs) {
		t.Fatalf("reawaken jobs: got %q, want one to each of %q", got, addrs)
	}
	if oks := f.deliverable(jobs...); !slices.Equal(oks, []bool{true, true, true, true, true}) {
		t.Fatalf("DeliverableBatch before any change: got %v, want all true", oks)
	}

	unsub := f.sub("unsub@example.com")
	if changed := f.unsubscribe(unsub.ID, "news"); !slices.Equal(changed, []string{"news"}) {
		t.Errorf("Unsubscribe: got changed %q, want [news]", changed)
	}
	events := len(f.events(unsub.ID))
	if changed := f.unsubscribe(unsub.ID, "news"); len(changed) != 0 {
		t.Errorf("second Unsubscribe: got changed %q, want none", changed)
	}
	if changed := f.unsubscribe(unsub.ID, ""); len(changed) != 0 {
		t.Errorf("Unsubscribe from every topic after news: got changed %q, want none (news was the only one)", changed)
	}
	if got := len(f.events(unsub.ID)); got != events {
		t.Errorf("Events after repeated Unsubscribe: got %d, want %d", got, events)
	}
	if s := f.sub("unsub@example.com").Subscriptions["news"]; s == nil || s.Status != consent.StatusUnsubscribed {
		t.Errorf("Subscriptions[news] after Unsubscribe: got %+v, want unsubscribed", s)
	}
	if !f.suppressed("unsub@example.com", "news") {
		t.Errorf("Suppressed(unsub, news): got false, want true")
	}
	f.suppress("blocked@example.com", "")
	f.suppress("topic@example.com", "news")
	erased := f.sub("erased@example.com").ID
	if err := f.s.Erase(ctx, erased, "preferences"); err != nil {
		t.Fatalf("Erase: got err %v, want nil", err)
	}
	if oks := f.deliverable(jobs...); !slices.Equal(oks, []bool{false, false, false, false, true}) {
		t.Errorf("DeliverableBatch for %q: got %v, want only the last deliverable", addrs, oks)
	}
	// A one-click from an old mail must work after the erasure too.
	for _, id := range []string{erased, "no-such-subscriber"} {
		if changed, err := f.s.Unsubscribe(ctx, id, "", consent.ChannelOneClick, consent.ConfirmInput{}); err != nil || len(changed) != 0 {
			t.Errorf("Unsubscribe(%s) of a subscriber who is gone: got %q, %v, want nothing changed, nil", id, changed, err)
		}
	}

	// An operator's block stops transactional mail too.
	f.signup("pending@example.com")
	confirm := f.dueOf(consent.JobConfirm, f.now())
	if len(confirm) != 1 || !f.deliverable(confirm...)[0] {
		t.Fatalf("confirmation mail before the block: got %d jobs, want 1 deliverable", len(confirm))
	}
	f.suppress("pending@example.com", "")
	if f.deliverable(confirm...)[0] {
		t.Errorf("DeliverableBatch of a confirmation mail after an operator's block: got true, want false")
	}
}

// testEraseLeavesOnlyTheHash: after an erasure the person is gone (no
// subscriber, request, export or mail), the address stays suppressed by
// its hash, and the ledger keeps the events without their personal
// records and still verifies.
func testEraseLeavesOnlyTheHash(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	f.signup("Ann@example.com")
	reqID := f.sub("ann@example.com").PendingRequest
	confirm := f.onlyJob()
	if _, err := f.s.Confirm(ctx, reqID, consent.ConfirmInput{IP: "192.0.2.9"}); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	ann := f.sub("ann@example.com")
	if err := f.s.ParkJob(ctx, confirm, "550 mailbox unavailable"); err != nil {
		t.Fatalf("ParkJob: %v", err)
	}
	if q, err := f.s.RequestPreferencesMail(ctx, f.addr("ann@example.com")); err != nil || !q {
		t.Fatalf("RequestPreferencesMail: got %v, %v, want true, nil", q, err)
	}
	f.wantOutbox(1, 1)
	exp, err := f.s.Export(ctx, ann.ID)
	if err != nil {
		t.Fatalf("Export before erasure: got err %v, want nil", err)
	}
	if exp.Schema != consent.ExportSchema || exp.Subscriber == nil || exp.Subscriber.ID != ann.ID || len(exp.Events) != 2 ||
		exp.Events[0].Personal == nil || !exp.Generated.Equal(f.now()) {
		t.Errorf("Export: got schema %q, subscriber %+v, %d events, want %s, %s, 2 events with personal records",
			exp.Schema, exp.Subscriber, len(exp.Events), consent.ExportSchema, ann.ID)
	}

	f.clock.Advance(time.Hour)
	if err := f.s.Erase(ctx, ann.ID, "preferences"); err != nil {
		t.Fatalf("Erase: got err %v, want nil", err)
	}
	_, err = f.s.Subscriber(ctx, ann.ID)
	f.wantCode("Subscriber after Erase", err, consent.ENotFound)
	_, err = f.s.SubscriberByAddress(ctx, f.addr("ann@example.com"))
	f.wantCode("SubscriberByAddress after Erase", err, consent.ENotFound)
	_, err = f.s.Export(ctx, ann.ID)
	f.wantCode("Export after Erase", err, consent.ENotFound)
	_, err = f.s.Request(ctx, reqID)
	f.wantCode("Request after Erase", err, consent.ENotFound)
	err = f.s.Erase(ctx, ann.ID, "preferences")
	f.wantCode("second Erase", err, consent.ENotFound)
	for _, topic := range []string{"", "news", "offers"} {
		if !f.suppressed("ANN@example.com", topic) {
			t.Errorf("Suppressed(ann, %q) after Erase: got false, want true", topic)
		}
	}
	f.wantOutbox(0, 0) // queued and parked mail hold the address
	if ids := f.allSubscribers(); len(ids) != 0 {
		t.Errorf("FindSubscribers after Erase: got %q, want none", ids)
	}

	evs := f.events(ann.ID)
	var types []consent.EventType
	for _, ev := range evs {
		types = append(types, ev.Type)
		if ev.Personal != nil && (ev.Personal.Email != "" || ev.Personal.IP != "" || ev.Personal.UserAgent != "") {
			t.Errorf("event %d (%s) after Erase: got Personal %+v, want no address, IP or user agent", ev.Seq, ev.Type, ev.Personal)
		}
		if ev.PersonalDigest == "" {
			t.Errorf("event %d (%s) after Erase: got no PersonalDigest, want it kept", ev.Seq, ev.Type)
		}
	}
	if want := []consent.EventType{consent.EventRequested, consent.EventConfirmed, consent.EventErased}; !slices.Equal(types, want) {
		t.Fatalf("Events after Erase: got %q, want %q", types, want)
	}
	if evs[0].Personal != nil || evs[1].Personal != nil {
		t.Errorf("Events before the erasure: got Personal %+v, %+v, want nil", evs[0].Personal, evs[1].Personal)
	}
	if last := evs[2]; last.Source != "preferences" || !last.Time.Equal(f.now()) {
		t.Errorf("erased event: got source %q at %v, want preferences at %v", last.Source, last.Time, f.now())
	}
	f.wantLedgerOK(3)

	// The person may come back: a new signup is a new subscriber.
	if res := f.signup("ann@example.com"); !res.Queued {
		t.Errorf("Signup after Erase: Queued got false, want true")
	}
	if again := f.sub("ann@example.com"); again.ID == ann.ID {
		t.Errorf("Signup after Erase: got the erased id %s again, want a new one", ann.ID)
	}

	// An operator's erasure is the same erasure, audited.
	bob := f.subscribe("bob@example.com")
	if err := f.s.EraseSubscriber(ctx, admin, bob.ID); err != nil {
		t.Fatalf("EraseSubscriber: got err %v, want nil", err)
	}
	_, err = f.s.Subscriber(ctx, bob.ID)
	f.wantCode("Subscriber after EraseSubscriber", err, consent.ENotFound)
	if evs := f.events(bob.ID); len(evs) != 3 || evs[2].Type != consent.EventErased || evs[2].Source != admin.Source() {
		t.Errorf("Events after EraseSubscriber: got %d, want 3 ending with erased from %s", len(evs), admin.Source())
	}
	entries, _, err := f.s.Audit(ctx, "", 1)
	if err != nil || len(entries) != 1 || entries[0].Action != "subscriber.erase" || entries[0].Target != bob.ID ||
		entries[0].Key != admin.Name || entries[0].KeyID != admin.KeyID {
		t.Errorf("newest audit entry: got %+v, %v, want subscriber.erase of %s by %+v", entries, err, bob.ID, admin)
	}
	err = f.s.EraseSubscriber(ctx, admin, "no-such-subscriber")
	f.wantCode("EraseSubscriber(unknown)", err, consent.ENotFound)
}

// testPreferencesMail: a preference link is mailed to a known address at
// most once per consent.ManageMailGap, to an unknown one never; the
// preference center confirms and withdraws topics.
func testPreferencesMail(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	ann := f.subscribe("ann@example.com", "news", "offers")
	f.wantOutbox(1, 0) // the confirmation mail
	if q, err := f.s.RequestPreferencesMail(ctx, f.addr("nobody@example.com")); err != nil || q {
		t.Errorf("RequestPreferencesMail(unknown): got %v, %v, want false, nil", q, err)
	}
	if q, err := f.s.RequestPreferencesMail(ctx, f.addr("ANN@example.com")); err != nil || !q {
		t.Errorf("RequestPreferencesMail: got %v, %v, want true, nil", q, err)
	}
	jobs := f.dueOf(consent.JobPreferences, f.now())
	if len(jobs) != 1 || jobs[0].To != "ann@example.com" || jobs[0].Subscriber != ann.ID || jobs[0].MessageID == "" {
		t.Fatalf("preferences jobs: got %+v, want one to ann@example.com", jobs)
	}
	if !f.deliverable(jobs...)[0] {
		t.Errorf("DeliverableBatch of the preferences mail: got false, want true")
	}
	f.clock.Advance(consent.ManageMailGap - time.Millisecond)
	if q, err := f.s.RequestPreferencesMail(ctx, f.addr("ann@example.com")); err != nil || q {
		t.Errorf("RequestPreferencesMail within the gap: got %v, %v, want false, nil", q, err)
	}
	f.clock.Advance(time.Millisecond)
	if q, err := f.s.RequestPreferencesMail(ctx, f.addr("ann@example.com")); err != nil || !q {
		t.Errorf("RequestPreferencesMail after the gap: got %v, %v, want true, nil", q, err)
	}
	f.wantOutbox(3, 0)

	wording := f.wording()
	if err := f.s.UpdatePreferences(ctx, ann.ID, consent.PreferenceChoice{Topics: []string{"news"}}, wording, consent.ConfirmInput{}); err != nil {
		t.Fatalf("UpdatePreferences: got err %v, want nil", err)
	}
	sub := f.sub("ann@example.com")
	if s := sub.Subscriptions["offers"]; s == nil || s.Status != consent.StatusUnsubscribed {
		t.Errorf("Subscriptions[offers] switched off: got %+v, want unsubscribed", s)
	}
	if !f.suppressed("ann@example.com", "offers") || f.suppressed("ann@example.com", "news") {
		t.Errorf("after switching offers off: want offers suppressed and news not")
	}
	if err := f.s.UpdatePreferences(ctx, ann.ID, consent.PreferenceChoice{Topics: []string{"news", "offers"}}, wording, consent.ConfirmInput{}); err != nil {
		t.Fatalf("UpdatePreferences: got err %v, want nil", err)
	}
	if s := f.sub("ann@example.com").Subscriptions["offers"]; s == nil || s.Status != consent.StatusConfirmed {
		t.Errorf("Subscriptions[offers] switched on again: got %+v, want confirmed", s)
	}
	if f.suppressed("ann@example.com", "offers") {
		t.Errorf("Suppressed(offers) after switching it on again: got true, want false")
	}
	evs := f.events(ann.ID)
	last := evs[len(evs)-1]
	if last.Type != consent.EventPreferencesUpdated || !slices.Equal(last.Topics, []string{"offers"}) ||
		last.WordingText == nil || last.WordingText.Hash() != wording.Hash() {
		t.Errorf("last event: got %+v, want preferences_updated for offers citing the wording shown", last.Event)
	}
	err := f.s.UpdatePreferences(ctx, "no-such-subscriber", consent.PreferenceChoice{}, wording, consent.ConfirmInput{})
	f.wantCode("UpdatePreferences(unknown)", err, consent.ENotFound)

	// A topic the person did not have is added, confirmed; a topic that
	// does not exist is refused and changes nothing.
	bob := f.subscribe("bob@example.com", "news")
	err = f.s.UpdatePreferences(ctx, bob.ID, consent.PreferenceChoice{Topics: []string{"news", "nope"}}, wording, consent.ConfirmInput{})
	f.wantCode("UpdatePreferences with an unknown topic", err, consent.EInvalid)
	if err := f.s.UpdatePreferences(ctx, bob.ID, consent.PreferenceChoice{Topics: []string{"news", "offers"}}, wording, consent.ConfirmInput{}); err != nil {
		t.Fatalf("UpdatePreferences adding offers: got err %v, want nil", err)
	}
	if s := f.sub("bob@example.com").Subscriptions["offers"]; s == nil || s.Status != consent.StatusConfirmed || s.Basis != consent.BasisConsent {
		t.Errorf("Subscriptions[offers] added on the preference page: got %+v, want confirmed on consent", s)
	}
	f.wantLedgerOK(uint64(len(evs) + len(f.events(bob.ID))))
}

// testSuppressions: an operator's suppressions are listed, paged and
// removed by hash; the person's own opt-outs cannot be removed that way,
// only by a new double opt-in, which lifts them for the topics confirmed.
func testSuppressions(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	s, created, err := f.s.AddSuppression(ctx, admin, f.addr("Block@example.com"), "", "complaint")
	if err != nil || !created || s.Scope != consent.ScopeAll || s.Reason != consent.ReasonAdmin || s.Hash == "" || !s.Created.Equal(f.now()) {
		t.Fatalf("AddSuppression: got %+v, %v, %v, want a new operator entry for every topic", s, created, err)
	}
	again, created, err := f.s.AddSuppression(ctx, admin, f.addr("block@EXAMPLE.com"), consent.ScopeAll, "again")
	if err != nil || created || !sameSuppression(again, s) {
		t.Errorf("AddSuppression again: got %+v, %v, %v, want the first entry, false, nil", again, created, err)
	}
	_, _, err = f.s.AddSuppression(ctx, admin, f.addr("block@example.com"), "no-such-topic", "")
	f.wantCode("AddSuppression(unknown topic)", err, consent.EInvalid)
	if !f.suppressed("block@example.com", "news") || !f.suppressed("block@example.com", "") {
		t.Errorf("Suppressed after AddSuppression: got false, want true")
	}
	if res := f.signup("block@example.com"); res.Queued {
		t.Errorf("Signup of a blocked address: Queued got true, want false")
	}
	if _, err := f.s.SubscriberByAddress(ctx, f.addr("block@example.com")); consent.ErrorCode(err) != consent.ENotFound {
		t.Errorf("Signup of a blocked address stored a subscriber: got err %v, want %s", err, consent.ENotFound)
	}
	f.subscribe("later@example.com")
	f.suppress("later@example.com", "")
	if q, err := f.s.RequestPreferencesMail(ctx, f.addr("later@example.com")); err != nil || q {
		t.Errorf("RequestPreferencesMail to a blocked address: got %v, %v, want false, nil", q, err)
	}

	f.suppress("c@example.com", "news")
	f.suppress("d@example.com", "offers")
	var listed []consent.Suppression
	cursor := ""
	for pages := 0; ; pages++ {
		page, err := f.s.Suppressions(ctx, nil, cursor, 3)
		if err != nil || pages > 3 {
			t.Fatalf("Suppressions page %d: got %+v, %v", pages, page, err)
		}
		listed = append(listed, page.Items...)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	keys := map[string]bool{}
	for _, s := range listed {
		keys[s.Hash+"/"+s.Scope] = true
	}
	if len(listed) != 4 || len(keys) != 4 {
		t.Errorf("Suppressions in pages of 3: got %d entries, %d distinct, want 4", len(listed), len(keys))
	}
	one, err := f.s.Suppressions(ctx, new(f.addr("BLOCK@example.com")), "", 10)
	if err != nil || len(one.Items) != 1 || !sameSuppression(one.Items[0], s) || one.NextCursor != "" {
		t.Errorf("Suppressions of one address: got %+v, %v, want only %+v", one, err, s)
	}

	if n, err := f.s.DeleteSuppression(ctx, admin, s.Hash, ""); err != nil || n != 1 {
		t.Errorf("DeleteSuppression: got %d, %v, want 1, nil", n, err)
	}
	if f.suppressed("block@example.com", "news") {
		t.Errorf("Suppressed after DeleteSuppression: got true, want false")
	}
	_, err = f.s.DeleteSuppression(ctx, admin, s.Hash, "")
	f.wantCode("DeleteSuppression again", err, consent.ENotFound)

	// The person's own opt-out.
	ann := f.subscribe("ann@example.com")
	f.unsubscribe(ann.ID, "")
	own, err := f.s.Suppressions(ctx, new(f.addr("ann@example.com")), "", 10)
	if err != nil || len(own.Items) != 1 || own.Items[0].Scope != consent.ScopeAll || own.Items[0].Reason != consent.ReasonUnsubscribed {
		t.Fatalf("Suppressions of ann after withdrawing: got %+v, %v, want one unsubscribed entry for every topic", own, err)
	}
	_, err = f.s.DeleteSuppression(ctx, admin, own.Items[0].Hash, "")
	f.wantCode("DeleteSuppression of the person's own opt-out", err, consent.EConflict)
	for _, topic := range []string{"", "news", "offers"} {
		if !f.suppressed("ann@example.com", topic) {
			t.Errorf("Suppressed(ann, %q) after withdrawing from everything: got false, want true", topic)
		}
	}
	// A new double opt-in for news lifts the opt-out for news only.
	f.clock.Advance(consent.DefaultPolicy().MailGap)
	if res := f.signup("ann@example.com"); !res.Queued {
		t.Fatalf("Signup after withdrawing: Queued got false, want true")
	}
	if !f.suppressed("ann@example.com", "news") {
		t.Errorf("Suppressed(ann, news) before the confirmation: got false, want true")
	}
	if _, err := f.s.Confirm(ctx, f.sub("ann@example.com").PendingRequest, consent.ConfirmInput{}); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	for topic, want := range map[string]bool{"": false, "news": false, "offers": true} {
		if got := f.suppressed("ann@example.com", topic); got != want {
			t.Errorf("Suppressed(ann, %q) after opting in to news again: got %v, want %v", topic, got, want)
		}
	}
	// An operator's block is not lifted by the person's opt-in.
	f.suppress("bob@example.com", "offers")
	f.signup("bob@example.com", "news", "offers")
	if _, err := f.s.Confirm(ctx, f.sub("bob@example.com").PendingRequest, consent.ConfirmInput{}); err != nil {
		t.Fatalf("Confirm(bob): %v", err)
	}
	if !f.suppressed("bob@example.com", "offers") {
		t.Errorf("Suppressed(bob, offers) after the person's opt-in: got false, want the operator's block kept")
	}
	if !slices.Contains(f.auditActions(), "suppression.delete") {
		t.Errorf("audit log: got %q, want a suppression.delete entry", f.auditActions())
	}
}

func sameSuppression(a, b consent.Suppression) bool {
	return a.Hash == b.Hash && a.Scope == b.Scope && a.Reason == b.Reason && a.Source == b.Source && a.Created.Equal(b.Created)
}

// testRectify: a new name applies at once with a rectified event; a new
// address waits for its double opt-in, then replaces the old one (the
// subscriber is found under the new address only), is recorded, and the
// old address gets a notice. An address another subscriber holds is
// EConflict; an operator-blocked one EForbidden.
func testRectify(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	ann := f.subscribe("ann@example.com")
	f.subscribe("bob@example.com")
	for len(f.due(f.now())) > 0 {
		if err := f.s.FinishJobs(ctx, f.due(f.now())); err != nil {
			t.Fatal(err)
		}
	}

	name := "Ann Smith"
	res, err := f.s.Rectify(ctx, &admin, ann.ID, consent.Rectification{Name: &name}, admin.Source())
	if err != nil || !res.Renamed || res.AddressPending {
		t.Fatalf("Rectify(name): got %+v, %v, want renamed only", res, err)
	}
	if got := f.sub("ann@example.com").Name; got != name {
		t.Errorf("name after Rectify: got %q, want %q", got, name)
	}
	if res, err := f.s.Rectify(ctx, nil, ann.ID, consent.Rectification{Name: &name}, consent.ChannelPreferences); err != nil || res.Renamed {
		t.Errorf("Rectify to the same name: got %+v, %v, want nothing changed", res, err)
	}

	taken := f.addr("bob@example.com")
	_, err = f.s.Rectify(ctx, &admin, ann.ID, consent.Rectification{Email: &taken}, admin.Source())
	f.wantCode("Rectify to another subscriber's address", err, consent.EConflict)
	f.suppress("blocked@example.com", "")
	blocked := f.addr("blocked@example.com")
	_, err = f.s.Rectify(ctx, &admin, ann.ID, consent.Rectification{Email: &blocked}, admin.Source())
	f.wantCode("Rectify to a blocked address", err, consent.EForbidden)
	_, err = f.s.Rectify(ctx, &admin, "no-such-subscriber", consent.Rectification{Name: &name}, admin.Source())
	f.wantCode("Rectify(unknown)", err, consent.ENotFound)

	newAddr := f.addr("ann.smith@example.org")
	res, err = f.s.Rectify(ctx, nil, ann.ID, consent.Rectification{Email: &newAddr}, consent.ChannelPreferences)
	if err != nil || !res.AddressPending {
		t.Fatalf("Rectify(email): got %+v, %v, want the address pending", res, err)
	}
	if got := f.sub("ann@example.com"); got == nil || got.ID != ann.ID {
		t.Fatalf("before the new address confirms, the old one must still find ann: got %+v", got)
	}
	mails := f.dueOf(consent.JobAddressChange, f.now())
	if len(mails) != 1 || mails[0].To != newAddr.Addr || mails[0].Request == "" {
		t.Fatalf("address-change mail: got %+v, want one to %s", mails, newAddr.Addr)
	}
	cr, err := f.s.Confirm(ctx, mails[0].Request, consent.ConfirmInput{IP: "192.0.2.7"})
	if err != nil || cr.NewEmail != newAddr.Addr || cr.Already {
		t.Fatalf("Confirm(address change): got %+v, %v, want the new address", cr, err)
	}
	if cr, err := f.s.Confirm(ctx, mails[0].Request, consent.ConfirmInput{}); err != nil || !cr.Already {
		t.Errorf("second Confirm(address change): got %+v, %v, want Already", cr, err)
	}
	if got, err := f.s.SubscriberByAddress(ctx, newAddr); err != nil || got.ID != ann.ID || got.Email != newAddr.Addr {
		t.Errorf("SubscriberByAddress(new): got %+v, %v, want ann under the new address", got, err)
	}
	if got, err := f.s.SubscriberByAddress(ctx, f.addr("ann@example.com")); consent.ErrorCode(err) != consent.ENotFound {
		t.Errorf("SubscriberByAddress(old): got %+v, %v, want ENotFound", got, err)
	}
	notices := f.dueOf(consent.JobAddressChanged, f.now())
	if len(notices) != 1 || notices[0].To != "ann@example.com" || notices[0].NewEmail != newAddr.Addr {
		t.Errorf("notice to the old address: got %+v", notices)
	}
	var fields []string
	for _, ev := range f.events(ann.ID) {
		if ev.Type == consent.EventRectified {
			fields = append(fields, ev.Field+" by "+ev.Source)
		}
	}
	if want := []string{"name by " + admin.Source(), "email by preferences"}; !slices.Equal(fields, want) {
		t.Errorf("rectified events: got %q, want %q", fields, want)
	}
	f.wantLedgerOK(uint64(len(f.events(ann.ID)) + len(f.events(f.sub("bob@example.com").ID))))
}

// testWithdrawFor: an operator unsubscribes a person on their word from
// one topic, then from all: the address is suppressed for that scope at
// once, the ledger records channel operator with the reason, and the
// audit log names the key, each in the same write. A bad reason, an
// unknown topic or an unknown person changes nothing.
func testWithdrawFor(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	ann := f.subscribe("ann@example.com", "news", "offers")
	before := len(f.events(ann.ID))
	audits := len(f.auditActions())

	for _, tt := range []struct {
		what, id, topic, reason, code string
	}{
		{"no reason", ann.ID, "offers", " ", consent.EInvalid},
		{"a reason on two lines", ann.ID, "offers", "asked\nby phone", consent.EInvalid},
		{"an unknown topic", ann.ID, "nope", "asked by phone", consent.EInvalid},
		{"an unknown person", "no-such-subscriber", "", "asked by phone", consent.ENotFound},
	} {
		_, err := f.s.WithdrawFor(ctx, admin, tt.id, tt.topic, tt.reason)
		f.wantCode("WithdrawFor with "+tt.what, err, tt.code)
	}
	if len(f.events(ann.ID)) != before || len(f.auditActions()) != audits || f.suppressed("ann@example.com", "offers") {
		t.Fatalf("refused WithdrawFor calls changed something")
	}

	changed, err := f.s.WithdrawFor(ctx, admin, ann.ID, "offers", "  Asked by phone on 2 Jan  ")
	if err != nil || !slices.Equal(changed, []string{"offers"}) {
		t.Fatalf("WithdrawFor(offers): got %q, %v, want [offers]", changed, err)
	}
	if !f.suppressed("ann@example.com", "offers") || f.suppressed("ann@example.com", "news") {
		t.Errorf("after WithdrawFor(offers): want offers suppressed and news not")
	}
	evs := f.events(ann.ID)
	last := evs[len(evs)-1]
	if last.Type != consent.EventUnsubscribed || last.Source != consent.ChannelOperator || !slices.Equal(last.Topics, []string{"offers"}) ||
		last.Personal == nil || last.Personal.Note != "Asked by phone on 2 Jan" {
		t.Errorf("event of WithdrawFor(offers): got %+v %+v, want unsubscribed from offers by operator with the reason", last.Event, last.Personal)
	}
	entries, _, err := f.s.Audit(ctx, "", 1)
	if err != nil || len(entries) != 1 || entries[0].Action != "subscriber.unsubscribe" || entries[0].Key != admin.Name ||
		entries[0].Target != ann.ID || entries[0].Count != 1 {
		t.Errorf("audit of WithdrawFor: got %+v, %v", entries, err)
	}

	if changed, err := f.s.WithdrawFor(ctx, admin, ann.ID, "", "Letter of 3 Jan"); err != nil || !slices.Equal(changed, []string{"news"}) {
		t.Errorf("WithdrawFor(all): got %q, %v, want [news]", changed, err)
	}
	if !f.suppressed("ann@example.com", "") {
		t.Errorf("after WithdrawFor(all): want the address suppressed for every topic")
	}
	if changed, err := f.s.WithdrawFor(ctx, admin, ann.ID, "", "Letter of 3 Jan"); err != nil || len(changed) != 0 {
		t.Errorf("WithdrawFor(all) again: got %q, %v, want nothing changed", changed, err)
	}
	f.wantLedgerOK(uint64(len(f.events(ann.ID))))
}

// testForgetOptedOut: people who opted out of everything (unsubscribed
// or lapsed) are erased once retention has passed since the last opt-out,
// keeping the suppression hash and a verifying ledger; anyone still
// subscribed, or within retention, stays.
func testForgetOptedOut(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	gone := f.subscribe("gone@example.com", "news", "offers")
	partly := f.subscribe("partly@example.com", "news", "offers")
	f.subscribe("kept@example.com", "news")
	f.unsubscribe(gone.ID, "")
	f.unsubscribe(partly.ID, "news")
	retention := 30 * consent.Day

	f.clock.Advance(retention)
	if n, err := f.s.ForgetOptedOut(ctx, retention); err != nil || n != 0 {
		t.Fatalf("ForgetOptedOut at the edge of retention: got %d, %v, want 0, nil", n, err)
	}
	late := f.subscribe("late@example.com", "news")
	f.unsubscribe(late.ID, "")
	f.clock.Advance(time.Millisecond)
	if n, err := f.s.ForgetOptedOut(ctx, retention); err != nil || n != 1 {
		t.Fatalf("ForgetOptedOut after retention: got %d, %v, want 1, nil", n, err)
	}
	if _, err := f.s.Subscriber(ctx, gone.ID); consent.ErrorCode(err) != consent.ENotFound {
		t.Errorf("Subscriber(gone) after ForgetOptedOut: got %v, want ENotFound", err)
	}
	if !f.suppressed("gone@example.com", "news") {
		t.Errorf("the forgotten address is no longer suppressed")
	}
	for _, addr := range []string{"partly@example.com", "kept@example.com", "late@example.com"} {
		if _, err := f.s.SubscriberByAddress(ctx, f.addr(addr)); err != nil {
			t.Errorf("SubscriberByAddress(%s): got %v, want it kept", addr, err)
		}
	}
	var last consent.EventRecord
	for _, ev := range f.events(gone.ID) {
		if ev.Personal != nil && ev.Type != consent.EventErased {
			t.Errorf("event %d of the forgotten person keeps its personal record", ev.Seq)
		}
		last = ev
	}
	if last.Type != consent.EventErased || last.Source != consent.SourceRetention {
		t.Errorf("last event of the forgotten person: got %s from %s, want erased from %s", last.Type, last.Source, consent.SourceRetention)
	}
	if rep, err := f.s.VerifyLedger(ctx); err != nil || !rep.OK {
		t.Errorf("VerifyLedger after ForgetOptedOut: got %+v, %v", rep, err)
	}
}
