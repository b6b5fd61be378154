package postgres

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"optin/internal/consent"
)

// maxScan bounds the records one page of a filtered listing reads, so a
// rare filter cannot turn one request into a walk over the whole store; a
// page may then hold fewer items than asked for, with a next cursor.
const maxScan = 20000

// scanChunk is how many records a walk over a table reads per query.
const scanChunk = 1000

// eachSubscriber calls fn for the subscribers after id after ("" for
// all) in id order, reading scanChunk at a time, until fn returns false
// or they end. fn may run statements on c: a chunk is read completely
// before fn sees its first subscriber.
func eachSubscriber(c conn, after string, fn func(sub *consent.Subscriber) (bool, error)) error {
	return walkSubscribers(c, where{}, after, false, fn)
}

// where is a condition on the subscribers (as s) with its arguments,
// numbered from $3 ($1 and $2 are the walk's cursor and chunk size), and
// the subscriptions they must hold, if any.
type where struct {
	sql  []string
	args []any
	// held says the walk reads only the subscribers holding one of the
	// subscriptions in holds: it walks those rows of subscriber_topics
	// (walkSubscribers), none when holds is empty; rows holds the
	// conditions on their subscriber (as m.subscriber).
	held  bool
	holds []subscription
	rows  []string
}

// subscription is a topic in the status of a code (statusCode): a range
// of the primary key of subscriber_topics, in subscriber order.
type subscription struct {
	topic string
	code  byte
}

// and adds a condition whose arguments are written as %s, in order.
func (w *where) and(sql string, args ...any) {
	w.sql = append(w.sql, w.arg(sql, args))
}

// arg numbers the arguments of sql, written as %s.
func (w *where) arg(sql string, args []any) string {
	for _, a := range args {
		w.args = append(w.args, a)
		sql = strings.Replace(sql, "%s", fmt.Sprintf("$%d", len(w.args)+2), 1)
	}
	return sql
}

// andRows adds a condition on the subscriber of the rows a walk of
// subscriptions reads (as m.subscriber), which bounds their ranges.
func (w *where) andRows(sql string, args ...any) {
	w.rows = append(w.rows, w.arg(sql, args))
}

// hold makes the walk read only the subscribers holding one of topics
// in one of statuses.
func (w *where) hold(topics []string, statuses ...consent.Status) {
	w.held = true
	for _, topic := range topics {
		for _, st := range statuses {
			w.holds = append(w.holds, subscription{topic, statusCode(st)})
		}
	}
}

func (w where) String() string {
	if len(w.sql) == 0 {
		return "true"
	}
	return strings.Join(w.sql, " AND ")
}

// allStatuses are the statuses a subscription can have.
var allStatuses = []consent.Status{consent.StatusConfirmed, consent.StatusLapsed, consent.StatusPending, consent.StatusUnsubscribed}

// heldTopics returns every topic subscriber_topics holds a row of, by a
// skip scan of its primary key (one descent per topic, and one more).
// They are the table's own topics, not the catalog's: a subscription to
// a topic no longer in the catalog is found too (optin deletes no topic,
// but a row of the topics table can be deleted by hand).
func heldTopics(c conn) ([]string, error) {
	var topics []string
	var topic string
	err := c.each(`WITH RECURSIVE held(topic) AS (
			SELECT min(topic) FROM subscriber_topics
			UNION ALL SELECT (SELECT min(h.topic) FROM subscriber_topics h WHERE h.topic > held.topic) FROM held WHERE held.topic IS NOT NULL)
		SELECT topic FROM held WHERE topic IS NOT NULL`, nil, []any{&topic}, func() error {
		topics = append(topics, topic)
		return nil
	})
	return topics, err
}

// filterWhere is what f asks of the subscribers at now, in terms the
// indexes serve: the subscriptions, which the walk reads from the
// primary key of subscriber_topics (topic, status, subscriber), one
// range per topic and status the filter leaves open (the topics those
// rows hold, heldTopics, for a status alone; the four statuses for a
// topic alone); the last purchase and the id (which starts with the
// creation time). The text search is left to
// consent.SubscriberFilter.Match.
func filterWhere(c conn, f consent.SubscriberFilter, now time.Time) (where, error) {
	var w where
	switch {
	case f.Topic != "" && f.Status != "":
		w.hold([]string{f.Topic}, f.Status)
	case f.Topic != "":
		w.hold([]string{f.Topic}, allStatuses...)
	case f.Status != "":
		topics, err := heldTopics(c)
		if err != nil {
			return w, err
		}
		w.hold(topics, f.Status)
	}
	_, cutoff := consent.DormantCutoff(now, f.DormantAfter)
	switch f.Lifecycle {
	case consent.LifecycleProspect:
		w.and("s.last_purchase IS NULL")
	case consent.LifecycleCustomer:
		w.and("s.last_purchase > %s", cutoff)
	case consent.LifecycleDormant:
		w.and("s.last_purchase <= %s", cutoff)
	}
	// A walk of subscriptions has the bounds on their rows, so that it
	// starts at the range's first.
	lo, hi := f.IDRange()
	if lo != "" {
		if w.held {
			w.andRows("m.subscriber >= %s", dbID(lo))
		} else {
			w.and("s.id >= %s", dbID(lo))
		}
	}
	if hi != "" {
		if w.held {
			w.andRows("m.subscriber < %s", dbID(hi))
		} else {
			w.and("s.id < %s", dbID(hi))
		}
	}
	return w, nil
}

