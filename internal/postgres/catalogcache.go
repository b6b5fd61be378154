package postgres

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// catalogChannel is the channel the triggers of migration 0011 notify
// when a transaction that changed forms or topics commits.
const catalogChannel = "optin_catalog"

// catalog holds the forms and topics this instance read, decoded (every
// caller gets its own copy of their maps and slices), so that a signup's
// two reads of them cost neither a round trip nor a decoding. It is used only while this
// instance's listener is connected and listening on catalogChannel:
// every change, from any instance, then empties it as its notification
// arrives, and this instance's own writes empty it at once when they
// commit (forget), so a caller reads its own writes. Without the
// listener (starting, or the connection lost) every read goes to the
// database.
//
// Another instance's change reaches this one's readers when its
// notification arrives (PostgreSQL sends it at the commit), not at the
// commit itself: a signup that starts in that moment, milliseconds,
// still sees the form or topic as it was before.
type catalog struct {
	mu sync.Mutex
	// live says the listener listens; gen counts the times the cache was
	// emptied, so a read that began before is not stored after.
	live bool
	gen  uint64
	rows map[catalogKey]any
}

// catalogKey names a row of forms or topics.
type catalogKey struct{ table, id string }

// lookup returns the decoded row key (a consent.Form or consent.Topic),
// or nil, and the generation to pass to store after reading it from the
// database.
func (c *catalog) lookup(key catalogKey) (any, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live {
		return nil, c.gen
	}
	return c.rows[key], c.gen
}

// store keeps v as row key, read from the database since lookup returned
// gen, unless the cache was emptied since.
func (c *catalog) store(key catalogKey, v any, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live || c.gen != gen {
		return
	}
	if c.rows == nil {
		c.rows = map[catalogKey]any{}
	}
	c.rows[key] = v
}

// forget empties the cache and sets whether it may be used from now on.
func (c *catalog) forget(live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live = live
	c.gen++
	c.rows = nil
}

// catalogGet returns the row id of table (forms or topics), decoded as
// a T, from the cache, or reads it through db.read and caches it; ok is
// false when it does not exist. The cache keeps its own copy: clone
// copies what a caller could change in place (maps and slices), so that
// no caller changes what the next one reads.
func catalogGet[T any](ctx context.Context, db *DB, table, id string, clone func(T) T) (v T, ok bool, err error) {
	key := catalogKey{table, id}
	cached, gen := db.catalog.lookup(key)
	if cached != nil {
		return clone(cached.(T)), true, nil
	}
	var b []byte
	err = db.read(ctx).q.QueryRow(ctx, "SELECT data FROM "+table+" WHERE id = $1", id).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, false, nil
	}
	if err != nil {
		return v, false, err
	}
	if err := decode(b, &v); err != nil {
		return v, false, err
	}
	db.catalog.store(key, clone(v), gen)
	return v, true, nil
}

// listenCatalog keeps a connection of its own listening on
// catalogChannel until Close, emptying the cache on each notification,
// and connects again (after a pause) when the connection is lost, the
// cache unused meanwhile.
func (db *DB) listenCatalog() {
	defer close(db.listened)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-db.closing
		cancel()
	}()
	for ctx.Err() == nil {
		db.listenOnce(ctx)
		db.catalog.forget(false)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// listenOnce listens until the connection fails or ctx is done. The
// same connection hears the migrations of newer optins (schemaChannel):
// it reads the schema's versions when one notifies, and once listening,
// for one that committed while it was not (schemaguard.go).
func (db *DB) listenOnce(ctx context.Context) {
	c, err := pgx.ConnectConfig(ctx, db.pool.Config().ConnConfig.Copy())
	if err != nil {
		return
	}
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, "LISTEN "+catalogChannel); err != nil {
		return
	}
	if _, err := c.Exec(ctx, "LISTEN "+schemaChannel); err != nil {
		return
	}
	if err := db.readVersions(ctx); err != nil {
		return
	}
	// Listening now: every change committed from here on empties the
	// cache, so it may be filled.
	db.catalog.forget(true)
	for {
		n, err := c.WaitForNotification(ctx)
		if err != nil {
			return
		}
		if n.Channel == schemaChannel {
			if err := db.readVersions(ctx); err != nil {
				return
			}
			continue
		}
		db.catalog.forget(true)
	}
}

// clear empties the cache.
func (c *catalog) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.rows = nil
}
