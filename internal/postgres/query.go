package postgres

import (
	"context"
	"errors"

	"golang.org/x/mod/sumdb/tlog"

	"optin/internal/consent"
)

// Subscriber returns the subscriber id, or an ENotFound *Error.
func (db *DB) Subscriber(ctx context.Context, id string) (*consent.Subscriber, error) {
	return loadSubscriber(db.read(ctx), id)
}

// SubscriberByAddress returns the subscriber holding a, or an ENotFound
// *Error.
func (db *DB) SubscriberByAddress(ctx context.Context, a consent.Address) (*consent.Subscriber, error) {
	sub, err := subscriberByKey(db.read(ctx), a.Key)
	if err == nil && sub == nil {
		err = consent.Errorf(consent.ENotFound, "subscriber not found")
	}
	return sub, err
}

// Events returns the ledger events of subscriber id in order, each with
// its personal record and the wording it cites: the proof of consent.
func (db *DB) Events(ctx context.Context, id string) ([]consent.EventRecord, error) {
	return events(db.read(ctx), id)
}

// events is Events on c: the events with their personal records, then
// the wordings and assessments they cite (the events are not JSON for
// the database to join on).
func events(c conn, id string) ([]consent.EventRecord, error) {
	var out []consent.EventRecord
	var row ledgerRow
	var personal []byte
	var address *string
	err := c.each(`SELECT `+ledgerColumns+`, l.personal, `+personalAddress+` FROM `+ledgerRows+` WHERE l.subscriber = $1 ORDER BY l.seq`, []any{dbID(id)},
		append(row.dest(), &personal, &address), func() error {
			var r consent.EventRecord
			if err := row.decode(&r.Event, c.shared()); err != nil {
				return err
			}
			if personal != nil {
				r.Personal = new(consent.Personal)
				if err := decodePersonal(personal, address, r.Personal, c.shared()); err != nil {
					return err
				}
			}
			out = append(out, r)
			return nil
		})
	if err != nil {
		return nil, err
	}
	wordings := map[string]*consent.Wording{}
	assessments := map[string]*consent.Assessment{}
	for _, r := range out {
		if r.Event.Wording != "" {
			wordings[r.Event.Wording] = nil
		}
		if r.Event.Assessment != "" {
			assessments[r.Event.Assessment] = nil
		}
	}
	if err := cited(c, "SELECT hash, data FROM wordings WHERE hash = ANY($1)", wordings); err != nil {
		return nil, err
	}
	if err := cited(c, "SELECT id, data FROM assessments WHERE id = ANY($1)", assessments); err != nil {
		return nil, err
	}
	for i := range out {
		out[i].WordingText = wordings[out[i].Event.Wording]
		out[i].AssessmentRecord = assessments[out[i].Event.Assessment]
	}
	return out, nil
}

// cited fills m, keyed by the keys sql's first column matches (as $1),
// with the records of its second column.
func cited[T any](c conn, sql string, m map[string]*T) error {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	var k string
	var b []byte
	return c.each(sql, []any{keys}, []any{&k, &b}, func() error {
		v := new(T)
		m[k] = v
		return decode(b, v)
	})
}

// VerifyLedger walks the whole hash chain on one snapshot and reports the
// first broken link, if any, and whether the ledger extends each of heads,
// while writers go on.
func (db *DB) VerifyLedger(ctx context.Context, heads ...tlog.Tree) (consent.LedgerReport, error) {
	var chain consent.Chain
	chain.Expect(heads)
	var broken *consent.ChainError
	err := db.view(ctx, func(c conn) error {
		var seq int64
		var subID, prev string
		var evb, pb, tree []byte
		var address *string
		errStop := errors.New("stop")
		// An event left out Prev when it was the hash of the event before
		// (encodeEvent): the walk reads them in order, and Check finds a
		// changed event by its own hash, or the next event's.
		prevHash := func() (string, error) { return prev, nil }
		var before tlog.Hash // the leaf hash of the event before
		err := c.each("SELECT seq, subscriber, event, personal, tree, "+personalAddress+" FROM ledger l ORDER BY seq", nil,
			[]any{&seq, scanID(&subID), &evb, &pb, &tree, &address}, func() error {
				if err := c.ctx.Err(); err != nil {
					return err
				}
				var ev consent.Event
				if err := decodeEvent(evb, seq, subID, prevHash, c.shared(), &ev); err != nil {
					broken = &consent.ChainError{Seq: uint64(seq), Reason: "undecodable event"}
					return errStop
				}
				var p *consent.Personal
				if pb != nil {
					p = new(consent.Personal)
					if err := decodePersonal(pb, address, p, c.shared()); err != nil {
						broken = &consent.ChainError{Seq: ev.Seq, Reason: "undecodable personal record"}
						return errStop
					}
				}
				prev = ev.Hash
				err := chain.Check(&ev, p)
				if err == nil && tree != nil {
					err = chain.CheckStored(recordHashes(consent.Record(ev.Seq), chain.LeafHash(), before, tree))
				}
				if err == nil {
					before = chain.LeafHash()
				}
				if err != nil {
					if !errors.As(err, &broken) {
						return err
					}
					return errStop
				}
				return nil
			})
		if errors.Is(err, errStop) {
			return nil
		}
		if err != nil {
			return err
		}
		var headSeq int64
		var headHash string
		if err := c.q.QueryRow(c.ctx, "SELECT seq, hash FROM ledger_head").Scan(&headSeq, &headHash); err != nil {
			return err
		}
		if uint64(headSeq) != chain.Count() || headHash != chain.Head() {
			broken = &consent.ChainError{Seq: chain.Count() + 1, Reason: "events after this point are missing"}
			return nil
		}
		stored, err := storedTree(c)
		if err != nil {
			broken = &consent.ChainError{Seq: chain.Count(), Reason: err.Error()}
			return nil
		}
		if err := chain.CheckTree(stored); err != nil && !errors.As(err, &broken) {
			return err
		}
		return nil
	})
	return chain.Report(broken), err
}

// LedgerCounts counts the ledger events after sequence number after by
// type and returns the last sequence number read, for incremental
// counting: pass it back as after next time. From the start (after 0)
// it sums the counters of events by day instead of walking the ledger.
func (db *DB) LedgerCounts(ctx context.Context, after uint64) (map[consent.EventType]uint64, uint64, error) {
	if after == 0 {
		var counts map[consent.EventType]uint64
		var last int64
		err := db.view(ctx, func(c conn) error {
			days := consent.Counts{}
			var name string
			var n int64
			err := c.each("SELECT name, n FROM counters WHERE starts_with(name, $1)", []any{consent.CounterDayPrefix},
				[]any{&name, &n}, func() error {
					days[name] = n
					return nil
				})
			if err != nil {
				return err
			}
			counts = days.Events()
			return c.q.QueryRow(c.ctx, "SELECT seq FROM ledger_head").Scan(&last)
		})
		return counts, uint64(last), err
	}
	// The events after after, their type read from the record as the
	// bbolt store does (the row has no type column since migration 0020).
	counts := map[consent.EventType]uint64{}
	last := after
	var seq int64
	var b []byte
	c := db.read(ctx)
	err := c.each("SELECT seq, event FROM ledger WHERE seq > $1 ORDER BY seq", []any{int64(after)}, []any{&seq, &b}, func() error {
		var ev struct {
			Type consent.EventType `json:"type"`
		}
		if err := decodeShared(b, &ev, c.shared()); err != nil {
			return err
		}
		counts[ev.Type]++
		last = uint64(seq)
		return nil
	})
	return counts, last, err
}
