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
// and without evidence, into several chunks), then the same file again
// with other data for the same people (updates), leaves the store exactly as the
// import did when this test was written, and counters that match a full
// walk. The import is free to go faster; it may not store anything else.
func TestImportKeepsItsResult(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	db, err := Open(filepath.Join(t.TempDir(), "import.db"), Options{HMACKey: bytes.Repeat([]byte{3}, 32),
		Now: func() time.Time { return now }, Rand: rand.NewChaCha8([32]byte{5}), MessageIDDomain: "example.com",
		Policy: consent.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en"}
	if _, err := db.Bootstrap(ctx, consent.Topic{ID: "news", Name: "News"}, form, "h"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"offers", "events"} {
		if _, err := db.CreateTopic(ctx, consent.CLIActor(), consent.Topic{ID: id, Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	var reports []consent.ImportReport
	for seed := range uint64(2) {
		// The second file has the same addresses with other data.
		var file bytes.Buffer
		if err := people.Generate(&file, people.Options{Subscribers: 2500, Format: transfer.FormatCSV, Seed: seed + 1, Now: now}); err != nil {
			t.Fatal(err)
		}
		ir, err := transfer.NewReader(&file, transfer.FormatCSV)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := db.Import(ctx, consent.CLIActor(), ir, consent.ImportOptions{})
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
	wantReports := `[{"batch":"","imported":2500,"updated":0,"unchanged":0,"pending":39,"skipped_suppressed":0,"invalid":[],"invalid_count":0,"notices":853},` +
		`{"batch":"","imported":0,"updated":1550,"unchanged":950,"pending":13,"skipped_suppressed":0,"invalid":[],"invalid_count":0,"notices":135}]`
	want := importResult{Events: 3105, TreeHash: "QWE6i5s4IfxfOVyLi7SokymqhR5D7in5NICixpu+HLQ=",
		Counters:    "a0306491bfd83526753e4433c56406cb5bfb1d3f0964b6df6caa0f445a1630c8",
		Subscribers: "c0f3c3155c9e960d79a688d51bd31a4dcaa60cea660169b8d963cf38f6646080", Outbox: 1040}
	if b, _ := json.Marshal(reports); string(b) != wantReports {
		t.Errorf("reports:\n%s\nwant\n%s", b, wantReports)
	}
	if got != want {
		t.Errorf("import result:\n%#v\nwant\n%#v", got, want)
	}
}
