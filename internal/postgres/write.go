package postgres

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"optin/internal/bolt/record"
	"optin/internal/consent"

	"github.com/jackc/pgx/v5"
)

// maxBatch caps how many write calls share one transaction.
const maxBatch = 256

// batchTimeout bounds one write transaction, so a database that stops
// answering fails the writes waiting for it instead of holding them.
const batchTimeout = 30 * time.Second

// tx is a write transaction: every statement of the use cases in one
// batch, under the write lock.
type tx struct {
	conn
	// pipe holds the statements waiting to go out with the next read or
	// the commit.
	pipe *pipe
	// head is the ledger's head as this transaction left it; nil until
	// the first event is appended.
	head *chainHead
	// headDirty says the head row must be written before the commit.
	headDirty bool
	// hooks are the webhook endpoints, read once per transaction when
	// the first event is queued (hooksRead); writes to them drop it.
	hooks     []consent.Webhook
	hooksRead bool
	// tree holds the Merkle tree hashes the transaction computed; nil
	// until the first.
	tree *treeWrites
	// counts are the changes to the counters, written before the commit.
	counts consent.Counts
	// hasher hashes addresses for the suppression lookups of campaign
	// audiences (the suppression list's key).
	hasher *consent.Hasher
	// db is the store the transaction writes; wordings the hashes of the
	// wordings it stored, known to db once it commits.
	db       *DB
	wordings []string
	// numbered holds the shared strings the transaction numbered
	// (intern), known to db once it commits, and numbers the same
	// entries by string.
	numbered map[uint64]string
	numbers  map[string]uint64
	// catalogChanged says the transaction wrote forms or topics: the
	// cache is emptied when it commits (catalog).
	catalogChanged bool
	// proven holds, by subscriber and topic, the bits of the bases the
	// transaction's events proved (markEvidence) for subscribers not
	// stored then, for their row's insert; nil until the first.
	proven map[string]map[string]int16
	// keys holds the email_key of each subscriber the transaction wrote,
	// as its last write left it: a personal record of that address
	// appended after leaves it to the subscriber (appendEvent).
	keys map[string]string
	// provens holds the proven column of each subscriber in keys, and of
	// those markEvidence read, as the transaction left it.
	provens map[string][]byte
	// codes holds the topic codes the transaction gave (tx.code), known
	// to db once it commits.
	codes map[string]int16
	// ahead holds what signupState would read for the address keys of
	// the batch's signups, read in one statement when the transaction
	// began (readAhead); nil once a call other than a signup ran.
	ahead map[string]signupRow
}

// signupRow is what signupState reads of an address: the data of its
// suppression for every topic (nil if none) and its subscriber.
type signupRow struct {
	suppression []byte
	subscriber  subscriberRow
}

// chainHead is the last event of the ledger: its sequence number and
// hash.
type chainHead struct {
	seq  uint64
	hash string
}

// call is one write waiting for the committer.
type call struct {
	ctx  context.Context
	fn   func(t *tx) error
	done chan error
	// key is the address key a signup reads first (signupState), ""
	// for other writes.
	key string
}

// update runs fn in a write transaction and returns once the
// transaction is committed (durably: synchronous_commit is on), or
// failed. When ctx is done before the committer takes the write, fn does
// not run and ctx's error is returned; once taken, the write runs with
// its batch (or not, when ctx is done before fn's turn) and update waits
// for the outcome, at most batchTimeout, so fn never sets its results
// after update returned.
//
// Writes go through one committer goroutine that takes every call
// waiting at that moment, and those that arrive while its transaction
// waits for the write lock, and runs them in one transaction, so
// concurrent callers share one commit, while a lone call is committed at
// once. As with the bbolt store, fn may run more than once (when another
// call in its batch fails), so it must only change state through t and
// set its results afresh on every run.
func (db *DB) update(ctx context.Context, fn func(t *tx) error) error {
	return db.updateSignup(ctx, "", fn)
}

