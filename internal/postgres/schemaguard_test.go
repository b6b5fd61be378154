package postgres_test

import (
	"context"
	"crypto/rand"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"optin/internal/consent"
	"optin/internal/postgres"
)

// Tests of the schema guard: an instance still running when a newer
// optin migrated the database writes nothing more.

// recordVersion records version in schema_migrations from another
// connection, as a newer optin's migration does; with notify it also
// sends the notification that migration sends at its commit.
func recordVersion(t *testing.T, pool *pgxpool.Pool, version int, notify bool) {
	t.Helper()
	sql := "INSERT INTO schema_migrations (version, name) VALUES ($1, 'a newer optin')"
	if notify {
		sql = "WITH i AS (" + sql + " RETURNING version) SELECT pg_notify('optin_schema', version::text) FROM i"
	}
	if _, err := pool.Exec(t.Context(), sql, version); err != nil {
		t.Fatal(err)
	}
}

// refused reports whether err is the guard's: unavailable (503), saying
// the schema holds a version this optin does not know.
func refused(err error) bool {
	return consent.ErrorCode(err) == consent.EUnavailable && err != nil && strings.Contains(err.Error(), "does not know")
}

// count returns the one number sql selects.
func count(t *testing.T, pool *pgxpool.Pool, sql string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestWritesStopWhenSchemaMoves: once a newer optin recorded a version
// this one does not know (its migration committed), this instance's
// writes fail as unavailable, its mail worker's and webhook worker's
// reads lease nothing, its limits refuse (fail closed), and nothing is
// written: the first write after the migration sees it, without any
// notification. Three instances see it each through its own first
// write or lease.
func TestWritesStopWhenSchemaMoves(t *testing.T) {
	url := pg.EmptyDatabase(t)
	db, form, pool := newStoreAt(t, url)
	mailer, hooker := open(t, url, nil, testHMACKey), open(t, url, nil, testHMACKey)
	ctx := t.Context()
	signup(t, db, &form, "before@example.com")
	w, err := consent.NewWebhook(rand.Reader, consent.WebhookInput{URL: "https://crm.example/hook", Events: consent.WebhookEvents, Scope: consent.ScopeEvidence})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateWebhook(ctx, consent.Actor{Name: "test"}, w); err != nil {
		t.Fatal(err)
	}
	if err := db.QueueHead(ctx, "head"); err != nil {
		t.Fatal(err)
	}
	if db.SchemaMoved() != nil {
		t.Fatalf("SchemaMoved before any migration: got %v, want nil", db.SchemaMoved())
	}
	recordVersion(t, pool, 9999, false)

	later := time.Now().Add(time.Hour)
	if jobs, err := mailer.DueJobs(ctx, later, 10, nil); len(jobs) != 0 || !refused(err) {
		t.Errorf("DueJobs after the migration: got %d jobs, %v, want none and the guard's error", len(jobs), err)
	}
	if ds, err := hooker.DueDeliveries(ctx, later, 10, nil); len(ds) != 0 || !refused(err) {
		t.Errorf("DueDeliveries after the migration: got %d, %v, want none and the guard's error", len(ds), err)
	}
	a, err := consent.ParseAddress("after@example.com")
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Locale: "en", Topics: []string{"news"}, IP: "192.0.2.1"},
		form.WordingFor("en", nil, "Yes", ""))
	if !refused(err) {
		t.Errorf("Signup after the migration: got %v, want an unavailable error naming the unknown version", err)
	}
	for i, s := range []*postgres.DB{db, mailer, hooker} {
		if ok, _, err := s.TakeToken(ctx, "signup:192.0.2.9", consent.TokenRate{PerSecond: 1, Burst: 5}, time.Now()); ok || !refused(err) {
			t.Errorf("instance %d: TakeToken after the migration: got %v, %v, want refused with the guard's error", i, ok, err)
		}
		if ok, err := s.SpendNonce(ctx, "pow:n", time.Now(), time.Now().Add(time.Minute)); ok || !refused(err) {
			t.Errorf("instance %d: SpendNonce after the migration: got %v, %v, want refused with the guard's error", i, ok, err)
		}
		if err := s.SchemaMoved(); !refused(err) || !strings.Contains(err.Error(), "9999") {
			t.Errorf("instance %d: SchemaMoved: got %v, want the guard's error naming 9999", i, err)
		}
	}
	for sql, want := range map[string]int{
		"SELECT count(*) FROM subscribers":                                 1,
		"SELECT count(*) FROM outbox WHERE lease_owner IS NOT NULL":        0,
		"SELECT count(*) FROM webhook_queue WHERE lease_owner IS NOT NULL": 0,
		"SELECT count(*) FROM limit_buckets":                               0,
		"SELECT count(*) FROM spent_nonces":                                0,
	} {
		if got := count(t, pool, sql); got != want {
			t.Errorf("%s: got %d, want %d", sql, got, want)
		}
	}
	if count(t, pool, "SELECT count(*) FROM outbox") != 1 || count(t, pool, "SELECT count(*) FROM webhook_queue") != 1 {
		t.Errorf("the queues: want the mail and the delivery of before, still there for the newer optin")
	}
}

