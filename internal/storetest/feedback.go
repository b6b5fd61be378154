package storetest

import (
	"slices"
	"testing"
	"time"

	"optin/internal/consent"
)

// testFeedback checks RecordFeedback: a hard bounce and a complaint
// suppress the right address with their reason and a suppressed event
// citing the Message-ID; a complaint unsubscribes; soft bounces suppress
// only at the limit within the window; a repeated report and an invalid
// one change nothing.
func testFeedback(t *testing.T, f *fixture) {
	f.bootstrap()
	ctx := t.Context()
	soft := consent.SoftBouncePolicy{Limit: 3, Window: 7 * 24 * time.Hour}
	bounced := f.subscribe("bounced@example.com", "news", "offers")
	complained := f.subscribe("complained@example.com", "news")
	bystander := f.subscribe("bystander@example.com", "news")
	record := func(kind consent.FeedbackKind, email, status string) consent.FeedbackResult {
		t.Helper()
		res, err := f.s.RecordFeedback(ctx, nil, consent.Feedback{Kind: kind, Address: f.addr(email),
			MessageID: "m1@example.org", Status: status, Channel: consent.ChannelEmail}, soft)
		if err != nil {
			t.Fatalf("RecordFeedback(%s, %s): got err %v, want nil", kind, email, err)
		}
		return res
	}
	lastEvent := func(id string) consent.EventRecord {
		t.Helper()
		evs := f.events(id)
		return evs[len(evs)-1]
	}

	if res := record(consent.FeedbackBounce, "bounced@example.com", "5.1.1"); !res.Suppressed {
		t.Errorf("hard bounce: got %+v, want Suppressed", res)
	}
	if !f.suppressed("bounced@example.com", "") {
		t.Error("hard bounce: the address is not suppressed for every topic")
	}
	ev := lastEvent(bounced.ID)
	if ev.Type != consent.EventSuppressed || ev.Source != consent.ReasonBounce || ev.MessageID != "m1@example.org" {
		t.Errorf("hard bounce: last event %+v, want suppressed, source bounce, message m1@example.org", ev.Event)
	}
	if s := f.sub("bounced@example.com"); s.Subscriptions["news"].Status != consent.StatusConfirmed {
		t.Errorf("hard bounce: news is %s; a bounce is no withdrawal and leaves the subscription as it was", s.Subscriptions["news"].Status)
	}
	page, err := f.s.Suppressions(ctx, ptr(f.addr("bounced@example.com")), "", 10)
	if err != nil || len(page.Items) != 1 || page.Items[0].Reason != consent.ReasonBounce || page.Items[0].Source != consent.ChannelEmail {
		t.Errorf("hard bounce: suppressions %+v, %v; want one, reason bounce, source email", page.Items, err)
	}
	n := len(f.events(bounced.ID))
	if res := record(consent.FeedbackBounce, "bounced@example.com", "5.1.1"); res.Suppressed || len(f.events(bounced.ID)) != n {
		t.Errorf("repeated bounce: got %+v and %d events, want nothing new (%d events)", res, len(f.events(bounced.ID)), n)
	}

	record(consent.FeedbackComplaint, "complained@example.com", "abuse")
	if s := f.sub("complained@example.com"); s.Subscriptions["news"].Status != consent.StatusUnsubscribed {
		t.Errorf("complaint: news is %s, want unsubscribed", s.Subscriptions["news"].Status)
	}
	if ev := lastEvent(complained.ID); ev.Type != consent.EventSuppressed || ev.Source != consent.ReasonComplaint ||
		len(ev.Topics) != 1 || ev.Topics[0] != "news" {
		t.Errorf("complaint: last event %+v, want suppressed, source complaint, topics [news]", ev.Event)
	}

	for i := 1; i < soft.Limit; i++ {
		if res := record(consent.FeedbackSoftBounce, "bystander@example.com", "4.2.2"); res.Suppressed || res.SoftBounces != i {
			t.Fatalf("soft bounce %d: got %+v, want counted, not suppressed", i, res)
		}
	}
	f.clock.Advance(soft.Window) // the first ones leave the window
	if res := record(consent.FeedbackSoftBounce, "bystander@example.com", "4.2.2"); res.Suppressed || res.SoftBounces != 1 {
		t.Errorf("soft bounce after the window: got %+v, want a count of 1", res)
	}
	if f.suppressed("bystander@example.com", "") || len(f.events(bystander.ID)) != 2 {
		t.Error("soft bounces under the limit suppressed the address or wrote an event")
	}
	for range soft.Limit - 1 {
		record(consent.FeedbackSoftBounce, "bystander@example.com", "4.2.2")
	}
	if !f.suppressed("bystander@example.com", "") || lastEvent(bystander.ID).Source != consent.ReasonBounce {
		t.Error("the soft bounce that reached the limit did not suppress the address")
	}

	// An address no subscriber holds is suppressed by its hash alone.
	if res := record(consent.FeedbackBounce, "stranger@example.com", "5.1.1"); !res.Suppressed || !f.suppressed("stranger@example.com", "") {
		t.Errorf("bounce of a non-subscriber: got %+v, want suppressed", res)
	}
	_, err = f.s.RecordFeedback(ctx, nil, consent.Feedback{Kind: "bogus", Address: f.addr("other@example.com"),
		Channel: consent.ChannelEmail}, soft)
	if consent.ErrorCode(err) != consent.EInvalid || f.suppressed("other@example.com", "") {
		t.Errorf("invalid kind: got err %v, want EInvalid and nothing suppressed", err)
	}
	// A relay's report through the admin API is audited under its key.
	if _, err := f.s.RecordFeedback(ctx, &admin, consent.Feedback{Kind: consent.FeedbackComplaint,
		Address: f.addr("relay@example.com"), Status: "abuse", Channel: consent.ChannelRelay}, soft); err != nil {
		t.Fatalf("RecordFeedback with an actor: got err %v, want nil", err)
	}
	entries, _, err := f.s.Audit(ctx, "", 100)
	if err != nil || !slices.ContainsFunc(entries, func(e consent.AuditEntry) bool { return e.Action == "feedback.complaint" }) {
		t.Errorf("audit: got %+v, %v; want a feedback.complaint entry", entries, err)
	}
	if rep, err := f.s.VerifyLedger(ctx); err != nil || !rep.OK {
		t.Errorf("VerifyLedger: got %+v, %v, want an intact chain", rep, err)
	}
}

func ptr[T any](v T) *T { return &v }
