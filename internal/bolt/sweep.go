package bolt

import (
	"context"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// SweepRequests deletes double-opt-in requests whose link expired more
// than retention ago (R50). Topics still pending from them are dropped, and
// a subscriber left with nothing (no subscription, no open request) is
// deleted with its parked mail and the personal records of its ledger
// events: an address that never confirmed is not kept. While a "not me"
// block lasts, its request and subscriber wait for a later sweep. It returns the number of
// requests deleted. Work is done in chunks so writers are not held up.
func (db *DB) SweepRequests(ctx context.Context, retention time.Duration) (int, error) {
	total := 0
	for {
		n, more, err := db.sweepChunk(retention, 500)
		total += n
		if err != nil || !more {
			return total, err
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

func (db *DB) sweepChunk(retention time.Duration, limit int) (n int, more bool, err error) {
	err = db.update(func(tx *bbolt.Tx) error {
		n, more = 0, false
		now := db.Now()
		var doomed []consent.Request
		err := tx.Bucket(bucketRequests).ForEach(func(k, v []byte) error {
			if len(doomed) == limit {
				more = true
				return nil
			}
			var r consent.Request
			if err := decode(v, &r); err != nil {
				return err
			}
			if now.Sub(r.Expires) <= retention {
				return nil
			}
			// A "not me" block keeps the request, and with it the
			// subscriber, until the block ends; the sweep after that
			// forgets both.
			var sub consent.Subscriber
			if ok, err := get(tx, bucketSubscribers, []byte(r.Subscriber), &sub); err != nil {
				return err
			} else if ok && now.Before(sub.BlockedUntil) {
				return nil
			}
			doomed = append(doomed, r)
			return nil
		})
		if err != nil {
			return err
		}
		for _, r := range doomed {
			if err := db.dropRequest(tx, r, now); err != nil {
				return err
			}
		}
		n = len(doomed)
		return nil
	})
	return n, more, err
}

func (db *DB) dropRequest(tx *bbolt.Tx, r consent.Request, now time.Time) error {
	if err := tx.Bucket(bucketRequests).Delete([]byte(r.ID)); err != nil {
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
	prefix := pairKey(sub.ID, "")
	if len(keysWithPrefix(tx.Bucket(bucketReqBySub), prefix)) > 0 {
		return put(tx, bucketSubscribers, []byte(sub.ID), sub) // another request still references it
	}
	for _, k := range keysWithPrefix(tx.Bucket(bucketLedgerBySub), prefix) {
		if err := tx.Bucket(bucketPersonal).Delete(k[len(prefix):]); err != nil {
			return err
		}
	}
	for _, name := range [][]byte{bucketOutbox, bucketParked} { // a parked mail holds the address
		if err := deleteJobsOf(tx.Bucket(name), sub.ID); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketEmails).Delete([]byte(consent.AddressKey(sub.Email))); err != nil {
		return err
	}
	return tx.Bucket(bucketSubscribers).Delete([]byte(sub.ID))
}
