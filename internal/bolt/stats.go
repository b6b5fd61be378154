package bolt

import (
	"context"
	"time"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// statsDays is how many days of daily counts consent.Stats reports.
const statsDays = 30

// consent.Stats counts subscriptions by status and topic, subscribers by lifecycle
// (with dormantAfter, at the store's clock), the confirmation rate of
// double-opt-in requests and the daily signups and confirmations of the
// last 30 days, read backwards from the end of the ledger.
func (db *DB) Stats(ctx context.Context, dormantAfter time.Duration) (consent.Stats, error) {
	st := consent.Stats{ByStatus: map[consent.Status]int{}, ByTopic: map[string]map[consent.Status]int{},
		ByLifecycle: map[consent.Lifecycle]int{}}
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
			st.Subscribers++
			st.ByLifecycle[sub.Lifecycle(now, dormantAfter)]++
			for t, s := range sub.Subscriptions {
				st.ByStatus[s.Status]++
				if st.ByTopic[t] == nil {
					st.ByTopic[t] = map[consent.Status]int{}
				}
				st.ByTopic[t][s.Status]++
			}
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
		st.Daily, err = daily(tx, now)
		return err
	})
	if st.Requests > 0 {
		st.ConfirmationRate = float64(st.ConfirmedRequests) / float64(st.Requests)
	}
	return st, err
}

// daily counts requested and confirmed events per UTC day of the last
// statsDays days, walking the ledger from its end.
func daily(tx *bbolt.Tx, now time.Time) ([]consent.DayStats, error) {
	today := now.UTC().Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -(statsDays - 1))
	days := make([]consent.DayStats, statsDays)
	for i := range days {
		days[i].Date = first.AddDate(0, 0, i).Format(time.DateOnly)
	}
	c := tx.Bucket(bucketLedger).Cursor()
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		var ev consent.Event
		if err := decode(v, &ev); err != nil {
			return nil, err
		}
		if ev.Time.Before(first) {
			break
		}
		i := int(ev.Time.Sub(first) / (24 * time.Hour))
		if i >= statsDays {
			continue // a clock step back left a later event behind
		}
		switch ev.Type {
		case consent.EventRequested:
			days[i].Signups++
		case consent.EventConfirmed:
			days[i].Confirmations++
		}
	}
	return days, nil
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
