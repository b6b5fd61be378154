package bolt

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"optin/internal/bolt/record"
	"optin/internal/consent"
	"optin/internal/storetest"
	"optin/internal/testclock"
	"optin/internal/transfer"
)

var (
	storageN   = flag.Int("storage.n", 100_000, "how many subscribers BenchmarkStorage imports and signs up")
	storageDir = flag.String("storage.dir", "", "where BenchmarkStorage leaves its databases (default: removed after)")
)

// BenchmarkStorage measures what the store keeps per record: it imports
// -storage.n subscribers with one topic on consent with evidence (as
// `optin import` does, one ledger event each) into one database, and
// signs up as many pending ones (subscriber, request, requested event
// with personal record, confirmation mail queued) into another, through
// 64 concurrent callers as the web server would, and as many signups
// confirmed by a click once their mail went into a third
// (storetest.StorageConfirmed), and into a fourth as many again with
// their requests swept once long expired, which is what a signed-up
// subscriber keeps for good (storetest.StorageSettled). It reports the
// growth of each file per record (B/imported, B/pending, B/confirmed;
// B/settled less the pages the sweep freed, which new records reuse)
// and logs where the bytes go: the pages each bucket holds, per record.
//
//	go test -run '^$' -bench Storage -benchtime 1x ./internal/bolt
func BenchmarkStorage(b *testing.B) {
	n := *storageN
	for range b.N {
		imported := storageRun(b, func(ctx context.Context, db *DB, _ *consent.Form, _ *testclock.Clock) error {
			return storetest.StorageImport(ctx, db, n)
		})
		pending := storageRun(b, func(ctx context.Context, db *DB, form *consent.Form, _ *testclock.Clock) error {
			return storetest.StorageSignups(ctx, db, form, n)
		})
		if r, o := pending.buckets[string(bucketRequests)].KeyN, pending.buckets[string(bucketOutbox)].KeyN; r != n || o != n {
			b.Fatalf("%d requests and %d mails stored, want %d", r, o, n)
		}
		confirmed := storageRun(b, func(ctx context.Context, db *DB, form *consent.Form, _ *testclock.Clock) error {
			return storetest.StorageConfirmed(ctx, db, form, n)
		})
		settled := storageRun(b, func(ctx context.Context, db *DB, form *consent.Form, clk *testclock.Clock) error {
			return storetest.StorageSettled(ctx, db, form, n, clk)
		})
		b.ReportMetric(imported.perRecord(n), "B/imported")
		b.ReportMetric(pending.perRecord(n), "B/pending")
		b.ReportMetric(confirmed.perRecord(n), "B/confirmed")
		b.ReportMetric(float64(settled.full-int64(settled.free)-settled.empty)/float64(n), "B/settled")
		b.Logf("%d imported subscribers with one topic:\n%s", n, imported.table(n))
		b.Logf("%d pending signups:\n%s", n, pending.table(n))
		b.Logf("%d signups confirmed, their mail sent:\n%s", n, confirmed.table(n))
		b.Logf("%d signups confirmed, their requests swept (%.0f B/record of free pages):\n%s", n,
			float64(settled.free)/float64(n), settled.table(n))
	}
}

// storageUse is a database's file size before and after the records were
// written, and the bytes of pages each bucket holds after.
type storageUse struct {
	empty, full int64
	buckets     map[string]bbolt.BucketStats
	// free is the bytes of the pages bbolt holds free or pending (freed
	// by the last transactions, reused by the next ones).
	free int
}

func (u storageUse) perRecord(n int) float64 { return float64(u.full-u.empty) / float64(n) }

// table lists the buckets that hold at least a byte per record, largest
// first: pages allocated and bytes in use per record, and the fill.
func (u storageUse) table(n int) string {
	names := make([]string, 0, len(u.buckets))
	for name := range u.buckets {
		names = append(names, name)
	}
	alloc := func(s bbolt.BucketStats) int { return s.BranchAlloc + s.LeafAlloc }
	inuse := func(s bbolt.BucketStats) int { return s.BranchInuse + s.LeafInuse + s.InlineBucketInuse }
	sort.Slice(names, func(i, j int) bool { return alloc(u.buckets[names[i]]) > alloc(u.buckets[names[j]]) })
	var sb strings.Builder
	fmt.Fprintf(&sb, "| bucket | keys | pages B/record | in use B/record | fill |\n|---|---|---|---|---|\n")
	total := 0
	for _, name := range names {
		s := u.buckets[name]
		total += alloc(s)
		if alloc(s) < n {
			continue
		}
		fmt.Fprintf(&sb, "| %s | %d | %.0f | %.0f | %.0f%% |\n", name, s.KeyN, float64(alloc(s))/float64(n),
			float64(inuse(s))/float64(n), 100*float64(inuse(s))/float64(alloc(s)))
	}
	fmt.Fprintf(&sb, "| all buckets | | %.0f | | |\n| free pages | | %.0f | | |\n| file growth | | %.0f | | |\n",
		float64(total)/float64(n), float64(u.free)/float64(n), u.perRecord(n))
	return sb.String()
}