// updateSignup is update for a signup of the address with key, whose
// first read (signupState) the transaction makes ahead, in one statement
// for all the signups of its batch.
func (db *DB) updateSignup(ctx context.Context, key string, fn func(t *tx) error) error {
	if err := db.SchemaMoved(); err != nil {
		return err
	}
	c := &call{ctx: ctx, fn: fn, done: make(chan error, 1), key: key}
	select {
	case db.calls <- c:
	case <-db.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-c.done
}

// committer runs batches of writes until Close.
func (db *DB) committer() {
	defer close(db.committed)
	for {
		var first *call
		select {
		case first = <-db.calls:
		case <-db.closing:
			return
		}
		// The calls that reach the committer while the transaction
		// waits for the write lock join the batch (run's grow): with
		// several instances that wait is most of a transaction's time
		// (the others' transactions), and those calls would otherwise
		// each wait for it once more, in a transaction of their own.
		db.answer(db.run(db.gather([]*call{first}), true))
	}
}

// gather adds to batch the calls waiting for the committer now, up to
// maxBatch in all.
func (db *DB) gather(batch []*call) []*call {
	for len(batch) < maxBatch {
		select {
		case c := <-db.calls:
			batch = append(batch, c)
		default:
			return batch
		}
	}
	return batch
}

// signupsFirst orders calls with the signups first, each group in the
// order it came: every other call ends what the signups after it may
// take from the batch's read ahead (readAhead), and the calls gathered
// once the write lock is taken come after the mail worker's, say. The
// calls of one batch come from different callers at once, so their
// order is free.
func signupsFirst(calls []*call) []*call {
	out := make([]*call, 0, len(calls))
	for _, c := range calls {
		if c.key != "" {
			out = append(out, c)
		}
	}
	for _, c := range calls {
		if c.key == "" {
			out = append(out, c)
		}
	}
	return out
}

// commit runs batch in one transaction and answers every call. When a
// call fails, the transaction is rolled back, that call runs alone so it
// gets its own answer, and the others are committed again without it.
func (db *DB) commit(batch []*call) { db.answer(db.run(batch, false)) }

// answer answers the calls of batch as run returned them with failed and
// err (see commit).
func (db *DB) answer(failed int, batch []*call, err error) {
	if failed == manyCalls && len(batch) > 1 {
		// A statement of several calls failed: each runs alone for
		// its own answer.
		for _, c := range batch {
			db.runAlone(c)
		}
		return
	}
	if failed < 0 || len(batch) == 1 {
		for _, c := range batch {
			c.done <- err
		}
		return
	}
	db.runAlone(batch[failed])
	db.commit(append(batch[:failed:failed], batch[failed+1:]...))
}

// runAlone runs c in a transaction of its own and answers it, unless run
// answered it already (its caller gave up).
func (db *DB) runAlone(c *call) {
	_, ran, err := db.run([]*call{c}, false)
	for _, c := range ran {
		c.done <- err
	}
}

// run runs calls in one transaction under the write lock and commits;
// with grow, the calls waiting for the committer once the lock is taken
// join them (gather), unless the wait for the lock took half of the
// transaction's time (batchTimeout). It returns the index of the call
// that failed (-1 when none did, or when the transaction itself failed),
// the calls it ran or was to run (not those it answered already, whose
// callers had given up), and the error.
func (db *DB) run(calls []*call, grow bool) (int, []*call, error) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	ptx, t, err := db.beginWrite(ctx)
	if err != nil {
		return -1, calls, err
	}
	defer ptx.Rollback(ctx)
	if dl, _ := ctx.Deadline(); grow && time.Until(dl) > batchTimeout/2 {
		// Not after a long wait for the lock: the calls taken now would
		// have only what is left of the first ones' time.
		calls = signupsFirst(db.gather(calls))
	}
	if err := t.readAhead(calls); err != nil {
		return -1, calls, err
	}
	// ran holds the calls run so far: a call whose caller gave up before
	// its turn is answered at once and left out (its fn never ran, so
	// the batch holds nothing of it), instead of failing the batch,
	// which would roll the others back and run them again.
	ran := make([]*call, 0, len(calls))
	for j, c := range calls {
		if err := c.ctx.Err(); err != nil {
			c.done <- err
			continue
		}
		if c.key == "" {
			// It may write what a signup read ahead.
			t.ahead = nil
		}
		i := len(ran)
		ran = append(ran, c)
		t.pipe.call = i
		if err := safeCall(c.fn, t); err != nil {
			return callOf(err, i), append(ran, calls[j+1:]...), errorOf(err)
		}
	}
	calls = ran
	// What follows is the transaction's own: its failure fails no call.
	t.pipe.call = -1
	if err := t.writeCounts(); err != nil {
		return -1, calls, err
	}
	if err := t.writeHead(); err != nil {
		return -1, calls, err
	}
	if err := t.pipe.flush(ctx); err != nil {
		return callOf(err, -1), calls, errorOf(err)
	}
	err = ptx.Commit(ctx)
	if t.catalogChanged {
		// Even after a failed commit: it may have committed.
		db.catalog.clear()
	}
	if err != nil {
		return -1, calls, fmt.Errorf("postgres: commit: %w", unavailable(err))
	}
	for _, h := range t.wordings {
		db.wordings.Store(h, true)
	}
	db.strings.add(t.numbered)
	db.codes.add(t.codes)
	if t.headDirty {
		db.keepEdge(t.tree, t.head)
	}
	return -1, calls, nil
}

