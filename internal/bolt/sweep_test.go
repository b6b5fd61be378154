package bolt

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/bolt/record"
	"optin/internal/consent"
)

// openClockedDB opens a bootstrapped store on a clock the test moves.
func openClockedDB(t *testing.T) (*DB, consent.Form, func() time.Time, func(time.Duration)) {
	t.Helper()
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	db, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{Now: clock, HMACKey: bytes.Repeat([]byte{1}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}}
	if _, err := db.Bootstrap(context.Background(), consent.Topic{ID: "news"}, form, "h"); err != nil {
		t.Fatal(err)
	}
	return db, form, clock, advance
}

// TestSweepRequests: an address that never confirmed is forgotten
// retention after its link expired; a confirmed one only loses the spent
// request record.
func TestSweepRequests(t *testing.T) {
	ctx := context.Background()
	db, form, _, advance := openClockedDB(t)
	signup := func(addr string) consent.Address {
		a, _ := consent.ParseAddress(addr)
		if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}, IP: "192.0.2.1"}, consent.Wording{}); err != nil {
			t.Fatal(err)
		}
		return a
	}
	never := signup("never@example.com")
	yes := signup("yes@example.com")
	sub, _ := db.SubscriberByAddress(ctx, yes)
	if _, err := db.Confirm(ctx, sub.PendingRequest, consent.ConfirmInput{}); err != nil {
		t.Fatal(err)
	}
	neverSub, _ := db.SubscriberByAddress(ctx, never)

	retention := 7 * 24 * time.Hour
	advance(72*time.Hour + retention - time.Minute)
	if n, err := db.SweepRequests(ctx, retention); err != nil || n != 0 {
		t.Fatalf("sweep before the retention ended: got %d (%v), want 0", n, err)
	}
	advance(2 * time.Minute)
	if n, err := db.SweepRequests(ctx, retention); err != nil || n != 2 {
		t.Fatalf("sweep: got %d (%v), want 2", n, err)
	}
	if _, err := db.SubscriberByAddress(ctx, never); consent.ErrorCode(err) != consent.ENotFound {
		t.Errorf("never-confirmed subscriber: got %v, want not found", err)
	}
	evs, err := db.Events(ctx, neverSub.ID)
	if err != nil || len(evs) != 1 || evs[0].Personal != nil {
		t.Errorf("never-confirmed events: got %d (%v), want 1 without personal data", len(evs), err)
	}
	got, err := db.SubscriberByAddress(ctx, yes)
	if err != nil || got.Subscriptions["news"].Status != consent.StatusConfirmed {
		t.Errorf("confirmed subscriber after sweep: %+v (%v)", got, err)
	}
	if rep, err := db.VerifyLedger(ctx); err != nil || !rep.OK {
		t.Errorf("ledger after sweep: %+v (%v)", rep, err)
	}
}

// TestSweepAfterNotMe: an address blocked by "not me" is kept while the
// block lasts and forgotten, parked mail included, by the sweep after it.
func TestSweepAfterNotMe(t *testing.T) {
	ctx := context.Background()
	db, form, clock, advance := openClockedDB(t)
	a, _ := consent.ParseAddress("victim@example.com")
	if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}}, consent.Wording{}); err != nil {
		t.Fatal(err)
	}
	sub, _ := db.SubscriberByAddress(ctx, a)
	jobs, _ := db.DueJobs(ctx, clock().Add(time.Hour), 10, nil)
	if err := db.ParkJob(ctx, jobs[0], "550 no such user"); err != nil { // a mail refused for good
		t.Fatal(err)
	}
	if err := db.NotMe(ctx, sub.PendingRequest, consent.ConfirmInput{}); err != nil {
		t.Fatal(err)
	}
	retention := 7 * 24 * time.Hour
	advance(11 * 24 * time.Hour) // link expired + retention, block still on
	if _, err := db.SweepRequests(ctx, retention); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SubscriberByAddress(ctx, a); err != nil {
		t.Fatalf("blocked subscriber swept while the block lasts: %v", err)
	}
	advance(30 * 24 * time.Hour) // the block is over
	if n, err := db.SweepRequests(ctx, retention); err != nil || n != 1 {
		t.Fatalf("sweep after the block: got %d (%v), want 1", n, err)
	}
	if _, err := db.SubscriberByAddress(ctx, a); consent.ErrorCode(err) != consent.ENotFound {
		t.Errorf("subscriber after the block: got %v, want not found", err)
	}
	if _, parked, _ := db.OutboxDepth(ctx); parked != 0 {
		t.Errorf("parked mails: got %d, want 0 (they hold the address)", parked)
	}
}

