package bolt

import (
	"bytes"
	"context"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
	"optin/internal/pace"
)

// SweepRequests deletes double-opt-in requests whose link expired more
// than retention ago: an address that never confirmed is not kept (GDPR
// Art. 5(1)(e)). Topics still pending from them are dropped, and
// a subscriber left with nothing (no subscription, no open request) is
// deleted with its parked mail and the personal records of its ledger
// events: an address that never confirmed is not kept. While a "not me"
// block lasts, its request and subscriber wait for a later sweep. It
// returns the number of requests deleted.
//
// The requests are read in read transactions of at most sweepScan
// records, which run beside the writer, with rests between them; only the
// deletions go through the serial commit, sweepChunk at a time, each
// request checked again there. (Reading every request inside one write
// transaction held every signup up for 1.5 s at 580,000 requests, and
// reading them without rests took a core for as long.)
func (db *DB) SweepRequests(ctx context.Context, retention time.Duration) (int, error) {
	return db.sweep(ctx, retention, sweepScan, sweepChunk)
}

// sweepScan bounds the requests one read transaction of the sweep reads,
// so it never holds back a remap of the growing file for long; sweepChunk
// bounds the requests one write transaction deletes.
const sweepScan, sweepChunk = 10000, 500

// sweep is SweepRequests reading scan requests per read transaction and
// deleting up to chunk per write transaction.
func (db *DB) sweep(ctx context.Context, retention time.Duration, scan, chunk int) (int, error) {
	var after []byte // the last request key read; nil: from the start
	return pace.Walk(ctx, chunk, func() ([][]byte, bool, error) {
		ids, next, err := db.sweepCandidates(after, retention, scan)
		after = next
		return ids, next == nil, err
	}, func(ctx context.Context, ids [][]byte) (int, error) {
		return db.sweepDelete(ctx, ids, retention)
	})
}

// sweepCandidates reads up to scan requests after the key after and
// returns the ids of those to delete, and the last key read (nil when the
// bucket ended).
func (db *DB) sweepCandidates(after []byte, retention time.Duration, scan int) (ids [][]byte, next []byte, err error) {
	err = db.view(func(tx *bbolt.Tx) error {
		now := db.Now()
		c := tx.Bucket(bucketRequests).Cursor()
		k, v := c.First()
		if after != nil {
			if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		var last []byte
		for read := 0; k != nil; k, v = c.Next() {
			if read == scan {
				next = bytes.Clone(last)
				return nil
			}
			read++
			last = k
			var r consent.Request
			if err := decodeAt(tx, bucketRequests, k, v, &r); err != nil {
				return err
			}
			if ok, err := expired(tx, &r, now, retention); err != nil {
				return err
			} else if ok {
				ids = append(ids, bytes.Clone(k))
			}
		}
		return nil
	})
	return ids, next, err
}

// sweepDelete deletes the requests ids that are still to be swept.
func (db *DB) sweepDelete(ctx context.Context, ids [][]byte, retention time.Duration) (n int, err error) {
	err = db.update(ctx, func(tx *bbolt.Tx) error {
		n = 0
		now := db.Now()
		for _, id := range ids {
			var r consent.Request
			if ok, err := get(tx, bucketRequests, id, &r); err != nil {
				return err
			} else if !ok {
				continue // gone since it was read
			}
			if ok, err := expired(tx, &r, now, retention); err != nil || !ok {
				if err != nil {
					return err
				}
				continue
			}
			if err := db.dropRequest(tx, r, now); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// expired reports whether r is to be swept at now: its link expired more
// than retention ago and no "not me" block keeps it. Such a block keeps
// the request, and with it the subscriber, until the block ends; the
// sweep after that forgets both.
func expired(tx *bbolt.Tx, r *consent.Request, now time.Time, retention time.Duration) (bool, error) {
	if now.Sub(r.Expires) <= retention {
		return false, nil
	}
	var sub consent.Subscriber
	if ok, err := get(tx, bucketSubscribers, []byte(r.Subscriber), &sub); err != nil {
		return false, err
	} else if ok && now.Before(sub.BlockedUntil) {
		return false, nil
	}
	return true, nil
}

func (db *DB) dropRequest(tx *bbolt.Tx, r consent.Request, now time.Time) error {
	if err := del(tx, bucketRequests, []byte(r.ID)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketReqBySub).Delete(pairKey(r.Subscriber, r.ID)); err != nil {
		return err
	}
	sub := new(consent.Subscriber)
	if ok, err := get(tx, bucketSubscribers, []byte(r.Subscriber), sub); err != nil || !ok {
		return err
	}
	for _, t := range r.Topics {
		if s := sub.Subscriptions[t]; s != nil && s.Status == consent.StatusPending {
			delete(sub.Subscriptions, t)
		}
	}
	if sub.PendingRequest == r.ID {
		sub.PendingRequest = ""
	}
	if len(sub.Subscriptions) > 0 || sub.PendingRequest != "" {
		return put(tx, bucketSubscribers, []byte(sub.ID), sub)
	}
	if others, err := requestsOf(tx, sub.ID); err != nil {
		return err
	} else if len(others) > 0 {
		return put(tx, bucketSubscribers, []byte(sub.ID), sub) // another request still references it
	}
	for _, seq := range subscriberEvents(tx, sub.ID) {
		if err := tx.Bucket(bucketPersonal).Delete(seq); err != nil {
			return err
		}
	}
	for _, name := range [][]byte{bucketOutbox, bucketParked} { // a parked mail holds the address
		if err := deleteJobsOf(tx, name, sub.ID); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketAddresses).Delete(addressIndexKey(db.hasher, consent.AddressKey(sub.Email), sub.ID)); err != nil {
		return err
	}
	return del(tx, bucketSubscribers, []byte(sub.ID))
}
