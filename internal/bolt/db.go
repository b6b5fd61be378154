package bolt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"optin/internal/bolt/record"
	"optin/internal/consent"
)

// Options configures a DB.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the source of identifiers; nil means crypto/rand.
	Rand io.Reader
	// MessageIDDomain is the right-hand side of generated Message-IDs.
	MessageIDDomain string
	// Policy holds the double-opt-in rules.
	Policy consent.Policy
	// HMACKey keys the address hashes of the suppression list; at least
	// 32 bytes. It must never change, or suppressed addresses would no
	// longer be recognised.
	HMACKey []byte
	// ReadOnly opens an existing database for reading only: Open fails
	// when the file does not exist, creates and changes nothing, and
	// every write fails. Other read-only opens may share the file.
	ReadOnly bool
	// Progress, when not nil, hears how far the rebuild of the counters
	// and indexes on open has come: after each chunk it commits, what it
	// walks ("subscribers", "requests", "ledger events") and how many
	// records the rebuild has walked in all, across interrupted opens.
	// It runs on Open's goroutine.
	Progress func(step string, done int64)
	// Offline says that nothing else writes while the database is open:
	// an admin command run with the service stopped. An import then
	// writes larger transactions (importChunkOffline rows), which in a
	// running service would make signups wait too long.
	Offline bool
	// chunk is how many records one transaction of that rebuild walks;
	// 0 means derivedChunk. Tests lower it.
	chunk int
}

// DB is optin's store. It is safe for concurrent use.
type DB struct {
	bolt *bbolt.DB
	// calls carries write transactions to the committer goroutine.
	calls chan *call
	// alone carries work that needs the database to itself between two
	// of the committer's transactions (exclusive).
	alone     chan func()
	closing   chan struct{}
	committed chan struct{} // closed when the committer has stopped
	closeOnce sync.Once
	now       func() time.Time
	rand      io.Reader
	domain    string
	policy    consent.Policy
	hmac      []byte
	catalog   catalog // decoded topics and forms
	hasher    *consent.Hasher
	limits    limits // the abuse defences' state, in memory
	// importChunk is how many rows one import transaction writes:
	// importChunk, or importChunkOffline when opened Offline.
	importChunk int
	// chunk is how many records one transaction of a rebuild of the
	// derived buckets walks (Options.chunk).
	chunk int
}

// ErrLocked is returned by Open when another process holds the database.
var ErrLocked = errors.New("bolt: database is locked by another process (is optin already running?)")

// Open opens or creates the database file at path, creating its directory
// and buckets (with o.ReadOnly it only opens an existing one). It fails
// after one second if another process holds the file.
func Open(path string, o Options) (*DB, error) {
	if !o.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("bolt: %w", err)
		}
	}
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: o.ReadOnly})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, ErrLocked
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	if len(o.HMACKey) < 32 {
		b.Close()
		return nil, errors.New("bolt: HMACKey must be at least 32 bytes")
	}
	db := &DB{bolt: b, now: o.Now, rand: o.Rand, domain: o.MessageIDDomain, policy: o.Policy, hmac: o.HMACKey,
		calls: make(chan *call), alone: make(chan func()), closing: make(chan struct{}), committed: make(chan struct{})}
	db.catalog.drop() // makes its maps
	db.hasher = consent.NewHasher(db.hmac)
	hashers.Store(b, db.hasher)
	if db.now == nil {
		db.now = time.Now
	}
	if db.rand == nil {
		db.rand = rand.Reader
	}
	if db.domain == "" {
		db.domain = "localhost"
	}
	if db.policy == (consent.Policy{}) {
		db.policy = consent.DefaultPolicy()
	}
	db.importChunk, db.chunk = importChunk, o.chunk
	if o.Offline {
		db.importChunk = importChunkOffline
	}
	if o.ReadOnly {
		err = b.View(checkBuckets)
	} else {
		err = upgrade(b, db.hasher, o)
	}
	if err != nil {
		hashers.Delete(b)
		b.Close()
		return nil, fmt.Errorf("bolt: init %s: %w", path, err)
	}
	go db.committer()
	return db, nil
}

