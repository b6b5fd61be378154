package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"optin/internal/consent"
	"optin/internal/postgres"
	"optin/internal/testclock"
)

// Tests of what the conformance suite cannot see: several stores on one
// database, as several optin instances run, and the schema.

var testHMACKey = []byte("0123456789abcdef0123456789abcdef")

// open opens a store on the database at url with clock now and the test
// HMAC key (nil: the database's own), closed when t ends.
func open(t *testing.T, url string, now func() time.Time, key []byte) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(t.Context(), url, postgres.Options{Now: now, HMACKey: key})
	if err != nil {
		t.Fatalf("Open: got err %v, want nil", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: got err %v, want nil", err)
		}
	})
	return db
}

// databaseAt returns the URL of a new database whose schema an older
// optin left at version.
func databaseAt(t *testing.T, version int) string {
	t.Helper()
	url := pg.EmptyDatabase(t)
	if err := postgres.MigrateTo(t.Context(), url, version); err != nil {
		t.Fatal(err)
	}
	return url
}

// bootstrap gives the store the news topic and newsletter form.
func bootstrap(t *testing.T, db consent.Store) consent.Form {
	t.Helper()
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en", Wording: map[string]string{"en": "Yes"}, WordingVersion: 1}
	if _, err := db.Bootstrap(t.Context(), consent.Topic{ID: "news", Name: "News"}, form, ""); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	return form
}

// signupsAtOnce signs each people up on each of stores, from workers
// goroutines per store at once, and waits for them all.
func signupsAtOnce(t *testing.T, stores []*postgres.DB, form *consent.Form, prefix string, each, workers int) {
	t.Helper()
	var wg sync.WaitGroup
	for i, db := range stores {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range each / workers {
					signup(t, db, form, fmt.Sprintf("%s%d-%d-%d@example.com", prefix, i, w, j))
				}
			}()
		}
	}
	wg.Wait()
}

func signup(t *testing.T, db consent.Store, form *consent.Form, email string) {
	t.Helper()
	a, err := consent.ParseAddress(email)
	if err != nil {
		t.Fatal(err)
	}
	in := consent.SignupInput{Form: form, Address: a, Locale: "en", Topics: []string{"news"}, IP: "192.0.2.1"}
	res, err := db.Signup(context.Background(), in, form.WordingFor("en", nil, "Yes", ""))
	if err != nil || !res.Queued {
		t.Errorf("Signup(%s): got %+v, %v, want a queued mail", email, res, err)
	}
}

// TestMigrateTogether starts two stores at once on an empty database:
// both come up, on one schema at this optin's version.
func TestMigrateTogether(t *testing.T) {
	url := pg.EmptyDatabase(t)
	empty, err := postgres.ReadStatus(t.Context(), url)
	if err != nil || empty.Current != 0 || empty.Latest != postgres.SchemaVersion() || empty.Pending < 1 {
		t.Fatalf("ReadStatus of an empty database: got %+v, %v, want version 0 of %d, migrations pending", empty, err, postgres.SchemaVersion())
	}
	var wg sync.WaitGroup
	dbs := make([]*postgres.DB, 2)
	errs := make([]error, 2)
	for i := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dbs[i], errs[i] = postgres.Open(context.Background(), url, postgres.Options{HMACKey: testHMACKey})
		}()
	}
	wg.Wait()
	for i, db := range dbs {
		if errs[i] != nil {
			t.Fatalf("Open %d: got err %v, want nil", i, errs[i])
		}
		defer db.Close()
	}
	st, err := postgres.ReadStatus(t.Context(), url)
	if err != nil || st.Current != postgres.SchemaVersion() || st.Latest != postgres.SchemaVersion() || st.Pending != 0 {
		t.Errorf("ReadStatus after two starts: got %+v, %v, want version %d", st, err, postgres.SchemaVersion())
	}
	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil || n != empty.Pending {
		t.Errorf("schema_migrations: got %d rows, %v, want one per migration (%d)", n, err, empty.Pending)
	}
	bootstrap(t, dbs[0])
	if topics, err := dbs[1].Topics(t.Context()); err != nil || len(topics) != 1 {
		t.Errorf("Topics on the other store: got %v, %v, want the one topic", topics, err)
	}
}

