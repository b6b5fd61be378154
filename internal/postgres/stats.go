package postgres

import (
	"context"
	"time"

	"optin/internal/consent"
)

// statsDays is how many days of daily counts consent.Stats reports.
const statsDays = 30

// Stats counts subscriptions by status and topic, subscribers by
// lifecycle (with dormantAfter, at the store's clock), the confirmation
// rate of double-opt-in requests and the daily signups and confirmations
// of the last 30 days, read backwards from the end of the ledger, all
// from one snapshot.
func (db *DB) Stats(ctx context.Context, dormantAfter time.Duration) (consent.Stats, error) {
	st := consent.Stats{ByStatus: map[consent.Status]int{}, ByTopic: map[string]map[consent.Status]int{},
		ByLifecycle: map[consent.Lifecycle]int{}}
	now := db.Now()
	err := db.view(ctx, func(c conn) error {
		var b []byte
		err := c.each("SELECT data FROM subscribers", nil, []any{&b}, func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			var sub consent.Subscriber
			if err := decode(b, &sub); err != nil {
				return err
			}
			st.Subscribers++
			st.ByLifecycle[sub.Lifecycle(now, dormantAfter)]++
			for topic, s := range sub.Subscriptions {
				st.ByStatus[s.Status]++
				if st.ByTopic[topic] == nil {
					st.ByTopic[topic] = map[consent.Status]int{}
				}
				st.ByTopic[topic][s.Status]++
			}
			return nil
		})
		if err != nil {
			return err
		}
		// A request's "confirmed" key is there once it is confirmed.
		err = c.q.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE data ? 'confirmed') FROM requests").
			Scan(&st.Requests, &st.ConfirmedRequests)
		if err != nil {
			return err
		}
		st.Daily, err = daily(c, now)
		return err
	})
	if st.Requests > 0 {
		st.ConfirmationRate = float64(st.ConfirmedRequests) / float64(st.Requests)
	}
	return st, err
}

// daily counts requested and confirmed events per UTC day of the last
// statsDays days, walking the ledger from its end.
func daily(c conn, now time.Time) ([]consent.DayStats, error) {
	today := now.UTC().Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -(statsDays - 1))
	days := make([]consent.DayStats, statsDays)
	for i := range days {
		days[i].Date = first.AddDate(0, 0, i).Format(time.DateOnly)
	}
	before := int64(1<<63 - 1)
	for {
		n, done := 0, false
		var seq int64
		var b []byte
		err := c.each("SELECT seq, event FROM ledger WHERE seq < $1 ORDER BY seq DESC LIMIT $2", []any{before, scanChunk},
			[]any{&seq, &b}, func() error {
				n++
				before = seq
				if done {
					return nil
				}
				var ev struct {
					Type consent.EventType `json:"type"`
					Time time.Time         `json:"time"`
				}
				if err := decode(b, &ev); err != nil {
					return err
				}
				if ev.Time.Before(first) {
					done = true
					return nil
				}
				i := int(ev.Time.Sub(first) / (24 * time.Hour))
				if i >= statsDays {
					return nil // a clock step back left a later event behind
				}
				switch ev.Type {
				case consent.EventRequested:
					days[i].Signups++
				case consent.EventConfirmed:
					days[i].Confirmations++
				}
				return nil
			})
		if err != nil {
			return nil, err
		}
		if done || n < scanChunk {
			return days, nil
		}
	}
}