// TestSweepInSmallSteps: reading a few requests per read transaction and
// deleting a few per write transaction sweeps the same requests as one
// pass: none is skipped at a step's edge, and a request gone since it was
// read is not counted again.
func TestSweepInSmallSteps(t *testing.T) {
	ctx := context.Background()
	db, form, _, advance := openClockedDB(t)
	var addrs []consent.Address
	for i := range 7 {
		a, _ := consent.ParseAddress(fmt.Sprintf("p%d@example.com", i))
		if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}}, consent.Wording{}); err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, a)
	}
	retention := 7 * 24 * time.Hour
	advance(72*time.Hour + retention + time.Minute)
	ids, _, err := db.sweepCandidates(nil, retention, 100)
	if err != nil || len(ids) != 7 {
		t.Fatalf("candidates: got %d (%v), want 7", len(ids), err)
	}
	if n, err := db.sweepDelete(context.Background(), ids[:1], retention); err != nil || n != 1 {
		t.Fatalf("sweepDelete of one: got %d (%v), want 1", n, err)
	}
	if n, err := db.sweepDelete(context.Background(), ids[:1], retention); err != nil || n != 0 {
		t.Errorf("sweepDelete of a swept request: got %d (%v), want 0", n, err)
	}
	if n, err := db.sweep(ctx, retention, 2, 2); err != nil || n != 6 {
		t.Fatalf("sweep in steps of 2: got %d (%v), want 6", n, err)
	}
	for _, a := range addrs {
		if _, err := db.SubscriberByAddress(ctx, a); consent.ErrorCode(err) != consent.ENotFound {
			t.Errorf("%s after the sweep: got %v, want not found", a.Addr, err)
		}
	}
}