// writeHead writes the ledger's head and its tree size as the
// transaction left them, in one statement. Appending an event computes
// its tree hashes, so a dirty head comes with a tree; a tree without a
// new head is buildTree's.
func (t *tx) writeHead() error {
	if t.tree == nil {
		return nil
	}
	var seq *int64
	var hash *string
	if t.headDirty {
		n := int64(t.head.seq)
		seq, hash = &n, &t.head.hash
	}
	err := t.exec("UPDATE ledger_head SET seq = coalesce($1, seq), hash = coalesce($2, hash), tree_size = $3", seq, hash, t.tree.size)
	if err != nil {
		return fmt.Errorf("postgres: ledger head: %w", err)
	}
	return nil
}

// readAhead reads, in one statement, what signupState reads for each
// signup among calls whose address no other call of the batch signs up:
// signups of distinct addresses write nothing another one reads, so
// these stay true until a call other than a signup runs. The statement
// is planned at each call (QueryExecModeCacheDescribe): a generic plan
// made while subscribers was nearly empty scanned it, and its connection
// kept it as the table grew (TestSubscribersNotReadWhole).
func (t *tx) readAhead(calls []*call) error {
	n := map[string]int{}
	for _, c := range calls {
		if c.key != "" {
			n[c.key]++
		}
	}
	var keys, hashes []string
	for k, m := range n {
		if m == 1 {
			keys = append(keys, k)
			hashes = append(hashes, t.db.hashKey(k))
		}
	}
	if len(keys) < 2 {
		return nil
	}
	t.ahead = make(map[string]signupRow, len(keys))
	var k string
	var r signupRow
	err := t.each(`SELECT u.k, (SELECT data FROM suppressions WHERE hash = u.h AND scope = $3), `+subscriberColumns+`
		FROM unnest($1::text[], $2::text[]) AS u(k, h) `+subscriberJoin("email_key = u.k"),
		[]any{pgx.QueryExecModeCacheDescribe, keys, hashes, consent.ScopeAll}, append([]any{&k, &r.suppression}, r.subscriber.dest()...), func() error {
			sub := r.subscriber
			sub.data = bytes.Clone(sub.data)
			t.ahead[k] = signupRow{suppression: bytes.Clone(r.suppression), subscriber: sub}
			return nil
		})
	if err != nil {
		t.ahead = nil
		return fmt.Errorf("postgres: signups: %w", err)
	}
	return nil
}

// beginWrite begins a write transaction (READ COMMITTED, whatever the
// database's default, for the schema check) and takes the write lock,
// then checks that the schema holds no version this optin does not know
// (lockChecked); the caller commits or rolls back ptx.
func (db *DB) beginWrite(ctx context.Context) (ptx pgx.Tx, t *tx, err error) {
	if err := db.SchemaMoved(); err != nil {
		return nil, nil, err
	}
	if ptx, err = db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}); err != nil {
		return nil, nil, fmt.Errorf("postgres: %w", unavailable(err))
	}
	if err := db.lockChecked(ctx, ptx, writeLocked, writeLock); err != nil {
		ptx.Rollback(ctx)
		return nil, nil, err
	}
	q := guarded{ptx}
	p := &pipe{tx: ptx, q: q, call: -1}
	t = &tx{conn: conn{ctx: ctx, q: p}, pipe: p, db: db, hasher: db.hasher}
	t.strs = &sharedStrings{db: db, ctx: ctx, t: t}
	return ptx, t, nil
}

