package bolt

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/bolt/bolttest"
	"optin/internal/consent"
)

// rebuildOptions are the options of the rebuild tests' databases.
func rebuildOptions() Options {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	return Options{HMACKey: bytes.Repeat([]byte{7}, 32), Now: func() time.Time { return now }}
}

// rebuildDB writes a database at path with what the derived buckets
// index: imported people of two topics (confirmed, soft opt-ins,
// customers, some with evidence in the ledger) and pending signups with
// their requests; it returns its derived buckets' contents as the
// writes left them.
func rebuildDB(t *testing.T, path string) map[string]string {
	t.Helper()
	ctx := context.Background()
	db, err := Open(path, rebuildOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	form := peopleTopics(t, db)
	if rep, err := db.Import(ctx, consent.CLIActor(), generatedPeople(t, 40, 3, db.Now()), consent.ImportOptions{SkipNotice: true}); err != nil || rep.Imported != 40 {
		t.Fatalf("Import: got %+v, %v, want 40 imported", rep, err)
	}
	for i := range 7 {
		a := mustAddress(t, fmt.Sprintf("pending%d@example.com", i))
		if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}}, consent.Wording{Form: "newsletter"}); err != nil {
			t.Fatal(err)
		}
		if i < 2 { // confirmed: the subscriber written before the event that proves its basis
			sub, err := db.SubscriberByAddress(ctx, a)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Confirm(ctx, sub.PendingRequest, consent.ConfirmInput{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if proved := wantEvidenceFlags(t, db, "as written"); proved[true] < 2 {
		t.Fatalf("%d confirmed subscriptions with evidence, want those imported and confirmed", proved[true])
	}
	return derivedContents(t, db.bolt)
}

// wantDerivedExact checks that db's counters match a full walk and that
// its derived buckets hold what the one-transaction rebuild
// (RebuildCounters) writes, and what the writes of the records left
// (written).
func wantDerivedExact(t *testing.T, db *DB, written map[string]string) {
	t.Helper()
	ctx := context.Background()
	if diff, err := db.CheckCounters(ctx); err != nil || len(diff) != 0 {
		t.Errorf("CheckCounters after the rebuild on open: got %v, %v, want no difference", diff, err)
	}
	wantEvidenceFlags(t, db, "after the rebuild on open")
	got := derivedContents(t, db.bolt)
	if !maps.Equal(got, written) {
		t.Errorf("derived buckets rebuilt on open: %d keys, want the %d the writes left", len(got), len(written))
	}
	if diff, err := db.RebuildCounters(ctx); err != nil || len(diff) != 0 {
		t.Errorf("RebuildCounters after the rebuild on open: got %v, %v, want nothing to correct", diff, err)
	}
	if one := derivedContents(t, db.bolt); !maps.Equal(got, one) {
		t.Errorf("derived buckets rebuilt on open in chunks: %d keys, the one-transaction rebuild writes %d", len(got), len(one))
	}
	pending := 0
	for k := range written {
		if strings.HasPrefix(k, string(bucketSubTopics)+"/"+string(topicIndexPrefix("news", consent.StatusPending))) {
			pending++
		}
	}
	if subs, _, err := db.FindSubscribers(ctx, consent.SubscriberFilter{Topic: "news", Status: consent.StatusPending, Limit: 100}); err != nil || len(subs) != pending || pending < 5 {
		t.Errorf("FindSubscribers pending on news after the rebuild: got %d, %v, want the %d the writes indexed", len(subs), err, pending)
	}
}

// TestDerivedRebuiltInChunks: a database whose counters and indexes are
// of an older derived version, or missing, gets them rebuilt on open in
// many transactions, and ends with the counters of a full walk and the
// indexes of the one-transaction rebuild.
func TestDerivedRebuiltInChunks(t *testing.T) {
	for _, tc := range []struct {
		name string
		old  func(tx *bbolt.Tx) error
	}{
		{"older version", func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyDerived, []byte("3")) }},
		{"version 5, no evidence flags", func(tx *bbolt.Tx) error {
			if err := tx.Bucket(bucketMeta).Put(keyDerived, []byte("5")); err != nil {
				return err
			}
			b := tx.Bucket(bucketSubTopics)
			edits := map[string][]byte{}
			_ = b.ForEach(func(k, v []byte) error {
				if len(v) > addrHashLen {
					edits[string(k)] = append(bytes.Clone(v[:addrHashLen]), v[addrHashLen+1:]...)
				}
				return nil
			})
			for k, v := range edits {
				if err := b.Put([]byte(k), v); err != nil {
					return err
				}
			}
			return nil
		}},
		{"version 4, no evidence in ledger_bysub", func(tx *bbolt.Tx) error {
			if err := tx.Bucket(bucketMeta).Put(keyDerived, []byte("4")); err != nil {
				return err
			}
			b := tx.Bucket(bucketLedgerBySub)
			var proving [][]byte
			_ = b.ForEach(func(k, v []byte) error {
				if len(v) > 0 {
					proving = append(proving, bytes.Clone(k))
				}
				return nil
			})
			for _, k := range proving {
				if err := b.Put(k, nil); err != nil {
					return err
				}
			}
			return nil
		}},
		{"missing", func(tx *bbolt.Tx) error {
			for _, name := range derivedBuckets {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
			}
			return tx.Bucket(bucketMeta).Delete(keyDerived)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "old.db")
			written := rebuildDB(t, path)
			bolttest.Update(t, path, tc.old)

			opts := rebuildOptions()
			opts.chunk = 7
			var reports []int64
			opts.Progress = func(_ string, done int64) { reports = append(reports, done) }
			db, err := Open(path, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			// 47 subscribers, their requests and ledger events: dozens
			// of records, in chunks of 7.
			if len(reports) < 10 {
				t.Errorf("the rebuild on open reported %d chunks (%v), want one for each 7 records", len(reports), reports)
			}
			wantDerivedExact(t, db, written)
		})
	}
}