// TestRequestsThroughLedger: a request its requested event names has no
// requests_bysub entry (ledger_bysub finds it); one without an event (an
// address change) and one of a database from before keep theirs. Erase
// deletes each of them, and the sweep finds them.
func TestRequestsThroughLedger(t *testing.T) {
	ctx := context.Background()
	db, form, _, advance := openClockedDB(t)
	signup := func(addr string) *consent.Subscriber {
		a, _ := consent.ParseAddress(addr)
		if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}}, consent.Wording{}); err != nil {
			t.Fatal(err)
		}
		sub, err := db.SubscriberByAddress(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		return sub
	}
	bySub := func(id string) (n int) {
		db.view(func(tx *bbolt.Tx) error {
			n = len(keysWithPrefix(tx.Bucket(bucketReqBySub), pairKey(id, "")))
			return nil
		})
		return n
	}
	requestGone := func(id string) {
		t.Helper()
		if _, err := db.Request(ctx, id); consent.ErrorCode(err) != consent.ENotFound {
			t.Errorf("request %s after erasure: %v, want not found", id, err)
		}
	}
	a := signup("a@example.com")
	if n := bySub(a.ID); n != 0 {
		t.Errorf("requests_bysub of a signup: %d entries, want 0", n)
	}
	// As a database from before wrote it.
	b := signup("b@example.com")
	if err := db.update(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketReqBySub).Put(pairKey(b.ID, b.PendingRequest), nil)
	}); err != nil {
		t.Fatal(err)
	}
	// An address change: a request with no event yet.
	c := signup("c@example.com")
	if _, err := db.Confirm(ctx, c.PendingRequest, consent.ConfirmInput{}); err != nil {
		t.Fatal(err)
	}
	na, _ := consent.ParseAddress("c2@example.com")
	if res, err := db.Rectify(ctx, nil, c.ID, consent.Rectification{Email: &na}, "preferences"); err != nil || !res.AddressPending {
		t.Fatalf("Rectify: %+v, %v", res, err)
	}
	if n := bySub(c.ID); n != 1 {
		t.Fatalf("requests_bysub of an address change: %d entries, want 1", n)
	}
	var change string
	if err := db.view(func(tx *bbolt.Tx) error {
		ids, err := requestsOf(tx, c.ID)
		if len(ids) != 2 {
			return fmt.Errorf("requests of c: %q, want the signup's and the address change's", ids)
		}
		for _, id := range ids {
			if id != c.PendingRequest {
				change = id
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*consent.Subscriber{a, b, c} {
		if err := db.Erase(ctx, s.ID, "admin:test"); err != nil {
			t.Fatal(err)
		}
		if n := bySub(s.ID); n != 0 {
			t.Errorf("requests_bysub after erasure: %d entries", n)
		}
	}
	for _, id := range []string{a.PendingRequest, b.PendingRequest, c.PendingRequest, change} {
		requestGone(id)
	}
	// The sweep forgets a never-confirmed signup through its event.
	d := signup("d@example.com")
	advance(72*time.Hour + 8*24*time.Hour)
	if n, err := db.SweepRequests(ctx, 7*24*time.Hour); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v, want 1", n, err)
	}
	requestGone(d.PendingRequest)
	if _, err := db.Subscriber(ctx, d.ID); consent.ErrorCode(err) != consent.ENotFound {
		t.Errorf("swept subscriber: %v, want not found", err)
	}
}

// TestSubscriberEventsBothKeyForms: ledger_bysub names a subscriber by
// its id's 22 bytes and an event by its number without leading zero
// bytes; the entries databases from before wrote (the id written out,
// or the number in 8 bytes) still count, in order with the new ones, for
// the proof of consent, the evidence and erasure.
func TestSubscriberEventsBothKeyForms(t *testing.T) {
	ctx := context.Background()
	db, form, _, _ := openClockedDB(t)
	a, _ := consent.ParseAddress("a@example.com")
	if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}, IP: "192.0.2.1"}, consent.Wording{}); err != nil {
		t.Fatal(err)
	}
	sub, err := db.SubscriberByAddress(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	// Rewrite the first event's entry as schema version 2 wrote it.
	if err := db.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketLedgerBySub)
		keys := keysWithPrefix(b, record.ID(sub.ID))
		if len(keys) != 1 || len(keys[0]) != 23 {
			return fmt.Errorf("ledger_bysub keys of a signup: %q, want one of 23 bytes (event 1)", keys)
		}
		if err := b.Delete(keys[0]); err != nil {
			return err
		}
		return b.Put(oldLedgerBySubKey(sub.ID, beUint64(keys[0][22:])), nil)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Confirm(ctx, sub.PendingRequest, consent.ConfirmInput{IP: "192.0.2.2"}); err != nil {
		t.Fatal(err)
	}
	// The confirmed event's entry as schema versions 3 to 6 wrote it: the
	// number in 8 bytes.
	if err := db.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketLedgerBySub)
		k := append(record.ID(sub.ID), 2)
		v := bytes.Clone(b.Get(k))
		if len(v) == 0 {
			return fmt.Errorf("no evidence in ledger_bysub %x", k)
		}
		if err := b.Delete(k); err != nil {
			return err
		}
		return b.Put(append(record.ID(sub.ID), u64(2)...), v)
	}); err != nil {
		t.Fatal(err)
	}
	evs, err := db.Events(ctx, sub.ID)
	if err != nil || len(evs) != 2 || evs[0].Type != consent.EventRequested || evs[1].Type != consent.EventConfirmed || evs[0].Personal == nil {
		t.Fatalf("Events: %d, %v, want requested then confirmed", len(evs), err)
	}
	// The audience indexes name it by its 22 bytes too, its status and
	// basis by a byte, and keep its address hash and evidence flag with
	// its facts.
	if err := db.view(func(tx *bbolt.Tx) error {
		id := record.ID(sub.ID)
		v := tx.Bucket(bucketSubTopics).Get(append([]byte("news\x00\x02"), id...))
		if h, _ := hex.DecodeString(db.AddressHash(a)); len(v) < 16 || !bytes.Equal(v[:16], h[:16]) {
			return fmt.Errorf("sub_topics entry under %x: %x, want the address hash %x first", id, v, h[:16])
		} else if v[16] != 1 {
			return fmt.Errorf("sub_topics entry under %x: %x, want evidence flag 1 after the address hash", id, v)
		} else if _, err := consent.DecodeAudienceFacts(v[17:]); err != nil {
			return fmt.Errorf("sub_topics entry under %x: %x: %w", id, v, err)
		}
		// The confirmed event's entry in ledger_bysub holds the evidence:
		// basis consent ('c') for news.
		if !hasEvidence(tx, sub.ID, "news", consent.BasisConsent) {
			return errors.New("no evidence of consent to news")
		}
		for _, name := range []string{"addr_hash", "evidence"} {
			if tx.Bucket([]byte(name)) != nil {
				return fmt.Errorf("bucket %s still there", name)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Erase(ctx, sub.ID, "admin:test"); err != nil {
		t.Fatal(err)
	}
	if err := db.view(func(tx *bbolt.Tx) error {
		if k, _ := tx.Bucket(bucketSubTopics).Cursor().First(); k != nil {
			return fmt.Errorf("sub_topics after erasure: %x", k)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	evs, err = db.Events(ctx, sub.ID)
	if err != nil || len(evs) != 3 {
		t.Fatalf("Events after erasure: %d, %v, want 3", len(evs), err)
	}
	for _, e := range evs[:2] {
		if e.Personal != nil {
			t.Errorf("event %d (%s) keeps its personal record after erasure", e.Seq, e.Type)
		}
	}
}

// TestForgetReadsOnlyOptedOut: the retention sweep of people who opted
// out of everything reads its candidates from the subscription index, so
// it erases such a person without reading anyone else's record (here
// one it could not read would stop it).
func TestForgetReadsOnlyOptedOut(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "forget.db")
	rebuildDB(t, path)
	opts := rebuildOptions()
	start := opts.Now()
	now := start
	opts.Now = func() time.Time { return now }
	db, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en"}
	a := mustAddress(t, "gone@example.com")
	if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}}, consent.Wording{Form: "newsletter"}); err != nil {
		t.Fatal(err)
	}
	gone, err := db.SubscriberByAddress(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Confirm(ctx, gone.PendingRequest, consent.ConfirmInput{}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Unsubscribe(ctx, gone.ID, "", consent.ChannelOneClick, consent.ConfirmInput{}); err != nil {
		t.Fatal(err)
	}
	// Spoil the record of someone else, still subscribed.
	goneKey := storedKey(bucketSubscribers, []byte(gone.ID))
	if err := db.bolt.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSubscribers)
		k, _ := b.Cursor().First()
		if bytes.Equal(k, goneKey) {
			k, _ = b.Cursor().Last()
		}
		return b.Put(bytes.Clone(k), []byte{0xff, 0xfe, 0x01})
	}); err != nil {
		t.Fatal(err)
	}
	now = start.Add(48 * time.Hour)
	if n, err := db.ForgetOptedOut(ctx, 24*time.Hour); err != nil || n != 1 {
		t.Fatalf("ForgetOptedOut beside a record it cannot read: got %d, %v, want 1 forgotten", n, err)
	}
	if _, err := db.Subscriber(ctx, gone.ID); consent.ErrorCode(err) != consent.ENotFound {
		t.Errorf("Subscriber(gone) after ForgetOptedOut: got %v, want ENotFound", err)
	}
}
