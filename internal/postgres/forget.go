package postgres

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"optin/internal/consent"
	"optin/internal/pace"
)

// ForgetOptedOut erases every subscriber who opted out of everything more
// than retention ago, as Erase does (the suppression hash and the
// ledger's digests stay, with an erased event citing the retention rule),
// and returns how many. Like the request sweep it reads subscribers
// sweepScan at a time outside the write lock, rests between the reads,
// and erases up to sweepChunk per write transaction, checking each again
// there. It reads only those with an unsubscribed or lapsed subscription,
// as a person who opted out of everything has: their ids first, in one
// statement through the index on subs (optedOutIDs), then their records
// by id; the others' records are neither sent nor decoded.
func (db *DB) ForgetOptedOut(ctx context.Context, retention time.Duration) (int, error) {
	var candidates []string
	read := false
	return pace.Walk(ctx, sweepChunk, func() (ids []string, done bool, err error) {
		if !read {
			read = true
			if err := db.view(ctx, func(c conn) error {
				candidates, err = optedOutIDs(c)
				return err
			}); err != nil {
				return nil, false, err
			}
		}
		now := db.Now()
		next := candidates[:min(sweepScan, len(candidates))]
		candidates = candidates[len(next):]
		var r subscriberRow
		err = db.read(ctx).each("SELECT "+subscriberColumns+" FROM unnest($1::bytea[]) AS u(i) "+subscriberJoin("id = u.i")+" ORDER BY u.i",
			[]any{dbIDs(next)}, r.dest(), func() error {
				sub, err := r.decode()
				if err == nil && sub != nil && sub.Forgettable(now, retention) {
					ids = append(ids, sub.ID)
				}
				return err
			})
		return ids, len(candidates) == 0, err
	}, func(ctx context.Context, ids []string) (int, error) {
		return db.forgetOptedOut(ctx, ids, retention)
	})
}

// optedOutIDs returns, in id order, the ids of the subscribers holding a
// subscription unsubscribed or lapsed: one statement through the index
// on subs, which names their elements as a constant, in c, a read
// transaction of its own. Sequential scans are off for it: when many
// subscribers opted out, PostgreSQL would read the whole table rather
// than the index and the rows it finds.
func optedOutIDs(c conn) ([]string, error) {
	if err := c.exec("SET LOCAL enable_seqscan = off"); err != nil {
		return nil, err
	}
	codes, err := allTopicCodes(c)
	if err != nil {
		return nil, err
	}
	var w where
	w.holdCodes(codes, consent.StatusUnsubscribed, consent.StatusLapsed)
	if len(w.holds) == 0 {
		return nil, nil
	}
	var ids []string
	var id string
	err = c.each("SELECT s.id FROM subscribers s WHERE s.subs && "+elemsConst(w.holds), []any{pgx.QueryExecModeDescribeExec}, []any{scanID(&id)}, func() error {
		ids = append(ids, id)
		return nil
	})
	slices.Sort(ids)
	return ids, err
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
