package bolt

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

func openSuppressionDB(t *testing.T) (*DB, consent.Form) {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{HMACKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en"}
	if _, err := db.Bootstrap(context.Background(), consent.Topic{ID: "news", Name: "News"}, form, "h"); err != nil {
		t.Fatal(err)
	}
	return db, form
}

// TestOperatorSuppression: an address an operator blocked for every topic
// gets nothing queued, and a job queued before the block is not sent.
func TestOperatorSuppression(t *testing.T) {
	ctx := context.Background()
	db, form := openSuppressionDB(t)
	queued, _ := consent.ParseAddress("queued@example.com")
	blocked, _ := consent.ParseAddress("blocked@example.com")
	in := func(a consent.Address) consent.SignupInput {
		return consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}, Locale: "en"}
	}
	if _, err := db.Signup(ctx, in(queued), consent.Wording{Form: "newsletter"}); err != nil {
		t.Fatal(err)
	}
	jobs, err := db.DueJobs(ctx, time.Now().Add(time.Hour), 10, nil)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("due jobs: got %d (%v), want 1", len(jobs), err)
	}
	err = db.update(context.Background(), func(tx *bbolt.Tx) error {
		for _, a := range []consent.Address{queued, blocked} {
			s := consent.Suppression{Hash: db.AddressHash(a), Scope: consent.ScopeAll, Reason: consent.ReasonAdmin}
			if err := suppress(tx, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := db.Deliverable(ctx, jobs[0]); err != nil || ok {
		t.Errorf("Deliverable after the block: got %v (%v), want false", ok, err)
	}
	res, err := db.Signup(ctx, in(blocked), consent.Wording{Form: "newsletter"})
	if err != nil || res.Queued {
		t.Errorf("Signup of a blocked address: queued %v (%v), want nothing", res.Queued, err)
	}
	if _, err := db.SubscriberByAddress(ctx, blocked); consent.ErrorCode(err) != consent.ENotFound {
		t.Errorf("blocked signup stored a subscriber: %v", err)
	}
	if q, err := db.RequestPreferencesMail(ctx, queued); err != nil || q {
		t.Errorf("preference mail to a blocked address: queued %v (%v), want false", q, err)
	}
	// The person's own opt-out does not stop a fresh signup.
	if _, err := db.Unsubscribe(ctx, "nobody", "", consent.ChannelPage, consent.ConfirmInput{}); err != nil {
		t.Errorf("unsubscribe of an unknown subscriber: %v, want nil (idempotent)", err)
	}
}

// TestOptInNarrowsWithdrawAll: after withdrawing from everything, a new
// double opt-in for one topic lifts the block for that topic only.
func TestOptInNarrowsWithdrawAll(t *testing.T) {
	ctx := context.Background()
	db, form := openSuppressionDB(t)
	err := db.update(context.Background(), func(tx *bbolt.Tx) error {
		return put(tx, bucketTopics, []byte("offers"), consent.Topic{ID: "offers", Name: "Offers"})
	})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := consent.ParseAddress("narrow@example.com")
	if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}}, consent.Wording{}); err != nil {
		t.Fatal(err)
	}
	sub, _ := db.SubscriberByAddress(ctx, a)
	if _, err := db.Unsubscribe(ctx, sub.ID, "", consent.ChannelPage, consent.ConfirmInput{}); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"news", "offers"} {
		if ok, _ := db.Suppressed(ctx, a, topic); !ok {
			t.Fatalf("%s not suppressed after withdrawing from everything", topic)
		}
	}
	if _, err := db.Confirm(ctx, sub.PendingRequest, consent.ConfirmInput{}); err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]bool{"news": false, "offers": true, "": false} {
		if got, _ := db.Suppressed(ctx, a, topic); got != want {
			t.Errorf("suppressed for %q after opting in to news: got %v, want %v", topic, got, want)
		}
	}
}
