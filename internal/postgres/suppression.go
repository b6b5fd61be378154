package postgres

import (
	"context"
	"slices"
	"strings"

	"optin/internal/consent"
)

// suppressed returns the suppression that stops mail about topic to the
// address with hash h: an entry for the topic or for every topic. topic ""
// asks about ScopeAll only.
func suppressed(c conn, h, topic string) (*consent.Suppression, error) {
	for _, scope := range []string{topic, consent.ScopeAll} {
		if scope == "" {
			continue
		}
		s := new(consent.Suppression)
		ok, err := c.get(s, "SELECT data FROM suppressions WHERE hash = $1 AND scope = $2", h, scope)
		if err != nil {
			return nil, err
		}
		if ok {
			return s, nil
		}
	}
	return nil, nil
}

// suppress adds a suppression unless one for the same scope exists; the
// first reason is kept.
func suppress(t *tx, s consent.Suppression) error {
	b, err := encode(s)
	if err != nil {
		return err
	}
	return t.exec("INSERT INTO suppressions (hash, scope, data) VALUES ($1, $2, $3) ON CONFLICT (hash, scope) DO NOTHING",
		s.Hash, s.Scope, b)
}

// liftSuppressions removes the person's own suppressions of the address
// for topics, after they completed a double opt-in for them. A
// person's every-topic entry is narrowed to the topics they did not opt in
// to again: opting in to one topic does not undo withdrawing from the
// others. Operator-added entries stay.
func liftSuppressions(t *tx, h string, topics []string) error {
	// The every-topic entry and those of topics, in one round trip: a
	// confirmation makes it under the write lock.
	var all *consent.Suppression
	var lifted []string
	var scope string
	var b []byte
	err := t.each("SELECT scope, data FROM suppressions WHERE hash = $1 AND scope = ANY($2)",
		[]any{h, append([]string{consent.ScopeAll}, topics...)}, []any{&scope, &b}, func() error {
			s := new(consent.Suppression)
			if err := decode(b, s); err != nil {
				return err
			}
			switch {
			case scope == consent.ScopeAll:
				all = s
			case s.LiftedByOptIn():
				lifted = append(lifted, scope)
			}
			return nil
		})
	if err != nil {
		return err
	}
	if all != nil && all.LiftedByOptIn() {
		if err := t.exec("DELETE FROM suppressions WHERE hash = $1 AND scope = $2", h, consent.ScopeAll); err != nil {
			return err
		}
		var ids []string
		var id string
		if err := t.each("SELECT id FROM topics ORDER BY id", nil, []any{&id}, func() error {
			ids = append(ids, id)
			return nil
		}); err != nil {
			return err
		}
		for _, id := range ids {
			if slices.Contains(topics, id) {
				continue
			}
			narrowed := *all
			narrowed.Scope = id
			if err := suppress(t, narrowed); err != nil {
				return err
			}
		}
	}
	if len(lifted) == 0 {
		return nil
	}
	return t.exec("DELETE FROM suppressions WHERE hash = $1 AND scope = ANY($2)", h, lifted)
}

// Suppressed reports whether mail about topic to a is suppressed (by an
// entry for the topic or for every topic; topic "" asks about every-topic
// entries only).
func (db *DB) Suppressed(ctx context.Context, a consent.Address, topic string) (bool, error) {
	s, err := suppressed(db.read(ctx), db.AddressHash(a), topic)
	return s != nil, err
}

// blockedByOperator reports whether an operator suppressed the address
// with case-folded key for every topic: then optin sends it nothing at
// all, not even a confirmation or a preference link.
func (db *DB) blockedByOperator(c conn, key string) (bool, error) {
	s, err := suppressed(c, db.hashKey(key), "")
	return s != nil && !s.LiftedByOptIn(), err
}

// suppressionCursor encodes a suppression's key as a cursor: hash/scope.
func suppressionCursor(s consent.Suppression) string { return s.Hash + "/" + s.Scope }

// Suppressions returns up to limit entries of the suppression list in key
// order after cursor. With a non-nil address only that address's entries
// are listed.
func (db *DB) Suppressions(ctx context.Context, addr *consent.Address, cursor string, limit int) (consent.SuppressionPage, error) {
	page := consent.SuppressionPage{Items: []consent.Suppression{}}
	var afterHash, afterScope string
	if cursor != "" {
		var ok bool
		if afterHash, afterScope, ok = strings.Cut(cursor, "/"); !ok {
			return page, consent.Errorf(consent.EInvalid, "cursor must be a value from next_cursor")
		}
	}
	where, args := "(hash, scope) > ($1, $2)", []any{afterHash, afterScope}
	if cursor == "" {
		where = "(hash, scope) >= ($1, $2)"
	}
	if addr != nil {
		where += " AND hash = $4"
		args = append(args, max(limit, 0)+1, db.AddressHash(*addr))
	} else {
		args = append(args, max(limit, 0)+1)
	}
	var b []byte
	err := db.read(ctx).each("SELECT data FROM suppressions WHERE "+where+" ORDER BY hash, scope LIMIT $3", args, []any{&b}, func() error {
		if len(page.Items) == limit {
			if limit > 0 {
				page.NextCursor = suppressionCursor(page.Items[limit-1])
			}
			return nil
		}
		var s consent.Suppression
		if err := decode(b, &s); err != nil {
			return err
		}
		page.Items = append(page.Items, s)
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
	fresh := consent.Suppression{Hash: db.AddressHash(addr), Scope: topic, Reason: consent.ReasonAdmin, Source: a.Source()}
	if note != "" {
		fresh.Source += ": " + note
	}
	var s consent.Suppression
	created := false
	err := db.update(ctx, func(t *tx) error {
		s, created = fresh, false
		if topic != consent.ScopeAll {
			if err := checkTopics(t.conn, []string{topic}); err != nil {
				return err
			}
		}
		var old consent.Suppression
		if ok, err := t.get(&old, "SELECT data FROM suppressions WHERE hash = $1 AND scope = $2", s.Hash, topic); err != nil {
			return err
		} else if ok {
			s = old
			return nil
		}
		s.Created = db.Now()
		if err := suppressAddress(t, s, addr.Key); err != nil {
			return err
		}
		created = true
		return db.audit(t, a, "suppression.add", consent.KeyID(s.Hash)+"/"+topic, 1)
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
	err := db.update(ctx, func(t *tx) error {
		n = 0
		sql, args := "SELECT data FROM suppressions WHERE hash = $1", []any{h}
		if scope != "" {
			sql, args = sql+" AND scope = $2", append(args, scope)
		}
		var doomed []string
		found := 0
		var b []byte
		err := t.each(sql, args, []any{&b}, func() error {
			found++
			var s consent.Suppression
			if err := decode(b, &s); err != nil {
				return err
			}
			if s.Reason == consent.ReasonAdmin {
				doomed = append(doomed, s.Scope)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := consent.CheckDeletable(found, len(doomed)); err != nil {
			return err
		}
		if err := t.exec("DELETE FROM suppressions WHERE hash = $1 AND scope = ANY($2)", h, doomed); err != nil {
			return err
		}
		n = len(doomed)
		return db.audit(t, a, "suppression.delete", consent.DeleteTarget(h, scope), n)
	})
	return n, err
}