// upgrade makes a new database's buckets, or brings an existing one to
// this optin's: it converts the records and the address index, builds
// the ledger tree and then the counters and indexes, each in chunks of
// transactions that a killed open resumes. The counters and indexes come
// last: they derive from the records, so they are built from the records
// as this optin stores them, and a conversion never touches them.
func upgrade(b *bbolt.DB, h *consent.Hasher, o Options) error {
	if err := b.Update(createBuckets); err != nil {
		return err
	}
	if err := convertRecords(b); err != nil {
		return err
	}
	if err := convertAddresses(b, h); err != nil {
		return err
	}
	if err := buildTree(b); err != nil {
		return err
	}
	return buildDerived(b, h, o.chunk, o.Progress)
}

// createBuckets makes a new database's buckets, schema version and
// derived version (it has no records, so its counters and indexes are
// complete), and checks an existing one's schema version.
func createBuckets(tx *bbolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keySchema) == nil {
		if err := meta.Put(keySchema, []byte(SchemaVersion)); err != nil {
			return err
		}
		if err := meta.Put(keyDerived, []byte(derivedVersion)); err != nil {
			return err
		}
	}
	return checkBuckets(tx)
}

// laterBuckets were added after schema version 1 without a conversion: a
// database a read-write open has not yet seen lacks them. A read-only
// open (the CLI's, which never reads them) accepts that.
var laterBuckets = [][]byte{bucketSessions, bucketIncidents, bucketWebhooks, bucketHookQueue, bucketHookDue, bucketHookParked,
	bucketAssessments, bucketTree, bucketCounters, bucketSubTopics, bucketCustomers, bucketPurchases, bucketStrings,
	bucketAddresses}

// checkBuckets reports whether the database has every bucket (but those
// in laterBuckets) and the schema version this optin reads.
func checkBuckets(tx *bbolt.Tx) error {
	for _, name := range allBuckets {
		if tx.Bucket(name) == nil && !slices.ContainsFunc(laterBuckets, func(b []byte) bool { return bytes.Equal(b, name) }) {
			return fmt.Errorf("not an optin database: bucket %q missing", name)
		}
	}
	if v := string(tx.Bucket(bucketMeta).Get(keySchema)); v != SchemaVersion && v != formerSchema && !slices.Contains(readableSchemas, v) {
		return fmt.Errorf("schema version %q, this optin needs %q", v, SchemaVersion)
	}
	return nil
}

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("bolt: database closed")

// Close stops the committer after the batch in progress and closes the
// database file. Writes must have finished before Close is called.
func (db *DB) Close() error {
	db.closeOnce.Do(func() { close(db.closing) })
	<-db.committed
	defer hashers.Delete(db.bolt)
	return db.bolt.Close()
}

// hashers holds the address hasher of each open database: track, which
// keeps the address hashes in the audience index (indexEntries), runs
// inside put, where only the transaction is at hand.
var hashers sync.Map // *bbolt.DB -> *consent.Hasher

// hasherOf returns the address hasher of tx's database.
func hasherOf(tx *bbolt.Tx) (*consent.Hasher, error) {
	if h, ok := hashers.Load(tx.DB()); ok {
		return h.(*consent.Hasher), nil
	}
	return nil, errors.New("bolt: writing a subscriber to a database not opened by Open")
}

// Now returns the store's clock reading, in UTC with millisecond precision,
// the resolution of every stored time.
func (db *DB) Now() time.Time { return db.now().UTC().Truncate(time.Millisecond) }

// Policy returns the double-opt-in policy the store applies.
func (db *DB) Policy() consent.Policy { return db.policy }

// ID returns a new identifier (see consent.NewID): its time prefix makes
// new records land at the end of their B+tree, so a batch of inserts
// dirties few pages.
func (db *DB) ID() string { return consent.NewID(db.now(), db.rand) }

// AddressHash returns the keyed hash under which an address is
// suppressed: hex HMAC-SHA256 of its case-folded form.
func (db *DB) AddressHash(a consent.Address) string { return db.hasher.Hash(a.Key) }

// hashKey is AddressHash for a case-folded address key.
func (db *DB) hashKey(key string) string { return db.hasher.Hash(key) }

// MessageID returns a new unique Message-ID (without angle brackets).
func (db *DB) MessageID() string { return db.ID() + "@" + db.domain }

// maxBatch caps how many write calls share one transaction.
const maxBatch = 512