// safeCall turns a panic in fn into an error, so one bad call cannot take
// the committer down.
func safeCall(fn func(t *tx) error, t *tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("postgres: panic in transaction: %v", r)
		}
	}()
	return fn(t)
}

// appendEvent seals ev onto the end of the ledger chain and stores it with
// its personal record and Merkle tree hashes. The write lock makes the
// chain one sequence across instances.
func appendEvent(t *tx, ev *consent.Event, p consent.Personal) error {
	if t.head == nil {
		var seq, treeSize int64
		var hash string
		if err := t.q.QueryRow(t.ctx, "SELECT seq, hash, tree_size FROM ledger_head").Scan(&seq, &hash, &treeSize); err != nil {
			return fmt.Errorf("postgres: ledger head: %w", err)
		}
		if treeSize != seq {
			return fmt.Errorf("postgres: the ledger tree covers %d of %d events (a read-write open converts it)", treeSize, seq)
		}
		t.head = &chainHead{seq: uint64(seq), hash: hash}
		if t.tree == nil {
			t.tree = t.db.treeAt(seq, hash)
		}
	}
	ev.Seq = t.head.seq + 1
	ev.Time = ev.Time.UTC().Truncate(time.Millisecond)
	p = p.Repaired()
	_, digest := p.Encode()
	ev.PersonalDigest = digest
	tree, err := t.treeHashes(ev.Seq, ev.Seal(t.head.hash))
	if err != nil {
		return err
	}
	// The hashes are of the JSON (LeafData, the personal record's
	// Encode); the rows hold the same records in the compact encoding,
	// which decodes to what re-encodes to that JSON.
	b, err := encodeEvent(ev, t.head.hash, t.shared())
	if err != nil {
		return err
	}
	pb, err := encodePersonal(t, ev.Subscriber, p)
	if err != nil {
		return err
	}
	err = t.bulkRow(bulkLedger, int64(ev.Seq), dbID(ev.Subscriber), b, pb, tree)
	if err != nil {
		return err
	}
	t.head = &chainHead{seq: ev.Seq, hash: ev.Hash}
	t.headDirty = true
	t.count(consent.EventDelta(ev))
	if err := markEvidence(t, ev); err != nil {
		return err
	}
	if err := queueEvent(t, ev); err != nil {
		return err
	}
	return answerCampaigns(t, ev)
}

// encodePersonal encodes p, the personal record of an event of
// subscriber id, for the ledger's personal column: without its address,
// starting with record.RefMagic, when the subscriber as the transaction
// wrote it holds that address as its email_key (migration 0016, as the
// bbolt store's records leave it); readers put it back from the
// subscriber (personalAddress). The record's digest, in the event, is of
// the whole record, computed before.
//
// The invariant: a RefMagic record's subscriber exists and its
// email_key is the record's address. It holds because the record is
// written short only after its subscriber was written in the same
// transaction with that key; a key that changes gets its records' address
// back first (restoreAddress, from trackSubscriber); and a subscriber
// goes only through forget, which clears its personal records first.
func encodePersonal(t *tx, id string, p consent.Personal) ([]byte, error) {
	if p.Email == "" || t.keys[id] != p.Email {
		return encodeShared(&p, t.shared())
	}
	p.Email = ""
	b, err := encodeShared(&p, t.shared())
	if err != nil {
		return nil, err
	}
	b[0] = record.RefMagic
	return b, nil
}

// personalAddress is the SQL of the address a personal record of ledger
// row l left to its subscriber (NULL for one that holds its own):
// columns that read l.personal read it beside it, for decodePersonal.
const personalAddress = `CASE WHEN substring(l.personal FROM 1 FOR 1) = '\xc3'::bytea THEN (SELECT s.email_key FROM subscribers s WHERE s.id = l.subscriber) END`

