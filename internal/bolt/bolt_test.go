package bolt_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/bolt"
	"optin/internal/bolt/bolttest"
	"optin/internal/bolt/record"
	"optin/internal/consent"
	"optin/internal/testclock"
)

// newClock returns the test clock, with a sub-millisecond part on
// purpose: the store keeps milliseconds.
func newClock() *testclock.Clock {
	return testclock.At(time.Date(2030, 1, 2, 3, 4, 5, 678_900_123, time.UTC))
}

const (
	testDomain  = "optin.test"
	testKey     = "optin_test_admin_key_0123456789abcdef"
	testWording = "Yes, send me the newsletter."
	testNotice  = "Shop Ltd sends this mail; unsubscribe at any time."
)

// testHMACKey is the suppression hash key of every test store: 32 bytes.
var testHMACKey = []byte("suppression-key-0123456789abcdef")

func testOptions(clk *testclock.Clock) bolt.Options {
	return bolt.Options{Now: clk.Now, MessageIDDomain: testDomain, HMACKey: testHMACKey}
}

// testDB is an open store on a real bbolt file with its clock.
type testDB struct {
	*bolt.DB
	clock *testclock.Clock
	path  string
}

// mustOpen opens a new database in t.TempDir() with a fake clock. It is
// closed when the test ends.
func mustOpen(t *testing.T) *testDB {
	t.Helper()
	clk := newClock()
	path := filepath.Join(t.TempDir(), "data", "optin.db")
	return &testDB{DB: mustOpenAt(t, path, clk), clock: clk, path: path}
}

func mustOpenAt(t *testing.T, path string, clk *testclock.Clock) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, testOptions(clk))
	if err != nil {
		t.Fatalf("Open: got err %v, want nil", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// reopen closes db and opens its file again with the same clock.
func (db *testDB) reopen(t *testing.T) {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatalf("Close: got err %v, want nil", err)
	}
	db.DB = mustOpenAt(t, db.path, db.clock)
}

// mustBootstrap creates topic "news" and form "newsletter" through
// Bootstrap, then topic "offers" and offers it on the form too.
func mustBootstrap(t *testing.T, db *testDB) consent.Form {
	t.Helper()
	topic := consent.Topic{ID: "news", Name: "Product news"}
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en",
		Wording: map[string]string{"en": testWording}, WordingVersion: 1}
	created, err := db.Bootstrap(t.Context(), topic, form, consent.HashAPIKey(testKey))
	if err != nil || !created {
		t.Fatalf("Bootstrap: got %v, %v, want true, nil", created, err)
	}
	actor := consent.Actor{Name: "test"}
	if _, err := db.CreateTopic(t.Context(), actor, consent.Topic{ID: "offers", Name: "Offers"}); err != nil {
		t.Fatalf("CreateTopic(offers): got err %v, want nil", err)
	}
	form.Topics = []string{"news", "offers"}
	f, err := db.UpdateForm(t.Context(), actor, form)
	if err != nil {
		t.Fatalf("UpdateForm: got err %v, want nil", err)
	}
	return f
}

func mustAddress(t *testing.T, s string) consent.Address {
	t.Helper()
	a, err := consent.ParseAddress(s)
	if err != nil {
		t.Fatalf("ParseAddress(%q): %v", s, err)
	}
	return a
}

func wordingFor(t *testing.T, db *testDB, form consent.Form) consent.Wording {
	t.Helper()
	topics, err := db.Topics(t.Context())
	if err != nil {
		t.Fatalf("Topics: %v", err)
	}
	return form.WordingFor("en", topics, "fallback wording", testNotice)
}

func signupInput(t *testing.T, form *consent.Form, email string) consent.SignupInput {
	return consent.SignupInput{Form: form, Address: mustAddress(t, email), Name: "Ann", Locale: "en",
		Topics: []string{"news"}, Page: "https://shop.example/", IP: "192.0.2.7", UserAgent: "Mozilla/5.0 test"}
}