// Under load, when the last transaction carried at least gatherFrom
// calls, the committer waits up to gatherWait after the first call of the
// next one for more to join it. A commit costs two fdatasyncs and a write
// of every page it touched, whether it carries 30 calls or 60. At an
// offered 10,000 signups/s with mail, over 60 s on two cores, gathering
// cut optin's CPU per signup with its mail from 141-143 us to 125-127 us
// and the mail p99 from 2.0-3.1 s to 0.61-0.79 s; the price is up to 2 ms
// more per signup under load, which 64 closed-loop clients feel (signups
// alone 10,000-10,500/s instead of 11,800-13,200). Below that load, or
// when the first call comes after a pause, a call is committed at once.
const (
	gatherFrom = 24
	gatherWait = 2 * time.Millisecond
)

// call is one write waiting for the committer.
type call struct {
	fn   func(tx *bbolt.Tx) error
	done chan error
	// state is callWaiting until the committer first runs fn
	// (callRunning) or the caller gives up waiting (callAbandoned); only
	// one of the two happens, so fn never runs after update returned.
	state atomic.Int32
}

// The states of a call.
const (
	callWaiting int32 = iota
	callRunning
	callAbandoned
)

// update runs fn in a read-write transaction and returns once the
// transaction is committed and fsynced, or failed. When ctx ends while
// the write still waits for the committer, update returns ctx's error at
// once and fn never runs; when it ends while fn runs, that transaction
// decides (it is one commit away).
//
// Writes go through one committer goroutine that practises group commit:
// it takes every call waiting at that moment and runs them in one
// transaction, so concurrent callers share one fsync, while a lone call is
// committed at once with no added delay; under load it gathers calls for
// up to gatherWait (see gather). Like bbolt's Batch, fn may run
// more than once (when another call in its batch fails), so it must only
// change state through tx and set its results afresh on every run.
func (db *DB) update(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	c := &call{done: make(chan error, 1)}
	c.fn = func(tx *bbolt.Tx) error {
		// A rerun (after another call of the batch failed) finds the
		// call running already.
		if !c.state.CompareAndSwap(callWaiting, callRunning) && c.state.Load() != callRunning {
			return ctx.Err() // abandoned: the caller has returned
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(tx)
	}
	select {
	case db.calls <- c:
	case <-db.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		if c.state.CompareAndSwap(callWaiting, callAbandoned) {
			return ctx.Err()
		}
		return <-c.done
	}
}

// exclusive runs fn on the committer's goroutine between two of its
// transactions, with the database to itself: no other write commits
// until fn returns, however many transactions fn runs. Once started, fn
// runs to its end even when ctx ends (work it cuts short, a rebuild of
// the derived buckets, would leave them unusable until the next open);
// ctx only bounds the wait for the committer. A panic in fn is an error.
func (db *DB) exclusive(ctx context.Context, fn func(b *bbolt.DB) error) error {
	done := make(chan error, 1)
	run := func() {
		done <- safeCall(func(*bbolt.Tx) error { return fn(db.bolt) }, nil)
	}
	select {
	case db.alone <- run:
	case <-db.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-done
}

// committer runs batches of writes until Close.
func (db *DB) committer() {
	defer close(db.committed)
	last, ended := 0, time.Now() // the last transaction's calls, and when it ended
	for {
		var first *call
		select {
		case first = <-db.calls:
		case fn := <-db.alone:
			fn()
			last, ended = 0, time.Now()
			continue
		case <-db.closing:
			return
		}
		wait := time.Duration(0)
		if last >= gatherFrom && time.Since(ended) < gatherWait { // still under load
			wait = gatherWait
		}
		batch := gather(first, db.calls, wait)
		last = len(batch)
		db.commit(batch)
		ended = time.Now()
	}
}

// gather returns first and the calls that follow it on calls: those
// already waiting, and with wait > 0 those that arrive within wait after
// first, up to maxBatch.
func gather(first *call, calls <-chan *call, wait time.Duration) []*call {
	batch := []*call{first}
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	for len(batch) < maxBatch {
		select {
		case c := <-calls:
			batch = append(batch, c)
			continue
		default:
		}
		if timeout == nil {
			break
		}
		select {
		case c := <-calls:
			batch = append(batch, c)
		case <-timeout:
			return batch
		}
	}
	return batch
}

// commit runs batch in one transaction and answers every call. When a call
// fails, the transaction is rolled back, that call runs alone so it gets
// its own answer, and the others are committed again without it.
func (db *DB) commit(batch []*call) {
	failed := -1
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		for i, c := range batch {
			if err := safeCall(c.fn, tx); err != nil {
				failed = i
				return err
			}
		}
		return nil
	})
	if failed < 0 || len(batch) == 1 {
		for _, c := range batch {
			c.done <- err
		}
		return
	}
	bad := batch[failed]
	bad.done <- db.bolt.Update(func(tx *bbolt.Tx) error { return safeCall(bad.fn, tx) })
	db.commit(append(batch[:failed:failed], batch[failed+1:]...))
}

