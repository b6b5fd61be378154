package bolt

import (
	"context"
	"errors"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"optin/internal/consent"
)

// Subscriber returns the subscriber id, or an ENotFound *Error.
func (db *DB) Subscriber(ctx context.Context, id string) (*consent.Subscriber, error) {
	sub := new(consent.Subscriber)
	err := db.view(func(tx *bbolt.Tx) error { return mustGet(tx, bucketSubscribers, id, sub, "subscriber") })
	if err != nil {
		return nil, err
	}
	return sub, nil
}

// SubscriberByAddress returns the subscriber holding a, or an ENotFound
// *Error.
func (db *DB) SubscriberByAddress(ctx context.Context, a consent.Address) (*consent.Subscriber, error) {
	var sub *consent.Subscriber
	err := db.view(func(tx *bbolt.Tx) error {
		var err error
		sub, err = subscriberByKey(tx, a.Key)
		return err
	})
	if err == nil && sub == nil {
		err = consent.Errorf(consent.ENotFound, "subscriber not found")
	}
	return sub, err
}

// Events returns the ledger events of subscriber id in order, each with
// its personal record and the wording it cites: the proof of consent.
func (db *DB) Events(ctx context.Context, id string) ([]consent.EventRecord, error) {
	var out []consent.EventRecord
	err := db.view(func(tx *bbolt.Tx) error {
		for _, seq := range subscriberEvents(tx, id) {
			var r consent.EventRecord
			if _, err := get(tx, bucketLedger, seq, &r.Event); err != nil {
				return err
			}
			var p consent.Personal
			if ok, err := get(tx, bucketPersonal, seq, &p); err != nil {
				return err
			} else if ok {
				r.Personal = &p
			}
			if r.Wording != "" {
				var w consent.Wording
				if ok, err := get(tx, bucketWordings, []byte(r.Wording), &w); err != nil {
					return err
				} else if ok {
					r.WordingText = &w
				}
			}
			if r.Assessment != "" {
				as := new(consent.Assessment)
				if ok, err := get(tx, bucketAssessments, []byte(r.Assessment), as); err != nil {
					return err
				} else if ok {
					r.AssessmentRecord = as
				}
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// VerifyLedger walks the whole hash chain in one read transaction and
// reports the first broken link, if any, and whether the ledger extends
// each of heads. The walk sees a consistent snapshot while writers go on.
func (db *DB) VerifyLedger(ctx context.Context, heads ...tlog.Tree) (consent.LedgerReport, error) {
	var chain consent.Chain
	chain.Expect(heads)
	var broken *consent.ChainError
	err := db.view(func(tx *bbolt.Tx) error {
		pb := tx.Bucket(bucketPersonal)
		size := treeSize(tx)
		c := tx.Bucket(bucketLedger).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			var ev consent.Event
			if err := decodeEvent(tx, k, v, &ev); err != nil {
				broken = &consent.ChainError{Seq: beUint64(k), Reason: "undecodable event"}
				return nil
			}
			var p *consent.Personal
			if pv := pb.Get(k); pv != nil {
				p = new(consent.Personal)
				if err := decodeAt(tx, bucketPersonal, k, pv, p); err != nil {
					broken = &consent.ChainError{Seq: ev.Seq, Reason: "undecodable personal record"}
					return nil
				}
			}
			err := chain.Check(&ev, p)
			if n := consent.Record(ev.Seq); err == nil && n < size {
				err = chain.CheckStored(recordHashes(tx, n, chain.LeafHash()))
			}
			if err != nil {
				if !errors.As(err, &broken) {
					return err
				}
				return nil
			}
		}
		head := tx.Bucket(bucketMeta).Get(keyLedgerHead)
		switch {
		case head == nil && chain.Count() > 0:
			broken = &consent.ChainError{Seq: chain.Count(), Reason: "the chain head record is missing"}
			return nil
		case head != nil && (beUint64(head[:8]) != chain.Count() || string(head[8:]) != chain.Head()):
			broken = &consent.ChainError{Seq: chain.Count() + 1, Reason: "events after this point are missing"}
			return nil
		}
		stored, err := storedTree(tx)
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
	counts := map[consent.EventType]uint64{}
	last := after
	err := db.view(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bucketCounters); after == 0 && b != nil {
			days := consent.Counts{}
			prefix := []byte(consent.CounterDayPrefix)
			c := b.Cursor()
			for k, v := c.Seek(prefix); hasPrefix(k, prefix); k, v = c.Next() {
				days[string(k)] = counterValue(v)
			}
			counts = days.Events()
			if head := tx.Bucket(bucketMeta).Get(keyLedgerHead); head != nil {
				last = beUint64(head[:8])
			}
			return nil
		}
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