func mustSignup(t *testing.T, db *testDB, form consent.Form, email string) consent.SignupResult {
	t.Helper()
	res, err := db.Signup(t.Context(), signupInput(t, &form, email), wordingFor(t, db, form))
	if err != nil {
		t.Fatalf("Signup(%q): got err %v, want nil", email, err)
	}
	return res
}

func mustSubscriber(t *testing.T, db *testDB, email string) *consent.Subscriber {
	t.Helper()
	sub, err := db.SubscriberByAddress(t.Context(), mustAddress(t, email))
	if err != nil {
		t.Fatalf("SubscriberByAddress(%q): got err %v, want nil", email, err)
	}
	return sub
}

func mustEvents(t *testing.T, db *testDB, subID string) []consent.EventRecord {
	t.Helper()
	evs, err := db.Events(t.Context(), subID)
	if err != nil {
		t.Fatalf("Events: got err %v, want nil", err)
	}
	return evs
}

func mustDueJobs(t *testing.T, db *testDB, now time.Time) []consent.Job {
	t.Helper()
	jobs, err := db.DueJobs(t.Context(), now, 100, nil)
	if err != nil {
		t.Fatalf("DueJobs: got err %v, want nil", err)
	}
	return jobs
}

func wantLedgerOK(t *testing.T, db *testDB, events uint64) {
	t.Helper()
	rep, err := db.VerifyLedger(t.Context())
	if err != nil {
		t.Fatalf("VerifyLedger: got err %v, want nil", err)
	}
	if !rep.OK || rep.Broken != nil {
		t.Errorf("VerifyLedger: got OK %v, Broken %+v, want OK", rep.OK, rep.Broken)
	}
	if rep.Events != events {
		t.Errorf("VerifyLedger.Events: got %d, want %d", rep.Events, events)
	}
}

func wantOutbox(t *testing.T, db *testDB, queued, parked int) {
	t.Helper()
	q, p, err := db.OutboxDepth(t.Context())
	if err != nil {
		t.Fatalf("OutboxDepth: got err %v, want nil", err)
	}
	if q != queued || p != parked {
		t.Errorf("OutboxDepth: got %d queued, %d parked, want %d, %d", q, p, queued, parked)
	}
}

