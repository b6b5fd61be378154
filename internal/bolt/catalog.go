package bolt

import (
	"context"
	"sync"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// catalog caches decoded topics and forms: every signup and every mail
// reads them, and they change only through the few writers that go
// through updateCatalog. That empties the cache once their transaction is
// over; a read that began before cannot store what it read, because the
// generation it started under has passed.
type catalog struct {
	mu     sync.Mutex
	gen    uint64
	topics map[string]consent.Topic
	forms  map[string]consent.Form
}

func (c *catalog) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *catalog) topic(id string) (consent.Topic, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.topics[id]
	return t.Clone(), ok
}

// form returns a copy: callers may change what they get.
func (c *catalog) form(id string) (consent.Form, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.forms[id]
	return f.Clone(), ok
}

// keep runs store, which adds to the cache, unless the catalog changed
// since generation gen.
func (c *catalog) keep(gen uint64, store func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen == c.gen {
		store()
	}
}

func (c *catalog) keepTopic(gen uint64, t consent.Topic) {
	c.keep(gen, func() { c.topics[t.ID] = t.Clone() })
}

func (c *catalog) keepForm(gen uint64, f consent.Form) {
	c.keep(gen, func() { c.forms[f.ID] = f.Clone() })
}

// drop empties the cache and starts a new generation.
func (c *catalog) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.topics, c.forms = map[string]consent.Topic{}, map[string]consent.Form{}
}

// updateCatalog runs fn as a write transaction that may change topics or
// forms, and empties the catalog cache after it.
func (db *DB) updateCatalog(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	defer db.catalog.drop()
	return db.update(ctx, fn)
}
