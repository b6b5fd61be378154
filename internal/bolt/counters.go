package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// Counters and the audience indexes.
//
// Every write of a subscriber or a request goes through put or del, which
// decode the version they replace and apply the difference to the
// counters (consent.Counts) and to the subscriber indexes in the same
// transaction; appendEvent counts each ledger event by day. Stats, the
// console's overview and the exclusions of a campaign preview read the
// counters; filtered listings and campaign audiences read the indexes.
// A database written before the counters existed, or with those of an
// older derivedVersion, gets them built once when it is first opened to
// write, in chunks of transactions that a killed open resumes
// (buildDerived).

// derivedVersion is the version of the counters and indexes a database
// holds (meta key keyDerived); Open rebuilds them when it differs.
// Version 3: the sub_topics, addr_hash and evidence keys take a
// subscriber id's 22 bytes. Version 4: statuses and bases in keys take a
// byte, audience facts are of version 2, and a confirmed subscription's
// sub_topics entry holds the first 16 bytes of the address hash that
// addr_hash held. Version 5: the ledger_bysub entries of events that
// prove a basis hold it and their topics (evidenceValue), instead of the
// bucket evidence. Version 6: a confirmed subscription's sub_topics
// entry holds its evidence flag after the address hash.
const derivedVersion = "6"

// tracked reports whether writes to bucket move counters and indexes.
func tracked(bucket []byte) bool {
	return bytes.Equal(bucket, bucketSubscribers) || bytes.Equal(bucket, bucketRequests)
}

// track applies to the counters and indexes the replacement of the value
// stored at key in bucket (nil: none) by v (nil: a deletion).
func track(tx *bbolt.Tx, bucket, key []byte, v any) error {
	stored := getStored(tx.Bucket(bucket), bucket, key)
	if bytes.Equal(bucket, bucketRequests) {
		var old *consent.Request
		if stored != nil {
			old = new(consent.Request)
			if err := decodeAt(tx, bucket, key, stored, old); err != nil {
				return err
			}
		}
		r, ok := v.(*consent.Request)
		if !ok && v != nil {
			return fmt.Errorf("bolt: a request stored as %T", v)
		}
		return addCounts(tx, consent.RequestDelta(old, r))
	}
	var old *consent.Subscriber
	if stored != nil {
		old = new(consent.Subscriber)
		if err := decodeAt(tx, bucket, key, stored, old); err != nil {
			return err
		}
	}
	sub, ok := v.(*consent.Subscriber)
	if !ok && v != nil {
		return fmt.Errorf("bolt: a subscriber stored as %T", v)
	}
	if err := moveAddress(tx, old, sub); err != nil {
		return err
	}
	return trackSubscriber(tx, old, sub)
}

// trackSubscriber moves the counters and indexes from subscriber old
// (nil: none) to sub (nil: deleted).
func trackSubscriber(tx *bbolt.Tx, old, sub *consent.Subscriber) error {
	if err := addCounts(tx, consent.SubscriberDelta(old, sub)); err != nil {
		return err
	}
	h, err := hasherOf(tx)
	if err != nil {
		return err
	}
	oldEntries, err := indexEntries(tx, old, h)
	if err != nil {
		return err
	}
	entries, err := indexEntries(tx, sub, h)
	if err != nil {
		return err
	}
	return reindex(tx, oldEntries, entries)
}

// del deletes key from bucket, keeping counters and indexes in step.
func del(tx *bbolt.Tx, bucket, key []byte) error {
	if tracked(bucket) {
		if err := track(tx, bucket, key, nil); err != nil {
			return err
		}
	}
	return tx.Bucket(bucket).Delete(storedKey(bucket, key))
}

// batchedCounts holds, for each transaction running batchCounts, the
// counter changes it has made so far.
var batchedCounts sync.Map // *bbolt.Tx -> consent.Counts

// batchCounts runs fn in tx with addCounts adding up the changes in
// memory, and stores their sum once when fn succeeds: a transaction that
// writes thousands of records (an import chunk) then reads and writes
// each counter once, not once per record. fn must not read the counters.
func batchCounts(tx *bbolt.Tx, fn func() error) error {
	sum := consent.Counts{}
	batchedCounts.Store(tx, sum)
	err := func() error {
		defer batchedCounts.Delete(tx) // even when fn panics
		return fn()
	}()
	if err != nil {
		return err
	}
	return addCounts(tx, sum)
}