// rebuildChild is the environment variable that makes
// TestDerivedRebuildResumes a child that rebuilds the database it names.
const rebuildChild = "OPTIN_TEST_REBUILD_CHILD"

// killAfter is how many chunks the child of TestDerivedRebuildResumes
// commits before it waits to be killed.
const killAfter = 3

// TestDerivedRebuildResumes: an open killed (SIGKILL) while it rebuilds
// the counters and indexes leaves a database whose derived reads are
// refused, saying why, by a read-only open; the next read-write open
// goes on from the last chunk committed and ends with what a whole
// rebuild gives.
func TestDerivedRebuildResumes(t *testing.T) {
	if path := os.Getenv(rebuildChild); path != "" {
		// The child: one record a chunk; after killAfter chunks it
		// says so and waits for the kill.
		opts := rebuildOptions()
		opts.chunk = 1
		opts.Progress = func(_ string, done int64) {
			fmt.Printf("done %d\n", done)
			if done == killAfter {
				select {}
			}
		}
		if _, err := Open(path, opts); err != nil {
			t.Fatal(err)
		}
		return
	}
	path := filepath.Join(t.TempDir(), "old.db")
	written := rebuildDB(t, path)
	bolttest.Update(t, path, func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyDerived, []byte("3")) })

	child := exec.Command(os.Args[0], "-test.run=^TestDerivedRebuildResumes$")
	child.Env = append(os.Environ(), rebuildChild+"="+path)
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	for lines.Scan() && lines.Text() != fmt.Sprintf("done %d", killAfter) {
	}
	if err := child.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	child.Wait()
	if lines.Text() != fmt.Sprintf("done %d", killAfter) {
		t.Fatalf("the child ended before it had committed %d chunks of the rebuild (last line %q)", killAfter, lines.Text())
	}

	ctx := context.Background()
	ro := rebuildOptions()
	ro.ReadOnly = true
	rdb, err := Open(path, ro)
	if err != nil {
		t.Fatal(err)
	}
	_, err = rdb.Stats(ctx, consent.Day, consent.StatsDays)
	_, _, ferr := rdb.FindSubscribers(ctx, consent.SubscriberFilter{Limit: 10})
	for _, err := range []error{err, ferr} {
		if consent.ErrorCode(err) != consent.EConflict || !strings.Contains(err.Error(), "rebuil") {
			t.Errorf("a derived read of a half-rebuilt database: got %v, want EConflict saying the rebuild is unfinished", err)
		}
	}
	if err := rdb.Close(); err != nil {
		t.Fatal(err)
	}

	opts := rebuildOptions()
	opts.chunk = 1
	var reports []string
	opts.Progress = func(step string, done int64) { reports = append(reports, step+" "+strconv.FormatInt(done, 10)) }
	db, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if len(reports) == 0 || !strings.HasSuffix(reports[0], fmt.Sprintf(" %d", killAfter+1)) {
		t.Errorf("the open after the kill reported %v first, want record %d: going on from the last chunk committed", reports[:min(len(reports), 1)], killAfter+1)
	}
	wantDerivedExact(t, db, written)
}