// measure reads the file size and every bucket's page statistics.
func measure(b *testing.B, db *DB) storageUse {
	b.Helper()
	u := storageUse{buckets: map[string]bbolt.BucketStats{}}
	err := db.view(func(tx *bbolt.Tx) error {
		u.full = tx.Size()
		return tx.ForEach(func(name []byte, bk *bbolt.Bucket) error {
			u.buckets[string(name)] = bk.Stats()
			return nil
		})
	})
	if err != nil {
		b.Fatal(err)
	}
	st := db.bolt.Stats()
	u.free = (st.FreePageN + st.PendingPageN) * db.bolt.Info().PageSize
	return u
}

// storageDB opens an empty database with the newsletter form and its
// topic, and returns it with its file size.
func storageDB(b *testing.B, clk *testclock.Clock) (*DB, consent.Form, int64) {
	b.Helper()
	dir := *storageDir
	if dir == "" {
		dir = b.TempDir()
	}
	f, err := os.CreateTemp(dir, "storage-*.db")
	if err != nil {
		b.Fatal(err)
	}
	path := f.Name()
	f.Close()
	os.Remove(path)
	db, err := Open(path, Options{HMACKey: bytes.Repeat([]byte{3}, 32), MessageIDDomain: "mail.shop.example", Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en"}
	if _, err := db.Bootstrap(context.Background(), consent.Topic{ID: "news", Name: "News"}, form, "h"); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return db, form, st.Size()
}

// storageRun writes records with write into a new database with the
// newsletter form and its topic, on a clock write may move (the
// storetest.Storage* workloads), and measures the file and its buckets.
func storageRun(b *testing.B, write func(context.Context, *DB, *consent.Form, *testclock.Clock) error) storageUse {
	clk := testclock.Real()
	db, form, empty := storageDB(b, clk)
	if err := write(context.Background(), db, &form, clk); err != nil {
		b.Fatal(err)
	}
	u := measure(b, db)
	u.empty = empty
	return u
}

// TestSharedStringsStoredOnce: the strings many signups share, a
// browser's user agent, the hash of the wording they agreed to and the
// form's id, are kept once in the table of strings, not in each personal
// record, event and request; each still reads back whole.
func TestSharedStringsStoredOnce(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{HMACKey: bytes.Repeat([]byte{5}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en"}
	if _, err := db.Bootstrap(ctx, consent.Topic{ID: "news", Name: "News"}, form, "h"); err != nil {
		t.Fatal(err)
	}
	w := consent.Wording{Form: "newsletter", Text: "Send me news", Topics: map[string]string{"news": "News"}}
	const agent = "Mozilla/5.0 (X11; Linux x86_64; rv:145.0) Gecko/20100101 Firefox/145.0"
	for i := range 3 {
		a, _ := consent.ParseAddress(fmt.Sprintf("s%d@example.com", i))
		if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"},
			IP: "192.0.2.1", UserAgent: agent}, w); err != nil {
			t.Fatal(err)
		}
	}
	wording, _ := hex.DecodeString(w.Hash())
	err = db.view(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketPersonal, bucketLedger, bucketRequests} {
			if err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				if bytes.Contains(v, []byte(agent)) || bytes.Contains(v, wording) || bytes.Contains(v, []byte("newsletter")) {
					return fmt.Errorf("%s %x holds the user agent, the wording hash or the form: %q", name, k, v)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := consent.ParseAddress("s1@example.com")
	sub, err := db.SubscriberByAddress(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := db.Events(ctx, sub.ID)
	if err != nil || len(evs) != 1 || evs[0].Personal == nil || evs[0].Personal.UserAgent != agent || evs[0].Wording != w.Hash() {
		t.Fatalf("Events: %+v, %v", evs, err)
	}
}

// TestConfirmJobRefersToRequest: a queued confirmation mail leaves what
// its request holds (form, topics, Message-ID, locale, link expiry) to
// the request and reads back whole; a retried one too. Parked, it stands
// alone again. A job whose request is gone reads with what it holds
// itself (its address and subscriber) and is not deliverable.
func TestConfirmJobRefersToRequest(t *testing.T) {
	ctx := context.Background()
	db, form, _, _ := openClockedDB(t)
	var want []consent.Job
	for _, addr := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		sub, req := pendingSignup(t, db, form, addr)
		want = append(want, *consent.ConfirmJob(sub, req, req.Created))
	}
	jobs, err := db.DueJobs(ctx, db.Now(), 10, nil)
	if err != nil || len(jobs) != 3 {
		t.Fatalf("DueJobs: %d, %v", len(jobs), err)
	}
	for i := range jobs {
		w := want[i]
		w.ID, w.NextAt = jobs[i].ID, jobs[i].NextAt
		if !reflect.DeepEqual(jobs[i], w) {
			t.Fatalf("job %d read back as\n%+v\nwant\n%+v", i, jobs[i], w)
		}
	}
	stored := func(bucket []byte, j consent.Job) []byte {
		var v []byte
		_ = db.view(func(tx *bbolt.Tx) error {
			k := u64(j.ID)
			if bytes.Equal(bucket, bucketOutbox) {
				k = outboxKey(j.NextAt, j.ID)
			}
			v = bytes.Clone(tx.Bucket(bucket).Get(k))
			return nil
		})
		return v
	}
	for _, j := range jobs {
		v := stored(bucketOutbox, j)
		if bytes.Contains(v, record.ID(j.MessageID[:36])) || bytes.Contains(v, []byte("newsletter")) {
			t.Fatalf("job %d holds its Message-ID or form: %q", j.ID, v)
		}
	}
	if err := db.RetryJob(ctx, jobs[0], db.Now(), "451 later"); err != nil {
		t.Fatal(err)
	}
	if err := db.ParkJob(ctx, jobs[1], "550 no such user"); err != nil {
		t.Fatal(err)
	}
	if v := stored(bucketParked, jobs[1]); !bytes.Contains(v, record.ID(jobs[1].MessageID[:36])) {
		t.Fatalf("parked job does not stand alone: %q", v)
	}
	// The request of the third goes (as no store path does while its
	// mail waits).
	if err := db.update(ctx, func(tx *bbolt.Tx) error { return tx.Bucket(bucketRequests).Delete([]byte(jobs[2].Request)) }); err != nil {
		t.Fatal(err)
	}
	again, err := db.DueJobs(ctx, db.Now(), 10, nil)
	if err != nil || len(again) != 2 {
		t.Fatalf("DueJobs after: %d, %v", len(again), err)
	}
	w := want[0]
	w.ID, w.NextAt, w.Attempts, w.LastError = again[0].ID, again[0].NextAt, 1, "451 later"
	if !reflect.DeepEqual(again[0], w) {
		t.Fatalf("retried job read back as\n%+v\nwant\n%+v", again[0], w)
	}
	if again[1].ID != jobs[2].ID || again[1].To != "c@example.com" || again[1].Subscriber != jobs[2].Subscriber || again[1].Request != jobs[2].Request {
		t.Fatalf("job without its request: %+v", again[1])
	}
	if ok, err := db.Deliverable(ctx, again[1]); err != nil || ok {
		t.Fatalf("Deliverable without its request: %v, %v", ok, err)
	}
}

// TestTreeStoresNoLevelOneHashes: the ledger tree keeps no hash of two
// leaves (a proof that needs one hashes the two events again): records
// that complete only such a subtree take no key, the others one key with
// the hashes of levels 2 and up. Tree hash and record proofs are those of
// the events; a tree stored with the hashes of level 1, as before, reads
// the same and grows on.
func TestTreeStoresNoLevelOneHashes(t *testing.T) {
	ctx := context.Background()
	db, form, _, _ := openClockedDB(t)
	signups := func(from, to int) {
		for i := from; i < to; i++ {
			a, _ := consent.ParseAddress(fmt.Sprintf("t%d@example.com", i))
			if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}}, consent.Wording{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	signups(0, 21)
	// The tree as tlog stores it, every level, from the events.
	stored := map[int64]tlog.Hash{}
	var leaves []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	err := db.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketLedger).ForEach(func(k, v []byte) error {
			var ev consent.Event
			if err := decodeEvent(tx, k, v, &ev); err != nil {
				return err
			}
			n := int64(len(leaves))
			hs, err := tlog.StoredHashes(n, ev.LeafData(), reader)
			for i, h := range hs {
				stored[tlog.StoredHashIndex(0, n)+int64(i)] = h
			}
			leaves = append(leaves, tlog.RecordHash(ev.LeafData()))
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	n := int64(len(leaves))
	root, _ := tlog.TreeHash(n, reader)
	check := func(when string) {
		t.Helper()
		if got, err := db.LedgerTree(ctx); err != nil || got.N < n {
			t.Fatalf("LedgerTree %s: %+v, %v", when, got, err)
		} else if got.N == n && got.Hash != root {
			t.Fatalf("LedgerTree %s: %+v, want root %v", when, got, root)
		}
		dbReader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return db.LedgerHashes(ctx, idx) })
		for k := range n {
			p, err := tlog.ProveRecord(n, k, dbReader)
			if err == nil {
				err = tlog.CheckRecord(p, n, root, k, leaves[k])
			}
			if err != nil {
				t.Fatalf("proof of record %d %s: %v", k, when, err)
			}
		}
		if rep, err := db.VerifyLedger(ctx); err != nil || !rep.OK {
			t.Fatalf("VerifyLedger %s: %+v, %v", when, rep, err)
		}
	}
	check("as written")
	err = db.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTree).ForEach(func(k, v []byte) error {
			if levels := bits.TrailingZeros64(^beUint64(k)); levels < 2 || len(v) != (levels-1)*32 {
				return fmt.Errorf("record %d completes %d levels and holds %d bytes", beUint64(k), levels, len(v))
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every level from 1, as trees were stored before.
	if err := db.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketTree)
		for r := range n {
			var v []byte
			for l := 1; l <= bits.TrailingZeros64(^uint64(r)); l++ {
				h := stored[tlog.StoredHashIndex(l, r>>l)]
				v = append(v, h[:]...)
			}
			if v != nil {
				if err := b.Put(u64(uint64(r)), v); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	check("stored as before")
	signups(21, 30)
	if rep, err := db.VerifyLedger(ctx); err != nil || !rep.OK || rep.Events != 30 {
		t.Fatalf("VerifyLedger after more events: %+v, %v", rep, err)
	}
}

// TestAddressesIndexByHash: the address index keys a subscriber by 8
// bytes of its address's hash and its id, not by the address; two
// addresses whose hashes start alike (as one pair in billions does) are
// told apart by the subscribers' addresses; an address change and an
// erasure move and drop the entry.
func TestAddressesIndexByHash(t *testing.T) {
	ctx := context.Background()
	db, form, _, _ := openClockedDB(t)
	ids := map[string]string{}
	for _, addr := range []string{"a@example.com", "b@example.com"} {
		sub, _ := pendingSignup(t, db, form, addr)
		ids[addr] = sub.ID
	}
	keys := func() [][]byte {
		var out [][]byte
		_ = db.view(func(tx *bbolt.Tx) error {
			if tx.Bucket([]byte("emails")) != nil {
				t.Fatal("bucket emails still there")
			}
			return tx.Bucket(bucketAddresses).ForEach(func(k, _ []byte) error {
				out = append(out, bytes.Clone(k))
				return nil
			})
		})
		return out
	}
	for _, addr := range []string{"a@example.com", "b@example.com"} {
		want := append(addressPrefix(db.hasher, addr), record.ID(ids[addr])...)
		if !slices.ContainsFunc(keys(), func(k []byte) bool { return bytes.Equal(k, want) }) {
			t.Fatalf("no key %x for %s in %x", want, addr, keys())
		}
	}
	// c@ takes b@'s hash prefix, and b@ a's: lookups read the records.
	c, _ := consent.ParseAddress("c@example.com")
	if err := db.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAddresses)
		if err := b.Put(append(addressPrefix(db.hasher, "c@example.com"), record.ID(ids["b@example.com"])...), nil); err != nil {
			return err
		}
		return b.Put(append(addressPrefix(db.hasher, "b@example.com"), record.ID(ids["a@example.com"])...), nil)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SubscriberByAddress(ctx, c); consent.ErrorCode(err) != consent.ENotFound {
		t.Fatalf("c@ found: %v", err)
	}
	b, _ := consent.ParseAddress("b@example.com")
	if sub, err := db.SubscriberByAddress(ctx, b); err != nil || sub.ID != ids["b@example.com"] {
		t.Fatalf("b@: %+v, %v", sub, err)
	}
	if err := db.Erase(ctx, ids["a@example.com"], "admin:test"); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys() {
		if bytes.Equal(k[8:], record.ID(ids["a@example.com"])) && bytes.Equal(k[:8], addressPrefix(db.hasher, "a@example.com")) {
			t.Fatalf("a@'s key after erasure")
		}
	}
}

// TestCreatedLeftToID: a subscriber and a request created at the time
// their id starts with leave the time to the id, and read back whole; one
// created at another time keeps it.
func TestCreatedLeftToID(t *testing.T) {
	ctx := context.Background()
	db, form, _, _ := openClockedDB(t)
	sub, req := pendingSignup(t, db, form, "a@example.com")
	if !sub.Created.Equal(db.Now()) || !req.Created.Equal(db.Now()) {
		t.Fatalf("created %v and %v, want %v", sub.Created, req.Created, db.Now())
	}
	first := func(bucket []byte, id string) byte {
		var b byte
		_ = db.view(func(tx *bbolt.Tx) error {
			b = tx.Bucket(bucket).Get(storedKey(bucket, []byte(id)))[0]
			return nil
		})
		return b
	}
	if first(bucketSubscribers, sub.ID) != record.RefMagic || first(bucketRequests, req.ID) != record.RefMagic {
		t.Fatalf("subscriber and request stored with their creation time")
	}
	later := *sub
	later.Created = sub.Created.Add(5 * time.Millisecond)
	if err := db.update(ctx, func(tx *bbolt.Tx) error { return put(tx, bucketSubscribers, []byte(sub.ID), &later) }); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Subscriber(ctx, sub.ID); err != nil || !reflect.DeepEqual(*got, later) {
		t.Fatalf("subscriber created later than its id read back as %+v, %v", got, err)
	}
	if first(bucketSubscribers, sub.ID) != record.Magic {
		t.Fatalf("subscriber created later than its id stored without its time")
	}
}

// pendingSignup signs addr up to news on form and returns the subscriber
// and the request pending.
func pendingSignup(t *testing.T, db *DB, form consent.Form, addr string) (*consent.Subscriber, *consent.Request) {
	t.Helper()
	ctx := context.Background()
	a, _ := consent.ParseAddress(addr)
	if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}, Locale: "en"}, consent.Wording{}); err != nil {
		t.Fatal(err)
	}
	sub, err := db.SubscriberByAddress(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	req, err := db.Request(ctx, sub.PendingRequest)
	if err != nil {
		t.Fatal(err)
	}
	return sub, req
}

// TestRequestShareIsPartOfRequest: every field of requestShare is one of
// consent.Request's, with its json name and type, so the share reads as
// the request would.
func TestRequestShareIsPartOfRequest(t *testing.T) {
	req := reflect.TypeFor[consent.Request]()
	share := reflect.TypeFor[requestShare]()
	for i := range share.NumField() {
		f := share.Field(i)
		rf, ok := req.FieldByName(f.Name)
		if !ok || rf.Type != f.Type || rf.Tag.Get("json") != f.Tag.Get("json") {
			t.Errorf("requestShare.%s (%s, %q) is not consent.Request's", f.Name, f.Type, f.Tag.Get("json"))
		}
	}
}

// TestPersonalLeavesAddressToSubscriber: a personal record whose address
// is its subscriber's leaves it to the subscriber's record, whether the
// event came after the subscriber was stored (a signup) or before (an
// import), and reads back whole. When the subscriber's address changes,
// the records of the events before get the old address back, and the
// ledger verifies throughout; the dump carries every address.
func TestPersonalLeavesAddressToSubscriber(t *testing.T) {
	ctx := context.Background()
	db, form, _, _ := openClockedDB(t)
	ann, _ := pendingSignup(t, db, form, "ann@example.com")
	ir, err := transfer.NewReader(strings.NewReader("email,topics,basis,consented_at,source\nbob@example.com,news,consent,2025-01-01T00:00:00Z,shop\n"), transfer.FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := db.Import(ctx, consent.CLIActor(), ir, consent.ImportOptions{}); err != nil || rep.Imported != 1 {
		t.Fatalf("Import: %+v, %v", rep, err)
	}
	stored := func(seq uint64) []byte {
		var v []byte
		_ = db.view(func(tx *bbolt.Tx) error {
			v = bytes.Clone(tx.Bucket(bucketPersonal).Get(u64(seq)))
			return nil
		})
		return v
	}
	for seq, addr := range map[uint64]string{1: "ann@example.com", 2: "bob@example.com"} {
		if v := stored(seq); len(v) == 0 || v[0] != record.RefMagic || bytes.Contains(v, []byte(addr)) {
			t.Fatalf("personal record %d holds its subscriber's address %s: %q", seq, addr, v)
		}
	}
	emails := func(id string) []string {
		t.Helper()
		evs, err := db.Events(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range evs {
			if e.Personal == nil || e.Personal.Digest() != e.PersonalDigest {
				t.Fatalf("event %d: personal record %+v does not match its digest", e.Seq, e.Personal)
			}
			out = append(out, e.Personal.Email)
		}
		return out
	}
	bob, err := db.SubscriberByAddress(ctx, mustAddress(t, "bob@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if got := emails(bob.ID); !slices.Equal(got, []string{"bob@example.com"}) {
		t.Fatalf("bob's records: %q", got)
	}

	if _, err := db.Confirm(ctx, ann.PendingRequest, consent.ConfirmInput{}); err != nil {
		t.Fatal(err)
	}
	newAddr := mustAddress(t, "ann.smith@example.org")
	if res, err := db.Rectify(ctx, nil, ann.ID, consent.Rectification{Email: &newAddr}, consent.ChannelPreferences); err != nil || !res.AddressPending {
		t.Fatalf("Rectify: %+v, %v", res, err)
	}
	jobs, err := db.DueJobs(ctx, db.Now(), 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(jobs, func(j consent.Job) bool { return j.Kind == consent.JobAddressChange })
	if i < 0 {
		t.Fatalf("no address-change mail in %+v", jobs)
	}
	if _, err := db.Confirm(ctx, jobs[i].Request, consent.ConfirmInput{}); err != nil {
		t.Fatal(err)
	}
	got := emails(ann.ID)
	if len(got) < 3 || got[0] != "ann@example.com" || got[len(got)-1] != "ann.smith@example.org" {
		t.Fatalf("ann's records after the address change: %q", got)
	}
	if v := stored(1); v[0] != record.Magic || !bytes.Contains(v, []byte("ann@example.com")) {
		t.Fatalf("personal record 1 after the address change: %q", v)
	}
	if rep, err := db.VerifyLedger(ctx); err != nil || !rep.OK {
		t.Fatalf("VerifyLedger: %+v, %v", rep, err)
	}
	var dumped []string
	for _, r := range dumpAll(t, db) {
		if r.Event != nil && r.Personal != nil {
			var p consent.Personal
			if err := json.Unmarshal(r.Personal, &p); err != nil {
				t.Fatal(err)
			}
			dumped = append(dumped, p.Email)
		}
	}
	if !slices.Contains(dumped, "bob@example.com") || !slices.Contains(dumped, "ann@example.com") {
		t.Fatalf("dumped personal records: %q", dumped)
	}
	if err := db.Erase(ctx, bob.ID, "admin:test"); err != nil {
		t.Fatal(err)
	}
	if rep, err := db.VerifyLedger(ctx); err != nil || !rep.OK {
		t.Fatalf("VerifyLedger after erasure: %+v, %v", rep, err)
	}
}

// TestTopicStoredOnce: a subscriber's subscription leaves its topic to
// its key in the map of subscriptions, and reads back whole; a
// subscription stored with its topic, as before, reads the same.
func TestTopicStoredOnce(t *testing.T) {
	ctx := context.Background()
	db, form, _, _ := openClockedDB(t)
	sub, _ := pendingSignup(t, db, form, "a@example.com")
	var v []byte
	_ = db.view(func(tx *bbolt.Tx) error {
		v = bytes.Clone(tx.Bucket(bucketSubscribers).Get(subscriberKey([]byte(sub.ID))))
		return nil
	})
	if n := bytes.Count(v, []byte("news")); n != 1 {
		t.Fatalf("the subscriber holds its topic %d times: %q", n, v)
	}
	if s := sub.Subscriptions["news"]; s == nil || s.Topic != "news" {
		t.Fatalf("subscription read back as %+v", s)
	}
	full, err := record.Marshal(sub)
	if err != nil {
		t.Fatal(err)
	}
	full[0] = v[0]
	if err := db.update(ctx, func(tx *bbolt.Tx) error { return tx.Bucket(bucketSubscribers).Put(subscriberKey([]byte(sub.ID)), full) }); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Subscriber(ctx, sub.ID); err != nil || !reflect.DeepEqual(got, sub) {
		t.Fatalf("subscriber stored with its topic read back as %+v, %v", got, err)
	}
}

// TestSubscribersKeyedByIDBytes: a subscriber is stored under its id's
// 22 bytes, and found, listed and exported by its id written out; one
// stored under its id written out, as schema version 6 and before did,
// reads the same (a read-only open of such a database).
func TestSubscribersKeyedByIDBytes(t *testing.T) {
	ctx := context.Background()
	db, form, _, _ := openClockedDB(t)
	sub, _ := pendingSignup(t, db, form, "a@example.com")
	var keys [][]byte
	_ = db.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketSubscribers).ForEach(func(k, _ []byte) error {
			keys = append(keys, bytes.Clone(k))
			return nil
		})
	})
	if len(keys) != 1 || !bytes.Equal(keys[0], record.ID(sub.ID)) {
		t.Fatalf("subscriber keys %x, want its id's 22 bytes", keys)
	}
	check := func(when string) {
		t.Helper()
		if got, err := db.Subscriber(ctx, sub.ID); err != nil || !reflect.DeepEqual(got, sub) {
			t.Fatalf("Subscriber %s: %+v, %v", when, got, err)
		}
		if got, err := db.SubscriberByAddress(ctx, mustAddress(t, "a@example.com")); err != nil || got.ID != sub.ID {
			t.Fatalf("SubscriberByAddress %s: %+v, %v", when, got, err)
		}
		if page, _, err := db.FindSubscribers(ctx, consent.SubscriberFilter{Limit: 10}); err != nil || len(page) != 1 || page[0].ID != sub.ID {
			t.Fatalf("FindSubscribers %s: %+v, %v", when, page, err)
		}
		var exported []string
		if err := db.EachExportable(ctx, func(s *consent.Subscriber) error {
			exported = append(exported, s.ID)
			return nil
		}); err != nil || !slices.Equal(exported, []string{sub.ID}) {
			t.Fatalf("EachExportable %s: %q, %v", when, exported, err)
		}
	}
	check("as stored")
	if err := db.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSubscribers)
		v := bytes.Clone(b.Get(keys[0]))
		if err := b.Delete(keys[0]); err != nil {
			return err
		}
		return b.Put([]byte(sub.ID), v)
	}); err != nil {
		t.Fatal(err)
	}
	check("under its id written out")
}

// TestConfirmedRequestsStayDense: a request's record grows when its mail
// is marked sent and it is confirmed, long after its page was filled;
// the requests bucket leaves room for that (requestsFill), so the pages
// of confirmed signups' requests stay mostly full instead of each
// splitting into a full one and a nearly empty one (50% in use before).
func TestConfirmedRequestsStayDense(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "r.db"), Options{HMACKey: bytes.Repeat([]byte{3}, 32), MessageIDDomain: "mail.shop.example"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en"}
	if _, err := db.Bootstrap(t.Context(), consent.Topic{ID: "news", Name: "News"}, form, "h"); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	if err := storetest.StorageConfirmed(t.Context(), db, &form, n); err != nil {
		t.Fatal(err)
	}
	var st bbolt.BucketStats
	if err := db.view(func(tx *bbolt.Tx) error {
		st = tx.Bucket(bucketRequests).Stats()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fill := float64(st.LeafInuse) / float64(st.LeafAlloc); st.KeyN != n || fill < 0.75 {
		t.Errorf("requests of %d confirmed signups: %d keys, leaf pages %.0f%% in use (%d of %d bytes), want %d keys and at least 75%%",
			n, st.KeyN, 100*fill, st.LeafInuse, st.LeafAlloc, n)
	}
}
