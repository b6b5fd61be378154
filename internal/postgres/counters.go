package postgres

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"optin/internal/consent"
)

// Counters and the audience indexes, as in the bbolt store.
//
// Every write of a subscriber or a request reads the version it replaces
// in the same statement (putSubscriber, putRequest, the deletes) and adds
// the difference to the transaction's counts, which run writes to the
// counters table once per batch, before the commit; appendEvent counts
// each ledger event by day. Index rows (subscriber_topics and the
// subscribers' last_purchase column) are written with the record.

// trackSubscriber applies the replacement of old by sub (either nil) to
// the counts and to subscriber_topics, whose confirmed rows carry the
// audience facts (writeFacts). A subscription whose status changes keeps
// its row, with the bases the ledger proves for its topic (proven, see
// markEvidence); a topic new to the subscriber gets a row with those of
// the transaction's events and, when the subscriber was stored before,
// of its ledger events (provenOf). A key that changes gets its address
// back into the personal records that left it out (restoreAddress), and
// the transaction notes each subscriber's key and subscriptions (tx.keys,
// tx.subs).
func trackSubscriber(t *tx, old, sub *consent.Subscriber) error {
	t.count(consent.SubscriberDelta(old, sub))
	id := ""
	if sub != nil {
		id = sub.ID
	} else if old != nil {
		id = old.ID
	}
	was, is := subscriptionsOf(old), subscriptionsOf(sub)
	if sub != nil {
		key := consent.AddressKey(sub.Email)
		if old != nil && consent.AddressKey(old.Email) != key {
			if err := restoreAddress(t, id, consent.AddressKey(old.Email)); err != nil {
				return err
			}
		}
		if t.keys == nil || len(t.keys) >= maxKeys {
			// A hint only: see maxKeys.
			t.keys, t.subs = map[string]string{}, map[string]map[string]consent.Status{}
		}
		t.keys[id], t.subs[id] = key, is
	} else {
		delete(t.keys, id)
		delete(t.subs, id)
	}
	var come []string
	for topic, s := range was {
		switch n, ok := is[topic]; {
		case !ok:
			if err := t.exec("DELETE FROM subscriber_topics WHERE topic = $1 AND status = $2 AND subscriber = $3", topic, statusCode(s), dbID(id)); err != nil {
				return err
			}
		case n != s:
			// The facts and address hash are a confirmed row's: set
			// again below when it is confirmed now.
			if err := t.exec("UPDATE subscriber_topics SET status = $4, facts = NULL, address_hash = NULL WHERE topic = $1 AND status = $2 AND subscriber = $3",
				topic, statusCode(s), dbID(id), statusCode(n)); err != nil {
				return err
			}
		}
	}
	for topic := range is {
		if _, ok := was[topic]; !ok {
			come = append(come, topic)
		}
	}
	if len(come) > 0 {
		proven := t.proven[id]
		if old != nil {
			stored, err := provenOf(t.conn, id, come)
			if err != nil {
				return err
			}
			for topic, bits := range proven {
				stored[topic] |= bits
			}
			proven = stored
		}
		for _, topic := range come {
			var bits *int16
			if b := proven[topic]; b != 0 {
				bits = &b
			}
			if err := t.bulkRow(bulkSubscriberTopics, topic, string(rune(statusCode(is[topic]))), dbID(id), bits); err != nil {
				return err
			}
		}
	}
	if sub == nil {
		return nil
	}
	for topic := range sub.Subscriptions {
		f, ok := consent.FactsOf(sub, topic)
		if !ok {
			continue
		}
		if was, ok := consent.FactsOf(old, topic); ok && bytes.Equal(was.Encode(), f.Encode()) && old.Email == sub.Email {
			continue
		}
		if err := writeFacts(t, sub, topic, f); err != nil {
			return err
		}
	}
	return nil
}

// writeFacts writes the audience facts f of sub's confirmed subscription
// to topic on its subscriber_topics row.
// The address hash goes in as its 32 bytes (migration 0015), which the
// audience query compares with the suppressions' hex.
func writeFacts(t *tx, sub *consent.Subscriber, topic string, f consent.AudienceFacts) error {
	h, err := hex.DecodeString(t.hasher.Hash(consent.AddressKey(sub.Email)))
	if err != nil {
		return err
	}
	return t.exec("UPDATE subscriber_topics SET facts = $4, address_hash = $5 WHERE topic = $1 AND status = $2 AND subscriber = $3",
		topic, statusCode(consent.StatusConfirmed), dbID(sub.ID), f.Encode(), h)
}

