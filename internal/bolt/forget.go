package bolt

import (
	"bytes"
	"context"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/bolt/record"
	"optin/internal/consent"
	"optin/internal/pace"
)

// ForgetOptedOut erases every subscriber who opted out of everything more
// than retention ago, as Erase does (the suppression hash and the
// ledger's digests stay, with an erased event citing the retention rule),
// and returns how many. Like the request sweep it reads in read
// transactions of at most sweepScan entries, rests between them, and
// erases up to sweepChunk per write transaction, checking each again
// there.
//
// It reads its candidates from the subscription index (sub_topics): a
// person who opted out of everything has every subscription unsubscribed
// or lapsed, so the index's unsubscribed and lapsed entries of every
// topic meet each of them (one with several such topics more than once;
// forget checks again), and nobody else's record is read. The walk of
// every subscriber it replaces read and decoded the whole bucket each
// hour (on 10M people: 42 s of CPU over almost 4 minutes, and 1.4 GB of
// the file paged in).
func (db *DB) ForgetOptedOut(ctx context.Context, retention time.Duration) (int, error) {
	var after []byte // the last sub_topics key read
	return pace.Walk(ctx, sweepChunk, func() (ids []string, done bool, err error) {
		err = db.view(func(tx *bbolt.Tx) error {
			if err := derivedReady(tx); err != nil {
				return err
			}
			now := db.Now()
			cur := tx.Bucket(bucketSubTopics).Cursor()
			k, _ := seekAfter(cur, after)
			for n := 0; k != nil && n < sweepScan; n++ {
				after = append(after[:0], k...)
				id, next := optedOutEntry(k)
				if next != nil { // not an opted-out entry: the next range that may hold some
					k, _ = cur.Seek(next)
					continue
				}
				sub := new(consent.Subscriber)
				if ok, err := get(tx, bucketSubscribers, []byte(id), sub); err != nil {
					return err
				} else if ok && sub.Forgettable(now, retention) {
					ids = append(ids, sub.ID)
				}
				k, _ = cur.Next()
			}
			done = k == nil
			return nil
		})
		return ids, done, err
	}, func(ctx context.Context, ids []string) (int, error) {
		return db.forget(ctx, ids, retention)
	})
}

// optedOutEntry reads a sub_topics key (topicIndexKey): for an
// unsubscribed or lapsed subscription, its subscriber's id; for any other,
// the key to seek to next: the topic's unsubscribed entries when it is
// pending or confirmed, the next topic otherwise.
func optedOutEntry(k []byte) (id string, next []byte) {
	i := bytes.IndexByte(k, 0)
	if i < 0 || i+1 >= len(k) {
		return "", prefixEnd(k)
	}
	unsubscribed, lapsed := statusCodes[consent.StatusUnsubscribed], statusCodes[consent.StatusLapsed]
	switch c := k[i+1]; {
	case c == unsubscribed || c == lapsed:
		return record.IDString(k[i+2:]), nil
	case c < unsubscribed:
		return "", append(bytes.Clone(k[:i+1]), unsubscribed)
	default:
		return "", prefixEnd(k[:i+1])
	}
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
