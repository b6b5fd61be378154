package bolt

import (
	"context"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// Stats counts subscriptions by status and topic, subscribers by
// lifecycle (with dormantAfter, at the store's clock), the confirmation
// rate of double-opt-in requests and the daily signups and confirmations
// of the last 30 days, read backwards from the end of the ledger.
func (db *DB) Stats(ctx context.Context, dormantAfter time.Duration) (consent.Stats, error) {
	st := consent.NewStats()
	now := db.Now()
	err := db.view(func(tx *bbolt.Tx) error {
		err := tx.Bucket(bucketSubscribers).ForEach(func(_, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			var sub consent.Subscriber
			if err := decode(v, &sub); err != nil {
				return err
			}
			st.CountSubscriber(&sub, now, dormantAfter)
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketRequests).ForEach(func(_, v []byte) error {
			var r consent.Request
			if err := decode(v, &r); err != nil {
				return err
			}
			st.Requests++
			if !r.Confirmed.IsZero() {
				st.ConfirmedRequests++
			}
			return nil
		})
		if err != nil {
			return err
		}
		days := consent.NewDailyCounter(now)
		c := tx.Bucket(bucketLedger).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var ev consent.Event
			if err := decode(v, &ev); err != nil {
				return err
			}
			if !days.Count(ev.Type, ev.Time) {
				break
			}
		}
		st.Daily = days.Days()
		return nil
	})
	st.SetRate()
	return st, err
}

// LedgerCounts counts the ledger events after sequence number after by
// type and returns the last sequence number read, for incremental
// counting: pass it back as after next time.
func (db *DB) LedgerCounts(ctx context.Context, after uint64) (map[consent.EventType]uint64, uint64, error) {
	counts := map[consent.EventType]uint64{}
	last := after
	err := db.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketLedger).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil; k, v = c.Next() {
			var ev struct {
				Type consent.EventType `json:"type"`
			}
			if err := decode(v, &ev); err != nil {
				return err
			}
			counts[ev.Type]++
			last = beUint64(k)
		}
		return nil
	})
	return counts, last, err
}
