package bolt

import (
	"context"
	"runtime"
	"sync"

	"go.etcd.io/bbolt"

	"optin/internal/consent"
)

// EachExportable calls fn for every subscriber that may leave optin in a
// bulk export, in id order, from one read transaction (a consistent
// snapshot; writers go on meanwhile). Suppressed addresses never leave: a
// subscriber suppressed for every topic is skipped, a subscription whose
// topic is suppressed is left out, and a subscriber with any suppression
// and no subscription left is skipped. fn must not keep sub after it returns; an
// error from fn (such as a closed connection) stops the walk. Records are
// decoded ahead on other goroutines (decodeAhead) while fn writes the
// ones before, so an export uses every core.
func (db *DB) EachExportable(ctx context.Context, fn func(sub *consent.Subscriber) error) error {
	return db.view(func(tx *bbolt.Tx) error {
		// One cursor on the suppressions for the whole walk: a read
		// transaction does not keep the buckets it opened, so each
		// tx.Bucket would search the root again (7% of an export's CPU).
		suppressed := tx.Bucket(bucketSuppressed).Cursor()
		return decodeAhead(ctx, tx.Bucket(bucketSubscribers).Cursor(), db.hasher.AppendHash, func(sub *consent.Subscriber, prefix []byte) error {
			if !exportable(suppressed, sub, prefix) {
				return nil
			}
			return fn(sub)
		})
	})
}

// decodeBatch is how many subscriber records one decoding goroutine takes
// at a time.
const decodeBatch = 256

// batch is a run of records read from a cursor and decoded by a worker.
type batch struct {
	vals [][]byte
	keys [][]byte
	subs []consent.Subscriber
	// prefixes are where each subscriber's suppressions would be:
	// pairKey(the hash of its address, "").
	prefixes [][]byte
	err      error
	done     chan struct{}
}

// decodeAhead calls fn for every subscriber under c, with the prefix of
// its suppressions' keys (pairKey of its address's hash, appended by
// hash, and ""), in key order, on the calling goroutine, until fn fails or ctx ends. The records
// are decoded and hashed by GOMAXPROCS goroutines a batch at a time, a few
// batches ahead of fn;
// only the calling goroutine touches the transaction (the workers read the
// values, which stay valid until it ends, and decodeAhead waits for them
// before returning). The pages under c are requested from the disk ahead
// of the walk too (readahead).
func decodeAhead(ctx context.Context, c *bbolt.Cursor, hash func(b []byte, key string) []byte, fn func(*consent.Subscriber, []byte) error) error {
	workers := max(1, runtime.GOMAXPROCS(0))
	window := 2 * workers
	work := make(chan *batch, window)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				b.decode(hash)
				close(b.done)
			}
		}()
	}
	defer wg.Wait()
	defer close(work)
	var queue, free []*batch
	ra := readahead{b: c.Bucket()}
	k, v := c.First()
	for {
		for len(queue) < window && k != nil {
			if _, err := ra.at(k); err != nil {
				return err
			}
			var b *batch
			if n := len(free); n > 0 {
				b, free = free[n-1], free[:n-1]
			} else {
				b = &batch{vals: make([][]byte, 0, decodeBatch), subs: make([]consent.Subscriber, decodeBatch),
					prefixes: make([][]byte, decodeBatch)}
			}
			b.vals, b.keys = b.vals[:0], b.keys[:0]
			for ; k != nil && len(b.vals) < decodeBatch; k, v = c.Next() {
				b.vals, b.keys = append(b.vals, v), append(b.keys, k)
			}
			b.done = make(chan struct{})
			work <- b
			queue = append(queue, b)
		}
		if len(queue) == 0 {
			return nil
		}
		b := queue[0]
		queue = queue[1:]
		<-b.done
		if b.err != nil {
			return b.err
		}
		for i := range b.subs {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(&b.subs[i], b.prefixes[i]); err != nil {
				return err
			}
		}
		free = append(free, b)
	}
}

// decode decodes b's values into b.subs and hashes their addresses into
// b.prefixes, reusing their bytes from the batch before.
func (b *batch) decode(hash func([]byte, string) []byte) {
	b.subs, b.prefixes, b.err = b.subs[:len(b.vals)], b.prefixes[:len(b.vals)], nil
	for i, v := range b.vals {
		b.subs[i] = consent.Subscriber{}
		if err := decodeAt(nil, bucketSubscribers, b.keys[i], v, &b.subs[i]); err != nil {
			b.err = err
			return
		}
		b.prefixes[i] = append(hash(b.prefixes[i][:0], consent.AddressKey(b.subs[i].Email)), 0) // pairKey(hash, "")
	}
}

// eachSubscriber calls fn for every subscriber in tx, in id order, until
// fn fails or ctx ends.
func eachSubscriber(ctx context.Context, tx *bbolt.Tx, fn func(*consent.Subscriber) error) error {
	c := tx.Bucket(bucketSubscribers).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		sub := new(consent.Subscriber)
		if err := decodeAt(tx, bucketSubscribers, k, v, sub); err != nil {
			return err
		}
		if err := fn(sub); err != nil {
			return err
		}
	}
	return nil
}

// exportable drops sub's suppressed subscriptions and reports whether
// anything of sub may be exported; c is a cursor on the suppressions and
// prefix where sub's would be (pairKey of its address's hash, "").
func exportable(c *bbolt.Cursor, sub *consent.Subscriber, prefix []byte) bool {
	k, _ := c.Seek(prefix)
	if !hasPrefix(k, prefix) {
		return true // the common case: one seek, no entry
	}
	for ; hasPrefix(k, prefix); k, _ = c.Next() {
		scope := string(k[len(prefix):])
		if scope == consent.ScopeAll {
			return false
		}
		delete(sub.Subscriptions, scope)
	}
	return len(sub.Subscriptions) > 0
}