// maxKeys caps the subscribers' keys a transaction keeps (tx.keys, with
// tx.subs): the use cases append their events right after writing their
// subscriber, and a key forgotten only makes a personal record keep its
// address (and a subscription forgotten, markEvidence probe the
// subscriber's rows in every status), so
// a transaction that writes many subscribers (a load from bbolt, a
// rebuild) starts the map afresh instead of keeping them all.
const maxKeys = 1024

// subscriptionsOf maps sub's topics to their status (nil sub: none).
func subscriptionsOf(sub *consent.Subscriber) map[string]consent.Status {
	m := map[string]consent.Status{}
	if sub != nil {
		for topic, s := range sub.Subscriptions {
			m[topic] = s.Status
		}
	}
	return m
}

// count adds d to the counts the transaction writes before its commit.
func (t *tx) count(d consent.Counts) {
	if t.counts == nil {
		t.counts = consent.Counts{}
	}
	t.counts.Add(d)
}

// writeCounts adds the transaction's counts to the counters table.
func (t *tx) writeCounts() error {
	if len(t.counts) == 0 {
		return nil
	}
	names := make([]string, 0, len(t.counts))
	ns := make([]int64, 0, len(t.counts))
	var fell []string // the counters that may have reached 0
	for name, n := range t.counts {
		names = append(names, name)
		ns = append(ns, n)
		if n < 0 {
			fell = append(fell, name)
		}
	}
	err := t.exec(`INSERT INTO counters (name, n) SELECT * FROM unnest($1::text[], $2::bigint[])
		ON CONFLICT (name) DO UPDATE SET n = counters.n + EXCLUDED.n`, names, ns)
	if err != nil {
		return fmt.Errorf("postgres: counters: %w", err)
	}
	// A counter at 0 has no row. Counts never go below 0, so only those
	// this transaction lowered can be 0 now; a batch that only adds (of
	// signups, say) deletes nothing.
	if len(fell) == 0 {
		return nil
	}
	return t.exec("DELETE FROM counters WHERE name = ANY($1) AND n = 0", fell)
}

// Stats reads the overview from the counters at the store's clock, with
// days days of daily counts; the lifecycle split counts the customers
// whose last purchase falls on the cut-off's day through an index.
func (db *DB) Stats(ctx context.Context, dormantAfter time.Duration, days int) (consent.Stats, error) {
	now := db.Now()
	var st consent.Stats
	err := db.view(ctx, func(c conn) error {
		from, to := consent.DayRange(now, days)
		counts := consent.Counts{}
		var name string
		var n int64
		err := c.each(`SELECT name, n FROM counters WHERE name < $1 OR name >= 'd0' OR (name >= $2 AND name < $3)`,
			[]any{consent.CounterDayPrefix, from, to}, []any{&name, &n}, func() error {
				counts[name] = n
				return nil
			})
		if err != nil {
			return err
		}
		dayStart, cutoff := consent.DormantCutoff(now, dormantAfter)
		var lastDay int64
		err = c.q.QueryRow(c.ctx, "SELECT count(*) FROM subscribers WHERE last_purchase >= $1 AND last_purchase <= $2",
			dayStart, cutoff).Scan(&lastDay)
		if err != nil {
			return err
		}
		st = counts.Stats(now, dormantAfter, days, lastDay)
		return nil
	})
	return st, err
}

// CheckCounters compares the counters with a full walk of one snapshot.
func (db *DB) CheckCounters(ctx context.Context) ([]consent.CounterDiff, error) {
	var diff []consent.CounterDiff
	err := db.view(ctx, func(c conn) error {
		kept, err := storedCounts(c)
		if err != nil {
			return err
		}
		walked, err := walkCounts(c)
		if err != nil {
			return err
		}
		diff = consent.DiffCounts(kept, walked)
		return nil
	})
	return diff, err
}

// RebuildCounters recounts the counters and rewrites the indexes from a
// full walk, in one write transaction.
func (db *DB) RebuildCounters(ctx context.Context) ([]consent.CounterDiff, error) {
	var diff []consent.CounterDiff
	err := db.update(ctx, func(t *tx) error {
		var err error
		diff, err = rebuild(t)
		return err
	})
	return diff, err
}