func TestSignupConfirmFlow(t *testing.T) {
	db := mustOpen(t)
	form := mustBootstrap(t, db)
	wording := wordingFor(t, db, form)
	now := db.Now()
	if got := now.Nanosecond() % int(time.Millisecond); got != 0 {
		t.Fatalf("db.Now: got %d ns below the millisecond, want 0", got)
	}

	res := mustSignup(t, db, form, "Ann@Example.com")
	if !res.Queued {
		t.Errorf("Signup.Queued: got false, want true")
	}

	sub := mustSubscriber(t, db, "ann@example.COM") // found by the case-folded key
	if got, want := sub.Email, "Ann@example.com"; got != want {
		t.Errorf("Subscriber.Email: got %q, want %q", got, want)
	}
	if s := sub.Subscriptions["news"]; s == nil || s.Status != consent.StatusPending {
		t.Fatalf("Subscriptions[news]: got %+v, want pending", s)
	}
	req, err := db.Request(t.Context(), sub.PendingRequest)
	if err != nil {
		t.Fatalf("Request(%q): got err %v, want nil", sub.PendingRequest, err)
	}
	if req.MessageID == "" || !strings.HasSuffix(req.MessageID, "@"+testDomain) {
		t.Errorf("Request.MessageID: got %q, want <id>@%s", req.MessageID, testDomain)
	}
	if got, want := req.Expires, now.Add(consent.DefaultPolicy().ConfirmTTL); !got.Equal(want) {
		t.Errorf("Request.Expires: got %v, want %v", got, want)
	}

	evs := mustEvents(t, db, sub.ID)
	if len(evs) != 1 {
		t.Fatalf("len(Events): got %d, want 1", len(evs))
	}
	ev := evs[0]
	if ev.Seq != 1 || ev.Type != consent.EventRequested || ev.Source != "form:newsletter" || ev.Request != req.ID || ev.MessageID != req.MessageID {
		t.Errorf("Event: got seq %d %q source %q request %q message %q, want 1 %q form:newsletter %q %q",
			ev.Seq, ev.Type, ev.Source, ev.Request, ev.MessageID, consent.EventRequested, req.ID, req.MessageID)
	}
	if ev.Personal == nil {
		t.Fatalf("Event.Personal: got nil, want the personal record")
	}
	if ev.Personal.Email != "Ann@example.com" || ev.Personal.IP != "192.0.2.7" || ev.Personal.UserAgent != "Mozilla/5.0 test" {
		t.Errorf("Event.Personal: got %+v, want Ann@example.com, 192.0.2.7, Mozilla/5.0 test", *ev.Personal)
	}
	if got, want := ev.Wording, wording.Hash(); got != want {
		t.Errorf("Event.Wording: got %q, want %q", got, want)
	}
	if ev.WordingText == nil {
		t.Errorf("Event.WordingText: got nil, want the wording")
	} else if got, want := ev.WordingText.Hash(), wording.Hash(); got != want || ev.WordingText.Text != testWording {
		t.Errorf("Event.WordingText: got %+v, want %+v", *ev.WordingText, wording)
	}

	jobs := mustDueJobs(t, db, now)
	if len(jobs) != 1 {
		t.Fatalf("len(DueJobs): got %d, want 1", len(jobs))
	}
	job := jobs[0]
	if job.Kind != consent.JobConfirm || job.To != "Ann@example.com" || job.Subscriber != sub.ID ||
		job.Request != req.ID || job.MessageID != req.MessageID || job.Locale != "en" {
		t.Errorf("Job: got %+v, want a confirm job for request %q to Ann@example.com", job, req.ID)
	}
	if !job.TokenExpires.Equal(req.Expires) {
		t.Errorf("Job.TokenExpires: got %v, want %v", job.TokenExpires, req.Expires)
	}
	if !job.NextAt.Equal(now) || job.Attempts != 0 {
		t.Errorf("Job: got NextAt %v, Attempts %d, want %v, 0", job.NextAt, job.Attempts, now)
	}
	if ok, err := db.Deliverable(t.Context(), job); err != nil || !ok {
		t.Errorf("Deliverable before confirm: got %v, %v, want true, nil", ok, err)
	}

	db.clock.Advance(time.Minute)
	for _, again := range []string{"Ann@Example.com", "ANN@example.com"} {
		if res := mustSignup(t, db, form, again); res.Queued {
			t.Errorf("Signup(%q) again: Queued got true, want false", again)
		}
	}
	if got := len(mustDueJobs(t, db, db.Now())); got != 1 {
		t.Errorf("len(DueJobs) after repeat signup: got %d, want 1", got)
	}
	if got := len(mustEvents(t, db, sub.ID)); got != 1 {
		t.Errorf("len(Events) after repeat signup: got %d, want 1", got)
	}

	db.clock.Advance(time.Hour)
	in := consent.ConfirmInput{IP: "198.51.100.9", UserAgent: "Mail client"}
	cres, err := db.Confirm(t.Context(), req.ID, in)
	if err != nil {
		t.Fatalf("Confirm: got err %v, want nil", err)
	}
	if cres.Already || !slices.Equal(cres.Topics, []string{"news"}) {
		t.Errorf("Confirm: got %+v, want Topics [news], Already false", cres)
	}
	sub = mustSubscriber(t, db, "Ann@example.com")
	if s := sub.Subscriptions["news"]; s == nil || s.Status != consent.StatusConfirmed || !s.Since.Equal(db.Now()) {
		t.Errorf("Subscriptions[news] after confirm: got %+v, want confirmed since %v", s, db.Now())
	}
	if sub.PendingRequest != "" || sub.ConfirmMails != nil {
		t.Errorf("after confirm: got PendingRequest %q, ConfirmMails %v, want empty", sub.PendingRequest, sub.ConfirmMails)
	}

	cres, err = db.Confirm(t.Context(), req.ID, in)
	if err != nil || !cres.Already {
		t.Errorf("second Confirm: got %+v, %v, want Already true, nil", cres, err)
	}
	evs = mustEvents(t, db, sub.ID)
	if len(evs) != 2 {
		t.Fatalf("len(Events) after two confirms: got %d, want 2", len(evs))
	}
	if got, want := evs[1].Type, consent.EventConfirmed; got != want {
		t.Errorf("Events[1].Type: got %q, want %q", got, want)
	}
	if p := evs[1].Personal; p == nil || p.IP != "198.51.100.9" || p.UserAgent != "Mail client" {
		t.Errorf("Events[1].Personal: got %+v, want the click's IP and user agent", p)
	}
	if evs[1].Prev != evs[0].Hash {
		t.Errorf("Events[1].Prev: got %q, want %q", evs[1].Prev, evs[0].Hash)
	}
	wantLedgerOK(t, db, 2)

	if ok, err := db.Deliverable(t.Context(), job); err != nil || ok {
		t.Errorf("Deliverable after confirm: got %v, %v, want false, nil", ok, err)
	}
}

