package bolt

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// TestCountersBuiltOnOpen: a database written before the counters and
// indexes existed (none of their buckets, no version mark) gets them
// built from its records when it is next opened to write, once.
func TestCountersBuiltOnOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	opts := Options{HMACKey: bytes.Repeat([]byte{7}, 32)}
	db, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en"}
	if _, err := db.Bootstrap(ctx, consent.Topic{ID: "news", Name: "News"}, form, "h"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		a, _ := consent.ParseAddress(fmt.Sprintf("p%d@example.com", i))
		if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}}, consent.Wording{Form: "newsletter"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Make it a database from before the counters.
	raw, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = raw.Update(func(tx *bbolt.Tx) error {
		for _, name := range derivedBuckets {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Delete(keyDerived)
	})
	if cerr := raw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	// A read-only open builds nothing: reads that need them say so.
	ro, err := Open(path, Options{HMACKey: opts.HMACKey, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ro.Stats(ctx, consent.Day, consent.StatsDays)
	_, _, ferr := ro.FindSubscribers(ctx, consent.SubscriberFilter{Limit: 10})
	if consent.ErrorCode(err) != consent.EConflict || consent.ErrorCode(ferr) != consent.EConflict {
		t.Errorf("Stats and FindSubscribers on a read-only open before the counters: got %v, %v, want EConflict", err, ferr)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}

	if db, err = Open(path, opts); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if diff, err := db.CheckCounters(ctx); err != nil || len(diff) != 0 {
		t.Errorf("CheckCounters after the first open: got %v, %v, want no difference", diff, err)
	}
	st, err := db.Stats(ctx, consent.Day, consent.StatsDays)
	if err != nil || st.Subscribers != 3 || st.ByTopic["news"][consent.StatusPending] != 3 || st.Daily[len(st.Daily)-1].Signups != 3 {
		t.Errorf("Stats after the first open: got %+v, %v, want 3 pending subscribers and 3 signups today", st, err)
	}
	subs, _, err := db.FindSubscribers(ctx, consent.SubscriberFilter{Topic: "news", Status: consent.StatusPending, Limit: 10})
	if err != nil || len(subs) != 3 {
		t.Errorf("FindSubscribers through the rebuilt index: got %d, %v, want 3", len(subs), err)
	}
}
