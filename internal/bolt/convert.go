package bolt

import (
	"bytes"
	"fmt"
	"math/bits"
	"slices"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"optin/internal/bolt/record"
	"optin/internal/consent"
)

// A database of schema version 1 (formerSchema) holds its hot records as
// JSON and its ledger tree with a key per hash. The first read-write open
// converts them (convertRecords) and then sets version 2; reads take
// either encoding meanwhile, so an interrupted conversion simply resumes
// at the next open, and an optin from before refuses the converted file
// instead of misreading it.

// convertChunk is how many records one transaction of convertRecords
// rewrites.
const convertChunk = 10000

// converters re-encode a former value of their bucket (JSON, or an id
// written out); the ledger's need the hash of the event before (prev).
var converters = []converter{
	{bucket: bucketSubscribers, convert: reencode[consent.Subscriber]},
	{bucket: bucketRequests, convert: reencode[consent.Request]},
	{bucket: bucketOutbox, convert: reencode[consent.Job]},
	{bucket: bucketParked, convert: reencode[consent.Job]},
	{bucket: bucketPersonal, convert: func(_ *bbolt.Tx, v []byte, _ string) ([]byte, error) { return record.MarshalPersonal(v) }},
	{bucket: bucketEmails, convert: func(_ *bbolt.Tx, v []byte, _ string) ([]byte, error) { return record.ID(string(v)), nil },
		done: func(v []byte) bool { return string(record.ID(string(v))) == string(v) }},
	{bucket: bucketLedger, convert: func(tx *bbolt.Tx, v []byte, prev string) ([]byte, error) {
		var ev consent.Event
		if err := record.Unmarshal(v, &ev); err != nil {
			return nil, err
		}
		return record.MarshalEvent(&ev, prev, sharedStrings(tx))
	}},
}

// converter re-encodes the former values of a bucket.
type converter struct {
	bucket  []byte
	convert func(tx *bbolt.Tx, v []byte, prev string) ([]byte, error)
	// done reports whether a value is converted already; nil means
	// record.IsCompact.
	done func(v []byte) bool
}

// converted reports whether v is in the present form.
func (c converter) converted(v []byte) bool {
	if c.done != nil {
		return c.done(v)
	}
	return record.IsCompact(v)
}

// reencode decodes v as a T and encodes it compactly.
func reencode[T any](_ *bbolt.Tx, v []byte, _ string) ([]byte, error) {
	x := new(T)
	if err := record.Unmarshal(v, x); err != nil {
		return nil, err
	}
	return record.Marshal(x)
}