func TestOutbox(t *testing.T) {
	// setup returns a store holding one due confirmation job.
	setup := func(t *testing.T) (*testDB, consent.Job) {
		db := mustOpen(t)
		form := mustBootstrap(t, db)
		mustSignup(t, db, form, "ann@example.com")
		jobs := mustDueJobs(t, db, db.Now())
		if len(jobs) != 1 {
			t.Fatalf("setup: len(DueJobs): got %d, want 1", len(jobs))
		}
		return db, jobs[0]
	}

	t.Run("retry", func(t *testing.T) {
		db, job := setup(t)
		now := db.Now()
		next := now.Add(5*time.Minute + 123*time.Microsecond)
		nextMS := next.Truncate(time.Millisecond)
		if err := db.RetryJob(t.Context(), job, next, "421 try again later"); err != nil {
			t.Fatalf("RetryJob: got err %v, want nil", err)
		}
		if got := mustDueJobs(t, db, now); len(got) != 0 {
			t.Errorf("DueJobs(now) after retry: got %d jobs, want 0", len(got))
		}
		if got := mustDueJobs(t, db, nextMS.Add(-time.Millisecond)); len(got) != 0 {
			t.Errorf("DueJobs(next-1ms): got %d jobs, want 0", len(got))
		}
		due, err := db.NextDue(t.Context())
		if err != nil || !due.Equal(nextMS) {
			t.Errorf("NextDue: got %v, %v, want %v, nil", due, err, nextMS)
		}
		jobs := mustDueJobs(t, db, nextMS)
		if len(jobs) != 1 {
			t.Fatalf("len(DueJobs(next)): got %d, want 1", len(jobs))
		}
		got := jobs[0]
		if got.ID != job.ID || got.Attempts != 1 || got.LastError != "421 try again later" || !got.NextAt.Equal(nextMS) {
			t.Errorf("retried job: got ID %d, Attempts %d, LastError %q, NextAt %v, want %d, 1, %q, %v",
				got.ID, got.Attempts, got.LastError, got.NextAt, job.ID, "421 try again later", nextMS)
		}
		wantOutbox(t, db, 1, 0)

		// The job as DueJobs returned it can be retried again.
		if err := db.RetryJob(t.Context(), got, nextMS.Add(time.Hour), "timeout"); err != nil {
			t.Fatalf("second RetryJob: %v", err)
		}
		jobs = mustDueJobs(t, db, nextMS.Add(time.Hour))
		if len(jobs) != 1 || jobs[0].Attempts != 2 || jobs[0].LastError != "timeout" {
			t.Errorf("after second retry: got %+v, want one job with Attempts 2, LastError timeout", jobs)
		}
		wantOutbox(t, db, 1, 0)
	})

	t.Run("expedite", func(t *testing.T) {
		db := mustOpen(t)
		form := mustBootstrap(t, db)
		mustSignup(t, db, form, "ann@example.com")
		mustSignup(t, db, form, "bob@example.com")
		jobs := mustDueJobs(t, db, db.Now())
		if len(jobs) != 2 {
			t.Fatalf("len(DueJobs): got %d, want 2", len(jobs))
		}
		job := jobs[0] // being sent: the worker skips it
		later := db.Now().Add(time.Hour)
		for _, j := range jobs {
			if err := db.RetryJob(t.Context(), j, later, "421 try again later"); err != nil {
				t.Fatalf("RetryJob: %v", err)
			}
		}
		n, err := db.ExpediteRetries(t.Context(), func(id uint64) bool { return id == job.ID })
		if err != nil || n != 1 {
			t.Fatalf("ExpediteRetries: got %d, %v, want 1, nil", n, err)
		}
		due := mustDueJobs(t, db, db.Now())
		if len(due) != 1 || due[0].ID == job.ID || due[0].Attempts != 1 {
			t.Errorf("due after expediting: got %+v, want the job not skipped, its attempt kept", due)
		}
		kept := mustDueJobs(t, db, later)
		if len(kept) != 2 || kept[1].ID != job.ID || !kept[1].NextAt.Equal(later.Truncate(time.Millisecond)) {
			t.Errorf("the skipped job: got %+v, want it still due at %v", kept, later)
		}
		// The skipped job is still found where its reader left it.
		if err := db.FinishJobs(t.Context(), []consent.Job{kept[1]}); err != nil {
			t.Fatal(err)
		}
		wantOutbox(t, db, 1, 0)
	})

	t.Run("park", func(t *testing.T) {
		db, job := setup(t)
		if err := db.ParkJob(t.Context(), job, "550 no such user"); err != nil {
			t.Fatalf("ParkJob: got err %v, want nil", err)
		}
		if got := mustDueJobs(t, db, db.Now().Add(365*24*time.Hour)); len(got) != 0 {
			t.Errorf("DueJobs after park: got %d jobs, want 0", len(got))
		}
		if due, err := db.NextDue(t.Context()); err != nil || !due.IsZero() {
			t.Errorf("NextDue after park: got %v, %v, want zero, nil", due, err)
		}
		wantOutbox(t, db, 0, 1)
	})

	t.Run("finish", func(t *testing.T) {
		db, job := setup(t)
		if err := db.FinishJobs(t.Context(), []consent.Job{job}); err != nil {
			t.Fatalf("FinishJob: got err %v, want nil", err)
		}
		if got := mustDueJobs(t, db, db.Now().Add(time.Hour)); len(got) != 0 {
			t.Errorf("DueJobs after finish: got %d jobs, want 0", len(got))
		}
		if due, err := db.NextDue(t.Context()); err != nil || !due.IsZero() {
			t.Errorf("NextDue after finish: got %v, %v, want zero, nil", due, err)
		}
		wantOutbox(t, db, 0, 0)
	})
}

