package postgres

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"optin/internal/bolt/record"
	"optin/internal/consent"
)

// Reading and writing the records that many use cases share.

// subscriber returns subscriber id, or nil when it does not exist.
func subscriber(c conn, id string) (*consent.Subscriber, error) {
	return subscriberWhere(c, "s.id = $1", dbID(id))
}

// subscriberWhere returns the subscriber (as s) matching where, or nil.
func subscriberWhere(c conn, where string, args ...any) (*consent.Subscriber, error) {
	var r subscriberRow
	err := c.q.QueryRow(c.ctx, "SELECT "+subscriberColumns+" FROM subscribers s WHERE "+where, args...).Scan(r.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return r.decode()
}

// loadSubscriber returns subscriber id or an ENotFound *Error.
func loadSubscriber(c conn, id string) (*consent.Subscriber, error) {
	sub, err := subscriber(c, id)
	if err == nil && sub == nil {
		err = consent.Errorf(consent.ENotFound, "subscriber %q not found", id)
	}
	return sub, err
}

// subscriberByKey returns the subscriber holding the address with
// case-folded key, or nil.
func subscriberByKey(c conn, key string) (*consent.Subscriber, error) {
	return subscriberWhere(c, "s.email_key = $1", key)
}

// putSubscriber stores sub under its id and address, with its
// subscriptions (subs), and moves the counters with it: the statement
// returns the version it replaced (a statement does not see its own
// changes). A row inserted gets the bases the transaction's events proved
// (tx.proven); a row updated keeps its proven, and a topic new to it that
// has no bits there gets those its ledger events prove (provenOf).
func putSubscriber(t *tx, sub *consent.Subscriber) error {
	b, lastPurchase, subs, proven, err := subscriberValues(t, sub)
	if err != nil {
		return err
	}
	old := subscriberRow{id: sub.ID}
	var oldProven []byte
	err = t.q.QueryRow(t.ctx, `WITH old AS (SELECT email_key, data, proven FROM subscribers WHERE id = $1)
		INSERT INTO subscribers (id, email_key, data, last_purchase, subs, proven) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET email_key = EXCLUDED.email_key, data = EXCLUDED.data, last_purchase = EXCLUDED.last_purchase, subs = EXCLUDED.subs
		RETURNING coalesce((SELECT email_key FROM old), ''), (SELECT data FROM old), (SELECT proven FROM old)`,
		dbID(sub.ID), consent.AddressKey(sub.Email), b, lastPurchase, subs, proven).Scan(&old.key, &old.data, &oldProven)
	if err != nil {
		return err
	}
	was, err := old.decode()
	if err != nil {
		return err
	}
	if was != nil {
		if proven, err = provenCome(t, was, sub, oldProven); err != nil {
			return err
		}
	}
	return trackSubscriber(t, was, sub, proven)
}

// provenCome returns the proven column of sub, stored before as old with
// proven: with the bits the ledger proves for the topics new to it that
// proven has none of, written to the row when there are some.
func provenCome(t *tx, old, sub *consent.Subscriber, proven []byte) ([]byte, error) {
	var come []string
	codes := map[string]int16{}
	for topic := range sub.Subscriptions {
		if old.Subscriptions[topic] != nil {
			continue
		}
		code, err := t.code(topic)
		if err != nil {
			return nil, err
		}
		if provenBits(proven, code) == 0 {
			come = append(come, topic)
			codes[topic] = code
		}
	}
	if len(come) == 0 {
		return proven, nil
	}
	stored, err := provenOf(t.conn, sub.ID, come)
	if err != nil {
		return nil, err
	}
	next := proven
	for topic, bits := range stored {
		next = withProven(next, codes[topic], bits)
	}
	if bytes.Equal(next, proven) {
		return proven, nil
	}
	return next, t.exec("UPDATE subscribers SET proven = $2 WHERE id = $1", dbID(sub.ID), next)
}

// subscriberValues returns the columns of sub's row that putSubscriber
// and insertSubscriber write: its record, its last purchase (a copy: a
// queued row outlives the call), its subscriptions' elements and the
// bases the transaction's events proved before it was stored
// (tx.proven, taken).
func subscriberValues(t *tx, sub *consent.Subscriber) (b []byte, lastPurchase *time.Time, subs []int16, proven []byte, err error) {
	if b, err = encodeSubscriber(sub); err != nil {
		return nil, nil, nil, nil, err
	}
	if !sub.LastPurchase.IsZero() {
		lp := sub.LastPurchase
		lastPurchase = &lp
	}
	if subs, err = subsOf(t, sub); err != nil {
		return nil, nil, nil, nil, err
	}
	if proven, err = t.insertProven(sub.ID); err != nil {
		return nil, nil, nil, nil, err
	}
	return b, lastPurchase, subs, proven, nil
}

// insertSubscriber stores sub, a subscriber this transaction created
// (its id is new), and moves the counters with it. Unlike putSubscriber
// it reads nothing back, so it costs no round trip of its own (the
// pipe); an id that exists after all fails the call.
func insertSubscriber(t *tx, sub *consent.Subscriber) error {
	b, lastPurchase, subs, proven, err := subscriberValues(t, sub)
	if err != nil {
		return err
	}
	err = t.bulkRow(bulkSubscribers, dbID(sub.ID), consent.AddressKey(sub.Email), b, lastPurchase, subsText(subs), proven)
	if err != nil {
		return err
	}
	return trackSubscriber(t, nil, sub, proven)
}

// deleteSubscriber deletes subscriber id (when it exists), moving the
// counters with it.
func deleteSubscriber(t *tx, id string) error {
	var r subscriberRow
	err := t.each("DELETE FROM subscribers s WHERE s.id = $1 RETURNING "+subscriberColumns, []any{dbID(id)}, r.dest(), func() error { return nil })
	if err != nil {
		return err
	}
	old, err := r.decode()
	if err != nil || old == nil {
		return err
	}
	return trackSubscriber(t, old, nil, nil)
}

// encodeSubscriber encodes sub for the data column of subscribers
// without its ID, which the row's id column holds, and without its
// address when the row's email_key, the address case-folded, is the
// address itself (migration 0015): an id and, for most, an address
// fewer a subscriber. subscriberRow.decode puts them back.
func encodeSubscriber(sub *consent.Subscriber) ([]byte, error) {
	s := *sub
	s.ID = ""
	if consent.AddressKey(s.Email) == s.Email {
		s.Email = ""
	}
	return encodeRecord(&s)
}

// subscriberColumns are the columns of subscribers (as s, or nulls from
// an outer join) that a subscriberRow scans.
const subscriberColumns = "s.id, coalesce(s.email_key, ''), s.data"

// subscriberJoin returns the join of the subscriber (as s) matching
// cond, a condition on the row before it (its id or email_key), or
// nulls. The LIMIT keeps it a lookup in the index per row: a plain
// join, planned once while the table is nearly empty (a new database,
// a statement prepared on a pooled connection), may keep reading the
// whole table as it grows.
func subscriberJoin(cond string) string {
	return "LEFT JOIN LATERAL (SELECT id, email_key, data FROM subscribers WHERE " + cond + " LIMIT 1) s ON true"
}

// subscriberRow is a subscriber as subscriberColumns reads it.
type subscriberRow struct {
	id, key string
	data    []byte // nil: no subscriber
}

// dest returns the scan targets of subscriberColumns.
func (r *subscriberRow) dest() []any { return []any{scanID(&r.id), &r.key, &r.data} }

// decode decodes the row's subscriber; no row (nil data) is nil. Rows
// written before migration 0015 hold the id and address in the record
// too, the same.
func (r *subscriberRow) decode() (*consent.Subscriber, error) {
	if r.data == nil {
		return nil, nil
	}
	sub := new(consent.Subscriber)
	if err := decode(r.data, sub); err != nil {
		return nil, err
	}
	if sub.ID == "" {
		sub.ID = r.id
	}
	if sub.Email == "" {
		sub.Email = r.key
	}
	return sub, nil
}

// deleteRequests deletes the requests where (a condition on the
// requests table, with args), moving the counters with them.
func deleteRequests(t *tx, where string, args ...any) error {
	var b []byte
	d := consent.Counts{}
	err := t.each("DELETE FROM requests WHERE "+where+" RETURNING data", args, []any{&b}, func() error {
		r := new(consent.Request)
		if err := decodeShared(b, r, t.shared()); err != nil {
			return err
		}
		d.AddRequest(r, -1)
		return nil
	})
	t.count(d)
	return err
}

// requestColumns are the columns of requests (as r) that a requestRow
// scans.
const requestColumns = "r.subscriber, r.data, r.sent"

// requestRow is a request as requestColumns reads it.
type requestRow struct {
	subscriber string
	data       []byte
	sent       *time.Time
}

// dest returns the scan targets of requestColumns.
func (r *requestRow) dest() []any { return []any{scanID(&r.subscriber), &r.data, &r.sent} }

// decode decodes the row into request id, its shared strings in strs.
func (r *requestRow) decode(id string, strs record.Strings) (*consent.Request, error) {
	req, err := decodeRequest(id, r.subscriber, r.data, strs)
	if err != nil {
		return nil, err
	}
	withSent(req, r.sent)
	return req, nil
}

// request returns request id, or nil when it does not exist.
func request(c conn, id string) (*consent.Request, error) {
	var r requestRow
	err := c.q.QueryRow(c.ctx, "SELECT "+requestColumns+" FROM requests r WHERE r.id = $1", dbID(id)).Scan(r.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return r.decode(id, c.shared())
}

// encodeRequest encodes req for the data column of requests without its
// ID and Subscriber, which the row's id and subscriber columns hold
// (migration 0013): two ids fewer a request. decodeRequest puts them
// back; the code that only counts requests (RequestDelta) needs neither.
// Its form, source, page, wording hash and Message-ID's domain go into
// the table of shared strings strs (migration 0019).
func encodeRequest(req *consent.Request, strs record.Strings) ([]byte, error) {
	r := *req
	r.ID, r.Subscriber = "", ""
	return encodeShared(&r, strs)
}

// decodeRequest decodes the request of the row id with subscriber subID
// and record b, whose shared strings are in strs (rows written before
// migration 0013 hold the ids in b too, the same; rows written before
// migration 0019 hold every string).
func decodeRequest(id, subID string, b []byte, strs record.Strings) (*consent.Request, error) {
	req := new(consent.Request)
	if err := decodeShared(b, req, strs); err != nil {
		return nil, err
	}
	req.ID, req.Subscriber = id, subID
	return req, nil
}

// encodeEvent encodes ev for the event column of the ledger without
// what its row and the chain hold: its seq and subscriber, which are
// columns, and Prev, the hash of the event before it, prevHash; its
// time as its offset from its subscriber's id, and the strings many
// events share in the table of shared strings strs (migration 0019;
// record.MarshalEventApart, as the bbolt store writes events).
// decodeEvent puts them back; what is hashed, the event's JSON, is
// unchanged.
func encodeEvent(ev *consent.Event, prevHash string, strs record.Strings) ([]byte, error) {
	b, err := record.MarshalEventApart(ev, prevHash, strs)
	if err != nil {
		return nil, fmt.Errorf("postgres: encode %T: %w", ev, err)
	}
	return b, nil
}

// decodeEvent decodes into ev the event of the ledger row seq with
// subscriber subID and event b, whose shared strings are in strs;
// prevHash returns the hash of the event before it, asked only when b
// left it out. Rows written before migration 0014 hold the subscriber
// and Prev in b too, the same, and rows written before migration 0019
// their time and every string.
func decodeEvent(b []byte, seq int64, subID string, prevHash func() (string, error), strs record.Strings, ev *consent.Event) error {
	if err := record.UnmarshalEventApart(b, uint64(seq), subID, prevHash, strs, ev); err != nil {
		return fmt.Errorf("postgres: decode %T: %w", ev, err)
	}
	return nil
}

// ledgerRows is the FROM clause of a statement that reads ledger events
// (l) with the columns decodeEvent needs: ledgerColumns, scanned into a
// ledgerRow; p is the event before, whose hash is the event's Prev. It
// is looked up by its seq for each event read, as subscriberJoin looks
// up subscribers: with a plain join, the reads of the tree hashes that
// another instance's events left (readHashes) read the ledger whole,
// 867 times in a 10 s bench run of two instances (docs/performance.md;
// TestLedgerNotReadWhole).
const (
	ledgerRows    = "ledger l LEFT JOIN LATERAL (SELECT event FROM ledger WHERE seq = l.seq - 1 LIMIT 1) p ON true"
	ledgerColumns = "l.seq, l.subscriber, l.event, p.event"
)

// ledgerRow is a ledger event as ledgerColumns reads it.
type ledgerRow struct {
	seq        int64
	subscriber string
	event      []byte
	prev       []byte // the event before; nil for the first
}

// dest returns the scan targets of ledgerColumns.
func (r *ledgerRow) dest() []any { return []any{&r.seq, scanID(&r.subscriber), &r.event, &r.prev} }

// decode decodes the row's event into ev, its shared strings in strs.
func (r *ledgerRow) decode(ev *consent.Event, strs record.Strings) error {
	return decodeEvent(r.event, r.seq, r.subscriber, func() (string, error) {
		if r.prev == nil {
			return "", nil
		}
		return record.EventHash(r.prev)
	}, strs, ev)
}

// withSent gives req the time of the sent column (migration 0013, set
// by FinishJobs) as Sent, unless its record holds one, when req was
// still open then: what Request.MarkSent would have recorded at that
// time, so a mail dropped after its request closed records nothing.
func withSent(req *consent.Request, sent *time.Time) {
	if sent == nil || !req.Sent.IsZero() {
		return
	}
	before := func(end time.Time) bool { return end.IsZero() || sent.Before(end) }
	if before(req.Confirmed) && before(req.Canceled) && sent.Before(req.Expires) {
		req.Sent = *sent
	}
}

// putRequest stores req.
func putRequest(t *tx, req *consent.Request) error {
	b, err := encodeRequest(req, t.shared())
	if err != nil {
		return err
	}
	var oldb []byte
	err = t.q.QueryRow(t.ctx, `WITH old AS (SELECT data FROM requests WHERE id = $1)
		INSERT INTO requests (id, subscriber, data) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET subscriber = EXCLUDED.subscriber, data = EXCLUDED.data
		RETURNING (SELECT data FROM old)`, dbID(req.ID), dbID(req.Subscriber), b).Scan(&oldb)
	if err != nil {
		return err
	}
	var old *consent.Request
	if oldb != nil {
		old = new(consent.Request)
		if err := decodeShared(oldb, old, t.shared()); err != nil {
			return err
		}
	}
	t.count(consent.RequestDelta(old, req))
	return nil
}

// insertRequest stores req, a request this transaction created (its id
// is new), without reading anything back (see insertSubscriber).
func insertRequest(t *tx, req *consent.Request) error {
	b, err := encodeRequest(req, t.shared())
	if err != nil {
		return err
	}
	if err := t.bulkRow(bulkRequests, dbID(req.ID), dbID(req.Subscriber), b); err != nil {
		return err
	}
	t.count(consent.RequestDelta(nil, req))
	return nil
}

// requestAndSubscriber returns request id and its subscriber, or an
// ENotFound *Error when either is gone.
func requestAndSubscriber(c conn, id string) (*consent.Request, *consent.Subscriber, error) {
	gone := consent.Errorf(consent.ENotFound, "this link is no longer valid")
	// One round trip for both: a confirmation reads them under the
	// write lock.
	var rr requestRow
	var sr subscriberRow
	err := c.q.QueryRow(c.ctx, "SELECT "+requestColumns+", "+subscriberColumns+" FROM requests r "+subscriberJoin("id = r.subscriber")+
		" WHERE r.id = $1", dbID(id)).Scan(append(rr.dest(), sr.dest()...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, gone
	}
	if err != nil {
		return nil, nil, err
	}
	req, err := rr.decode(id, c.shared())
	if err != nil {
		return nil, nil, err
	}
	sub, err := sr.decode()
	if err != nil {
		return nil, nil, err
	}
	if sub == nil {
		return nil, nil, gone
	}
	return req, sub, nil
}

// openRequest returns sub's pending request, or nil when it has none.
func openRequest(c conn, sub *consent.Subscriber) (*consent.Request, error) {
	if sub == nil || sub.PendingRequest == "" {
		return nil, nil
	}
	return request(c, sub.PendingRequest)
}

// putWording stores wording under hash once. A wording this DB has seen
// committed is not written again (wordings are never deleted).
func putWording(t *tx, hash string, w consent.Wording) error {
	if _, ok := t.db.wordings.Load(hash); ok {
		return nil
	}
	t.wordings = append(t.wordings, hash)
	b, err := encode(w)
	if err != nil {
		return err
	}
	return t.exec("INSERT INTO wordings (hash, data) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING", hash, b)
}

// putJSON stores v as the data of the row with key in a table whose only
// other column is its key column.
func putJSON(t *tx, table, key string, v any) error {
	if table == "forms" || table == "topics" {
		t.catalogChanged = true
	}
	b, err := encode(v)
	if err != nil {
		return err
	}
	return t.exec("INSERT INTO "+table+" (id, data) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data", key, b)
}

// mustGet decodes the row id of table (keyed by id) into v, or returns an
// ENotFound *Error naming what.
func mustGet(c conn, table, id string, v any, what string) error {
	ok, err := c.get(v, "SELECT data FROM "+table+" WHERE id = $1", id)
	if err == nil && !ok {
		err = consent.Errorf(consent.ENotFound, "%s %q not found", what, id)
	}
	return err
}
