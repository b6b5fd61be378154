package bolt

import (
	"context"
	"strings"
	"unicode/utf8"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// maxScan bounds the records one page of a filtered listing reads, so a
// rare filter cannot turn one request into a walk over the whole store; a
// page may then hold fewer items than asked for, with a next cursor.
const maxScan = 20000

// FindSubscribers returns one page of the subscribers matching f in id
// order (the newest first with f.Newest), and the cursor of the next page
// ("" at the end). It reads the candidates from the index that serves f
// (see candidates) within the ids of f's creation range. Ids start with their creation time and end with random
// bits, so the order is stable while others write: a subscriber added
// meanwhile sorts before or after the cursor, and no page repeats or
// skips one that existed when the listing began (unless it was erased).
func (db *DB) FindSubscribers(ctx context.Context, f consent.SubscriberFilter) ([]*consent.Subscriber, string, error) {
	var out []*consent.Subscriber
	next := ""
	// after reports whether id comes after the cursor in the listing.
	after := func(id string) bool { return f.Cursor == "" || (id < f.Cursor) == f.Newest && id != f.Cursor }
	if addr, err := consent.ParseAddress(f.Query); err == nil {
		// A whole address is an exact lookup through the address index.
		f.Query = ""
		err := db.view(func(tx *bbolt.Tx) error {
			sub, err := subscriberByKey(tx, addr.Key)
			if sub != nil && after(sub.ID) && f.Match(sub, db.Now()) {
				out = append(out, sub)
			}
			return err
		})
		return out, "", err
	}
	err := db.view(func(tx *bbolt.Tx) error {
		out, next = nil, ""
		if err := derivedReady(tx); err != nil {
			return err
		}
		now := db.Now()
		_, cut := consent.DormantCutoff(now, f.DormantAfter)
		cutoff := timeKey(cut)
		// Ids start with their creation time: a creation range is a range
		// of ids, where the listing starts (an id equal to lo would need
		// 128 random bits of zero) and ends.
		lo, hi := f.IDRange()
		from := f.Cursor
		if !f.Newest && from < lo {
			from = lo
		}
		if f.Newest && hi != "" && (from == "" || from > hi) {
			from = hi
		}
		src := candidates(tx, f, from)
		subs := tx.Bucket(bucketSubscribers)
		part := newRawPart(f.Query)
		last := ""
		for scanned := 0; ; scanned++ {
			id := src.next()
			if id == nil || !f.Newest && hi != "" && string(id) >= hi || f.Newest && string(id) < lo {
				return nil
			}
			if len(out) == f.Limit {
				next = out[len(out)-1].ID
				return nil
			}
			if scanned == maxScan {
				next = last
				return nil
			}
			last = string(id)
			if !indexMatch(tx, f, id, cutoff) {
				continue
			}
			v := getStored(subs, bucketSubscribers, id)
			if v == nil || part.absent(v) {
				continue
			}
			s := new(consent.Subscriber)
			if err := decodeAt(tx, bucketSubscribers, id, v, s); err != nil {
				return err
			}
			if f.Match(s, now) {
				out = append(out, s)
			}
		}
	})
	return out, next, err
}

// rawPart is a search for part of an address or a name, in lower case,
// checked in a stored record's JSON before the record is decoded: most
// records of a search fail it, and looking at their bytes costs a
// fraction of decoding them. nil when the check cannot be made.
type rawPart []byte

// newRawPart returns the check for query q, or nil when q is empty or
// holds a character outside printable ASCII or one JSON escapes (", \,
// <, >, &): for any other q, a name or an address holding q in any case
// holds it, byte for byte, in the record's JSON.
func newRawPart(q string) rawPart {
	if q == "" {
		return nil
	}
	for i := range len(q) {
		if c := q[i]; c < 0x20 || c > 0x7e || strings.IndexByte(`"\<>&`, c) >= 0 {
			return nil
		}
	}
	return rawPart(strings.ToLower(q))
}

// absent reports whether record v cannot match: it is all ASCII (so
// lowering its letters is what strings.ToLower does to them; a Kelvin
// sign, say, lowers to k) and does not hold the part in any case.
func (p rawPart) absent(v []byte) bool {
	if p == nil {
		return false
	}
	for _, c := range v {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	for i := 0; i+len(p) <= len(v); i++ {
		if equalFoldASCII(v[i:i+len(p)], p) {
			return false
		}
	}
	return true
}

// equalFoldASCII reports whether a equals lower, which is in lower case,
// with a's ASCII letters lowered.
func equalFoldASCII(a, lower []byte) bool {
	for i, c := range a {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// RecordActivity records act of subscriber id (consent.PlanActivity):
// the activity event with a as its source and, for a customer activity
// later than the last one, the new last purchase, which makes a prospect a
// customer and a dormant customer active again. An invalid activity (one
// in the future, say) is EInvalid; an unknown subscriber ENotFound.
func (db *DB) RecordActivity(ctx context.Context, a consent.Actor, id string, act consent.Activity, customer bool) (*consent.Subscriber, error) {
	var sub *consent.Subscriber
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		now := db.Now()
		checked, err := consent.NewActivity(act.Kind, act.At, act.Reason, now)
		if err != nil {
			return err
		}
		checked.Assessment = act.Assessment
		if sub, err = loadSubscriber(tx, id); err != nil {
			return err
		}
		reg, err := register(tx)
		if err != nil {
			return err
		}
		if err := reg.Cite(act.Assessment, sub.UnderLegitimateInterest()); err != nil {
			return err
		}
		ev, personal := consent.PlanActivity(sub, checked, customer, a.Source(), now, db)
		if err := put(tx, bucketSubscribers, []byte(id), sub); err != nil {
			return err
		}
		if err := appendEvent(tx, ev, personal); err != nil {
			return err
		}
		return db.audit(tx, a, "subscriber.activity", id, 1)
	})
	return sub, err
}

// EraseSubscriber erases subscriber id with the same semantics as the
// person's own erasure (see Erase), recording a as the source, and audits
// it in the same transaction.
func (db *DB) EraseSubscriber(ctx context.Context, a consent.Actor, id string) error {
	return db.update(ctx, func(tx *bbolt.Tx) error {
		if err := db.erase(tx, id, a.Source()); err != nil {
			return err
		}
		return db.audit(tx, a, "subscriber.erase", id, 1)
	})
}

// WithdrawFor unsubscribes subscriber id from topic ("" = every topic) on
// the person's word: the withdrawal and suppression of Unsubscribe, with
// channel operator and the reason in the event's personal record, and the
// audit entry, in one transaction.
func (db *DB) WithdrawFor(ctx context.Context, a consent.Actor, id, topic, reason string) ([]string, error) {
	reason, err := consent.OperatorReason(reason)
	if err != nil {
		return nil, err
	}
	var changed []string
	err = db.update(ctx, func(tx *bbolt.Tx) error {
		changed = nil
		sub, err := loadSubscriber(tx, id)
		if err != nil {
			return err
		}
		if topic != "" && sub.Subscriptions[topic] == nil && tx.Bucket(bucketTopics).Get([]byte(topic)) == nil {
			return consent.Errorf(consent.EInvalid, "topic %q does not exist", consent.Truncate(topic, 64))
		}
		in := consent.ConfirmInput{Now: db.Now(), Note: reason}
		if changed, err = db.withdrawScope(tx, sub, topic, consent.ChannelOperator, in); err != nil {
			return err
		}
		return db.audit(tx, a, "subscriber.unsubscribe", id, len(changed))
	})
	return changed, err
}
