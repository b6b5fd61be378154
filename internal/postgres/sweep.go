package postgres

import (
	"context"
	"time"

	"optin/internal/bolt/record"
	"optin/internal/consent"
	"optin/internal/pace"
)

// sweepScan bounds the requests one read of the sweep looks at;
// sweepChunk bounds the requests one write transaction deletes.
const sweepScan, sweepChunk = 10000, 500

// SweepRequests deletes double-opt-in requests whose link expired more
// than retention ago (GDPR Art. 5(1)(e): an address that never confirmed
// is not kept). Topics still pending from them are dropped, and a
// subscriber left with nothing (no subscription, no open request) is
// deleted with its parked mail and the personal records of its ledger
// events. While a "not me" block lasts, its request and subscriber wait
// for a later sweep. It returns the number of requests deleted.
//
// The requests are read sweepScan at a time outside the write lock, with
// rests between the reads; only the deletions take the lock, sweepChunk
// at a time, each request checked again there.
func (db *DB) SweepRequests(ctx context.Context, retention time.Duration) (int, error) {
	after := ""
	return pace.Walk(ctx, sweepChunk, func() (ids []string, done bool, err error) {
		ids, next, err := db.sweepCandidates(ctx, after, retention)
		after = next
		return ids, next == "", err
	}, func(ctx context.Context, ids []string) (int, error) {
		return db.sweepDelete(ctx, ids, retention)
	})
}

// sweepCandidates reads up to sweepScan requests after id after and
// returns the ids of those to delete, and the last id read ("" when the
// table ended).
func (db *DB) sweepCandidates(ctx context.Context, after string, retention time.Duration) (ids []string, next string, err error) {
	now := db.Now()
	read := 0
	var id string
	var rb, sb []byte
	c := db.read(ctx)
	err = c.each(`SELECT r.id, r.data, s.data FROM requests r LEFT JOIN subscribers s ON s.id = r.subscriber
		WHERE r.id > $1 ORDER BY r.id LIMIT $2`, []any{dbID(after), sweepScan}, []any{scanID(&id), &rb, &sb}, func() error {
		read++
		next = id
		ok, err := expired(rb, sb, c.shared(), now, retention)
		if ok {
			ids = append(ids, id)
		}
		return err
	})
	if read < sweepScan {
		next = ""
	}
	return ids, next, err
}

// expired reports whether the request stored as rb (its shared strings
// in strs), of the subscriber stored as sb (nil when gone), is to be
// swept at now: its link expired
// more than retention ago and no "not me" block keeps it. Such a block
// keeps the request, and with it the subscriber, until the block ends;
// the sweep after that forgets both.
func expired(rb, sb []byte, strs record.Strings, now time.Time, retention time.Duration) (bool, error) {
	var r consent.Request
	if err := decodeShared(rb, &r, strs); err != nil {
		return false, err
	}
	if now.Sub(r.Expires) <= retention {
		return false, nil
	}
	if sb == nil {
		return true, nil
	}
	var sub consent.Subscriber
	if err := decode(sb, &sub); err != nil {
		return false, err
	}
	return !now.Before(sub.BlockedUntil), nil
}

// sweepDelete deletes the requests ids that are still to be swept.
func (db *DB) sweepDelete(ctx context.Context, ids []string, retention time.Duration) (n int, err error) {
	err = db.update(ctx, func(t *tx) error {
		n = 0
		now := db.Now()
		type candidate struct {
			id, sub string
			rb, sb  []byte
		}
		var cands []candidate
		var cd candidate
		err := t.each(`SELECT r.id, r.subscriber, r.data, s.data FROM requests r LEFT JOIN subscribers s ON s.id = r.subscriber
			WHERE r.id = ANY($1) ORDER BY r.id`, []any{dbIDs(ids)}, []any{scanID(&cd.id), scanID(&cd.sub), &cd.rb, &cd.sb}, func() error {
			cands = append(cands, candidate{cd.id, cd.sub, append([]byte(nil), cd.rb...), nilOrCopy(cd.sb)})
			return nil
		})
		if err != nil {
			return err
		}
		for _, cd := range cands {
			if ok, err := expired(cd.rb, cd.sb, t.shared(), now, retention); err != nil || !ok {
				if err != nil {
					return err
				}
				continue
			}
			r, err := decodeRequest(cd.id, cd.sub, cd.rb, t.shared())
			if err != nil {
				return err
			}
			if err := dropRequest(t, *r); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// nilOrCopy returns a copy of b, keeping nil as nil.
func nilOrCopy(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// dropRequest deletes request r and, when its subscriber is left with
// nothing, the subscriber (see SweepRequests).
func dropRequest(t *tx, r consent.Request) error {
	if err := deleteRequests(t, "id = $1", dbID(r.ID)); err != nil {
		return err
	}
	sub, err := subscriber(t.conn, r.Subscriber)
	if err != nil || sub == nil {
		return err
	}
	for _, topic := range r.Topics {
		if s := sub.Subscriptions[topic]; s != nil && s.Status == consent.StatusPending {
			delete(sub.Subscriptions, topic)
		}
	}
	if sub.PendingRequest == r.ID {
		sub.PendingRequest = ""
	}
	if len(sub.Subscriptions) > 0 || sub.PendingRequest != "" {
		return putSubscriber(t, sub)
	}
	if others, err := t.exists("SELECT 1 FROM requests WHERE subscriber = $1", dbID(sub.ID)); err != nil {
		return err
	} else if others {
		return putSubscriber(t, sub) // another request still references it
	}
	return forget(t, sub.ID) // a parked mail holds the address too
}