// addCounts adds d to the stored counters (to the sum of batchCounts
// when tx runs one).
func addCounts(tx *bbolt.Tx, d consent.Counts) error {
	if sum, ok := batchedCounts.Load(tx); ok {
		sum.(consent.Counts).Add(d)
		return nil
	}
	b := tx.Bucket(bucketCounters)
	for name, n := range d {
		k := []byte(name)
		n += counterValue(b.Get(k))
		var err error
		if n == 0 {
			err = b.Delete(k)
		} else {
			err = b.Put(k, u64(uint64(n)))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// counterValue decodes a stored counter (absent: 0).
func counterValue(v []byte) int64 {
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

// indexEntry is one key (and value) a subscriber has in an index bucket.
type indexEntry struct {
	bucket     []byte
	key, value string
}

// indexEntries returns sub's index entries: one per subscription in
// sub_topics (a confirmed one with its address hash, by h, its evidence
// flag, from the ledger_bysub entries in tx, and its audience facts)
// and, for a customer, one in customers and one in purchases.
func indexEntries(tx *bbolt.Tx, sub *consent.Subscriber, h *consent.Hasher) ([]indexEntry, error) {
	if sub == nil {
		return nil, nil
	}
	out := make([]indexEntry, 0, len(sub.Subscriptions)+2)
	var hash []byte // computed for the first confirmed subscription
	proofs := proofsOf(tx, sub.ID)
	for t, s := range sub.Subscriptions {
		var value string
		if f, ok := consent.FactsOf(sub, t); ok {
			if hash == nil {
				var err error
				if hash, err = addressHash(h, sub); err != nil {
					return nil, err
				}
			}
			value = string(hash) + string(flagByte(proofs.flag(t, f.Basis))) + string(f.Encode())
		}
		out = append(out, indexEntry{bucketSubTopics, string(topicIndexKey(t, s.Status, sub.ID)), value})
	}
	if !sub.LastPurchase.IsZero() {
		at := timeKey(sub.LastPurchase)
		out = append(out, indexEntry{bucketCustomers, sub.ID, string(at)},
			indexEntry{bucketPurchases, string(at) + sub.ID, ""})
	}
	return out, nil
}

// reindex removes the entries of old that sub no longer has and writes
// those it has anew.
func reindex(tx *bbolt.Tx, old, sub []indexEntry) error {
	has := func(list []indexEntry, e indexEntry) bool {
		for _, x := range list {
			if bytes.Equal(x.bucket, e.bucket) && x.key == e.key && x.value == e.value {
				return true
			}
		}
		return false
	}
	for _, e := range old {
		if !has(sub, e) {
			if err := tx.Bucket(e.bucket).Delete([]byte(e.key)); err != nil {
				return err
			}
		}
	}
	for _, e := range sub {
		if !has(old, e) {
			if err := bucketOf(tx, e.bucket).Put([]byte(e.key), []byte(e.value)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Stats reads the overview from the counters at the store's clock, with
// days days of daily counts; the lifecycle split reads the customers
// whose last purchase falls on the cut-off's day from the purchases index.
func (db *DB) Stats(ctx context.Context, dormantAfter time.Duration, days int) (consent.Stats, error) {
	now := db.Now()
	var st consent.Stats
	err := db.view(func(tx *bbolt.Tx) error {
		if err := derivedReady(tx); err != nil {
			return err
		}
		b := tx.Bucket(bucketCounters)
		// Every counter but the d/ ones outside the days asked for.
		from, to := consent.DayRange(now, days)
		counts := consent.Counts{}
		c := b.Cursor()
		for _, r := range [][2]string{{"", consent.CounterDayPrefix}, {from, to}, {"d0", "\xff"}} { // "d0": past every d/
			for k, v := c.Seek([]byte(r[0])); k != nil && string(k) < r[1]; k, v = c.Next() {
				counts[string(k)] = counterValue(v)
			}
		}
		dayStart, cutoff := consent.DormantCutoff(now, dormantAfter)
		var lastDay int64
		end := timeKey(cutoff)
		pc := tx.Bucket(bucketPurchases).Cursor()
		for k, _ := pc.Seek(timeKey(dayStart)); k != nil && bytes.Compare(k[:8], end) <= 0; k, _ = pc.Next() {
			lastDay++
		}
		st = counts.Stats(now, dormantAfter, days, lastDay)
		return nil
	})
	return st, err
}

// derivedReady reports an EConflict error when tx's database lacks the
// counters and indexes: one written before them, or before their
// present version, that no read-write open has built them in yet (a
// read-only open builds nothing), or one whose open stopped while it
// built them (buildDerived).
func derivedReady(tx *bbolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if string(meta.Get(keyDerived)) == derivedVersion {
		return nil
	}
	if at, ok := rebuildPosition(meta.Get(keyRebuild)); ok {
		return consent.Errorf(consent.EConflict, "this database's counters and indexes are half rebuilt (%d records walked): optin counters rebuild is at work, or an optin stopped while it rebuilt them (start optin serve on it once to finish)", at.done)
	}
	return consent.Errorf(consent.EConflict, "this database has no counters and indexes yet: start optin serve on it once, or run optin counters rebuild")
}

// CheckCounters compares the stored counters with a full walk of one
// snapshot.
func (db *DB) CheckCounters(ctx context.Context) ([]consent.CounterDiff, error) {
	var diff []consent.CounterDiff
	err := db.view(func(tx *bbolt.Tx) error {
		walked, err := walkCounts(ctx, tx, nil, nil)
		if err != nil {
			return err
		}
		diff = consent.DiffCounts(storedCounts(tx), walked)
		return nil
	})
	return diff, err
}

// RebuildCounters recounts the counters and rewrites the indexes from a
// full walk, and returns how the counters kept before differed from it.
//
// It runs while the service does (optin counters rebuild). It is the
// rebuild on open (buildDerived: transactions of db.chunk records, the
// position kept in meta), run with the database to itself (exclusive):
// a write committed between two chunks would change records behind the
// walk's position, whose counts the walk has taken, or ahead of it,
// which the walk then counts again. So writes wait until it ends (about
// 30 s of CPU per million subscribers measured on open; one transaction,
// as before, took time quadratic in the entries it wrote, beyond half an
// hour for a million), and the derived reads answer EConflict meanwhile
// (derivedReady). When optin stops before the end, the next open ends it.
//
// When the rebuild fails (a record it cannot read, a full disk), the
// chunks before the failure stay committed: the derived buckets hold part
// of a walk, which the writes that follow would bend further and a
// resumed walk would count again. So a failure leaves them marked absent
// (unmarkDerived): their reads refuse, and the next rebuild, by this
// command or on open, starts afresh.
func (db *DB) RebuildCounters(ctx context.Context) ([]consent.CounterDiff, error) {
	var kept, walked consent.Counts
	err := db.exclusive(ctx, func(b *bbolt.DB) error {
		if err := b.Update(func(tx *bbolt.Tx) error {
			kept = storedCounts(tx)
			return unmarkDerived(tx) // buildDerived starts afresh
		}); err != nil {
			return err
		}
		err := safeCall(func(*bbolt.Tx) error { return buildDerived(b, db.hasher, db.chunk, nil) }, nil)
		if err != nil {
			if e := b.Update(unmarkDerived); e != nil {
				err = errors.Join(err, e)
			}
			return fmt.Errorf("%w; the overview, filtered lists, previews and campaigns refuse until optin counters rebuild succeeds or optin starts again", err)
		}
		return b.View(func(tx *bbolt.Tx) error {
			walked = storedCounts(tx)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return consent.DiffCounts(kept, walked), nil
}

// derivedChunk is how many records one transaction of buildDerived walks:
// as for convertChunk, enough to spread a commit's cost, few enough that
// a transaction's dirty pages stay small.
const derivedChunk = 10000

// buildDerived builds the counters and indexes of a database whose
// derived version is not derivedVersion (one from before them, or of an
// older version, or a new one), in transactions of chunk records (0:
// derivedChunk). The first empties the derived buckets; each next one
// walks the next chunk of subscribers, requests and ledger events
// (walkBuckets), writes their index entries and evidence, adds their
// counts to the counters and stores how far it came (keyRebuild); the
// last marks the derived version. An open killed meanwhile goes on from
// the last chunk committed, and derivedReady refuses the reads of the
// derived buckets until the end. progress, when not nil, hears after
// each chunk what it walked and how many records the rebuild has walked.
func buildDerived(b *bbolt.DB, h *consent.Hasher, chunk int, progress func(step string, done int64)) error {
	if chunk <= 0 {
		chunk = derivedChunk
	}
	built := false
	if err := b.View(func(tx *bbolt.Tx) error {
		built = string(tx.Bucket(bucketMeta).Get(keyDerived)) == derivedVersion
		return nil
	}); err != nil || built {
		return err
	}
	for {
		done, step, walked := false, "", int64(0)
		err := b.Update(func(tx *bbolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			at, ok := rebuildPosition(meta.Get(keyRebuild))
			if !ok { // none yet, or one of another derived version
				if err := clearDerived(tx); err != nil {
					return err
				}
				if err := meta.Delete(keyDerived); err != nil {
					return err
				}
				return meta.Put(keyRebuild, at.encode())
			}
			next, err := rebuildSome(tx, h, at, chunk)
			if err != nil {
				return err
			}
			step, walked = walkSteps[min(next.bucket, len(walkSteps)-1)], next.done
			if done = next.bucket == len(walkBuckets); done {
				return markDerived(tx)
			}
			return meta.Put(keyRebuild, next.encode())
		})
		if err != nil {
			return fmt.Errorf("building the counters and indexes: %w", err)
		}
		if progress != nil && step != "" {
			progress(step, walked)
		}
		if done {
			return nil
		}
	}
}

// clearDerived empties the derived buckets and deletes those of former
// derived versions, for a rebuild from nothing.
func clearDerived(tx *bbolt.Tx) error {
	for _, name := range formerDerived {
		if tx.Bucket(name) != nil {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
	}
	for _, name := range derivedBuckets {
		if tx.Bucket(name) != nil {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	return nil
}

// unmarkDerived marks the counters and indexes absent, with no rebuild
// under way: derivedReady refuses their reads, and the next buildDerived
// starts from nothing.
func unmarkDerived(tx *bbolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if err := meta.Delete(keyRebuild); err != nil {
		return err
	}
	return meta.Delete(keyDerived)
}

// markDerived marks the counters and indexes complete, of
// derivedVersion.
func markDerived(tx *bbolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if err := meta.Delete(keyRebuild); err != nil {
		return err
	}
	return meta.Put(keyDerived, []byte(derivedVersion))
}

// rebuildSome walks up to limit records from at, writing the index
// entries of each subscriber (by h) and the evidence of each ledger
// event, and adds their counts to the stored counters. It returns where
// it stopped. The subscribers come first, their evidence flags read from
// ledger_bysub as it stands; an event whose value the walk then rewrites
// sets them again (setEvidence), so they end as the writes of the
// records leave them.
func rebuildSome(tx *bbolt.Tx, h *consent.Hasher, at walkAt, limit int) (walkAt, error) {
	counts := consent.Counts{}
	next, err := walk(context.Background(), tx, at, limit, counts, func(sub *consent.Subscriber) error {
		entries, err := indexEntries(tx, sub, h)
		if err != nil {
			return err
		}
		return reindex(tx, nil, entries)
	}, func(ev *consent.Event) error { return setEvidence(tx, ev) })
	if err != nil {
		return at, err
	}
	return next, addCounts(tx, counts)
}

// storedCounts reads every stored counter (none without the bucket).
func storedCounts(tx *bbolt.Tx) consent.Counts {
	out := consent.Counts{}
	if b := tx.Bucket(bucketCounters); b != nil {
		_ = b.ForEach(func(k, v []byte) error {
			out[string(k)] = counterValue(v)
			return nil
		})
	}
	return out
}

// walkCounts counts every subscriber, request and ledger event of tx,
// calling each (when not nil) for every subscriber and eachEvent (when
// not nil) for every event.
func walkCounts(ctx context.Context, tx *bbolt.Tx, each func(*consent.Subscriber) error, eachEvent func(*consent.Event) error) (consent.Counts, error) {
	counts := consent.Counts{}
	_, err := walk(ctx, tx, walkAt{}, 0, counts, each, eachEvent)
	return counts, err
}

// walkBuckets are the buckets the counters and indexes derive from, in
// the order a walk goes through them; walkSteps name them for progress
// reports.
var (
	walkBuckets = [][]byte{bucketSubscribers, bucketRequests, bucketLedger}
	walkSteps   = []string{"subscribers", "requests", "ledger events"}
)

// walkAt is a position in a walk: the bucket it is in (an index of
// walkBuckets; len(walkBuckets) at the end), the last key it walked
// there (nil: none yet) and how many records it has walked in all.
type walkAt struct {
	bucket int
	after  []byte
	done   int64
}

// encode returns at as keyRebuild holds it: derivedVersion, 0x00, the
// bucket's index, the records walked (be64) and the last key.
func (at walkAt) encode() []byte {
	v := append([]byte(derivedVersion), 0, byte(at.bucket))
	return append(append(v, u64(uint64(at.done))...), at.after...)
}

// rebuildPosition decodes a value of keyRebuild, and reports whether it
// is the position of a rebuild to derivedVersion.
func rebuildPosition(v []byte) (walkAt, bool) {
	head := len(derivedVersion) + 2
	if len(v) < head+8 || string(v[:head-2]) != derivedVersion || v[head-2] != 0 || int(v[head-1]) > len(walkBuckets) {
		return walkAt{}, false
	}
	at := walkAt{bucket: int(v[head-1]), done: int64(beUint64(v[head : head+8]))}
	if rest := v[head+8:]; len(rest) > 0 {
		at.after = bytes.Clone(rest)
	}
	return at, true
}

// walk counts into counts up to limit records (0: all) of tx from at on,
// the subscribers, requests and ledger events in that order, calling
// each (when not nil) for every subscriber and eachEvent (when not nil)
// for every event; it returns the position after the last record walked.
func walk(ctx context.Context, tx *bbolt.Tx, at walkAt, limit int, counts consent.Counts, each func(*consent.Subscriber) error, eachEvent func(*consent.Event) error) (walkAt, error) {
	n := 0
	for ; at.bucket < len(walkBuckets); at = (walkAt{bucket: at.bucket + 1, done: at.done}) {
		name := walkBuckets[at.bucket]
		c := tx.Bucket(name).Cursor()
		k, v := c.First()
		if at.after != nil {
			if k, v = c.Seek(at.after); bytes.Equal(k, at.after) {
				k, v = c.Next()
			}
		}
		var last []byte // the last key walked, valid while tx is
		for ; k != nil; k, v = c.Next() {
			if limit > 0 && n == limit {
				if last != nil {
					at.after = bytes.Clone(last)
				}
				return at, nil
			}
			if err := ctx.Err(); err != nil {
				return at, err
			}
			if err := walkOne(tx, name, k, v, counts, each, eachEvent); err != nil {
				return at, err
			}
			last = k
			at.done++
			n++
		}
	}
	return at, nil
}

// walkOne decodes the record v at key k of bucket name (one of
// walkBuckets), counts it and calls each or eachEvent with it.
func walkOne(tx *bbolt.Tx, name, k, v []byte, counts consent.Counts, each func(*consent.Subscriber) error, eachEvent func(*consent.Event) error) error {
	switch {
	case bytes.Equal(name, bucketSubscribers):
		sub := new(consent.Subscriber)
		if err := decodeAt(tx, name, k, v, sub); err != nil {
			return err
		}
		counts.AddSubscriber(sub, 1)
		if each != nil {
			return each(sub)
		}
	case bytes.Equal(name, bucketRequests):
		r := new(consent.Request)
		if err := decodeAt(tx, name, k, v, r); err != nil {
			return err
		}
		counts.AddRequest(r, 1)
	default:
		var ev consent.Event
		if err := decodeEvent(tx, k, v, &ev); err != nil {
			return err
		}
		counts.AddEvent(&ev)
		if eachEvent != nil {
			return eachEvent(&ev)
		}
	}
	return nil
}