// walkTop is the cursor of a walk by descending id that starts at the
// top: above every id (22 bytes, or an older id's text, whose UTF-8 has
// no 0xff byte).
var walkTop = bytes.Repeat([]byte{0xff}, 32)

// walkSubscribers is eachSubscriber for the subscribers matching w, in
// descending id order with newest (after is then the id the walk
// continues below; "" starts at the top).
//
// When w holds subscriptions, the walk reads their rows of
// subscriber_topics: one ordered range of its primary key per topic and
// status, merged in subscriber order (a Merge Append of the ranges in
// PostgreSQL's plan; each range starts at the cursor), and looks each
// row's subscriber up by its id, one probe of the primary key of
// subscribers a row (OFFSET 0 keeps the lookup a subquery of its own,
// which PostgreSQL does not turn into a join that could read the
// subscribers whole). A statement then reads the rows it returns and the
// subscribers the other conditions leave out, not the subscribers
// without those subscriptions; a subscriber holding several of them
// comes once.
func walkSubscribers(c conn, w where, after string, newest bool, fn func(sub *consent.Subscriber) (bool, error)) error {
	if w.held && len(w.holds) == 0 {
		return nil
	}
	query := "SELECT " + subscriberColumns + " FROM subscribers s WHERE s.id > $1 AND " + w.String() + " ORDER BY s.id LIMIT $2"
	if newest {
		query = "SELECT " + subscriberColumns + " FROM subscribers s WHERE ($1 = ''::bytea OR s.id < $1) AND " + w.String() + " ORDER BY s.id DESC LIMIT $2"
	}
	args := slices.Clone(w.args)
	if w.held {
		order, cmp := "", ">"
		if newest {
			order, cmp = " DESC", "<"
		}
		ranges := make([]string, len(w.holds))
		for i, h := range w.holds {
			args = append(args, h.topic, h.code)
			ranges[i] = fmt.Sprintf("(SELECT subscriber FROM subscriber_topics WHERE topic = $%d AND status = $%d ORDER BY subscriber%s)", len(args)+1, len(args)+2, order)
		}
		query = "SELECT " + subscriberColumns + " FROM (" + strings.Join(ranges, " UNION ALL ") + ") m" +
			" CROSS JOIN LATERAL (SELECT s.* FROM subscribers s WHERE s.id = m.subscriber AND " + w.String() + " OFFSET 0) s" +
			" WHERE " + strings.Join(append([]string{"m.subscriber " + cmp + " $1"}, w.rows...), " AND ") + " ORDER BY m.subscriber" + order + " LIMIT $2"
	}
	for {
		cursor := dbID(after)
		if w.held && newest && after == "" {
			cursor = walkTop
		}
		var chunk []*consent.Subscriber
		var r subscriberRow
		rows := 0
		err := c.each(query, append([]any{cursor, scanChunk}, args...), r.dest(), func() error {
			rows++
			sub, err := r.decode()
			if err != nil {
				return err
			}
			if len(chunk) == 0 || chunk[len(chunk)-1].ID != sub.ID {
				chunk = append(chunk, sub)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, sub := range chunk {
			if err := c.ctx.Err(); err != nil {
				return err
			}
			if more, err := fn(sub); err != nil || !more {
				return err
			}
		}
		if rows < scanChunk {
			return nil
		}
		after = chunk[len(chunk)-1].ID
	}
}

// FindSubscribers returns one page of the subscribers matching f in id
// order (the newest first with f.Newest), and the cursor of the next page
// ("" at the end). Ids start with their creation time and end with random
// bits, so the order is stable while others write: a subscriber added
// meanwhile sorts before or after the cursor, and no page repeats or
// skips one that existed when the listing began (unless it was erased).
// The query reads the indexes that serve f (filterWhere).
func (db *DB) FindSubscribers(ctx context.Context, f consent.SubscriberFilter) ([]*consent.Subscriber, string, error) {
	var out []*consent.Subscriber
	next := ""
	// after reports whether id comes after the cursor in the listing.
	after := func(id string) bool { return f.Cursor == "" || (id < f.Cursor) == f.Newest && id != f.Cursor }
	if addr, err := consent.ParseAddress(f.Query); err == nil {
		// A whole address is an exact lookup through the address index.
		f.Query = ""
		sub, err := subscriberByKey(db.read(ctx), addr.Key)
		if sub != nil && after(sub.ID) && f.Match(sub, db.Now()) {
			out = append(out, sub)
		}
		return out, "", err
	}
	err := db.view(ctx, func(c conn) error {
		now := db.Now()
		scanned, last := 0, ""
		w, err := filterWhere(c, f, now)
		if err != nil {
			return err
		}
		return walkSubscribers(c, w, f.Cursor, f.Newest, func(s *consent.Subscriber) (bool, error) {
			if len(out) == f.Limit {
				next = out[len(out)-1].ID
				return false, nil
			}
			if scanned == maxScan {
				next = last
				return false, nil
			}
			scanned++
			last = s.ID
			if f.Match(s, now) {
				out = append(out, s)
			}
			return true, nil
		})
	})
	return out, next, err
}

// RecordActivity records act of subscriber id (consent.PlanActivity):
// the activity event with a as its source and, for a customer activity
// later than the last one, the new last purchase, which makes a prospect a
// customer and a dormant customer active again. An invalid activity (one
// in the future, say) is EInvalid; an unknown subscriber ENotFound.
func (db *DB) RecordActivity(ctx context.Context, a consent.Actor, id string, act consent.Activity, customer bool) (*consent.Subscriber, error) {
	var sub *consent.Subscriber
	err := db.update(ctx, func(t *tx) error {
		now := db.Now()
		checked, err := consent.NewActivity(act.Kind, act.At, act.Reason, now)
		if err != nil {
			return err
		}
		checked.Assessment = act.Assessment
		if sub, err = loadSubscriber(t.conn, id); err != nil {
			return err
		}
		reg, err := register(t.conn)
		if err != nil {
			return err
		}
		if err := reg.Cite(checked.Assessment, sub.UnderLegitimateInterest()); err != nil {
			return err
		}
		ev, personal := consent.PlanActivity(sub, checked, customer, a.Source(), now, db)
		if err := putSubscriber(t, sub); err != nil {
			return err
		}
		if err := appendEvent(t, ev, personal); err != nil {
			return err
		}
		return db.audit(t, a, "subscriber.activity", id, 1)
	})
	if err != nil {
		return nil, err
	}
	return sub, nil
}

// EraseSubscriber erases subscriber id with the same semantics as the
// person's own erasure (see Erase), recording a as the source, and audits
// it in the same transaction.
func (db *DB) EraseSubscriber(ctx context.Context, a consent.Actor, id string) error {
	return db.update(ctx, func(t *tx) error {
		if err := db.erase(t, id, a.Source()); err != nil {
			return err
		}
		return db.audit(t, a, "subscriber.erase", id, 1)
	})
}

// EachExportable calls fn for every subscriber that may leave optin in a
// bulk export, in id order, from one snapshot while writers go on.
// Suppressed addresses never leave: a subscriber suppressed for every
// topic is skipped, a subscription whose topic is suppressed is left out,
// and a subscriber with any suppression and no subscription left is
// skipped. fn must not keep sub after it returns; an error from fn (such
// as a closed connection) stops the walk.
func (db *DB) EachExportable(ctx context.Context, fn func(sub *consent.Subscriber) error) error {
	return db.view(ctx, func(c conn) error {
		after := ""
		for {
			var chunk []*consent.Subscriber
			err := eachSubscriber(c, after, func(sub *consent.Subscriber) (bool, error) {
				chunk = append(chunk, sub)
				return len(chunk) < scanChunk, nil
			})
			if err != nil || len(chunk) == 0 {
				return err
			}
			after = chunk[len(chunk)-1].ID
			hashes := make([]string, len(chunk))
			for i, sub := range chunk {
				hashes[i] = db.hashKey(consent.AddressKey(sub.Email))
			}
			scopes := map[string][]string{}
			var h, scope string
			err = c.each("SELECT hash, scope FROM suppressions WHERE hash = ANY($1)", []any{hashes}, []any{&h, &scope}, func() error {
				scopes[h] = append(scopes[h], scope)
				return nil
			})
			if err != nil {
				return err
			}
			for i, sub := range chunk {
				if !exportable(sub, scopes[hashes[i]]) {
					continue
				}
				if err := fn(sub); err != nil {
					return err
				}
			}
		}
	})
}

// exportable drops sub's subscriptions to the suppressed scopes and
// reports whether anything of sub may be exported.
func exportable(sub *consent.Subscriber, scopes []string) bool {
	if len(scopes) == 0 {
		return true // the common case
	}
	for _, scope := range scopes {
		if scope == consent.ScopeAll {
			return false
		}
		delete(sub.Subscriptions, scope)
	}
	return len(sub.Subscriptions) > 0
}

// Backup is not how a PostgreSQL store is backed up: its database is,
// with the database's own tools (pg_dump, base backups, a managed
// service's snapshots), together with the rest of the data PostgreSQL
// holds. It returns an EConflict *Error saying so, and writes nothing.
func (db *DB) Backup(ctx context.Context, w io.Writer, size func(int64)) error {
	return consent.Errorf(consent.EConflict, "optin's store is PostgreSQL: back up its database with pg_dump or your PostgreSQL service's backups")
}