// convertRecords rewrites the JSON records of the hot buckets in the
// compact encoding, record for record (counters and indexes stay as they
// are: the records do not change), in transactions of convertChunk, and
// then sets the schema version.
func convertRecords(db *bbolt.DB) error {
	version := ""
	if err := db.View(func(tx *bbolt.Tx) error {
		version = string(tx.Bucket(bucketMeta).Get(keySchema))
		return nil
	}); err != nil || version == SchemaVersion {
		return err
	}
	if slices.Contains(readableSchemas, version) { // compact already: decodeAt reads every form
		if err := convertSubscriberKeys(db); err != nil {
			return err
		}
		return setSchema(db)
	}
	for _, c := range converters {
		var from []byte // the key to go on from
		for {
			last := false
			err := db.Update(func(tx *bbolt.Tx) error {
				b := bucketOf(tx, c.bucket)
				type kv struct{ k, v []byte }
				var batch []kv
				cur := b.Cursor()
				k, v := cur.Seek(from)
				for ; k != nil && len(batch) < convertChunk; k, v = cur.Next() {
					if bytes.Equal(k, from) || c.converted(v) {
						continue
					}
					prev := ""
					if bytes.Equal(c.bucket, bucketLedger) && beUint64(k) > 1 {
						var err error
						if prev, err = record.EventHash(b.Get(u64(beUint64(k) - 1))); err != nil {
							return err
						}
					}
					nv, err := c.convert(tx, v, prev)
					if err != nil {
						return fmt.Errorf("%s %x: %w", c.bucket, k, err)
					}
					batch = append(batch, kv{bytes.Clone(k), nv})
				}
				last = k == nil
				for _, e := range batch {
					if err := b.Put(e.k, e.v); err != nil {
						return err
					}
				}
				if len(batch) > 0 {
					from = batch[len(batch)-1].k
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("converting to the compact encoding: %w", err)
			}
			if last {
				break
			}
		}
	}
	if err := convertTree(db); err != nil {
		return fmt.Errorf("converting the ledger tree: %w", err)
	}
	if err := convertSubscriberKeys(db); err != nil {
		return err
	}
	return setSchema(db)
}

// convertSubscriberKeys moves each subscriber of schema version 6 and
// before from under its id written out (36 bytes) to under its id's 22
// bytes (subscriberKey), in transactions of convertChunk, before the
// open sets the schema version: an interrupted conversion resumes at the
// next open, and reads find a subscriber under either key meanwhile
// (getStored). The keys sort alike in both forms, and the 22-byte ones
// before every id written out, so the walk goes on past those moved.
func convertSubscriberKeys(db *bbolt.DB) error {
	var from []byte // the key to go on after
	for done := false; !done; {
		err := db.Update(func(tx *bbolt.Tx) error {
			b := bucketOf(tx, bucketSubscribers)
			type kv struct{ k, v []byte }
			var batch []kv
			c := b.Cursor()
			k, v := seekAfter(c, from)
			for ; k != nil && len(batch) < convertChunk; k, v = c.Next() {
				from = bytes.Clone(k)
				if nk := subscriberKey(k); !bytes.Equal(nk, k) {
					batch = append(batch, kv{from, bytes.Clone(v)})
				}
			}
			done = k == nil
			for _, e := range batch {
				if err := b.Put(subscriberKey(e.k), e.v); err != nil {
					return err
				}
				if err := b.Delete(e.k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("converting the subscriber keys: %w", err)
		}
	}
	return nil
}

// setSchema marks the database as of SchemaVersion.
func setSchema(db *bbolt.DB) error {
	return db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte(SchemaVersion)) })
}

// convertTree copies the stored tree hashes of the former layout
// (bucketOldTree, one key per hash) into the present one (see tree.go),
// leaving out the leaf hashes, in transactions of convertChunk records,
// and then deletes the former bucket. The hashes are copied, not
// recomputed, so a tree that no longer matches its events still shows.
func convertTree(db *bbolt.DB) error {
	for from := int64(0); ; from += convertChunk {
		last := false
		err := db.Update(func(tx *bbolt.Tx) error {
			old := tx.Bucket(bucketOldTree)
			if old == nil {
				last = true
				return nil
			}
			size := treeSize(tx)
			nodes := bucketOf(tx, bucketTree)
			for n := from; n < min(from+convertChunk, size); n++ {
				var v []byte
				for l := 1; l <= bits.TrailingZeros64(^uint64(n)); l++ {
					h := old.Get(u64(uint64(tlog.StoredHashIndex(l, n>>l))))
					if len(h) != len(tlog.Hash{}) {
						return fmt.Errorf("tree hash %d of record %d missing", l, n)
					}
					v = append(v, h...)
				}
				if v != nil {
					if err := nodes.Put(u64(uint64(n)), v); err != nil {
						return err
					}
				}
			}
			if last = from+convertChunk >= size; last {
				return tx.DeleteBucket(bucketOldTree)
			}
			return nil
		})
		if err != nil || last {
			return err
		}
	}
}

// convertAddresses moves the entries of the emails index of schema
// version 4 and before (address -> subscriber id) into the addresses
// index (addressIndexKey), in transactions of convertChunk, and then
// deletes it; an interrupted conversion resumes at the next open, and
// lookups read both meanwhile (subscriberByKey).
func convertAddresses(db *bbolt.DB, h *consent.Hasher) error {
	for {
		done := false
		err := db.Update(func(tx *bbolt.Tx) error {
			old := tx.Bucket(bucketEmails)
			if old == nil {
				done = true
				return nil
			}
			b := tx.Bucket(bucketAddresses)
			var moved [][]byte
			c := old.Cursor()
			for k, v := c.First(); k != nil && len(moved) < convertChunk; k, v = c.Next() {
				if err := b.Put(addressIndexKey(h, string(k), record.IDString(v)), nil); err != nil {
					return err
				}
				moved = append(moved, bytes.Clone(k))
			}
			if len(moved) < convertChunk {
				done = true
				return tx.DeleteBucket(bucketEmails)
			}
			for _, k := range moved {
				if err := old.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("converting the emails index: %w", err)
		}
		if done {
			return nil
		}
	}
}
