package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"optin/internal/bolt/record"
	"optin/internal/consent"
	"optin/internal/transfer"
)

// TestConvertFromJSON: a database whose hot records are JSON, as every
// optin before the compact encoding wrote them, is converted on its
// first read-write open; every record reads back as before, the ledger
// verifies and the counters match a full walk. It goes on working.
func TestConvertFromJSON(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	opts := Options{HMACKey: bytes.Repeat([]byte{5}, 32), MessageIDDomain: "mail.example"}
	db, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en"}
	if _, err := db.Bootstrap(ctx, consent.Topic{ID: "news", Name: "News"}, form, "h"); err != nil {
		t.Fatal(err)
	}
	w := consent.Wording{Form: "newsletter", Text: "Send me news", Topics: map[string]string{"news": "News"}}
	var firstRequest string
	for i := range 30 {
		a, _ := consent.ParseAddress(fmt.Sprintf("s%d@example.com", i))
		if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}, Name: "Ann",
			Page: "https://shop.example/", IP: "192.0.2.1", UserAgent: "Mozilla/5.0 \xff"}, w); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := db.view(func(tx *bbolt.Tx) error {
				sub, err := subscriberByKey(tx, a.Key)
				if err == nil {
					firstRequest = sub.PendingRequest
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := db.Confirm(ctx, firstRequest, consent.ConfirmInput{IP: "192.0.2.2", UserAgent: "Firefox",
		Check: &consent.Check{Class: "person", Interaction: true}}); err != nil {
		t.Fatal(err)
	}
	rows := "email,name,topics,basis,consented_at,source,last_purchase_at\n" +
		"i1@example.com,Ivy,news,consent,2025-01-01T00:00:00Z,shop,\n" +
		"i2@example.com,,news,consent,,,\n" +
		"i3@example.com,,news,soft_opt_in,,,2025-06-01T00:00:00Z\n"
	ir, err := transfer.NewReader(strings.NewReader(rows), transfer.FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := db.Import(ctx, consent.CLIActor(), ir, consent.ImportOptions{}); err != nil || rep.Imported != 3 {
		t.Fatalf("import: %+v, %v", rep, err)
	}
	tree, err := db.LedgerTree(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	toJSON(t, path)

	old, err := Open(path, Options{HMACKey: opts.HMACKey, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	before := dumpAll(t, old)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if len(before) < 100 {
		t.Fatalf("only %d records to convert", len(before))
	}

	db, err = Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if after := dumpAll(t, db); !reflect.DeepEqual(after, before) {
		for i := range min(len(after), len(before)) {
			if !reflect.DeepEqual(after[i], before[i]) {
				a, _ := json.Marshal(after[i])
				b, _ := json.Marshal(before[i])
				t.Fatalf("record %d after the conversion:\n%s\nbefore:\n%s", i, a, b)
			}
		}
		t.Fatalf("%d records after the conversion, %d before", len(after), len(before))
	}
	err = db.view(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keySchema); string(v) != SchemaVersion {
			return fmt.Errorf("schema version %q after the conversion, want %q", v, SchemaVersion)
		}
		for _, name := range [][]byte{bucketOldTree, bucketEmails} {
			if tx.Bucket(name) != nil {
				return fmt.Errorf("bucket %s still there", name)
			}
		}
		for _, c := range converters {
			if bytes.Equal(c.bucket, bucketEmails) {
				continue // gone into addresses
			}
			if err := tx.Bucket(c.bucket).ForEach(func(k, v []byte) error {
				if !c.converted(v) {
					return fmt.Errorf("%s %x not converted: %s", c.bucket, k, v)
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
	if rep, err := db.VerifyLedger(ctx, tree); err != nil || !rep.OK || rep.Events < 34 {
		t.Fatalf("VerifyLedger after the conversion: %+v, %v", rep, err)
	}
	if got, err := db.LedgerTree(ctx); err != nil || got != tree {
		t.Fatalf("LedgerTree after the conversion: %v, %v; before: %v", got, err, tree)
	}
	if diff, err := db.CheckCounters(ctx); err != nil || len(diff) != 0 {
		t.Fatalf("CheckCounters after the conversion: %v, %v", diff, err)
	}
	if err := subscriberKeysConverted(db); err != nil {
		t.Fatal(err)
	}
	a, _ := consent.ParseAddress("new@example.com")
	if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}}, w); err != nil {
		t.Fatal(err)
	}
	if rep, err := db.VerifyLedger(ctx); err != nil || !rep.OK {
		t.Fatalf("VerifyLedger after a signup on the converted database: %+v, %v", rep, err)
	}
}

// toJSON rewrites the hot records of the closed database at path as the
// encoder before the compact one wrote them: JSON, ledger events as
// their LeafData, ids written out in the emails index, the ledger tree
// with a key per stored hash; and sets the schema version of then.
func toJSON(t *testing.T, path string) {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Update(func(tx *bbolt.Tx) error {
		if err := toEmailsIndex(tx); err != nil {
			return err
		}
		for _, c := range converters {
			_, err := rewriteBucket(tx.Bucket(c.bucket), func(k, v []byte) ([]byte, error) {
				var js []byte
				var err error
				switch {
				case bytes.Equal(c.bucket, bucketLedger):
					var ev consent.Event
					err = decodeEvent(tx, k, v, &ev)
					js = ev.LeafData()
				case bytes.Equal(c.bucket, bucketPersonal):
					js, err = personalJSON(tx, k, v)
				case bytes.Equal(c.bucket, bucketEmails):
					js = []byte(record.IDString(v))
				case bytes.Equal(c.bucket, bucketSubscribers):
					js, err = rejson[consent.Subscriber](tx, c.bucket, k, v)
				case bytes.Equal(c.bucket, bucketRequests):
					js, err = rejson[consent.Request](tx, c.bucket, k, v)
				default:
					js, err = rejson[consent.Job](tx, c.bucket, k, v)
				}
				return js, err
			})
			if err != nil {
				return err
			}
		}
		// After the personal records, which read the subscribers' addresses
		// (a write transaction finds them under their new keys only).
		if err := toWrittenSubscriberKeys(tx, 1); err != nil {
			return err
		}
		// The tree as one key per stored hash, leaves included.
		oldTree, err := tx.CreateBucket(bucketOldTree)
		if err != nil {
			return err
		}
		for n := range treeSize(tx) {
			leaf, err := leafHash(tx, n)
			if err != nil {
				return err
			}
			for l, h := range recordHashes(tx, n, leaf) {
				if err := oldTree.Put(u64(uint64(tlog.StoredHashIndex(l, n>>l))), h[:]); err != nil {
					return err
				}
			}
		}
		if err := tx.DeleteBucket(bucketTree); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, []byte(formerSchema))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// rejson returns the JSON of the record stored at k in bucket, with the
// fields its key holds written out.
func rejson[T any](tx *bbolt.Tx, bucket, k, v []byte) ([]byte, error) {
	x := new(T)
	if err := decodeAt(tx, bucket, k, v, x); err != nil {
		return nil, err
	}
	return json.Marshal(x)
}

// TestConvertFromSchema2: a database of schema version 2, whose compact
// subscribers, requests and outbox jobs repeat their keys (id, due time),
// and of schema version 3, whose personal records, events and requests
// write out their user agents and wordings, reads the same before and
// after its first read-write open, which only sets the version; new
// records leave those fields to their keys and the table of shared
// strings, and the old ones still read.
func TestConvertFromSchema2(t *testing.T) {
	for _, version := range readableSchemas {
		t.Run("version "+version, func(t *testing.T) { testConvertFromCompact(t, version) })
	}
}

func testConvertFromCompact(t *testing.T, version string) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v2.db")
	opts := Options{HMACKey: bytes.Repeat([]byte{5}, 32), MessageIDDomain: "mail.example"}
	db, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	form := consent.Form{ID: "newsletter", Topics: []string{"news"}, Locale: "en"}
	if _, err := db.Bootstrap(ctx, consent.Topic{ID: "news", Name: "News"}, form, "h"); err != nil {
		t.Fatal(err)
	}
	w := consent.Wording{Form: "newsletter", Text: "Send me news", Topics: map[string]string{"news": "News"}}
	for i := range 20 {
		a, _ := consent.ParseAddress(fmt.Sprintf("s%d@example.com", i))
		if _, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"},
			Page: "https://shop.example/", IP: "192.0.2.1", UserAgent: "Mozilla/5.0"}, w); err != nil {
			t.Fatal(err)
		}
	}
	jobs, err := db.DueJobs(ctx, db.Now(), 5, nil)
	if err != nil || len(jobs) != 5 {
		t.Fatalf("DueJobs: %d, %v", len(jobs), err)
	}
	if err := db.ParkJob(ctx, jobs[0], "550 no such user"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Rewrite them as schema version 2 wrote them: every field in the
	// value, and no string in the table; the ledger's events and
	// personal records with no string in the table either (schema 2 and
	// 3 kept user agents and wordings in them).
	b, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	rewritten := 0
	err = b.Update(func(tx *bbolt.Tx) error {
		if err := toEmailsIndex(tx); err != nil {
			return err
		}
		for _, name := range [][]byte{bucketSubscribers, bucketRequests, bucketOutbox, bucketParked} {
			n, err := rewriteBucket(tx.Bucket(name), func(k, v []byte) ([]byte, error) {
				var x any
				switch {
				case bytes.Equal(name, bucketSubscribers):
					x = new(consent.Subscriber)
				case bytes.Equal(name, bucketRequests):
					x = new(consent.Request)
				default:
					x = new(consent.Job)
				}
				if err := decodeAt(tx, name, k, v, x); err != nil {
					return nil, err
				}
				full, err := record.Marshal(x)
				if bytes.Equal(full, v) {
					return nil, fmt.Errorf("%s %x: stored with its key fields already", name, k)
				}
				return full, err
			})
			if err != nil {
				return err
			}
			rewritten += n
		}
		if err := unshareLedger(tx); err != nil {
			return err
		}
		if err := toLongLedgerBySub(tx); err != nil {
			return err
		}
		// Half of them, as a conversion cut short leaves them.
		if err := toWrittenSubscriberKeys(tx, 2); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, []byte(version))
	})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	if rewritten < 60 {
		t.Fatalf("only %d records rewritten", rewritten)
	}

	old, err := Open(path, Options{HMACKey: opts.HMACKey, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	before := dumpAll(t, old)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The same records; the subscribers of a conversion cut short listed
	// those under 22 bytes first, as a read-only open reads them.
	if after := dumpAll(t, db); !reflect.DeepEqual(sortedJSON(t, after), sortedJSON(t, before)) {
		t.Fatalf("records after the open differ from before")
	}
	for _, r := range before {
		if r.Subscriber != nil && r.Subscriber.ID == "" || r.Request != nil && r.Request.ID == "" || r.Job != nil && (r.Job.ID == 0 || r.Job.NextAt.IsZero()) {
			t.Fatalf("a record without its key fields: %+v", r)
		}
	}
	if err := db.view(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keySchema); string(v) != SchemaVersion {
			return fmt.Errorf("schema version %q after the open, want %q", v, SchemaVersion)
		}
		if v := tx.Bucket(bucketPersonal).Get(u64(2)); !bytes.Contains(v, []byte("Mozilla/5.0")) {
			return fmt.Errorf("personal record 2 rewritten by the open: %q", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if diff, err := db.CheckCounters(ctx); err != nil || len(diff) != 0 {
		t.Fatalf("CheckCounters after the open: %v, %v", diff, err)
	}
	if err := subscriberKeysConverted(db); err != nil {
		t.Fatal(err)
	}
	// The ledger_bysub keys of before still find a subscriber's events,
	// and the rebuild took the evidence bucket away.
	if sub, err := db.SubscriberByAddress(ctx, mustAddress(t, "s4@example.com")); err != nil {
		t.Fatal(err)
	} else if evs, err := db.Events(ctx, sub.ID); err != nil || len(evs) != 1 || evs[0].Personal == nil || evs[0].Personal.Email != "s4@example.com" {
		t.Fatalf("Events after the open: %+v, %v", evs, err)
	}
	// The emails index went into the addresses index.
	if sub, err := db.SubscriberByAddress(ctx, mustAddress(t, "s3@example.com")); err != nil || sub.Email != "s3@example.com" {
		t.Fatalf("SubscriberByAddress after the open: %+v, %v", sub, err)
	}
	if err := db.view(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketEmails, bucketEvidence} {
			if tx.Bucket(name) != nil {
				return fmt.Errorf("bucket %s still there", name)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A job of the old form is retried and sent as before.
	if err := db.RetryJob(ctx, jobs[1], db.Now(), "451 later"); err != nil {
		t.Fatal(err)
	}
	due, err := db.DueJobs(ctx, db.Now(), 100, nil)
	if err != nil || len(due) != 19 {
		t.Fatalf("DueJobs after the open: %d, %v", len(due), err)
	}
	for _, j := range due {
		if j.ID == jobs[1].ID && j.Attempts != 1 {
			t.Fatalf("retried job: %+v", j)
		}
	}
	a, _ := consent.ParseAddress("new@example.com")
	res, err := db.Signup(ctx, consent.SignupInput{Form: &form, Address: a, Topics: []string{"news"}}, w)
	if err != nil || !res.Queued {
		t.Fatalf("Signup after the open: %+v, %v", res, err)
	}
	if rep, err := db.VerifyLedger(ctx); err != nil || !rep.OK {
		t.Fatalf("VerifyLedger after the open: %+v, %v", rep, err)
	}
}

// toWrittenSubscriberKeys moves every nth subscriber under its id
// written out, as schema version 6 and before stored them.
func toWrittenSubscriberKeys(tx *bbolt.Tx, nth int) error {
	b := tx.Bucket(bucketSubscribers)
	var keys, values [][]byte
	if err := b.ForEach(func(k, v []byte) error {
		keys, values = append(keys, bytes.Clone(k)), append(values, bytes.Clone(v))
		return nil
	}); err != nil {
		return err
	}
	for i, k := range keys {
		if len(k) != 22 {
			return fmt.Errorf("subscriber key %x not of 22 bytes", k)
		}
		if i%nth != 0 {
			continue
		}
		if err := b.Delete(k); err != nil {
			return err
		}
		if err := b.Put([]byte(record.IDString(k)), values[i]); err != nil {
			return err
		}
	}
	return nil
}

// subscriberKeysConverted reports a subscriber key of db that is not
// subscriberKey's form.
func subscriberKeysConverted(db *DB) error {
	return db.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketSubscribers).ForEach(func(k, _ []byte) error {
			if len(k) != 22 {
				return fmt.Errorf("subscriber key %q not converted", k)
			}
			return nil
		})
	})
}

// toLongLedgerBySub rewrites ledger_bysub as schema versions 3 to 6
// wrote it: each key with the event number in 8 bytes, no value, and the
// evidence in a bucket of its own (derived version 4; its keys do not
// matter, the rebuild deletes them).
func toLongLedgerBySub(tx *bbolt.Tx) error {
	b := tx.Bucket(bucketLedgerBySub)
	var keys [][]byte
	if err := b.ForEach(func(k, _ []byte) error {
		keys = append(keys, bytes.Clone(k))
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if len(k) == 30 {
			return fmt.Errorf("ledger_bysub key %x of 8-byte event number already", k)
		}
		if err := b.Delete(k); err != nil {
			return err
		}
		if err := b.Put(append(bytes.Clone(k[:22]), u64(beUint64(k[22:]))...), nil); err != nil {
			return err
		}
	}
	if ev, err := tx.CreateBucket(bucketEvidence); err != nil || ev.Put([]byte("news\x00id\x00c"), nil) != nil {
		return fmt.Errorf("evidence: %v", err)
	}
	return tx.Bucket(bucketMeta).Put(keyDerived, []byte("4"))
}

// toEmailsIndex replaces the addresses index with the emails index of
// schema version 4 and before: each subscriber's case-folded address ->
// its id (record.ID).
func toEmailsIndex(tx *bbolt.Tx) error {
	emails, err := tx.CreateBucket(bucketEmails)
	if err != nil {
		return err
	}
	err = tx.Bucket(bucketSubscribers).ForEach(func(k, v []byte) error {
		var sub consent.Subscriber
		if err := decodeAt(tx, bucketSubscribers, k, v, &sub); err != nil {
			return err
		}
		return emails.Put([]byte(consent.AddressKey(sub.Email)), record.ID(sub.ID))
	})
	if err != nil {
		return err
	}
	return tx.DeleteBucket(bucketAddresses)
}

// unshareLedger rewrites every ledger event and personal record without
// the table of shared strings, as before any string was shared.
func unshareLedger(tx *bbolt.Tx) error {
	for _, name := range [][]byte{bucketLedger, bucketPersonal} {
		_, err := rewriteBucket(tx.Bucket(name), func(k, v []byte) ([]byte, error) {
			if bytes.Equal(name, bucketLedger) {
				var ev consent.Event
				if err := decodeEvent(tx, k, v, &ev); err != nil {
					return nil, err
				}
				return record.MarshalEvent(&ev, ev.Prev, nil)
			}
			var p consent.Personal
			if err := decodeAt(tx, name, k, v, &p); err != nil {
				return nil, err
			}
			return record.Marshal(&p)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// rewriteBucket replaces every value of bk with what fn makes of it, and
// returns how many it replaced.
func rewriteBucket(bk *bbolt.Bucket, fn func(k, v []byte) ([]byte, error)) (int, error) {
	var keys, values [][]byte
	err := bk.ForEach(func(k, v []byte) error {
		nv, err := fn(k, v)
		keys, values = append(keys, bytes.Clone(k)), append(values, nv)
		return err
	})
	if err != nil {
		return 0, err
	}
	for i := range keys {
		if err := bk.Put(keys[i], values[i]); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// sortedJSON returns the JSON of each record, sorted.
func sortedJSON(t *testing.T, rs []consent.StoreRecord) []string {
	t.Helper()
	out := make([]string, len(rs))
	for i, r := range rs {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(b)
	}
	slices.Sort(out)
	return out
}

// dumpAll returns every record of db as Dump yields it.
func dumpAll(t *testing.T, db *DB) []consent.StoreRecord {
	t.Helper()
	var out []consent.StoreRecord
	for r, err := range db.Dump(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}
