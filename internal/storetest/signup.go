package storetest

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"optin/internal/consent"
)

// testClock: the store's time is its clock's, in UTC, to the millisecond.
func testClock(t *testing.T, f *fixture) {
	for range 2 {
		want := f.clock.Now().Truncate(time.Millisecond)
		if got := f.s.Now(); !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("Now: got %v, want %v in UTC", got, want)
		}
		f.clock.Advance(90*time.Second + 1500*time.Microsecond)
	}
}

// testSignupAppliesPlan: one signup stores the subscriber with its
// pending subscription, the request, the requested event with the wording
// it cites, and one confirmation mail; a repeat adds nothing.
func testSignupAppliesPlan(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	wording := f.wording()
	now := f.now()
	if res := f.signup("Ann@Example.com"); !res.Queued {
		t.Errorf("Signup.Queued: got false, want true")
	}

	sub := f.sub("ann@example.COM") // found by the case-folded address
	if sub.ID == "" || sub.Email != "Ann@example.com" || sub.Name != "Ann" || sub.Locale != "en" || !sub.Created.Equal(now) {
		t.Errorf("Subscriber: got %+v, want Ann@example.com, Ann, en, created %v", sub, now)
	}
	if s := sub.Subscriptions["news"]; s == nil || s.Status != consent.StatusPending || s.Basis != consent.BasisConsent || !s.Since.Equal(now) {
		t.Errorf("Subscriptions[news]: got %+v, want pending on consent since %v", s, now)
	}
	if len(sub.Subscriptions) != 1 {
		t.Errorf("Subscriptions: got %d topics, want only news", len(sub.Subscriptions))
	}
	req, err := f.s.Request(ctx, sub.PendingRequest)
	if err != nil {
		t.Fatalf("Request(%q): got err %v, want nil", sub.PendingRequest, err)
	}
	if req.Subscriber != sub.ID || req.Form != "newsletter" || !slices.Equal(req.Topics, []string{"news"}) ||
		!req.Created.Equal(now) || !req.Expires.Equal(now.Add(consent.DefaultPolicy().ConfirmTTL)) {
		t.Errorf("Request: got %+v, want subscriber %s, form newsletter, topics [news], created %v, expiring after the confirm TTL",
			req, sub.ID, now)
	}
	if !strings.Contains(req.MessageID, "@") || strings.ContainsAny(req.MessageID, "<>") {
		t.Errorf("Request.MessageID: got %q, want id@domain without brackets", req.MessageID)
	}
	// The signup's address, which the scanner check of a click compares.
	if req.IP != "192.0.2.7" {
		t.Errorf("Request.IP: got %q, want the signup's 192.0.2.7", req.IP)
	}

	evs := f.events(sub.ID)
	if len(evs) != 1 {
		t.Fatalf("Events: got %d, want 1", len(evs))
	}
	ev := evs[0]
	if ev.Type != consent.EventRequested || ev.Source != "form:newsletter" || ev.Request != req.ID ||
		ev.MessageID != req.MessageID || !slices.Equal(ev.Topics, []string{"news"}) || ev.Basis != consent.BasisConsent ||
		ev.Page != "https://shop.example/" || !ev.Time.Equal(now) {
		t.Errorf("Event: got %+v, want requested from form:newsletter for request %s at %v", ev.Event, req.ID, now)
	}
	if p := ev.Personal; p == nil || p.Email != "Ann@example.com" || p.IP != "192.0.2.7" || p.UserAgent != "Mozilla/5.0 test" {
		t.Errorf("Event.Personal: got %+v, want Ann@example.com, 192.0.2.7, Mozilla/5.0 test", p)
	}
	if ev.Wording != wording.Hash() {
		t.Errorf("Event.Wording: got %q, want %q", ev.Wording, wording.Hash())
	}
	if w := ev.WordingText; w == nil || w.Hash() != wording.Hash() || w.Text != testWording {
		t.Errorf("Event.WordingText: got %+v, want %+v", w, wording)
	}

	j := f.onlyJob()
	if j.Kind != consent.JobConfirm || j.To != "Ann@example.com" || j.Subscriber != sub.ID || j.Request != req.ID ||
		j.MessageID != req.MessageID || !slices.Equal(j.Topics, []string{"news"}) || j.Locale != "en" ||
		!j.TokenExpires.Equal(req.Expires) || j.Attempts != 0 {
		t.Errorf("Job: got %+v, want the confirmation mail of request %s", j, req.ID)
	}
	if next, err := f.s.NextDue(ctx); err != nil || !next.Equal(now) {
		t.Errorf("NextDue: got %v, %v, want %v (due at once)", next, err, now)
	}
	f.wantOutbox(1, 0)
	if oks := f.deliverable(j); !oks[0] {
		t.Errorf("DeliverableBatch: got false, want true for an open request")
	}

	f.clock.Advance(time.Minute)
	for _, again := range []string{"Ann@Example.com", "ANN@example.com"} {
		if res := f.signup(again); res.Queued {
			t.Errorf("Signup(%q) again: Queued got true, want false", again)
		}
	}
	if ids := f.allSubscribers(); !slices.Equal(ids, []string{sub.ID}) {
		t.Errorf("subscribers after repeat signups: got %q, want only %s", ids, sub.ID)
	}
	if got := len(f.events(sub.ID)); got != 1 {
		t.Errorf("Events after repeat signups: got %d, want 1", got)
	}
	f.wantOutbox(1, 0)

	f.signup("bob@example.com")
	if ids := f.allSubscribers(); len(ids) != 2 || !slices.Contains(ids, sub.ID) {
		t.Errorf("subscribers after a second address: got %q, want 2 with %s", ids, sub.ID)
	}
	f.wantOutbox(2, 0)
	f.wantLedgerOK(2)
}

