package postgres

import (
	"context"
	"time"

	"optin/internal/consent"
	"optin/internal/pace"
)

// ForgetOptedOut erases every subscriber who opted out of everything more
// than retention ago, as Erase does (the suppression hash and the
// ledger's digests stay, with an erased event citing the retention rule),
// and returns how many. Like the request sweep it reads subscribers
// sweepScan at a time outside the write lock, rests between the reads,
// and erases up to sweepChunk per write transaction, checking each again
// there. It reads only those with an unsubscribed or lapsed subscription
// (through the index on subs, the elements of every topic in those two
// statuses, walkSubscribers), as a person who opted out of everything
// has: the others' records are neither sent nor decoded.
func (db *DB) ForgetOptedOut(ctx context.Context, retention time.Duration) (int, error) {
	after := ""
	return pace.Walk(ctx, sweepChunk, func() (ids []string, done bool, err error) {
		now := db.Now()
		read := 0
		codes, err := allTopicCodes(db.read(ctx))
		if err != nil {
			return nil, false, err
		}
		var optedOut where
		optedOut.holdCodes(codes, consent.StatusUnsubscribed, consent.StatusLapsed)
		err = walkSubscribers(db.read(ctx), optedOut, after, false, func(sub *consent.Subscriber) (bool, error) {
			read++
			after = sub.ID
			if sub.Forgettable(now, retention) {
				ids = append(ids, sub.ID)
			}
			return read < sweepScan, nil
		})
		return ids, read < sweepScan, err
	}, func(ctx context.Context, ids []string) (int, error) {
		return db.forgetOptedOut(ctx, ids, retention)
	})
}

// forgetOptedOut erases those of ids that are still forgettable, in one
// write transaction.
func (db *DB) forgetOptedOut(ctx context.Context, ids []string, retention time.Duration) (n int, err error) {
	err = db.update(ctx, func(t *tx) error {
		n = 0
		now := db.Now()
		for _, id := range ids {
			sub, err := subscriber(t.conn, id)
			if err != nil {
				return err
			}
			if sub == nil || !sub.Forgettable(now, retention) {
				continue
			}
			if err := db.erase(t, id, consent.SourceRetention); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}
