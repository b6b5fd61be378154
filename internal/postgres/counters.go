package postgres

import (
	"context"
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
// each ledger event by day. The indexed columns of a subscriber's row
// (subs, proven and last_purchase) are written with the record.

// trackSubscriber applies the replacement of old by sub (either nil) to
// the counts. A key that changes gets its address back into the personal
// records that left it out (restoreAddress), and the transaction notes
// each subscriber's key (tx.keys) and proven column (tx.provens).
func trackSubscriber(t *tx, old, sub *consent.Subscriber, proven []byte) error {
	t.count(consent.SubscriberDelta(old, sub))
	if sub == nil {
		if old != nil {
			delete(t.keys, old.ID)
			delete(t.provens, old.ID)
		}
		return nil
	}
	key := consent.AddressKey(sub.Email)
	if old != nil && consent.AddressKey(old.Email) != key {
		if err := restoreAddress(t, sub.ID, consent.AddressKey(old.Email)); err != nil {
			return err
		}
	}
	if t.keys == nil || len(t.keys) >= maxKeys {
		// A hint only: see maxKeys.
		t.keys = map[string]string{}
	}
	t.keys[sub.ID] = key
	t.knowProven(sub.ID, proven)
	return nil
}

// knowProven notes proven as subscriber id's proven column.
func (t *tx) knowProven(id string, proven []byte) {
	if t.provens == nil || len(t.provens) >= maxKeys {
		t.provens = map[string][]byte{}
	}
	t.provens[id] = proven
}

// insertProven returns the proven column of subscriber id's insert: the
// bits the transaction's events proved before it was stored.
func (t *tx) insertProven(id string) ([]byte, error) {
	var proven []byte
	for topic, bits := range t.proven[id] {
		code, err := t.code(topic)
		if err != nil {
			return nil, err
		}
		proven = withProven(proven, code, bits)
	}
	delete(t.proven, id)
	return proven, nil
}

// maxKeys caps the subscribers' keys a transaction keeps (tx.keys, with
// tx.provens): the use cases append their events right after writing
// their subscriber, and a key forgotten only makes a personal record
// keep its address (and a proven column forgotten, markEvidence read
// it), so a transaction that writes many subscribers (a load from
// bbolt, a rebuild) starts the map afresh instead of keeping them all.
const maxKeys = 1024

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
		"INSERT INTO counters_built (built) VALUES (now()) ON CONFLICT (one) DO UPDATE SET built = EXCLUDED.built",
	} {
		if err := t.exec(sql); err != nil {
			return nil, err
		}
	}
	// The indexed columns of every subscriber (its subscriptions, the
	// bases its ledger events prove, its last purchase), written anew from
	// a second walk of the records, a chunk at a time.
	var chunk []*consent.Subscriber
	write := func() error {
		proven, err := provenOfMany(t.conn, chunk)
		if err != nil {
			return err
		}
		ids := make([][]byte, len(chunk))
		purchases := make([]*time.Time, len(chunk))
		subs := make([]*string, len(chunk))
		provens := make([][]byte, len(chunk))
		for i, sub := range chunk {
			ids[i] = dbID(sub.ID)
			if !sub.LastPurchase.IsZero() {
				purchases[i] = &sub.LastPurchase
			}
			codes, err := subsOf(t, sub)
			if err != nil {
				return err
			}
			subs[i] = subsText(codes)
			for topic, bits := range proven[sub.ID] {
				code, err := t.code(topic)
				if err != nil {
					return err
				}
				provens[i] = withProven(provens[i], code, bits)
			}
			if err := trackSubscriber(t, nil, sub, provens[i]); err != nil {
				return err
			}
		}
		chunk = chunk[:0]
		return t.exec(`UPDATE subscribers s SET last_purchase = u.l, subs = u.c::smallint[], proven = u.p
			FROM unnest($1::bytea[], $2::timestamptz[], $3::text[], $4::bytea[]) AS u(i, l, c, p)
			WHERE s.id = u.i AND (s.last_purchase IS DISTINCT FROM u.l OR s.subs IS DISTINCT FROM u.c::smallint[] OR s.proven IS DISTINCT FROM u.p)`,
			ids, purchases, subs, provens)
	}
	err = eachSubscriber(t.conn, "", func(sub *consent.Subscriber) (bool, error) {
		chunk = append(chunk, sub)
		if len(chunk) == scanChunk {
			return true, write()
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if err := write(); err != nil {
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