// safeCall turns a panic in fn into an error, so one bad call cannot take
// the committer down.
func safeCall(fn func(tx *bbolt.Tx) error, tx *bbolt.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bolt: panic in transaction: %v", r)
		}
	}()
	return fn(tx)
}

// view runs fn in a read-only transaction.
func (db *DB) view(fn func(tx *bbolt.Tx) error) error { return db.bolt.View(fn) }

// get decodes the value at key into v. It reports whether key exists.
func get(tx *bbolt.Tx, bucket, key []byte, v any) (bool, error) {
	b := getStored(tx.Bucket(bucket), bucket, key)
	if b == nil {
		return false, nil
	}
	if ev, ok := v.(*consent.Event); ok && bytes.Equal(bucket, bucketLedger) {
		return true, decodeEvent(tx, key, b, ev)
	}
	return true, decodeAt(tx, bucket, key, b, v)
}

// decode decodes a stored value, in the compact encoding (package record)
// or as JSON.
func decode(b []byte, v any) error {
	if err := record.Unmarshal(b, v); err != nil {
		return fmt.Errorf("bolt: decode %T: %w", v, err)
	}
	return nil
}

// decodeAt decodes the value b stored at key k of bucket in tx into v,
// and restores what a record leaves to its key (see keyed). Requests and
// outbox jobs read their shared strings from tx (see sharedIn); tx may
// be nil for the other buckets.
func decodeAt(tx *bbolt.Tx, bucket, k, b []byte, v any) error {
	if sharedIn(bucket) {
		if err := record.UnmarshalWith(b, v, sharedStrings(tx)); err != nil {
			return fmt.Errorf("bolt: decode %T: %w", v, err)
		}
	} else if err := decode(b, v); err != nil {
		return err
	}
	switch x := v.(type) {
	case *consent.Subscriber:
		fromKey := x.ID == "" && bytes.Equal(bucket, bucketSubscribers)
		if fromKey {
			x.ID = record.IDString(k) // k as stored (subscriberKey) or written out
		}
		if b[0] == record.RefMagic && x.Created.IsZero() {
			if fromKey && len(k) == record.IDLen {
				// idTime(x.ID) without turning the id back into the
				// bytes it was just read from (4% of an export's CPU).
				x.Created = keyTime(k)
			} else {
				x.Created = idTime(x.ID)
			}
		}
		for t, s := range x.Subscriptions {
			if s != nil && s.Topic == "" {
				s.Topic = t
			}
		}
	case *consent.Request:
		if x.ID == "" && bytes.Equal(bucket, bucketRequests) {
			x.ID = string(k)
		}
		if b[0] == record.RefMagic && x.Created.IsZero() {
			x.Created = idTime(x.ID)
		}
	case *consent.Job:
		switch {
		case bytes.Equal(bucket, bucketOutbox) && len(k) == 16:
			if x.ID == 0 {
				x.ID = beUint64(k[8:])
			}
			if x.NextAt.IsZero() {
				x.NextAt = outboxDue(k)
			}
		case bytes.Equal(bucket, bucketParked) && len(k) == 8 && x.ID == 0:
			x.ID = beUint64(k)
		}
		if b[0] == record.RefMagic {
			return fillFromRequest(tx, x)
		}
	case *consent.Personal:
		if bytes.Equal(bucket, bucketPersonal) {
			return fillAddress(tx, k, b, x)
		}
	}
	return nil
}

// leaveOut returns v, about to be stored at key in bucket, without the
// fields that another record or its key give back, and whether it left
// any (the record is then stored with record.RefMagic, and decodeAt puts
// them back): a queued confirmation mail's fields its request holds
// (leaveToRequest), a subscriber's or request's creation time when its
// id starts with it.
func leaveOut(tx *bbolt.Tx, bucket, key []byte, v any) (any, bool, error) {
	switch x := v.(type) {
	case consent.Subscriber:
		return leaveOut(tx, bucket, key, &x)
	case consent.Request:
		return leaveOut(tx, bucket, key, &x)
	case *consent.Subscriber:
		if bytes.Equal(bucket, bucketSubscribers) && x.ID == string(key) && createdAtID(x.Created, x.ID) {
			c := *x
			c.Created = time.Time{}
			return &c, true, nil
		}
	case *consent.Request:
		if bytes.Equal(bucket, bucketRequests) && x.ID == string(key) && createdAtID(x.Created, x.ID) {
			c := *x
			c.Created = time.Time{}
			return &c, true, nil
		}
	}
	return leaveToRequest(tx, bucket, v)
}

