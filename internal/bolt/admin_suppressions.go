package bolt

import (
	"bytes"
	"context"
	"strings"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// suppressionCursor encodes a suppression key as a cursor: hash/scope.
func suppressionCursor(k []byte) string { return strings.Replace(string(k), "\x00", "/", 1) }

// Suppressions returns up to limit entries of the suppression list in key
// order after cursor. With a non-nil address only that address's entries
// are listed.
func (db *DB) Suppressions(ctx context.Context, addr *consent.Address, cursor string, limit int) (consent.SuppressionPage, error) {
	page := consent.SuppressionPage{Items: []consent.Suppression{}}
	var prefix []byte
	if addr != nil {
		prefix = pairKey(db.AddressHash(*addr), "")
	}
	start := prefix
	if cursor != "" {
		h, scope, ok := strings.Cut(cursor, "/")
		if !ok {
			return page, consent.Errorf(consent.EInvalid, "cursor must be a value from next_cursor")
		}
		start = pairKey(h, scope)
	}
	err := db.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketSuppressed).Cursor()
		k, v := c.Seek(start)
		if cursor != "" && bytes.Equal(k, start) {
			k, v = c.Next()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(page.Items) == limit {
				page.NextCursor = suppressionCursor(pairKey(page.Items[limit-1].Hash, page.Items[limit-1].Scope))
				return nil
			}
			var s consent.Suppression
			if err := decode(v, &s); err != nil {
				return err
			}
			page.Items = append(page.Items, s)
		}
		return nil
	})
	return page, err
}

// AddSuppression suppresses addr for topic ("" or "*": every topic) on the
// operator's authority (consent.ReasonAdmin): a complaint, a legal
// request, a hard bounce. Only an operator can lift it; a new double opt-in
// by the person does not. If the address is already suppressed for that
// scope, the existing entry is kept and returned with created false. An
// unknown topic is EInvalid.
func (db *DB) AddSuppression(ctx context.Context, a consent.Actor, addr consent.Address, topic, note string) (consent.Suppression, bool, error) {
	if topic == "" {
		topic = consent.ScopeAll
	}
	s := consent.Suppression{Hash: db.AddressHash(addr), Scope: topic, Reason: consent.ReasonAdmin, Source: a.Source()}
	if note != "" {
		s.Source += ": " + note
	}
	created := false
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		created = false
		if topic != consent.ScopeAll {
			if err := checkTopics(tx, []string{topic}); err != nil {
				return err
			}
		}
		var old consent.Suppression
		if ok, err := get(tx, bucketSuppressed, pairKey(s.Hash, topic), &old); err != nil {
			return err
		} else if ok {
			s = old
			return nil
		}
		s.Created = db.Now()
		if err := suppressAddress(tx, s, addr.Key); err != nil {
			return err
		}
		created = true
		return db.audit(tx, a, "suppression.add", consent.KeyID(s.Hash)+"/"+topic, 1)
	})
	return s, created, err
}

// DeleteSuppression removes the admin-added suppressions of the address
// with hash h: for scope only, or for every scope when scope is "". The
// person's own opt-outs and erasures are never removed this way: only a
// new double opt-in by the person lifts them. It returns the number
// removed; ENotFound when the hash has no entry, EConflict when none of
// its entries was added by an operator.
func (db *DB) DeleteSuppression(ctx context.Context, a consent.Actor, h, scope string) (int, error) {
	n := 0
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		n = 0
		prefix := pairKey(h, scope)
		if scope == "" {
			prefix = pairKey(h, "")
		}
		var doomed [][]byte
		found := 0
		c := tx.Bucket(bucketSuppressed).Cursor()
		for k, v := c.Seek(prefix); hasPrefix(k, prefix); k, v = c.Next() {
			if scope != "" && !bytes.Equal(k, prefix) {
				break
			}
			found++
			var s consent.Suppression
			if err := decode(v, &s); err != nil {
				return err
			}
			if s.Reason == consent.ReasonAdmin {
				doomed = append(doomed, bytes.Clone(k))
			}
		}
		if err := consent.CheckDeletable(found, len(doomed)); err != nil {
			return err
		}
		for _, k := range doomed {
			if err := tx.Bucket(bucketSuppressed).Delete(k); err != nil {
				return err
			}
		}
		n = len(doomed)
		return db.audit(tx, a, "suppression.delete", consent.DeleteTarget(h, scope), n)
	})
	return n, err
}