func TestReopen(t *testing.T) {
	db := mustOpen(t)
	form := mustBootstrap(t, db)
	mustSignup(t, db, form, "ann@example.com")
	sub := mustSubscriber(t, db, "ann@example.com")
	if _, err := db.Confirm(t.Context(), sub.PendingRequest, consent.ConfirmInput{}); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	mustSignup(t, db, form, "bob@example.com")

	db.reopen(t)

	sub = mustSubscriber(t, db, "ann@example.com")
	if s := sub.Subscriptions["news"]; s == nil || s.Status != consent.StatusConfirmed {
		t.Errorf("Subscriptions[news] after reopen: got %+v, want confirmed", s)
	}
	if got := len(mustEvents(t, db, sub.ID)); got != 2 {
		t.Errorf("len(Events) after reopen: got %d, want 2", got)
	}
	jobs := mustDueJobs(t, db, db.Now())
	if len(jobs) != 2 || jobs[1].To != "bob@example.com" {
		t.Errorf("DueJobs after reopen: got %+v, want the 2 confirm jobs", jobs)
	}
	if _, err := db.Form(t.Context(), "newsletter"); err != nil {
		t.Errorf("Form after reopen: got err %v, want nil", err)
	}
	if created, err := db.Bootstrap(t.Context(), consent.Topic{ID: "x"}, consent.Form{ID: "x"}, "h"); err != nil || created {
		t.Errorf("Bootstrap after reopen: got %v, %v, want false, nil", created, err)
	}
	wantLedgerOK(t, db, 3)

	// The chain continues across the reopen.
	mustSignup(t, db, form, "cy@example.com")
	wantLedgerOK(t, db, 4)
}