// idTime returns the time an id of consent.NewID starts with (its first
// 6 bytes, milliseconds since 1970); zero for another id.
func idTime(id string) time.Time {
	b := record.ID(id)
	if len(b) != record.IDLen {
		return time.Time{}
	}
	return keyTime(b)
}

// keyTime is idTime of an id in its record.IDLen bytes.
func keyTime(b []byte) time.Time { return time.UnixMilli(int64(beUint64(b[:6]))).UTC() }

// createdAtID reports whether t is the time id starts with, exactly as
// idTime gives it back.
func createdAtID(t time.Time, id string) bool {
	at := idTime(id)
	return !at.IsZero() && t.Equal(at) && t.Location() == time.UTC
}

// keyed returns v without the fields its key in bucket holds, for the
// compact buckets: a subscriber's or request's id, an outbox job's id
// and due time, a parked job's id, and a subscription's topic, which is
// its key in the subscriber's map (decodeAt puts them back). A field
// that does not match its key stays.
func keyed(bucket, key []byte, v any) any {
	switch x := v.(type) {
	case consent.Subscriber:
		return keyed(bucket, key, &x)
	case consent.Request:
		return keyed(bucket, key, &x)
	case consent.Job:
		return keyed(bucket, key, &x)
	case *consent.Subscriber:
		if bytes.Equal(bucket, bucketSubscribers) {
			c := *x
			if c.ID == string(key) {
				c.ID = ""
			}
			c.Subscriptions = topicsKeyed(c.Subscriptions)
			return &c
		}
	case *consent.Request:
		if x.ID == string(key) && bytes.Equal(bucket, bucketRequests) {
			c := *x
			c.ID = ""
			return &c
		}
	case *consent.Job:
		c := *x
		switch {
		case bytes.Equal(bucket, bucketOutbox) && len(key) == 16:
			if c.ID == beUint64(key[8:]) {
				c.ID = 0
			}
			if due := outboxDue(key); c.NextAt.Equal(due) && c.NextAt.Location() == time.UTC {
				c.NextAt = time.Time{}
			}
		case bytes.Equal(bucket, bucketParked) && len(key) == 8 && c.ID == beUint64(key):
			c.ID = 0
		}
		return &c
	}
	return v
}

// topicsKeyed returns subs with each subscription whose topic is its
// key without it (schema version 7); subs itself is not changed.
func topicsKeyed(subs map[string]*consent.Subscription) map[string]*consent.Subscription {
	if subs == nil {
		return nil
	}
	out := make(map[string]*consent.Subscription, len(subs))
	for t, s := range subs {
		if s != nil && s.Topic == t {
			c := *s
			c.Topic = ""
			s = &c
		}
		out[t] = s
	}
	return out
}

// put stores v at key, in the compact encoding in the buckets of the
// records there are many of (compactBuckets) and as JSON in the others;
// a subscriber or request moves the counters and indexes with it
// (track).
func put(tx *bbolt.Tx, bucket, key []byte, v any) error {
	b, err := encodeAt(tx, bucket, key, v)
	if err != nil {
		return err
	}
	if tracked(bucket) {
		if err := track(tx, bucket, key, v); err != nil {
			return err
		}
	}
	return bucketOf(tx, bucket).Put(storedKey(bucket, key), b)
}

// encodeAt returns v encoded as put stores it at key in bucket.
func encodeAt(tx *bbolt.Tx, bucket, key []byte, v any) ([]byte, error) {
	var b []byte
	var err error
	switch {
	case compact(bucket) || sharedIn(bucket):
		short, ref, lerr := leaveOut(tx, bucket, key, v)
		if lerr != nil {
			return nil, lerr
		}
		var strs record.Strings
		if sharedIn(bucket) {
			strs = sharedStrings(tx)
		}
		b, err = record.MarshalWith(keyed(bucket, key, short), strs)
		if ref && err == nil {
			b[0] = record.RefMagic
		}
	default:
		b, err = json.Marshal(v)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: encode %s: %w", bucket, err)
	}
	return b, nil
}