// TestNewerSchemaRefused: a database migrated by a newer optin is not
// opened by this one.
func TestNewerSchemaRefused(t *testing.T) {
	url := pg.Database(t)
	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(t.Context(), "INSERT INTO schema_migrations (version, name) VALUES ($1, 'future.sql')", postgres.SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(t.Context(), url, postgres.Options{HMACKey: testHMACKey})
	if err == nil {
		db.Close()
		t.Fatal("Open of a newer schema: got nil error, want one")
	}
	if !strings.Contains(err.Error(), "newer than this optin") {
		t.Errorf("Open of a newer schema: got %v, want it to say the schema is newer", err)
	}
}

// TestMigrationLandingLate: a version the database lacks below its
// highest one (work done in parallel may land in any order) is applied
// at the next start.
func TestMigrationLandingLate(t *testing.T) {
	url := pg.Database(t)
	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// As if this database had been migrated before 0002 landed.
	if _, err := pool.Exec(t.Context(), "DROP TABLE incidents, sessions; DELETE FROM schema_migrations WHERE version = 2"); err != nil {
		t.Fatal(err)
	}
	if st, err := postgres.ReadStatus(t.Context(), url); err != nil || st.Pending != 1 || st.Current != postgres.SchemaVersion() {
		t.Fatalf("ReadStatus: got %+v, %v, want one migration pending at version %d", st, err, postgres.SchemaVersion())
	}
	db := open(t, url, nil, testHMACKey)
	if _, err := db.Incident(t.Context(), "nope"); consent.ErrorCode(err) != consent.ENotFound {
		t.Errorf("Incident after the start: got err %v, want ENotFound (the incidents table is back)", err)
	}
	if st, err := postgres.ReadStatus(t.Context(), url); err != nil || st.Pending != 0 {
		t.Errorf("ReadStatus after the start: got %+v, %v, want nothing pending", st, err)
	}
}

// TestSynchronousCommitOn: a database set to synchronous_commit off
// still gets durable commits from optin's sessions.
func TestSynchronousCommitOn(t *testing.T) {
	url := pg.Database(t)
	name := url[strings.LastIndexByte(url, '/')+1 : strings.IndexByte(url, '?')]
	if err := pg.Exec("postgres", "ALTER DATABASE "+name+" SET synchronous_commit = off"); err != nil {
		t.Fatal(err)
	}
	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var sc string
	if err := pool.QueryRow(t.Context(), "SHOW synchronous_commit").Scan(&sc); err != nil || sc != "on" {
		t.Errorf("synchronous_commit: got %q, %v, want on", sc, err)
	}
}

// TestSharedSecret: stores without a configured HMAC key share the one
// the first generated, so every instance recognises the same suppressed
// addresses.
func TestSharedSecret(t *testing.T) {
	url := pg.Database(t)
	a := open(t, url, nil, nil)
	b := open(t, url, nil, nil)
	addr, _ := consent.ParseAddress("ann@example.com")
	if ha, hb := a.AddressHash(addr), b.AddressHash(addr); ha != hb {
		t.Errorf("AddressHash on two stores: got %s and %s, want the same", ha, hb)
	}
	configured := open(t, url, nil, testHMACKey)
	if configured.AddressHash(addr) == a.AddressHash(addr) {
		t.Error("a configured HMAC key: got the database's key, want the configured one")
	}
	ka, err := a.Secret(t.Context(), "token_key_k1")
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.Secret(t.Context(), "token_key_k1")
	if err != nil || string(ka) != string(kb) || len(ka) != 32 {
		t.Errorf("Secret on two stores: got %x and %x (%v), want the same 32 bytes", ka, kb, err)
	}
}

// TestLedgerAcrossInstances signs people up through two stores at once:
// the events of both form one chain in one order.
func TestLedgerAcrossInstances(t *testing.T) {
	url := pg.Database(t)
	stores := []*postgres.DB{open(t, url, nil, testHMACKey), open(t, url, nil, testHMACKey)}
	form := bootstrap(t, stores[0])
	const each = 25
	signupsAtOnce(t, stores, &form, "p", each, each)
	for i, db := range stores {
		rep, err := db.VerifyLedger(t.Context())
		if err != nil || !rep.OK || rep.Events != 2*each {
			t.Errorf("VerifyLedger on store %d: got %+v, %v, want OK with %d events", i, rep, err, 2*each)
		}
	}
	counts, last, err := stores[1].LedgerCounts(t.Context(), 0)
	if err != nil || last != 2*each || counts[consent.EventRequested] != 2*each {
		t.Errorf("LedgerCounts: got %v, %d, %v, want %d requested events", counts, last, err, 2*each)
	}
}

// TestOutboxLease: a job one store handed out is not handed out by
// another until the lease runs out; the outcome of a store that lost its
// lease changes nothing; closing a store hands its leases back.
func TestOutboxLease(t *testing.T) {
	url := pg.Database(t)
	clock := testclock.At(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	a := open(t, url, clock.Now, testHMACKey)
	b, err := postgres.Open(t.Context(), url, postgres.Options{Now: clock.Now, HMACKey: testHMACKey, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	form := bootstrap(t, a)
	for i := range 3 {
		signup(t, a, &form, fmt.Sprintf("m%d@example.com", i))
	}
	ctx := t.Context()
	now := clock.Now()
	jobs, err := b.DueJobs(ctx, now, 10, nil)
	if err != nil || len(jobs) != 3 {
		t.Fatalf("DueJobs on b: got %d jobs, %v, want 3", len(jobs), err)
	}
	if again, err := b.DueJobs(ctx, now, 10, nil); err != nil || len(again) != 3 {
		t.Errorf("DueJobs on b again: got %d jobs, %v, want its own 3 (its worker skips those in flight)", len(again), err)
	}
	if other, err := a.DueJobs(ctx, now, 10, nil); err != nil || len(other) != 0 {
		t.Errorf("DueJobs on a while b holds them: got %d jobs, %v, want 0", len(other), err)
	}
	if next, err := a.NextDue(ctx); err != nil || !next.Equal(now.Add(time.Minute)) {
		t.Errorf("NextDue on a: got %v, %v, want the end of b's lease %v", next, err, now.Add(time.Minute))
	}

	clock.Advance(time.Minute) // b's lease ran out: b died, say
	taken, err := a.DueJobs(ctx, clock.Now(), 10, nil)
	if err != nil || len(taken) != 3 {
		t.Fatalf("DueJobs on a after b's lease ended: got %d jobs, %v, want 3", len(taken), err)
	}
	if err := b.RetryJob(ctx, jobs[0], clock.Now().Add(time.Hour), "421 later"); err != nil {
		t.Fatal(err)
	}
	if err := b.ParkJob(ctx, jobs[1], "550 no"); err != nil {
		t.Fatal(err)
	}
	if again, err := a.DueJobs(ctx, clock.Now(), 10, nil); err != nil || len(again) != 3 || again[0].Attempts != 0 {
		t.Errorf("DueJobs on a after b's late outcomes: got %+v, %v, want the 3 jobs unchanged", again, err)
	}
	if q, p, err := a.OutboxDepth(ctx); err != nil || q != 3 || p != 0 {
		t.Errorf("OutboxDepth: got %d, %d, %v, want 3 queued, none parked", q, p, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// a closes: its leases go back at once, and a third store takes them.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	c := open(t, url, clock.Now, testHMACKey)
	if got, err := c.DueJobs(ctx, clock.Now(), 10, nil); err != nil || len(got) != 3 {
		t.Errorf("DueJobs after a closed: got %d jobs, %v, want 3", len(got), err)
	}
}

// TestOutboxNoJobTwice drains one outbox with two stores' DueJobs at once,
// each finishing what it took: no job is handed to both.
func TestOutboxNoJobTwice(t *testing.T) {
	url := pg.Database(t)
	stores := []*postgres.DB{open(t, url, nil, testHMACKey), open(t, url, nil, testHMACKey)}
	form := bootstrap(t, stores[0])
	const total = 120
	for i := range total {
		signup(t, stores[i%2], &form, fmt.Sprintf("q%d@example.com", i))
	}
	var mu sync.Mutex
	handed := map[uint64]int{}
	var wg sync.WaitGroup
	for _, db := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				jobs, err := db.DueJobs(context.Background(), time.Now(), 7, nil)
				if err != nil {
					t.Errorf("DueJobs: %v", err)
					return
				}
				if len(jobs) == 0 {
					return
				}
				mu.Lock()
				for _, j := range jobs {
					handed[j.ID]++
				}
				mu.Unlock()
				if err := db.FinishJobs(context.Background(), jobs); err != nil {
					t.Errorf("FinishJobs: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(handed) != total {
		t.Errorf("jobs handed out: got %d, want %d", len(handed), total)
	}
	for id, n := range handed {
		if n != 1 {
			t.Errorf("job %d: handed out %d times, want once", id, n)
		}
	}
}

// TestReadOnly: a read-only store opens only a database optin has set
// up, reads it, and refuses every write.
func TestReadOnly(t *testing.T) {
	empty := pg.EmptyDatabase(t)
	if db, err := postgres.Open(t.Context(), empty, postgres.Options{ReadOnly: true}); err == nil {
		db.Close()
		t.Fatal("read-only Open of an empty database: got nil error, want one")
	} else if !strings.Contains(err.Error(), "no optin schema") {
		t.Errorf("read-only Open of an empty database: got %v, want it to say there is no schema", err)
	}
	url := pg.Database(t)
	rw := open(t, url, nil, nil)
	form := bootstrap(t, rw)
	signup(t, rw, &form, "ann@example.com")
	ro, err := postgres.Open(t.Context(), url, postgres.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only Open: got err %v, want nil", err)
	}
	defer ro.Close()
	addr, _ := consent.ParseAddress("ann@example.com")
	if ro.AddressHash(addr) != rw.AddressHash(addr) {
		t.Error("read-only store: got another HMAC key than the database's")
	}
	if rep, err := ro.VerifyLedger(t.Context()); err != nil || !rep.OK || rep.Events != 1 {
		t.Errorf("VerifyLedger read-only: got %+v, %v, want OK with 1 event", rep, err)
	}
	if _, err := ro.CreateTopic(t.Context(), consent.CLIActor(), consent.Topic{ID: "offers", Name: "Offers"}); !errors.Is(err, postgres.ErrReadOnly) {
		t.Errorf("CreateTopic read-only: got %v, want ErrReadOnly", err)
	}
	if _, err := ro.Secret(t.Context(), "never-made"); err == nil {
		t.Error("Secret read-only of a missing name: got nil error, want one")
	}
	if topics, err := rw.Topics(t.Context()); err != nil || len(topics) != 1 {
		t.Errorf("Topics after the refused write: got %v, %v, want the one topic", topics, err)
	}
}

// TestLimitsShared: two instances spend one budget: what one took, the
// other cannot take again, and a proof-of-work nonce one used is used for
// both.
func TestLimitsShared(t *testing.T) {
	url := pg.EmptyDatabase(t)
	a := open(t, url, nil, testHMACKey)
	b := open(t, url, nil, testHMACKey)
	r := consent.TokenRate{PerSecond: 1.0 / 60, Burst: 2}
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, db := range []*postgres.DB{a, b, a, b} {
		ok, _, err := db.TakeToken(t.Context(), "signup:198.51.100.7", r, now)
		if want := i < 2; err != nil || ok != want {
			t.Errorf("take #%d (instance %c): got %v, %v, want %v, nil", i+1, 'a'+i%2, ok, err, want)
		}
	}
	if spent, _, err := b.TokenSpent(t.Context(), "signup:198.51.100.7", r, now); err != nil || !spent {
		t.Errorf("TokenSpent on the other instance: got %v, %v, want true, nil", spent, err)
	}
	exp := now.Add(5 * time.Minute)
	if ok, err := a.SpendNonce(t.Context(), "challenge-1", now, exp); err != nil || !ok {
		t.Fatalf("SpendNonce on a: got %v, %v, want true, nil", ok, err)
	}
	if ok, err := b.SpendNonce(t.Context(), "challenge-1", now, exp); err != nil || ok {
		t.Errorf("SpendNonce of the same nonce on b: got %v, %v, want false, nil", ok, err)
	}
}

// TestConvertChainOnlyLedger: events written before the ledger was a
// Merkle tree get their tree hashes when an instance starts, every event
// kept in its order, and the tree is the one a store that always had it
// holds.
func TestConvertChainOnlyLedger(t *testing.T) {
	url := pg.Database(t)
	db, err := postgres.Open(t.Context(), url, postgres.Options{HMACKey: testHMACKey})
	if err != nil {
		t.Fatal(err)
	}
	form := bootstrap(t, db)
	for _, addr := range []string{"ann@example.com", "bob@example.com", "cy@example.com"} {
		signup(t, db, &form, addr)
	}
	want, err := db.LedgerTree(t.Context())
	if err != nil || want.N != 3 {
		t.Fatalf("LedgerTree: got %+v, %v, want 3 events", want, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(t.Context(), "UPDATE ledger SET tree = NULL; UPDATE ledger_head SET tree_size = 0")
	pool.Close()
	if err != nil {
		t.Fatal(err)
	}

	db = open(t, url, nil, testHMACKey)
	if got, err := db.LedgerTree(t.Context()); err != nil || got != want {
		t.Errorf("LedgerTree after conversion: got %+v, %v, want %+v", got, err, want)
	}
	if rep, err := db.VerifyLedger(t.Context(), want); err != nil || !rep.OK || rep.Events != 3 {
		t.Errorf("VerifyLedger after conversion: got %+v, %v, want OK with 3 events", rep, err)
	}
	signup(t, db, &form, "di@example.com")
	if rep, err := db.VerifyLedger(t.Context(), want); err != nil || !rep.OK || rep.Events != 4 {
		t.Errorf("VerifyLedger after one more signup: got %+v, %v, want OK with 4 events", rep, err)
	}
}

// TestLedgerNotReadWhole: two stores signing people up at once each find
// the ledger's tree edge moved by the other and read the hashes they
// need from its events (readHashes), which look the events up by their
// seq. With a plain join of each event with the one before it they read
// the ledger whole (867 whole reads in a 10 s run of two instances),
// which on a ledger of millions would take seconds a transaction.
func TestLedgerNotReadWhole(t *testing.T) {
	url := pg.EmptyDatabase(t)
	stores := []*postgres.DB{open(t, url, nil, testHMACKey), open(t, url, nil, testHMACKey)}
	form := bootstrap(t, stores[0])
	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// A few hundred events first, and the ledger's statistics, as
	// autovacuum would have them on a ledger that is not new: on the
	// first few hundred rows, before any statistics, a lookup of a few
	// seqs can be planned as a scan of the table, which reads little
	// then and is not the fault this test is about.
	signupsAtOnce(t, stores, &form, "warm", 400, 8)
	if _, err := pool.Exec(t.Context(), "ANALYZE ledger"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(t.Context(), "SELECT pg_stat_reset_single_table_counters('ledger'::regclass)"); err != nil {
		t.Fatal(err)
	}
	const each = 2000
	signupsAtOnce(t, stores, &form, "p", each, 8)
	read := seqRead(t, pool, []string{"ledger"})["ledger"]
	// The fault read the ledger whole at nearly every transaction of the
	// other instance (hundreds of times here). A plan may read it whole
	// once or twice (12 local runs, 2026-12-03: 0 rows read in 11, 255 in
	// one; one CI run read 4,050), which is not that fault.
	if read > 3*2*each {
		t.Errorf("rows of the ledger read by sequential scans during %d signups: got %d, want fewer than three reads of the whole ledger", 2*each, read)
	}
}

// holdWriteLock takes the stores' write lock as another instance's
// transaction would, until release (or the test's end).
func holdWriteLock(t *testing.T, pool *pgxpool.Pool) (release func()) {
	t.Helper()
	holder, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Rollback(context.Background()) })
	if _, err := holder.Exec(t.Context(), "SELECT pg_advisory_xact_lock($1)", postgres.WriteLock); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := holder.Rollback(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// waitForLock waits until a transaction waits for the write lock.
func waitForLock(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for waiting := false; !waiting; {
		if time.Now().After(deadline) {
			t.Fatal("the store's transaction never waited for the write lock")
		}
		if err := pool.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)").Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBatchJoinsWhileLocked: the signups that reach a store while its
// transaction waits for the write lock (another instance's transaction
// holds it) join that transaction instead of waiting for the lock once
// more in one of their own: all of them land in one transaction (one
// xmin of their ledger rows).
func TestBatchJoinsWhileLocked(t *testing.T) {
	db, form, pool := newStore(t)
	release := holdWriteLock(t, pool)
	var wg sync.WaitGroup
	signupAsync := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			signup(t, db, &form, fmt.Sprintf("w%d@example.com", i))
		}()
	}
	signupAsync(0)
	waitForLock(t, pool)
	const more = 9
	for i := 1; i <= more; i++ {
		signupAsync(i)
	}
	time.Sleep(300 * time.Millisecond) // they reach the committer
	release()
	wg.Wait()
	var events, transactions int
	if err := pool.QueryRow(t.Context(), "SELECT count(*), count(DISTINCT xmin::text) FROM ledger").Scan(&events, &transactions); err != nil {
		t.Fatal(err)
	}
	if events != more+1 || transactions != 1 {
		t.Errorf("ledger: got %d events in %d transactions, want %d in 1", events, transactions, more+1)
	}
}

// TestGivenUpCallSpoilsNoBatch: a write whose caller gives up after the
// committer took it, before its turn in the batch, is answered with its
// context's error and left out; the other writes of the batch run once
// and commit, instead of being rolled back and run again without it.
func TestGivenUpCallSpoilsNoBatch(t *testing.T) {
	db, _, pool := newStore(t)
	release := holdWriteLock(t, pool)
	gone, giveUp := context.WithCancel(t.Context())
	defer giveUp()
	var runs [3]atomic.Int32
	var errs [3]error
	var wg sync.WaitGroup
	update := func(i int, ctx context.Context, fn func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.Update(ctx, func() { runs[i].Add(1); fn() })
		}()
	}
	// The first write gives the second up as it runs: the second's turn
	// comes after it in their batch.
	update(0, context.Background(), giveUp)
	waitForLock(t, pool)
	update(1, gone, func() {})
	time.Sleep(100 * time.Millisecond) // in this order
	update(2, context.Background(), func() {})
	time.Sleep(300 * time.Millisecond) // they reach the committer
	release()
	wg.Wait()
	want := [3]int32{1, 0, 1}
	for i := range runs {
		if got := runs[i].Load(); got != want[i] {
			t.Errorf("write %d ran %d times, want %d", i, got, want[i])
		}
	}
	if errs[0] != nil || !errors.Is(errs[1], context.Canceled) || errs[2] != nil {
		t.Errorf("answers: %v, want nil, context.Canceled, nil", errs)
	}
}