func TestOpenLocked(t *testing.T) {
	db := mustOpen(t)
	start := time.Now()
	second, err := bolt.Open(db.path, testOptions(db.clock))
	elapsed := time.Since(start)
	if err == nil {
		second.Close()
		t.Fatalf("second Open: got nil error, want ErrLocked")
	}
	if !errors.Is(err, bolt.ErrLocked) {
		t.Errorf("second Open: got %v, want %v", err, bolt.ErrLocked)
	}
	if elapsed > 3*time.Second {
		t.Errorf("second Open took %v, want about 1s", elapsed)
	}

	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	third, err := bolt.Open(db.path, testOptions(db.clock))
	if err != nil {
		t.Fatalf("Open after Close: got err %v, want nil", err)
	}
	third.Close()
}

func seqKey(n uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, n)
	return k
}

// rewriteJSON decodes the ledger event or personal record at key as the
// JSON object it is hashed as, lets edit change it and stores it back in
// the store's encoding.
func rewriteJSON(tx *bbolt.Tx, bucket string, key []byte, edit func(m map[string]any)) error {
	b := tx.Bucket([]byte(bucket))
	var js []byte
	if bucket == "ledger" {
		ev, err := bolttest.ReadEvent(tx, binary.BigEndian.Uint64(key))
		if err != nil {
			return err
		}
		js = ev.LeafData()
	} else {
		var err error
		if js, err = record.PersonalJSON(b.Get(key), record.BucketStrings{B: tx.Bucket([]byte("strings"))}); err != nil {
			return err
		}
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		return err
	}
	edit(m)
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if bucket == "ledger" {
		var ev consent.Event
		if err := json.Unmarshal(v, &ev); err != nil {
			return err
		}
		return bolttest.WriteEvent(tx, &ev)
	}
	if v, err = record.MarshalPersonal(v); err != nil {
		return err
	}
	return b.Put(key, v)
}

