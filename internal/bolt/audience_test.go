package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/bolt/record"
	"optin/internal/consent"
	"optin/internal/transfer"
)

// TestAudienceFactsBuiltOnOpen: a database whose indexes carry no
// audience facts (derived version 1: empty values in sub_topics, no
// address hashes, evidence in a bucket of its own as derived version 4
// kept it and none in ledger_bysub) gets them built when next opened to
// write, the same as those written along with the records, and loses
// the evidence bucket; and a confirmed subscription the ledger proves
// nothing for is left out as no_basis by the preview and the run alike.
func TestAudienceFactsBuiltOnOpen(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "old.db")
	opts := Options{HMACKey: bytes.Repeat([]byte{7}, 32), Now: func() time.Time { return now }}
	db, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en"}
	if _, err := db.Bootstrap(ctx, consent.Topic{ID: "news", Name: "News"}, form, "h"); err != nil {
		t.Fatal(err)
	}
	ir, err := transfer.NewReader(strings.NewReader(`email,topics,basis,consented_at,source,last_purchase_at
a@example.com,news,consent,2025-01-01,shop,
b@example.com,news,consent,2025-01-01,shop,2029-12-01
c@example.com,news,soft_opt_in,,,2029-01-01
d@example.com,news,consent,2025-01-01,shop,
`), transfer.FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := db.Import(ctx, consent.CLIActor(), ir, consent.ImportOptions{SkipNotice: true}); err != nil || rep.Imported != 4 {
		t.Fatalf("Import: got %+v, %v", rep, err)
	}
	if _, _, err := db.AddSuppression(ctx, consent.CLIActor(), mustAddress(t, "d@example.com"), "news", ""); err != nil {
		t.Fatal(err)
	}
	// A subscriber confirmed without any ledger event (as a database
	// filled by hand might hold).
	bare := &consent.Subscriber{ID: db.ID(), Email: "bare@example.com", Created: now.Add(-800 * consent.Day),
		Subscriptions: map[string]*consent.Subscription{"news": {Topic: "news", Status: consent.StatusConfirmed,
			Basis: consent.BasisConsent, Since: now.Add(-800 * consent.Day)}}}
	if err := db.update(ctx, func(tx *bbolt.Tx) error { return db.putSubscriber(tx, bare, "bare@example.com") }); err != nil {
		t.Fatal(err)
	}
	c, err := db.CreateCampaign(ctx, consent.CLIActor(), consent.CampaignInput{Name: "c", Topic: "news",
		Templates: map[string]consent.CampaignTemplate{"en": {Subject: "s", Body: "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	p := consent.CampaignPolicy{DormantAfter: 365 * consent.Day}
	// a@ and c@ (a soft opt-in with a purchase within the window) are
	// in, b@ bought recently, d@ is suppressed, bare@ has no evidence.
	want := consent.NewCampaignPreview()
	want.Audience = 2
	want.Excluded[consent.ExcludedNotDormant] = 1
	want.Excluded[consent.ExcludedSuppressed] = 1
	want.Excluded[consent.ExcludedNoBasis] = 1
	pv, err := db.PreviewCampaign(ctx, c.ID, p)
	if err != nil || pv.Audience != want.Audience || !maps.Equal(pv.Excluded, want.Excluded) {
		t.Fatalf("PreviewCampaign: got %+v, %v, want %+v", pv, err, want)
	}
	built := derivedContents(t, db.bolt)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Make it a database of derived version 1.
	raw, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = raw.Update(func(tx *bbolt.Tx) error {
		// The evidence of derived version 4: a key per topic, subscriber
		// and basis, none in ledger_bysub.
		if ev, err := tx.CreateBucket(bucketEvidence); err != nil || ev.Put([]byte("news\x00id\x00c"), nil) != nil {
			return fmt.Errorf("evidence: %v", err)
		}
		bs := tx.Bucket(bucketLedgerBySub)
		var events [][]byte
		_ = bs.ForEach(func(k, v []byte) error {
			if len(v) > 0 {
				events = append(events, append([]byte(nil), k...))
			}
			return nil
		})
		if len(events) != 4 {
			return fmt.Errorf("%d ledger_bysub entries hold evidence, want 4 (the imported events)", len(events))
		}
		for _, k := range events {
			if err := bs.Put(k, nil); err != nil {
				return err
			}
		}
		// The address hashes as derived version 3 kept them.
		if ah, err := tx.CreateBucket(bucketAddrHash); err != nil || ah.Put([]byte("id"), make([]byte, 32)) != nil {
			return fmt.Errorf("addr_hash: %v", err)
		}
		b := tx.Bucket(bucketSubTopics)
		var keys [][]byte
		_ = b.ForEach(func(k, _ []byte) error {
			keys = append(keys, append([]byte(nil), k...))
			return nil
		})
		for _, k := range keys {
			if err := b.Put(k, nil); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyDerived, []byte("1"))
	})
	if cerr := raw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	if db, err = Open(path, opts); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := derivedContents(t, db.bolt); !maps.Equal(got, built) {
		t.Errorf("derived buckets rebuilt on open: got %d keys, want the %d written with the records", len(got), len(built))
	}
	if err := db.view(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketAddrHash) != nil || tx.Bucket(bucketEvidence) != nil {
			return errors.New("bucket addr_hash or evidence left after the rebuild")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if pv, err := db.PreviewCampaign(ctx, c.ID, p); err != nil || pv.Audience != want.Audience || !maps.Equal(pv.Excluded, want.Excluded) {
		t.Errorf("PreviewCampaign after the rebuild: got %+v, %v, want %+v", pv, err, want)
	}
	if _, err := db.StartCampaign(ctx, consent.CLIActor(), c.ID); err != nil {
		t.Fatal(err)
	}
	if res, err := db.CampaignStep(ctx, p, time.Second, true); err != nil || res.Queued != want.Audience {
		t.Fatalf("CampaignStep: got %+v, %v, want %d queued", res, err, want.Audience)
	}
	ran, err := db.Campaign(ctx, c.ID)
	if err != nil || !ran.Walked || !maps.Equal(ran.Counts.Excluded, nonZero(want.Excluded)) {
		t.Errorf("campaign run: got %+v, %v, want excluded %v", ran, err, want.Excluded)
	}
}

// derivedContents returns every key and value of the derived buckets
// (counters and indexes) and of ledger_bysub, whose values hold the
// evidence, keyed by bucket and key.
func derivedContents(t *testing.T, b *bbolt.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := b.View(func(tx *bbolt.Tx) error {
		for _, name := range append(slices.Clone(derivedBuckets), bucketLedgerBySub) {
			err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				out[string(name)+"/"+string(k)] = string(v)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// nonZero returns m without its zero counts.
func nonZero(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, n := range m {
		if n != 0 {
			out[k] = n
		}
	}
	return out
}

func mustAddress(t *testing.T, s string) consent.Address {
	t.Helper()
	a, err := consent.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestEvidenceFlag: the sub_topics entry of each confirmed subscription
// says whether the ledger proves its basis for its topic, whichever a
// write puts first (an import appends the event before it writes the
// subscriber, a confirmation writes the subscriber first, and an event
// may prove the basis of a subscription confirmed long before, or
// another basis); a rebuild writes the same; and the preview, which
// reads the flag, counts what a walk through the records and their
// events counts.
func TestEvidenceFlag(t *testing.T) {
	ctx := context.Background()
	db, form, _, advance := openClockedDB(t)
	ir, err := transfer.NewReader(strings.NewReader(`email,topics,basis,consented_at,source,last_purchase_at
proved@example.com,news,consent,2024-01-01,shop,
soft@example.com,news,soft_opt_in,,,2025-11-01
`), transfer.FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := db.Import(ctx, consent.CLIActor(), ir, consent.ImportOptions{SkipNotice: true}); err != nil || rep.Imported != 2 {
		t.Fatalf("Import: got %+v, %v", rep, err)
	}
	a := mustAddress(t, "fresh@example.com")
	if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}, IP: "192.0.2.1"}, consent.Wording{}); err != nil {
		t.Fatal(err)
	}
	fresh, err := db.SubscriberByAddress(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Confirm(ctx, fresh.PendingRequest, consent.ConfirmInput{IP: "192.0.2.2"}); err != nil {
		t.Fatal(err)
	}
	// Subscribers confirmed with no event (as a database filled by hand
	// might hold them); two of them get one later, proving their basis
	// or another.
	for _, c := range []struct {
		email string
		event consent.Basis // "": none
	}{{"bare@example.com", ""}, {"late@example.com", consent.BasisConsent}, {"other@example.com", consent.BasisSoftOptIn}} {
		sub := &consent.Subscriber{ID: db.ID(), Email: c.email, Created: db.Now(),
			Subscriptions: map[string]*consent.Subscription{"news": {Topic: "news", Status: consent.StatusConfirmed,
				Basis: consent.BasisConsent, Since: db.Now()}}}
		if err := db.update(ctx, func(tx *bbolt.Tx) error { return db.putSubscriber(tx, sub, c.email) }); err != nil {
			t.Fatal(err)
		}
		if c.event == "" {
			continue
		}
		ev := &consent.Event{Time: db.Now(), Type: consent.EventReconfirmed, Subscriber: sub.ID, Topics: []string{"news"}, Basis: c.event}
		if err := db.update(ctx, func(tx *bbolt.Tx) error {
			return appendEvent(tx, ev, consent.Personal{Salt: db.ID(), Email: c.email})
		}); err != nil {
			t.Fatal(err)
		}
	}
	advance(400 * consent.Day) // all of them dormant
	c, err := db.CreateCampaign(ctx, consent.CLIActor(), consent.CampaignInput{Name: "c", Topic: "news",
		Templates: map[string]consent.CampaignTemplate{"en": {Subject: "s", Body: "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	p := consent.CampaignPolicy{DormantAfter: 365 * consent.Day}
	check := func(when string) {
		t.Helper()
		proved := wantEvidenceFlags(t, db, when)
		if want := map[bool]int{true: 4, false: 2}; !maps.Equal(proved, want) {
			t.Errorf("%s: confirmed subscriptions proved (true) and not: %v, want %v", when, proved, want)
		}
		want := walkPreview(t, db, c, p)
		if want.Excluded[consent.ExcludedNoBasis] != 2 {
			t.Errorf("%s: a walk leaves %v out, want the two without evidence as %s", when, nonZero(want.Excluded), consent.ExcludedNoBasis)
		}
		if pv, err := db.PreviewCampaign(ctx, c.ID, p); err != nil || pv.Audience != want.Audience || !maps.Equal(pv.Excluded, want.Excluded) {
			t.Errorf("%s: PreviewCampaign got %+v, %v; a walk through the records and events counts %+v", when, pv, err, want)
		}
	}
	check("as written")
	written := derivedContents(t, db.bolt)
	if _, err := db.RebuildCounters(ctx); err != nil {
		t.Fatal(err)
	}
	if got := derivedContents(t, db.bolt); !maps.Equal(got, written) {
		t.Errorf("RebuildCounters: derived buckets of %d keys, differ from the %d the writes left", len(got), len(written))
	}
	check("rebuilt")
}

// wantEvidenceFlags checks that the evidence flag of each confirmed
// sub_topics entry is what the subscriber's ledger events say
// (consent.IsEvidence for the subscription's basis), and counts the
// entries by it.
func wantEvidenceFlags(t *testing.T, db *DB, when string) map[bool]int {
	t.Helper()
	type entry struct {
		id, topic string
		flag      byte
	}
	var entries []entry
	if err := db.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketSubTopics).ForEach(func(k, v []byte) error {
			topic, rest, _ := bytes.Cut(k, []byte{0})
			if len(rest) == 0 || rest[0] != statusCodes[consent.StatusConfirmed] {
				return nil
			}
			if len(v) <= addrHashLen {
				return fmt.Errorf("sub_topics entry %x: %x, too short", k, v)
			}
			entries = append(entries, entry{record.IDString(rest[1:]), string(topic), v[addrHashLen]})
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	out := map[bool]int{}
	for _, e := range entries {
		sub, err := db.Subscriber(context.Background(), e.id)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := db.Events(context.Background(), e.id)
		if err != nil {
			t.Fatal(err)
		}
		proved := slices.ContainsFunc(evs, func(r consent.EventRecord) bool {
			return consent.IsEvidence(&r.Event, e.topic, sub.Subscriptions[e.topic].Basis)
		})
		if want := map[bool]byte{false: 0, true: 1}[proved]; e.flag != want {
			t.Errorf("%s: %s's sub_topics entry for %s has evidence flag %d; its events prove its basis: %v", when, sub.Email, e.topic, e.flag, proved)
		}
		out[proved]++
	}
	return out
}

// walkPreview counts campaign c's audience the slow way: every
// subscriber's record, suppression and ledger events.
func walkPreview(t *testing.T, db *DB, c *consent.Campaign, p consent.CampaignPolicy) consent.CampaignPreview {
	t.Helper()
	ctx := context.Background()
	pv := consent.NewCampaignPreview()
	subs, _, err := db.FindSubscribers(ctx, consent.SubscriberFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range subs {
		evs, err := db.Events(ctx, sub.ID)
		if err != nil {
			t.Fatal(err)
		}
		ok, reason, err := c.SelectLooking(sub, db.Now(), p, func() (bool, error) {
			return db.Suppressed(ctx, mustAddress(t, sub.Email), c.Topic)
		}, func(basis consent.Basis) (bool, error) {
			return slices.ContainsFunc(evs, func(r consent.EventRecord) bool { return consent.IsEvidence(&r.Event, c.Topic, basis) }), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		pv.Count(ok, reason)
	}
	return pv
}
