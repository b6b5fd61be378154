package bolt

import (
	"context"
	"slices"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// suppressed returns the suppression that stops mail about topic to the
// address with hash h: an entry for the topic or for every topic. topic ""
// asks about ScopeAll only.
func suppressed(tx *bbolt.Tx, h, topic string) (*consent.Suppression, error) {
	for _, scope := range []string{topic, consent.ScopeAll} {
		if scope == "" {
			continue
		}
		var s consent.Suppression
		ok, err := get(tx, bucketSuppressed, pairKey(h, scope), &s)
		if err != nil {
			return nil, err
		}
		if ok {
			return &s, nil
		}
	}
	return nil, nil
}

// suppress adds a suppression unless one for the same scope exists; the
// first reason is kept.
func suppress(tx *bbolt.Tx, s consent.Suppression) error {
	k := pairKey(s.Hash, s.Scope)
	if tx.Bucket(bucketSuppressed).Get(k) != nil {
		return nil
	}
	return put(tx, bucketSuppressed, k, s)
}

// liftSuppressions removes the person's own suppressions of the address
// for topics, after they completed a double opt-in for them. A
// person's every-topic entry is narrowed to the topics they did not opt in
// to again: opting in to one topic does not undo withdrawing from the
// others. Operator-added entries stay.
func liftSuppressions(tx *bbolt.Tx, h string, topics []string) error {
	b := tx.Bucket(bucketSuppressed)
	var all consent.Suppression
	ok, err := get(tx, bucketSuppressed, pairKey(h, consent.ScopeAll), &all)
	if err != nil {
		return err
	}
	if ok && all.LiftedByOptIn() {
		if err := b.Delete(pairKey(h, consent.ScopeAll)); err != nil {
			return err
		}
		err := tx.Bucket(bucketTopics).ForEach(func(k, _ []byte) error {
			if slices.Contains(topics, string(k)) {
				return nil
			}
			narrowed := all
			narrowed.Scope = string(k)
			return suppress(tx, narrowed)
		})
		if err != nil {
			return err
		}
	}
	for _, t := range topics {
		var s consent.Suppression
		ok, err := get(tx, bucketSuppressed, pairKey(h, t), &s)
		if err != nil {
			return err
		}
		if ok && s.LiftedByOptIn() {
			if err := b.Delete(pairKey(h, t)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Suppressed reports whether mail about topic to a is suppressed (by an
// entry for the topic or for every topic; topic "" asks about every-topic
// entries only).
func (db *DB) Suppressed(ctx context.Context, a consent.Address, topic string) (bool, error) {
	var s *consent.Suppression
	err := db.view(func(tx *bbolt.Tx) error {
		var err error
		s, err = suppressed(tx, db.AddressHash(a), topic)
		return err
	})
	return s != nil, err
}

// blockedByOperator reports whether an operator suppressed the address
// with case-folded key for every topic: then optin sends it nothing at
// all, not even a confirmation or a preference link.
func (db *DB) blockedByOperator(tx *bbolt.Tx, key string) (bool, error) {
	s, err := suppressed(tx, db.hashKey(key), "")
	return s != nil && !s.LiftedByOptIn(), err
}
