package bolt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/bench/people"
	"optin/internal/consent"
	"optin/internal/transfer"
)

// importResult is what an import leaves in a store, in forms that do not
// depend on how records are encoded: the ledger's tree head (which commits
// to every event, and through their digests to every personal record),
// digests of the counters and of the exported subscribers, and the number
// of queued mails.
type importResult struct {
	Events      int64
	TreeHash    string
	Counters    string
	Subscribers string
	Outbox      int
}

// TestImportKeepsItsResult: importing generated people (every basis, with
// and without evidence, into two chunks), then the same file again
// with other data for the same people (updates), leaves the store exactly as the
// import did when this test was written, and counters that match a full
// walk. The import is free to go faster; it may not store anything else.
// A database opened Offline gives the same result in fewer, larger
// transactions (one audit entry each).
func TestImportKeepsItsResult(t *testing.T) {
	for _, offline := range []bool{false, true} {
		t.Run(fmt.Sprintf("offline=%v", offline), func(t *testing.T) { testImportKeepsItsResult(t, offline) })
	}
}

func testImportKeepsItsResult(t *testing.T, offline bool) {
	ctx := context.Background()
	now := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	db, err := Open(filepath.Join(t.TempDir(), "import.db"), Options{HMACKey: bytes.Repeat([]byte{3}, 32),
		Now: func() time.Time { return now }, Rand: rand.NewChaCha8([32]byte{5}), MessageIDDomain: "example.com",
		Policy: consent.DefaultPolicy(), Offline: offline})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	peopleTopics(t, db)
	var reports []consent.ImportReport
	for seed := range uint64(2) {
		// The second file has the same addresses with other data.
		rep, err := db.Import(ctx, consent.CLIActor(), generatedPeople(t, 6000, seed+1, now), consent.ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rep.Batch = ""
		reports = append(reports, rep)
	}
	if diff, err := db.CheckCounters(ctx); err != nil || len(diff) != 0 {
		t.Errorf("CheckCounters: got %v, %v, want no difference", diff, err)
	}

	got := importResult{}
	tree, err := db.LedgerTree(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got.Events, got.TreeHash = tree.N, tree.Hash.String()
	counters := sha256.New()
	subs := sha256.New()
	err = db.bolt.View(func(tx *bbolt.Tx) error {
		got.Outbox = tx.Bucket(bucketOutbox).Stats().KeyN
		return tx.Bucket(bucketCounters).ForEach(func(k, v []byte) error {
			fmt.Fprintf(counters, "%s=%d\n", k, counterValue(v))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	got.Counters = hex.EncodeToString(counters.Sum(nil))
	enc := json.NewEncoder(subs)
	if err := db.EachExportable(ctx, func(sub *consent.Subscriber) error { return enc.Encode(sub) }); err != nil {
		t.Fatal(err)
	}
	got.Subscribers = hex.EncodeToString(subs.Sum(nil))

	// Measured at 5dcab82, before the import was made faster.
	wantReports := `[{"batch":"","imported":6000,"updated":0,"unchanged":0,"pending":122,"skipped_suppressed":0,"invalid":[],"invalid_count":0,"notices":2056},` +
		`{"batch":"","imported":0,"updated":3648,"unchanged":2352,"pending":24,"skipped_suppressed":0,"invalid":[],"invalid_count":0,"notices":323}]`
	want := importResult{Events: 7456, TreeHash: "hKJHpG5NtNJc0oFIUfnsLLfn4AW75v4Q0jQFN3xyPAk=",
		Counters:    "b93754dab9ae5308b8827970c699afd44311aaf7937b53bd9a6e9e749642f3a9",
		Subscribers: "f9bfd6e4333470f563a3100cc787f593ce1b4c69ffd8e82d390f72cddd5c5b21", Outbox: 2525}
	if b, _ := json.Marshal(reports); string(b) != wantReports {
		t.Errorf("reports:\n%s\nwant\n%s", b, wantReports)
	}
	if got != want {
		t.Errorf("import result:\n%#v\nwant\n%#v", got, want)
	}
	// Every bucket byte for byte, as main stored it at e0a533f (the audit
	// trail has one entry a transaction, so it differs offline; offline
	// since 20000 rows a transaction).
	wantStored := map[string]string{
		"addresses":    "02f7039b3e2c84f0",
		"apikeys":      "a39424820af3ea32",
		"audit":        map[bool]string{false: "6de441dc3cc5479c", true: "7a3ac4cf7fbb4cb9"}[offline],
		"counters":     "06ab75d9b0ed9b0a",
		"customers":    "b2d87a8426bb898f",
		"forms":        "1be79d5d26a909a2",
		"ledger":       "4b046bf4936621f5",
		"ledger_bysub": "4b5b15c8ee9a324d",
		"ledger_nodes": "9aea94cd37da75dc",
		"ledger_pii":   "1813c84f64c8b1dd",
		"meta":         "11b13e0d655ed301",
		"outbox":       "8e3468ee5775f9be",
		"purchases":    "94070701bacec41c",
		"requests":     "bef964e285b9f898",
		"strings":      "93380ddfa6ecc4d4",
		"sub_topics":   "d5989229f6417796",
		"subscribers":  "c17397555c56c8ba",
		"topics":       "561f2e206aaa91c3",
	}
	if diff := bucketDiff(storedDigests(t, db), wantStored); diff != "" {
		t.Errorf("stored records differ in %s", diff)
	}
	entries, _, err := db.Audit(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	transactions := 0
	for _, e := range entries {
		if e.Action == "import" {
			transactions++
		}
	}
	// Two files of 6000 rows: 1000 or 20000 rows a transaction.
	if want := map[bool]int{false: 12, true: 2}[offline]; transactions != want {
		t.Errorf("offline=%v: %d import transactions, want %d", offline, transactions, want)
	}
}

// storedDigests returns, for each bucket of db that is not empty, the
// first 8 bytes (in hex) of a digest of its sequence, keys and values in
// order.
func storedDigests(t *testing.T, db *DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			if k, _ := b.Cursor().First(); k == nil && b.Sequence() == 0 {
				return nil
			}
			h := sha256.New()
			fmt.Fprintf(h, "%d\n", b.Sequence())
			err := b.ForEach(func(k, v []byte) error {
				fmt.Fprintf(h, "%x=%x\n", k, v)
				return nil
			})
			out[string(name)] = hex.EncodeToString(h.Sum(nil)[:8])
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// bucketDiff names the buckets whose digests differ between got and
// want ("" when none do).
func bucketDiff(got, want map[string]string) string {
	var diff []string
	for name := range want {
		if got[name] != want[name] {
			diff = append(diff, fmt.Sprintf("%s (%s, want %s)", name, got[name], want[name]))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			diff = append(diff, fmt.Sprintf("%s (%s, want none)", name, got[name]))
		}
	}
	slices.Sort(diff)
	return strings.Join(diff, ", ")
}

// peopleTopics bootstraps db with the topic news and its form
// newsletter, and creates the other topics people.Generate gives people.
func peopleTopics(t *testing.T, db *DB) consent.Form {
	t.Helper()
	ctx := context.Background()
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en"}
	if _, err := db.Bootstrap(ctx, consent.Topic{ID: "news", Name: "News"}, form, "h"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"offers", "events"} {
		if _, err := db.CreateTopic(ctx, consent.CLIActor(), consent.Topic{ID: id, Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	return form
}

// generatedPeople returns the rows of n people people.Generate makes
// with seed at now, as an import reads them (CSV).
func generatedPeople(t *testing.T, n int, seed uint64, now time.Time) consent.ImportRows {
	t.Helper()
	var file bytes.Buffer
	if err := people.Generate(&file, people.Options{Subscribers: n, Format: transfer.FormatCSV, Seed: seed, Now: now}); err != nil {
		t.Fatal(err)
	}
	ir, err := transfer.NewReader(&file, transfer.FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	return ir
}