// TestSchemaMovedNotified: an instance that writes nothing learns of the
// migration from its notification: the task it leads (a sweep) ends,
// and its limits refuse from then on.
func TestSchemaMovedNotified(t *testing.T) {
	url := pg.Database(t)
	db := open(t, url, nil, testHMACKey)
	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	rate := consent.TokenRate{PerSecond: 1, Burst: 5}
	if ok, _, err := db.TakeToken(t.Context(), "k", rate, time.Now()); !ok || err != nil {
		t.Fatalf("TakeToken before: got %v, %v, want a token", ok, err)
	}
	// The listener must be listening before the migration commits.
	deadline := time.Now().Add(10 * time.Second)
	for count(t, pool, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN optin_schema'") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the store does not listen on optin_schema")
		}
		time.Sleep(10 * time.Millisecond)
	}
	led, ended := make(chan struct{}), make(chan struct{})
	leadCtx, stop := context.WithCancel(t.Context())
	defer stop()
	go db.Lead(leadCtx, "sweep", func(ctx context.Context) {
		close(led)
		<-ctx.Done()
		close(ended)
	})
	select {
	case <-led:
	case <-time.After(10 * time.Second):
		t.Fatal("Lead: the task did not start")
	}
	recordVersion(t, pool, 9999, true)
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Error("Lead: the task still runs 5 s after the migration, want it ended")
	}
	for db.SchemaMoved() == nil {
		if time.Now().After(deadline) {
			t.Fatal("SchemaMoved: still nil 10 s after the migration's notification")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ok, _, err := db.TakeToken(t.Context(), "k", rate, time.Now()); ok || !refused(err) {
		t.Errorf("TakeToken after the notification: got %v, %v, want refused with the guard's error", ok, err)
	}
}

// TestSchemaGapSeen: a version this optin lacks below its highest (work
// done in parallel landed in another order, and a newer optin applied
// it) stops the writes of a running instance, and a new start refuses
// the database, as a higher version does.
func TestSchemaGapSeen(t *testing.T) {
	url := pg.EmptyDatabase(t)
	db, form, pool := newStoreAt(t, url)
	gap := 0
	for v := 1; v < postgres.SchemaVersion(); v++ {
		if count(t, pool, "SELECT count(*) FROM schema_migrations WHERE version = "+strconv.Itoa(v)) == 0 {
			gap = v
			break
		}
	}
	if gap == 0 {
		t.Skip("this optin's migrations skip no number")
	}
	recordVersion(t, pool, gap, false)
	a, _ := consent.ParseAddress("after@example.com")
	_, err := db.Signup(t.Context(), consent.SignupInput{Form: &form, Address: a, Locale: "en", Topics: []string{"news"}, IP: "192.0.2.1"},
		form.WordingFor("en", nil, "Yes", ""))
	if !refused(err) || !strings.Contains(err.Error(), strconv.Itoa(gap)) {
		t.Errorf("Signup after version %d was applied: got %v, want the guard's error naming it", gap, err)
	}
	other, err := postgres.Open(t.Context(), url, postgres.Options{HMACKey: testHMACKey})
	if err == nil {
		other.Close()
		t.Fatalf("Open of a database with version %d, which this optin lacks: got nil error, want one", gap)
	}
	if !strings.Contains(err.Error(), "does not know") {
		t.Errorf("Open of a database with version %d: got %v, want it to name the unknown version", gap, err)
	}
}

// TestOpenTakesNoTableLock: a start locks no table that the running
// instances' transactions hold: two stores open at once while another
// connection's transaction, as a lease transaction leaves it (the guard
// lock held, the schema's versions read, rows written), stays open.
func TestOpenTakesNoTableLock(t *testing.T) {
	url := pg.Database(t)
	pool, err := postgres.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(t.Context(), "SELECT pg_advisory_xact_lock_shared($1)", postgres.GuardLock); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), "SELECT version FROM schema_migrations"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `INSERT INTO spent_nonces (nonce, expires) VALUES ('n', now())`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			db, err := postgres.Open(ctx, url, postgres.Options{HMACKey: testHMACKey})
			if err == nil {
				err = db.Close()
			}
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("Open while a transaction is open: got %v, want nil within 10 s (a start that waits for the transaction would wait until it ends)", err)
		}
	}
}