func TestVerifyLedgerTampering(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(tx *bbolt.Tx) error
		wantSeq uint64 // 0: the ledger still verifies
		// wantGood is the report's Events: the events that verify before
		// the broken one.
		wantGood uint64
	}{
		{"untouched", func(tx *bbolt.Tx) error { return nil }, 0, 3},
		{"change source of event 1", func(tx *bbolt.Tx) error {
			return rewriteJSON(tx, "ledger", seqKey(1), func(m map[string]any) { m["source"] = "import:forged" })
		}, 1, 0},
		{"change topics of event 2", func(tx *bbolt.Tx) error {
			return rewriteJSON(tx, "ledger", seqKey(2), func(m map[string]any) { m["topics"] = []string{"news", "offers"} })
		}, 2, 1},
		{"change event 2 and recompute its hash", func(tx *bbolt.Tx) error {
			ev, err := bolttest.ReadEvent(tx, 2)
			if err != nil {
				return err
			}
			ev.Type = consent.EventConfirmed
			ev.Hash = ev.ComputeHash()
			return bolttest.WriteEvent(tx, ev)
		}, 3, 2}, // event 3's link to it breaks (the tree keeps no hash of two leaves, which would break at event 2)
		{"undecodable event 2", func(tx *bbolt.Tx) error {
			return tx.Bucket([]byte("ledger")).Put(seqKey(2), []byte("{not json"))
		}, 2, 1},
		{"delete event 2", func(tx *bbolt.Tx) error {
			return tx.Bucket([]byte("ledger")).Delete(seqKey(2))
		}, 3, 1},
		{"delete the last event", func(tx *bbolt.Tx) error {
			return tx.Bucket([]byte("ledger")).Delete(seqKey(3))
		}, 3, 2},
		{"delete the last event and the chain head", func(tx *bbolt.Tx) error {
			if err := tx.Bucket([]byte("ledger")).Delete(seqKey(3)); err != nil {
				return err
			}
			return tx.Bucket([]byte("meta")).Delete([]byte("ledger_head"))
		}, 2, 2},
		{"change email in personal record 2", func(tx *bbolt.Tx) error {
			return rewriteJSON(tx, "ledger_pii", seqKey(2), func(m map[string]any) { m["email"] = "mallory@example.com" })
		}, 2, 1},
		{"change a stored tree hash", func(tx *bbolt.Tx) error {
			// The hash of events 1 and 2, stored with record 1 (event 2).
			return tx.Bucket([]byte("ledger_nodes")).Put(seqKey(1), make([]byte, 32))
		}, 2, 2},
		{"erase personal record 1", func(tx *bbolt.Tx) error {
			return tx.Bucket([]byte("ledger_pii")).Delete(seqKey(1))
		}, 0, 3},
		{"erase all personal records", func(tx *bbolt.Tx) error {
			b := tx.Bucket([]byte("ledger_pii"))
			for n := uint64(1); n <= 3; n++ {
				if err := b.Delete(seqKey(n)); err != nil {
					return err
				}
			}
			return nil
		}, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _, ann := ledgerFixture(t)
			wantLedgerOK(t, db, 3)

			rawUpdate(t, db, tt.tamper)

			rep, err := db.VerifyLedger(t.Context())
			if err != nil {
				t.Fatalf("VerifyLedger: got err %v, want nil", err)
			}
			if tt.wantSeq == 0 {
				if !rep.OK || rep.Broken != nil || rep.Events != 3 {
					t.Errorf("VerifyLedger: got %+v, want OK with 3 events", rep)
				}
				if evs := mustEvents(t, db, ann.ID); len(evs) != 2 {
					t.Errorf("len(Events): got %d, want 2", len(evs))
				}
				return
			}
			if rep.OK {
				t.Errorf("VerifyLedger.OK: got true, want false")
			}
			if rep.Broken == nil {
				t.Fatalf("VerifyLedger.Broken: got nil, want seq %d", tt.wantSeq)
			}
			if got, want := rep.Broken.Seq, tt.wantSeq; got != want {
				t.Errorf("Broken.Seq: got %d, want %d (%s)", got, want, rep.Broken.Reason)
			}
			if rep.Events != tt.wantGood {
				t.Errorf("Events: got %d, want %d good events before the break", rep.Events, tt.wantGood)
			}
		})
	}
}

func TestEventsAfterErasure(t *testing.T) {
	db := mustOpen(t)
	form := mustBootstrap(t, db)
	mustSignup(t, db, form, "ann@example.com")
	sub := mustSubscriber(t, db, "ann@example.com")
	if _, err := db.Confirm(t.Context(), sub.PendingRequest, consent.ConfirmInput{}); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	rawUpdate(t, db, func(tx *bbolt.Tx) error { return tx.Bucket([]byte("ledger_pii")).Delete(seqKey(1)) })

	evs := mustEvents(t, db, sub.ID)
	if len(evs) != 2 {
		t.Fatalf("len(Events): got %d, want 2", len(evs))
	}
	if evs[0].Personal != nil {
		t.Errorf("Events[0].Personal: got %+v, want nil after erasure", *evs[0].Personal)
	}
	if evs[0].PersonalDigest == "" {
		t.Errorf("Events[0].PersonalDigest: got empty, want the digest kept")
	}
	if evs[1].Personal == nil {
		t.Errorf("Events[1].Personal: got nil, want the record")
	}
	wantLedgerOK(t, db, 2)
}

func TestOpenRejectsShortHMACKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "optin.db")
	clk := newClock()
	o := testOptions(clk)
	o.HMACKey = testHMACKey[:31]
	if db, err := bolt.Open(path, o); err == nil {
		db.Close()
		t.Fatalf("Open with a 31-byte HMACKey: got nil error, want an error")
	}
	// The failed Open must not leave the file locked.
	mustOpenAt(t, path, clk)
}

