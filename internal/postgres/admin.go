package postgres

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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
// numbered from $3 ($1 and $2 are the walk's cursor and chunk size),
// and the subscriptions they must hold, if any.
type where struct {
	sql  []string
	args []any
	// held says the walk reads only the subscribers holding one of the
	// subscriptions in holds (elements of subs, subCode), as
	// subscriberChunk finds them; none when holds is empty.
	held  bool
	holds []int16
}

// and adds a condition whose arguments are written as %s, in order.
func (w *where) and(sql string, args ...any) {
	for _, a := range args {
		w.args = append(w.args, a)
		sql = strings.Replace(sql, "%s", fmt.Sprintf("$%d", len(w.args)+2), 1)
	}
	w.sql = append(w.sql, sql)
}

// hold makes the walk read only the subscribers holding one of topics
// in one of statuses; a topic without a code (topicCode) is held by no
// one.
func (w *where) hold(c conn, topics []string, statuses ...consent.Status) error {
	var codes []int16
	for _, topic := range topics {
		code, ok, err := topicCode(c, topic)
		if err != nil {
			return err
		}
		if ok {
			codes = append(codes, code)
		}
	}
	w.holdCodes(codes, statuses...)
	return nil
}

// holdCodes is hold for the topics of codes.
func (w *where) holdCodes(codes []int16, statuses ...consent.Status) {
	w.held = true
	for _, code := range codes {
		for _, st := range statuses {
			if e, ok := subCode(code, st); ok {
				w.holds = append(w.holds, e)
			}
		}
	}
}

func (w where) String() string {
	if len(w.sql) == 0 {
		return "true"
	}
	return strings.Join(w.sql, " AND ")
}

// filterWhere is what f asks of the subscribers at now, in terms the
// indexes serve: the subscriptions, which the walk finds through the
// index on subs (the elements of the topic and status the filter asks
// for; of every status for a topic alone; of every topic coded,
// allTopicCodes, for a status alone); the last purchase and the id
// (which starts with the creation time). The text search is left to
// consent.SubscriberFilter.Match.
func filterWhere(c conn, f consent.SubscriberFilter, now time.Time) (where, error) {
	var w where
	switch {
	case f.Topic != "" && f.Status != "":
		if err := w.hold(c, []string{f.Topic}, f.Status); err != nil {
			return w, err
		}
	case f.Topic != "":
		if err := w.hold(c, []string{f.Topic}, allStatuses...); err != nil {
			return w, err
		}
	case f.Status != "":
		codes, err := allTopicCodes(c)
		if err != nil {
			return w, err
		}
		w.holdCodes(codes, f.Status)
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
	lo, hi := f.IDRange()
	if lo != "" {
		w.and("s.id >= %s", dbID(lo))
	}
	if hi != "" {
		w.and("s.id < %s", dbID(hi))
	}
	return w, nil
}

// walkTop is the cursor of a walk by descending id that starts at the
// top: above every id (22 bytes, or an older id's text, whose UTF-8 has
// no 0xff byte).
var walkTop = bytes.Repeat([]byte{0xff}, 32)

// walkSubscribers is eachSubscriber for the subscribers matching w, in
// descending id order with newest (after is then the id the walk
// continues below; "" starts at the top), a chunk of scanChunk at a
// time (subscriberChunk).
func walkSubscribers(c conn, w where, after string, newest bool, fn func(sub *consent.Subscriber) (bool, error)) error {
	return walkChunks(c, w, after, newest, scanChunk, fn)
}

// walkChunks is walkSubscribers reading chunk subscribers at first, then
// four times as many each time up to scanChunk.
func walkChunks(c conn, w where, after string, newest bool, chunk int, fn func(sub *consent.Subscriber) (bool, error)) error {
	if w.held && len(w.holds) == 0 {
		return nil
	}
	for {
		var subs []*consent.Subscriber
		var r subscriberRow
		err := subscriberChunk(c, w, "", r.dest(), after, newest, chunk, func() error {
			sub, err := r.decode()
			subs = append(subs, sub)
			return err
		})
		if err != nil {
			return err
		}
		for _, sub := range subs {
			if err := c.ctx.Err(); err != nil {
				return err
			}
			if more, err := fn(sub); err != nil || !more {
				return err
			}
		}
		if len(subs) < chunk {
			return nil
		}
		after = subs[len(subs)-1].ID
		chunk = min(4*chunk, scanChunk)
	}
}

// elemsConst is elements of subs as an SQL constant.
func elemsConst(elems []int16) string {
	s := make([]string, len(elems))
	for i, e := range elems {
		s[i] = strconv.Itoa(int(e))
	}
	return "'{" + strings.Join(s, ",") + "}'::smallint[]"
}

// subscriberChunk reads up to limit subscribers (as s) matching w after
// the id after (below it with newest; "" starts at the first), in id
// order, scanning subscriberColumns and cols into dest and calling fn
// for each row (fn runs no statement: the rows are still coming).
//
// When w holds subscriptions, the statement names their elements of subs
// as a constant, and runs as an unnamed statement
// (QueryExecModeDescribeExec), which PostgreSQL plans for the values of
// its cursor and limit each time: so it picks what the density of those
// subscriptions asks for, the primary key in id order filtered on subs
// until limit rows for those many subscribers hold, the index on subs
// (every subscriber holding them, sorted by id) for those few hold. The
// one plan for all would either walk the whole table for the few or read
// every one of the many again for each chunk (TestAudienceNotReadWhole;
// docs/performance.md, "Migration 0021").
func subscriberChunk(c conn, w where, cols string, dest []any, after string, newest bool, limit int, fn func() error) error {
	cond := w.String()
	var args []any
	if w.held {
		cond += " AND s.subs && " + elemsConst(w.holds)
		args = append(args, pgx.QueryExecModeDescribeExec)
	}
	order, cmp, cursor := "", ">", dbID(after)
	if newest {
		order, cmp = " DESC", "<"
		if after == "" {
			cursor = walkTop
		}
	}
	query := "SELECT " + subscriberColumns + cols + " FROM subscribers s WHERE s.id " + cmp + " $1 AND " + cond +
		" ORDER BY s.id" + order + " LIMIT $2"
	args = append(append(args, cursor, limit), w.args...)
	return c.each(query, args, dest, fn)
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
		// The first chunk is the page and the one after it, which tells
		// whether there is a next page.
		return walkChunks(c, w, f.Cursor, f.Newest, min(f.Limit+1, scanChunk), func(s *consent.Subscriber) (bool, error) {
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