// TestMigrationOrdersWrites: a newer optin's migration waits for no
// write of the older instances but the ones running, and those that
// wait for it write nothing: a signup and a lease that start while the
// migration's transaction holds its locks wait, and once it commits,
// refuse. Also on a database whose transactions default to REPEATABLE
// READ, where a transaction's snapshot would be taken before its lock
// is granted: the instance's transactions are READ COMMITTED whatever
// the default.
func TestMigrationOrdersWrites(t *testing.T) {
	for _, iso := range []string{"read committed", "repeatable read"} {
		t.Run(strings.ReplaceAll(iso, " ", "_"), func(t *testing.T) {
			url := pg.EmptyDatabase(t)
			name := url[strings.LastIndexByte(url, '/')+1 : strings.IndexByte(url, '?')]
			if err := pg.Exec("postgres", "ALTER DATABASE "+name+" SET default_transaction_isolation = '"+iso+"'"); err != nil {
				t.Fatal(err)
			}
			migrationOrdersWrites(t, url)
		})
	}
}

func migrationOrdersWrites(t *testing.T, url string) {
	db, form, pool := newStoreAt(t, url)
	ctx := t.Context()
	var iso string
	if err := pool.QueryRow(ctx, "SHOW default_transaction_isolation").Scan(&iso); err != nil {
		t.Fatal(err)
	}
	t.Logf("default_transaction_isolation: %s", iso)
	signup(t, db, &form, "before@example.com")
	mig, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer mig.Rollback(context.Background())
	if _, err := mig.Exec(ctx, postgres.MigrationLocks, postgres.WriteLock, postgres.GuardLock); err != nil {
		t.Fatal(err)
	}
	if _, err := mig.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES (9999, 'a newer optin')"); err != nil {
		t.Fatal(err)
	}
	a, _ := consent.ParseAddress("during@example.com")
	signedUp, leased := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Locale: "en", Topics: []string{"news"}, IP: "192.0.2.1"},
			form.WordingFor("en", nil, "Yes", ""))
		signedUp <- err
	}()
	go func() {
		jobs, err := db.DueJobs(ctx, time.Now().Add(time.Hour), 10, nil)
		if err == nil && len(jobs) > 0 {
			err = errors.New("leased jobs")
		}
		leased <- err
	}()
	select {
	case err := <-signedUp:
		t.Fatalf("Signup while the migration holds its locks: answered %v, want it to wait", err)
	case err := <-leased:
		t.Fatalf("DueJobs while the migration holds its locks: answered %v, want it to wait", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := mig.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-signedUp; !refused(err) {
		t.Errorf("Signup that waited for the migration: got %v, want the guard's error", err)
	}
	if err := <-leased; !refused(err) {
		t.Errorf("DueJobs that waited for the migration: got %v, want the guard's error", err)
	}
	if n := count(t, pool, "SELECT count(*) FROM subscribers"); n != 1 {
		t.Errorf("subscribers: got %d, want the one from before", n)
	}
	if n := count(t, pool, "SELECT count(*) FROM outbox WHERE lease_owner IS NOT NULL"); n != 0 {
		t.Errorf("leased mails: got %d, want none", n)
	}
}