func TestAddressHash(t *testing.T) {
	db := mustOpen(t)
	ann := db.AddressHash(mustAddress(t, "Ann@Example.com"))
	if len(ann) != 64 {
		t.Errorf("len(AddressHash): got %d, want 64 hex digits", len(ann))
	}
	if got := db.AddressHash(mustAddress(t, "ANN@example.COM")); got != ann {
		t.Errorf("AddressHash of the same address in other case: got %s, want %s", got, ann)
	}
	if got := db.AddressHash(mustAddress(t, "bob@example.com")); got == ann {
		t.Errorf("AddressHash of another address: got %s, the same as ann's", got)
	}

	other := &testDB{clock: db.clock, path: filepath.Join(t.TempDir(), "other.db")}
	o := testOptions(db.clock)
	o.HMACKey = []byte("another-key-0123456789abcdefghij")
	odb, err := bolt.Open(other.path, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer odb.Close()
	if got := odb.AddressHash(mustAddress(t, "Ann@Example.com")); got == ann {
		t.Errorf("AddressHash under another key: got %s, the same as under the test key", got)
	}

	db.reopen(t)
	if got := db.AddressHash(mustAddress(t, "Ann@Example.com")); got != ann {
		t.Errorf("AddressHash after reopen: got %s, want %s", got, ann)
	}
}

// TestConfirmLiftsOwnSuppressions checks in the store that a completed
// double opt-in lifts the person's own opt-outs for the confirmed topics and
// for every topic, never an operator's entry nor one for another topic. The
// store has no API to add suppressions yet, so they are written to the file.
func TestConfirmLiftsOwnSuppressions(t *testing.T) {
	tests := []struct {
		name string
		// entries maps scope to reason; lifted lists the scopes a confirm of
		// "news" must remove.
		entries map[string]string
		lifted  []string
	}{
		{"own opt-outs", map[string]string{"news": consent.ReasonUnsubscribed, consent.ScopeAll: consent.ReasonUnsubscribed,
			"other": consent.ReasonUnsubscribed}, []string{"news", consent.ScopeAll}},
		{"erased", map[string]string{consent.ScopeAll: consent.ReasonErased}, []string{consent.ScopeAll}},
		{"operator blocks stay", map[string]string{"news": consent.ReasonAdmin, consent.ScopeAll: consent.ReasonAdmin}, nil},
		{"mixed", map[string]string{"news": consent.ReasonAdmin, consent.ScopeAll: consent.ReasonUnsubscribed}, []string{consent.ScopeAll}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := mustOpen(t)
			form := mustBootstrap(t, db)
			mustSignup(t, db, form, "Ann@example.com")
			// Suppressions are keyed by the address hash; a differently
			// cased signup address must hit the same entries.
			h := db.AddressHash(mustAddress(t, "ann@EXAMPLE.com"))
			reqID := mustSubscriber(t, db, "ann@example.com").PendingRequest
			key := func(scope string) []byte { return append(append([]byte(h), 0), scope...) }

			rawUpdate(t, db, func(tx *bbolt.Tx) error {
				b := tx.Bucket([]byte("suppressions"))
				for scope, reason := range tt.entries {
					v, err := json.Marshal(consent.Suppression{Hash: h, Scope: scope, Reason: reason, Source: "test"})
					if err != nil {
						return err
					}
					if err := b.Put(key(scope), v); err != nil {
						return err
					}
				}
				return nil
			})
			if _, err := db.Confirm(t.Context(), reqID, consent.ConfirmInput{}); err != nil {
				t.Fatalf("Confirm: got err %v, want nil", err)
			}
			rawUpdate(t, db, func(tx *bbolt.Tx) error {
				b := tx.Bucket([]byte("suppressions"))
				for scope := range tt.entries {
					gotKept := b.Get(key(scope)) != nil
					if wantKept := !slices.Contains(tt.lifted, scope); gotKept != wantKept {
						t.Errorf("suppression %q (%s) kept: got %v, want %v", scope, tt.entries[scope], gotKept, wantKept)
					}
				}
				return nil
			})
		})
	}
}

// rawUpdate closes db, runs fn in a bbolt transaction on its file and opens
// the store again.
func rawUpdate(t *testing.T, db *testDB, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	raw, err := bbolt.Open(db.path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("bbolt.Open: %v", err)
	}
	err = raw.Update(fn)
	if cerr := raw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("raw update: %v", err)
	}
	db.DB = mustOpenAt(t, db.path, db.clock)
}