// testConcurrentSignup: many signups of one address at once make one
// subscriber, one request and one mail.
func testConcurrentSignup(t *testing.T, f *fixture) {
	f.bootstrap()
	wording := f.wording()
	in := f.signupInput("ann@example.com")
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		queued int
	)
	for range 100 {
		wg.Go(func() {
			res, err := f.s.Signup(t.Context(), in, wording)
			if err != nil {
				t.Errorf("Signup: got err %v, want nil", err)
				return
			}
			if res.Queued {
				mu.Lock()
				queued++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if queued != 1 {
		t.Errorf("signups that queued a mail: got %d, want 1", queued)
	}
	if got := len(f.allSubscribers()); got != 1 {
		t.Errorf("subscribers: got %d, want 1", got)
	}
	if got := len(f.due(f.now())); got != 1 {
		t.Errorf("DueJobs: got %d, want 1", got)
	}
	f.wantOutbox(1, 0)
	if got := len(f.events(f.sub("ann@example.com").ID)); got != 1 {
		t.Errorf("Events: got %d, want 1", got)
	}
	f.wantLedgerOK(1)
}

// testOpenRequestKeepsItsTopics: while a request is open, a signup for
// more topics stores and mails nothing; the open request's link confirms
// only the topics its mail listed.
func testOpenRequestKeepsItsTopics(t *testing.T, f *fixture) {
	f.bootstrap()
	f.signup("ann@example.com")
	sub := f.sub("ann@example.com")
	f.clock.Advance(time.Hour)
	if res := f.signup("ann@example.com", "news", "offers"); res.Queued {
		t.Errorf("Signup for more topics while a request is open: Queued got true, want false")
	}
	if got := f.sub("ann@example.com"); got.PendingRequest != sub.PendingRequest || got.Subscriptions["offers"] != nil {
		t.Errorf("after a signup for more topics: got request %s, offers %+v, want request %s, no offers",
			got.PendingRequest, got.Subscriptions["offers"], sub.PendingRequest)
	}
	f.wantOutbox(1, 0)
	if _, err := f.s.Confirm(t.Context(), sub.PendingRequest, consent.ConfirmInput{}); err != nil {
		t.Fatalf("Confirm: got err %v, want nil", err)
	}
	sub = f.sub("ann@example.com")
	if s := sub.Subscriptions["offers"]; s != nil {
		t.Errorf("Subscriptions[offers]: got %+v, want none: the mail never asked about it", s)
	}
	if s := sub.Subscriptions["news"]; s == nil || s.Status != consent.StatusConfirmed {
		t.Errorf("Subscriptions[news]: got %+v, want confirmed", s)
	}
	if got := len(f.events(sub.ID)); got != 2 {
		t.Errorf("Events: got %d, want 2 (requested, confirmed)", got)
	}
}

// testConfirmOnce: a confirmation confirms the request's topics and
// appends one confirmed event; a second one is Already and appends
// nothing; unknown and expired requests are refused.
func testConfirmOnce(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	f.signup("ann@example.com")
	sub := f.sub("ann@example.com")
	reqID := sub.PendingRequest
	job := f.onlyJob()

	f.clock.Advance(time.Hour)
	now := f.now()
	in := consent.ConfirmInput{IP: "198.51.100.9", UserAgent: "Mail client"}
	res, err := f.s.Confirm(ctx, reqID, in)
	if err != nil {
		t.Fatalf("Confirm: got err %v, want nil", err)
	}
	if res.Already || !slices.Equal(res.Topics, []string{"news"}) {
		t.Errorf("Confirm: got %+v, want Topics [news], Already false", res)
	}
	sub = f.sub("ann@example.com")
	if s := sub.Subscriptions["news"]; s == nil || s.Status != consent.StatusConfirmed || s.Basis != consent.BasisConsent || !s.Since.Equal(now) {
		t.Errorf("Subscriptions[news]: got %+v, want confirmed on consent since %v", s, now)
	}
	if sub.PendingRequest != "" {
		t.Errorf("PendingRequest: got %q, want none", sub.PendingRequest)
	}
	if req, err := f.s.Request(ctx, reqID); err != nil || !req.Confirmed.Equal(now) {
		t.Errorf("Request after Confirm: got %+v, %v, want confirmed at %v", req, err, now)
	}
	evs := f.events(sub.ID)
	if len(evs) != 2 {
		t.Fatalf("Events: got %d, want 2", len(evs))
	}
	if ev := evs[1]; ev.Type != consent.EventConfirmed || ev.Request != reqID || ev.MessageID != job.MessageID ||
		ev.Source != "form:newsletter" || !slices.Equal(ev.Topics, []string{"news"}) || !ev.Time.Equal(now) {
		t.Errorf("Events[1]: got %+v, want confirmed for request %s at %v", ev.Event, reqID, now)
	}
	if p := evs[1].Personal; p == nil || p.IP != in.IP || p.UserAgent != in.UserAgent {
		t.Errorf("Events[1].Personal: got %+v, want the click's IP and user agent", p)
	}
	if oks := f.deliverable(job); oks[0] {
		t.Errorf("DeliverableBatch after Confirm: got true, want false (the request is no longer open)")
	}

	f.clock.Advance(time.Minute)
	res, err = f.s.Confirm(ctx, reqID, in)
	if err != nil || !res.Already {
		t.Errorf("second Confirm: got %+v, %v, want Already, nil", res, err)
	}
	if got := len(f.events(sub.ID)); got != 2 {
		t.Errorf("Events after a second Confirm: got %d, want 2", got)
	}
	if s := f.sub("ann@example.com").Subscriptions["news"]; s == nil || !s.Since.Equal(now) {
		t.Errorf("Subscriptions[news] after a second Confirm: got %+v, want unchanged since %v", s, now)
	}

	_, err = f.s.Confirm(ctx, "no-such-request", in)
	f.wantCode("Confirm(unknown)", err, consent.ENotFound)
	_, err = f.s.Request(ctx, "no-such-request")
	f.wantCode("Request(unknown)", err, consent.ENotFound)

	f.signup("bob@example.com")
	bob := f.sub("bob@example.com")
	req, err := f.s.Request(ctx, bob.PendingRequest)
	if err != nil {
		t.Fatalf("Request(bob): %v", err)
	}
	f.clock.Advance(req.Expires.Sub(f.now()))
	_, err = f.s.Confirm(ctx, req.ID, in)
	f.wantCode("Confirm(expired)", err, consent.EExpired)
	if s := f.sub("bob@example.com").Subscriptions["news"]; s == nil || s.Status != consent.StatusPending {
		t.Errorf("bob's Subscriptions[news] after an expired Confirm: got %+v, want pending", s)
	}
	if got := len(f.events(bob.ID)); got != 1 {
		t.Errorf("bob's Events after an expired Confirm: got %d, want 1", got)
	}
	f.wantLedgerOK(3)
}

// testNotMe: "this was not me" cancels the request, drops its pending
// topics, stops its mail and blocks new confirmation mail for the
// policy's NotMeBlock; repeats change nothing.
func testNotMe(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	f.signup("ann@example.com")
	sub := f.sub("ann@example.com")
	reqID := sub.PendingRequest
	job := f.onlyJob()

	f.clock.Advance(time.Hour)
	at := f.now()
	for range 2 {
		if err := f.s.NotMe(ctx, reqID, consent.ConfirmInput{IP: "203.0.113.5"}); err != nil {
			t.Fatalf("NotMe: got err %v, want nil", err)
		}
	}
	evs := f.events(sub.ID)
	if len(evs) != 2 || evs[1].Type != consent.EventCanceled || evs[1].Request != reqID {
		t.Fatalf("Events after NotMe twice: got %d events, want requested and one canceled", len(evs))
	}
	sub = f.sub("ann@example.com")
	if want := at.Add(consent.DefaultPolicy().NotMeBlock); !sub.BlockedUntil.Equal(want) {
		t.Errorf("BlockedUntil: got %v, want %v", sub.BlockedUntil, want)
	}
	if s, ok := sub.Subscriptions["news"]; ok || sub.PendingRequest != "" {
		t.Errorf("after NotMe: got Subscriptions[news] %+v, PendingRequest %q, want neither", s, sub.PendingRequest)
	}
	if req, err := f.s.Request(ctx, reqID); err != nil || !req.Canceled.Equal(at) {
		t.Errorf("Request after NotMe: got %+v, %v, want canceled at %v", req, err, at)
	}
	if oks := f.deliverable(job); oks[0] {
		t.Errorf("DeliverableBatch after NotMe: got true, want false")
	}
	_, err := f.s.Confirm(ctx, reqID, consent.ConfirmInput{})
	f.wantCode("Confirm after NotMe", err, consent.EExpired)
	if s := f.sub("ann@example.com").Subscriptions["news"]; s != nil || len(f.events(sub.ID)) != 2 {
		t.Errorf("after Confirm of a cancelled request: got Subscriptions[news] %+v and %d events, want none and 2", s, len(f.events(sub.ID)))
	}

	f.clock.Advance(consent.DefaultPolicy().ConfirmTTL)
	if res := f.signup("ann@example.com"); res.Queued {
		t.Errorf("Signup while blocked: Queued got true, want false")
	}
	f.wantOutbox(1, 0)
	if got := len(f.events(sub.ID)); got != 2 {
		t.Errorf("Events after a blocked signup: got %d, want 2", got)
	}
	f.clock.Advance(consent.DefaultPolicy().NotMeBlock)
	if res := f.signup("ann@example.com"); !res.Queued {
		t.Errorf("Signup after the block: Queued got false, want true")
	}
	f.wantOutbox(2, 0)
	f.wantLedgerOK(3)
}

// testSweepRequests: requests whose link expired more than retention ago
// are deleted; an address that never confirmed is forgotten with them,
// while a confirmed subscriber stays.
func testSweepRequests(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	f.signup("never@example.com")
	never := f.sub("never@example.com")
	yes := f.subscribe("yes@example.com")

	retention := 7 * consent.Day
	f.clock.Advance(consent.DefaultPolicy().ConfirmTTL + retention - time.Minute)
	if n, err := f.s.SweepRequests(ctx, retention); err != nil || n != 0 {
		t.Fatalf("SweepRequests before the retention ended: got %d, %v, want 0, nil", n, err)
	}
	f.clock.Advance(2 * time.Minute)
	if n, err := f.s.SweepRequests(ctx, retention); err != nil || n != 2 {
		t.Fatalf("SweepRequests: got %d, %v, want 2, nil", n, err)
	}
	_, err := f.s.Request(ctx, never.PendingRequest)
	f.wantCode("Request of the swept never-confirmed address", err, consent.ENotFound)
	_, err = f.s.SubscriberByAddress(ctx, f.addr("never@example.com"))
	f.wantCode("SubscriberByAddress(never-confirmed) after the sweep", err, consent.ENotFound)
	for _, ev := range f.events(never.ID) {
		if ev.Personal != nil {
			t.Errorf("never-confirmed event %d: got Personal %+v, want nil", ev.Seq, ev.Personal)
		}
	}
	if s := f.sub("yes@example.com").Subscriptions["news"]; s == nil || s.Status != consent.StatusConfirmed {
		t.Errorf("confirmed subscriber after the sweep: got %+v, want news confirmed", s)
	}
	if got := len(f.events(yes.ID)); got != 2 {
		t.Errorf("confirmed subscriber's events after the sweep: got %d, want 2", got)
	}
	if n, err := f.s.SweepRequests(ctx, retention); err != nil || n != 0 {
		t.Errorf("second SweepRequests: got %d, %v, want 0, nil", n, err)
	}
	f.wantOutbox(1, 0) // yes's mail; never's went with the address
	f.wantLedgerOK(3)
}

// testConfirmMailSent: finishing a confirmation mail's job records on its
// request when it left, once; a confirmation's scanner check lands in the
// confirmed event as given and the ledger still verifies.
func testConfirmMailSent(t *testing.T, f *fixture) {
	ctx := t.Context()
	f.bootstrap()
	f.signup("ann@example.com")
	reqID := f.sub("ann@example.com").PendingRequest
	job := f.onlyJob()
	if req, err := f.s.Request(ctx, reqID); err != nil || !req.Sent.IsZero() {
		t.Fatalf("Request before sending: got %+v, %v, want Sent zero", req, err)
	}

	f.clock.Advance(3 * time.Second)
	sent := f.now()
	if err := f.s.FinishJobs(ctx, []consent.Job{job}); err != nil {
		t.Fatalf("FinishJobs: got err %v, want nil", err)
	}
	f.clock.Advance(time.Minute)
	if err := f.s.FinishJobs(ctx, []consent.Job{job}); err != nil { // a repeat (at least once) changes nothing
		t.Fatalf("FinishJobs again: got err %v, want nil", err)
	}
	if req, err := f.s.Request(ctx, reqID); err != nil || !req.Sent.Equal(sent) {
		t.Errorf("Request.Sent: got %+v, %v, want %v", req, err, sent)
	}

	check := consent.Check{Class: consent.ClassLikelyPerson, Reasons: []string{consent.ReasonSoonAfterMail},
		AfterMail: 60, ScannerNetwork: "Proofpoint", Interaction: true}
	if _, err := f.s.Confirm(ctx, reqID, consent.ConfirmInput{IP: "192.0.2.7", UserAgent: "Mail client", Check: &check}); err != nil {
		t.Fatalf("Confirm: got err %v, want nil", err)
	}
	evs := f.events(f.sub("ann@example.com").ID)
	if got := evs[len(evs)-1]; got.Type != consent.EventConfirmed || got.Check == nil ||
		got.Check.Class != check.Class || !slices.Equal(got.Check.Reasons, check.Reasons) || got.Check.AfterMail != 60 ||
		got.Check.ScannerNetwork != "Proofpoint" || !got.Check.Interaction {
		t.Errorf("confirmed event: got %+v check %+v, want check %+v", got.Event, got.Check, check)
	}
	f.wantLedgerOK(2)
}
