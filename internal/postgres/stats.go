package postgres

import (
	"context"
	"time"

	"optin/internal/consent"
)

// Stats counts subscriptions by status and topic, subscribers by
// lifecycle (with dormantAfter, at the store's clock), the confirmation
// rate of double-opt-in requests and the daily signups and confirmations
// of the last 30 days, read backwards from the end of the ledger, all
// from one snapshot.
func (db *DB) Stats(ctx context.Context, dormantAfter time.Duration) (consent.Stats, error) {
	st := consent.NewStats()
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
			st.CountSubscriber(&sub, now, dormantAfter)
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
	st.SetRate()
	return st, err
}

// daily counts the requested and confirmed events of the last days,
// walking the ledger from its end, scanChunk events per query.
func daily(c conn, now time.Time) ([]consent.DayStats, error) {
	days := consent.NewDailyCounter(now)
	before := int64(1<<63 - 1)
	for {
		n, more := 0, true
		var seq int64
		var b []byte
		err := c.each("SELECT seq, event FROM ledger WHERE seq < $1 ORDER BY seq DESC LIMIT $2", []any{before, scanChunk},
			[]any{&seq, &b}, func() error {
				n++
				before = seq
				if !more {
					return nil
				}
				var ev struct {
					Type consent.EventType `json:"type"`
					Time time.Time         `json:"time"`
				}
				if err := decode(b, &ev); err != nil {
					return err
				}
				more = days.Count(ev.Type, ev.Time)
				return nil
			})
		if err != nil {
			return nil, err
		}
		if !more || n < scanChunk {
			return days.Days(), nil
		}
	}
}