// bucketOf returns the named bucket, set to fill its pages to 90% when its
// keys only ever grow (see appendOnly), instead of bbolt's 50%, which
// suits random inserts and leaves append-only trees half empty. Requests
// fill theirs to 80%: a request's record grows by about a seventh when
// its mail is marked sent and it is confirmed, long after its page was
// filled, and a page that no longer fits splits into one 90% full and
// one nearly empty (a confirmed signup's requests took 303 bytes of pages
// for 152 in use at 90%); at 80% the grown records still fit.
func bucketOf(tx *bbolt.Tx, name []byte) *bbolt.Bucket {
	b := tx.Bucket(name)
	switch {
	case bytes.Equal(name, bucketRequests):
		b.FillPercent = requestsFill
	case appendOnly(name):
		b.FillPercent = 0.9
	}
	return b
}

// requestsFill is how full bucket requests' pages are filled.
const requestsFill = 0.8

// appendEvent seals ev onto the end of the ledger chain and stores it with
// its personal record, subscriber index entry and Merkle tree hashes.
func appendEvent(tx *bbolt.Tx, ev *consent.Event, p consent.Personal) error {
	return appendEventOf(tx, ev, p, nil)
}

// appendEventOf is appendEvent for an event of fresh, when fresh is not
// nil: a subscriber new to the store (an import's), which tx stores after
// its events. Its personal record is stored as putting fresh would leave
// it (leaveAddress), without the address fresh holds, so that pass finds
// nothing to rewrite; and no index entry of fresh exists yet for the
// event's evidence to refresh (track reads it when it writes them).
func appendEventOf(tx *bbolt.Tx, ev *consent.Event, p consent.Personal, fresh *consent.Subscriber) error {
	meta := tx.Bucket(bucketMeta)
	var seq uint64
	var prev string
	if head := meta.Get(keyLedgerHead); head != nil {
		seq, prev = beUint64(head[:8]), string(head[8:])
	}
	ev.Seq = seq + 1
	ev.Time = ev.Time.UTC().Truncate(time.Millisecond)
	p = p.Repaired()
	_, digest := p.Encode()
	ev.PersonalDigest = digest
	leaf := ev.Seal(prev)
	key := u64(ev.Seq)
	stored, err := record.MarshalEvent(ev, prev, sharedStrings(tx))
	if err != nil {
		return err
	}
	if err := bucketOf(tx, bucketLedger).Put(key, stored); err != nil {
		return err
	}
	if err := storeTreeHashes(tx, ev.Seq, leaf); err != nil {
		return err
	}
	if fresh != nil {
		err = storeFreshPersonal(tx, ev.Seq, fresh.Email, &p)
	} else {
		err = storePersonal(tx, ev.Seq, ev.Subscriber, &p)
	}
	if err != nil {
		return err
	}
	v := evidenceValue(ev)
	if err := bucketOf(tx, bucketLedgerBySub).Put(ledgerBySubKey(ev.Subscriber, ev.Seq), v); err != nil {
		return err
	}
	if v != nil && fresh == nil { // it proves a basis, perhaps of a subscription indexed already
		if err := refreshEvidence(tx, ev); err != nil {
			return err
		}
	}
	if err := addCounts(tx, consent.EventDelta(ev)); err != nil {
		return err
	}
	if err := meta.Put(keyLedgerHead, append(u64(ev.Seq), ev.Hash...)); err != nil {
		return err
	}
	if err := queueEvent(tx, ev); err != nil {
		return err
	}
	return answerCampaigns(tx, ev)
}

// enqueue writes job into the outbox, due at once.
func enqueue(tx *bbolt.Tx, job *consent.Job) error {
	b := tx.Bucket(bucketOutbox)
	id, err := b.NextSequence()
	if err != nil {
		return err
	}
	job.ID = id
	job.NextAt = job.Created
	return put(tx, bucketOutbox, outboxKey(job.NextAt, job.ID), job)
}

func beUint64(b []byte) uint64 {
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
}

// hasPrefix reports whether k starts with prefix; for cursor scans.
func hasPrefix(k, prefix []byte) bool { return k != nil && bytes.HasPrefix(k, prefix) }

// DB is a consent.Store.
var _ consent.Store = (*DB)(nil)
