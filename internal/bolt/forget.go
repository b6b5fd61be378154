package bolt

import (
	"context"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
	"optin/internal/pace"
)

// ForgetOptedOut erases every subscriber who opted out of everything more
// than retention ago, as Erase does (the suppression hash and the
// ledger's digests stay, with an erased event citing the retention rule),
// and returns how many. Like the request sweep it reads subscribers in
// read transactions of at most sweepScan, rests between them, and erases
// up to sweepChunk per write transaction, checking each again there.
func (db *DB) ForgetOptedOut(ctx context.Context, retention time.Duration) (int, error) {
	var after []byte
	return pace.Walk(ctx, sweepChunk, func() (ids []string, done bool, err error) {
		err = db.view(func(tx *bbolt.Tx) error {
			now := db.Now()
			cur := tx.Bucket(bucketSubscribers).Cursor()
			k, v := seekAfter(cur, after)
			for n := 0; k != nil && n < sweepScan; n++ {
				after = append(after[:0], k...)
				sub := new(consent.Subscriber)
				if err := decodeAt(tx, bucketSubscribers, k, v, sub); err != nil {
					return err
				}
				if sub.Forgettable(now, retention) {
					ids = append(ids, sub.ID)
				}
				k, v = cur.Next()
			}
			done = k == nil
			return nil
		})
		return ids, done, err
	}, func(ctx context.Context, ids []string) (int, error) {
		return db.forget(ctx, ids, retention)
	})
}

// forget erases those of ids that are still forgettable, in one write
// transaction.
func (db *DB) forget(ctx context.Context, ids []string, retention time.Duration) (n int, err error) {
	err = db.update(ctx, func(tx *bbolt.Tx) error {
		n = 0
		now := db.Now()
		for _, id := range ids {
			sub := new(consent.Subscriber)
			if ok, err := get(tx, bucketSubscribers, []byte(id), sub); err != nil {
				return err
			} else if !ok || !sub.Forgettable(now, retention) {
				continue
			}
			if err := db.erase(tx, id, consent.SourceRetention); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}