// decodePersonal decodes personal record b, whose shared strings are in
// strs, into p, putting back the address it left to its subscriber,
// which holds it as address.
func decodePersonal(b []byte, address *string, p *consent.Personal, strs record.Strings) error {
	if err := decodeShared(b, p, strs); err != nil {
		return err
	}
	if b[0] == record.RefMagic && p.Email == "" {
		if address == nil {
			return fmt.Errorf("postgres: a personal record left its address to its subscriber, who is missing")
		}
		p.Email = *address
	}
	return nil
}

// restoreAddress writes address back into the personal records of
// subscriber id that left it out (RefMagic), before the subscriber's
// email_key changes from address.
func restoreAddress(t *tx, id, address string) error {
	var seqs []int64
	var ps []consent.Personal
	var seq int64
	var b []byte
	err := t.each(`SELECT seq, personal FROM ledger WHERE subscriber = $1 AND substring(personal FROM 1 FOR 1) = '\xc3'::bytea`,
		[]any{dbID(id)}, []any{&seq, &b}, func() error {
			var p consent.Personal
			if err := decodePersonal(b, &address, &p, t.shared()); err != nil {
				return err
			}
			seqs, ps = append(seqs, seq), append(ps, p)
			return nil
		})
	if err != nil || len(seqs) == 0 {
		return err
	}
	// Encoded once the rows are read: a string new to the table (a
	// record written before migration 0019) is numbered on the
	// connection they came on.
	bs := make([][]byte, len(ps))
	for i := range ps {
		if bs[i], err = encodeShared(&ps[i], t.shared()); err != nil {
			return err
		}
	}
	return t.exec(`UPDATE ledger l SET personal = u.p FROM unnest($1::bigint[], $2::bytea[]) AS u(s, p) WHERE l.seq = u.s`, seqs, bs)
}

// answerCampaigns records, as the event is appended, the answer ev gives
// to each campaign that asked its subscriber (consent.PlanAnswer): the
// campaigns' counts are live.
func answerCampaigns(t *tx, ev *consent.Event) error {
	if !consent.Answers(ev) {
		return nil
	}
	var rs []*consent.Recipient
	var b []byte
	err := t.each("SELECT data FROM campaign_recipients WHERE subscriber = $1", []any{dbID(ev.Subscriber)}, []any{&b}, func() error {
		r := new(consent.Recipient)
		if err := decode(b, r); err != nil {
			return err
		}
		rs = append(rs, r)
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range rs {
		c := new(consent.Campaign)
		if ok, err := t.get(c, "SELECT data FROM campaigns WHERE id = $1", r.Campaign); err != nil || !ok {
			return err
		}
		if c.Counts.Excluded == nil {
			c.Counts.Excluded = map[string]int{}
		}
		if !consent.PlanAnswer(c, r, ev) {
			continue
		}
		if err := putRecipient(t, r); err != nil {
			return err
		}
		if err := putJSON(t, "campaigns", c.ID, c); err != nil {
			return err
		}
	}
	return nil
}

// enqueue writes job into the outbox, due at once.
func enqueue(t *tx, job *consent.Job) error {
	job.NextAt = job.Created
	b, err := encodeRecord(job)
	if err != nil {
		return err
	}
	var id int64
	err = t.q.QueryRow(t.ctx, "INSERT INTO outbox (id, next_at, subscriber, job) VALUES (nextval('outbox_ids'), $1, $2, $3) RETURNING id",
		job.NextAt, dbID(job.Subscriber), b).Scan(&id)
	job.ID = uint64(id)
	return err
}

// enqueueLater writes job into the outbox, due at once, without reading
// its id back (it goes out with the pipe): job.ID stays 0, for callers
// that do not need it.
func enqueueLater(t *tx, job *consent.Job) error {
	job.NextAt = job.Created
	b, err := encodeRecord(job)
	if err != nil {
		return err
	}
	return t.bulkRow(bulkOutbox, job.NextAt, dbID(job.Subscriber), b)
}

// audit appends an entry to the audit log inside the admin write's own
// transaction, so a write and its record commit or fail together.
func (db *DB) audit(t *tx, a consent.Actor, action, target string, count int) error {
	e := consent.AuditEntry{Time: db.Now(), Key: a.Name, KeyID: a.KeyID, Action: action, Target: target, Count: count}
	b, err := encode(e)
	if err != nil {
		return err
	}
	return t.exec("INSERT INTO audit (seq, data) VALUES (nextval('audit_seqs'), $1)", b)
}