// buildCounters counts the counters once on a database whose schema has
// them but which has not been counted yet (its first start on it).
func (db *DB) buildCounters(ctx context.Context) error {
	return db.update(ctx, func(t *tx) error {
		if built, err := t.exists("SELECT 1 FROM counters_built"); err != nil || built {
			return err
		}
		_, err := rebuild(t)
		return err
	})
}

// rebuild is RebuildCounters in t.
func rebuild(t *tx) ([]consent.CounterDiff, error) {
	kept, err := storedCounts(t.conn)
	if err != nil {
		return nil, err
	}
	walked, err := walkCounts(t.conn)
	if err != nil {
		return nil, err
	}
	for _, sql := range []string{
		"DELETE FROM counters",
		"DELETE FROM subscriber_topics",
		"INSERT INTO counters_built (built) VALUES (now()) ON CONFLICT (one) DO UPDATE SET built = EXCLUDED.built",
	} {
		if err := t.exec(sql); err != nil {
			return nil, err
		}
	}
	// The index rows of every subscriber (its subscriptions with the
	// audience facts of the confirmed ones, its last purchase) and the
	// evidence of every ledger event on them, written as the writes of
	// the records write them, from a second walk of the records: every
	// row exists before the events set their bits.
	var ids [][]byte
	var purchases []*time.Time
	setPurchases := func() error {
		err := t.exec(`UPDATE subscribers s SET last_purchase = u.l FROM unnest($1::bytea[], $2::timestamptz[]) AS u(i, l)
			WHERE s.id = u.i AND s.last_purchase IS DISTINCT FROM u.l`, ids, purchases)
		ids, purchases = nil, nil
		return err
	}
	err = eachSubscriber(t.conn, "", func(sub *consent.Subscriber) (bool, error) {
		var lp *time.Time
		if !sub.LastPurchase.IsZero() {
			lp = &sub.LastPurchase
		}
		ids, purchases = append(ids, dbID(sub.ID)), append(purchases, lp)
		if len(ids) == scanChunk {
			if err := setPurchases(); err != nil {
				return false, err
			}
		}
		return true, trackSubscriber(t, nil, sub)
	})
	if err != nil {
		return nil, err
	}
	if err := setPurchases(); err != nil {
		return nil, err
	}
	err = eachEvent(t.conn, func(ev *consent.Event) error { return markEvidence(t, ev, false) })
	if err != nil {
		return nil, err
	}
	t.counts = walked
	return consent.DiffCounts(kept, walked), nil
}

// storedCounts reads every counter.
func storedCounts(c conn) (consent.Counts, error) {
	out := consent.Counts{}
	var name string
	var n int64
	err := c.each("SELECT name, n FROM counters", nil, []any{&name, &n}, func() error {
		out[name] = n
		return nil
	})
	return out, err
}

// walkCounts counts every subscriber, request and ledger event.
func walkCounts(c conn) (consent.Counts, error) {
	counts := consent.Counts{}
	err := eachSubscriber(c, "", func(sub *consent.Subscriber) (bool, error) {
		counts.AddSubscriber(sub, 1)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	var b []byte
	err = c.each("SELECT data FROM requests", nil, []any{&b}, func() error {
		r := new(consent.Request)
		if err := decodeShared(b, r, c.shared()); err != nil {
			return err
		}
		counts.AddRequest(r, 1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = eachEvent(c, func(ev *consent.Event) error {
		counts.AddEvent(ev)
		return nil
	})
	return counts, err
}

// eachEvent calls fn with every ledger event in order, read in chunks so
// that fn may write on c.
func eachEvent(c conn, fn func(ev *consent.Event) error) error {
	after := int64(0)
	for {
		var chunk []*consent.Event
		var row ledgerRow
		err := c.each("SELECT "+ledgerColumns+" FROM "+ledgerRows+" WHERE l.seq > $1 ORDER BY l.seq LIMIT $2", []any{after, scanChunk}, row.dest(), func() error {
			ev := new(consent.Event)
			if err := row.decode(ev, c.shared()); err != nil {
				return err
			}
			chunk = append(chunk, ev)
			after = row.seq
			return nil
		})
		if err != nil {
			return err
		}
		for _, ev := range chunk {
			if err := fn(ev); err != nil {
				return err
			}
		}
		if len(chunk) < scanChunk {
			return nil
		}
	}
}
