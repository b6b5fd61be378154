package bolt_test

import (
	"go.etcd.io/bbolt"

	"fmt"
	"strings"
	"testing"
	"time"

	"optin/internal/consent"
	"optin/internal/transfer"
)

// importConsented imports n confirmed news subscribers with consent
// evidence and returns their addresses.
func importConsented(t *testing.T, db *testDB, n int) []string {
	t.Helper()
	var b strings.Builder
	b.WriteString("email,topics,basis,consented_at,source\n")
	var addrs []string
	for i := range n {
		a := fmt.Sprintf("c%03d@example.com", i)
		addrs = append(addrs, a)
		fmt.Fprintf(&b, "%s,news,consent,2025-01-01,shop\n", a)
	}
	ir, err := transfer.NewReader(strings.NewReader(b.String()), transfer.FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := db.Import(t.Context(), consent.Actor{Name: "test"}, ir, consent.ImportOptions{}); err != nil || rep.Imported != n {
		t.Fatalf("Import: got %+v %v", rep, err)
	}
	return addrs
}

func mustCampaign(t *testing.T, db *testDB, rate int) *consent.Campaign {
	t.Helper()
	c, err := db.CreateCampaign(t.Context(), consent.Actor{Name: "test"}, consent.CampaignInput{Name: "c", Topic: "news", Rate: rate,
		Templates: map[string]consent.CampaignTemplate{"en": {Subject: "s", Body: "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.StartCampaign(t.Context(), consent.Actor{Name: "test"}, c.ID); err != nil {
		t.Fatal(err)
	}
	return c
}

// sendAll plays the outbox worker: every due job that is deliverable is
// "sent" (counted per address), the others dropped; all leave the outbox.
func sendAll(t *testing.T, db *testDB, sent map[string]int) {
	t.Helper()
	jobs := mustDueJobs(t, db, db.clock.Now().Add(time.Hour))
	for _, j := range jobs {
		ok, err := db.Deliverable(t.Context(), j)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			sent[j.To]++
		}
	}
	if err := db.FinishJobs(t.Context(), jobs); err != nil {
		t.Fatal(err)
	}
}

// TestCampaignWalkResumes runs a campaign step by step across a reopen of
// the database: the walk resumes from its cursor, every subscriber is
// queued exactly once, and the rate caps each step.
func TestCampaignWalkResumes(t *testing.T) {
	db := mustOpen(t)
	mustBootstrap(t, db)
	addrs := importConsented(t, db, 23)
	c := mustCampaign(t, db, 5)
	p := consent.CampaignPolicy{DormantAfter: 365 * consent.Day}
	sent := map[string]int{}
	for step := 0; step < 20; step++ {
		res, err := db.CampaignStep(t.Context(), p, time.Second, true)
		if err != nil {
			t.Fatal(err)
		}
		if res.Queued > 5 {
			t.Errorf("step %d queued %d, more than the rate", step, res.Queued)
		}
		// While mail waits in the outbox the walk queues nothing more.
		if again, _ := db.CampaignStep(t.Context(), p, time.Second, true); again.Queued != 0 {
			t.Errorf("step %d queued %d while earlier mail waited", step, again.Queued)
		}
		sendAll(t, db, sent)
		if step == 2 {
			db.reopen(t)
		}
		got, err := db.Campaign(t.Context(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == consent.CampaignDone {
			if got.Counts.Targeted != len(addrs) || got.Counts.Sent != len(addrs) {
				t.Errorf("counts: %+v", got.Counts)
			}
			break
		}
	}
	if got, _ := db.Campaign(t.Context(), c.ID); got.State != consent.CampaignDone {
		t.Fatalf("campaign not done: %+v", got)
	}
	for _, a := range addrs {
		if sent[a] != 1 {
			t.Errorf("mails to %s: got %d, want 1", a, sent[a])
		}
	}
}

// TestCampaignSendTimeCheck: mail queued for someone who then unsubscribes,
// is suppressed for all, or is erased is not deliverable (GDPR Art.
// 21(3)), and the
// campaign records why.
func TestCampaignSendTimeCheck(t *testing.T) {
	db := mustOpen(t)
	mustBootstrap(t, db)
	addrs := importConsented(t, db, 4)
	c := mustCampaign(t, db, 10)
	p := consent.CampaignPolicy{DormantAfter: 365 * consent.Day}
	if res, err := db.CampaignStep(t.Context(), p, time.Second, true); err != nil || res.Queued != 4 {
		t.Fatalf("step: got %+v %v, want 4 queued", res, err)
	}
	ctx := t.Context()
	un := mustSubscriber(t, db, addrs[0])
	if _, err := db.Unsubscribe(ctx, un.ID, "news", consent.ChannelOneClick, consent.ConfirmInput{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AddSuppression(ctx, consent.Actor{Name: "test"}, mustAddress(t, addrs[1]), "", "bounce"); err != nil {
		t.Fatal(err)
	}
	erased := mustSubscriber(t, db, addrs[2]).ID
	if err := db.Erase(ctx, erased, "test"); err != nil {
		t.Fatal(err)
	}
	rawUpdate(t, db, func(tx *bbolt.Tx) error { // GDPR Art. 17: no bucket keeps a record of the erased person
		if tx.Bucket([]byte("campaign_recipients")).Get(append(append([]byte(c.ID), 0), erased...)) != nil {
			t.Error("the erased subscriber's campaign recipient record is still stored")
		}
		return nil
	})
	sent := map[string]int{}
	sendAll(t, db, sent)
	if len(sent) != 1 || sent[addrs[3]] != 1 {
		t.Errorf("sent: got %v, want only %s", sent, addrs[3])
	}
	if _, err := db.CampaignStep(ctx, p, time.Second, true); err != nil {
		t.Fatal(err)
	}
	got, _ := db.Campaign(ctx, c.ID)
	// The erased subscriber's job went with it: an erasure is a withdrawal.
	if got.Counts.Sent != 1 || got.Counts.Unsubscribed != 2 || got.Counts.Dropped != 1 || got.State != consent.CampaignDone {
		t.Errorf("counts: %+v state %s", got.Counts, got.State)
	}
	// Deadline: the one who got the mail lapses, with a ledger event.
	db.clock.Advance(31 * consent.Day)
	res, err := db.CampaignStep(ctx, p, time.Second, true)
	if err != nil || res.Lapsed != 1 {
		t.Fatalf("deadline step: got %+v %v, want 1 lapsed", res, err)
	}
	sub := mustSubscriber(t, db, addrs[3])
	if s := sub.Subscriptions["news"]; s.Status != consent.StatusLapsed {
		t.Errorf("status: %s", s.Status)
	}
	evs := mustEvents(t, db, sub.ID)
	if last := evs[len(evs)-1]; last.Type != consent.EventLapsed || last.Source != "campaign:"+c.ID {
		t.Errorf("last event: %+v", last.Event)
	}
	if res, _ := db.CampaignStep(ctx, p, time.Second, true); res.Lapsed != 0 {
		t.Errorf("a second deadline step lapsed %d more", res.Lapsed)
	}
}

// TestCampaignNoQueueWithoutPostal: with mayQueue false nothing is queued.
func TestCampaignNoQueueWithoutPostal(t *testing.T) {
	db := mustOpen(t)
	mustBootstrap(t, db)
	importConsented(t, db, 2)
	mustCampaign(t, db, 10)
	if res, err := db.CampaignStep(t.Context(), consent.CampaignPolicy{}, time.Second, false); err != nil || res.Queued != 0 {
		t.Errorf("step: got %+v %v, want nothing queued", res, err)
	}
	wantOutbox(t, db, 0, 0)
}