// openRebuildDB opens a rebuildDB database whose rebuilds walk 4
// records a transaction; it returns the path and options too.
func openRebuildDB(t *testing.T) (*DB, string, Options) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rebuilt.db")
	rebuildDB(t, path)
	opts := rebuildOptions()
	opts.chunk = 4
	db, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return db, path, opts
}

// TestRebuildCountersWhileWriting: optin counters rebuild, run while
// signups commit, walks in chunks (of 4 records here) yet ends with
// the counters of a full walk and the indexes a rebuild writes: no
// write lands between two of its chunks.
func TestRebuildCountersWhileWriting(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openRebuildDB(t)
	defer db.Close()
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en"}

	const signups = 15
	var done atomic.Bool
	rebuilt := make(chan error, 1)
	go func() { // rebuilds, one after the other, until the signups end
		n := 0
		for !done.Load() {
			if _, err := db.RebuildCounters(ctx); err != nil {
				rebuilt <- err
				return
			}
			n++
		}
		if n < 2 {
			rebuilt <- fmt.Errorf("%d rebuilds while the signups committed, want several", n)
			return
		}
		rebuilt <- nil
	}()
	for i := range signups {
		a := mustAddress(t, fmt.Sprintf("during%d@example.com", i))
		if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}}, consent.Wording{Form: "newsletter"}); err != nil {
			t.Fatalf("Signup while the counters are rebuilt: %v", err)
		}
	}
	done.Store(true)
	if err := <-rebuilt; err != nil {
		t.Fatalf("RebuildCounters while signups commit: %v", err)
	}
	if diff, err := db.CheckCounters(ctx); err != nil || len(diff) != 0 {
		t.Errorf("CheckCounters after rebuilds among %d signups: got %v, %v, want no difference", signups, diff, err)
	}
	before := derivedContents(t, db.bolt)
	if diff, err := db.RebuildCounters(ctx); err != nil || len(diff) != 0 {
		t.Errorf("RebuildCounters once the signups are done: got %v, %v, want nothing to correct", diff, err)
	}
	if after := derivedContents(t, db.bolt); !maps.Equal(before, after) {
		t.Errorf("derived buckets: %d keys after the rebuilds among signups, %d from a rebuild alone", len(before), len(after))
	}
	if subs, _, err := db.FindSubscribers(ctx, consent.SubscriberFilter{Topic: "news", Status: consent.StatusPending, Limit: 100}); err != nil || len(subs) < signups {
		t.Errorf("FindSubscribers pending on news: got %d, %v, want at least the %d signups", len(subs), err, signups)
	}
}

// TestRebuildCountersFails: a counters rebuild that fails half way (a
// record it cannot read) leaves the counters and indexes refused, not
// half built under writes that go on; once the record is readable again,
// a write and the next open give the counters of a full walk.
func TestRebuildCountersFails(t *testing.T) {
	ctx := context.Background()
	db, path, opts := openRebuildDB(t)
	// Spoil the 21st subscriber's record, so the rebuild commits chunks
	// before it stops there.
	var key, kept []byte
	update := func(fn func(b *bbolt.Bucket) error) {
		t.Helper()
		if err := db.bolt.Update(func(tx *bbolt.Tx) error { return fn(tx.Bucket(bucketSubscribers)) }); err != nil {
			t.Fatal(err)
		}
	}
	update(func(b *bbolt.Bucket) error {
		c := b.Cursor()
		k, v := c.First()
		for range 20 {
			k, v = c.Next()
		}
		key, kept = bytes.Clone(k), bytes.Clone(v)
		return b.Put(key, []byte{0xff, 0xfe, 0x01})
	})
	if _, err := db.RebuildCounters(ctx); err == nil {
		t.Fatal("RebuildCounters over a record it cannot read: no error")
	}
	if _, err := db.Stats(ctx, time.Hour, 1); consent.ErrorCode(err) != consent.EConflict {
		t.Errorf("Stats after a failed rebuild: got %v, want EConflict", err)
	}
	update(func(b *bbolt.Bucket) error { return b.Put(key, kept) })
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en"}
	if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: mustAddress(t, "after@example.com"), Topics: []string{"news"}}, consent.Wording{Form: "newsletter"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if diff, err := db.CheckCounters(ctx); err != nil || len(diff) != 0 {
		t.Errorf("CheckCounters after the failed rebuild, a signup and an open: got %v, %v, want no difference", diff, err)
	}
}
