package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

	"optin/internal/bolt/record"
)

// The table of shared strings (migration 0019): ledger events, their
// personal records and requests name the strings many of them share (a
// form, its source, a page, a wording's hash, a user agent, a
// Message-ID's domain) by a number in table strings, as the bbolt store
// does in its bucket (record.Strings). A write transaction numbers a new
// string under the write lock, so no two instances give one number twice;
// a number is known to an instance once its transaction has committed
// (stringCache), and a number another instance gave is read from the
// table when first met.

// maxCachedStrings bounds the entries a stringCache holds: the table
// grows with every user agent that signs up, which would otherwise all
// stay in memory. A full cache starts again empty; the strings in use
// come back, one statement each.
const maxCachedStrings = 10_000

// stringCache holds entries of the table of strings that are committed:
// a number given in a transaction that has not committed (or rolled
// back, when the number may go to another string) is never here.
type stringCache struct {
	mu       sync.RWMutex
	byString map[string]uint64
	byNumber map[uint64]string
}

// number returns the number of s, when known.
func (c *stringCache) number(s string) (uint64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n, ok := c.byString[s]
	return n, ok
}

// string returns the string numbered n, when known.
func (c *stringCache) string(n uint64) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, ok := c.byNumber[n]
	return s, ok
}

// add adds committed entries, number to string.
func (c *stringCache) add(entries map[uint64]string) {
	if len(entries) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byNumber == nil || len(c.byNumber)+len(entries) > maxCachedStrings {
		c.byString, c.byNumber = map[string]uint64{}, map[uint64]string{}
	}
	for n, s := range entries {
		if len(c.byNumber) == maxCachedStrings {
			break // one write that numbered more (a load): read again when met
		}
		c.byString[s], c.byNumber[n] = n, s
	}
}

// sharedStrings is the table of strings as one use case sees it: the
// committed entries of the DB's cache, those its write transaction
// numbered, and the table.
type sharedStrings struct {
	db  *DB
	ctx context.Context
	t   *tx // the write transaction; nil in a read, which numbers nothing
}

// Intern returns the number of s, numbering it in the write transaction
// when it is new.
func (s *sharedStrings) Intern(str string) (uint64, error) {
	if n, ok := s.db.strings.number(str); ok {
		return n, nil
	}
	if s.t == nil {
		return 0, errors.New("postgres: a shared string numbered outside a write transaction")
	}
	return s.t.intern(str)
}

// Lookup returns the string numbered n.
func (s *sharedStrings) Lookup(n uint64) (string, error) {
	if str, ok := s.db.strings.string(n); ok {
		return str, nil
	}
	if s.t != nil {
		if str, ok := s.t.numbered[n]; ok {
			return str, nil
		}
	}
	return s.db.lookupString(s.ctx, n)
}

// internSQL returns the number of string $1, giving it the highest
// number plus one when it is new (under the write lock: no other
// transaction gives one meanwhile), and whether it was new.
const internSQL = `WITH f AS (SELECT n FROM strings WHERE s = $1),
	i AS (INSERT INTO strings (n, s) SELECT coalesce((SELECT max(n) FROM strings), 0) + 1, $1 WHERE NOT EXISTS (SELECT FROM f) RETURNING n)
	SELECT n, false FROM f UNION ALL SELECT n, true FROM i`

// intern returns the number of s in the table, numbering it when new: a
// number the transaction gives is known to the DB once it commits.
func (t *tx) intern(s string) (uint64, error) {
	if n, ok := t.numbers[s]; ok {
		return n, nil
	}
	var n int64
	var isNew bool
	if err := t.q.QueryRow(t.ctx, internSQL, []byte(s)).Scan(&n, &isNew); err != nil {
		return 0, fmt.Errorf("postgres: shared string: %w", err)
	}
	if !isNew { // committed before this transaction took the write lock
		t.db.strings.add(map[uint64]string{uint64(n): s})
		return uint64(n), nil
	}
	if t.numbered == nil {
		t.numbered, t.numbers = map[uint64]string{}, map[string]uint64{}
	}
	t.numbered[uint64(n)], t.numbers[s] = s, uint64(n)
	return uint64(n), nil
}

// lookupString reads the string numbered n from the table, on a
// connection of its own (db.lookups): a record is often decoded while
// its rows are read, which holds the connection they come on, and
// waiting for another connection of the pool while holding one could
// wait for ever once every connection waits so. A number met in a
// record is committed (the record came with it), unless the write
// transaction reading it gave it, which Lookup answers first.
func (db *DB) lookupString(ctx context.Context, n uint64) (string, error) {
	var b []byte
	err := db.lookups.QueryRow(ctx, "SELECT s FROM strings WHERE n = $1", int64(n)).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("postgres: shared string %d missing", n)
	}
	if err != nil {
		return "", fmt.Errorf("postgres: shared string %d: %w", n, unavailable(err))
	}
	s := string(b)
	db.strings.add(map[uint64]string{n: s})
	return s, nil
}

// shared returns the table of strings as c's use case sees it, or nil on
// a conn that has none (which then reads no record with shared strings).
func (c conn) shared() record.Strings {
	if c.strs == nil {
		return nil
	}
	return c.strs
}
